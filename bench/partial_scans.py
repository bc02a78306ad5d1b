"""Benchmark: partial scans (issue 27). A held-out face with a round dent is scanned raw (`cover_scores.patient_case`:
own triangulation, noise, holes, random pose) and the scan cut to the part within R mm of the nose tip or of the
wound's centre (R = 90, 70, 55): a handheld scan of the front of the face, or of the injured region only. Each
cut goes the patient's way (ingest, fit, plausibility and partial-scan checks, cover) and is scored in the
scan's frame against the true surfaces, next to the whole scan's cover of the same wound.

Run after `make run` (it reads <results>/model/{face_space,decoder}.npz, <results>/registered/ and
<results>/splits.csv for the fit's noise model, and config.yaml's `fit`):

    .venv/bin/python bench/partial_scans.py [--results results] [--sets cohort asymmetric] [--per-set 2]
        [--radii 90 70 55] [--out results/benchmarks/partial_scans.csv]

Faces i = 0, 1, ... of each set get the benchmarks' dent of patient i (`heldout.patient_dent`: cheek, forehead,
nose, ...). Printed: per face, centre and radius, accepted or refused (and why), observed area (mm²), found
IoU, restore mean / p95 (mm), coverage, and the restore's difference to the whole scan's cover (mm).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facecover.cover_scores import patient_case
from facecover.heldout import PATIENT_SETS, patient_dent, patient_faces, wound_site
from facecover.learn.infer import FitSettings
from patients import run_model

SHOWN = ("set", "face", "site", "centre", "radius_mm", "scan_area_mm2", "outcome", "observed_mm2", "found_iou",
         "restore_mean_mm", "restore_p95_mm", "coverage", "restore_minus_whole_mm", "seconds")


def outcome(row: dict) -> str:
    """accepted (a cover made) / no cover (the reason) / refused (the scan, or the cover: the reason)."""
    if "refused_scan" in row:
        return "refused scan: " + row["refused_scan"].split(": ", 1)[-1]
    if "refused_cover" in row:
        return "refused cover: " + row["refused_cover"].split(": ", 1)[-1]
    if "cover_failed" in row:
        return "cover failed: " + row["cover_failed"]
    return "accepted" if np.isfinite(row.get("restore_mean_mm", np.nan)) else "no cover"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--sets", nargs="+", default=["cohort", "asymmetric"], choices=PATIENT_SETS)
    ap.add_argument("--per-set", type=int, default=2)
    ap.add_argument("--radii", nargs="+", type=float, default=[90.0, 70.0, 55.0])
    ap.add_argument("--centres", nargs="+", default=["nose", "wound"], choices=["nose", "wound"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/benchmarks/partial_scans.csv")
    args = ap.parse_args()
    R = Path(args.results)
    config = yaml.safe_load(Path("config.yaml").read_text())
    settings = FitSettings(**config["fit"])
    space, decoder, noise = run_model(R, settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.sets:
            for i, face in enumerate(patient_faces(space, which, args.per_set, args.seed)):
                _, site, radius, displacement = patient_dent(face, which, i, args.seed)
                centres = {"nose": face.points["nose_tip"], "wound": face.vertices[wound_site(face, site)]}
                cases = [("whole", None)] + [(c, r) for c in args.centres for r in args.radii]
                whole = None
                for centre, cut_mm in cases:
                    rng = patient_dent(face, which, i, args.seed)[0]  # the same scan every time, then cut
                    cut = None if cut_mm is None else (centres[centre], cut_mm)
                    row = patient_case(space, decoder, noise, settings, face, displacement, rng, Path(tmp), cut=cut)
                    row = {"set": which, "face": face.name, "site": site, "dent_radius_mm": radius,
                           "centre": centre if cut_mm is None else f"{centre} ({site})" if centre == "wound" else centre,
                           "radius_mm": cut_mm if cut_mm is not None else np.nan, **row}
                    row["outcome"] = outcome(row)
                    if cut_mm is None:
                        whole = row
                    row["restore_minus_whole_mm"] = (row.get("restore_mean_mm", np.nan)
                                                     - whole.get("restore_mean_mm", np.nan))
                    rows.append(row)
                    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k in SHOWN},
                          file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    shown = table[[k for k in SHOWN if k in table]].copy()
    shown["outcome"] = shown["outcome"].str.slice(0, 90)
    print(shown.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
