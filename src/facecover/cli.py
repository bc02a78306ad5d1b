"""`facecover <stage>`: one subcommand per workflow stage (what each Snakemake rule runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import FacecoverError


def _space(path: str) -> dict:
    from .files import load_npz

    return load_npz(path)


def cmd_template(args) -> None:
    from .files import save_npz
    from .shape_space import face_space

    save_npz(args.out, **face_space(args.lb_modes, args.detail_modes))


def cmd_pool(args) -> None:
    from tqdm import tqdm

    from .cohort import person_rng, person_vertices
    from .files import save_npz

    space = _space(args.space)
    names = [f"pool{i:05d}" for i in range(args.count)]
    people = np.stack([person_vertices(space, person_rng(args.seed, "pool", n), with_detail=True)
                       for n in tqdm(names, desc="pool identities", disable=None)])
    save_npz(args.out, vertices=people.astype(np.float32), names=np.array(names), faces=space["faces"])


def cmd_synth_scan(args) -> None:
    from .cohort import ScanSettings, disk_parameterization, person_rng, person_vertices, synthetic_scan
    from .files import save_mesh, save_npz

    space = _space(args.space)
    rng = person_rng(args.seed, "cohort", args.subject)
    truth = person_vertices(space, rng, with_detail=True)
    settings = _settings(ScanSettings, args.settings)
    uv = disk_parameterization(space["vertices"], space["faces"])
    vertices, faces, pose = synthetic_scan(truth, space["faces"], uv, rng, settings)
    scale = 1000.0 if args.units == "m" else 1.0
    save_npz(args.out_truth, vertices=truth, faces=space["faces"], scan_pose=pose)
    save_mesh(args.out_scan, vertices / scale, faces)


def cmd_ingest(args) -> None:
    import dataclasses

    from .files import save_json, save_mesh
    from .ingest import RegistrationSettings, ingest_scan

    space = _space(args.space)
    settings = dataclasses.replace(_settings(RegistrationSettings, args.settings), seed=args.seed)
    reg = ingest_scan(args.scan, space, units=args.units, settings=settings)
    if args.truth:
        from .files import load_npz

        truth = load_npz(args.truth)["vertices"]
        err = np.linalg.norm(reg.vertices - truth, axis=1)
        reg.report["truth_vertex_error_mm"] = {"mean": float(err.mean()), "p95": float(np.percentile(err, 95)),
                                               "max": float(err.max())}
    save_json(args.report, reg.report)
    save_mesh(args.out, reg.vertices, space["faces"])
    r = reg.report["residuals"]
    print(f"{args.scan}: registered in {reg.report['seconds']['with_io']:.1f} s, mean surface distance "
          f"{r['mean_surface_distance_mm']:.2f} mm", file=sys.stderr)


def cmd_split(args) -> None:
    import pandas as pd

    from .files import atomic_path
    from .split import split_subjects

    assignment = split_subjects(args.subjects, args.ratios, args.seed)
    table = pd.DataFrame({"subject": list(assignment), "set": list(assignment.values())})
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)


def _settings(cls, text: str | None):
    """A settings dataclass from a JSON object of config values (lists become tuples)."""
    import dataclasses
    import json

    if not text:
        return cls()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FacecoverError(f"--settings is not valid JSON: {exc}") from None
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise FacecoverError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def cmd_scars(args) -> None:
    from .cohort import person_rng
    from .files import load_mesh, save_mesh, save_npz
    from .scars import ScarSettings, prepare_face, simulate_scars

    space = _space(args.space)
    settings = _settings(ScarSettings, args.settings)
    healthy = load_mesh(args.registered)
    if len(healthy.vertices) != len(space["vertices"]):
        raise FacecoverError(f"{args.registered}: {len(healthy.vertices)} vertices, expected the template's "
                             f"{len(space['vertices'])} (is it a registered mesh?)")
    face = prepare_face(np.asarray(healthy.vertices), space["faces"], space["regions"], settings)
    out = Path(args.out_dir)
    for variant in args.variants:
        result = simulate_scars(face, person_rng(args.seed, "scars", f"{args.subject}/{variant}"), settings)
        save_npz(out / f"{variant}.npz", **{k: v for k, v in result.items() if k != "vertices"})
        save_mesh(out / f"{variant}.ply", result["vertices"], space["faces"])


def _render_person(settings, seed: int, space: dict, vertices: np.ndarray, rng_name: str, out: Path,
                   stem: str) -> None:
    """Render one face under the views of `settings` (ViewSettings); write `{stem}_{k}.png` and `.json` per view."""
    from .cohort import person_rng
    from .files import save_json
    from .render import render_views, save_png, view_setups
    from .template import ARCFACE_LANDMARKS, landmark_positions

    setups = view_setups(person_rng(seed, "render", rng_name), settings.views,
                         settings.max_yaw_deg, settings.max_pitch_deg, settings.max_roll_deg)
    views = render_views(vertices, space["faces"], landmark_positions(space, vertices), setups, settings.size,
                         settings.field_mm)
    for k, view in enumerate(views):
        save_png(out / f"{stem}_{k}.png", view["image"])
        save_json(out / f"{stem}_{k}.json", {
            "arcface_landmarks_px": view["landmarks_px"].round(3).tolist(),
            "landmark_names": list(ARCFACE_LANDMARKS),
            "camera": view["camera"].as_dict(), "lights": view["lights"].tolist(), "pose_deg": view["pose_deg"]})


def cmd_render(args) -> None:
    from tqdm import tqdm

    from .files import load_mesh
    from .render import ViewSettings

    space = _space(args.space)
    settings = _settings(ViewSettings, args.settings)
    for variant in tqdm(args.variants, desc=f"render {args.subject}", disable=None):
        v = np.asarray(load_mesh(Path(args.scars_dir) / f"{variant}.ply").vertices)
        _render_person(settings, args.seed, space, v, f"{args.subject}/{variant}", Path(args.out_dir), variant)


def cmd_render_pool(args) -> None:
    from tqdm import tqdm

    from .files import load_npz
    from .render import ViewSettings

    space = _space(args.space)
    settings = _settings(ViewSettings, args.settings)
    pool = load_npz(args.pool)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, v in tqdm(list(zip(pool["names"], pool["vertices"].astype(np.float64))), desc="render pool", disable=None):
        _render_person(settings, args.seed, space, v, str(name), out, str(name))


def cmd_encoder(args) -> None:
    import dataclasses
    import shutil

    from .device import select_device
    from .encoder import (AugmentSettings, EncoderSettings, export_onnx, identities_in, load_identity_encoder,
                          load_render, train_identity_encoder)
    from .files import atomic_path, save_json

    if args.model:  # a real ArcFace (e.g. insightface w600k_r50.onnx): checked, then used as is
        load_identity_encoder(args.model)
        with atomic_path(args.out) as tmp:
            shutil.copyfile(args.model, tmp)
        save_json(args.report, {"source": str(Path(args.model).resolve()), "trained": False})
        return
    if not args.renders_dir:
        raise FacecoverError("give --model (an ArcFace ONNX file) or --renders-dir (pool renders to train on)")
    settings = dataclasses.replace(_settings(EncoderSettings, args.settings),
                                   augment=_settings(AugmentSettings, args.augment))
    groups = identities_in(args.renders_dir)
    renders = {name: [load_render(p) for p in paths] for name, paths in groups.items()}
    net, report = train_identity_encoder(renders, settings, args.seed, select_device(args.device))
    export_onnx(net, args.out)
    save_json(args.report, {"source": "bootstrap", "trained": True, "renders": str(args.renders_dir), **report})


def cmd_embed(args) -> None:
    from .cohort import person_rng
    from .device import onnx_providers
    from .embed import embed_renders
    from .encoder import AugmentSettings, load_identity_encoder
    from .files import save_npz

    model = load_identity_encoder(args.encoder, onnx_providers(args.device))
    rng = person_rng(args.seed, "embed", Path(args.renders_dir).name)
    save_npz(args.out, **embed_renders(model, args.renders_dir, args.augmentations,
                                       _settings(AugmentSettings, args.augment), rng, args.stems))


def cmd_contact_sheet(args) -> None:
    from PIL import Image

    from .files import load_npz
    from .render import contact_sheet, save_png

    rows, labels = [], []
    for variant in args.variants:
        images = sorted(Path(args.renders_dir).glob(f"{variant}_*.png"), key=lambda p: int(p.stem.split("_")[-1]))
        if not images:
            raise FacecoverError(f"{args.renders_dir}: no renders of variant {variant}")
        rows.append([np.asarray(Image.open(p).convert("L")) for p in images])
        scars = load_npz(Path(args.scars_dir) / f"{variant}.npz")
        labels.append(f"{variant}: " + ", ".join(f"{k} {r} {d:+.1f}mm" for k, r, d in zip(
            scars["scar_kind"], scars["scar_region"], scars["scar_depth_mm"])))
    save_png(args.out, contact_sheet(rows, labels))


def cmd_watertight(args) -> None:
    from .files import load_mesh, save_json, save_mesh
    from .watertight import WatertightSettings, make_watertight

    mesh = load_mesh(args.mesh)
    v, f, report = make_watertight(np.asarray(mesh.vertices), np.asarray(mesh.faces),
                                   WatertightSettings(back_offset_mm=args.back_offset_mm), name=args.mesh)
    if args.report:
        save_json(args.report, report)
    save_mesh(args.out, v, f)


def cmd_filling(args) -> None:
    from .filling import FillingSettings, cover_solid
    from .files import load_mesh, save_json, save_mesh

    injured, healthy = load_mesh(args.injured), load_mesh(args.healthy)
    v, f, report = cover_solid(np.asarray(injured.vertices), np.asarray(injured.faces), np.asarray(healthy.vertices),
                               np.asarray(healthy.faces), _settings(FillingSettings, args.settings), name=args.injured)
    report.update(injured=args.injured, healthy=args.healthy)
    if args.report:
        save_json(args.report, report)
    save_mesh(args.out, v, f)


def cmd_print(args) -> None:
    import dataclasses
    import json

    import trimesh

    from .files import atomic_paths, load_mesh, save_json
    from .printing import PrinterSettings, check_printable, place_on_bed, slice_with_prusaslicer, slicer_profile
    from .watertight import make_watertight

    printer = _settings(PrinterSettings, args.printer)
    cover = load_mesh(args.filling)
    cover_f = np.asarray(cover.faces)
    cover_v = place_on_bed(np.asarray(cover.vertices), cover_f, printer)
    checks = check_printable(cover_v, cover_f, printer, args.min_thickness_mm, name=f"{args.filling} (cover)")
    injured = load_mesh(args.injured)
    face_v, face_f, _ = make_watertight(np.asarray(injured.vertices), np.asarray(injured.faces), name=args.injured)
    face_v = place_on_bed(face_v, face_f, printer)
    face_checks = check_printable(face_v, face_f, printer, 0.0, name=f"{args.injured} (fit-test face)")
    mesh = trimesh.Trimesh(cover_v, cover_f, process=False)
    report = {"cover": {"stl": args.out_stl, "volume_mm3": float(mesh.volume),
                        "bounding_box_mm": mesh.bounds.round(3).tolist(), "checks": checks},
              "face": {"stl": args.out_face_stl, "checks": face_checks},
              "printer": dataclasses.asdict(printer)}
    outputs = [args.out_stl, args.out_face_stl, args.out_ini] + ([args.out_gcode] if args.out_gcode else [])
    with atomic_paths(*outputs) as tmp:  # all files appear together, or none
        mesh.export(tmp[0], file_type="stl")
        trimesh.Trimesh(face_v, face_f, process=False).export(tmp[1], file_type="stl")
        tmp[2].write_text(slicer_profile(printer))
        if args.out_gcode:
            estimates = slice_with_prusaslicer(tmp[0].resolve(), tmp[2].resolve(), tmp[3].resolve())
            report["gcode"] = {"file": args.out_gcode, **estimates}
    save_json(args.out_json, report)
    print(json.dumps({"volume_mm3": round(report["cover"]["volume_mm3"], 1), "size_mm": checks["size_mm"],
                      **report.get("gcode", {})}), file=sys.stderr)


def cmd_preview(args) -> None:
    from .files import load_mesh
    from .render import DEFAULT_LIGHTS, Scene, frontal_camera, save_png

    face, cover = load_mesh(args.injured), load_mesh(args.filling)
    v = np.r_[np.asarray(face.vertices), np.asarray(cover.vertices)]
    f = np.r_[np.asarray(face.faces), np.asarray(cover.faces) + len(face.vertices)]
    colors = np.r_[np.tile([0.85, 0.85, 0.85], (len(face.faces), 1)), np.tile([0.95, 0.55, 0.15], (len(cover.faces), 1))]
    scene = Scene(v, f)
    center = np.asarray(face.vertices).mean(axis=0)
    images = [scene.render(frontal_camera(center, 230.0, args.size, yaw_deg=yaw), DEFAULT_LIGHTS, face_colors=colors)
              for yaw in (0.0, 35.0, -35.0)]
    save_png(args.out, np.hstack(images).astype(np.uint8))


def cmd_summary(args) -> None:
    from .files import atomic_path
    from .summary import covers_table, encoder_figure, encoder_table, registration_figure, registration_table

    if args.kind == "encoder":
        if not args.encoder_report:
            raise FacecoverError("--kind encoder needs --encoder-report (the encoder stage's JSON)")
        table = encoder_table(args.encoder_report, args.reports)
    else:
        table = registration_table(args.reports) if args.kind == "registration" else covers_table(args.reports)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    if args.figure:
        (encoder_figure(args.encoder_report, args.figure) if args.kind == "encoder"
         else registration_figure(table, args.figure))


def _add_view_args(p) -> None:
    p.add_argument("--settings", help="JSON object of view settings (config 'render' block: views, size, "
                                      "field_mm, max_yaw_deg, max_pitch_deg, max_roll_deg)")
    p.add_argument("--seed", type=int, required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecover", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("template", help="template in mm, landmarks, regions and the face shape space")
    p.add_argument("--lb-modes", type=int, default=40)
    p.add_argument("--detail-modes", type=int, default=60)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_template)

    p = sub.add_parser("pool", help="the pool of clean synthetic identities")
    p.add_argument("--space", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_pool)

    p = sub.add_parser("synth-scan", help="one synthetic cohort subject: raw scan + true vertices")
    p.add_argument("--space", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--settings", help="JSON object of scan settings (config 'scans' block without source/dir/units)")
    p.add_argument("--units", choices=("mm", "m"), default="mm", help="units to write the scan in")
    p.add_argument("--out-scan", required=True)
    p.add_argument("--out-truth", required=True)
    p.set_defaults(func=cmd_synth_scan)

    p = sub.add_parser("ingest", help="clean a raw scan and register the template to it")
    p.add_argument("--space", required=True)
    p.add_argument("--scan", required=True)
    p.add_argument("--units", choices=("mm", "m", "auto"), default="mm")
    p.add_argument("--settings", help="JSON object of registration settings (config 'registration' block)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", help="true vertices (.npz) to report vertex errors against (synthetic data only)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("split", help="train/val/test split by subject")
    p.add_argument("--subjects", nargs="+", required=True)
    p.add_argument("--ratios", type=float, nargs=3, default=(0.6, 0.2, 0.2))
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("scars", help="simulate wound variants on a registered face")
    p.add_argument("--space", required=True)
    p.add_argument("--registered", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--variants", nargs="+", required=True)
    p.add_argument("--settings", help="JSON object of scar settings (config 'scars' block)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_scars)

    p = sub.add_parser("render", help="render every injured variant of a subject")
    p.add_argument("--space", required=True)
    p.add_argument("--scars-dir", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--variants", nargs="+", required=True)
    _add_view_args(p)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("render-pool", help="render the clean pool identities")
    p.add_argument("--space", required=True)
    p.add_argument("--pool", required=True)
    _add_view_args(p)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_render_pool)

    p = sub.add_parser("encoder", help="the frozen ArcFace identity encoder: check a given ONNX or train one")
    p.add_argument("--model", help="an insightface ArcFace ONNX file to use as is")
    p.add_argument("--renders-dir", help="pool renders ({identity}_{view}.png + .json) to train on")
    p.add_argument("--settings", help="JSON object of training settings (config 'arcface' block without 'model')")
    p.add_argument("--augment", help="JSON object of augmentation settings (config 'embed' block)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (torch device for training)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--report", required=True, help="JSON with the training history and held-out verification")
    p.set_defaults(func=cmd_encoder)

    p = sub.add_parser("embed", help="cache ArcFace embeddings of a folder of renders (clean + augmented)")
    p.add_argument("--encoder", required=True)
    p.add_argument("--renders-dir", required=True)
    p.add_argument("--stems", nargs="+", help="renders to embed ({stem}.png); default: all in the folder")
    p.add_argument("--augmentations", type=int, default=4, help="augmented views per render")
    p.add_argument("--augment", help="JSON object of augmentation settings (config 'embed' block)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (onnxruntime provider)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("watertight", help="remove eyeballs/stray parts, fill holes, close into a solid")
    p.add_argument("--mesh", required=True)
    p.add_argument("--back-offset-mm", type=float, default=10.0)
    p.add_argument("--out", required=True)
    p.add_argument("--report")
    p.set_defaults(func=cmd_watertight)

    p = sub.add_parser("filling", help="the cover solid between injured skin and healthy face")
    p.add_argument("--injured", required=True)
    p.add_argument("--healthy", required=True)
    p.add_argument("--settings", help="JSON object of filling settings (config 'filling' block)")
    p.add_argument("--out", required=True)
    p.add_argument("--report")
    p.set_defaults(func=cmd_filling)

    p = sub.add_parser("print", help="checked STL on the build plate, slicer profile, report, G-code")
    p.add_argument("--filling", required=True)
    p.add_argument("--injured", required=True)
    p.add_argument("--printer", help="JSON object of printer settings (config 'printer' block)")
    p.add_argument("--min-thickness-mm", type=float, default=1.0)
    p.add_argument("--out-stl", required=True)
    p.add_argument("--out-face-stl", required=True)
    p.add_argument("--out-ini", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-gcode", help="slice with PrusaSlicer into this file")
    p.set_defaults(func=cmd_print)

    p = sub.add_parser("preview", help="PNG of the cover on the injured face")
    p.add_argument("--injured", required=True)
    p.add_argument("--filling", required=True)
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("summary", help="table (and figure) over all subjects for the report")
    p.add_argument("--kind", choices=("registration", "covers", "encoder"), required=True)
    p.add_argument("--reports", nargs="+", required=True,
                   help="per-subject .json reports (encoder: the subjects' embedding caches, .npz)")
    p.add_argument("--encoder-report", help="encoder only: the encoder stage's .json")
    p.add_argument("--out", required=True, help=".csv table")
    p.add_argument("--figure", help="registration: .png bar chart; encoder: .png training curves")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("contact-sheet", help="one PNG with every variant and view of a subject")
    p.add_argument("--renders-dir", required=True)
    p.add_argument("--scars-dir", required=True)
    p.add_argument("--variants", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_contact_sheet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FacecoverError as exc:
        print(f"facecover {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
