"""File I/O with clear errors and atomic writes (temp file, then rename).

Every writer here creates its output next to the final path under a hidden
temporary name and renames it into place only when complete, so an
interrupted or failed step never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import FacecoverError

MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in the same folder; rename it to `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs follow the umask like any file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_paths(*paths):
    """Like `atomic_path` for several outputs: all are renamed into place only if every step succeeded."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]


def load_mesh(path: str | os.PathLike):
    """Load a triangle mesh (.ply/.obj/.stl/.off) without modifying it.

    Raises FacecoverError naming the file when it is missing, empty, unreadable
    or holds no triangles. Returns a trimesh.Trimesh.
    """
    import trimesh

    path = Path(path)
    if not path.exists():
        raise FacecoverError(f"{path}: file not found")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise FacecoverError(f"{path}: unsupported mesh format '{path.suffix}' (use one of {', '.join(MESH_SUFFIXES)})")
    if path.stat().st_size == 0:
        raise FacecoverError(f"{path}: file is empty")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many exception types on corrupt files
        raise FacecoverError(f"{path}: cannot read mesh ({type(exc).__name__}: {exc})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0 or len(mesh.vertices) < 3:
        raise FacecoverError(f"{path}: file holds no triangles (corrupt or not a mesh)")
    if not np.all(np.isfinite(mesh.vertices)):
        raise FacecoverError(f"{path}: mesh has non-finite vertex coordinates")
    return mesh


def load_mesh_arrays(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh's vertices (n, 3) float64 and faces (m, 3) int64, checked like `load_mesh`.

    PLY files of triangles (what every stage writes) are read with plyfile, without trimesh's import
    cost; anything else goes through `load_mesh`."""
    path = Path(path)
    arrays = _ply_triangles(path) if path.suffix.lower() == ".ply" and path.is_file() else None
    if arrays is None:
        mesh = load_mesh(path)
        return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    vertices, faces = arrays
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise FacecoverError(f"{path}: face indices out of range (corrupt mesh)")
    if not np.all(np.isfinite(vertices)):
        raise FacecoverError(f"{path}: mesh has non-finite vertex coordinates")
    return vertices, faces


def _ply_triangles(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertices and triangles of a PLY with x, y, z and one face list of triangles; None for anything else
    (empty, quads, strips, other names, corruption: `load_mesh` then decides)."""
    from plyfile import PlyData

    try:
        # every face a triangle lets plyfile map the face list as one array instead of reading it face by
        # face (0.1 s → 2 ms for a 14k-triangle face); anything else fails here and goes to `load_mesh`
        ply = PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3, "vertex_index": 3}})
        xyz = ply["vertex"].data
        vertices = np.stack([xyz["x"], xyz["y"], xyz["z"]], axis=1).astype(np.float64)
        faces = ply["face"].data[ply["face"].properties[0].name]
        faces = (np.stack(faces) if faces.dtype == object else np.asarray(faces)).astype(np.int64)
    except Exception:
        return None
    if faces.ndim != 2 or faces.shape[1] != 3 or len(vertices) < 3:
        return None
    return vertices, faces


def save_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh (mm) atomically; the format follows the suffix (binary PLY with float32
    coordinates, or binary STL/OBJ/OFF through trimesh)."""
    vertices, faces = np.asarray(vertices), np.asarray(faces)
    with atomic_path(path) as tmp:
        if Path(path).suffix.lower() == ".ply":
            from plyfile import PlyData, PlyElement

            v = np.empty(len(vertices), [("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
            v["x"], v["y"], v["z"] = vertices.T
            f = np.empty(len(faces), [("vertex_indices", "<i4", (3,))])
            f["vertex_indices"] = faces
            PlyData([PlyElement.describe(v, "vertex"),
                     PlyElement.describe(f, "face", len_types={"vertex_indices": "u1"})],
                    byte_order="<").write(str(tmp))
        else:
            import trimesh

            mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), faces, process=False)
            mesh.export(tmp, file_type=Path(path).suffix.lstrip(".").lower())


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """Write a compressed .npz atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a .npz fully into a dict; FacecoverError naming the file if missing or corrupt."""
    path = Path(path)
    if not path.exists():
        raise FacecoverError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:
        raise FacecoverError(f"{path}: cannot read arrays ({type(exc).__name__}: {exc})") from None


def save_json(path: str | os.PathLike, obj) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
