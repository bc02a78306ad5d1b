"""Dense scans in ingest: the fast helpers give what the library functions they replace give, the blocked
normal equations of the shape fit are the stacked Jacobian's, and a scan simplified for the rigid start
registers as well as the full scan (issue 27, "Dense real scans")."""

import dataclasses

import numpy as np
import pytest
import trimesh

from facecover.ingest import (RegistrationSettings, _jacobian, _twist_pose, face_component_labels, fit_shape_space,
                              ingest_scan, scan_boundary_mask, scan_vertex_normals, shape_fit_basis, simplified_scan)
from facecover.meshtools import apply_transform, boundary_vertex_mask, vertex_normals


@pytest.fixture(scope="module")
def holed_mesh():
    """A face-sized open surface with holes, a detached piece and a non-manifold edge (three triangles)."""
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=80.0)
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    keep = ~((v[f][:, :, 2] < -20.0).all(axis=1))                       # open the back
    keep &= ~(np.linalg.norm(v[f].mean(axis=1) - [0, 0, 80.0], axis=1) < 12.0)  # a hole in front
    f = f[keep]
    island = np.array([[0, 1, 2]]) + len(v)                               # a detached triangle
    fin = np.array([[f[0, 0], f[0, 1], len(v) + 3]])                      # a third triangle on an edge
    v = np.r_[v, [[200.0, 0, 0], [201.0, 0, 0], [200.0, 1.0, 0], [0, 0, 300.0]]]
    return v, np.r_[f, island, fin]


def test_fast_boundary_normals_and_components_match_the_library(holed_mesh):
    v, f = holed_mesh
    assert np.array_equal(scan_boundary_mask(f, len(v)), boundary_vertex_mask(f, len(v)))
    assert np.allclose(scan_vertex_normals(v, f), vertex_normals(v, f), atol=1e-12)
    mesh = trimesh.Trimesh(v, f, process=False)
    expected = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(f))
    labels = face_component_labels(f)
    assert np.array_equal(labels, expected) and labels.max() >= 2


def test_simplified_scan_keeps_the_surface(holed_mesh):
    v, f = holed_mesh
    v, f = v[:-4], f[:-2]  # the sphere part
    sv, sf = simplified_scan(v, f, 3000)
    assert 0.6 * 3000 < len(sv) < 1.4 * 3000
    assert len(np.unique(sf)) == len(sv) and (sf[:, 0] != sf[:, 1]).all() and (sf[:, 1] != sf[:, 2]).all()
    radius = np.linalg.norm(sv, axis=1)  # cell averages lie just inside the sphere, never far from it
    assert np.abs(radius - 80.0).max() < 1.0
    assert trimesh.Trimesh(sv, sf, process=False).area == pytest.approx(trimesh.Trimesh(v, f).area, rel=0.05)


def _fit_stacked(space, scan_points, scan_boundary, pose, settings):
    """The shape fit as it was written before (stacked Jacobian, A^T A): the reference."""
    from scipy.spatial import cKDTree

    mean, faces = space["vertices"], space["faces"]
    B = shape_fit_basis(space, settings)  # identity modes, then the expressions
    k = len(B)
    tree = cKDTree(scan_points)
    center = apply_transform(pose, mean).mean(axis=0)
    x, eye3 = np.zeros(k + 6), np.eye(3)
    for it in range(settings.fit_iterations):
        frac = it / max(settings.fit_iterations - 1, 1)
        lam = settings.prior_weight_start * (settings.prior_weight_end / settings.prior_weight_start) ** frac
        z, T = x[:k], _twist_pose(x[k:], pose, center)
        Vs = apply_transform(T, mean + np.tensordot(z, B, axes=1))
        d, j = tree.query(Vs)
        ok = ~scan_boundary[j] & (d < max(3.0 * np.median(d), 2.0))
        q, p = Vs[ok], scan_points[j[ok]]
        n = vertex_normals(Vs, faces)[ok]
        J = _jacobian(T[:3, :3], B[:, ok], q - center, eye3)
        A = np.concatenate([np.einsum("na,nak->nk", n, J), settings.point_weight * J.reshape(-1, k + 6)])
        b = np.concatenate([np.einsum("na,na->n", n, p - q), settings.point_weight * (p - q).ravel()])
        reg = np.r_[np.full(k, lam), np.zeros(6)]
        x = x + np.linalg.solve(A.T @ A + np.diag(reg), A.T @ b - reg * x)
    return x[:k], _twist_pose(x[k:], pose, center)


def test_blocked_shape_fit_equals_the_stacked_jacobian(space, make_scan):
    from facecover.files import load_mesh

    path, _, pose = make_scan(subject="subject03", seed=5)
    scan = load_mesh(path)
    points = np.asarray(scan.vertices)
    boundary = scan_boundary_mask(np.asarray(scan.faces), len(points))
    start = pose.copy()
    start[:3, 3] += [1.5, -1.0, 2.0]  # a little off, so the pose moves too
    settings = RegistrationSettings(fit_iterations=6)
    z, T = fit_shape_space(space, points, boundary, start, settings)
    z_ref, T_ref = _fit_stacked(space, points, boundary, start, settings)
    assert np.abs(z - z_ref).max() < 1e-9 and np.abs(T - T_ref).max() < 1e-9
    assert np.abs(z).max() > 0.1  # the fit did something


def test_simplified_rigid_start_registers_like_the_full_scan(space, make_scan):
    """A scan denser than `max_scan_points` (here the threshold is lowered, so a default scan counts as
    dense) gets its rigid start on a simplified copy; the registration is as accurate as with the full
    scan (max_scan_points 0, the old path) and the report says how many points the rigid start saw."""
    path, truth, _ = make_scan(subject="subject02", seed=7)
    dense = ingest_scan(path, space, settings=RegistrationSettings(max_scan_points=5000))
    full = ingest_scan(path, space, settings=dataclasses.replace(RegistrationSettings(), max_scan_points=0))
    err_dense = np.linalg.norm(dense.vertices - truth, axis=1).mean()
    err_full = np.linalg.norm(full.vertices - truth, axis=1).mean()
    assert err_dense <= 1.0 and abs(err_dense - err_full) < 0.1, (err_dense, err_full)
    assert 3000 < dense.report["rigid_points"] < 7000
    assert full.report["rigid_points"] == full.report["cleaning"]["after"]["vertices"]
