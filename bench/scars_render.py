"""Benchmark: time per scar vs CirMesh, and render throughput.

On one synthetic face (template topology, 7160 vertices, mm):
* facecover's `one_scar` for each kind, and CirMesh's `circleScar` (the seed
  authors' library, z-only ring growth in Python loops) on the same mesh in
  the same run; prints ms per scar and the ratio;
* images per second of `render_views` at 256² (Open3D ray casting, scene
  built once per mesh as the render stage does, and rebuilt per image).

    .venv/bin/python bench/scars_render.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import trimesh

from facecover.cohort import person_rng, person_vertices
from facecover.render import DEFAULT_LIGHTS, Scene, frontal_camera, render_views, view_setups
from facecover.scars import KINDS, prepare_face, one_scar
from facecover.shape_space import face_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    space = face_space()
    v = person_vertices(space, person_rng(7, "cohort", "subject01"), with_detail=True)
    f = space["faces"]

    start = time.perf_counter()
    face = prepare_face(v, f, space["regions"])
    prep = time.perf_counter() - start
    rng = np.random.default_rng(0)
    per_kind = {}
    for kind in KINDS:
        start = time.perf_counter()
        for i in range(args.repeats):
            one_scar(face, kind, ("forehead", "nose", "cheek_left", "mouth", "chin")[i % 5], rng)
        per_kind[kind] = (time.perf_counter() - start) / args.repeats
    ours = float(np.mean(list(per_kind.values())))
    print(f"facecover: per-face preparation {1000 * prep:.1f} ms (once per subject, shared by all variants)")
    for kind, sec in per_kind.items():
        print(f"facecover {kind} scar: {1000 * sec:.2f} ms per scar")

    try:
        from cirmesh import augment
    except ImportError:
        print("CirMesh not installed (pip install cirmesh): no baseline ratio")
    else:
        mesh = trimesh.Trimesh(v, f, process=False)
        faces_of_vertex = augment.func_ListFaceOfVertice(mesh)
        lo, hi = augment.func_EyeSpace(mesh.vertices)
        np.random.seed(0)
        n = max(3, args.repeats // 5)
        start = time.perf_counter()
        for _ in range(n):
            augment.circleScar(mesh, None, None, faces_of_vertex, lo, hi)
        cir = (time.perf_counter() - start) / n
        print(f"CirMesh circleScar: {1000 * cir:.1f} ms per scar (z-only ring steps, same mesh, same run)")
        print(f"speed-up per scar: {cir / ours:.0f}x (facecover mean over kinds), {cir / per_kind['round']:.0f}x (round vs circleScar)")

    pts = v[:5]
    setups = view_setups(np.random.default_rng(1), 24)
    start = time.perf_counter()
    views = render_views(v, f, pts, setups, 256, 230.0)
    sec = time.perf_counter() - start
    print(f"render 256x256, scene built once per mesh: {len(views) / sec:.1f} images/s")
    start = time.perf_counter()
    for s in setups[:12]:
        Scene(v, f).render(frontal_camera(np.zeros(3), 230.0, 256, yaw_deg=s["yaw"]), DEFAULT_LIGHTS)
    print(f"render 256x256, scene rebuilt per image: {12 / (time.perf_counter() - start):.1f} images/s")


if __name__ == "__main__":
    main()
