import pytest

from facecover import FacecoverError
from facecover.files import atomic_path, load_mesh


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "scan.xyz"
    p.write_text("1 2 3\n")
    with pytest.raises(FacecoverError, match="scan.xyz.*unsupported"):
        load_mesh(p)
