"""Benchmark: what the wound in the photo costs the image-only reconstruction.

The image-only rows of `results/metrics/table.csv` come from photos of the *injured* face. Here every
validation and test subject's healthy registered mesh is rendered under exactly the same camera, pose and
lights as each of its injured renders (`facecover render` with the same subject, variant and seed), embedded
with the run's encoder (`facecover embed`), reconstructed with each learned experiment's checkpoint and
scored by the same protocol as `facecover evaluate` (aligned to the injured mesh outside the wound, errors
against the healthy registered mesh, mm). Printed per experiment and set:

* face and wound MAE from the injured photo (the table's row) and from the uninjured photo;
* how much of the scar the reconstruction copies: the least-squares slope of the reconstruction's change
  (injured photo minus uninjured photo, along the healthy face's normals) on the scar's height, inside the
  wound (0: the photo's wound is ignored; 1: reproduced in full);
* the injured-face baseline's wound MAE, which the image-only row has to beat.

    .venv/bin/python bench/scar_in_image.py          # after `make run`; under a minute
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facecover.commands import settings_from_json
from facecover.files import load_mesh_arrays, load_npz
from facecover.learn.data import load_embeddings, read_split, subjects_in
from facecover.learn.decoder import decode, load_decoder
from facecover.learn.evaluate import align_outside_wound, region_masks
from facecover.learn.network import load_mapping
from facecover.learn.train import predict_coefficients
from facecover.meshtools import smoothed_normals
from facecover.scars import ScarSettings
from stages import run, settings

R = Path("results")


def uninjured_embeddings(subject: str, healthy_ply: Path, variants: list[str], stems: list[str], config: dict,
                         work: Path) -> dict:
    """Embedding cache of the healthy face rendered as each injured variant was (same camera and lights)."""
    scars = work / "scars" / subject
    scars.mkdir(parents=True)
    for v in variants:  # `facecover render` draws a variant's views from (seed, subject/variant) only
        shutil.copyfile(healthy_ply, scars / f"{v}.ply")
    run("render", "--space", R / "model/face_space.npz", "--scars-dir", scars, "--subject", subject,
        "--variants", *variants, "--settings", settings(config, "render"), "--seed", config["seed"],
        "--out-dir", work / "renders" / subject)
    run("embed", "--encoder", R / "encoder/arcface.onnx", "--renders-dir", work / "renders" / subject,
        "--stems", *stems, "--augmentations", 0, "--augment", settings(config, "embed", "augmentations"),
        "--seed", config["seed"], "--device", "cpu", "--out", work / f"{subject}.npz")
    return load_embeddings(work / f"{subject}.npz")


def scar_copy_slope(change: np.ndarray, height: np.ndarray) -> float:
    """Least-squares slope (through 0) of the reconstruction's change (n,) mm on the scar height (n,) mm."""
    return float(change @ height / (height @ height))


def main() -> None:
    if not (R / "metrics/table.csv").exists():
        raise SystemExit("bench/scar_in_image.py reads the default run's results: run `make run` first")
    config = yaml.safe_load(Path("config.yaml").read_text())
    space = load_npz(R / "model/face_space.npz")
    n = len(space["vertices"])
    decoder = load_decoder(R / "model/decoder.npz", n)
    face = region_masks(space["regions"], space["region_names"])["face"]
    split = read_split(R / "splits.csv")
    # the normals the scars were displaced along (`facecover scars` reads the same block)
    scar_settings = settings_from_json(ScarSettings, settings(config, "scars", "variants_per_subject"))
    table = pd.read_csv(R / "metrics/table.csv").set_index("method")
    experiments = [m for m in table.index if (R / f"checkpoints/recon_{m}.pt").exists()]
    if not experiments:
        raise SystemExit(f"no checkpoint of the table's experiments in {R / 'checkpoints'}: run `make run` first")
    nets = {m: load_mapping(R / f"checkpoints/recon_{m}.pt", len(decoder["basis"]))[0] for m in experiments}
    rows = []
    work = Path(tempfile.mkdtemp(prefix="facecover-scar-in-image-"))
    try:
        for which in ("val", "test"):
            for s in subjects_in(split, which, R / "splits.csv"):
                injured_cache = load_embeddings(R / f"embeddings/{s}.npz")
                stems = [str(x) for x in injured_cache["stem"]]
                variants = sorted({x.rsplit("_", 1)[0] for x in stems})
                healthy_ply = R / f"registered/{s}.ply"
                healthy = load_mesh_arrays(healthy_ply)[0]
                normals = smoothed_normals(healthy, space["faces"], scar_settings.normal_smoothing_mm)
                uninjured = uninjured_embeddings(s, healthy_ply, variants, stems, config, work)
                if [str(x) for x in uninjured["stem"]] != stems:
                    raise SystemExit(f"{s}: the uninjured renders do not match the injured ones")
                scars = {v: load_npz(R / f"scars/{s}/{v}.npz") for v in variants}
                injured_mesh = {v: load_mesh_arrays(R / f"scars/{s}/{v}.ply")[0] for v in variants}
                for m, net in nets.items():
                    from_injured = decode(decoder, predict_coefficients(net, injured_cache["clean"]))
                    from_uninjured = decode(decoder, predict_coefficients(net, uninjured["clean"]))
                    for stem, a, b in zip(stems, from_injured, from_uninjured):
                        v = stem.rsplit("_", 1)[0]
                        wound = scars[v]["mask"].astype(bool)
                        row = {"experiment": m, "set": which, "subject": s, "image": stem}
                        for key, rec in (("injured_photo", a), ("uninjured_photo", b)):
                            err = np.linalg.norm(align_outside_wound(rec, injured_mesh[v], wound) - healthy, axis=1)
                            row[f"{key}_face_mae_mm"] = err[face].mean()
                            row[f"{key}_wound_mae_mm"] = err[wound].mean()
                        change = np.sum((a - b) * normals, axis=1)
                        row["scar_copy_slope"] = scar_copy_slope(change[wound], scars[v]["displacement"][wound])
                        rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_image = pd.DataFrame(rows)
    out = per_image.groupby(["experiment", "set"], sort=False).mean(numeric_only=True)
    out["images"] = per_image.groupby(["experiment", "set"], sort=False).size()
    print("\nimage-only reconstruction from the injured photo vs an uninjured photo of the same person in the same "
          "view (mm; scar_copy_slope: share of the scar's height the reconstruction copies):")
    print(out.round(4).to_string())
    print(f"\ninjured-face baseline, wound MAE on the test subjects: {table.loc['injured', 'wound_mae_mm']:.4f} mm")


if __name__ == "__main__":
    main()
