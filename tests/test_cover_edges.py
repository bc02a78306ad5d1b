"""The cover's rim: rounded with the configured radius (a bull nose), measured on a box edge.

A square plate patch 20 × 20 mm (1 mm grid, skin side z = 0, outer surface z = H) made solid by
`thickened_patch`: the box's edges along the outline are the rim. Without rounding the skin side meets
the rim at 90°; rounded, the profile across the rim is two quarter circles of radius R tangent to the
skin side and the outer surface, 4 facets each, so no edge there turns by more than 90° / 4.
"""

import numpy as np
import pytest

from facecover import FacecoverError
from facecover.filling import FillingSettings, thickened_patch
from facecover.meshtools import closed_and_consistent, face_normals

H = 3.0  # mm: the plate's thickness (more than 2 R, so the radius is not capped)
R = 0.5  # mm: the default edge radius
SEGMENTS = 4  # facets per quarter circle (thickened_patch's default)


def plate():
    x = np.arange(0, 20.01, 1.0)
    X, Y = np.meshgrid(x, x, indexing="ij")
    k = len(x)
    i, j = np.meshgrid(np.arange(k - 1), np.arange(k - 1), indexing="ij")
    a = (i * k + j).ravel()
    return np.c_[X.ravel(), Y.ravel(), np.zeros(X.size)], np.r_[np.c_[a, a + k, a + k + 1], np.c_[a, a + k + 1, a + 1]]


def edge_dihedrals(vertices, faces):
    """Each interior edge (k, 2) and the angle (k,) degrees between its two faces' normals."""
    normals = face_normals(vertices, faces)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    owner = np.tile(np.arange(len(faces)), 3)
    key = np.sort(e, axis=1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    key, owner = key[order], owner[order]
    pair = np.flatnonzero((key[1:] == key[:-1]).all(axis=1))
    cos = np.einsum("ij,ij->i", normals[owner[pair]], normals[owner[pair + 1]])
    return key[pair], np.degrees(np.arccos(np.clip(cos, -1, 1)))


def side_edges(vertices, edges):
    """Edges on the y = 0 side's rim (and its junctions), away from the plate's corners."""
    p = vertices[edges]
    return (p[:, :, 1] <= 1e-9).all(axis=1) & (p[:, :, 0] > 2).all(axis=1) & (p[:, :, 0] < 18).all(axis=1)


def circle_fit(points_2d):
    """Least-squares circle (centre (2,), radius) through 2D points (Kåsa fit)."""
    A = np.c_[2 * points_2d, np.ones(len(points_2d))]
    c, *_ = np.linalg.lstsq(A, (points_2d**2).sum(axis=1), rcond=None)
    return c[:2], float(np.sqrt(c[2] + c[:2] @ c[:2]))


def test_rim_is_rounded_with_the_edge_radius_on_a_box_edge():
    inner, f = plate()
    sharp_v, sharp_f = thickened_patch(inner, inner + [0, 0, H], f)
    edges, angle = edge_dihedrals(sharp_v, sharp_f)
    assert angle[side_edges(sharp_v, edges)].max() == pytest.approx(90.0, abs=1e-6)  # the raw cut: square edges

    v, faces = thickened_patch(inner, inner + [0, 0, H], f, edge_radius_mm=R)
    assert closed_and_consistent(faces) == (True, True)
    edges, angle = edge_dihedrals(v, faces)
    on_side = side_edges(v, edges)
    # measured: every edge across the rounded rim turns by 22.50° (90° / 4 facets): 0.01° tolerance
    assert angle[on_side].max() == pytest.approx(90.0 / SEGMENTS, abs=0.01)
    # the profile across the rim at x = 10: the points below the straight wall lie on a circle of radius R
    # centred R above the skin side's edge (y = 0, z = R), through the edge itself
    profile = v[(np.abs(v[:, 0] - 10) < 1e-9) & (v[:, 1] <= 1e-9)]
    lower = profile[profile[:, 2] <= R + 1e-9][:, 1:]  # (y, z)
    assert len(lower) == SEGMENTS + 1
    centre, radius = circle_fit(lower)
    # measured: radius 0.5000 mm, centre (0, 0.5) to 1e-12 (the ring points are on the circle exactly)
    assert radius == pytest.approx(R, abs=1e-6) and np.allclose(centre, [0.0, R], atol=1e-6)
    assert lower[:, 0].min() == pytest.approx(-R, abs=1e-9)  # the bull nose reaches R beyond the outline


def test_thin_rims_cap_the_radius_and_negative_values_are_errors():
    inner, f = plate()
    v, faces = thickened_patch(inner, inner + [0, 0, 1.0], f, edge_radius_mm=2.0)
    assert closed_and_consistent(faces) == (True, True)
    assert v[:, 1].min() == pytest.approx(-(0.5 - 0.02), abs=1e-9)  # capped just under half the 1 mm rim
    with pytest.raises(FacecoverError, match="filling.edge_radius_mm"):
        FillingSettings(edge_radius_mm=-1.0)
    with pytest.raises(FacecoverError, match="filling.clearance_mm"):
        FillingSettings(clearance_mm=-0.1)
