"""Scoring reconstructions of the test split (template topology, mm).

Every reconstruction is first rigidly aligned (rotation + translation, no
scale) to the injured registered mesh using only vertices outside the wound,
as a user would place it on the patient's scan. Then, against the subject's
healthy registered mesh (and the true mesh where one exists):

* face MAE / RMSE — per-vertex distance (mm) over the facial regions
  (forehead, nose, cheeks, mouth, chin, eyes; not the outer rim);
* wound MAE — the same inside the scar mask (the error a cover inherits);
  both MAEs also over the frontal images alone (view 0, as a clinician
  would photograph the patient and as the fit uses);
* surface distance — mean distance (mm) from the reconstruction's facial
  vertices to the healthy surface (insensitive to sliding along it);
* wound IoU per region — predicted wound = vertices where the aligned
  reconstruction and the injured face differ by more than a threshold;
  truth = the scar mask; intersections and unions are pooled over all images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import FacecoverError
from ..meshtools import rigid_transform, vertex_areas

IOU_REGIONS = {"forehead": ("forehead",), "nose": ("nose",), "cheeks": ("cheek_left", "cheek_right"),
               "mouth": ("mouth",), "chin": ("chin",), "eyes": ("eyes",)}
WOUND_SIZES = ("small", "medium", "large")
FRONTAL_VIEW = "0"  # render view 0 is frontal; the others turn the head by up to 15 degrees


def align_outside_wound(vertices: np.ndarray, injured: np.ndarray, wound: np.ndarray) -> np.ndarray:
    """`vertices` (N, 3) rigidly moved onto `injured` (N, 3) using only the vertices outside `wound` (N,) bool."""
    if wound.all():
        raise FacecoverError("rigid alignment: no vertices outside the wound to align on (is the whole face wounded?)")
    R, t = rigid_transform(vertices, injured, (~wound).astype(float))
    return vertices @ R.T + t


def region_masks(regions: np.ndarray, region_names) -> dict[str, np.ndarray]:
    """Boolean masks (N,) of the facial regions scored by IoU, and "face" (every facial region)."""
    names = [str(n) for n in region_names]
    masks = {key: np.isin(regions, [names.index(p) for p in parts]) for key, parts in IOU_REGIONS.items()}
    masks["face"] = regions != names.index("other")
    return masks


def image_metrics(aligned: np.ndarray, healthy: np.ndarray, injured: np.ndarray, wound: np.ndarray,
                  masks: dict[str, np.ndarray], healthy_distance, threshold_mm: float,
                  truth: np.ndarray | None = None) -> dict:
    """Metrics of one aligned reconstruction (N, 3) mm; `healthy_distance(points) -> (n,)` mm is the distance
    to the healthy surface. Returns MAE/RMSE/surface distance and per-region IoU counts."""
    face = masks["face"]
    err = np.linalg.norm(aligned - healthy, axis=1)
    out = {
        "face_mae_mm": float(err[face].mean()),
        "face_rmse_mm": float(np.sqrt(np.mean(err[face] ** 2))),
        "wound_mae_mm": float(err[wound].mean()) if wound.any() else np.nan,
        "surface_distance_mm": float(np.mean(healthy_distance(aligned[face]))),
    }
    if truth is not None:
        terr = np.linalg.norm(aligned - truth, axis=1)
        out["truth_face_mae_mm"] = float(terr[face].mean())
        out["truth_wound_mae_mm"] = float(terr[wound].mean()) if wound.any() else np.nan
    predicted = np.linalg.norm(aligned - injured, axis=1) > threshold_mm
    for key in IOU_REGIONS:
        m = masks[key]
        out[f"inter_{key}"] = int((predicted & wound & m).sum())
        out[f"union_{key}"] = int(((predicted | wound) & m).sum())
    return out


def shape_completion(decoder: dict, injured: np.ndarray, weights: np.ndarray, prior_weight: float,
                     prior_mean: np.ndarray | None = None, iterations: int = 3,
                     pose: tuple[np.ndarray, np.ndarray] | None = None):
    """The decoder face that best explains the injured mesh (N, 3) mm where `weights` (N,) > 0 (outside the
    wound): regularised least squares for the coefficients (towards `prior_mean`, default the mean face)
    alternated with a rigid alignment (starting from `pose` (R, t), decoder -> injured frame; default: the
    prior face's Kabsch fit). Returns (vertices (N, 3) in the injured mesh's frame, coefficients, pose)."""
    from .decoder import decode, fit_coefficients

    if pose is None:
        start = decoder["mean"] if prior_mean is None else decode(decoder, prior_mean)
        pose = rigid_transform(start, injured, weights)
    R, t = pose
    for _ in range(iterations):
        local = (injured - t) @ R  # the injured mesh in the decoder's frame
        z = fit_coefficients(decoder, local, weights, prior_mean, prior_weight)
        vertices = decode(decoder, z)
        R, t = rigid_transform(vertices, injured, weights)
    return vertices @ R.T + t, z, (R, t)


def score_subject(subject: str, reconstructions: list[tuple[str, np.ndarray]], healthy: np.ndarray, faces: np.ndarray,
                  scars: dict[str, dict], masks: dict[str, np.ndarray], threshold_mm: float,
                  truth: np.ndarray | None = None) -> list[dict]:
    """Per-image metric rows of one subject. `reconstructions`: (render stem "{variant}_{view}", vertices
    (N, 3) mm); `scars`: variant -> {"injured": (N, 3) mm, "mask": (N,) bool}. Each reconstruction is aligned
    to its injured mesh outside the wound before scoring (`image_metrics`)."""
    from ..meshtools import DistanceScene

    distance = DistanceScene(healthy, faces)
    areas = vertex_areas(healthy, faces)
    rows = []
    for stem, vertices in reconstructions:
        variant, view = stem.rsplit("_", 1)
        injured, wound = scars[variant]["injured"], scars[variant]["mask"]
        aligned = align_outside_wound(vertices, injured, wound)
        rows.append({"subject": subject, "image": stem, "variant": variant, "view": view,
                     "wound_area_mm2": float(areas[wound].sum()),
                     **image_metrics(aligned, healthy, injured, wound, masks, distance, threshold_mm, truth)})
    return rows


def summary_row(method: str, per_image: pd.DataFrame, size_edges: np.ndarray) -> dict:
    """One table row from a method's per-image metrics: means, wound MAE per wound-size tertile
    (edges in mm² from all test images), face and wound MAE over the frontal images, and IoU per region
    pooled over the images."""
    row = {"method": method, "images": int(len(per_image))}
    for col in ("face_mae_mm", "face_rmse_mm", "wound_mae_mm", "surface_distance_mm"):
        row[col] = per_image[col].mean()
    size = np.digitize(per_image["wound_area_mm2"], size_edges)
    for i, name in enumerate(WOUND_SIZES):
        row[f"wound_mae_{name}_mm"] = per_image.loc[size == i, "wound_mae_mm"].mean()
    frontal = per_image["view"].astype(str) == FRONTAL_VIEW  # what a clinician photographs, and the fit uses
    for col in ("face_mae_mm", "wound_mae_mm"):
        row[col.replace("_mm", "_frontal_mm")] = per_image.loc[frontal, col].mean()
    for key in IOU_REGIONS:
        union = per_image[f"union_{key}"].sum()
        row[f"iou_{key}"] = per_image[f"inter_{key}"].sum() / union if union else np.nan
    for col in ("truth_face_mae_mm", "truth_wound_mae_mm"):
        if col in per_image:
            row[col] = per_image[col].mean()
    return row


def wound_size_edges(areas: np.ndarray) -> np.ndarray:
    """Tertile edges (2,) of wound areas (mm²): below the first is small, above the second large."""
    return np.percentile(np.asarray(areas, float), [100 / 3, 200 / 3])


def metrics_table(per_method: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The comparison table: one row per method, rounded so that the file is byte-stable."""
    if not per_method:
        raise FacecoverError("evaluation: no method results to tabulate")
    first = next(iter(per_method.values()))
    edges = wound_size_edges(first.drop_duplicates(["subject", "variant"])["wound_area_mm2"])
    rows = [summary_row(m, t, edges) for m, t in per_method.items()]
    table = pd.DataFrame(rows)
    return table.round(4)
