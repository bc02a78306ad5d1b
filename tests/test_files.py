import numpy as np
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


def _ply(path, faces, binary=True, truncate=0):
    """A PLY of a unit square's 4 vertices and the given faces (lists of vertex ids)."""
    from plyfile import PlyData, PlyElement

    v = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], [("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    f = np.empty(len(faces), [("vertex_indices", object)])
    f["vertex_indices"] = [np.asarray(x, np.int32) for x in faces]
    PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")], text=not binary).write(str(path))
    if truncate:
        path.write_bytes(path.read_bytes()[:-truncate])
    return path


@pytest.mark.parametrize("binary", [True, False])
def test_load_mesh_arrays_reads_triangles_and_quads_alike(tmp_path, binary):
    from facecover.files import load_mesh_arrays

    v, f = load_mesh_arrays(_ply(tmp_path / "tri.ply", [[0, 1, 2], [0, 2, 3]], binary))
    assert v.dtype == np.float64 and f.dtype == np.int64
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(v[2], [1, 1, 0])
    # a quad is not a triangle list: it goes through trimesh, which splits it into the same two triangles
    v, f = load_mesh_arrays(_ply(tmp_path / "quad.ply", [[0, 1, 2, 3]], binary))
    assert f.shape == (2, 3) and set(f.ravel()) == {0, 1, 2, 3}


def test_load_mesh_arrays_names_a_truncated_file(tmp_path):
    from facecover.files import load_mesh_arrays

    with pytest.raises(FacecoverError, match="cut.ply"):
        load_mesh_arrays(_ply(tmp_path / "cut.ply", [[0, 1, 2], [0, 2, 3]], truncate=10))
