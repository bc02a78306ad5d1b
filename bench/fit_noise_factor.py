"""Benchmark: the fit's wound threshold (`fit.noise_factor`) and other fit settings, on validation subjects.

For each candidate setting, every scar variant of the validation subjects (never the test subjects) is
fitted with the mean face as prior (the `meanface+fit` method: no image, so no model is involved), exactly
as `facecover evaluate` does it, and scored like the results table: wound IoU per region (pooled over the
images) and wound MAE (mm) against the healthy registered mesh. Run after `make run`:

    .venv/bin/python bench/fit_noise_factor.py [--split val] [--factors 1.5 2.5 3.5 5.0]
        [--set weight_factor=10 smoothing=0.1 noise=registered,noise_factor=1.5 ...] [--heldout DIR]

`--set` adds candidates: comma-separated `fit` keys (config.yaml) on top of the config's `fit` block;
`noise=registered` measures the fit's per-vertex noise on the cohort's registered *training* faces
(which carry the registration's noise, as a patient's scan does) instead of `results/model/fit_noise.npz`
(the pool's true faces). `--heldout DIR` (a folder written by `bench/learning_heldout.py --keep DIR`) also
scores the validation people of its held-out sets (faces the run never saw; `warped`: outside the shape
space), and counts the false wounds the fit finds on their uninjured faces.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facecover.files import load_mesh_arrays, load_npz
from facecover.learn.data import read_split, subjects_in
from facecover.learn.decoder import load_decoder
from facecover.learn.evaluate import (FRONTAL_VIEW, IOU_REGIONS, region_masks, score_subject, summary_row,
                                      wound_size_edges)
from facecover.learn.infer import FitSettings, fit_healthy_face, fit_noise, mesh_operators

R = Path("results")
REGIONS = tuple(IOU_REGIONS)


def scar_people(root: Path, split: str, faces: np.ndarray) -> list[tuple]:
    """`split`'s people under root/{splits.csv, registered/, scars/}: [(subject, healthy (N, 3) mm, mesh
    operators, {variant: {"injured": (N, 3) mm, "mask": (N,) bool}})]."""
    out = []
    for s in subjects_in(read_split(root / "splits.csv"), split):
        healthy = load_mesh_arrays(root / f"registered/{s}.ply")[0]
        scars = {}
        for path in sorted((root / f"scars/{s}").glob("*.ply")):
            scars[path.stem] = {"injured": load_mesh_arrays(path)[0],
                                "mask": load_npz(path.with_suffix(".npz"))["mask"].astype(bool)}
        out.append((s, healthy, mesh_operators(healthy, faces), scars))
    return out


def candidate(text: str) -> dict:
    """'key=value,key=value' -> {key: value} (values read as YAML, as in config.yaml)."""
    known = {f.name for f in fields(FitSettings)} | {"noise"}
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in known or not value:
            raise SystemExit(f"--set {text!r}: expected key=value with key one of {', '.join(sorted(known))}")
        if key == "noise" and value != "registered":
            raise SystemExit(f"--set {text!r}: noise=registered is the only alternative noise")
        out[key] = yaml.safe_load(value)
        if key != "noise" and not isinstance(out[key], (int, float)):
            raise SystemExit(f"--set {text!r}: {key} must be a number")
    return out


def score(people: list[tuple], decoder: dict, faces: np.ndarray, noise: np.ndarray, settings: FitSettings,
          masks: dict, threshold_mm: float) -> tuple[list[float], float]:
    """IoU per region (pooled over the scar variants) and the mean wound MAE (mm) of the fit with the mean face
    as prior, scored and summarised as `facecover evaluate` does it (`score_subject`, `summary_row`)."""
    rows = []
    for s, healthy, ops, scars in people:
        fits = [(f"{v}_{FRONTAL_VIEW}", fit_healthy_face(decoder, sc["injured"], faces, None, noise, settings,
                                                         operators=ops, name=f"{s}/{v}")["healthy"])
                for v, sc in scars.items()]
        rows += score_subject(s, fits, healthy, faces, scars, masks, threshold_mm)
    per_image = pd.DataFrame(rows)
    row = summary_row("fit", per_image, wound_size_edges(per_image["wound_area_mm2"]))
    return [row[f"iou_{k}"] for k in REGIONS], float(row["wound_mae_mm"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val", help="which subjects of results/splits.csv (default: val)")
    ap.add_argument("--factors", type=float, nargs="*", default=[1.5, 2.5, 3.5, 5.0])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="more candidates: fit settings on top of config.yaml's (noise=registered: see above)")
    ap.add_argument("--heldout", help="a bench/learning_heldout.py --keep folder: score its validation people too")
    args = ap.parse_args()
    if not (R / "model/fit_noise.npz").exists():
        raise SystemExit("bench/fit_noise_factor.py reads the default run's results: run `make run` first")
    config = yaml.safe_load(Path("config.yaml").read_text())
    space = load_npz(R / "model/face_space.npz")
    faces = space["faces"]
    decoder = load_decoder(R / "model/decoder.npz", len(space["vertices"]))
    noises = {"pool": load_npz(R / "model/fit_noise.npz")["noise_mm"]}
    masks = region_masks(space["regions"], space["region_names"])
    threshold = config["evaluate"]["wound_threshold_mm"]

    sets = {f"cohort '{args.split}' subjects": scar_people(R, args.split, faces)}
    if args.heldout:
        for folder in sorted(p for p in Path(args.heldout).iterdir() if (p / "splits.csv").exists()):
            sets[f"held-out {folder.name} 'val' people"] = scar_people(folder, "val", faces)
    candidates = [{"noise_factor": f} for f in args.factors] + [candidate(t) for t in args.set]
    if any(c.get("noise") == "registered" for c in candidates):
        train = subjects_in(read_split(R / "splits.csv"), "train")
        registered = np.stack([load_mesh_arrays(R / f"registered/{s}.ply")[0] for s in train])
        noises["registered"] = fit_noise(decoder, faces, registered, FitSettings(**config["fit"]))
    print("fit noise (median mm): " + ", ".join(f"{k} {np.median(v):.4f}" for k, v in noises.items()))
    print(f"config fit block: {config['fit']}")

    for set_name, people in sets.items():
        print(f"\n{set_name}: {sum(len(p[3]) for p in people)} scar variants of {len(people)} people")
        print(f"{'candidate':40s}  " + "  ".join(f"{r:>8s}" for r in REGIONS)
              + "  min IoU  mean IoU  wound MAE mm  false wound on the uninjured face mm²")
        for cand in candidates:
            settings = FitSettings(**(config["fit"] | {k: v for k, v in cand.items() if k != "noise"}))
            noise = noises[cand.get("noise", "pool")]
            iou, wound_mae = score(people, decoder, faces, noise, settings, masks, threshold)
            false_area = np.mean([fit_healthy_face(decoder, healthy, faces, None, noise, settings, operators=ops,
                                                   name=s)["wound_area_mm2"] for s, healthy, ops, _ in people])
            label = ",".join(f"{k}={v:g}" if k != "noise" else f"noise={v}" for k, v in cand.items())
            print(f"{label:40s}  " + "  ".join(f"{x:8.3f}" for x in iou) + f"  {np.nanmin(iou):7.3f}  "
                  f"{np.nanmean(iou):8.3f}  {wound_mae:12.4f}  {false_area:10.0f}", flush=True)


if __name__ == "__main__":
    main()
