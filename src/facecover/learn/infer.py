"""Inference: the healthy face of one patient from an image prior and the injured scan (template topology, mm).

1. The image: the mapping network turns the photo's ArcFace embedding into decoder coefficients z_img —
   a whole healthy face, but only as good as an image can tell (about a millimetre).
2. The fit: the decoder's coefficients are refitted to the injured registered mesh, regularised towards
   z_img (λ |z − z_img|²) and alternated with a rigid alignment. The decoder learned neutral faces of one
   face model; a scan also shows an expression and proportions beyond it, so the fit may add ICT's 53
   expressions and the template's smoothest deformations (`fit_nuisance`, wavelengths ≥ ~60 mm, broader
   than a wound), each with its own prior spread. A linear model of a few dozen modes
   misses a person's fine detail (tenths of a mm), so the skin-minus-fit offset is smoothed over the
   face with a thin-plate smoothing spline (min Σ w |d − o|² + μ Σ |L d|²). What the spline cannot
   follow is the wound. The fit is made robust to it by iteratively reweighted least squares: a vertex
   whose remaining offset r is large against its scale s gets the Cauchy weight 1 / (1 + (r/s)²) in both
   the decoder fit and the spline; s = `weight_factor` × the vertex's noise level σ on healthy faces
   (`fit_noise`: larger at the nose tip, lips and eyelids, where the spline follows the skin less well).
3. The wound (unknown for a real patient): vertices whose remaining offset exceeds `seed_factor` × their
   threshold seed it, and it grows through neighbours above `grow_factor` thresholds (hysteresis, like an
   edge detector); the threshold is `noise_factor` × σ, at least `wound_threshold_mm`. With `inward_only`
   the offset counted is how far the skin lies *below* the fitted face (a wound to fill is tissue lost;
   eyelid, lip and fold misfits go both ways) plus `raised_weight` × how far it lies above (raised scars),
   and no wound starts within `opening_clearance_mm` of an eye opening, a nostril or the mouth (where faces
   depart most from a model). Specks are dropped.
   Then `refine_rounds` more fits leave the wound and a band of `exclusion_band_mm` around it out
   entirely, and the wound is found again: its faint edges, which the robust fit half-absorbed, show.
   Each part is then widened by `wound_margin_share` of its radius: a dent's rim is shallower than the noise.
   A given mask replaces the detection; a hand mark (`marked_wound.MarkedWound`) is first left out with a
   band of its `snap_mm`, and its edge moved by at most `snap_mm`: over skin whose remaining offset exceeds
   twice the threshold, off skin below a fifth of it (`marked_wound.snapped_edge`); the final fit and the
   blend then leave out, and rebuild, the mark and a band of `snap_mm` around it (its edge is that uncertain).
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
from ..meshtools import grown, vertex_normals
from .evaluate import shape_completion


OPENINGS = {1: "an eye opening", 2: "a nostril", 3: "the mouth opening"}  # `template.opening_labels` ids
MOUTH = 3

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
    grow_factor: float = 1.0             # ... grown through neighbours above this many
    min_wound_area_mm2: float = 4.0      # smaller specks are dropped
    iterations: int = 6                  # robust (reweighted) rounds
    refine_rounds: int = 2               # then rounds that leave the wound found so far out entirely
    exclusion_band_mm: float = 2.0       # ... with this band around it
    wound_margin_mm: float = 0.0         # the wound found, widened by this (geodesic) before the blend: its
                                         # shallow edge lies under the scanner's noise and is not seen ...
    wound_margin_share: float = 0.0      # ... and each part by this share of its radius (√(area / π))
    max_wound_parts: int = 3             # a wound found in more separate parts than this is implausible ...
    max_wound_share: float = 0.15        # ... so is one over more than this share of the face's area ...
    opening_margin_mm: float = 1.5       # ... or one within this of an eye opening, a nostril or the mouth
    expression_sd: float = 0.0           # the fit also moves the face by ICT's 53 expressions (weights of this
                                         # prior spread; 0: none) ...
    smooth_modes: int = 0                # ... and by this many smooth (Laplace-Beltrami) deformations per axis ...
    smooth_sd_mm: float = 2.0            # ... of this prior spread (mm at the mode's peak)
    inward_only: bool = False            # the wound: skin lying *below* the fitted face (tissue lost) ...
    raised_weight: float = 0.0           # ... and skin above it counted at this share of its height (0: never;
                                         # a raised scar is covered, not filled, and folds depart both ways)
    opening_clearance_mm: float = 0.0    # no wound starts within this of an eye opening, a nostril or the mouth
                                         # (eyelids, alae and lips are where a face departs most from a model)
    mouth_clearance_mm: float = 0.0      # ... nor within this of the mouth opening (the lips of a smile or an open
                                         # mouth are where a registration misplaces a face most)
    mask_band_mm: float = 0.0            # a given wound mask (wound.ply|npz) is rebuilt with this band around it, as a
                                         # hand mark is with its snap band: its edge is known no better than a brush's


def fit_nuisance(space: dict, settings: FitSettings) -> np.ndarray | None:
    """Deformations (M, N, 3) mm the fit may add to the decoder's face, each scaled to its prior spread (so
    its coefficient is ~N(0, 1) like the decoder's): the face space's expressions (`expression_basis`, ICT's
    blendshapes on the template) × `expression_sd`, and the template's `smooth_modes` lowest
    Laplace-Beltrami modes along x, y and z × `smooth_sd_mm`. What a person's scan may show that the
    decoder, learned on neutral faces, does not: an expression, broad proportions. None when both are off
    (a face space without expressions gives the smooth modes only)."""
    from ..shape_space import laplace_beltrami_modes

    parts = []
    if settings.expression_sd > 0 and "expression_basis" in space:
        parts.append(settings.expression_sd * np.asarray(space["expression_basis"], np.float64))
    if settings.smooth_modes > 0:
        phi = laplace_beltrami_modes(np.asarray(space["vertices"], np.float64), space["faces"], settings.smooth_modes)
        axes = np.eye(3)
        parts.append(settings.smooth_sd_mm * (phi[:, None, :, None] * axes[None, :, None, :]).reshape(-1, phi.shape[1], 3))
    return np.concatenate(parts) if parts else None


def with_nuisance(decoder: dict, prior: np.ndarray | None, nuisance: np.ndarray | None) -> tuple[dict, np.ndarray | None]:
    """The decoder with `nuisance` deformations (M, N, 3) appended to its basis, and the prior coefficients
    (K,) padded with M zeros (None stays None: the mean face, nuisance at rest)."""
    if nuisance is None or len(nuisance) == 0:
        return decoder, prior
    extended = dict(decoder, basis=np.concatenate([np.asarray(decoder["basis"], np.float64),
                                                   np.asarray(nuisance, np.float64)]))
    return extended, None if prior is None else np.r_[np.asarray(prior, np.float64), np.zeros(len(nuisance))]


def spd_solver(matrix):
    """A function solving A x = b for a sparse symmetric positive (semi)definite A (n, n): SuperLU with a
    minimum-degree ordering of A + Aᵀ and no pivoting, several times faster than the default on mesh
    Laplacians."""
    import scipy.sparse.linalg as spla

    lu = spla.splu(sp.csc_matrix(matrix), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    return lu.solve


def grow_wound(score: np.ndarray, graph: sp.csr_matrix, areas: np.ndarray, seed: float,
               min_area_mm2: float, grow: float = 1.0) -> np.ndarray:
    """Wound mask (N,) from per-vertex scores (offset / threshold): seeds above `seed`, grown through
    connected vertices above `grow`; parts smaller than `min_area_mm2` (areas (N,) mm² per vertex) dropped."""
    candidate = score > grow
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


def widened(wound: np.ndarray, ops: dict, margin_mm: float, share: float) -> np.ndarray:
    """The wound (N,) bool with each connected part widened (geodesic) by `margin_mm` + `share` × the part's
    radius √(area / π) (mm, areas from `mesh_operators`)."""
    wound = np.asarray(wound, bool)
    if share <= 0:
        return grown(wound, ops["graph"], margin_mm)
    ids = np.flatnonzero(wound)
    _, labels = connected_components(ops["graph"][wound][:, wound], directed=False)
    out = wound.copy()
    for part in range(labels.max() + 1 if len(ids) else 0):
        mask = np.zeros_like(wound)
        mask[ids[labels == part]] = True
        out |= grown(mask, ops["graph"], margin_mm + share * np.sqrt(ops["areas"][mask].sum() / np.pi))
    return out


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
                     wound: np.ndarray | None = None, name: str = "injured mesh", operators: dict | None = None,
                     nuisance: np.ndarray | None = None, openings: np.ndarray | None = None,
                     observed: np.ndarray | None = None) -> dict:
    """The healthy face behind an injured registered mesh (N, 3) mm, with `prior` decoder coefficients (K,)
    from the image (None: the mean face) and `noise_mm` (N,) the per-vertex noise of this fit on healthy
    faces (`fit_noise`; None: uniform); `nuisance` (M, N, 3) more deformations the fit may use with a
    N(0, 1) prior (`fit_nuisance`); `openings` (N,) ids > 0 on eye openings, nostrils and the mouth
    (`template.opening_labels`), where no wound may start (`opening_clearance_mm`); `observed` (N,) bool the
    vertices on a partial scan (`ingest.Registration.observed`; None: all): the others weigh nothing in every
    fit round and are never wound. Returns `healthy`
    (N, 3), `fitted` (N, 3) (the model's face alone), `wound` (N,) bool, `coefficients` (K,) (the
    decoder's), `residual_mm` (N,), `sunk_mm` (N,) (the departure the wound is judged on) and fit figures
    (mm, mm²)."""
    injured = np.asarray(injured, np.float64)
    if injured.shape != decoder["mean"].shape:
        raise FacecoverError(f"{name}: {len(injured)} vertices; the decoder has {len(decoder['mean'])} "
                             "(the injured mesh must be registered to the template)")
    n_decoder = len(decoder["basis"])
    decoder, prior = with_nuisance(decoder, prior, nuisance)
    ops = operators or mesh_operators(injured, faces)
    noise = np.zeros(len(injured)) if noise_mm is None else np.asarray(noise_mm, np.float64)
    scale = np.maximum(settings.weight_factor * noise, settings.weight_scale_mm)
    threshold = np.maximum(settings.wound_threshold_mm, settings.noise_factor * noise)

    pose = None

    seen = np.ones(len(injured), bool) if observed is None else np.asarray(observed, bool)

    def fit_round(weights):
        nonlocal pose
        weights = weights * seen  # beyond a partial scan the mesh is the registration's guess: no weight
        # once a pose is known one alignment step per round is enough: the rounds themselves iterate
        fitted, z, pose = shape_completion(decoder, injured, weights, settings.prior_weight_mm2, prior,
                                           iterations=3 if pose is None else 1, pose=pose)
        offset = injured - fitted
        remaining = offset - smooth_offsets(offset, weights, ops["bilaplacian"], settings.smoothing)
        residual = np.linalg.norm(remaining, axis=1)
        if settings.inward_only:  # the wound's measure: how far the skin lies below the fitted face
            along = np.einsum("ij,ij->i", remaining, vertex_normals(fitted, faces))
            sunk = np.maximum(-along, 0.0) + settings.raised_weight * np.maximum(along, 0.0)
        else:
            sunk = residual
        if not seen.all():  # unobserved: no wound there, and no weight in the medians the thresholds use
            residual = np.where(seen, residual, np.median(residual[seen]))
            sunk = np.where(seen, sunk, 0.0)
        return fitted, z, residual, sunk

    no_seed = np.zeros(len(injured), bool)
    if openings is not None and settings.opening_clearance_mm > 0:
        no_seed = grown(np.asarray(openings) > 0, ops["graph"], settings.opening_clearance_mm)
    if openings is not None and settings.mouth_clearance_mm > 0:
        no_seed |= grown(np.asarray(openings) == MOUTH, ops["graph"], settings.mouth_clearance_mm)

    def detect(residual, sunk):
        level = np.maximum(threshold, settings.roughness_factor * np.median(residual))
        score = sunk / level  # near an opening a vertex may join a wound but not start one:
        score = np.where(no_seed, np.minimum(score, settings.seed_factor), score)
        return grow_wound(score, ops["graph"], ops["areas"], settings.seed_factor,
                          settings.min_wound_area_mm2, settings.grow_factor)

    given = wound is not None
    rebuilt = None  # where the healthy face is rebuilt (the blend): the wound, or a hand mark and its band
    if given:
        found = np.asarray(wound, bool)
        snap_mm = float(getattr(wound, "snap_mm", 0.0))
        if snap_mm > 0:  # a hand mark (marked_wound.MarkedWound): fit without it and a band, then snap its edge
            from ..marked_wound import snapped_edge

            fitted, z, residual, sunk = fit_round((~grown(found, ops["graph"], snap_mm)).astype(float))
            level = np.maximum(threshold, settings.roughness_factor * np.median(residual))
            found = snapped_edge(found, sunk / level, injured, snap_mm, threshold_mm=2.0)
            # a hand mark's edge is only known to within snap_mm: the skin that close to it (a dent's shallow
            # rim, when the brush stopped short of it) neither pulls the fit nor pins the blend
            rebuilt = grown(found, ops["graph"], snap_mm)
        elif settings.mask_band_mm > 0:  # a mask: the skin just outside it neither pulls the fit nor pins the blend
            rebuilt = grown(found, ops["graph"], settings.mask_band_mm)
        fitted, z, residual, sunk = fit_round((~(found if rebuilt is None else rebuilt)).astype(float))
    else:
        weights = np.ones(len(injured))
        for round_ in range(max(1, settings.iterations)):
            fitted, z, residual, sunk = fit_round(weights)
            # the first round's residuals include the wound's pull on the fit: judge them against their median
            s = scale if round_ else np.maximum(scale, 3.0 * np.median(residual))
            weights = 1.0 / (1.0 + (residual / s) ** 2)
        found = detect(residual, sunk)
        for _ in range(settings.refine_rounds):
            fitted, z, residual, sunk = fit_round((~grown(found, ops["graph"], settings.exclusion_band_mm)).astype(float))
            found = detect(residual, sunk)
        found = widened(found, ops, settings.wound_margin_mm, settings.wound_margin_share) & seen
    if found.mean() > 0.5:
        raise FacecoverError(f"{name}: {100 * found.mean():.0f} % of the face departs from the fitted healthy face; "
                             "is the mesh a registered face in mm?")
    healthy = blend_into_skin(fitted, injured, found if rebuilt is None else rebuilt, ops["bilaplacian"])
    outside = ~found
    return {"healthy": healthy, "fitted": fitted, "wound": found, "coefficients": z[:n_decoder], "residual_mm": residual, "sunk_mm": sunk,
            "fit_residual_outside_wound_mm": float(residual[outside].mean()) if outside.any() else float("nan"),
            "wound_area_mm2": float(ops["areas"][found].sum()), "wound_given": given}




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


def fit_noise(decoder: dict, faces: np.ndarray, healthy_faces: np.ndarray, settings: FitSettings = FitSettings(),
              nuisance: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex noise (N,) mm of the fit on healthy faces (F, N, 3): the RMS of the offset the smoothing
    spline leaves when each face is fitted from the mean face with every vertex counted (a healthy face
    has no wound to leave out) — what a wound has to exceed to be seen. `nuisance` as in `fit_healthy_face`."""
    if len(healthy_faces) == 0:
        raise FacecoverError("fit noise: no healthy faces to measure it on")
    decoder, _ = with_nuisance(decoder, None, nuisance)
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
