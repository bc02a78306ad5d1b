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
    # adult standard deviations are a few millimetres (Farkas 1994)
    assert 3.0 < m["breadth"].std() < 9.0, m["breadth"].std()
    assert 1.0 < m["nose_length"].std() < 6.0
    assert 2.0 < m["lower_face"].std() < 9.0
    assert 0.5 < m["mouth_width"].std() < 6.0
    assert abs(m["breadth"].mean() - 140.0) < 2.0
    displacement = np.linalg.norm(people - space["vertices"], axis=2)
    assert 1.5 < np.sqrt((displacement**2).mean()) < 6.0
    assert displacement.max() < 25.0  # no wild shapes


def test_modes_are_orthogonal_to_rigid_motion(space):
    Q = rigid_generators(space["vertices"])
    flat = space["basis"].reshape(len(space["basis"]), -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1)
    assert np.abs(flat @ Q.T).max() / norms.min() < 1e-4


def test_populations_are_deterministic_and_disjoint(space):
    a = population(space, seed=5, name="pool", count=3)
    b = population(space, seed=5, name="pool", count=3)
    c = population(space, seed=5, name="cohort", count=3)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_shape_space_is_bit_for_bit_reproducible(space):
    from facecover.shape_space import build_shape_space

    again = build_shape_space(space["vertices"], space["faces"], space["landmark_names"], space["landmark_vertices"])
    for key in ("basis", "sigma", "detail"):
        assert np.array_equal(again[key], space[key])
