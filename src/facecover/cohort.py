"""Synthetic people and synthetic raw scans (the embedded default data source).

Two disjoint populations come from one shape space (see `shape_space`):
the *pool* (clean identities standing in for large outside data) and the
*cohort* (subjects with scans). Each person is drawn from a generator seeded
by (config seed, population, name), so a subject never depends on how many
others are made.

A synthetic scan looks like what a scanner delivers: the surface is resampled
evenly (about `point_spacing_mm` apart) and re-triangulated with its own
Delaunay triangulation, displaced by scanner noise along the normal, given a
few small holes, and placed in a random rigid pose. Millimetres throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse.linalg as spla
from scipy.spatial import Delaunay, cKDTree

from .meshtools import (boundary_loops, compact, face_normals, graph_laplacian, sample_surface, triangle_areas,
                        vertex_normals)
from .seeds import person_rng
from .shape_space import identity_vertices, sample_coefficients

if TYPE_CHECKING:  # annotations only: trimesh is imported where a mesh is made
    import trimesh


def person_vertices(space: dict, rng: np.random.Generator, with_detail: bool) -> np.ndarray:
    """Vertices (n, 3) mm of one synthetic identity in canonical pose.

    People are drawn from the space's first `people_modes` modes (the real-anatomy identity modes; the
    rest only widen the registration's prior). `with_detail` adds fine individual detail outside the
    main basis.
    """
    k = int(space.get("people_modes", len(space["sigma"])))
    z = sample_coefficients(rng, 1, k)[0]
    v = identity_vertices(space["vertices"], space["basis"][:k], space["sigma"][:k], z)
    if with_detail:
        zd = sample_coefficients(rng, 1, len(space["detail_sigma"]))[0]
        v = v + np.tensordot(zd * space["detail_sigma"], space["detail"], axes=1)
    return v


def population(space: dict, seed: int, name: str, count: int, with_detail: bool = False) -> np.ndarray:
    """Identities (count, n, 3) mm of a population, e.g. the pool."""
    return np.stack([person_vertices(space, person_rng(seed, name, f"{name}{i:05d}"), with_detail)
                     for i in range(count)])


def boundary_loop(faces: np.ndarray) -> np.ndarray:
    """Vertex indices of the longest boundary loop of a triangle mesh, in order."""
    return boundary_loops(faces)[0]


def disk_parameterization(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Tutte embedding (n, 2) of a disk-topology mesh: boundary on the unit circle by arc length.

    Uniform weights make the map bijective (Tutte's theorem), so points sampled
    on the surface keep their order in the plane and can be triangulated there.
    """
    n = len(vertices)
    loop = boundary_loop(faces)
    seg = np.linalg.norm(vertices[np.roll(loop, -1)] - vertices[loop], axis=1)
    angle = 2 * np.pi * np.r_[0, np.cumsum(seg)[:-1]] / seg.sum()
    uv = np.zeros((n, 2))
    uv[loop] = np.c_[np.cos(angle), np.sin(angle)]
    lap = graph_laplacian(faces, n)
    interior = np.setdiff1d(np.arange(n), loop)
    lii = lap[interior][:, interior].tocsc()
    rhs = -lap[interior][:, loop] @ uv[loop]
    solve = spla.factorized(lii)
    uv[interior] = np.c_[solve(rhs[:, 0]), solve(rhs[:, 1])]
    return uv


@dataclass(frozen=True)
class ScanSettings:
    """How a synthetic scan is made (mm and degrees)."""

    point_spacing_mm: float = 1.2
    noise_mm: float = 0.2
    holes: int = 3
    hole_radius_mm: tuple[float, float] = (2.0, 5.0)
    max_rotation_deg: float = 45.0
    max_translation_mm: float = 100.0


def random_rotation(rng: np.random.Generator, max_angle_deg: float) -> np.ndarray:
    """Rotation (3, 3) about a uniformly random axis by an angle up to max_angle_deg."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(0, max_angle_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def synthetic_scan(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, rng: np.random.Generator,
                   settings: ScanSettings = ScanSettings()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A scanner-like mesh of the surface (vertices (n, 3), faces (m, 3)) and the pose (4, 4) applied.

    `uv` is the template's disk parameterization, used to triangulate the
    resampled points with their own Delaunay triangulation.
    """
    area_per_point = settings.point_spacing_mm**2 * np.sqrt(3) / 2
    count = int(triangle_areas(vertices, faces).sum() / area_per_point)
    points, face_idx, bary = sample_surface(vertices, faces, count, seed=int(rng.integers(2**31)))
    p_uv = np.einsum("nk,nkd->nd", bary, uv[faces[face_idx]])
    # relax the random samples towards even spacing: drop points too close to a kept one
    keep = _thin(points, 0.6 * settings.point_spacing_mm)
    points, p_uv, face_idx = points[keep], p_uv[keep], face_idx[keep]
    rim = boundary_loop(faces)
    points = np.r_[points, vertices[rim]]
    p_uv = np.r_[p_uv, uv[rim]]
    tri = Delaunay(p_uv).simplices
    normals = vertex_normals(vertices, faces)
    pt_normals = np.r_[face_normals(vertices, faces)[face_idx], normals[rim]]
    points = points + rng.normal(0, settings.noise_mm, len(points))[:, None] * pt_normals
    tri = tri[_triangle_ok(points, tri, 6 * settings.point_spacing_mm)]
    for _ in range(settings.holes):
        centre = points[rng.integers(len(points))]
        radius = rng.uniform(*settings.hole_radius_mm)
        inside = np.linalg.norm(points - centre, axis=1) < radius
        tri = tri[~inside[tri].any(axis=1)]
    # orientation: Delaunay in the plane gives consistent winding; match the surface normals
    if np.mean(np.einsum("ij,ij->i", face_normals(points, tri), pt_normals[tri[:, 0]])) < 0:
        tri = tri[:, ::-1]
    points, tri, _ = compact(points, tri)
    pose = np.eye(4)
    pose[:3, :3] = random_rotation(rng, settings.max_rotation_deg)
    pose[:3, 3] = rng.uniform(-settings.max_translation_mm, settings.max_translation_mm, 3)
    return points @ pose[:3, :3].T + pose[:3, 3], tri, pose


def injured_surface(vertices: np.ndarray, faces: np.ndarray, displacement_mm: np.ndarray,
                    normal_smoothing_mm: float) -> np.ndarray:
    """The true surface (n, 3) mm with a wound: each vertex moved by its signed displacement (n,) mm along the
    surface's normal smoothed over `normal_smoothing_mm` (as the scar simulation moves the registered face)."""
    from .meshtools import smoothed_normals

    normals = smoothed_normals(np.asarray(vertices, np.float64), faces, normal_smoothing_mm)
    return vertices + np.asarray(displacement_mm, np.float64)[:, None] * normals


def _thin(points: np.ndarray, min_dist: float) -> np.ndarray:
    """Indices of a subset of points no two closer than min_dist (greedy, in input order)."""
    tree = cKDTree(points)
    removed = np.zeros(len(points), bool)
    for i, j in sorted(tree.query_pairs(min_dist, output_type="ndarray").tolist()):
        if not removed[i]:
            removed[j] = True
    return np.flatnonzero(~removed)


def _triangle_ok(points: np.ndarray, tri: np.ndarray, max_edge: float) -> np.ndarray:
    """Mask of triangles whose 3D edges are all shorter than max_edge (drops stretched hull slivers)."""
    p = points[tri]
    edges = np.linalg.norm(p - np.roll(p, 1, axis=1), axis=2)
    return edges.max(axis=1) < max_edge


def flame_structured_head(space: dict, vertices: np.ndarray) -> trimesh.Trimesh:
    """A test head with FLAME's structure from a face (n, 3) mm: closed with a flat back, a mouth
    opening, a round "neck" opening in the back, and two separate closed eyeball shells (546 vertices
    each, like FLAME's) behind the eyes."""
    import trimesh

    from .template import landmark_positions
    from .watertight import make_watertight

    v, f, _ = make_watertight(vertices, space["faces"])
    mesh = trimesh.Trimesh(v, f, process=False)
    names = ("mouth_left", "mouth_right", "eye_left", "eye_right")
    lm = dict(zip(names, landmark_positions(space, vertices, names)))
    centres = mesh.triangles_center
    lips = mesh.nearest.on_surface([0.5 * (lm["mouth_left"] + lm["mouth_right"])])[0][0]
    mouth = np.linalg.norm(centres - lips, axis=1) < 8.0
    neck = np.linalg.norm(centres - [0.0, v[:, 1].min() + 50.0, v[:, 2].min()], axis=1) < 25.0
    head = trimesh.Trimesh(v, f[~(mouth | neck)], process=False)
    head.remove_unreferenced_vertices()
    parts = [head]
    for eye in ("eye_left", "eye_right"):
        ball = trimesh.creation.uv_sphere(radius=12.0, count=[10, 34])  # 546 vertices, like FLAME
        ball.apply_translation(lm[eye] - [0, 0, 10.0])
        parts.append(ball)
    return trimesh.util.concatenate(parts)
