"""Benchmark: covers that are kind to skin (issue 28) — pose, support contact, materials, cost of the new steps.

Three test covers on subject07's face (seed 3), one round wound each (left cheek, forehead, nose; wound
seeds 1, 2, 3). For each: the filling with a square rim and with the rounded one (seconds), choosing the
pose (seconds), then the print step as worn and turned skin side up (PLA), and skin side up in PETG and
TPU 95A: support contact on the skin side, outer side and rim (mm², measured from the G-code), print time
and filament, and the time of the G-code measurement. Then, with `--cohort N`, the covers of N synthetic
subjects (seed 7, scar variant 00 as the default config draws it; separate wounds give separate parts)
printed with the default settings: the skin-side contact of every part. Needs PrusaSlicer.

    .venv/bin/python bench/cover_poses.py [--cohort 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facecover.cli import main as facecover
from facecover.cohort import person_rng, person_vertices
from facecover.files import load_mesh_arrays, load_npz, save_mesh
from facecover.filling import FillingSettings, cover_solid
from facecover.orientation import gcode_support_contact, orient_parts
from facecover.scars import one_scar, prepare_face, simulate_scars
from facecover.shape_space import face_space
from facecover.watertight import make_watertight

WOUNDS = (("cheek_left", 1), ("forehead", 2), ("nose", 3))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", type=int, default=0, help="also print the covers of this many synthetic subjects")
    args = ap.parse_args()
    if shutil.which("prusa-slicer") is None:
        sys.exit("prusa-slicer is not installed: the support contact is measured from its G-code")
    space = face_space()
    healthy = person_vertices(space, person_rng(3, "cohort", "subject07"), with_detail=True)
    solid = make_watertight(healthy, space["faces"])
    face = prepare_face(healthy, space["faces"], space["regions"])
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        save_mesh(tmp / "healthy.ply", *solid[:2])
        for region, seed in WOUNDS:
            h, _ = one_scar(face, "round", region, np.random.default_rng(seed))
            injured = healthy + h[:, None] * face.normals
            save_mesh(tmp / "injured.ply", injured, space["faces"])
            seconds = {}
            for radius in (0.0, 0.5):
                start = time.perf_counter()
                cv, cf, report = cover_solid(injured, space["faces"], *solid[:2], FillingSettings(edge_radius_mm=radius))
                seconds[radius] = time.perf_counter() - start
            start = time.perf_counter()
            orient_parts(cv, cf, report["cover_side"])
            pose_s = time.perf_counter() - start
            print(f"{region}: {len(cf)} faces; filling {seconds[0.0]:.2f} s square rim, {seconds[0.5]:.2f} s rounded; "
                  f"choosing the pose {pose_s:.3f} s")
            facecover(["filling", "--injured", str(tmp / "injured.ply"), "--healthy", str(tmp / "healthy.ply"),
                       "--out", str(tmp / "fill.ply"), "--out-footprint", str(tmp / "fp.npz")])
            side = load_npz(tmp / "fp.npz")["cover_side"]
            for pose, material in (("as_worn", "pla"), ("skin_side_free", "pla"), ("skin_side_free", "petg"),
                                   ("skin_side_free", "tpu95a")):
                out = [f"--out-{k}" for k in ("stl", "face-stl", "ini", "json", "gcode")]
                files = [tmp / n for n in ("s.stl", "s_face.stl", "s.ini", "s.json", "s.gcode")]
                facecover(["print", "--filling", str(tmp / "fill.ply"), "--injured", str(tmp / "injured.ply"),
                           "--sides", str(tmp / "fp.npz"), "--printer", json.dumps({"pose": pose, "material": material}),
                           *[x for pair in zip(out, map(str, files)) for x in pair]])
                r = json.loads(files[3].read_text())
                sv, sf = load_mesh_arrays(files[0])
                start = time.perf_counter()
                gcode_support_contact(files[4].read_text(), sv, sf, side)
                measure_s = time.perf_counter() - start
                c = r["support_contact"]
                print(f"  {pose:14s} {material:6s} support contact skin {c['skin_side_mm2']:6.1f}  outer "
                      f"{c['outer_side_mm2']:6.1f}  rim {c['rim_mm2']:5.1f} mm²; {r['gcode']['print_time']:>9s}, "
                      f"{r['gcode']['filament_g']:.2f} g; G-code measured in {measure_s:.2f} s")
        for i in range(1, args.cohort + 1):
            name = f"subject{i:02d}"
            person = person_vertices(space, person_rng(7, "cohort", name), with_detail=True)
            scars = simulate_scars(prepare_face(person, space["faces"], space["regions"]),
                                   person_rng(7, "scars", f"{name}/00"))
            save_mesh(tmp / "healthy.ply", *make_watertight(person, space["faces"])[:2])
            save_mesh(tmp / "injured.ply", scars["vertices"], space["faces"])
            facecover(["filling", "--injured", str(tmp / "injured.ply"), "--healthy", str(tmp / "healthy.ply"),
                       "--out", str(tmp / "fill.ply"), "--out-footprint", str(tmp / "fp.npz")])
            start = time.perf_counter()
            facecover(["print", "--filling", str(tmp / "fill.ply"), "--injured", str(tmp / "injured.ply"),
                       "--sides", str(tmp / "fp.npz"), "--out-stl", str(tmp / "s.stl"), "--out-face-stl",
                       str(tmp / "s_face.stl"), "--out-ini", str(tmp / "s.ini"), "--out-json", str(tmp / "s.json"),
                       "--out-gcode", str(tmp / "s.gcode")])
            c = json.loads((tmp / "s.json").read_text())["support_contact"]
            print(f"{name}: print step {time.perf_counter() - start:.1f} s; skin-side contact per part (mm²) "
                  f"{[round(p['skin_side_mm2'], 1) for p in c['parts']]}, outer side {c['outer_side_mm2']:.0f} mm²")


if __name__ == "__main__":
    main()
