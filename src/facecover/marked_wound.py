"""A wound marked by hand on the patient's scan (`wound.json` from the marking page) as a mask over the
registered template vertices (canonical frame, mm).

The marking page (`facecover mark`, `mark.py`) saves the scan vertices under the brush, in the scan's own
coordinates and units (`points_mm`; × `scale_to_mm` gives mm, 1 for a scan in mm), with the brush radius in
mm. Here they are carried into the canonical frame with the ingest report's `scan_to_canonical`, the
registered vertices among them are marked, and the fit (`learn.infer.fit_healthy_face`, given a
`MarkedWound`) snaps the mark's edge to where the skin departs from the fitted face: it moves by at most
`snap_mm` (default 3 mm) inwards or outwards, so a rough brush gives a clean edge but a deliberate mark is
never moved further than that.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from . import FacecoverError
from .meshtools import apply_transform

SNAP_MM = 3.0               # the mark's edge moves by at most this
MIN_DEPARTURE_MM = 0.1      # skin departing from the healthy face by more than this is wound (the scars' mask)
OTHER_PATIENT_MM = 5.0      # marked points whose median distance to the face exceeds this are not from this scan
FACE_SIZE_MM = 50.0         # a face in mm is at least this wide; marks all within ±1 of the origin are metres


class MarkError(FacecoverError):
    """A mark that cannot be used (the message says why; callers prefix the file)."""


def marks_in_canonical(points_scan: np.ndarray, scan_to_canonical: np.ndarray, scale_to_mm: float) -> np.ndarray:
    """Marked points (M, 3) in the scan's own coordinates -> the canonical frame (mm), as ingest maps the scan."""
    T = np.asarray(scan_to_canonical, np.float64)
    return apply_transform(T, np.asarray(points_scan, np.float64) * float(scale_to_mm))


def check_marks(points_scan: np.ndarray, registered_vertices: np.ndarray, scan_to_canonical: np.ndarray,
                scale_to_mm: float) -> np.ndarray:
    """The marked points in the canonical frame (M, 3) mm, or MarkError: none, not finite, in metres, or
    not on this patient's face (median distance to the registered face > 5 mm)."""
    points = np.asarray(points_scan, np.float64)
    if points.size == 0:
        raise MarkError("no marked points (the mark is empty: paint the wound, then Save)")
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise MarkError(f"points_mm must be a list of finite [x, y, z] (got shape {points.shape})")
    face = np.asarray(registered_vertices, np.float64)
    face_size = float(np.ptp(face, axis=0).max())
    mm = points * float(scale_to_mm)
    if np.abs(mm).max() < 1.0 and face_size > FACE_SIZE_MM:
        raise MarkError(f"all marked points lie within ±1 of the origin while the face is {face_size:.0f} mm "
                        "wide: the mark looks like metres; its points must be in the scan's own units (mm)")
    canonical = marks_in_canonical(points, scan_to_canonical, scale_to_mm)
    distance = float(np.median(cKDTree(face).query(canonical)[0]))
    if distance > OTHER_PATIENT_MM:
        raise MarkError(f"the marked points lie {distance:.0f} mm (median) from this patient's face (more than "
                        f"{OTHER_PATIENT_MM:.0f} mm): is the mark from another patient's scan?")
    return canonical


def wound_from_marks(points_scan_mm: np.ndarray, brush_radius_mm: float, registered_vertices: np.ndarray,
                     scan_to_canonical: np.ndarray, scale_to_mm: float = 1.0, residual_mm: np.ndarray | None = None,
                     snap_mm: float = SNAP_MM, threshold_mm: float | None = None,
                     keep_fraction: float = 0.1) -> np.ndarray:
    """The wound (N,) bool over the registered vertices (N, 3) (canonical frame, mm) from marked points
    (M, 3) in the scan's own coordinates (× `scale_to_mm` = mm), painted with a brush of `brush_radius_mm`.

    A registered vertex is marked when a marked point lies within 0.9 × the marked points' spacing (they
    are the scan's vertices under the brush; at most the brush radius), or 6 of its 8 nearest neighbours
    are. With `residual_mm` (N,) — how far the skin departs from the healthy face at each vertex (mm) — the
    edge is snapped (`snapped_edge`): it grows over departing skin and gives up skin departing by less than
    `keep_fraction` × the threshold, by at most `snap_mm` (mm) either way. Raises MarkError for marks that
    cannot be used (see `check_marks`)."""
    face = np.asarray(registered_vertices, np.float64)
    canonical = check_marks(points_scan_mm, face, scan_to_canonical, scale_to_mm)
    brush = float(brush_radius_mm)
    if not (np.isfinite(brush) and brush > 0):
        raise MarkError(f"brush_radius_mm must be a positive number of mm (got {brush_radius_mm!r})")
    spacing = float(np.median(cKDTree(canonical).query(canonical, k=2)[0][:, 1])) if len(canonical) > 1 else brush
    reach = min(brush, 0.9 * spacing)
    marked = np.isfinite(cKDTree(canonical).query(face, distance_upper_bound=reach)[0])
    if not marked.any():
        raise MarkError(f"no registered vertex lies within {reach:.1f} mm of a marked point")
    # pinholes (a registered vertex between marked points but not near enough to one) are closed
    _, near = cKDTree(face).query(face, k=9)
    marked |= marked[near[:, 1:]].sum(axis=1) >= 6
    if residual_mm is None or snap_mm <= 0:
        return marked
    return snapped_edge(marked, residual_mm, face, snap_mm, threshold_mm, keep_fraction)


def snapped_edge(marked: np.ndarray, residual_mm: np.ndarray, vertices: np.ndarray, snap_mm: float = SNAP_MM,
                 threshold_mm: float | None = None, keep_fraction: float = 0.1) -> np.ndarray:
    """A marked region (N,) bool with its edge moved to where the skin departs from the healthy face
    (vertices (N, 3) mm, `residual_mm` (N,) the departure): within `snap_mm` outside the edge, the region
    grows over skin departing by more than the threshold; within `snap_mm` inside, it gives up skin departing
    by less than `keep_fraction` × the threshold (a mark is trusted more than a faint residual). Both go ring
    by ring from the edge; farther inside stays wound, farther outside stays healthy — so the edge moves by
    at most `snap_mm`. The threshold (mm) is `threshold_mm`, else 3 × the median residual farther than
    2 × `snap_mm` from the mark, at least 0.1 mm."""
    marked = np.asarray(marked, bool)
    face = np.asarray(vertices, np.float64)
    residual = np.asarray(residual_mm, np.float64)
    if residual.shape != (len(face),):
        raise ValueError(f"residual_mm has shape {residual.shape}; expected ({len(face)},)")
    if not marked.any() or snap_mm <= 0:
        return marked.copy()
    to_mark = cKDTree(face[marked]).query(face)[0]                      # 0 inside the mark
    to_unmarked = (cKDTree(face[~marked]).query(face)[0] if (~marked).any()
                   else np.full(len(face), np.inf))                     # 0 outside the mark
    band = (to_mark <= snap_mm) & (to_unmarked <= snap_mm)
    if threshold_mm is None:
        far = to_mark > 2 * snap_mm
        threshold_mm = max(MIN_DEPARTURE_MM, 3.0 * float(np.median(residual[far])) if far.any() else 0.0)
    # the edge moves ring by ring (neighbours: within 1.5 × the vertex spacing), so it follows the departing
    # skin from the mark and never jumps to an unconnected speck in the band
    tree = cKDTree(face)
    step = 1.5 * float(np.median(tree.query(face, k=2)[0][:, 1]))
    wound = marked.copy()
    for joining in (True, False):  # grow where the skin departs; shrink only where it clearly does not
        candidates = band & ((~marked & (residual > threshold_mm)) if joining
                             else (marked & (residual < keep_fraction * threshold_mm)))
        while candidates.any():
            edge = wound if joining else ~wound
            ids = np.flatnonzero(candidates)
            touching = np.isfinite(cKDTree(face[edge]).query(face[ids], distance_upper_bound=step)[0]) \
                if edge.any() else np.zeros(len(ids), bool)
            if not touching.any():
                break
            wound[ids[touching]] = joining
            candidates[ids[touching]] = False
    return wound


class MarkedWound(np.ndarray):
    """A wound mask (N,) bool marked by hand, whose edge the fit may still snap by up to `snap_mm` (mm) to
    where the skin departs from the fitted face (`learn.infer.fit_healthy_face`); a plain mask is used as is."""

    snap_mm: float = SNAP_MM

    def __new__(cls, mask: np.ndarray, snap_mm: float = SNAP_MM):
        wound = np.asarray(mask, bool).view(cls)
        wound.snap_mm = float(snap_mm)
        return wound

    def __array_finalize__(self, obj):
        self.snap_mm = getattr(obj, "snap_mm", SNAP_MM)


def read_marks(path: str | Path) -> dict:
    """The marking page's `wound.json`: points (M, 3) in the scan's coordinates, brush radius (mm) and the
    scale to mm; FacecoverError naming the file when it is missing, malformed or empty."""
    path = Path(path)
    if not path.is_file():
        raise FacecoverError(f"{path}: wound file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FacecoverError(f"{path}: malformed JSON ({exc}); save the mark again from the marking page") from None
    if not isinstance(data, dict) or "points_mm" not in data:
        raise FacecoverError(f"{path}: not a wound mark (needs 'points_mm' and 'brush_radius_mm', as the marking "
                             "page saves them)")
    try:
        points = np.asarray(data["points_mm"], np.float64).reshape(-1, 3) if data["points_mm"] else np.zeros((0, 3))
        radius = float(data.get("brush_radius_mm", 2.0))
        scale = float(data.get("scale_to_mm", 1.0))
    except (TypeError, ValueError) as exc:
        raise FacecoverError(f"{path}: points_mm must be a list of [x, y, z] numbers ({exc})") from None
    if len(points) == 0:
        raise FacecoverError(f"{path}: no marked points (the mark is empty: paint the wound, then Save)")
    return {"points": points, "brush_radius_mm": radius, "scale_to_mm": scale}


def wound_from_mark_file(path: str | Path, registration_report: str | Path | None,
                         registered_vertices: np.ndarray, snap_mm: float = SNAP_MM) -> MarkedWound:
    """The wound over the registered vertices (N,) from a `wound.json`, as a `MarkedWound`: the fit snaps its
    edge (by at most `snap_mm`) to where the skin departs from the fitted face. One FacecoverError naming the
    file for bad input."""
    path = Path(path)
    if not registration_report:
        raise FacecoverError(f"{path}: a wound marked on the scan needs the ingest report (--registration)")
    marks = read_marks(path)
    report = json.loads(Path(registration_report).read_text())
    scale = float(report.get("scale_to_mm", 1.0))
    if abs(marks["scale_to_mm"] - scale) > 1e-6 * scale:
        raise FacecoverError(f"{path}: marked on a scan scaled by {marks['scale_to_mm']:g} to mm, but this "
                             f"patient's scan is scaled by {scale:g} ({registration_report}): another scan?")
    T = np.asarray(report["scan_to_canonical"], np.float64)
    face = np.asarray(registered_vertices, np.float64)
    try:
        return MarkedWound(wound_from_marks(marks["points"], marks["brush_radius_mm"], face, T, scale), snap_mm)
    except MarkError as exc:
        raise FacecoverError(f"{path}: {exc}") from None
