"""Small mesh helpers shared by the stages (arrays in, arrays out; mm).

Embree (rays) and libigl (exact closest points, subdivision) are imported by the functions that use them,
so that a stage which needs neither starts quickly; no helper here imports trimesh or Open3D.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import FacecoverError


def rigid_transform(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R (3, 3) and translation t (3,) minimising Σ w |R source + t − target|² over corresponding
    points (n, 3) mm (weighted Kabsch, no scale, no reflection). `weights` (n,) ≥ 0, default all 1."""
    w = np.ones(len(source)) if weights is None else np.asarray(weights, np.float64)
    if not w.sum() > 0:
        raise FacecoverError("rigid alignment: no point to align on (every weight is 0)")
    w = w / w.sum()
    cs, ct = w @ source, w @ target
    H = (source - cs).T @ ((target - ct) * w[:, None])
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, ct - R @ cs


def apply_transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (n, 3) moved by a 4×4 rigid transform T."""
    return np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3]


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


def _edge_cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(b − a) × (c − a) (m, 3) of each triangle (a, b, c): its normal times twice its area (mm²)."""
    return np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normal (m, 3) of each triangle (right-hand rule on its vertex order); zero for a degenerate one."""
    n = _edge_cross(vertices, faces)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n, dtype=np.float64), where=length > 0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (n, 3)."""
    fn = _edge_cross(vertices, faces)
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
    """A triangle mesh (mm) in libigl's AABB tree for exact closest-point distance queries, built once."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        import igl

        self._v = np.ascontiguousarray(vertices, np.float64)
        self._f = np.ascontiguousarray(faces, np.int64)
        self._tree = igl.AABB()
        self._tree.init(self._v, self._f)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Unsigned distance (n,) mm from each point (n, 3) to the surface."""
        squared = self._tree.squared_distance(self._v, self._f, np.ascontiguousarray(points, np.float64))[0]
        return np.sqrt(squared)


def edge_graph(vertices: np.ndarray, faces: np.ndarray) -> sp.csr_matrix:
    """Symmetric sparse graph (n, n) of edge lengths in mm."""
    e = np.unique(np.sort(edges_of(faces), axis=1), axis=0)
    w = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    n = len(vertices)
    return sp.coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()


def grown(mask: np.ndarray, graph: sp.csr_matrix, distance_mm: float) -> np.ndarray:
    """`mask` (N,) widened by a geodesic distance (mm) along the mesh edges (`edge_graph`)."""
    from scipy.sparse.csgraph import dijkstra

    if distance_mm <= 0 or not mask.any():
        return np.asarray(mask, bool).copy()
    return np.isfinite(dijkstra(graph, directed=False, indices=np.flatnonzero(mask), limit=distance_mm,
                                min_only=True))


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
    return 0.5 * np.linalg.norm(_edge_cross(vertices, faces), axis=1)


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area (N,) mm² attributed to each vertex (a third of each adjacent triangle)."""
    area = triangle_areas(vertices, faces)
    out = np.zeros(len(vertices))
    for k in range(3):
        np.add.at(out, faces[:, k], area / 3.0)
    return out


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` points uniformly distributed over the surface by area: points (count, 3) mm, the triangle
    (count,) each lies on and its barycentric coordinates there (count, 3).

    The draw is trimesh.sample.sample_surface's (same seed, same random stream, same points), returning
    the barycentrics it samples instead of recovering them from the points."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(triangle_areas(vertices, faces))
    face_idx = np.searchsorted(cumulative, rng.random(count) * cumulative[-1])
    uv = rng.random((count, 2))
    folded = uv.sum(axis=1) > 1.0  # the far half of the unit square, folded back into the triangle
    uv[folded] = 1.0 - uv[folded]
    bary = np.c_[1.0 - uv.sum(axis=1), uv]
    points = np.einsum("nk,nkd->nd", bary, vertices[faces[face_idx]])
    return points, face_idx, bary


def subdivide(vertices: np.ndarray, faces: np.ndarray, values: np.ndarray | None = None):
    """Split every triangle into four at its edge midpoints (the surface is unchanged): vertices (n', 3),
    faces (4m, 3) and, when given, per-vertex `values` (n, k) carried along (a midpoint gets the mean of
    its edge's two ends). The original vertices come first, in their order."""
    import igl

    vertices = np.asarray(vertices, np.float64)
    stacked = vertices if values is None else np.c_[vertices, np.asarray(values, np.float64).reshape(len(vertices), -1)]
    new, new_faces = igl.upsample(np.ascontiguousarray(stacked), np.ascontiguousarray(faces, np.int64), 1)
    if values is None:
        return new, new_faces
    return new[:, :3], new_faces, new[:, 3:]


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
