"""`facecover` subcommands of the learning stages: decoder, base model, SwAV, fine-tuning, evaluation
(rules in workflow/rules/learn.smk). They read embedding caches, never the encoder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .. import FacecoverError
from . import load_space, settings_from_json

BASELINES = ("mean", "injured", "completion", "meanface+fit")
FIT_SUFFIX = "+fit"


def _torch_setup(args):
    """The torch device of `--device` and `--threads` CPU threads (deterministic on the CPU)."""
    import torch

    from ..device import select_device

    torch.set_num_threads(max(1, args.threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    return select_device(args.device)


def _region_weights(space: dict, text: str | None) -> np.ndarray:
    from ..learn.data import region_vertex_weights

    try:
        weights = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise FacecoverError(f"--region-weights is not valid JSON: {exc}") from None
    return region_vertex_weights(space["regions"], space["region_names"], weights)


def _write_log(path: str, rows: list[dict]) -> None:
    import pandas as pd

    from ..files import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(rows).round(6).to_csv(tmp, index=False)


def _healthy(registered_dir: str, subjects: list[str], n_vertices: int) -> dict[str, np.ndarray]:
    """Healthy registered meshes {subject: (N, 3) mm} (what a real user has; never the synthetic truth)."""
    from ..files import load_mesh_arrays

    out = {}
    for s in subjects:
        path = Path(registered_dir) / f"{s}.ply"
        v = load_mesh_arrays(path)[0]
        if len(v) != n_vertices:
            raise FacecoverError(f"{path}: {len(v)} vertices; a registered mesh has the template's {n_vertices}")
        out[s] = v
    return out


def _caches(embeddings_dir: str, subjects: list[str]) -> dict[str, dict]:
    from ..learn.data import load_embeddings

    return {s: load_embeddings(Path(embeddings_dir) / f"{s}.npz") for s in subjects}


def cmd_decoder(args) -> None:
    from ..files import load_npz, save_json, save_npz
    from ..learn.decoder import check_decoder, load_decoder, pca_decoder

    space = load_space(args.space)
    n = len(space["vertices"])
    if args.model:
        decoder = load_decoder(args.model, n)
        report = {"source": str(Path(args.model).resolve()), "components": int(len(decoder["basis"]))}
        arrays = {"mean": decoder["mean"], "basis": decoder["basis"]}
    else:
        pool = load_npz(args.pool)
        decoder = pca_decoder(pool["vertices"], args.components)
        check_decoder(decoder["mean"], decoder["basis"], n, args.pool)
        arrays = decoder
        report = {"source": "pca", "pool": str(args.pool), "identities": int(len(pool["vertices"])),
                  "components": int(len(decoder["basis"])),
                  "explained_variance": float(decoder["explained_variance_ratio"].sum()),
                  "explained_variance_ratio": decoder["explained_variance_ratio"].round(6).tolist(),
                  "std_mm": decoder["std_mm"].round(4).tolist()}
    save_json(args.report, report)
    save_npz(args.out, **arrays)


def cmd_base(args) -> None:
    import dataclasses

    from ..files import load_npz
    from ..learn.data import load_embeddings
    from ..learn.decoder import load_decoder
    from ..learn.network import save_checkpoint
    from ..learn.train import TrainSettings, base_model

    device = _torch_setup(args)
    space = load_space(args.space)
    decoder = load_decoder(args.decoder, len(space["vertices"]))
    pool = load_npz(args.pool)
    values = json.loads(args.settings) if args.settings else {}
    val_fraction = float(values.pop("val_fraction", 0.1))
    settings = settings_from_json(TrainSettings, json.dumps(values))
    net, report = base_model(decoder, pool["vertices"], pool["names"], load_embeddings(args.embeddings),
                             _region_weights(space, args.region_weights), settings, val_fraction, args.seed, device)
    history = report.pop("history")
    _write_log(args.log, history)
    save_checkpoint(args.out, net.state_dict(), kind="mapping", experiment="base",
                    n_coefficients=int(len(decoder["basis"])), settings=dataclasses.asdict(settings),
                    **{k: v for k, v in report.items() if not isinstance(v, list)})
    print(f"base model: kept epoch {report['best_epoch']}, validation loss {history[report['best_epoch']]['val_loss_mm']:.3f} mm "
          f"(ridge start {report['ridge_val_loss_mm']:.3f} mm), {report['seconds']:.0f} s", file=sys.stderr)


def cmd_swav(args) -> None:
    import dataclasses

    from ..learn.data import all_views, fraction_of_subjects, read_split, subjects_in
    from ..learn.network import load_mapping, save_checkpoint
    from ..learn.swav import SwavSettings, pretrain_trunk

    device = _torch_setup(args)
    settings = settings_from_json(SwavSettings, args.settings)
    split = read_split(args.split)
    subjects = fraction_of_subjects(subjects_in(split, "train", args.split), args.fraction, args.seed)
    caches = _caches(args.embeddings_dir, subjects)
    views = np.concatenate([all_views(caches[s]) for s in subjects])
    base, _ = load_mapping(args.base)
    model, history = pretrain_trunk(base, views, settings, args.seed, device, desc=f"swav {args.fraction:g}")
    _write_log(args.log, history)
    save_checkpoint(args.out, {"trunk": model.trunk.state_dict(), "projection": model.projection.state_dict(),
                               "prototypes": model.prototypes.state_dict()}, kind="swav",
                    fraction=float(args.fraction), subjects=subjects, renders=int(len(views)),
                    settings=dataclasses.asdict(settings))
    last = history[-1]
    print(f"swav {args.fraction:g}: {len(subjects)} subjects, {len(views)} renders; loss {history[0]['loss']:.3f} -> "
          f"{last['loss']:.3f} (ln K = {last['log_prototypes']:.3f}), {last['prototypes_used']} prototypes used",
          file=sys.stderr)


def cmd_finetune(args) -> None:
    import dataclasses

    from ..files import load_npz
    from ..learn.data import load_embeddings, pool_samples, read_split, subjects_in
    from ..learn.decoder import load_decoder
    from ..learn.network import load_checkpoint, load_mapping, save_checkpoint
    from ..learn.train import TrainSettings, finetune_model, fit_head

    device = _torch_setup(args)
    space = load_space(args.space)
    decoder = load_decoder(args.decoder, len(space["vertices"]))
    weights = _region_weights(space, args.region_weights)
    settings = settings_from_json(TrainSettings, args.settings)
    split = read_split(args.split)
    train, val = subjects_in(split, "train", args.split), subjects_in(split, "val", args.split)
    subjects_in(split, "test", args.split)  # a split without test subjects cannot be evaluated: say so now
    net, _ = load_mapping(args.base, len(decoder["basis"]))
    probe = None
    if args.swav:  # the SwAV-pretrained trunk, and a head refitted to its features on the pool (linear probe)
        swav = load_checkpoint(args.swav, "swav")
        try:
            net.trunk.load_state_dict(swav["state"]["trunk"])
        except (RuntimeError, KeyError, TypeError) as exc:
            raise FacecoverError(f"{args.swav}: SwAV trunk does not fit the base model ({str(exc)[:200]})") from None
        if not (args.pool and args.pool_embeddings):
            raise FacecoverError("finetune --swav needs --pool and --pool-embeddings (the head is refitted on the pool)")
        pool = load_npz(args.pool)
        X, y = pool_samples(load_embeddings(args.pool_embeddings), pool["names"])
        held_out = (np.arange(len(pool["names"])) % 10 == 0)[y]
        probe = fit_head(net, decoder, weights, (X[~held_out], y[~held_out], pool["vertices"]),
                         (X[held_out], y[held_out], pool["vertices"]))
    caches = _caches(args.embeddings_dir, train + val)
    healthy = _healthy(args.registered_dir, train + val, len(space["vertices"]))
    net, report = finetune_model(net, decoder, caches, train, val, healthy, weights, settings, args.seed, device,
                                 desc=f"fine-tune {args.experiment}")
    history = report.pop("history")
    _write_log(args.log, history)
    save_checkpoint(args.out, net.state_dict(), kind="mapping", experiment=args.experiment,
                    n_coefficients=int(len(decoder["basis"])), settings=dataclasses.asdict(settings),
                    trunk=str(args.swav or args.base), head_probe_alpha=float(probe["alpha"]) if probe else -1.0,
                    **{k: v for k, v in report.items() if not isinstance(v, list)},
                    subjects_train=report["subjects_train"], subjects_val=report["subjects_val"])
    print(f"fine-tune {args.experiment}: kept epoch {report['best_epoch']} of {settings.epochs}, validation loss "
          f"{history[report['best_epoch']]['val_loss_mm']:.3f} mm (start {history[0]['val_loss_mm']:.3f})",
          file=sys.stderr)


def _scars(scars_dir: str, subject: str, variants: list[str], n_vertices: int) -> dict[str, dict]:
    from ..files import load_mesh_arrays, load_npz

    out = {}
    for v in variants:
        folder = Path(scars_dir) / subject
        injured = load_mesh_arrays(folder / f"{v}.ply")[0]
        mask = load_npz(folder / f"{v}.npz")["mask"].astype(bool)
        if len(injured) != n_vertices or len(mask) != n_vertices:
            raise FacecoverError(f"{folder}/{v}: injured mesh and mask must have the template's {n_vertices} vertices")
        out[v] = {"injured": injured, "mask": mask}
    return out


def _completion(decoder, injured, wound, prior_weight, faces) -> np.ndarray:
    """Shape-model completion told the true wound (N,) bool: the decoder fitted outside it, then blended into
    the skin as the fit's healthy face is (`blend_into_skin`), so the two compare like for like (mm)."""
    from ..learn.evaluate import shape_completion
    from ..learn.infer import blend_into_skin, mesh_operators

    fitted = shape_completion(decoder, injured, (~wound).astype(float), prior_weight)[0]
    return blend_into_skin(fitted, injured, wound, mesh_operators(injured, faces)["bilaplacian"])


def _completion_prior(decoder, cases, faces, grid=(0.01, 0.1, 1.0, 10.0, 100.0)) -> float:
    """The prior weight λ (mm²) of shape-model completion (`_completion`) with the lowest wound MAE on
    validation cases (healthy (N, 3), injured (N, 3), wound mask (N,))."""
    from ..learn.evaluate import align_outside_wound

    scores = []
    for lam in grid:
        err = []
        for healthy, injured, wound in cases:
            v = _completion(decoder, injured, wound, lam, faces)
            err.append(np.linalg.norm(align_outside_wound(v, injured, wound) - healthy, axis=1)[wound].mean())
        scores.append(np.mean(err))
    return float(grid[int(np.argmin(scores))])


def _fit_settings(text: str | None):
    from ..learn.infer import FitSettings

    return settings_from_json(FitSettings, text)


def cmd_fit_noise(args) -> None:
    """The fit's per-vertex noise on healthy faces: the training subjects' registered scans (real anatomy,
    the scanner's and the registration's noise included: what a patient's scan carries) or, without them,
    the pool's exact faces."""
    from ..files import load_mesh_arrays, load_npz, save_npz
    from ..learn.decoder import load_decoder
    from ..learn.infer import fit_noise, fit_nuisance

    space = load_space(args.space)
    decoder = load_decoder(args.decoder, len(space["vertices"]))
    if args.registered:
        faces = np.stack([load_mesh_arrays(p)[0] for p in args.registered])
        names = np.array([Path(p).stem for p in args.registered])
        what = "registered healthy training scans"
    else:
        pool = load_npz(args.pool)
        rng = np.random.default_rng([int(args.seed), 2])
        chosen = np.sort(rng.choice(len(pool["vertices"]), min(args.faces, len(pool["vertices"])), replace=False))
        faces, names, what = pool["vertices"][chosen].astype(np.float64), pool["names"][chosen], "healthy pool faces"
    settings = _fit_settings(args.settings)
    noise = fit_noise(decoder, space["faces"], faces, settings, fit_nuisance(space, settings))
    save_npz(args.out, noise_mm=noise, faces_used=names)
    print(f"fit noise on {len(faces)} {what}: median {np.median(noise):.3f} mm, "
          f"95th percentile {np.percentile(noise, 95):.3f} mm", file=sys.stderr)


def cmd_evaluate(args) -> None:
    """Methods: a fine-tuned experiment (--checkpoint; image only, every test image), the same followed by
    the fit to the injured scan ('<experiment>+fit'; each variant's frontal image), and the baselines:
    'mean' (the mean face), 'injured' (the injured face itself), 'completion' (shape-model completion
    outside the true wound, blended into the skin as the fit is; no image), 'meanface+fit' (the fit with the mean face as prior, no image)."""
    import pandas as pd

    from ..files import atomic_path, load_npz
    from ..learn.data import load_embeddings, read_split, subjects_in
    from ..learn.decoder import decode, load_decoder
    from ..learn.evaluate import FRONTAL_VIEW, region_masks, score_subject
    from ..learn.infer import fit_healthy_face, fit_nuisance, mesh_operators
    from ..learn.network import load_mapping
    from ..learn.train import predict_coefficients

    space = load_space(args.space)
    n = len(space["vertices"])
    decoder = load_decoder(args.decoder, n)
    split = read_split(args.split)
    test = subjects_in(split, args.set, args.split)  # "val": what settings and experiments are chosen on
    masks = region_masks(space["regions"], space["region_names"])
    method = args.method
    with_fit = method.endswith(FIT_SUFFIX)
    net = None
    if method not in BASELINES:
        if not args.checkpoint:
            raise FacecoverError(f"evaluate: method '{method}' needs --checkpoint (baselines: {', '.join(BASELINES)})")
        net, _ = load_mapping(args.checkpoint, len(decoder["basis"]))
    noise = None
    if with_fit:
        if not args.fit_noise:
            raise FacecoverError(f"evaluate: method '{method}' needs --fit-noise (the fit's noise on healthy faces)")
        noise = load_npz(args.fit_noise)["noise_mm"]
        fit_settings = _fit_settings(args.fit_settings)
        nuisance = fit_nuisance(space, fit_settings)
    prior = None
    if method == "completion":  # its prior weight is chosen on the validation subjects, like the epochs
        cases = []
        for s in subjects_in(split, "val", args.split):
            healthy = _healthy(args.registered_dir, [s], n)[s]
            stems = load_embeddings(Path(args.embeddings_dir) / f"{s}.npz")["stem"]
            for sc in _scars(args.scars_dir, s, sorted({x.rsplit("_", 1)[0] for x in stems}), n).values():
                cases.append((healthy, sc["injured"], sc["mask"]))
        prior = _completion_prior(decoder, cases, space["faces"])
    rows = []
    for s in test:
        cache = load_embeddings(Path(args.embeddings_dir) / f"{s}.npz")
        stems = [str(x) for x in cache["stem"]]
        scars = _scars(args.scars_dir, s, sorted({x.rsplit("_", 1)[0] for x in stems}), n)
        healthy = _healthy(args.registered_dir, [s], n)[s]
        truth = None
        if args.truth_dir and (Path(args.truth_dir) / f"{s}.npz").exists():
            truth = load_npz(Path(args.truth_dir) / f"{s}.npz")["vertices"]
        if with_fit:  # one image per variant: its frontal view, as a print would use
            frontal = [i for i, x in enumerate(stems) if x.rsplit("_", 1)[1] == FRONTAL_VIEW]
            z = predict_coefficients(net, cache["clean"][frontal]) if net is not None else [None] * len(frontal)
            stems = [stems[i] for i in frontal]
            recon = []
            for x, zi in zip(stems, z):  # the mesh operators of the injured mesh, as inference builds them
                injured = scars[x.rsplit("_", 1)[0]]["injured"]
                recon.append(fit_healthy_face(decoder, injured, space["faces"], zi, noise, fit_settings,
                                              operators=mesh_operators(injured, space["faces"]),
                                              nuisance=nuisance, openings=space.get("openings"),
                                              name=f"{s}/{x}")["healthy"])
        elif net is not None:
            recon = list(decode(decoder, predict_coefficients(net, cache["clean"])))
        else:
            per_variant = {}
            for v, sc in scars.items():
                if method == "mean":
                    per_variant[v] = decoder["mean"]
                elif method == "injured":
                    per_variant[v] = sc["injured"]
                else:
                    per_variant[v] = _completion(decoder, sc["injured"], sc["mask"], prior, space["faces"])
            recon = [per_variant[x.rsplit("_", 1)[0]] for x in stems]
        rows += score_subject(s, list(zip(stems, recon)), healthy, space["faces"], scars, masks, args.threshold_mm,
                              truth)
    table = pd.DataFrame(rows)
    table.insert(0, "method", method)
    if prior is not None:
        table["completion_prior_mm2"] = prior
    with atomic_path(args.out) as tmp:
        table.round(5).to_csv(tmp, index=False)
    print(f"{method}: face MAE {table.face_mae_mm.mean():.3f} mm, wound MAE {table.wound_mae_mm.mean():.3f} mm "
          f"over {len(table)} test images", file=sys.stderr)


def cmd_table(args) -> None:
    import pandas as pd

    from ..files import atomic_path
    from ..learn.evaluate import metrics_table

    per_method = {}
    for path in args.results:
        try:
            t = pd.read_csv(path)
        except Exception as exc:
            raise FacecoverError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
        if t.empty or "method" not in t:
            raise FacecoverError(f"{path}: not a per-image evaluation table")
        per_method[str(t["method"].iloc[0])] = t
    table = metrics_table(per_method)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)


def _learning_args(p, log: bool = True) -> None:
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (torch device)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", required=True, help="checkpoint (.pt) to write")
    if log:
        p.add_argument("--log", required=True, help="loss per epoch (.csv)")


def register(sub) -> None:
    p = sub.add_parser("decoder", help="the linear geometry decoder: PCA of the pool's meshes, or a user file")
    p.add_argument("--space", required=True)
    p.add_argument("--pool", help="pool identities (.npz) for the PCA")
    p.add_argument("--components", type=int, default=60)
    p.add_argument("--model", help="a user decoder .npz (mean (N, 3), basis (K, N, 3), mm) to use instead")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.set_defaults(func=cmd_decoder)

    p = sub.add_parser("base", help="the base model: mapping network trained on the pool")
    p.add_argument("--space", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--pool", required=True, help="pool identities (.npz): the true meshes")
    p.add_argument("--embeddings", required=True, help="the pool's embedding cache (.npz)")
    p.add_argument("--settings", help="JSON object of the config 'base' block")
    p.add_argument("--region-weights", help="JSON object {region: loss weight}")
    _learning_args(p)
    p.set_defaults(func=cmd_base)

    p = sub.add_parser("swav", help="SwAV pretraining of the mapping network's trunk on injured renders")
    p.add_argument("--base", required=True, help="base model checkpoint (its trunk is the start)")
    p.add_argument("--split", required=True)
    p.add_argument("--embeddings-dir", required=True)
    p.add_argument("--fraction", type=float, required=True, help="share of the training subjects, (0, 1]")
    p.add_argument("--settings", help="JSON object of the config 'swav' block (without fractions)")
    _learning_args(p)
    p.set_defaults(func=cmd_swav)

    p = sub.add_parser("finetune", help="supervised fine-tuning on the cohort's injured renders")
    p.add_argument("--experiment", required=True, help="name (nossl, ssl20, ...)")
    p.add_argument("--space", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--swav", help="SwAV checkpoint whose trunk replaces the base model's")
    p.add_argument("--pool", help="with --swav: pool identities (.npz) to refit the head on")
    p.add_argument("--pool-embeddings", help="with --swav: the pool's embedding cache")
    p.add_argument("--split", required=True)
    p.add_argument("--embeddings-dir", required=True)
    p.add_argument("--registered-dir", required=True, help="healthy registered meshes {subject}.ply (targets)")
    p.add_argument("--settings", help="JSON object of the config 'finetune' block")
    p.add_argument("--region-weights", help="JSON object {region: loss weight}")
    _learning_args(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("evaluate", help="score a model or a baseline on the test subjects' injured renders")
    p.add_argument("--method", required=True, help=f"experiment name (with --checkpoint) or {', '.join(BASELINES)}")
    p.add_argument("--checkpoint")
    p.add_argument("--space", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--set", choices=("test", "val"), default="test",
                   help="which subjects to score: test (the table) or val (what infer's experiment: auto chooses on)")
    p.add_argument("--embeddings-dir", required=True)
    p.add_argument("--registered-dir", required=True)
    p.add_argument("--scars-dir", required=True)
    p.add_argument("--truth-dir", help="true meshes {subject}.npz (synthetic cohort), scored as well")
    p.add_argument("--threshold-mm", type=float, default=0.1, help="predicted wound: |reconstruction - injured| above")
    p.add_argument("--fit-noise", help="'+fit' methods: the fit's per-vertex noise (.npz from fit-noise)")
    p.add_argument("--fit-settings", help="'+fit' methods: JSON object of the config 'fit' block")
    p.add_argument("--out", required=True, help="per-image metrics (.csv)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("fit-noise", help="per-vertex noise of the healthy-face fit on healthy faces (registered scans or the pool)")
    p.add_argument("--space", required=True)
    p.add_argument("--decoder", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--registered", nargs="+", help="healthy registered scans (.ply, template topology)")
    src.add_argument("--pool", help="the pool's identities (.npz)")
    p.add_argument("--faces", type=int, default=30, help="with --pool: how many pool faces to measure on")
    p.add_argument("--settings", help="JSON object of the config 'fit' block")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fit_noise)

    p = sub.add_parser("table", help="the comparison table from the per-method evaluations")
    p.add_argument("--results", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_table)
