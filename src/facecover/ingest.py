"""Scan ingestion: clean a raw face scan and register the template to it.

Pipeline (all mm):

1. `clean_scan` — largest connected component, no degenerate or duplicate
   triangles, no unreferenced vertices.
2. `scan_units_scale` — millimetres, centimetres, inches or metres from the mesh size.
3. `initial_poses` — the scan's face-plane normal matched to the template's,
   in-plane rotations tried, each refined with trimesh's rigid ICP on
   subsampled points; the lowest residual wins.
4. `landmark_pose` — MediaPipe landmarks on a frontal render of the roughly
   aligned scan, back-projected, matched to the template's landmarks
   (trimmed Kabsch): pins the rotation that surface ICP cannot see.
5. `fit_shape_space` — joint Gauss–Newton over shape coefficients and rigid
   pose: closest-point correspondences (rejecting scan-boundary and far
   matches), point-to-plane rows, a Gaussian prior relaxed from stiff to
   soft. Fitting a smooth, anatomically plausible space instead of free
   vertices keeps the template from sliding along the surface. A second fit
   may also use the space's expressions (`expression_sd`); it is taken when
   it fits the scan clearly better (a smile, an open mouth: `expression_gain`).
6. When the space explains the scan, `refine_along_normals` — detail the
   space cannot express: each template vertex moves along its normal to the
   scan, as a Laplacian-smoothed scalar field (no tangential motion, so no
   sliding). When it does not (the fit stays far from the scan in places: a
   face outside the space), `meshmonk_nonrigid` — MeshMonk's viscoelastic
   registration with Cliniface's settings, onto the scan cropped to the face.

The result is in template topology and canonical pose.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import trimesh
from scipy.spatial import cKDTree

from . import FacecoverError
from .meshtools import (apply_transform, compact, graph_laplacian, rigid_transform, vertex_areas,
                        vertex_normals)

FACE_SIZE_MM = (80.0, 600.0)  # plausible bounding-box diagonal of a face scan
PARTIAL_STARTS = 3  # a scan placed without landmarks: this many surface-ICP starts are shape-fitted
NEAR_TEMPLATE_MM = 6.0  # a scan placed without landmarks: its points this near the template mean count as on it;
NEAR_TEMPLATE_SHARE = 0.75  # ... fewer than this share of them: not a face (face cuts 0.82-0.99, a lumpy hand-sized
                            # blob 0.66, an 80 mm ball 0.16; the cap of that ball 0.90 is refused after the fit)
PARTIAL_FIT_SHARE = 0.8  # the shape fit on the scan over less of the template's area than this: part of a face


@dataclass(frozen=True)
class RegistrationSettings:
    rigid_points: int = 1500
    fit_iterations: int = 80
    prior_weight_start: float = 30.0
    prior_weight_end: float = 0.3
    refine_iterations: int = 3
    refine_smoothness: float = 10.0
    point_weight: float = 0.3
    max_median_residual_mm: float = 1.5
    min_inlier_fraction: float = 0.6
    max_landmark_residual_mm: float = 8.0  # detected landmarks farther than this from a face's layout: not a face
    nonrigid: str = "auto"       # auto: MeshMonk when the shape space does not explain the scan | meshmonk | shape
    outside_space: float = 1.45  # auto: the refinement along the normals closing the fit's 95th-percentile
                                 # distance by more than this many times the scan's noise level (the mean
                                 # distance left after it) means the face lies outside the space
    crop_mm: float = 12.0        # MeshMonk's target: the scan within this of the placed template (Cliniface)
    max_fit_points: int = 60000  # larger scans are subsampled for the fit (the output stays in template topology)
    max_scan_points: int = 60000  # a denser scan is simplified (vertex clustering) to about this many vertices
                                  # for the rigid start (ICP, landmark renders); the fit takes its random
                                  # subset and the last step (snap) the full scan. 0: the full scan throughout
    snap_smoothness: float = 0.2  # last step: each vertex onto the scan along its normal, smoothed this little
    snap_max_mm: float = 6.0      # ... from no farther than this (a wound's depth is kept; holes are bridged)
    expression_sd: float = 0.0    # a second shape fit that may also move the face by the space's expressions
                                  # (ICT's 53 blendshapes, weights of this prior spread; 0: identity modes only) ...
    expression_gain: float = 0.85  # ... taken when it brings the fit's 95th-percentile distance to the scan below
                                   # this share of the identity fit's (a smile 0.68-0.69, neutral faces 0.94-0.95)
    partial: bool = True          # a scan of part of a face (no face in its renders, or the template reaching
                                  # beyond it) is registered where it is, the rest of the template unobserved
    observed_mm: float = 2.0      # a template vertex is observed when the scan (not its edge) is this near
    whole_share: float = 0.95     # observed over at least this share of the template's area: a whole scan
                                  # (everything observed, checked as before: median distance and inlier share)
    min_observed_area_mm2: float = 6000.0  # a partial scan: at least this much of the template observed ...
    min_scan_on_face: float = 0.8  # ... and at least this share of the scan's area on the registered template
    max_partial_shape_z2: float = 4.0  # ... by a plausible face: mean squared shape coefficient (in prior sd) at most
                                       # this (face cuts 0.7-1.x; a ball's cap 9.5, a wavy sheet 31)
    seed: int = 0


@dataclass
class Registration:
    vertices: np.ndarray  # (n, 3) mm, template topology, canonical pose
    scan_to_canonical: np.ndarray  # (4, 4)
    report: dict = field(default_factory=dict)
    observed: np.ndarray | None = None  # (n,) bool: the template vertex lies on the scan (None: all of them)


def scan_boundary_mask(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Boolean (n,): vertex lies on an edge used by one triangle only — `meshtools.boundary_vertex_mask`,
    with each undirected edge as one int64 key (a 1-D sort instead of a row-wise unique: 0.3 s instead of
    5 s for 600k triangles)."""
    f = np.asarray(faces, np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(np.minimum(e[:, 0], e[:, 1]) * n_vertices + np.maximum(e[:, 0], e[:, 1]))
    single = np.ones(len(key), bool)
    same = key[1:] == key[:-1]
    single[1:] &= ~same
    single[:-1] &= ~same
    mask = np.zeros(n_vertices, bool)
    once = key[single]
    mask[once // n_vertices] = True
    mask[once % n_vertices] = True
    return mask


def scan_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """`meshtools.vertex_normals` (area-weighted, unit) by bincount instead of `np.add.at` (faster on a
    dense scan)."""
    f = np.asarray(faces)
    fn = np.cross(vertices[f[:, 1]] - vertices[f[:, 0]], vertices[f[:, 2]] - vertices[f[:, 0]])
    idx = f.T.ravel()
    vn = np.stack([np.bincount(idx, np.tile(fn[:, d], 3), minlength=len(vertices)) for d in range(3)], axis=1)
    return vn / (np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12)


def simplified_scan(vertices: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """A dense scan simplified by vertex clustering to about `target_vertices` (n', 3), (m', 3): vertices
    averaged per cubic cell (edge from the surface area, as for MeshMonk's target), triangles mapped to the
    cells, those that collapse or repeat dropped. Spacing ~1 mm at 60k vertices on a face: the scale of
    the landmark renders (512 px over ~200 mm) and of the rigid ICP's subsample."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    cell = np.sqrt(2.0 * area / (np.sqrt(3.0) * target_vertices))
    ijk = np.floor((v - v.min(axis=0)) / cell).astype(np.int64)
    dims = ijk.max(axis=0) + 1
    _, inverse = np.unique((ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2], return_inverse=True)
    inverse = inverse.ravel()
    count = np.bincount(inverse)
    cv = np.stack([np.bincount(inverse, v[:, d]) for d in range(3)], axis=1) / count[:, None]
    cf = inverse[f]
    cf = cf[(cf[:, 0] != cf[:, 1]) & (cf[:, 1] != cf[:, 2]) & (cf[:, 2] != cf[:, 0])]
    s = np.sort(cf, axis=1)
    n = len(cv)
    _, first = np.unique((s[:, 0] * n + s[:, 1]) * n + s[:, 2], return_index=True)
    cv, cf, _ = compact(cv, cf[np.sort(first)])
    return cv, cf


def face_component_labels(faces: np.ndarray) -> np.ndarray:
    """Connected-component label (m,) of each triangle, triangles joined across edges that exactly two of
    them share — trimesh's `connected_component_labels(mesh.face_adjacency)`, the same graph and labels,
    from int64 edge keys instead of row hashing (1.1 -> 0.8 s for 1M triangles)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, np.int64)
    m = len(f)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.minimum(e[:, 0], e[:, 1]) * (int(f.max()) + 1) + np.maximum(e[:, 0], e[:, 1])
    order = np.argsort(key, kind="stable")
    k = key[order]
    start = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    count = np.diff(np.r_[start, len(k)])
    pair = start[count == 2]
    a, b = order[pair] % m, order[pair + 1] % m  # edge i belongs to face i mod m
    keep = a != b
    graph = coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(m, m))
    return connected_components(graph, directed=False)[1]


def clean_scan(mesh: trimesh.Trimesh, name: str = "scan") -> tuple[trimesh.Trimesh, dict]:
    """Largest connected component without degenerate/duplicate faces; returns the mesh and counts."""
    before = {"vertices": len(mesh.vertices), "faces": len(mesh.faces)}
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True, validate=False)  # merges duplicate vertices
    mesh.update_faces(mesh.nondegenerate_faces(height=1e-8))
    mesh.update_faces(mesh.unique_faces())
    if len(mesh.faces) == 0:
        raise FacecoverError(f"{name}: no valid triangles after removing degenerate faces")
    labels = face_component_labels(np.asarray(mesh.faces))
    counts = np.bincount(labels)
    mesh.update_faces(labels == counts.argmax())
    mesh.remove_unreferenced_vertices()
    after = {"vertices": len(mesh.vertices), "faces": len(mesh.faces), "components_dropped": int(len(counts) - 1)}
    return mesh, {"before": before, "after": after}


UNITS_MM = {"mm": 1.0, "cm": 10.0, "in": 25.4, "m": 1000.0}  # millimetres per unit
TYPICAL_FACE_MM = 250.0  # bounding-box diagonal of a typical face scan


def plausible_units(vertices: np.ndarray) -> list[str]:
    """Units in which the scan's size is a face's (FACE_SIZE_MM), most plausible first (closest, in ratio,
    to a typical face scan's 250 mm diagonal)."""
    diag = float(np.linalg.norm(np.ptp(vertices, axis=0)))
    fits = [u for u, f in UNITS_MM.items() if FACE_SIZE_MM[0] <= diag * f <= FACE_SIZE_MM[1]]
    return sorted(fits, key=lambda u: abs(np.log(diag * UNITS_MM[u] / TYPICAL_FACE_MM)))


def scan_units_scale(vertices: np.ndarray, units: str, name: str = "scan") -> tuple[float, str]:
    """Factor to millimetres and the unit it stands for.

    `units` is the config value: "mm", "cm", "in" or "m" (a scan whose size says otherwise is an error
    naming the units that would fit) or "auto" (the most plausible unit from the size; `ingest_scan` tries
    the next one when the first does not register).
    """
    diag = float(np.linalg.norm(np.ptp(vertices, axis=0)))
    candidates = plausible_units(vertices)
    if units == "auto":
        if not candidates:
            raise FacecoverError(f"{name}: the scan is {diag:.3g} units across: not a face's size in mm, cm, inches "
                                 "or metres")
        return UNITS_MM[candidates[0]], candidates[0]
    if units not in UNITS_MM:
        raise FacecoverError(f"{name}: unknown units '{units}' (use {', '.join(UNITS_MM)} or auto)")
    size = diag * UNITS_MM[units]
    if not FACE_SIZE_MM[0] <= size <= FACE_SIZE_MM[1]:
        hint = (f"; it looks like {' or '.join(candidates)}: set scans.units to that or 'auto'" if candidates
                else "")
        raise FacecoverError(f"{name}: the scan is {diag:.3g} units across, {size:.1f} mm if in {units}; a face scan "
                             f"is {FACE_SIZE_MM[0]:.0f}-{FACE_SIZE_MM[1]:.0f} mm{hint}")
    return UNITS_MM[units], units


def initial_poses(template: np.ndarray, scan_points: np.ndarray, rng: np.random.Generator,
                  n_points: int, in_plane_steps: int = 8, keep: int = 4) -> list[tuple[float, np.ndarray]]:
    """The `keep` best rigid 4×4 template→scan candidates as (rms residual mm, transform), best first.

    A face's height and breadth have nearly equal variance, so only the
    smallest principal axis (the face-plane normal) is trusted: candidates are
    `in_plane_steps` rotations about it, facing either way; each gets a short
    trimesh ICP on subsampled points and the best few are refined. Surface fit
    alone can prefer a face turned by 90°, so the caller checks candidates
    with landmarks.
    """
    def axes(p):
        c = p.mean(axis=0)
        _, _, Vt = np.linalg.svd(p - c, full_matrices=False)
        return c, Vt.T * [1, 1, np.linalg.det(Vt)]  # proper rotation

    ct, At = axes(template)
    cs, As = axes(scan_points)
    src = template[rng.choice(len(template), min(n_points, len(template)), replace=False)]
    dst = scan_points[rng.choice(len(scan_points), min(3 * n_points, len(scan_points)), replace=False)]
    candidates = []
    for flip in (1, -1):
        for angle in np.arange(in_plane_steps) * 2 * np.pi / in_plane_steps:
            c, s = np.cos(angle), np.sin(angle)
            Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.diag([1, flip, flip])
            T0 = np.eye(4)
            T0[:3, :3] = As @ Rz @ At.T
            T0[:3, 3] = cs - T0[:3, :3] @ ct
            matrix, _, cost = trimesh.registration.icp(src[::3], dst, initial=T0, max_iterations=15, threshold=1e-4)
            candidates.append((cost, matrix))
    candidates.sort(key=lambda c: c[0])
    refined = []
    for _, start in candidates[:keep]:
        matrix, _, cost = trimesh.registration.icp(src, dst, initial=start, max_iterations=40, threshold=1e-6)
        refined.append((float(np.sqrt(cost)), matrix))
    return sorted(refined, key=lambda c: c[0])


def scan_landmarks(space: dict, scan: trimesh.Trimesh, pose: np.ndarray) -> np.ndarray | None:
    """Registration landmarks (l, 3) on the scan, in scan coordinates (NaN where not found), or None without a face.

    The scan is brought to canonical pose with the rigid estimate, rendered
    frontally (normals smoothed over 1 mm, so a dense scan whose triangles are smaller than its noise
    shades like any other), MediaPipe finds the landmarks, and each is back-projected onto
    the scan surface by ray casting.
    """
    from .render import DEFAULT_LIGHTS, Scene, frontal_camera
    from .template import detect_image_landmarks

    inv = np.linalg.inv(pose)
    canonical = apply_transform(inv, np.asarray(scan.vertices))
    tv = space["vertices"]
    camera = frontal_camera(tv.mean(axis=0), 1.15 * max(np.ptp(tv[:, 0]), np.ptp(tv[:, 1])), 512)
    scene = Scene(canonical, np.asarray(scan.faces), normal_smoothing_mm=1.0)  # shading alike at any density
    pixels = detect_image_landmarks(scene.render(camera, DEFAULT_LIGHTS))
    if pixels is None:
        return None
    points = scene.surface_points(camera, pixels[space["reg_landmark_ids"]])
    hit = np.isfinite(points).all(axis=1)
    points[hit] = apply_transform(pose, points[hit])
    return points


def template_landmarks(space: dict, V: np.ndarray) -> np.ndarray:
    """Registration landmark positions (l, 3) on template-topology vertices V (n, 3)."""
    tri = space["faces"][space["reg_landmark_triangles"]]
    return np.einsum("lk,lkd->ld", space["reg_landmark_barycentric"], V[tri])


def rigid_alignment(space: dict, scan: trimesh.Trimesh, rng: np.random.Generator, n_points: int,
                    name: str = "scan", good_residual_mm: float = 3.0) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Template→scan 4×4 pose from landmarks, the scan landmarks (l, 3), the ICP rms (mm) and the median
    landmark residual of the pose (mm).

    Renders the scan in the best surface-ICP orientations, best first; MediaPipe
    may find a face even in a render turned by 90°, so every orientation in
    which it finds one is aligned by its landmarks (trimmed Kabsch) and the
    one whose landmarks fit the template best wins. An orientation whose
    landmarks fit within `good_residual_mm` ends the search.
    """
    candidates = initial_poses(space["vertices"], np.asarray(scan.vertices), rng, n_points)
    best = None
    for rigid_rms, pose in candidates:
        landmarks = scan_landmarks(space, scan, pose)
        if landmarks is None:
            continue
        lm_pose, residual = landmark_pose(space, landmarks)
        if best is None or residual < best[0]:
            best = (residual, lm_pose, landmarks, rigid_rms)
        if residual < good_residual_mm:
            break
    if best is None:
        raise FacecoverError(f"{name}: does not look like a face: no face found in frontal renders of the scan "
                             f"in its {len(candidates)} best rigid alignments to the template")
    return best[1], best[2], best[3], best[0]


def partial_scan_poses(space: dict, scan_points: np.ndarray, scan_normals: np.ndarray, rng: np.random.Generator,
                       n_points: int = 250, in_plane_steps: int = 12, anchors: int = 12, iterations: int = 20,
                       keep: int = 8, trim: float = 0.8, reach: float = 20.0) -> list[tuple[float, np.ndarray]]:
    """The `keep` best rigid 4×4 template→scan candidates for a scan that may show only part of a face, as
    (trimmed mean distance mm, transform), best first — no landmarks needed.

    The scan is moved onto the template mean (scan→template ICP, so the template may reach beyond the scan):
    its centroid put just behind each of `anchors` template vertices spread over the face (farthest-point
    order), its area-weighted mean normal (either way round) turned to the template's mean normal within 40 mm
    of the anchor, `in_plane_steps` rotations about that; all starts run `iterations` steps of point-to-point ICP at once against the template surface
    sampled at ~1 mm, each step fitted (Kabsch) to the `trim` share of its closest pairs; the best few are
    refined with three times the points. The score is the trimmed mean distance (mm); pairs farther than
    `reach` mm count as that far and do not pull."""
    mean, faces = np.asarray(space["vertices"], np.float64), np.asarray(space["faces"])
    target = trimesh.Trimesh(mean, faces, process=False)
    dense = np.r_[mean, trimesh.sample.sample_surface_even(target, 40000, seed=int(rng.integers(2**31)))[0]]
    tree = cKDTree(dense)
    t_normals = vertex_normals(mean, faces)
    t_front = t_normals.mean(axis=0)
    t_front /= np.linalg.norm(t_front)
    s_front = scan_normals.mean(axis=0)
    s_front /= max(np.linalg.norm(s_front), 1e-12)
    # anchors: template vertices facing the front, farthest-point order from the one nearest the centroid
    facing = np.flatnonzero(t_normals @ t_front > 0.3)
    chosen = [facing[np.argmin(np.linalg.norm(mean[facing] - mean[facing].mean(axis=0), axis=1))]]
    gap = np.linalg.norm(mean[facing] - mean[chosen[0]], axis=1)
    while len(chosen) < anchors:
        chosen.append(facing[int(np.argmax(gap))])
        gap = np.minimum(gap, np.linalg.norm(mean[facing] - mean[chosen[-1]], axis=1))
    centre = scan_points.mean(axis=0)

    def turn(a, b):
        """Rotation (3, 3) taking unit a to unit b."""
        from scipy.spatial.transform import Rotation

        axis = np.cross(a, b)
        angle = np.arctan2(np.linalg.norm(axis), a @ b)
        if np.linalg.norm(axis) < 1e-9:
            axis = np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0])
        return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()

    from scipy.spatial.transform import Rotation

    starts = []
    for a in chosen:
        # the scan's mean normal turned to the face's mean normal around the anchor (a cheek faces sideways)
        local = t_normals[np.linalg.norm(mean - mean[a], axis=1) < 40.0].sum(axis=0)
        local /= np.linalg.norm(local)
        for flip in (1.0, -1.0):
            R0 = turn(flip * s_front, local)
            for angle in np.arange(in_plane_steps) * 2 * np.pi / in_plane_steps:
                R = Rotation.from_rotvec(angle * local).as_matrix() @ R0
                # the scan's centroid lies behind its surface: put it 10 mm behind the anchor
                starts.append((R, mean[a] - 10.0 * local - R @ centre))

    def icp(Rs, ts, src, steps):
        """Batched trimmed point-to-point ICP of src (m, 3) from poses Rs (s, 3, 3), ts (s, 3)."""
        for _ in range(steps):
            moved = np.einsum("sab,mb->sma", Rs, src) + ts[:, None, :]
            # pairs farther than `reach` are outliers anyway (and slow to look up)
            d, j = tree.query(moved.reshape(-1, 3), distance_upper_bound=reach)
            d, q = d.reshape(len(Rs), -1), dense[np.minimum(j, len(dense) - 1)].reshape(len(Rs), -1, 3)
            w = (np.isfinite(d) & (d <= np.quantile(np.minimum(d, reach), trim, axis=1, keepdims=True))).astype(float)
            w /= np.maximum(w.sum(axis=1, keepdims=True), 1.0)
            cs, cq = np.einsum("sm,ma->sa", w, src), np.einsum("sm,sma->sa", w, q)
            H = np.einsum("sm,sma,smb->sab", w, src[None] - cs[:, None], q - cq[:, None])
            U, _, Vt = np.linalg.svd(H)
            D = np.ones((len(Rs), 3))
            D[:, 2] = np.sign(np.linalg.det(np.einsum("sab,sbc->sac", U, Vt)))
            Rs = np.einsum("sba,sb,scb->sac", Vt, D, U)  # V diag(D) Uᵀ
            ts = cq - np.einsum("sab,sb->sa", Rs, cs)
        moved = np.einsum("sab,mb->sma", Rs, src) + ts[:, None, :]
        d = np.minimum(tree.query(moved.reshape(-1, 3), distance_upper_bound=reach)[0], reach).reshape(len(Rs), -1)
        cost = np.array([np.sort(row)[:int(trim * len(row))].mean() for row in d])
        return Rs, ts, cost

    pick = lambda k: scan_points[rng.choice(len(scan_points), min(k, len(scan_points)), replace=False)]  # noqa: E731
    Rs, ts, cost = icp(np.stack([r for r, _ in starts]), np.stack([t for _, t in starts]), pick(n_points),
                       iterations)
    best = np.argsort(cost)[:keep]
    Rs, ts, cost = icp(Rs[best], ts[best], pick(3 * n_points), 2 * iterations)
    out = []
    for R, t, c in zip(Rs, ts, cost):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, t  # scan -> template
        out.append((float(c), np.linalg.inv(T)))
    return sorted(out, key=lambda c: c[0])


def observed_vertices(vertices: np.ndarray, faces: np.ndarray, scan_points: np.ndarray, scan_boundary: np.ndarray,
                      observed_mm: float, scan_faces: np.ndarray | None = None, max_hole_mm2: float = 400.0
                      ) -> np.ndarray:
    """Template vertices (n, 3) that lie on the scan (same frame, mm), (n,) bool: the scan's surface (its
    triangles `scan_faces`; None: its points) within `observed_mm`, and the nearest scan vertex not on the
    scan's edge. Unobserved patches away from the template's own rim and smaller than `max_hole_mm2` (the
    scan's holes: a whole scan bridges them) count as observed."""
    from scipy.sparse.csgraph import connected_components

    from .meshtools import DistanceScene, boundary_vertex_mask, edge_graph

    d, j = cKDTree(scan_points).query(vertices)
    if scan_faces is not None:
        d = DistanceScene(scan_points, scan_faces)(vertices)
    observed = (d < observed_mm) & ~scan_boundary[j]
    missing = np.flatnonzero(~observed)
    if len(missing):
        graph = edge_graph(vertices, faces)
        _, labels = connected_components(graph[missing][:, missing], directed=False)
        area = np.bincount(labels, weights=vertex_areas(vertices, faces)[missing])
        at_rim = np.bincount(labels, weights=boundary_vertex_mask(faces, len(vertices))[missing]) > 0
        observed[missing[(area[labels] < max_hole_mm2) & ~at_rim[labels]]] = True
    return observed


def _twist_pose(x: np.ndarray, pose0: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Pose (4, 4) = rotation by rotvec x[:3] about `center`, then translation x[3:], after pose0."""
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    R = Rotation.from_rotvec(x[:3]).as_matrix()
    T[:3, :3], T[:3, 3] = R, center - R @ center + x[3:]
    return T @ pose0


def shape_fit_basis(space: dict, settings: RegistrationSettings) -> np.ndarray:
    """The modes (k, n, 3) mm the shape fit moves the template by, each scaled to one prior standard deviation:
    the space's identity modes, then (with `expression_sd` > 0) its expressions less their rigid part."""
    from .shape_space import remove_rigid

    B = space["basis"].astype(np.float64) * space["sigma"][:, None, None]
    if settings.expression_sd > 0 and "expression_basis" in space:
        # without their rigid part (a jaw opening also moves the face's centroid), so they cannot stand in for the pose
        expressions = remove_rigid(np.asarray(space["expression_basis"], np.float64), space["vertices"])
        B = np.concatenate([B, settings.expression_sd * expressions])
    return B


def fit_shape_space(space: dict, scan_points: np.ndarray, scan_boundary: np.ndarray, pose: np.ndarray,
                    settings: RegistrationSettings) -> tuple[np.ndarray, np.ndarray]:
    """Joint fit of shape coefficients z (k,) and pose (4, 4, canonical→scan) to scan points (m, 3).

    Gauss–Newton over (z, rigid twist) with closest-point correspondences:
    point-to-plane rows, weak point-to-point rows and a Gaussian prior on z
    whose weight falls from stiff to soft. Solving pose and shape together
    matters: a face is nearly rotation-symmetric, and alternating the two
    lets pose errors hide in the shape. (Landmark rows were tried: MediaPipe's
    2–3 mm errors on these renders made the fit worse, so landmarks only give
    the initial pose.)

    The normal equations are assembled block by block rather than from the stacked Jacobian (the same
    system): the point-to-point rows' shape block is Σ B_iᵀ Rᵀ R B_i = Σ B_iᵀ B_i, the Gram matrix of the
    basis over all vertices (once) minus that of the vertices left out in this iteration.
    """
    mean, faces = space["vertices"], space["faces"]
    B = shape_fit_basis(space, settings)  # (k, n, 3), z standard-normal
    k = len(B)
    Bt = np.ascontiguousarray(B.transpose(1, 2, 0))  # (n, 3, k): vertex-major, gathers and products contiguous
    Bflat_all = Bt.reshape(-1, k)
    gram_all = Bflat_all.T @ Bflat_all
    tree = cKDTree(scan_points)
    center = apply_transform(pose, mean).mean(axis=0)
    x = np.zeros(k + 6)  # z, then rotation vector and translation (scan frame)
    w2 = settings.point_weight ** 2
    n_it = settings.fit_iterations
    for it in range(n_it):
        frac = it / max(n_it - 1, 1)
        lam = settings.prior_weight_start * (settings.prior_weight_end / settings.prior_weight_start) ** frac
        z, T = x[:k], _twist_pose(x[k:], pose, center)
        R = T[:3, :3]
        Vs = apply_transform(T, mean + (Bflat_all @ z).reshape(-1, 3))
        d, j = tree.query(Vs)
        ok = ~scan_boundary[j] & (d < max(3.0 * np.median(d), 2.0))
        q, p = Vs[ok], scan_points[j[ok]]
        n = scan_vertex_normals(Vs, faces)[ok]
        m, rel, r = len(q), q - center, p - q
        Bo = np.take(Bt, np.flatnonzero(ok), axis=0)         # (m, 3, k)
        Bflat = Bo.reshape(-1, k)
        # point-to-plane rows nᵀJ: nᵀ R B_i, nᵀ (e_a × rel) = (rel × n)_a, n
        P = np.concatenate([np.einsum("ma,mak->mk", n @ R, Bo), np.cross(rel, n), n], axis=1)
        # point-to-point rows J = [R B_i | W_i | I], W_i e_a = e_a × rel_i, i.e. W_i = -[rel_i]×
        W = np.zeros((m, 3, 3))
        W[:, 0, 1], W[:, 0, 2], W[:, 1, 2] = rel[:, 2], -rel[:, 1], rel[:, 0]
        W[:, 1, 0], W[:, 2, 0], W[:, 2, 1] = -rel[:, 2], rel[:, 1], -rel[:, 0]
        RtW = np.einsum("ba,mbc->mac", R, W)                 # Rᵀ W_i
        left = np.take(Bt, np.flatnonzero(~ok), axis=0).reshape(-1, k)
        H = np.empty((k + 6, k + 6))
        H[:k, :k] = gram_all - left.T @ left
        H[:k, k:k + 3] = (RtW.reshape(-1, 3).T @ Bflat).T
        H[:k, k + 3:] = Bo.sum(axis=0).T @ R.T
        H[k:k + 3, k:k + 3] = np.einsum("mab,mac->bc", W, W)
        H[k:k + 3, k + 3:] = W.sum(axis=0).T
        H[k + 3:, k + 3:] = m * np.eye(3)
        H[k:, :k] = H[:k, k:].T
        H[k + 3:, k:k + 3] = H[k:k + 3, k + 3:].T
        g = np.concatenate([(r @ R).ravel() @ Bflat, np.einsum("mab,ma->b", W, r), r.sum(axis=0)])
        r1 = np.einsum("na,na->n", n, r)
        A = P.T @ P + w2 * H
        b = P.T @ r1 + w2 * g
        reg = np.r_[np.full(k, lam), np.zeros(6)]
        x = x + np.linalg.solve(A + np.diag(reg), b - reg * x)
    return x[:k], _twist_pose(x[k:], pose, center)


def _jacobian(R: np.ndarray, B_sub: np.ndarray, rel: np.ndarray, eye3: np.ndarray) -> np.ndarray:
    """d(point)/d(z, rotvec, translation) (m, 3, k+6) for posed model points at `rel` from the centre: the
    stacked Jacobian `fit_shape_space`'s blocked normal equations stand for (tests compare the two)."""
    J_z = np.einsum("ab,kmb->mak", R, B_sub)
    J_w = np.stack([np.cross(eye3[a], rel) for a in range(3)], axis=2)
    J_t = np.broadcast_to(eye3, (len(rel), 3, 3))
    return np.concatenate([J_z, J_w, J_t], axis=2)


def landmark_pose(space: dict, landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Rigid 4×4 canonical→scan transform from registration landmarks (l, 3) by trimmed Kabsch,
    and the median landmark residual (mm) of that fit."""
    ok = np.isfinite(landmarks).all(axis=1)
    src = template_landmarks(space, space["vertices"])[ok]
    dst = landmarks[ok]
    keep = np.ones(len(src), bool)
    for _ in range(3):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = rigid_transform(src[keep], dst[keep])
        resid = np.linalg.norm(apply_transform(T, src) - dst, axis=1)
        keep = resid < max(2.0 * np.median(resid), 2.0)
    return T, float(np.median(resid))


def refine_along_normals(vertices: np.ndarray, faces: np.ndarray, scan_points: np.ndarray,
                         scan_normals: np.ndarray, scan_boundary: np.ndarray,
                         settings: RegistrationSettings) -> np.ndarray:
    """Move vertices (n, 3) along their normals onto the scan (canonical frame), smoothly."""
    L = graph_laplacian(faces, len(vertices))
    tree = cKDTree(scan_points)
    V = vertices.copy()
    for _ in range(settings.refine_iterations):
        nv = vertex_normals(V, faces)
        d, j = tree.query(V)
        ns = scan_normals[j]
        cos = np.einsum("ij,ij->i", nv, ns)
        h = np.einsum("ij,ij->i", ns, scan_points[j] - V) / np.where(np.abs(cos) > 0.3, cos, 1.0)
        ok = ~scan_boundary[j] & (np.abs(cos) > 0.5) & (d < 3.0) & (np.abs(h) < 3.0)
        W = sp.diags(ok.astype(float))
        h_smooth = spla.spsolve((W + settings.refine_smoothness * L).tocsc(), W @ np.where(ok, h, 0.0))
        V = V + h_smooth[:, None] * nv
    return V


def snap_to_scan(vertices: np.ndarray, faces: np.ndarray, scan_v: np.ndarray, scan_f: np.ndarray,
                 settings: RegistrationSettings, scan_edge: np.ndarray | None = None) -> np.ndarray:
    """Vertices (n, 3) moved along their normals onto the scan surface (both in the canonical frame, mm): the
    nearer ray hit forward or backward within `snap_max_mm`, the offsets smoothed by a light Laplacian
    (`snap_smoothness`: scanner noise, not shape). The shape fit and its smooth refinement hold the
    correspondence; this step makes the registered face *the scan's surface*, so that a wound in the scan
    (a dent of millimetres over a centimetre or two, which the smooth steps flatten to less than half its
    depth) is in the registered mesh at its full depth. No tangential motion. Where no ray meets the scan
    (holes, beyond its edge, or a hit on a triangle at the scan's boundary) the offset is interpolated from
    the neighbours. `scan_edge` (scan vertices on its boundary) when the caller has it."""
    from .meshtools import RayScene

    normals = vertex_normals(vertices, faces)
    scene = RayScene(scan_v, scan_f)
    scan_edge = scan_boundary_mask(scan_f, len(scan_v)) if scan_edge is None else scan_edge
    reach = settings.snap_max_mm
    hits = []
    for sign in (1.0, -1.0):
        cast = scene.cast(vertices, sign * normals)
        t = np.where(cast["t_hit"] <= reach, cast["t_hit"], np.inf)
        edge = scan_edge[scan_f[np.maximum(cast["triangle"], 0)]].any(axis=1)
        hits.append(np.where(edge, np.inf, t) * sign)
    forward, backward = hits
    h = np.where(np.abs(forward) <= np.abs(backward), forward, backward)
    met = np.isfinite(h)
    L = graph_laplacian(faces, len(vertices))
    w = np.where(met, 1.0, 1e-3)  # unmet vertices keep their place unless their neighbours move
    h_smooth = spla.spsolve((sp.diags(w) + settings.snap_smoothness * L).tocsc(), w * np.where(met, h, 0.0))
    return vertices + h_smooth[:, None] * normals


def _median_finite(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def surface_residuals(vertices: np.ndarray, scan_points: np.ndarray, scan_normals: np.ndarray,
                      scan_boundary: np.ndarray) -> dict:
    """Template→scan point-to-plane distances (mm) over vertices that see the scan."""
    d, j = cKDTree(scan_points).query(vertices)
    plane = np.abs(np.einsum("ij,ij->i", scan_normals[j], vertices - scan_points[j]))
    dist = np.where(d < 1.5, np.minimum(plane, d), d)  # point-to-plane only close to the surface
    ok = ~scan_boundary[j]
    inliers = ok & (dist < 2.0)
    inside = dist[ok]
    return {
        "mean_surface_distance_mm": float(inside.mean()),
        "median_surface_distance_mm": float(np.median(inside)),
        "p95_surface_distance_mm": float(np.percentile(inside, 95)),
        "inlier_fraction": float(inliers.sum() / len(vertices)),
        "vertices_over_scan": int(ok.sum()),
    }


def meshmonk_nonrigid(space: dict, start: np.ndarray, scan_v: np.ndarray, scan_f: np.ndarray,
                      crop_mm: float = 12.0, max_target_vertices: int = 40000) -> np.ndarray:
    """MeshMonk's viscoelastic non-rigid registration of the template placed at `start` (n, 3) onto a scan
    (mm, same frame), with Cliniface's settings (`autofacemonker._register.CLINIFACE_NONRIGID`, 80
    iterations). As Cliniface does, the target is first cropped to the scan within `crop_mm` of the placed
    template, so ears, neck, hair and shoulders do not pull the face's rim; a large target is simplified
    (vertex clustering) to about `max_target_vertices`. Returns the registered vertices (n, 3)."""
    import meshmonk
    from autofacemonker._register import CLINIFACE_NONRIGID

    near = cKDTree(start).query(scan_v, distance_upper_bound=crop_mm)[0] < crop_mm
    keep = near[scan_f].all(axis=1)
    if keep.sum() < len(space["faces"]) // 4:
        raise FacecoverError("too little of the scan lies near the placed template for the non-rigid step")
    v, f, _ = compact(scan_v, scan_f[keep])
    if len(v) > max_target_vertices:
        import open3d as o3d

        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f))
        area = float(trimesh.triangles.area(v[f]).sum())
        voxel = np.sqrt(2.0 * area / (np.sqrt(3.0) * max_target_vertices))
        mesh = mesh.simplify_vertex_clustering(voxel_size=voxel)
        mesh.remove_degenerate_triangles()
        mesh.remove_unreferenced_vertices()
        v, f = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    result = meshmonk.nonrigid_register(
        floating_features=np.column_stack([start, vertex_normals(start, space["faces"])]),
        target_features=np.column_stack([v, vertex_normals(v, f)]),
        floating_faces=np.asarray(space["faces"]), target_faces=np.asarray(f), num_iterations=80,
        **CLINIFACE_NONRIGID)
    return np.asarray(result.aligned_vertices, np.float64)


def register_template_to_scan(space: dict, scan: trimesh.Trimesh, settings: RegistrationSettings = RegistrationSettings(),
                              name: str = "scan") -> Registration:
    """Register the template to a cleaned scan in mm; output in template topology and canonical pose.

    Rigid start (surface ICP + MediaPipe landmarks), then the shape-space fit, refined along its normals.
    When that refinement has little to do (it closes the fit's 95th-percentile distance to the scan by at
    most `outside_space` times the scan's noise level, the mean distance left after it) the shape space
    explains the face and its correspondence holds. Otherwise the face lies outside the space (a real
    person's face often does: broad warps, an open mouth), the space's fit misplaces features to explain
    the surface, and MeshMonk's non-rigid registration takes the template mean from the fitted pose onto
    the scan (cropped to the face) instead. A scan is refused as "not a face" only on evidence: no face in
    its renders, landmarks that do not form a face, or a registered template that does not lie on the scan.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    faces_scan = np.asarray(scan.faces)
    P_all = np.asarray(scan.vertices, np.float64)
    Pn_all = scan_vertex_normals(P_all, faces_scan)
    boundary_all = scan_boundary_mask(faces_scan, len(P_all))
    fit_ids = np.arange(len(P_all))
    if len(P_all) > settings.max_fit_points:  # a dense scan: fit on a random subset (mm-spaced points suffice)
        fit_ids = np.sort(rng.choice(len(P_all), settings.max_fit_points, replace=False))
    P, Pn, boundary = P_all[fit_ids], Pn_all[fit_ids], boundary_all[fit_ids]
    rigid_scan = scan
    if settings.max_scan_points and len(P_all) > settings.max_scan_points:
        # a dense scan: ICP and the landmark renders see it simplified (their own subsample and 512 px
        # renders do not resolve finer than ~1 mm, but building a render scene costs per triangle)
        rigid_scan = trimesh.Trimesh(*simplified_scan(P_all, faces_scan, settings.max_scan_points), process=False)
    no_face = ""  # why the landmark start failed, when the scan was placed by surface ICP alone
    try:
        pose, landmarks, rigid_rms, landmark_residual = rigid_alignment(space, rigid_scan, rng,
                                                                        settings.rigid_points, name)
    except FacecoverError as exc:
        if not (settings.partial and "no face found" in str(exc)):
            raise
        # part of a face (no eyes or no forehead in view: MediaPipe sees no face): placed on the template by
        # surface ICP alone, the template allowed to reach beyond the scan
        no_face = "no face found in its frontal renders"
        rigid_v = np.asarray(rigid_scan.vertices, np.float64)
        candidates = partial_scan_poses(space, rigid_v, scan_vertex_normals(rigid_v, np.asarray(rigid_scan.faces)), rng)
        rigid_rms, pose = candidates[0]
        # before any shape fit: most of a face scan lies near the template placed on it (a ball, a box or a
        # hand does not); `partial_scan_check` asks the same of the registered template, more strictly
        tree = cKDTree(space["vertices"])
        near = max(float(np.mean(tree.query(apply_transform(np.linalg.inv(T), rigid_v))[0] < NEAR_TEMPLATE_MM))
                   for _, T in candidates[:PARTIAL_STARTS])
        if near < NEAR_TEMPLATE_SHARE:
            raise FacecoverError(f"{name}: does not look like a face: {no_face}, and placed on the face template by "
                                 f"its surface, at most {100 * near:.0f} % of it lies within {NEAR_TEMPLATE_MM:g} mm "
                                 f"of the template (need {100 * NEAR_TEMPLATE_SHARE:.0f} %)")
        landmarks = np.full((len(space["reg_landmark_ids"]), 3), np.nan)
        landmark_residual = float("nan")
    if landmark_residual > settings.max_landmark_residual_mm:
        raise FacecoverError(f"{name}: does not look like a face: the landmarks found in its renders lie "
                             f"{landmark_residual:.1f} mm (median) from a face's layout (limit "
                             f"{settings.max_landmark_residual_mm} mm)")
    t_rigid = time.perf_counter()

    def shape_fit_of(fit_settings, start=None):
        """The shape fit with these settings (from the rigid start, or `start`), refined along the normals, and
        how much the refinement gained."""
        z, fitted_pose = fit_shape_space(space, P, boundary, pose if start is None else start, fit_settings)
        inv = np.linalg.inv(fitted_pose)
        Pc, Pnc = apply_transform(inv, P), Pn @ inv[:3, :3].T
        V = space["vertices"] + np.tensordot(z, shape_fit_basis(space, fit_settings), axes=1)
        shape_fit = surface_residuals(V, Pc, Pnc, boundary)
        refined = refine_along_normals(V, space["faces"], Pc, Pnc, boundary, fit_settings)
        refined_fit = surface_residuals(refined, Pc, Pnc, boundary)
        gain = shape_fit["p95_surface_distance_mm"] - refined_fit["p95_surface_distance_mm"]
        noise = max(refined_fit["mean_surface_distance_mm"], 0.01)  # what is left: the scanner's noise
        return SimpleNamespace(z=z, pose=fitted_pose, inv=inv, Pc=Pc, Pnc=Pnc, shape_fit=shape_fit, refined=refined,
                               gain=gain, noise=noise, outside=gain / noise > settings.outside_space)

    # identity modes first; the expressions only when they fit the scan clearly better: with them always,
    # neutral faces slid (mean vertex error 1.2-1.6 mm against 0.6-0.9)
    identity = dataclasses.replace(settings, expression_sd=0.0)
    if no_face:
        # placed without landmarks: the best few surface-ICP starts each fitted; among the fits about as close to
        # the scan as the closest (95th-percentile distance within 1.5 times), the most plausible face wins
        # (smallest mean squared shape coefficient): a patch of cheek or forehead may fit a wrong place too
        fits = [(shape_fit_of(identity, start), start) for _, start in candidates[:PARTIAL_STARTS]]
        closest = min(f.shape_fit["p95_surface_distance_mm"] for f, _ in fits)
        fit, pose = min(((f, start) for f, start in fits if f.shape_fit["p95_surface_distance_mm"] <= 1.5 * closest),
                        key=lambda pair: float(np.mean(pair[0].z**2)))
    else:
        fit = shape_fit_of(identity)
    expressions_used = False
    if settings.expression_sd > 0 and settings.nonrigid != "meshmonk":
        with_expressions = shape_fit_of(settings)
        if (with_expressions.shape_fit["p95_surface_distance_mm"]
                < settings.expression_gain * fit.shape_fit["p95_surface_distance_mm"]):
            fit, expressions_used = with_expressions, True
    t_fit = time.perf_counter()
    z, inv, Pc, Pnc, refined = fit.z, fit.inv, fit.Pc, fit.Pnc, fit.refined
    shape_fit, gain, noise = fit.shape_fit, fit.gain, fit.noise
    template_areas = vertex_areas(space["vertices"], space["faces"])
    P_all_c = apply_transform(inv, P_all)
    # clearly part of a face (less than PARTIAL_FIT_SHARE of the template on the scan; whole scans 0.98-1.0):
    # no MeshMonk, whose symmetric matching would pull the template's unobserved part onto the scan's edge
    partial_fit = settings.partial and template_areas[observed_vertices(
        refined, space["faces"], P_all_c, boundary_all, settings.observed_mm, faces_scan)].sum() < (
        PARTIAL_FIT_SHARE * template_areas.sum())
    nonrigid = settings.nonrigid
    if nonrigid == "auto":
        nonrigid = "meshmonk" if fit.outside and not partial_fit else "shape"
    if nonrigid == "meshmonk":
        # from the template mean in the fitted pose: a fit that cannot explain the face would misplace its
        # features, and MeshMonk's coarse-to-fine schedule finds them better from the mean
        try:
            warped = meshmonk_nonrigid(space, apply_transform(fit.pose, space["vertices"]), P_all, faces_scan, settings.crop_mm)
        except FacecoverError as exc:
            raise FacecoverError(f"{name}: does not look like a face: {exc}") from None
        V = apply_transform(inv, warped)
    else:
        V = refined
    V = snap_to_scan(V, space["faces"], P_all_c, faces_scan, settings, boundary_all)
    residuals = surface_residuals(V, Pc, Pnc, boundary)
    observed = observed_vertices(V, space["faces"], P_all_c, boundary_all, settings.observed_mm, faces_scan)
    observed_area = float(template_areas[observed].sum())
    # a scan placed without landmarks is always checked as part of a face: its own surface must lie on the
    # template (a ball or a box the template snaps onto would pass the whole scan's checks)
    whole = not settings.partial or (not no_face and observed_area >= settings.whole_share * template_areas.sum())
    coverage = {"partial": not whole, "rigid_start": f"surface ICP ({no_face})" if no_face else "landmarks",
                "observed_share": observed_area / float(template_areas.sum()), "observed_area_mm2": observed_area}
    t_end = time.perf_counter()
    if whole and (residuals["median_surface_distance_mm"] > settings.max_median_residual_mm
                  or residuals["inlier_fraction"] < settings.min_inlier_fraction):
        raise FacecoverError(
            f"{name}: does not look like a face{': ' + no_face if no_face else ''}: after registration the median "
            f"distance to the scan is {residuals['median_surface_distance_mm']:.2f} mm (limit "
            f"{settings.max_median_residual_mm}) and {100 * residuals['inlier_fraction']:.0f} % of template "
            f"vertices lie on it (need {100 * settings.min_inlier_fraction:.0f} %)")
    if whole:
        observed = None  # a whole scan: everything observed (its holes and rim bridged), as before
    else:
        coverage |= partial_scan_check(V, space["faces"], observed, observed_area, P_all_c, faces_scan, boundary_all,
                                       Pc, Pnc, boundary, settings, name, no_face, float(np.mean(z**2)))
        coverage["unobserved_vertices"] = np.flatnonzero(~observed).tolist()
    report = {
        "residuals": residuals,
        "nonrigid": "MeshMonk (the shape space did not explain the scan)" if nonrigid == "meshmonk"
                    else "shape space" + (" with expressions" if expressions_used else "") + " + refinement along the normals",
        "shape_fit_residuals": shape_fit,
        "refinement_gain_p95_mm": gain,
        "refined_mean_surface_distance_mm": noise,
        "refinement_gain_over_noise": gain / noise,
        "rigid_initial_rms_mm": rigid_rms,
        "landmarks_found": int(np.isfinite(landmarks).all(axis=1).sum()),
        "landmark_residual_rigid_mm": None if no_face else landmark_residual,
        "landmark_residual_mm": _median_finite(np.linalg.norm(template_landmarks(space, apply_transform(fit.pose, V)) - landmarks,
                                                              axis=1)),
        "coverage": coverage,
        "expressions": expressions_used,
        "shape_mean_z2": float(np.mean(z**2)),
        "shape_coefficients": z.tolist(),
        "fit_points": int(len(fit_ids)),
        "rigid_points": int(len(rigid_scan.vertices)),
        "seconds": {"rigid": t_rigid - t0, "shape_fit": t_fit - t_rigid, "nonrigid": t_end - t_fit,
                    "total": t_end - t0},
    }
    return Registration(V, inv, report, observed)


def partial_scan_check(V: np.ndarray, faces: np.ndarray, observed: np.ndarray, observed_area: float,
                       scan_v: np.ndarray, scan_f: np.ndarray, scan_edge: np.ndarray, Pc: np.ndarray,
                       Pnc: np.ndarray, boundary: np.ndarray, settings: RegistrationSettings, name: str,
                       no_face: str = "", shape_mean_z2: float = 0.0) -> dict:
    """Whether a registration (V (n, 3) canonical, mm) of a scan of *part* of a face holds: the template lies
    on at least `min_observed_area_mm2` of the scan (`observed` (n,) bool, `observed_area` mm²), close to it
    there (median distance ≤ `max_median_residual_mm`), and the scan (vertices `scan_v`, triangles `scan_f`, the
    same frame) lies on the template over at least `min_scan_on_face` of its area (a box, a ball or a hand
    does not), and the face shape fitted to it is plausible (`shape_mean_z2`, the mean squared shape
    coefficient, at most `max_partial_shape_z2`: a ball's cap fits a face only with extreme shapes). Raises
    FacecoverError naming the scan and what is missing; returns the figures."""
    from .meshtools import DistanceScene

    on = surface_residuals(V[observed], Pc, Pnc, boundary)
    scan_areas = vertex_areas(scan_v, scan_f)
    near = DistanceScene(V, faces)(scan_v) < settings.observed_mm
    on_face = float(scan_areas[near & ~scan_edge].sum() / max(scan_areas[~scan_edge].sum(), 1e-9))
    figures = {"observed_residuals": on, "scan_on_template_share": on_face}
    problems = []
    if observed_area < settings.min_observed_area_mm2:
        problems.append(f"the template lies on {observed_area:.0f} mm² of it (need {settings.min_observed_area_mm2:.0f})")
    if on_face < settings.min_scan_on_face:
        problems.append(f"{100 * on_face:.0f} % of the scan's surface lies on the template (need "
                        f"{100 * settings.min_scan_on_face:.0f} %)")
    if shape_mean_z2 > settings.max_partial_shape_z2:
        problems.append(f"the face shape fitted to it is implausible (mean squared shape coefficient "
                        f"{shape_mean_z2:.1f} in prior standard deviations; at most {settings.max_partial_shape_z2:g})")
    if on["median_surface_distance_mm"] > settings.max_median_residual_mm:
        problems.append(f"the median distance to the scan is {on['median_surface_distance_mm']:.2f} mm where the "
                        f"template lies on it (limit {settings.max_median_residual_mm})")
    if problems:
        raise FacecoverError(f"{name}: does not look like a face: {no_face + ', and ' if no_face else ''}"
                             f"registered as part of a face, {'; '.join(problems)}")
    return figures


def ingest_scan(path, space: dict, units: str = "mm", settings: RegistrationSettings = RegistrationSettings()) -> Registration:
    """Load, clean, check units and register one raw scan file. With `units="auto"` the most plausible
    unit is tried first, the next when the scan does not register as a face in it."""
    from .files import load_mesh

    t0 = time.perf_counter()
    name = str(path)
    mesh = load_mesh(path)
    mesh, cleaning = clean_scan(mesh, name)
    if len(mesh.faces) < 500:
        raise FacecoverError(f"{name}: only {len(mesh.faces)} triangles after cleaning; too few for a face scan")
    raw = np.asarray(mesh.vertices, np.float64).copy()
    first = scan_units_scale(raw, units, name)[1]  # refuses a size no allowed unit explains
    tried = plausible_units(raw) if units == "auto" else [first]
    failure = None
    for unit in tried:
        mesh.vertices = raw * UNITS_MM[unit]
        try:
            reg = register_template_to_scan(space, mesh, settings, name)
        except FacecoverError as exc:
            failure = failure or exc
            continue
        reg.report = {"scan": name, "units_detected": unit, "units_tried": tried[:tried.index(unit) + 1],
                      "scale_to_mm": UNITS_MM[unit], "cleaning": cleaning, **reg.report,
                      "scan_to_canonical": reg.scan_to_canonical.tolist()}
        reg.report["seconds"]["with_io"] = time.perf_counter() - t0
        return reg
    raise failure
