import pytest

from facecover.cohort import ScanSettings, disk_parameterization, person_rng, person_vertices, synthetic_scan
from facecover.files import save_mesh
from facecover.shape_space import face_space


@pytest.fixture(scope="session")
def space() -> dict:
    """Template + shape space, built once per test session (about 3 s)."""
    return face_space()


@pytest.fixture(scope="session")
def uv(space):
    return disk_parameterization(space["vertices"], space["faces"])


@pytest.fixture
def make_scan(space, uv, tmp_path):
    """Write a synthetic subject's scan; returns (scan path, true vertices, pose)."""

    def make(subject="subject01", seed=1, settings=ScanSettings(), scale=1.0):
        rng = person_rng(seed, "cohort", subject)
        truth = person_vertices(space, rng, with_detail=True)
        v, f, pose = synthetic_scan(truth, space["faces"], uv, rng, settings)
        path = tmp_path / f"{subject}.ply"
        save_mesh(path, v * scale, f)
        return path, truth, pose

    return make


@pytest.fixture(scope="session")
def space_file(space, tmp_path_factory):
    from facecover.files import save_npz

    path = tmp_path_factory.mktemp("model") / "face_space.npz"
    save_npz(path, **space)
    return path


@pytest.fixture(scope="session")
def model(space):
    """A PCA decoder of 120 pool faces and the fit's noise level measured on 10 others."""
    import numpy as np

    from facecover.learn.decoder import pca_decoder
    from facecover.learn.infer import fit_noise

    pool = np.stack([person_vertices(space, person_rng(4, "pool", f"p{i}"), with_detail=True) for i in range(130)])
    decoder = pca_decoder(pool[:120], 60)
    return decoder, fit_noise(decoder, space["faces"], pool[120:])
