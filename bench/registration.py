"""Benchmark: registration on faces it never saw (the held-out suite) and on the default cohort.

For every scan: facecover's ingestion (`ingest_scan`) and, side by side in the same run, MeshMonk's
viscoelastic non-rigid registration through the `meshmonk` package with Cliniface's settings
(`autofacemonker._register.CLINIFACE_NONRIGID`, target cropped to 12 mm around the rigidly placed
template, as Cliniface does), started from the same rigid pose with the template mean. Printed per scan
and summarised per set: accepted / total, correspondence error over the facial regions (mean, p95, and
on nose, mouth and eyes — the true template vertex positions against the registered ones, after a
rigid fit of the two, so pose differences do not count), mean distance to the scan surface, seconds per
scan (each method timed on the same region: after the scan is loaded, rigid start included).

Dense scans: `--dense` sets the held-out suite's dense cases (the wide face resampled to about that many
vertices; default 50k, 113k, 300k and 500k). `--before-src DIR` (a `src/` folder of another checkout, e.g.
`git archive main src | tar -x -C /tmp/main`) replaces the in-process facecover row by whole
`facecover ingest` commands, as a user or a Snakemake job runs them (start-up, loading and writing
included, one BLAS thread as Snakemake's `threads: 1` sets): "before" runs that code, "after" this
checkout's, and on scans denser than `max_scan_points` "after, max_scan_points 0" this checkout with the
full scan in the rigid start (the old path). Each command's wall and CPU seconds and peak memory (RSS)
are printed with its accuracy; a table per dense case follows the summary.

    .venv/bin/python bench/registration.py [--cohort 6] [--no-meshmonk] [--only warp1,wide]
        [--dense 50000,113000,300000,500000] [--before-src /tmp/main/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from facecover import FacecoverError
from facecover.cohort import ScanSettings, disk_parameterization, person_rng, person_vertices, synthetic_scan
from facecover.files import load_mesh, save_mesh, save_npz
from facecover.heldout import heldout_suite, write_face
from facecover.ingest import RegistrationSettings, ingest_scan
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


def ingest_command(src: Path | None, space_file: Path, path: Path, units: str, out: Path,
                   settings: dict | None = None) -> dict:
    """One `facecover ingest` command (the code under `src`, or this checkout's with None) under GNU time:
    wall and CPU seconds, peak RSS (MB), exit status, stderr's last line, and the registration (vertices,
    canonical, and report) when it succeeded."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # as Snakemake's threads: 1
    if src is not None:
        env["PYTHONPATH"] = str(src)
    usage = out.with_suffix(".time")
    # GNU time measures the command's own peak RSS (the bench's rusage of a child would also count the
    # copy of this large process the child starts as before it execs)
    cmd = ["/usr/bin/time", "-o", str(usage), "-f", "%e %U %S %M", sys.executable, "-m", "facecover.cli", "ingest",
           "--space", str(space_file), "--scan", str(path), "--units", units, "--out", str(out.with_suffix(".ply")),
           "--report", str(out.with_suffix(".json"))]
    if settings:
        cmd += ["--settings", json.dumps(settings)]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall, user, system, peak_kb = (float(x) for x in usage.read_text().split()[-4:])
    out_row = {"wall_s": wall, "cpu_s": user + system, "peak_mb": peak_kb / 1024, "ok": proc.returncode == 0,
               "message": (proc.stderr.strip().splitlines() or [""])[-1]}
    if out_row["ok"]:
        out_row["vertices"] = np.asarray(load_mesh(out.with_suffix(".ply")).vertices)
        out_row["report"] = json.loads(out.with_suffix(".json").read_text())
    return out_row


def command_rows(space: dict, name: str, path: Path, truth_scan_mm: np.ndarray, units: str, cli: dict) -> list[dict]:
    """facecover as whole commands on one scan: before, after, and after with the full scan in the rigid
    start when the scan is denser than `max_scan_points`."""
    rows = []
    n_scan = len(load_mesh(path).vertices)
    runs = [("before", cli["before"], None), ("after", None, None)]
    if n_scan > RegistrationSettings().max_scan_points:
        runs.append(("after, max_scan_points 0", None, {"max_scan_points": 0}))
    for label, src, settings in runs:
        r = ingest_command(src, cli["space"], path, units, cli["tmp"] / f"{name}-{label.replace(' ', '_')}",
                           settings)
        row = {"scan": name, "method": label, "accepted": r["ok"], "seconds": r["wall_s"], "cpu_s": r["cpu_s"],
               "peak_mb": r["peak_mb"], "scan_vertices": n_scan}
        if r["ok"]:
            to_scan = np.linalg.inv(np.asarray(r["report"]["scan_to_canonical"]))
            registered_scan = r["vertices"] @ to_scan[:3, :3].T + to_scan[:3, 3]
            scan = load_mesh(path)
            scan.vertices = scan.vertices * r["report"]["scale_to_mm"]
            row.update(surface_mm=surface_distance(registered_scan, scan),
                       **correspondence(space, registered_scan, truth_scan_mm))
        else:
            row["reason"] = r["message"][:120]
        rows.append(row)
    return rows


def run(space: dict, name: str, path: Path, truth_scan_mm: np.ndarray, units: str, meshmonk: bool,
        cli: dict | None = None) -> list[dict]:
    """facecover (and MeshMonk) on one scan; truth in the scan's frame, mm. With `cli` ({"before": src,
    "space": file, "tmp": folder}) facecover runs as whole commands, before and after (`command_rows`)."""
    rows = [] if cli is None else command_rows(space, name, path, truth_scan_mm, units, cli)
    t0 = time.perf_counter()
    try:
        reg = ingest_scan(path, space, units=units) if cli is None else None
    except FacecoverError as exc:
        rows.append({"scan": name, "method": "facecover", "accepted": False, "seconds": time.perf_counter() - t0,
                     "reason": str(exc)[:120]})
        reg = None
    if reg is not None:
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
        extra = f" (cpu {r['cpu_s']:.1f} s, peak {r['peak_mb']:.0f} MB)" if "cpu_s" in r else ""
        print(f"  {name:14s} {r['method']:10s} " + (
            f"{r['seconds']:5.1f} s{extra}  corr {r['corr_mean_mm']:.2f} mm (p95 {r['corr_p95_mm']:.2f}; nose "
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


def dense_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per dense case and command: vertices, wall and CPU seconds, peak memory, accuracy."""
    t = rows[rows.scan.str.startswith("dense") & rows.method.ne("MeshMonk")]
    cols = ["scan", "method", "scan_vertices", "seconds", "cpu_s", "peak_mb", "corr_mean_mm", "corr_p95_mm",
            "surface_mm"]
    return t[[c for c in cols if c in t]].rename(columns={"seconds": "wall_s"}).round(3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", type=int, default=6, help="synthetic cohort scans (default config settings)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-meshmonk", action="store_true")
    ap.add_argument("--only", help="comma-separated held-out cases to run")
    ap.add_argument("--dense", default="50000,113000,300000,500000",
                    help="vertex counts of the dense held-out cases (comma-separated; empty: none)")
    ap.add_argument("--before-src", type=Path,
                    help="src/ of another checkout: time whole `facecover ingest` commands, before and after")
    args = ap.parse_args()
    space = face_space()
    tmp = Path(tempfile.mkdtemp(prefix="facecover-registration-"))
    cli = None
    if args.before_src:
        save_npz(tmp / "face_space.npz", **space)
        (tmp / "cli").mkdir()
        cli = {"before": args.before_src.resolve(), "space": tmp / "face_space.npz", "tmp": tmp / "cli"}
        print(f"facecover as whole commands: before = {cli['before']}, after = this checkout; "
              f"load average {os.getloadavg()[0]:.1f} at the start")
    dense = tuple(int(c) for c in args.dense.split(",") if c)
    rows = []
    print("held-out faces (not from the shape space):")
    for face in heldout_suite(space, seed=args.seed, dense=dense):
        if args.only and face.name not in args.only.split(","):
            continue
        path = write_face(face, tmp / "heldout")
        units = "mm" if face.units == "mm" else "auto"
        rows += [{"set": "held-out", **r}
                 for r in run(space, face.name, path, face.truth, units, not args.no_meshmonk, cli)]
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
        rows += [{"set": "cohort", **r} for r in run(space, name, path, truth_scan, "mm", not args.no_meshmonk, cli)]
    table = pd.DataFrame(rows)
    print("\n" + summary(table).to_string(index=False))
    if dense and table.scan.str.startswith("dense").any():
        print(f"\ndense scans (load average {os.getloadavg()[0]:.1f} at the end):\n"
              + dense_table(table).to_string(index=False))


if __name__ == "__main__":
    main()
