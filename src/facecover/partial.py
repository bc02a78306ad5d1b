"""Partial scans: a scan of part of a face (the front only, or the injured region and the skin around it).

`ingest.register_template_to_scan` registers the whole template where the scan is and marks the template
vertices the scan does not show as unobserved (`Registration.observed`); the ingest report keeps them as
`coverage.unobserved_vertices` (a report without them: everything observed). The fit gives the unobserved
vertices no weight and never calls them wound (`learn.infer.fit_healthy_face(observed=...)`), and a cover is
made only when the wound found lies inside the observed part with its whole attachment band around it
(`wound_inside_observed`). mm and mm² throughout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import FacecoverError
from .meshtools import compact, grown


def observed_from_report(report: dict | str | Path | None, n_vertices: int) -> np.ndarray | None:
    """The observed mask (n,) bool of a registration from its ingest report (a dict or the .json path), or
    None when the report does not say (a whole scan, or a report written before partial scans)."""
    if report is None:
        return None
    if not isinstance(report, dict):
        path = Path(report)
        if not path.is_file():
            return None
        report = json.loads(path.read_text())
    unobserved = (report.get("coverage") or {}).get("unobserved_vertices")
    if not unobserved:
        return None
    observed = np.ones(n_vertices, bool)
    ids = np.asarray(unobserved, np.int64)
    if ids.min() < 0 or ids.max() >= n_vertices:
        raise FacecoverError(f"ingest report: unobserved vertex ids up to {ids.max()} for a registered mesh of "
                             f"{n_vertices} vertices (not this mesh's report?)")
    observed[ids] = False
    return observed


def wound_inside_observed(wound: np.ndarray, observed: np.ndarray | None, ops: dict, band_mm: float,
                          name: str, max_unseen_share: float = 0.01) -> dict:
    """Whether a wound (N,) bool can be covered on a partial scan: the band of `band_mm` around it (where the
    cover rests on healthy skin, `FillingSettings.margin_mm`) lies on the observed part (`observed` (N,) bool;
    None: everything observed) but for at most `max_unseen_share` of its area. `ops`: `mesh_operators` of the
    registered mesh (graph mm, areas mm²). Returns the figures (mm²); raises FacecoverError naming `name` and
    how much healthy skin around the wound was seen when the wound reaches the edge of the scanned part."""
    wound = np.asarray(wound, bool)
    if observed is None or not wound.any():
        return {}
    observed = np.asarray(observed, bool)
    band = grown(wound, ops["graph"], band_mm) & ~wound
    need = float(ops["areas"][band].sum())
    seen = float(ops["areas"][band & observed].sum())
    figures = {"band_mm": band_mm, "band_area_mm2": need, "band_seen_mm2": seen}
    if need - seen > max_unseen_share * need:
        raise FacecoverError(
            f"{name}: the wound found ({ops['areas'][wound].sum():.0f} mm²) reaches the edge of the scanned part: "
            f"{seen:.0f} mm² of healthy skin seen within {band_mm:g} mm around it, need {need:.0f} mm² (the whole "
            f"band the cover rests on). Scan more of the skin around the wound (the scan shows "
            f"{ops['areas'][observed].sum():.0f} mm² of the face) and run again")
    return figures


def cut_scan(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray, radius_mm: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """The part of a scan (vertices (n, 3), faces (m, 3), mm) within `radius_mm` (straight-line) of `centre`
    (3,): the triangles whose three corners lie within it, unused vertices dropped — a handheld scan of part
    of a face, for tests and benchmarks."""
    inside = np.linalg.norm(np.asarray(vertices) - np.asarray(centre), axis=1) < radius_mm
    keep = inside[np.asarray(faces)].all(axis=1)
    if not keep.any():
        raise FacecoverError(f"no scan triangle lies within {radius_mm} mm of the cut's centre")
    v, f, _ = compact(np.asarray(vertices), np.asarray(faces)[keep])
    return v, f
