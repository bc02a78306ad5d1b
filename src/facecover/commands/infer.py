"""`facecover` subcommands of inference: one subject's or patient's healthy face and its cover's accuracy
(rules in workflow/rules/infer.smk)."""

from __future__ import annotations

import dataclasses

import json
import sys
from pathlib import Path

import numpy as np

from .. import FacecoverError
from . import load_space, settings_from_json


def _image_embedding(args) -> tuple[np.ndarray, dict]:
    """The L2-normalised embedding (512,) of the image inference starts from, and what it was."""
    from ..learn.data import load_embeddings

    if args.photo:
        from ..device import onnx_providers
        from ..encoder import embed_faces, load_identity_encoder
        from ..photo import photo_face

        if not args.encoder:
            raise FacecoverError("infer --photo needs --encoder (the ArcFace ONNX)")
        face = photo_face(args.photo)
        model = load_identity_encoder(args.encoder, onnx_providers(args.device))
        return embed_faces(model, [face["crop"]])[0], {"photo": str(args.photo), "faces_found": face["faces_found"],
                                                      "arcface_landmarks_px": face["landmarks"].round(2).tolist()}
    if not (args.embeddings and args.image):
        raise FacecoverError("infer needs --photo, or --embeddings with --image (a render in the cache)")
    cache = load_embeddings(args.embeddings)
    stems = [str(s) for s in cache["stem"]]
    if args.image not in stems:
        raise FacecoverError(f"{args.embeddings}: no render '{args.image}' (has {', '.join(stems[:6])} ...)")
    return cache["clean"][stems.index(args.image)], {"render": f"{Path(args.embeddings).stem}/{args.image}",
                                                     "embeddings": str(args.embeddings)}


def _given_wound(path: str, registration_report: str | None, vertices: np.ndarray) -> np.ndarray:
    """A wound marked by the user: an .npz with a boolean 'wound' over the registered vertices, or a mesh /
    point set (.ply/.obj/.stl) of the wound region in the raw scan's coordinates (an exported selection),
    mapped to the registered template through the ingest report's scan_to_canonical transform."""
    from ..files import load_npz

    p = Path(path)
    if p.suffix == ".json":  # marked on the scan in the marking page (facecover mark)
        from ..marked_wound import wound_from_mark_file

        return wound_from_mark_file(p, registration_report, vertices)
    if p.suffix == ".npz":
        wound = load_npz(p).get("wound")
        if wound is None or wound.shape != (len(vertices),):
            raise FacecoverError(f"{p}: needs a boolean 'wound' array with one entry per registered vertex "
                                 f"({len(vertices)})")
        return wound.astype(bool)
    import trimesh
    from scipy.spatial import cKDTree

    from ..meshtools import apply_transform

    if not p.is_file():
        raise FacecoverError(f"{p}: wound file not found")
    try:
        points = np.asarray(trimesh.load(p, process=False).vertices, np.float64)
    except Exception as exc:
        raise FacecoverError(f"{p}: cannot read the wound selection ({type(exc).__name__}: {exc})") from None
    if len(points) == 0:
        raise FacecoverError(f"{p}: the wound selection is empty")
    if not registration_report:
        raise FacecoverError(f"{p}: a wound selection in scan coordinates needs the ingest report (--registration)")
    report = json.loads(Path(registration_report).read_text())
    T = np.asarray(report["scan_to_canonical"])
    canonical = apply_transform(T, points * report.get("scale_to_mm", 1.0))
    distance, _ = cKDTree(canonical).query(vertices)
    wound = distance < 2.0  # mm: a registered vertex lies on the selected region
    if not wound.any():
        raise FacecoverError(f"{p}: no registered vertex lies within 2 mm of the wound selection (is it from the "
                             "same scan?)")
    return wound


def cmd_infer(args) -> None:
    import pandas as pd

    from ..files import load_mesh_arrays, load_npz, save_json, save_mesh, save_npz
    from ..learn.data import read_split
    from ..learn.decoder import load_decoder
    from ..learn.infer import (FitSettings, choose_experiment, fit_healthy_face, fit_nuisance, implausible_wound,
                                mesh_operators)
    from ..learn.network import load_mapping
    from ..learn.train import predict_coefficients
    from ..partial import observed_from_report, wound_inside_observed

    space = load_space(args.space)
    n = len(space["vertices"])
    decoder = load_decoder(args.decoder, n)
    experiment = args.experiment
    if experiment == "auto":
        if not args.table:
            raise FacecoverError("infer: experiment 'auto' needs --table (results/metrics/table_val.csv)")
        experiment = choose_experiment(pd.read_csv(args.table), args.experiments)
    checkpoint = Path(args.checkpoints_dir) / f"recon_{experiment}.pt"
    net, _ = load_mapping(checkpoint, len(decoder["basis"]))
    embedding, image = _image_embedding(args)
    prior = predict_coefficients(net, embedding[None])[0]
    injured = load_mesh_arrays(args.injured)[0]
    if len(injured) != n:
        raise FacecoverError(f"{args.injured}: {len(injured)} vertices; inference needs the scan registered to the "
                             f"template ({n} vertices)")
    wound = _given_wound(args.wound, args.registration, injured) if args.wound else None
    noise = load_npz(args.fit_noise)["noise_mm"]
    settings = settings_from_json(FitSettings, args.fit_settings)
    ops = mesh_operators(injured, space["faces"])
    # a partial scan: the ingest report (--registration, or the one beside the registered mesh) names the
    # template vertices the scan does not show; none named: everything observed
    observed = observed_from_report(args.registration or Path(args.injured).with_suffix(".json"), n)
    fit = fit_healthy_face(decoder, injured, space["faces"], prior, noise, settings, wound=wound, name=args.injured,
                           operators=ops, nuisance=fit_nuisance(space, settings), openings=space.get("openings"),
                           observed=observed)
    fallback = ""
    if wound is None and not fit["wound"].any() and args.if_no_wound != "record":
        why = (f"{args.subject}: no wound found on {args.injured}: no skin departs from the fitted healthy face "
               f"beyond the fit's noise away from the eye openings, the nostrils and the mouth")
        if args.if_no_wound == "stop":
            raise FacecoverError(f"{why}. Nothing is printed. If there is a wound to cover, mark it on "
                                 f"results/mark/{args.subject}.html (facecover mark) and save wound.json in the "
                                 f"patient's folder, and run again")
        # the synthetic cohort's evaluation goes on with the previous release's wound finding: the decoder alone,
        # any departure from the fitted face, openings included, no widening
        fallback = f"{why}; the wound is any departure from the decoder's face instead"
        settings = dataclasses.replace(settings, inward_only=False, opening_clearance_mm=0.0, mouth_clearance_mm=0.0,
                                       expression_sd=0.0, smooth_modes=0, wound_margin_share=0.0)
        fit = fit_healthy_face(decoder, injured, space["faces"], prior, noise, settings, name=args.injured,
                               operators=ops, nuisance=fit_nuisance(space, settings), openings=space.get("openings"),
                               observed=observed)
        print(fallback, file=sys.stderr)
    # a partial scan: the cover needs the wound and the band it rests on inside the scanned part
    edge = wound_inside_observed(fit["wound"], observed, ops, args.band_mm, f"{args.subject} ({args.injured})")
    implausible = [] if wound is not None else implausible_wound(fit["wound"], space["openings"], ops, settings)
    if implausible and args.on_implausible == "stop":
        raise FacecoverError(
            f"{args.subject}: the wound found on {args.injured} is not one to cover: "
            f"{'; '.join(implausible)} (found {fit['wound_area_mm2']:.0f} mm²). Nothing is printed for it. Mark the "
            f"wound instead: mark it on results/mark/{args.subject}.html (facecover mark) and save wound.json, or put "
            f"wound.ply (the wound's region cut from the scan, in its coordinates) in the patient's folder "
            f"(patients/{args.subject}/ by default), and run again")
    split = "patient"
    if args.split:
        split = read_split(args.split).get(args.subject, "not in the split")
    report = {"subject": args.subject, "split": split, "image": image, "experiment": experiment,
              "model": str(checkpoint), "injured": str(args.injured),
              "wound_source": "given: " + str(args.wound) if wound is not None else "found by the fit",
              "wound_vertices": int(fit["wound"].sum()),
              "wound_implausible": implausible, "wound_area_mm2": round(fit["wound_area_mm2"], 2),
              "wound_fallback": fallback,
              "observed_area_mm2": round(float(ops["areas"].sum() if observed is None else ops["areas"][observed].sum()), 1),
              "unobserved_vertices": 0 if observed is None else int((~observed).sum()), **edge,
              "fit_residual_outside_wound_mm": round(fit["fit_residual_outside_wound_mm"], 4),
              "image_vs_fitted_face_mm": round(float(np.linalg.norm(
                  np.tensordot(prior - fit["coefficients"], decoder["basis"], axes=1), axis=1).mean()), 4)}
    save_npz(args.out_wound, wound=fit["wound"], coefficients=fit["coefficients"], image_coefficients=prior,
             **({} if observed is None else {"observed": observed}))
    save_json(args.report, report)
    save_mesh(args.out, fit["healthy"], space["faces"])
    print(f"{args.subject}: {experiment} from {image.get('photo', image.get('render'))}; wound "
          f"{report['wound_area_mm2']:.0f} mm² ({report['wound_source']}); fit residual outside it "
          f"{report['fit_residual_outside_wound_mm']:.3f} mm", file=sys.stderr)


def cmd_cover_accuracy(args) -> None:
    from ..files import load_mesh_arrays, load_npz
    from ..filling import compare_covers
    from ..printing import PrinterSettings
    from ..summary import rounded, write_csv

    printer = settings_from_json(PrinterSettings, args.printer)
    rows = []
    for s in args.subjects:
        injured = load_mesh_arrays(Path(args.scars_dir) / s / f"{args.variant}.ply")
        wound = load_npz(Path(args.scars_dir) / s / f"{args.variant}.npz")["mask"].astype(bool)
        covers, footprints = {}, {}
        for kind, folder in (("predicted", args.predicted_dir), ("reference", args.reference_dir)):
            covers[kind] = load_mesh_arrays(Path(folder) / f"{s}.ply")
            footprints[kind] = load_npz(Path(folder) / f"{s}_footprint.npz")["footprint"].astype(bool)
        row = {"subject": s, **compare_covers(*injured, wound,
                                              covers["predicted"], covers["reference"], footprints["predicted"],
                                              footprints["reference"])}
        row |= _printable(*covers["predicted"], printer, args.min_thickness_mm, s)
        rows.append(row)
    measured = [k for k in rows[0] if k not in ("subject", "print_checks", "print_check_failure")]
    mean = {"subject": "mean", **{k: float(np.mean([r[k] for r in rows])) for k in measured},
            "print_checks": all(r["print_checks"] for r in rows), "print_check_failure": ""}
    table = rounded(rows + [mean], 4)
    write_csv(table, args.out)
    for row in table:
        print("  ".join(f"{k}={v}" for k, v in row.items() if k != "print_check_failure" or v), file=sys.stderr)


def _printable(v: np.ndarray, f: np.ndarray, printer, min_thickness_mm: float, name: str) -> dict:
    from ..printing import check_printable, place_on_bed

    try:
        check_printable(place_on_bed(v, f, printer), f, printer, min_thickness_mm, name=name)
        return {"print_checks": True, "print_check_failure": ""}
    except FacecoverError as exc:
        return {"print_checks": False, "print_check_failure": str(exc)}


def cmd_cover_scores(args) -> None:
    """Each test subject's cover, from its injured raw scan, scored in the scan's frame against the true
    surfaces (`cover_scores`), with the wound found, the false wound on its uninjured scan, and the
    reference cover (made from the true healthy face on the uninjured registration) scored the same way."""
    from ..cover_scores import found_wound_iou, score_cover
    from ..meshtools import apply_transform
    from ..files import load_mesh_arrays, load_npz
    from ..printing import PrinterSettings
    from ..summary import rounded, write_csv

    printer = settings_from_json(PrinterSettings, args.printer)
    d = {k: Path(getattr(args, k)) for k in ("fillings_dir", "reference_dir", "registered_dir",
                                             "registered_injured_dir", "reconstructions_dir", "uninjured_dir",
                                             "truth_dir", "truth_injured_dir")}
    rows = []
    for s in args.subjects:
        truth = load_npz(d["truth_injured_dir"] / f"{s}.npz")
        faces, wound = truth["faces"], truth["wound"].astype(bool)
        to_scan = np.linalg.inv(np.asarray(json.loads((d["registered_injured_dir"] / f"{s}.json").read_text())
                                           ["scan_to_canonical"]))
        cover_v, cover_f = load_mesh_arrays(d["fillings_dir"] / f"{s}.ply")
        about = json.loads((d["reconstructions_dir"] / f"{s}.json").read_text())
        found = load_npz(d["reconstructions_dir"] / f"{s}_wound.npz")["wound"].astype(bool)
        registered = load_mesh_arrays(d["registered_injured_dir"] / f"{s}.ply")[0]
        uninjured = json.loads((d["uninjured_dir"] / f"{s}.json").read_text())
        row = {"subject": s,
               **found_wound_iou(truth["injured"], faces, wound, apply_transform(to_scan, registered), found),
               **score_cover(apply_transform(to_scan, cover_v), cover_f, truth["healthy"], truth["injured"], faces,
                             wound, args.min_thickness_mm),
               "false_wound_mm2": float(uninjured["wound_area_mm2"]),
               "implausible": "; ".join(about.get("wound_implausible", [])),
               "false_implausible": "; ".join(uninjured.get("wound_implausible", []))}
        # the reference cover: healthy registration's frame -> its scan -> the true canonical face -> the injured scan
        healthy_to_scan = np.linalg.inv(np.asarray(json.loads((d["registered_dir"] / f"{s}.json").read_text())
                                                   ["scan_to_canonical"]))
        to_truth = np.linalg.inv(load_npz(d["truth_dir"] / f"{s}.npz")["scan_pose"])
        ref_v, ref_f = load_mesh_arrays(d["reference_dir"] / f"{s}.ply")
        chain = truth["scan_pose"] @ to_truth @ healthy_to_scan
        ref = score_cover(apply_transform(chain, ref_v), ref_f, truth["healthy"], truth["injured"], faces, wound,
                          args.min_thickness_mm)
        row |= {f"reference_{k}": v for k, v in ref.items()}
        row |= _printable(cover_v, cover_f, printer, args.min_thickness_mm, s)
        rows.append(row)
    text = ("subject", "implausible", "false_implausible", "print_checks", "print_check_failure")
    measured = [k for k in rows[0] if k not in text]
    mean = {"subject": "mean", **{k: float(np.nanmean([r[k] for r in rows])) for k in measured},
            "implausible": f"{sum(bool(r['implausible']) for r in rows)} of {len(rows)}",
            "false_implausible": f"{sum(bool(r['false_implausible']) for r in rows)} of {len(rows)}",
            "print_checks": all(r["print_checks"] for r in rows), "print_check_failure": ""}
    table = rounded(rows + [mean], 4)
    write_csv(table, args.out)
    for row in table:
        print("  ".join(f"{k}={v}" for k, v in row.items() if v != ""), file=sys.stderr)


def register(sub) -> None:
    p = sub.add_parser("infer", help="one subject's healthy face: image -> model -> fit to the injured scan")
    p.add_argument("--subject", required=True)
    p.add_argument("--space", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--experiment", default="auto", help="fine-tuned model to use; auto: the best of --table")
    p.add_argument("--experiments", nargs="+", default=["nossl"], help="with auto: the candidates")
    p.add_argument("--table", help="the validation subjects' table, results/metrics/table_val.csv (for --experiment auto)")
    p.add_argument("--checkpoints-dir", required=True, help="folder of recon_<experiment>.pt")
    p.add_argument("--embeddings", help="the subject's embedding cache (.npz)")
    p.add_argument("--image", help="with --embeddings: the render to start from ({variant}_{view})")
    p.add_argument("--photo", help="a photo of the patient (.png/.jpg) instead")
    p.add_argument("--encoder", help="with --photo: the ArcFace ONNX")
    p.add_argument("--device", default="auto", help="with --photo: onnxruntime device (auto | cpu | cuda)")
    p.add_argument("--injured", required=True, help="the injured face registered to the template (.ply)")
    p.add_argument("--wound", help="the wound, if known: .npz mask over the registered vertices, or a mesh/point "
                                   "selection in scan coordinates (with --registration)")
    p.add_argument("--registration", help="the ingest report (.json) of the patient's scan")
    p.add_argument("--fit-noise", required=True)
    p.add_argument("--fit-settings", help="JSON object of the config 'fit' block")
    p.add_argument("--split", help="splits.csv, to record which set the subject is in")
    p.add_argument("--if-no-wound", choices=("stop", "record", "fallback"), default="stop",
                   help="when the fit finds no wound: stop (a patient: ask for a mark), record it (an uninjured "
                        "scan), or fall back to any departure from the fitted face (the synthetic cohort)")
    p.add_argument("--on-implausible", choices=("stop", "record"), default="stop",
                   help="a found wound that cannot be real (scattered, too large, touching an eye, nostril or "
                        "the mouth): stop with a message asking for a marked wound, or record it in the report "
                        "and go on (evaluation)")
    p.add_argument("--band-mm", type=float, default=5.0,
                   help="a partial scan: the healthy skin around the wound that must be scanned (the filling's "
                        "margin_mm, where the cover rests)")
    p.add_argument("--out", required=True, help="the healthy face (.ply, template topology, mm)")
    p.add_argument("--out-wound", required=True, help=".npz: the wound mask and the coefficients")
    p.add_argument("--report", required=True)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("cover-accuracy", help="predicted covers vs the reference covers of the same wounds")
    p.add_argument("--subjects", nargs="+", required=True)
    p.add_argument("--scars-dir", required=True)
    p.add_argument("--variant", required=True, help="the patient variant (scar variant of the covers)")
    p.add_argument("--predicted-dir", required=True, help="folder of {subject}.ply + {subject}_footprint.npz")
    p.add_argument("--reference-dir", required=True, help="the same for the reference covers")
    p.add_argument("--printer", help="JSON object of the config 'printer' block")
    p.add_argument("--min-thickness-mm", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_cover_accuracy)

    p = sub.add_parser("cover-scores", help="test subjects' covers from injured raw scans vs the true surfaces "
                                            "(restore, contact, coverage, found IoU, false wound)")
    p.add_argument("--subjects", nargs="+", required=True)
    for name, what in (("fillings", "predicted covers {subject}.ply"), ("reference", "reference covers"),
                       ("registered", "uninjured registrations (.json)"),
                       ("registered-injured", "injured registrations (.ply + .json)"),
                       ("reconstructions", "inference: {subject}.json + _wound.npz"),
                       ("uninjured", "inference on the uninjured scans (.json)"),
                       ("truth", "true faces of the uninjured scans (.npz)"),
                       ("truth-injured", "true surfaces of the injured scans (.npz)")):
        p.add_argument(f"--{name}-dir", required=True, help=what)
    p.add_argument("--printer", help="JSON object of the config 'printer' block")
    p.add_argument("--min-thickness-mm", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_cover_scores)
