"""Eyeball removal, hole filling and closing a face into a watertight solid (mm, canonical pose).

`make_watertight` takes any face mesh looking along +z (a reconstruction in
FLAME or template topology, a registered scan):

1. keeps the largest connected piece — FLAME's two eyeball shells (closed,
   546 vertices each) and any stray bits are separate components, found with
   one vectorised connected-components pass;
2. if the longest boundary loop is the face outline (it spans most of the
   face seen from the front), extrudes it straight back to a plane
   `back_offset_mm` behind the face, so the solid has a flat back instead of a
   patch bulging over the rim;
3. fills every remaining hole — interior ones (FLAME mouth and neck, scan
   gaps) and the back plane — with MeshFix's hole filler with refinement
   (pymeshfix `PyTMesh.fill_small_boundaries`), which inserts and fairs new
   vertices so the patches are smooth;
4. checks the result is a closed, consistently wound solid (by index: MeshFix's
   coincident vertices are not merged) and orients it outward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymeshfix

from . import FacecoverError
from .meshtools import boundary_loops, closed_and_consistent, compact, face_components, mesh_volume, triangle_areas

FLAME_VERTICES = 5023
FLAME_EYEBALLS = (range(3931, 4477), range(4477, 5023))


@dataclass(frozen=True)
class WatertightSettings:
    back_offset_mm: float = 10.0  # flat back this far behind the rearmost face point
    outline_fraction: float = 0.7  # a rim spanning this much of the face (front view) is the face outline


def remove_stray_components(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Keep the largest connected piece by area (drops eyeballs and debris)."""
    labels = face_components(faces)
    area = triangle_areas(vertices, faces)
    per_component = np.bincount(labels, weights=area)
    keep = labels == per_component.argmax()
    v, f, kept = compact(vertices, faces[keep])
    dropped = np.setdiff1d(np.arange(len(vertices)), kept)
    info = {"components": int(len(per_component)), "dropped_vertices": int(len(dropped))}
    if len(vertices) == FLAME_VERTICES:
        eyeballs = np.r_[tuple(np.arange(r.start, r.stop) for r in FLAME_EYEBALLS)]
        info["flame_eyeballs_removed"] = bool(np.isin(eyeballs, dropped).all())
    return v, f, info


def extrude_rim_to_back_plane(vertices: np.ndarray, faces: np.ndarray, rim: np.ndarray,
                              back_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Add a side wall from the rim loop straight back (−z) to the plane z = back_z.

    The back opening is left for the hole filler. The wall's winding follows
    the rim's orientation so the result is consistently oriented.
    """
    back = vertices[rim].copy()
    back[:, 2] = back_z
    n = len(vertices)
    ids = n + np.arange(len(rim))
    a, b = rim, np.roll(rim, -1)
    a2, b2 = ids, np.roll(ids, -1)
    # boundary edge (a -> b) belongs to a face; the wall must use it as (b -> a)
    wall = np.r_[np.c_[b, a, a2], np.c_[b, a2, b2]]
    return np.r_[vertices, back], np.r_[faces, wall]


def fill_holes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill every boundary loop with MeshFix's refined, faired hole filling."""
    tin = pymeshfix.PyTMesh()
    tin.set_quiet(True)
    tin.load_array(vertices, faces)
    tin.fill_small_boundaries(nbe=0, refine=True)
    v, f = tin.return_arrays()
    return np.asarray(v, np.float64), np.asarray(f, np.int64)


def make_watertight(vertices: np.ndarray, faces: np.ndarray, settings: WatertightSettings = WatertightSettings(),
                    name: str = "mesh") -> tuple[np.ndarray, np.ndarray, dict]:
    """A closed, outward-oriented solid (vertices, faces) from a face mesh, and a report."""
    v, f, report = remove_stray_components(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    loops = boundary_loops(f, v)
    report["holes"] = len(loops)
    report["closed_with_back_plane"] = False
    if loops:
        rim = loops[0]
        span = np.ptp(v[rim, :2], axis=0) / np.maximum(np.ptp(v[:, :2], axis=0), 1e-9)
        if (span >= settings.outline_fraction).all():
            v, f = extrude_rim_to_back_plane(v, f, rim, v[:, 2].min() - settings.back_offset_mm)
            report["closed_with_back_plane"] = True
    v, f = fill_holes(v, f)
    watertight, consistent = closed_and_consistent(f)
    if not (watertight and consistent):
        raise FacecoverError(f"{name}: could not close the mesh into a watertight solid (watertight={watertight}, "
                             f"consistent winding={consistent}; {len(boundary_loops(f))} open loops remain)")
    volume = mesh_volume(v, f)
    if volume < 0:  # closed and consistently wound, but inside out
        f, volume = f[:, ::-1], -volume
    if volume <= 0:
        raise FacecoverError(f"{name}: the closed solid has non-positive volume {volume:.1f} mm³")
    report.update(volume_mm3=volume, vertices=len(v), faces=len(f))
    return v, f, report
