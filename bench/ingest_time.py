"""Benchmark: scan ingestion time per scan and registration accuracy.

Makes N synthetic cohort scans (default config settings) and registers each,
loaded and cleaned once, with facecover's registration and — as the baseline,
on every subject, in the same run, with the same warm-up and repetitions —
trimesh's `registration.nricp_amberg` (default steps, started from the same
rigid pose, which is timed on its side too). Prints seconds per scan, the
ratio to the baseline, and vertex-to-vertex error against the truth (so
sliding counts). Held-out faces and MeshMonk: bench/registration.py.

    .venv/bin/python bench/ingest_time.py [--subjects 5] [--repeat 1] [--no-baseline]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

from facecover.cohort import ScanSettings, disk_parameterization, person_rng, person_vertices, synthetic_scan
from facecover.files import load_mesh, save_mesh
from facecover.ingest import clean_scan, register_template_to_scan, rigid_alignment
from facecover.meshtools import apply_transform
from facecover.shape_space import face_space
from timing import warm_median_seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per method and subject (after a warm-up)")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()

    space = face_space()
    uv = disk_parameterization(space["vertices"], space["faces"])
    tmp = Path(tempfile.mkdtemp(prefix="facecover-bench-"))
    rows = []
    print(f"each method: one warm-up call, then {args.repeat} timed call(s) per subject (median); timed region: "
          "registration of the loaded, cleaned scan (rigid start included), for both methods")
    for i in range(1, args.subjects + 1):
        name = f"subject{i:02d}"
        rng = person_rng(args.seed, "cohort", name)
        truth = person_vertices(space, rng, with_detail=True)
        v, f, _ = synthetic_scan(truth, space["faces"], uv, rng, ScanSettings())
        path = tmp / f"{name}.ply"
        save_mesh(path, v, f)
        scan, _ = clean_scan(load_mesh(path), name)  # untimed, the same mesh for both methods
        seconds, reg = warm_median_seconds(lambda: register_template_to_scan(space, scan, name=name), args.repeat)
        row = {"subject": name, "scan_vertices": len(v), "facecover_s": seconds,
               "facecover_err_mm": np.linalg.norm(reg.vertices - truth, axis=1).mean()}
        if not args.no_baseline:
            def baseline():
                pose, _, _, _ = rigid_alignment(space, scan, np.random.default_rng(0), 1500, name)
                source = trimesh.Trimesh(apply_transform(pose, space["vertices"]), space["faces"], process=False)
                return pose, trimesh.registration.nricp_amberg(source, scan)

            row["nricp_s"], (pose, warped) = warm_median_seconds(baseline, args.repeat)
            row["nricp_err_mm"] = np.linalg.norm(apply_transform(np.linalg.inv(pose), warped) - truth, axis=1).mean()
        rows.append(row)
        print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
    table = pd.DataFrame(rows)
    print("\n" + table.round(3).to_string(index=False))
    print(f"\nfacecover: {table.facecover_s.mean():.2f} s per scan (max {table.facecover_s.max():.2f}), vertex "
          f"error {table.facecover_err_mm.mean():.3f} mm (all template vertices, canonical pose)")
    if not args.no_baseline:
        print(f"trimesh nricp_amberg (default steps, same rigid start): {table.nricp_s.mean():.2f} s per scan "
              f"(max {table.nricp_s.max():.2f}), vertex error {table.nricp_err_mm.mean():.3f} mm; speed-up "
              f"{(table.nricp_s / table.facecover_s).mean():.1f}x (per-subject ratios, same run)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
