"""A cover scored against the true surfaces, in the raw scan's own frame (mm): how the printed part would sit.

The truth is a face with its own triangulation: the *healthy* surface and the *injured* one (the same
vertices plus the wound's displacement, so vertex i is the same skin point on both), and the true wound
mask over those vertices. The cover and the wound found come from the pipeline (registered template,
canonical pose) and are brought into the scan's frame with the registration's `scan_to_canonical`.

* **restore** — distance from the true healthy surface to the cover, over the true wound under the cover
  where the healthy face lies above the injured skin by more than the minimum wall (there the cover's
  outer side *is* the rebuilt face; elsewhere it is the skin plus the minimum wall): mean and 95th
  percentile; wound left uncovered counts in `coverage`, not here;
* **contact** — distance from the injured skin inside the true wound, under the cover, to the cover (its
  inner side should lie on the skin): mean;
* **coverage** — share of the true wound's area under the cover: a ray from just beneath the injured skin
  (`under_mm`) outward along its normal meets the cover;
* **found IoU** — the wound found against the true wound, by area on the true surface: a true vertex counts
  as found when the nearest registered vertex (within `match_mm`) is in the found wound.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .meshtools import DistanceScene, RayScene, apply_transform, vertex_areas, vertex_normals


def found_wound_iou(true_vertices: np.ndarray, true_faces: np.ndarray, true_wound: np.ndarray,
                    registered: np.ndarray, found: np.ndarray, match_mm: float = 3.0) -> dict:
    """IoU (by area on the true surface, mm²) of the wound found — `found` (N,) bool over `registered` (N, 3)
    vertices, in the same frame as `true_vertices` (n, 3) — and the true wound (n,) bool."""
    from scipy.spatial import cKDTree

    area = vertex_areas(true_vertices, true_faces)
    distance, nearest = cKDTree(registered).query(true_vertices)
    hit = np.asarray(found, bool)[nearest] & (distance < match_mm)
    true_wound = np.asarray(true_wound, bool)
    union = area[hit | true_wound].sum()
    return {"found_iou": float(area[hit & true_wound].sum() / union) if union > 0 else 1.0,
            "found_area_mm2": float(area[hit].sum()), "true_area_mm2": float(area[true_wound].sum())}


def score_cover(cover_v: np.ndarray, cover_f: np.ndarray, healthy: np.ndarray, injured: np.ndarray,
                faces: np.ndarray, wound: np.ndarray, min_wall_mm: float = 1.0, under_mm: float = 0.5) -> dict:
    """Restore, contact and coverage (see the module) of a cover (vertices, faces) in the frame of the true
    `healthy` and `injured` vertices (n, 3) mm over `faces`, with the true `wound` (n,) bool."""
    wound = np.asarray(wound, bool)
    area = vertex_areas(injured, faces)
    cover = DistanceScene(cover_v, cover_f)
    normals = vertex_normals(injured, faces)
    t = RayScene(cover_v, cover_f).cast(injured - under_mm * normals, normals)["t_hit"]
    under = wound & (t < 20.0)  # wound skin with the cover over it
    to_skin = cover(injured[under])
    depth = np.linalg.norm(healthy - injured, axis=1)
    above = np.einsum("ij,ij->i", healthy - injured, vertex_normals(healthy, faces)) > 0
    rebuild = under & above & (depth > min_wall_mm)
    restore = cover(healthy[rebuild]) if rebuild.any() else np.zeros(0)
    return {
        "restore_mean_mm": float(restore.mean()) if len(restore) else float("nan"),
        "restore_p95_mm": float(np.percentile(restore, 95)) if len(restore) else float("nan"),
        "contact_mm": float(to_skin.mean()) if len(to_skin) else float("nan"),
        "coverage": float(area[under].sum() / area[wound].sum()) if wound.any() else float("nan"),
    }


def patient_case(space: dict, decoder: dict, noise: np.ndarray, settings, face, displacement: np.ndarray | None,
                 rng: np.random.Generator, workdir: Path, cached: Path | None = None,
                 save_cover: Path | None = None, registration=None, cut: tuple | None = None) -> dict:
    """One raw scan of a held-out `face` (`heldout.PatientFace`, true surface in its own topology) with the
    wound `displacement` (n,) mm — or uninjured with None — through a patient's path: scanned
    (`cohort.synthetic_scan`: own triangulation, noise, holes, random pose; written to `workdir`),
    `ingest_scan`, then `patient_cover` with `settings` (a `FitSettings`, or a list of them: one row each,
    the scan registered once; `noise` then a list too, the noise model measured with each). Returns a flat
    dict of figures (mm, mm²) — a list of them for a list of settings — with `seconds` (scan file to cover).
    `cached`: a .pkl file keeping the registration (vertices, scan_to_canonical) of this very scan, to score
    other settings without registering again (`seconds` then excludes the registration). `save_cover`: a path
    prefix; the cover made is written there as `patient_cover` does (one settings only). `registration`: the
    `ingest.RegistrationSettings` (None: the defaults). `cut`: (centre (3,) mm in the true canonical frame,
    radius mm): the raw scan is cut to the part within the radius of that point (`partial.cut_scan`) — a scan of
    part of the face; `scan_area_mm2` in the row."""
    from . import FacecoverError
    from .cohort import ScanSettings, disk_parameterization, injured_surface, synthetic_scan
    from .files import save_mesh
    from .ingest import RegistrationSettings, ingest_scan
    from .scars import ScarSettings

    true_injured = face.vertices if displacement is None else injured_surface(
        face.vertices, face.faces, displacement, ScarSettings().normal_smoothing_mm)
    uv = disk_parameterization(face.vertices, face.faces)
    scan_v, scan_f, pose = synthetic_scan(true_injured, face.faces, uv, rng, ScanSettings())
    suffix = ""
    if cut is not None:
        from .partial import cut_scan

        centre, radius = cut
        scan_v, scan_f = cut_scan(scan_v, scan_f, apply_transform(pose, np.asarray(centre, np.float64)[None])[0], radius)
        suffix = f"_cut{radius:g}"
    path = workdir / f"{face.name}{suffix}.ply"
    save_mesh(path, scan_v, scan_f)
    t0 = time.perf_counter()
    many = isinstance(settings, (list, tuple))
    if cached is not None and Path(cached).exists():
        reg = SimpleNamespace(**pickle.loads(Path(cached).read_bytes()))
    else:
        try:
            reg = ingest_scan(path, space, settings=registration or RegistrationSettings())
        except FacecoverError as exc:
            row = {"refused_scan": str(exc), "seconds": time.perf_counter() - t0}
            return [dict(row) for _ in settings] if many else row
        if cached is not None:
            Path(cached).parent.mkdir(parents=True, exist_ok=True)
            Path(cached).write_bytes(pickle.dumps({"vertices": reg.vertices, "scan_to_canonical": reg.scan_to_canonical,
                                                   "observed": reg.observed}))
    registering = time.perf_counter() - t0
    truth = {"pose": pose, "healthy": face.vertices, "injured": true_injured, "faces": face.faces,
             "wound": None if displacement is None else np.abs(displacement) > 0.1}
    rows = []
    for one, its_noise in zip(settings, noise) if many else [(settings, noise)]:
        t1 = time.perf_counter()
        row = patient_cover(space, decoder, its_noise, one, reg, truth, save_cover=save_cover)
        row["seconds"] = registering + time.perf_counter() - t1
        if cut is not None:
            from .meshtools import triangle_areas

            row["scan_area_mm2"] = float(triangle_areas(scan_v, scan_f).sum())
        rows.append(row)
    return rows if many else rows[0]


def patient_cover(space: dict, decoder: dict, noise: np.ndarray, settings, reg, truth: dict,
                  wound: np.ndarray | None = None, with_masks: bool = False, save_cover: Path | None = None) -> dict:
    """A registered patient scan (`ingest.Registration`) through the fit (mean face prior, `settings` a
    `FitSettings`, `noise` (N,) mm its noise model), the plausibility check, `make_watertight` and
    `cover_solid` with the wound found, scored in the scan's frame against `truth` (`pose` (4, 4) true
    canonical → scan, `healthy` / `injured` (n, 3) mm over `faces`, `wound` (n,) bool or None: uninjured).
    `wound` (N,) a given wound (a mask, or a `marked_wound.MarkedWound`) instead of the one the fit finds;
    `footprint_iou` scores the cover's footprint (the wound and the band resting on healthy skin around it)
    against the true wound as `found_iou` does the wound; `cover_wound_iou` the part of it made for the wound
    (`cover_solid`'s `wound`: the band left out). `with_masks`: also `footprint_mask` and `cover_wound_mask`
    (N,) bool over the registered vertices (not figures: take them out before writing a table).
    `save_cover`: a path prefix; when a cover is made, it is written as the workflow's filling writes one, in
    the canonical frame: `<prefix>_cover.ply`, `<prefix>_footprint.npz` (footprint, cover_side) and the
    registered injured face `<prefix>_injured.ply` (what `facecover print` takes); `row["cover_files"]` names them.
    Also the shape-model baseline: the decoder fitted to every vertex, the wound where the skin is > 1 mm off."""
    from . import FacecoverError
    from .filling import FillingSettings, cover_solid
    from .learn.evaluate import shape_completion
    from .learn.infer import fit_healthy_face, fit_nuisance, implausible_wound, mesh_operators
    from .meshtools import grown
    from .watertight import make_watertight

    faces = space["faces"]
    ops = mesh_operators(reg.vertices, faces)
    observed = getattr(reg, "observed", None)  # a partial scan: (N,) bool, the template vertices it shows
    fit = fit_healthy_face(decoder, reg.vertices, faces, None, noise, settings, operators=ops, wound=wound,
                           nuisance=fit_nuisance(space, settings), openings=space["openings"], observed=observed)
    implausible = [] if wound is not None else implausible_wound(fit["wound"], space["openings"], ops, settings)
    row = {"found_mm2": fit["wound_area_mm2"], "implausible": "; ".join(implausible),
           "observed_mm2": float(ops["areas"].sum() if observed is None else ops["areas"][observed].sum())}
    try:  # the wound and the band the cover rests on must lie on the scanned part
        from .partial import wound_inside_observed

        row |= wound_inside_observed(fit["wound"], observed, ops, FillingSettings().margin_mm, "scan")
    except FacecoverError as exc:
        row["refused_cover"] = str(exc)
    # the shape-model baseline: least squares to every vertex, the wound where the skin is > 1 mm off
    fitted, _, _ = shape_completion(decoder, reg.vertices, np.ones(len(reg.vertices)), settings.prior_weight_mm2, None)
    baseline = np.linalg.norm(reg.vertices - fitted, axis=1) > 1.0
    row["baseline_found_mm2"] = float(ops["areas"][baseline].sum())
    to_scan = np.linalg.inv(reg.scan_to_canonical)
    move = lambda p: apply_transform(truth["pose"], p)  # noqa: E731  true canonical -> scan frame
    true_wound = truth["wound"]
    if true_wound is not None:
        registered = apply_transform(to_scan, reg.vertices)
        true_injured = move(truth["injured"])
        row |= found_wound_iou(true_injured, truth["faces"], true_wound, registered, fit["wound"])
        row["baseline_found_iou"] = found_wound_iou(true_injured, truth["faces"], true_wound, registered,
                                                    baseline)["found_iou"]
        if fit["wound"].any() and "refused_cover" not in row:
            try:
                wt_v, wt_f, _ = make_watertight(fit["healthy"], faces)
                cv, cf, report = cover_solid(reg.vertices, faces, wt_v, wt_f, FillingSettings(),
                                             wound_mask=fit["wound"], openings=space["openings"])
                near = grown(report["footprint"], ops["graph"], 0.5)
                row["cover_touches_opening"] = bool((space["openings"][near] > 0).any())
                row |= score_cover(apply_transform(to_scan, cv), cf, move(truth["healthy"]), true_injured,
                                   truth["faces"], true_wound)
                row["footprint_iou"] = found_wound_iou(true_injured, truth["faces"], true_wound, registered,
                                                       report["footprint"])["found_iou"]
                row["cover_wound_iou"] = found_wound_iou(true_injured, truth["faces"], true_wound, registered,
                                                         report["wound"])["found_iou"]
                if with_masks:
                    row |= {"footprint_mask": report["footprint"], "cover_wound_mask": report["wound"]}
                if save_cover is not None:
                    from .files import save_mesh, save_npz

                    files = {k: f"{save_cover}_{k}{ext}" for k, ext in
                             (("cover", ".ply"), ("footprint", ".npz"), ("injured", ".ply"))}
                    Path(files["cover"]).parent.mkdir(parents=True, exist_ok=True)
                    save_mesh(files["cover"], cv, cf)
                    save_npz(files["footprint"], footprint=report["footprint"], cover_side=report["cover_side"])
                    save_mesh(files["injured"], reg.vertices, faces)
                    row["cover_files"] = files
            except FacecoverError as exc:
                row["cover_failed"] = str(exc)
    return row
