"""Benchmark: scan ingestion time per scan and registration accuracy.

Makes N synthetic cohort scans (default config settings), ingests each with
facecover's registration, and — as the baseline in the same run — registers
the first scan with trimesh's `registration.nricp_amberg` (default steps,
started from the same rigid pose). Prints seconds per scan, the ratio to the
baseline, and vertex-to-vertex error against the truth (so sliding counts).

    .venv/bin/python bench/ingest_time.py [--subjects 5] [--no-baseline]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from facecover.cohort import ScanSettings, disk_parameterization, person_rng, person_vertices, synthetic_scan
from facecover.files import save_mesh
from facecover.ingest import _apply, ingest_scan, rigid_alignment
from facecover.shape_space import face_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()

    space = face_space()
    uv = disk_parameterization(space["vertices"], space["faces"])
    tmp = Path(tempfile.mkdtemp(prefix="facecover-bench-"))
    rows = []
    for i in range(1, args.subjects + 1):
        name = f"subject{i:02d}"
        rng = person_rng(args.seed, "cohort", name)
        truth = person_vertices(space, rng, with_detail=True)
        v, f, _ = synthetic_scan(truth, space["faces"], uv, rng, ScanSettings())
        path = tmp / f"{name}.ply"
        save_mesh(path, v, f)
        start = time.perf_counter()
        reg = ingest_scan(path, space)
        seconds = time.perf_counter() - start
        err = np.linalg.norm(reg.vertices - truth, axis=1)
        rows.append((name, len(v), seconds, err.mean(), np.percentile(err, 95),
                     reg.report["residuals"]["mean_surface_distance_mm"]))
        print(f"{name}: {len(v)} scan vertices, {seconds:.2f} s, vertex error mean {err.mean():.3f} mm "
              f"p95 {np.percentile(err, 95):.3f} mm, surface distance {rows[-1][5]:.3f} mm", flush=True)
    secs = np.array([r[2] for r in rows])
    means = np.array([r[3] for r in rows])
    p95s = np.array([r[4] for r in rows])
    print(f"\nfacecover ingest: {secs.mean():.2f} s per scan (max {secs.max():.2f}) over {len(rows)} scans, 2-core machine")
    print(f"registration vertex error: mean {means.mean():.3f} mm (worst subject {means.max():.3f}), "
          f"p95 {p95s.mean():.3f} mm (worst {p95s.max():.3f}); surface distance "
          f"{np.mean([r[5] for r in rows]):.3f} mm")

    if not args.no_baseline:
        name = rows[0][0]
        rng = person_rng(args.seed, "cohort", name)
        truth = person_vertices(space, rng, with_detail=True)
        scan = trimesh.load(tmp / f"{name}.ply", process=False)
        start = time.perf_counter()
        pose, _, _, _ = rigid_alignment(space, scan, np.random.default_rng(0), 1500, name)
        source = trimesh.Trimesh(_apply(pose, space["vertices"]), space["faces"], process=False)
        warped = trimesh.registration.nricp_amberg(source, scan)
        base_seconds = time.perf_counter() - start
        warped_canonical = _apply(np.linalg.inv(pose), warped)
        err = np.linalg.norm(warped_canonical - truth, axis=1)
        print(f"\nbaseline trimesh nricp_amberg (default steps, same rigid start) on {name}: {base_seconds:.1f} s, "
              f"vertex error mean {err.mean():.3f} mm p95 {np.percentile(err, 95):.3f} mm")
        print(f"speed-up vs baseline on {name}: {base_seconds / rows[0][2]:.1f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
