"""Benchmark: the learned image -> face model on subjects the run never saw, two ways.

The default run's test subjects come from the same shape space as the pool its decoder and base model
learnt from, so `results/metrics/table.csv` alone measures the method on its own generator's faces. Here
two held-out sets of healthy faces go through the same scar simulation, rendering, embedding (the run's
encoder) and evaluation (`facecover evaluate`, the run's checkpoints) as the cohort's test subjects:

* **in-space** — new people drawn from the cohort's generator (shape space plus individual detail);
* **warped** — faces made another way (`facecover.heldout.warped_faces`): the template under random smooth
  3-D warps at two scales and independent width/height/depth stretches, matched to the in-space set's
  spread (their mean-face error is about the same) but mostly outside the decoder's span.

The healthy meshes are the true faces (no scan, no registration), in both sets alike. Printed per set:
how far the faces lie from the decoder's span (the floor of any decoder-based row), how well the encoder
tells the set's people apart (verification over their test renders), and every method's
face MAE, wound MAE and mean wound IoU, beside the run's own table. A final table gives, for each
set, the image-only row against the injured face and shape-model completion.

    .venv/bin/python bench/learning_heldout.py [--faces 12] [--val 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facecover.cohort import population
from facecover.encoder import verification_figures
from facecover.files import load_npz, save_mesh
from facecover.heldout import warped_faces
from facecover.learn.decoder import coefficients_of, decode, load_decoder
from facecover.learn.evaluate import region_masks
from facecover.meshtools import rigid_transform
from stages import run, settings

R = Path("results")
BASELINES = ("mean", "injured", "completion", "meanface+fit")
IOU = ("iou_forehead", "iou_nose", "iou_cheeks", "iou_mouth", "iou_chin", "iou_eyes")


def span_error(decoder: dict, faces: np.ndarray, face_mask: np.ndarray) -> tuple[float, float]:
    """Mean facial-vertex distance (mm) of the decoder's mean face and of each face's own least-squares
    decoding to the face, after a rigid fit over the facial vertices: (mean face, decoder span)."""
    def err(a, b):
        R_, t = rigid_transform(a, b, face_mask.astype(float))
        return np.linalg.norm(a @ R_.T + t - b, axis=1)[face_mask].mean()

    mean = [err(decoder["mean"], f) for f in faces]
    span = [err(decode(decoder, coefficients_of(decoder, f)), f) for f in faces]
    return float(np.mean(mean)), float(np.mean(span))


def make_subjects(root: Path, faces: np.ndarray, prefix: str, n_val: int, config: dict, space: dict,
                  space_path: Path) -> None:
    """Healthy meshes, split, scars, renders and embedding caches of held-out subjects, as the workflow
    writes them for the cohort (results/registered, splits.csv, scars/, renders/, embeddings/)."""
    from tqdm import tqdm

    names = [f"{prefix}{i + 1:02d}" for i in range(len(faces))]
    variants = [f"{i:02d}" for i in range(config["scars"]["variants_per_subject"])]
    stems = [f"{v}_{k}" for v in variants for k in range(config["render"]["views"])]
    pd.DataFrame({"subject": names, "set": ["val" if i < n_val else "test" for i in range(len(names))]}).to_csv(
        root / "splits.csv", index=False)
    for name, v in tqdm(list(zip(names, faces)), desc=f"{prefix} subjects", disable=None):
        save_mesh(root / f"registered/{name}.ply", v, space["faces"])
        run("scars", "--space", space_path, "--registered", root / f"registered/{name}.ply", "--subject", name,
            "--seed", config["seed"], "--variants", *variants,
            "--settings", settings(config, "scars", "variants_per_subject"), "--out-dir", root / f"scars/{name}")
        run("render", "--space", space_path, "--scars-dir", root / f"scars/{name}", "--subject", name,
            "--variants", *variants, "--settings", settings(config, "render"), "--seed", config["seed"],
            "--out-dir", root / f"renders/{name}")
        run("embed", "--encoder", R / "encoder/arcface.onnx", "--renders-dir", root / f"renders/{name}",
            "--stems", *stems, "--augmentations", config["embed"]["augmentations"],
            "--augment", settings(config, "embed", "augmentations"), "--seed", config["seed"], "--device", "cpu",
            "--out", root / f"embeddings/{name}.npz")


def evaluate(root: Path, methods: list[str], config: dict) -> pd.DataFrame:
    """`facecover evaluate` of every method on the held-out test subjects, then `facecover table`."""
    common = ["--space", R / "model/face_space.npz", "--decoder", R / "model/decoder.npz",
              "--split", root / "splits.csv", "--embeddings-dir", root / "embeddings",
              "--registered-dir", root / "registered", "--scars-dir", root / "scars",
              "--threshold-mm", config["evaluate"]["wound_threshold_mm"]]
    fit = ["--fit-noise", R / "model/fit_noise.npz", "--fit-settings", settings(config, "fit")]
    outs = []
    for method in methods:
        experiment = method.removesuffix("+fit")
        args = ["evaluate", "--method", method, *common, "--out", root / f"metrics/{method}_test.csv"]
        if method not in BASELINES:
            args += ["--checkpoint", R / f"checkpoints/recon_{experiment}.pt"]
        if method.endswith("+fit"):
            args += fit
        run(*args)
        outs.append(root / f"metrics/{method}_test.csv")
    run("table", "--results", *outs, "--out", root / "metrics/table.csv")
    return pd.read_csv(root / "metrics/table.csv")


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Face and wound MAE (mm) and the mean of the six regions' wound IoU, per method (a `table.csv`)."""
    out = table[["method", "images", "face_mae_mm", "wound_mae_mm"]].copy()
    out["iou_mean"] = table[list(IOU)].mean(axis=1)
    return out.set_index("method")


def encoder_figures(root: Path) -> dict:
    """The run's encoder on a set's test renders (clean crops; each person seen injured in several ways and
    from several views): verification over all pairs, as `results/encoder/arcface.json` reports it."""
    from facecover.learn.data import load_embeddings, read_split, subjects_in

    test = subjects_in(read_split(root / "splits.csv"), "test")
    caches = [load_embeddings(root / f"embeddings/{s}.npz")["clean"] for s in test]
    return verification_figures(np.concatenate(caches), np.repeat(np.arange(len(test)), [len(c) for c in caches]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=12, help="held-out people per set (the first --val choose the "
                                                          "completion baseline's prior, the rest are scored)")
    ap.add_argument("--val", type=int, default=3)
    ap.add_argument("--keep", help="write the held-out subjects and their metrics here instead of a temp folder")
    args = ap.parse_args()
    if not (R / "metrics/table.csv").exists():
        raise SystemExit("bench/learning_heldout.py reads the default run's results: run `make run` first")
    if not 0 < args.val <= args.faces - 2:
        raise SystemExit("--val must be at least 1, and leave at least 2 of --faces to score")
    config = yaml.safe_load(Path("config.yaml").read_text())
    space_path = R / "model/face_space.npz"
    space = load_npz(space_path)
    decoder = load_decoder(R / "model/decoder.npz", len(space["vertices"]))
    face_mask = region_masks(space["regions"], space["region_names"])["face"]
    experiments = [m for m in pd.read_csv(R / "metrics/table.csv")["method"] if m not in BASELINES]
    sets = {"in-space": population(space, config["seed"], "heldout", args.faces, with_detail=True),
            "warped": warped_faces(space, args.faces, config["seed"])}
    own = summary(pd.read_csv(R / "metrics/table.csv"))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="facecover-heldout-"))
    tables = {}
    try:
        for name, faces in sets.items():
            root = work / name
            if root.exists():
                shutil.rmtree(root)
            (root / "metrics").mkdir(parents=True)
            t0 = time.perf_counter()
            make_subjects(root, faces, name.replace("-", ""), args.val, config, space, space_path)
            tables[name] = summary(evaluate(root, [*experiments, *BASELINES], config))
            mean_err, span_err = span_error(decoder, faces[args.val:], face_mask)
            enc = encoder_figures(root)
            print(f"\n{name}: {args.faces - args.val} test people ({args.val} val), made, scored in "
                  f"{time.perf_counter() - t0:.0f} s; mean face {mean_err:.3f} mm from them, the decoder's span "
                  f"{span_err:.3f} mm (facial vertices); the encoder on their {enc['images']} test renders: cosine "
                  f"same/different person {enc['cosine_same']:.3f}/{enc['cosine_different']:.3f}, verification "
                  f"AUC {enc['verification_auc']:.4f}, rank-1 {enc['rank1_identification']:.3f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    cols = pd.MultiIndex.from_product([["run's test subjects", *tables], ["face_mae_mm", "wound_mae_mm", "iou_mean"]])
    both = pd.concat([own[["face_mae_mm", "wound_mae_mm", "iou_mean"]],
                      *(t[["face_mae_mm", "wound_mae_mm", "iou_mean"]] for t in tables.values())], axis=1)
    both.columns = cols
    print("\nevery method, mm (IoU: mean over the six regions):")
    print(both.round(4).to_string())
    print("\nimage only (best learned row) against the image-free baselines, wound MAE mm:")
    for name, t in [("run's test subjects", own), *tables.items()]:
        learned = t.loc[[m for m in experiments if not m.endswith("+fit")]]
        best = learned["face_mae_mm"].idxmin()
        print(f"  {name:20s} {best} face {learned.loc[best, 'face_mae_mm']:.3f}, wound "
              f"{learned.loc[best, 'wound_mae_mm']:.3f} | injured {t.loc['injured', 'wound_mae_mm']:.3f} | "
              f"completion {t.loc['completion', 'wound_mae_mm']:.3f} | mean face {t.loc['mean', 'face_mae_mm']:.3f} face")


if __name__ == "__main__":
    main()
