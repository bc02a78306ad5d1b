"""Small mesh helpers shared by the stages (arrays in, arrays out; mm).

trimesh, Embree and Open3D are imported by the functions that use them, so that a stage which needs none
of them starts quickly.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def edges_of(faces: np.ndarray) -> np.ndarray:
    """Directed edges (3m, 2) of triangles (m, 3), in face order."""
    return np.r_[faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Directed edges (b, 2) used by exactly one triangle, oriented as in that triangle."""
    e = edges_of(faces)
    _, index, count = np.unique(np.sort(e, axis=1), axis=0, return_index=True, return_counts=True)
    return e[np.sort(index[count == 1])]


def boundary_loops(faces: np.ndarray, vertices: np.ndarray | None = None) -> list[np.ndarray]:
    """Ordered vertex loops of the mesh boundary, longest first (by length in mm when vertices are given)."""
    edges = boundary_edges(faces)
    if len(edges) == 0:
        return []
    nxt = {}
    for a, b in edges.tolist():
        nxt.setdefault(a, []).append(b)
    loops, used = [], set()
    for start in list(nxt):
        for first in nxt[start]:
            if (start, first) in used:
                continue
            loop, a, b = [start], start, first
            used.add((a, b))
            while b != start:
                loop.append(b)
                options = [c for c in nxt.get(b, []) if (b, c) not in used]
                if not options:
                    break
                a, b = b, options[0]
                used.add((a, b))
            loops.append(np.array(loop))

    def length(loop):
        if vertices is None:
            return len(loop)
        return float(np.linalg.norm(vertices[np.roll(loop, -1)] - vertices[loop], axis=1).sum())

    return sorted(loops, key=length, reverse=True)


def boundary_vertex_mask(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Boolean (n,): vertex lies on a boundary edge."""
    mask = np.zeros(n_vertices, bool)
    mask[boundary_edges(faces).ravel()] = True
    return mask


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (n, 3)."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    vn = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / (np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12)


class RayScene:
    """One triangle mesh (mm) loaded into Embree's ray tracer (embreex, the engine of trimesh's and Open3D's
    ray casting, without their import cost); cast many rays against it."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh

        self._scene = rtcore_scene.EmbreeScene()
        self._mesh = TriangleMesh(self._scene, np.ascontiguousarray(vertices, np.float32),
                                  np.ascontiguousarray(faces, np.int32))

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> dict[str, np.ndarray]:
        """First hit of each ray origin + t × direction (n, 3): `t_hit` (n,) in units of the direction's
        length (inf on a miss), `triangle` (n,) (-1 on a miss) and the hit's barycentrics `uv` (n, 2)
        (hit = (1 − u − v) a + u b + v c for triangle (a, b, c))."""
        shape = np.shape(origins)[:-1]
        o = np.ascontiguousarray(np.reshape(origins, (-1, 3)), np.float32)
        d = np.ascontiguousarray(np.reshape(directions, (-1, 3)), np.float32)
        hit = self._scene.run(o, d, output=1)
        triangle = hit["primID"].astype(np.int64)
        t = np.where(triangle >= 0, hit["tfar"], np.inf).astype(np.float32)
        return {"t_hit": t.reshape(shape), "triangle": triangle.reshape(shape),
                "uv": np.stack([hit["u"], hit["v"]], axis=-1).reshape(shape + (2,))}


class DistanceScene:
    """A triangle mesh (mm) in Open3D's scene for exact closest-point distance queries, built once."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        import open3d as o3d

        self._o3d = o3d
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                                  o3d.core.Tensor(np.asarray(faces, np.uint32)))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Unsigned distance (n,) mm from each point (n, 3) to the surface."""
        query = self._o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
        return self._scene.compute_distance(query).numpy()


def edge_graph(vertices: np.ndarray, faces: np.ndarray) -> sp.csr_matrix:
    """Symmetric sparse graph (n, n) of edge lengths in mm."""
    e = np.unique(np.sort(edges_of(faces), axis=1), axis=0)
    w = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    n = len(vertices)
    return sp.coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()


def face_components(faces: np.ndarray) -> np.ndarray:
    """Connected-component label (m,) of each face (sharing an edge connects)."""
    from scipy.sparse.csgraph import connected_components

    m = len(faces)
    _, edge_id = np.unique(np.sort(edges_of(faces), axis=1), axis=0, return_inverse=True)
    owner = np.tile(np.arange(m), 3)  # edges_of lists the faces' first edges, then second, then third
    graph = sp.coo_matrix((np.ones(3 * m), (owner, edge_id.ravel())), shape=(m, edge_id.max() + 1)).tocsr()
    return connected_components(graph @ graph.T, directed=False)[1]


def closed_and_consistent(faces: np.ndarray) -> tuple[bool, bool]:
    """(watertight, consistently wound) by index, as trimesh defines them: every edge is shared by exactly
    two triangles, and those two traverse it in opposite directions. Coincident vertices are not merged."""
    e = edges_of(faces)
    count = np.unique(np.sort(e, axis=1), axis=0, return_counts=True)[1]
    watertight = bool(len(e)) and bool((count == 2).all())
    return watertight, watertight and len(np.unique(e, axis=0)) == len(e)


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area (m,) mm² of each triangle."""
    e1, e2 = vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    return 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)


def mesh_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (mm³) of a closed, outward-oriented triangle mesh (divergence theorem)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop unreferenced vertices; returns vertices, re-indexed faces and the kept vertex ids."""
    used = np.unique(faces)
    remap = np.full(len(vertices), -1)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces], used


def graph_laplacian(faces: np.ndarray, n: int) -> sp.csr_matrix:
    """Uniform (combinatorial) graph Laplacian (n, n): degree minus adjacency."""
    e = edges_of(faces)
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(float)
    return (sp.diags(np.asarray(A.sum(axis=1)).ravel()) - A).tocsr()


def neighbour_mean(faces: np.ndarray, n: int):
    """Function mapping per-vertex values (n, ...) to the mean over each vertex's mesh neighbours."""
    L = graph_laplacian(faces, n)
    degree = np.maximum(L.diagonal(), 1)
    adjacency = (-L).tocsr()
    adjacency.setdiag(0)
    return lambda values: (adjacency @ values) / degree.reshape((-1,) + (1,) * (np.ndim(values) - 1))


def smoothed_normals(vertices: np.ndarray, faces: np.ndarray, radius_mm: float) -> np.ndarray:
    """Vertex normals (n, 3) diffused over about `radius_mm` (neighbour averaging), unit length."""
    mean = neighbour_mean(faces, len(vertices))
    edge = np.median(np.linalg.norm(vertices[faces[:, 0]] - vertices[faces[:, 1]], axis=1))
    steps = int(np.ceil((radius_mm / max(edge, 1e-6)) ** 2))
    n = vertex_normals(vertices, faces)
    for _ in range(steps):
        n = 0.5 * n + 0.5 * mean(n)
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    return n
