"""Inference: the healthy face of one patient from an image prior and the injured scan (template topology, mm).

1. The image: the mapping network turns the photo's ArcFace embedding into decoder coefficients z_img —
   a whole healthy face, but only as good as an image can tell (about a millimetre).
2. The fit: the decoder's coefficients are refitted to the injured registered mesh, regularised towards
   z_img (λ |z − z_img|²) and alternated with a rigid alignment. A linear model of a few dozen modes
   misses a person's fine detail (tenths of a mm), so the skin-minus-fit offset is smoothed over the
   face with a thin-plate smoothing spline (min Σ w |d − o|² + μ Σ |L d|²). What the spline cannot
   follow is the wound. The fit is made robust to it by iteratively reweighted least squares: a vertex
   whose remaining offset r is large against its scale s gets the Cauchy weight 1 / (1 + (r/s)²) in both
   the decoder fit and the spline; s = `weight_factor` × the vertex's noise level σ on healthy faces
   (`fit_noise`: larger at the nose tip, lips and eyelids, where the spline follows the skin less well).
3. The wound (unknown for a real patient): vertices whose remaining offset exceeds `seed_factor` × their
   threshold seed it, and it grows through neighbours above the threshold (hysteresis, like an edge
   detector); the threshold is `noise_factor` × σ, at least `wound_threshold_mm`. Specks are dropped.
   Then `refine_rounds` more fits leave the wound and a band of `exclusion_band_mm` around it out
   entirely, and the wound is found again: its faint edges, which the robust fit half-absorbed, show.
   A given mask replaces the detection; a hand mark (`marked_wound.MarkedWound`) is first left out with a
   band of its `snap_mm`, and its edge moved by at most `snap_mm`: over skin whose remaining offset exceeds
   twice the threshold, off skin below a fifth of it (`marked_wound.snapped_edge`).
4. The blend: outside the wound the healthy face *is* the skin; inside, the fitted face plus the offset
   between skin and fit carried in from the wound's edge by a biharmonic (thin-plate) interpolation —
   so the healthy surface meets the skin smoothly at the wound's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .. import FacecoverError
from ..meshtools import grown
from .evaluate import shape_completion


@dataclass(frozen=True)
class FitSettings:
    """config `fit` block (mm)."""

    prior_weight_mm2: float = 2.0        # λ: how much one unit of coefficient away from the image's is worth
    smoothing: float = 0.3               # μ of the thin-plate smoothing spline of the skin-minus-fit offset
    weight_factor: float = 5.0           # Cauchy scale of the robust weights: this many times the vertex's noise
    weight_scale_mm: float = 0.05        # ... and at least this
    wound_threshold_mm: float = 0.1      # the wound: remaining offset above this (at least) ...
    noise_factor: float = 5.0            # ... and above this many times the vertex's noise on healthy faces
    roughness_factor: float = 2.5        # ... and above this many times this mesh's median remaining offset (a
                                         # registration rougher than the healthy faces measured, e.g. MeshMonk's)
    seed_factor: float = 3.0             # seeds: remaining offset above this many thresholds
    min_wound_area_mm2: float = 4.0      # smaller specks are dropped
    iterations: int = 6                  # robust (reweighted) rounds
    refine_rounds: int = 2               # then rounds that leave the wound found so far out entirely
    exclusion_band_mm: float = 2.0       # ... with this band around it
    wound_margin_mm: float = 0.0         # the wound found, widened by this (geodesic) before the blend: its
                                         # shallow edge lies under the scanner's noise and is not seen
    max_wound_parts: int = 3             # a wound found in more separate parts than this is implausible ...
    max_wound_share: float = 0.15        # ... so is one over more than this share of the face's area ...
    opening_margin_mm: float = 1.5       # ... or one within this of an eye opening, a nostril or the mouth


def spd_solver(matrix):
    """A function solving A x = b for a sparse symmetric positive (semi)definite A (n, n): SuperLU with a
    minimum-degree ordering of A + Aᵀ and no pivoting, several times faster than the default on mesh
    Laplacians."""
    import scipy.sparse.linalg as spla

    lu = spla.splu(sp.csc_matrix(matrix), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    return lu.solve


def grow_wound(score: np.ndarray, graph: sp.csr_matrix, areas: np.ndarray, seed: float,
               min_area_mm2: float) -> np.ndarray:
    """Wound mask (N,) from per-vertex scores (offset / threshold): seeds above `seed`, grown through
    connected vertices above 1; parts smaller than `min_area_mm2` (areas (N,) mm² per vertex) dropped."""
    candidate = score > 1.0
    wound = np.zeros(len(score), bool)
    if not (score > seed).any():
        return wound
    ids = np.flatnonzero(candidate)
    _, labels = connected_components(graph[candidate][:, candidate], directed=False)
    part_area = np.bincount(labels, weights=areas[ids])
    seeded = np.unique(labels[score[ids] > seed])
    keep = np.isin(labels, seeded) & (part_area[labels] >= min_area_mm2)
    wound[ids[keep]] = True
    return wound


def smooth_offsets(offset: np.ndarray, weights: np.ndarray, bilaplacian: sp.spmatrix, smoothing: float) -> np.ndarray:
    """Thin-plate smoothing spline of per-vertex offsets (N, 3): argmin Σ w |d − o|² + μ dᵀ (LᵀL) d."""
    solve = spd_solver(sp.diags(np.asarray(weights, np.float64)) + smoothing * bilaplacian)
    return solve(np.asarray(weights, np.float64)[:, None] * offset)


def blend_into_skin(fitted: np.ndarray, injured: np.ndarray, wound: np.ndarray, bilaplacian: sp.spmatrix) -> np.ndarray:
    """Healthy vertices (N, 3): the skin outside the wound; inside, the fitted face plus the skin-minus-fit
    offset interpolated biharmonically (minimising dᵀ (LᵀL) d with d fixed outside)."""
    offset = injured - fitted
    healthy = injured.copy()
    inside, outside = np.flatnonzero(wound), np.flatnonzero(~wound)
    if len(inside) == 0:
        return healthy
    Q = sp.csr_matrix(bilaplacian)
    solve = spd_solver(Q[inside][:, inside])
    healthy[inside] = fitted[inside] + solve(-(Q[inside][:, outside] @ offset[outside]))
    return healthy


def mesh_operators(vertices: np.ndarray, faces: np.ndarray) -> dict:
    """What the fit needs of the mesh, computed once: edge graph (mm), vertex areas (mm²), LᵀL."""
    from ..meshtools import edge_graph, graph_laplacian, vertex_areas

    L = graph_laplacian(faces, len(vertices)).astype(np.float64)
    return {"graph": edge_graph(vertices, faces), "areas": vertex_areas(vertices, faces),
            "bilaplacian": (L.T @ L).tocsc()}


def fit_healthy_face(decoder: dict, injured: np.ndarray, faces: np.ndarray, prior: np.ndarray | None,
                     noise_mm: np.ndarray | None = None, settings: FitSettings = FitSettings(),
                     wound: np.ndarray | None = None, name: str = "injured mesh", operators: dict | None = None) -> dict:
    """The healthy face behind an injured registered mesh (N, 3) mm, with `prior` decoder coefficients (K,)
    from the image (None: the mean face) and `noise_mm` (N,) the per-vertex noise of this fit on healthy
    faces (`fit_noise`; None: uniform). Returns `healthy` (N, 3), `fitted` (N, 3) (the decoder face alone),
    `wound` (N,) bool, `coefficients` (K,), `residual_mm` (N,) and fit figures (mm, mm²)."""
    injured = np.asarray(injured, np.float64)
    if injured.shape != decoder["mean"].shape:
        raise FacecoverError(f"{name}: {len(injured)} vertices; the decoder has {len(decoder['mean'])} "
                             "(the injured mesh must be registered to the template)")
    ops = operators or mesh_operators(injured, faces)
    noise = np.zeros(len(injured)) if noise_mm is None else np.asarray(noise_mm, np.float64)
    scale = np.maximum(settings.weight_factor * noise, settings.weight_scale_mm)
    threshold = np.maximum(settings.wound_threshold_mm, settings.noise_factor * noise)

    pose = None

    def fit_round(weights):
        nonlocal pose
        # once a pose is known one alignment step per round is enough: the rounds themselves iterate
        fitted, z, pose = shape_completion(decoder, injured, weights, settings.prior_weight_mm2, prior,
                                           iterations=3 if pose is None else 1, pose=pose)
        offset = injured - fitted
        smooth = smooth_offsets(offset, weights, ops["bilaplacian"], settings.smoothing)
        return fitted, z, np.linalg.norm(offset - smooth, axis=1)

    def detect(residual):
        level = np.maximum(threshold, settings.roughness_factor * np.median(residual))
        return grow_wound(residual / level, ops["graph"], ops["areas"], settings.seed_factor,
                          settings.min_wound_area_mm2)

    given = wound is not None
    if given:
        found = np.asarray(wound, bool)
        snap_mm = float(getattr(wound, "snap_mm", 0.0))
        if snap_mm > 0:  # a hand mark (marked_wound.MarkedWound): fit without it and a band, then snap its edge
            from ..marked_wound import snapped_edge

            fitted, z, residual = fit_round((~grown(found, ops["graph"], snap_mm)).astype(float))
            level = np.maximum(threshold, settings.roughness_factor * np.median(residual))
            found = snapped_edge(found, residual / level, injured, snap_mm, threshold_mm=2.0)
        fitted, z, residual = fit_round((~found).astype(float))
    else:
        weights = np.ones(len(injured))
        for round_ in range(max(1, settings.iterations)):
            fitted, z, residual = fit_round(weights)
            # the first round's residuals include the wound's pull on the fit: judge them against their median
            s = scale if round_ else np.maximum(scale, 3.0 * np.median(residual))
            weights = 1.0 / (1.0 + (residual / s) ** 2)
        found = detect(residual)
        for _ in range(settings.refine_rounds):
            fitted, z, residual = fit_round((~grown(found, ops["graph"], settings.exclusion_band_mm)).astype(float))
            found = detect(residual)
        found = grown(found, ops["graph"], settings.wound_margin_mm)
    if found.mean() > 0.5:
        raise FacecoverError(f"{name}: {100 * found.mean():.0f} % of the face departs from the fitted healthy face; "
                             "is the mesh a registered face in mm?")
    healthy = blend_into_skin(fitted, injured, found, ops["bilaplacian"])
    outside = ~found
    return {"healthy": healthy, "fitted": fitted, "wound": found, "coefficients": z, "residual_mm": residual,
            "fit_residual_outside_wound_mm": float(residual[outside].mean()) if outside.any() else float("nan"),
            "wound_area_mm2": float(ops["areas"][found].sum()), "wound_given": given}


OPENINGS = {1: "an eye opening", 2: "a nostril", 3: "the mouth opening"}


def implausible_wound(wound: np.ndarray, openings: np.ndarray, ops: dict, settings: FitSettings = FitSettings()
                      ) -> list[str]:
    """Why a wound found by the fit (N,) bool cannot be a real one to cover, as sentences (empty: plausible):
    scattered over more than `max_wound_parts` parts, over more than `max_wound_share` of the face, or
    touching an opening (`openings` (N,) ids: 1 eye, 2 nostril, 3 mouth) within `opening_margin_mm`."""
    wound = np.asarray(wound, bool)
    if not wound.any():
        return []
    reasons = []
    ids = np.flatnonzero(wound)
    parts, labels = connected_components(ops["graph"][wound][:, wound], directed=False)
    area = ops["areas"][ids]
    share = area.sum() / ops["areas"].sum()
    if parts > settings.max_wound_parts:
        sizes = np.sort(np.bincount(labels, weights=area))[::-1]
        reasons.append(f"{parts} separate parts ({', '.join(f'{a:.0f}' for a in sizes[:6])}"
                       f"{', ...' if parts > 6 else ''} mm²; at most {settings.max_wound_parts} expected)")
    if share > settings.max_wound_share:
        reasons.append(f"{100 * share:.0f} % of the face ({area.sum():.0f} mm²; at most "
                       f"{100 * settings.max_wound_share:.0f} % expected)")
    near = grown(wound, ops["graph"], settings.opening_margin_mm)
    touched = np.unique(openings[near & (openings > 0)]).tolist()
    if touched:
        reasons.append("touching " + " and ".join(OPENINGS[t] for t in touched))
    return reasons


def fit_noise(decoder: dict, faces: np.ndarray, healthy_faces: np.ndarray, settings: FitSettings = FitSettings()
              ) -> np.ndarray:
    """Per-vertex noise (N,) mm of the fit on healthy faces (F, N, 3): the RMS of the offset the smoothing
    spline leaves when each face is fitted from the mean face with every vertex counted (a healthy face
    has no wound to leave out) — what a wound has to exceed to be seen."""
    if len(healthy_faces) == 0:
        raise FacecoverError("fit noise: no healthy faces to measure it on")
    ops = mesh_operators(np.asarray(healthy_faces[0], np.float64), faces)
    residuals = []
    for face in np.asarray(healthy_faces, np.float64):
        weights = np.ones(len(face))
        fitted, _, _ = shape_completion(decoder, face, weights, settings.prior_weight_mm2, None)
        offset = face - fitted
        smooth = smooth_offsets(offset, weights, ops["bilaplacian"], settings.smoothing)
        residuals.append(np.linalg.norm(offset - smooth, axis=1))
    return np.sqrt(np.mean(np.square(residuals), axis=0))


def choose_experiment(table, experiments) -> str:
    """The experiment with the lowest image-only face MAE in an evaluation table (a pandas DataFrame): the
    validation subjects' (results/metrics/table_val.csv), never the test table."""
    rows = table[table["method"].isin(list(experiments))]
    if rows.empty:
        raise FacecoverError(f"evaluation table: none of the experiments {', '.join(experiments)} is in it")
    return str(rows.sort_values(["face_mae_mm", "method"])["method"].iloc[0])
