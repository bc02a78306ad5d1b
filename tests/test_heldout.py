"""Held-out faces made another way than the shape space's people (`facecover.heldout`)."""

import numpy as np

from facecover.cohort import population
from facecover.heldout import warped_faces
from facecover.shape_space import rigid_generators


def _outside_span_mm(space: dict, faces: np.ndarray) -> float:
    """Mean vertex distance (mm) of faces from the template plus the span of the shape space's modes
    (main and detail) and rigid motions."""
    v = space["vertices"]
    modes = np.concatenate([space["basis"], space["detail"]]).reshape(-1, v.size).astype(np.float64)
    Q = np.linalg.qr(np.c_[modes.T, rigid_generators(v).T])[0]
    d = (faces - v).reshape(len(faces), -1)
    rest = d - (d @ Q) @ Q.T
    return float(np.linalg.norm(rest.reshape(len(faces), -1, 3), axis=2).mean())


def test_warped_faces_are_seeded_per_face_and_leave_the_shape_space(space):
    faces = warped_faces(space, 4, seed=3)
    assert faces.shape == (4, *space["vertices"].shape)
    np.testing.assert_array_equal(faces[:2], warped_faces(space, 2, seed=3))  # face i depends on (seed, i) only
    assert not np.allclose(faces, warped_faces(space, 4, seed=4))
    change = faces - space["vertices"]
    # a change of shape, not of pose: no rigid part left, and millimetres of it
    assert np.abs(change.reshape(4, -1) @ rigid_generators(space["vertices"]).T).max() < 1e-6
    assert 1.0 < np.linalg.norm(change, axis=2).mean() < 5.0
    # the shape space's own people lie in its span; these faces lie well outside it
    drawn = population(space, 3, "heldout", 4, with_detail=True)
    assert _outside_span_mm(space, drawn) < 1e-3
    assert _outside_span_mm(space, faces) > 0.3


def test_validation_faces_with_an_expression_leave_the_identity_space_and_differ_from_the_neutral_set(space):
    """`cohort_warped` (validation for what a scan shows beyond a neutral face): template topology, an
    expression of the named kind and a smooth warp on top of people made like the cohort's — millimetres
    outside the identity space and its detail, where the neutral `cohort` people lie inside it."""
    from facecover.heldout import patient_faces

    warped = patient_faces(space, "cohort_warped", 3, seed=2)
    neutral = patient_faces(space, "cohort", 3, seed=2)
    assert [f.notes["expression"] for f in warped] == ["squint", "smile", "mouth_open"]
    assert all(f.vertices.shape == space["vertices"].shape and f.faces is space["faces"] for f in warped)
    np.testing.assert_array_equal(warped[1].vertices, patient_faces(space, "cohort_warped", 2, seed=2)[1].vertices)
    outside = _outside_span_mm(space, np.stack([f.vertices for f in warped]))
    inside = _outside_span_mm(space, np.stack([f.vertices for f in neutral]))
    assert outside > 0.5 and inside < 0.05, (outside, inside)
