"""The shared mesh helpers agree with trimesh, the library they stand in for where a stage must start fast."""

import numpy as np
import pytest
import trimesh

from facecover import FacecoverError
from facecover.meshtools import (DistanceScene, face_normals, mesh_volume, rigid_transform, sample_surface, subdivide,
                                 triangle_areas)


def _bumpy_sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=30.0)
    v = mesh.vertices * (1.0 + 0.1 * np.sin(3 * mesh.vertices[:, :1] / 30.0))
    return np.asarray(v), np.asarray(mesh.faces)


def test_sample_surface_draws_trimeshs_points_and_their_barycentrics():
    v, f = _bumpy_sphere()
    points, face_idx, bary = sample_surface(v, f, 3000, seed=11)
    expected, expected_idx = trimesh.sample.sample_surface(trimesh.Trimesh(v, f, process=False), 3000, seed=11)
    np.testing.assert_array_equal(face_idx, expected_idx)
    np.testing.assert_allclose(points, expected, atol=1e-9)
    assert (bary >= 0).all() and np.allclose(bary.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.einsum("nk,nkd->nd", bary, v[f[face_idx]]), points, atol=1e-9)


def test_face_normals_volume_and_areas_match_trimesh():
    v, f = _bumpy_sphere()
    mesh = trimesh.Trimesh(v, f, process=False)
    np.testing.assert_allclose(face_normals(v, f), mesh.face_normals, atol=1e-12)
    np.testing.assert_allclose(triangle_areas(v, f), mesh.area_faces, rtol=1e-12)
    assert abs(mesh_volume(v, f) - mesh.volume) < 1e-6 * mesh.volume


def test_subdivide_keeps_the_surface_and_carries_values_to_midpoints():
    v, f = _bumpy_sphere()
    values = (np.arange(len(v)) % 2).astype(float)
    nv, nf, carried = subdivide(v, f, values)
    assert len(nf) == 4 * len(f)
    np.testing.assert_array_equal(nv[:len(v)], v)  # the original vertices first, unmoved
    assert abs(triangle_areas(nv, nf).sum() - triangle_areas(v, f).sum()) < 1e-6
    assert abs(mesh_volume(nv, nf) - mesh_volume(v, f)) < 1e-6  # same surface, same orientation
    # every new vertex is the midpoint of an edge, and carries the mean of the edge's two values
    edges = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0)
    mid = 0.5 * (v[edges[:, 0]] + v[edges[:, 1]])
    order = {tuple(np.round(p, 9)): k for k, p in enumerate(mid)}
    k = np.array([order[tuple(np.round(p, 9))] for p in nv[len(v):]])
    np.testing.assert_allclose(carried[len(v):, 0], 0.5 * (values[edges[k, 0]] + values[edges[k, 1]]))


def test_distance_scene_gives_exact_closest_point_distances():
    v, f = _bumpy_sphere()
    rng = np.random.default_rng(3)
    points = rng.uniform(-45, 45, (400, 3))
    expected = np.abs(trimesh.proximity.signed_distance(trimesh.Trimesh(v, f, process=False), points))
    np.testing.assert_allclose(DistanceScene(v, f)(points), expected, atol=1e-6)


def test_rigid_transform_matches_trimeshs_procrustes_and_ignores_zero_weights():
    v, _ = _bumpy_sphere()
    rng = np.random.default_rng(3)
    R_true = trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
    moved = v @ R_true.T + [5.0, -2.0, 40.0] + rng.normal(0, 0.2, v.shape)
    moved[:50] += 30.0  # outliers, left out by their weight
    weights = np.r_[np.zeros(50), np.ones(len(v) - 50)]
    R, t = rigid_transform(v, moved, weights)
    expected = trimesh.registration.procrustes(v, moved, weights=weights, reflection=False, scale=False,
                                               return_cost=False)
    np.testing.assert_allclose(R, expected[:3, :3], atol=1e-9)
    np.testing.assert_allclose(t, expected[:3, 3], atol=1e-9)
    assert np.allclose(R, R_true, atol=1e-3) and np.isclose(np.linalg.det(R), 1.0)
    with pytest.raises(FacecoverError, match="every weight is 0"):
        rigid_transform(v, moved, np.zeros(len(v)))
