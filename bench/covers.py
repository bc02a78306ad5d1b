"""Benchmark: eyeball removal vs CirMesh, and the mesh-to-print step per subject.

* Eyeball removal on a FLAME-structured head (7160-vertex face closed with a
  flat back, mouth and neck openings, two closed 546-vertex eyeball shells):
  facecover's `remove_stray_components` and CirMesh's `removeEyeBalls` (the
  seed authors' recursive Python walk) on the same mesh in the same run.
* Hole closing compared with CirMesh's `fixNonWatertight` (pymeshfix repair),
  which no longer runs with pymeshfix 0.18 (it reads the removed `MeshFix.v`).
* watertight + filling + checked STL (no slicing) per subject, on synthetic
  subjects with simulated wounds (the reference cover).

    .venv/bin/python bench/covers.py [--subjects 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from facecover.cohort import flame_structured_head, person_rng, person_vertices
from facecover.filling import cover_solid
from facecover.meshtools import boundary_loops
from facecover.printing import PrinterSettings, check_printable, place_on_bed
from facecover.scars import prepare_face, simulate_scars
from facecover.shape_space import face_space
from facecover.watertight import make_watertight, remove_stray_components
from timing import warm_median_seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=5)
    args = ap.parse_args()
    space = face_space()
    healthy = person_vertices(space, person_rng(7, "cohort", "subject07"), with_detail=True)
    head = flame_structured_head(space, healthy)
    v, f = np.asarray(head.vertices), np.asarray(head.faces)
    print(f"FLAME-structured head: {len(v)} vertices, {len(f)} faces, {len(boundary_loops(f))} holes, 2 eyeball shells")

    reps = 5  # both methods: one untimed warm-up call, then the same number of timed calls (median)

    ours, (hv, hf, info) = warm_median_seconds(lambda: remove_stray_components(v, f), reps)
    print(f"facecover remove_stray_components: {1000 * ours:.1f} ms (median of {reps} after a warm-up), dropped "
          f"{info['dropped_vertices']} vertices")
    try:
        from cirmesh import augment
    except ImportError:
        print("CirMesh not installed (pip install cirmesh): no baseline ratio")
    else:
        cir, out = warm_median_seconds(lambda: augment.removeEyeBalls(trimesh.Trimesh(v, f, process=False)), reps)
        kept = len(np.unique(np.asarray(out.faces)))
        print(f"CirMesh removeEyeBalls: {1000 * cir:.1f} ms (median of {reps} after a warm-up; kept {kept} vertices), "
              "same mesh, same run")
        print(f"speed-up: {cir / ours:.0f}x")
        try:
            augment.fixNonWatertight(trimesh.Trimesh(hv, hf, process=False))
            print("CirMesh fixNonWatertight: ran")
        except AttributeError as exc:
            print(f"CirMesh fixNonWatertight: fails with current pymeshfix ({exc})")
    start = time.perf_counter()
    wv, wf, report = make_watertight(v, f)
    print(f"facecover make_watertight on the head: {time.perf_counter() - start:.2f} s, watertight="
          f"{trimesh.Trimesh(wv, wf, process=False).is_watertight}, holes filled {report['holes']}")

    printer = PrinterSettings()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1, args.subjects + 1):
            name = f"subject{i:02d}"
            face_v = person_vertices(space, person_rng(7, "cohort", name), with_detail=True)
            scars = simulate_scars(prepare_face(face_v, space["faces"], space["regions"]),
                                   person_rng(7, "scars", f"{name}/00"))
            start = time.perf_counter()
            sv, sf, _ = make_watertight(face_v, space["faces"])
            cv, cf, rep = cover_solid(scars["vertices"], space["faces"], sv, sf)
            cv = place_on_bed(cv, cf, printer)
            check_printable(cv, cf, printer, 1.0, name)
            trimesh.Trimesh(cv, cf, process=False).export(Path(tmp) / f"{name}.stl")
            times.append(time.perf_counter() - start)
            print(f"{name}: watertight + filling + checked STL {times[-1]:.2f} s, cover {rep['volume_mm3']:.0f} mm³")
    print(f"\nper subject (no slicing): mean {np.mean(times):.2f} s, max {np.max(times):.2f} s over {len(times)} subjects")


if __name__ == "__main__":
    main()
