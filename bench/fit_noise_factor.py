"""Benchmark: the fit's wound threshold (`fit.noise_factor`) chosen on the validation subjects.

For each candidate factor, every scar variant of the validation subjects (never the test subjects) is
fitted with the mean face as prior (the `meanface+fit` method: no image, so no model is involved), exactly
as `facecover evaluate` does it, and scored like the results table: wound IoU per region (pooled over the
images) and wound MAE (mm) against the healthy registered mesh. Run after `make run`:

    .venv/bin/python bench/fit_noise_factor.py [--split val] [--factors 1.5 2.5 3.5 5.0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from facecover.files import load_mesh_arrays, load_npz
from facecover.learn.data import read_split, subjects_in
from facecover.learn.decoder import load_decoder
from facecover.learn.evaluate import align_outside_wound, region_masks
from facecover.learn.infer import FitSettings, fit_healthy_face, mesh_operators

R = Path("results")
REGIONS = ("forehead", "nose", "cheeks", "mouth", "chin", "eyes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val", help="which subjects of results/splits.csv (default: val)")
    ap.add_argument("--factors", type=float, nargs="+", default=[1.5, 2.5, 3.5, 5.0])
    args = ap.parse_args()
    if not (R / "model/fit_noise.npz").exists():
        raise SystemExit("bench/fit_noise_factor.py reads the default run's results: run `make run` first")
    config = yaml.safe_load(Path("config.yaml").read_text())
    space = load_npz(R / "model/face_space.npz")
    decoder = load_decoder(R / "model/decoder.npz", len(space["vertices"]))
    noise = load_npz(R / "model/fit_noise.npz")["noise_mm"]
    masks = region_masks(space["regions"], space["region_names"])
    cases = []
    for s in subjects_in(read_split(R / "splits.csv"), args.split):
        healthy = load_mesh_arrays(R / f"registered/{s}.ply")[0]
        ops = mesh_operators(healthy, space["faces"])
        for path in sorted((R / f"scars/{s}").glob("*.ply")):
            wound = load_npz(path.with_suffix(".npz"))["mask"].astype(bool)
            cases.append((f"{s}/{path.stem}", healthy, ops, load_mesh_arrays(path)[0], wound))
    print(f"{len(cases)} scar variants of the '{args.split}' subjects; config fit.noise_factor = "
          f"{config['fit'].get('noise_factor')}")
    print("noise_factor  " + "  ".join(f"{r:>8s}" for r in REGIONS) + "  min IoU  wound MAE mm")
    for factor in args.factors:
        settings = FitSettings(**(config["fit"] | {"noise_factor": factor}))
        inter, union, wound_mae = dict.fromkeys(REGIONS, 0), dict.fromkeys(REGIONS, 0), []
        for name, healthy, ops, injured, wound in cases:
            fit = fit_healthy_face(decoder, injured, space["faces"], None, noise, settings, operators=ops, name=name)
            aligned = align_outside_wound(fit["healthy"], injured, wound)
            predicted = np.linalg.norm(aligned - injured, axis=1) > config["evaluate"]["wound_threshold_mm"]
            for r in REGIONS:
                inter[r] += int((predicted & wound & masks[r]).sum())
                union[r] += int(((predicted | wound) & masks[r]).sum())
            wound_mae.append(np.linalg.norm(aligned - healthy, axis=1)[wound].mean())
        iou = [inter[r] / union[r] if union[r] else float("nan") for r in REGIONS]
        print(f"{factor:12.2f}  " + "  ".join(f"{x:8.3f}" for x in iou) + f"  {np.nanmin(iou):7.3f}  "
              f"{np.mean(wound_mae):11.4f}", flush=True)


if __name__ == "__main__":
    main()
