"""Benchmark: registration on faces it never saw (the held-out suite) and on the default cohort.

For every scan: facecover's ingestion (`ingest_scan`) and, side by side in the same run, MeshMonk's
viscoelastic non-rigid registration through the `meshmonk` package with Cliniface's settings
(`autofacemonker._register.CLINIFACE_NONRIGID`, target cropped to 12 mm around the rigidly placed
template, as Cliniface does), started from the same rigid pose with the template mean. Printed per scan
and summarised per set: accepted / total, correspondence error over the facial regions (mean, p95, and
on nose, mouth and eyes — the true template vertex positions against the registered ones, after a
rigid fit of the two, so pose differences do not count), mean distance to the scan surface, seconds per
scan (each method timed on the same region: after the scan is loaded, rigid start included).

    .venv/bin/python bench/registration.py [--cohort 6] [--no-meshmonk] [--only warp1,wide]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from facecover import FacecoverError
from facecover.cohort import ScanSettings, disk_parameterization, person_rng, person_vertices, synthetic_scan
from facecover.files import load_mesh, save_mesh
from facecover.heldout import heldout_suite, write_face
from facecover.ingest import ingest_scan
from facecover.meshtools import rigid_transform
from facecover.shape_space import face_space
from facecover.template import REGION_ID

FACIAL = ("forehead", "nose", "cheek_left", "cheek_right", "mouth", "chin", "eyes")


def correspondence(space: dict, registered: np.ndarray, truth: np.ndarray) -> dict:
    """Errors (mm) of registered template vertices against the true ones, after the best rigid fit of the
    two over the facial regions."""
    regions = space["regions"]
    facial = np.isin(regions, [REGION_ID[r] for r in FACIAL])
    R, t = rigid_transform(registered, truth, facial.astype(float))
    err = np.linalg.norm(registered @ R.T + t - truth, axis=1)
    out = {"corr_mean_mm": err[facial].mean(), "corr_p95_mm": np.percentile(err[facial], 95)}
    for name in ("nose", "mouth", "eyes"):
        out[f"corr_{name}_mm"] = err[regions == REGION_ID[name]].mean()
    return out


def surface_distance(vertices: np.ndarray, scan) -> float:
    """Mean distance (mm) from vertices to the scan surface, over vertices within 3 mm of it (the rest
    lie over holes or beyond the scan's edge)."""
    from facecover.meshtools import DistanceScene

    d = DistanceScene(np.asarray(scan.vertices), np.asarray(scan.faces))(vertices)
    return float(d[d < 3.0].mean())


def meshmonk_register(space: dict, scan, pose: np.ndarray) -> np.ndarray:
    """MeshMonk non-rigid with Cliniface's settings (target cropped to 12 mm around the placed mask) from
    the template mean placed by `pose` (4, 4, canonical -> scan); the registered vertices, scan frame."""
    from facecover.ingest import meshmonk_nonrigid

    start = space["vertices"] @ pose[:3, :3].T + pose[:3, 3]
    return meshmonk_nonrigid(space, start, np.asarray(scan.vertices), np.asarray(scan.faces), 12.0)


def run(space: dict, name: str, path: Path, truth_scan_mm: np.ndarray, units: str, meshmonk: bool) -> list[dict]:
    """facecover (and MeshMonk) on one scan; truth in the scan's frame, mm."""
    rows = []
    t0 = time.perf_counter()
    try:
        reg = ingest_scan(path, space, units=units)
    except FacecoverError as exc:
        rows.append({"scan": name, "method": "facecover", "accepted": False, "seconds": time.perf_counter() - t0,
                     "reason": str(exc)[:120]})
        reg = None
    else:
        seconds = time.perf_counter() - t0
        to_scan = np.linalg.inv(reg.scan_to_canonical)
        registered_scan = reg.vertices @ to_scan[:3, :3].T + to_scan[:3, 3]
        scan = load_mesh(path)  # the same measure as MeshMonk's row: exact distance to the scan's surface
        scan.vertices = scan.vertices * reg.report["scale_to_mm"]
        rows.append({"scan": name, "method": "facecover", "accepted": True, "seconds": seconds,
                     "surface_mm": surface_distance(registered_scan, scan),
                     "units_detected": reg.report["units_detected"],
                     **correspondence(space, registered_scan, truth_scan_mm)})
    if meshmonk:
        from facecover.ingest import clean_scan, rigid_alignment, scan_units_scale

        t0 = time.perf_counter()
        scan, _ = clean_scan(load_mesh(path), name)
        scale, _ = scan_units_scale(np.asarray(scan.vertices), units, name)
        scan.vertices = scan.vertices * scale
        try:
            pose, _, _, _ = rigid_alignment(space, scan, np.random.default_rng(0), 1500, name)
            warped = meshmonk_register(space, scan, pose)
        except Exception as exc:  # MeshMonk raises its own errors on degenerate input
            rows.append({"scan": name, "method": "MeshMonk", "accepted": False,
                         "seconds": time.perf_counter() - t0, "reason": str(exc)[:120]})
        else:
            rows.append({"scan": name, "method": "MeshMonk", "accepted": True, "seconds": time.perf_counter() - t0,
                         "surface_mm": surface_distance(warped, scan),
                         **correspondence(space, warped, truth_scan_mm)})
    for r in rows:
        print(f"  {name:14s} {r['method']:10s} " + (
            f"{r['seconds']:5.1f} s  corr {r['corr_mean_mm']:.2f} mm (p95 {r['corr_p95_mm']:.2f}; nose "
            f"{r['corr_nose_mm']:.2f} mouth {r['corr_mouth_mm']:.2f} eyes {r['corr_eyes_mm']:.2f})  surface "
            f"{r['surface_mm']:.3f} mm" if r["accepted"] else f"REFUSED ({r['seconds']:.1f} s): {r['reason']}"),
            flush=True)
    return rows


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (group, method), t in rows.groupby(["set", "method"], sort=False):
        ok = t[t.accepted]
        out.append({"set": group, "method": method, "accepted": f"{len(ok)}/{len(t)}",
                    "corr_mean_mm": ok.corr_mean_mm.mean(), "corr_p95_mm": ok.corr_p95_mm.mean(),
                    "nose_mm": ok.corr_nose_mm.mean(), "mouth_mm": ok.corr_mouth_mm.mean(),
                    "eyes_mm": ok.corr_eyes_mm.mean(), "surface_mm": ok.surface_mm.mean(),
                    "s_per_scan_mean": t.seconds.mean(), "s_per_scan_max": t.seconds.max()})
    return pd.DataFrame(out).round(3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", type=int, default=6, help="synthetic cohort scans (default config settings)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-meshmonk", action="store_true")
    ap.add_argument("--only", help="comma-separated held-out cases to run")
    args = ap.parse_args()
    space = face_space()
    tmp = Path(tempfile.mkdtemp(prefix="facecover-registration-"))
    rows = []
    print("held-out faces (not from the shape space):")
    for face in heldout_suite(space, seed=args.seed):
        if args.only and face.name not in args.only.split(","):
            continue
        path = write_face(face, tmp / "heldout")
        units = "mm" if face.units == "mm" else "auto"
        rows += [{"set": "held-out", **r} for r in run(space, face.name, path, face.truth, units, not args.no_meshmonk)]
    print("default cohort (drawn from the shape space):")
    uv = disk_parameterization(space["vertices"], space["faces"])
    for i in range(1, args.cohort + 1):
        name = f"subject{i:02d}"
        rng = person_rng(args.seed, "cohort", name)
        truth = person_vertices(space, rng, with_detail=True)
        v, f, pose = synthetic_scan(truth, space["faces"], uv, rng, ScanSettings())
        path = tmp / "cohort" / f"{name}.ply"
        save_mesh(path, v, f)
        truth_scan = truth @ pose[:3, :3].T + pose[:3, 3]
        rows += [{"set": "cohort", **r} for r in run(space, name, path, truth_scan, "mm", not args.no_meshmonk)]
    table = pd.DataFrame(rows)
    print("\n" + summary(table).to_string(index=False))


if __name__ == "__main__":
    main()
