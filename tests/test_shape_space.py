import numpy as np

from facecover.cohort import population
from facecover.shape_space import rigid_generators


def _measure(space, people):
    names = list(space["landmark_names"])
    lv = space["landmark_vertices"]
    at = lambda n: people[:, lv[names.index(n)]]  # noqa: E731
    return {
        "breadth": np.ptp(people[:, :, 0], axis=1),
        "nose_length": at("nasion")[:, 1] - at("nose_tip")[:, 1],
        "lower_face": at("nose_tip")[:, 1] - at("chin")[:, 1],
        "mouth_width": np.linalg.norm(at("mouth_left") - at("mouth_right"), axis=1),
    }


def test_population_spread_is_anthropometric(space):
    people = population(space, seed=3, name="pool", count=200)
    m = _measure(space, people)
    # adult standard deviations are a few millimetres (Farkas 1994: bizygomatic breadth s.d. ≈ 6 mm); the
    # people are ICT-FaceKit's, whose template-width s.d. measures 7.7 mm over these 200 (the template's
    # x-extent runs a little beyond the zygia)
    assert 5.0 < m["breadth"].std() < 10.0, m["breadth"].std()
    assert 1.0 < m["nose_length"].std() < 6.0
    assert 2.0 < m["lower_face"].std() < 9.0
    assert 0.5 < m["mouth_width"].std() < 6.0
    assert 135.0 < m["breadth"].mean() < 160.0, m["breadth"].mean()  # 148 mm measured
    displacement = np.linalg.norm(people - space["vertices"], axis=2)
    assert 1.5 < np.sqrt((displacement**2).mean()) < 6.0
    assert displacement.max() < 25.0  # no wild shapes


def test_modes_are_orthogonal_to_rigid_motion(space):
    """Rigid motions built here (3 translations, 3 small rotations about the origin and, separately,
    about the face's centroid) are not explained by the modes: no mode has a component along them."""
    v = space["vertices"].astype(np.float64)
    fields = [np.tile(np.eye(3)[k], (len(v), 1)) for k in range(3)]
    for centre in (np.zeros(3), v.mean(axis=0)):
        fields += [np.cross(np.eye(3)[k], v - centre) for k in range(3)]
    U, sv, _ = np.linalg.svd(np.stack([f.ravel() for f in fields], axis=1), full_matrices=False)
    G = U[:, sv > 1e-8 * sv[0]]  # orthonormal basis of the rigid motions (3n, 6)
    assert G.shape[1] == 6
    flat = space["basis"].reshape(len(space["basis"]), -1).astype(np.float64)
    flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    assert np.abs(flat @ G).max() < 1e-3
    assert np.linalg.matrix_rank(G.T @ rigid_generators(v).T, tol=1e-6) == 6  # the code's generators: the same space


def test_populations_are_deterministic_and_disjoint(space):
    a = population(space, seed=5, name="pool", count=3)
    b = population(space, seed=5, name="pool", count=3)
    c = population(space, seed=5, name="cohort", count=3)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_shape_space_is_bit_for_bit_reproducible(space):
    """The whole face space (the registration onto the ICT face included) comes out the same again."""
    from facecover.shape_space import face_space

    again = face_space()
    for key in ("vertices", "basis", "sigma", "detail", "regions", "landmark_vertices", "handmade_basis"):
        assert np.array_equal(again[key], space[key]), key
