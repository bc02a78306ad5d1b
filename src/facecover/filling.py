"""The cover solid between the injured skin and the healthy face (mm, canonical pose).

`cover_solid(injured, healthy)`:

1. For each injured-skin vertex, the signed distance d (mm) to the healthy
   surface along a *smoothed* normal (the normal field diffused over about
   `normal_smoothing_mm`, so rays from the steep walls of a crater do not
   cross), by ray casting both ways (Embree) — so the healthy mesh may have
   any topology (template, FLAME, a watertight solid).
   d > 0: the healthy face lies above the skin (a depression to fill);
   d < 0: the skin sticks out (a protrusion to cover).
2. The wound: |d| > `wound_threshold_mm`, and inside the given wound mask
   when there is one (found by inference, or marked by a clinician): the
   mask keeps stray differences elsewhere on a reconstructed face out of
   the cover. The cover region: the wound grown by `margin_mm` (geodesic) —
   the band that rests on healthy skin for attachment.
3. Inner surface (the skin side) = the skin, or the skin offset by
   `clearance_mm` along its (crease-smoothed) normal: a gap for a dressing.
   Outer surface = the healthy face where it lies above the skin side by more
   than the minimum wall (the ray hit), otherwise the skin offset by the
   clearance plus the minimum wall along its own normal, smoothed over `crease_smoothing_mm` so
   that narrow creases such as closed lips are bridged instead of folding
   the outer surface (protrusions and the margin band),
   blended over a narrow band (30 % of the minimum wall). Where neighbouring
   rays cross (tight creases), the outer surface would fold: offsets there are
   relaxed towards their neighbours' until no outer triangle is flipped; a
   last pass pushes out any outer vertex closer than the minimum to the skin
   side (concave spots).
   The skin is subdivided once first (midpoints, so its shape is unchanged):
   a wall that holds at the vertices then also holds inside triangles over
   small, sharply curved lumps.
4. The solid: outer patch, reversed inner patch (the skin side) and a rim
   along every boundary loop of the patch, rounded with `edge_radius_mm`. Separate wounds give separate
   closed parts (all in one file, each where it sits on the face).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import dijkstra

from . import FacecoverError
from .meshtools import (boundary_edges, boundary_loops, boundary_vertex_mask, compact, edge_graph, face_components,
                        DistanceScene, RayScene, face_normals, grown, mesh_volume, neighbour_mean, smoothed_normals,
                        subdivide, triangle_areas, vertex_normals)


SIDE_OUTER, SIDE_SKIN, SIDE_RIM = 0, 1, 2  # what each face of a cover is: outer surface, skin side, rim


@dataclass(frozen=True)
class FillingSettings:
    margin_mm: float = 5.0
    min_thickness_mm: float = 1.0
    wound_threshold_mm: float = 0.2
    min_part_area_mm2: float = 20.0  # drop slivers smaller than this
    max_misalignment_mm: float = 1.0  # median |d| off the wound above this: meshes do not match
    normal_smoothing_mm: float = 15.0
    crease_smoothing_mm: float = 3.0  # skin normals for the minimum wall smoothed over this: bridges creases (lips)
    subdivisions: int = 1  # split the skin's triangles (4× each) so walls stay thick inside them
    edge_radius_mm: float = 0.5  # the rim rounded (a bull nose of this radius); 0: a straight wall
    clearance_mm: float = 0.0  # gap between the skin and the cover's skin side (a dressing layer)
    opening_margin_mm: float = 1.5  # no cover within this of an eye opening, a nostril or the mouth opening

    def __post_init__(self):
        for key in ("edge_radius_mm", "clearance_mm"):
            if not getattr(self, key) >= 0:
                raise FacecoverError(f"filling.{key}: must be a length of 0 mm or more, not {getattr(self, key)}")


def distance_along_normals(points: np.ndarray, normals: np.ndarray, scene: RayScene,
                           max_mm: float = 50.0) -> np.ndarray:
    """Signed distance (n,) mm from each point along its normal to the scene's surface; NaN if no hit."""
    # Start each ray a little behind its point and nudge it sideways by 1 µm:
    # a ray through a point exactly on a triangle edge of the target (e.g. a
    # midpoint of a subdivided copy of it) can slip between the triangles.
    back = 0.5
    side = np.cross(normals, [0.5773, 0.5774, 0.5774])
    side /= np.linalg.norm(side, axis=1, keepdims=True) + 1e-12
    origin = points + 1e-3 * side
    t = scene.cast(np.r_[origin - back * normals, origin + back * normals], np.r_[normals, -normals])["t_hit"] - back
    up, down = t[: len(points)], t[len(points):]
    up[up < -back + 1e-6] = np.inf
    down[down < -back + 1e-6] = np.inf
    d = np.where(np.abs(up) <= np.abs(down), up, -down)
    d[~np.isfinite(d) | (np.abs(d) > max_mm)] = np.nan
    return d


def untangle(inner: np.ndarray, outer: np.ndarray, faces: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Remove folds of the outer surface: where an outer triangle faces away from its skin triangle,
    replace the offsets (outer − inner) around it by their neighbours' mean until none is flipped."""
    n_inner = face_normals(inner, faces)
    mean = neighbour_mean(faces, len(inner))
    offset = outer - inner
    for _ in range(iterations):
        flipped = np.einsum("ij,ij->i", face_normals(inner + offset, faces), n_inner) < 0.2
        if not flipped.any():
            break
        bad = np.zeros(len(inner), bool)
        bad[faces[flipped].ravel()] = True
        bad |= mean(bad.astype(float)) > 0  # and their neighbours
        offset[bad] = mean(offset)[bad]
    return inner + offset


def enforce_min_distance(inner: np.ndarray, faces: np.ndarray, offset: np.ndarray, directions: np.ndarray,
                         min_mm: float, iterations: int = 6) -> np.ndarray:
    """Outer vertices (n, 3) = inner + offset × direction, pushed out until each is at least
    `min_mm` from the inner surface (closest-point distance, i.e. the real wall thickness)."""
    distance = DistanceScene(inner, faces)
    offset = offset.astype(np.float64).copy()
    for _ in range(iterations):
        outer = inner + offset[:, None] * directions
        dist = distance(outer)
        short = dist < min_mm
        if not short.any():
            break
        offset[short] *= np.minimum(min_mm / np.maximum(dist[short], 1e-3), 2.0)
    return inner + offset[:, None] * directions


def _fill_pinches(faces: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Grow a face selection until no vertex has more than two selected-boundary edges (no bowties)."""
    for _ in range(20):
        be = boundary_edges(faces[selected])
        count = np.bincount(be.ravel(), minlength=faces.max() + 1)
        pinched = np.flatnonzero(count > 2)
        if len(pinched) == 0:
            return selected
        selected = selected | np.isin(faces, pinched).any(axis=1)
    return selected


def thickened_patch(inner: np.ndarray, outer: np.ndarray, faces: np.ndarray, edge_radius_mm: float = 0.0,
                    arc_segments: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Closed solid from a surface patch: outer copy, reversed inner copy, a rim on every boundary loop.

    `inner`, `outer` (n, 3) are the same patch vertices at the two surfaces;
    `faces` (m, 3) are oriented with normals pointing from inner to outer.
    Faces come as: the m outer faces, the m inner faces, then the rim's.
    With `edge_radius_mm` 0 the rim is a straight wall from each inner boundary vertex to its outer one.
    Otherwise it is rounded (a bull nose): seen in the plane across the rim, a quarter circle of that
    radius leaves the inner surface tangentially and one meets the outer surface tangentially, joined by
    a straight wall `edge_radius_mm` beyond the patch's outline (`rim_profile`); the radius is capped
    just under half the rim's thickness. `arc_segments` facets per quarter circle.
    """
    n = len(inner)
    v = [outer, inner]
    f = [faces, faces[:, ::-1] + n]
    count = 2 * n
    for loop in boundary_loops(faces):
        a, b = loop, np.roll(loop, -1)
        # boundary edge a -> b is used by an outer face; the rim runs b -> a on top, ring by ring from the
        # outer surface to the inner one
        rings = [loop]
        if edge_radius_mm > 0:
            for ring in rim_profile(inner, outer, loop, edge_radius_mm, arc_segments):
                v.append(ring)
                rings.append(count + np.arange(len(loop)))
                count += len(loop)
        rings.append(loop + n)
        position = {int(x): i for i, x in enumerate(loop)}
        nxt = np.array([position[int(x)] for x in b])
        for upper, lower in zip(rings[:-1], rings[1:]):
            f.append(np.c_[upper[nxt], upper, lower])
            f.append(np.c_[upper[nxt], lower, lower[nxt]])
    return np.concatenate(v), np.concatenate(f)


def rim_profile(inner: np.ndarray, outer: np.ndarray, loop: np.ndarray, radius_mm: float,
                arc_segments: int = 4) -> list[np.ndarray]:
    """The rounded rim's intermediate rings (each (len(loop), 3)) from the outer surface to the inner one.

    At each boundary vertex p (inner) with its outer copy q: t = (q − p)/|q − p| across the wall, h = |q − p|,
    b the outward direction (perpendicular to the boundary and to t, away from the patch). In the plane
    (b, t) the rim is a quarter circle of radius r = min(radius, h/2 − 0.02 mm) centred at p + r·t, from
    p (tangent to the inner surface) to p + r·b + r·t, a straight wall up to p + r·b + (h − r)·t and a
    quarter circle centred at p + (h − r)·t to q (tangent to the outer surface)."""
    p, q = inner[loop], outer[loop]
    across = q - p
    h = np.linalg.norm(across, axis=1)
    t = across / np.maximum(h, 1e-12)[:, None]
    # the loop runs with the patch on its left (seen from the outer side): outward is tangent × t
    tangent = inner[np.roll(loop, -1)] - inner[np.roll(loop, 1)]
    b = np.cross(tangent, t)
    b -= np.einsum("ij,ij->i", b, t)[:, None] * t
    b /= np.maximum(np.linalg.norm(b, axis=1), 1e-12)[:, None]
    r = np.clip(np.minimum(radius_mm, h / 2 - 0.02), 0.0, None)[:, None]
    rings = []
    for j in range(1, arc_segments + 1):  # upper quarter circle, from the outer surface down to the wall
        phi = np.pi - 0.5 * np.pi * j / arc_segments
        rings.append(p + r * np.sin(phi) * b + (h[:, None] - r - r * np.cos(phi)) * t)
    for j in range(arc_segments):  # lower quarter circle, from the wall down to the inner surface
        phi = 0.5 * np.pi - 0.5 * np.pi * j / arc_segments
        rings.append(p + r * np.sin(phi) * b + r * (1 - np.cos(phi)) * t)
    return rings


def cover_solid(injured_v: np.ndarray, injured_f: np.ndarray, healthy_v: np.ndarray, healthy_f: np.ndarray,
                settings: FillingSettings = FillingSettings(), name: str = "injured mesh",
                wound_mask: np.ndarray | None = None, openings: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The printable cover (vertices, faces) in the injured mesh's frame, and a report (mm, mm³).

    `wound_mask` (n,) bool marks the wound on the injured vertices (e.g. found by inference); without it
    the wound is where the skin departs from the healthy face by more than `wound_threshold_mm`. The
    report's `footprint` (n,) bool marks the injured vertices under the cover (the wound, its `wound` (n,)
    bool, and a band of `margin_mm` around it resting on healthy skin), its `cover_side` (faces,)
    what each cover face is (SIDE_OUTER, SIDE_SKIN: the side lying on the skin, SIDE_RIM). `openings` (n,)
    marks the injured vertices of the eye openings, nostrils and mouth opening (template topology:
    the face space's `openings` > 0): no cover comes within `opening_margin_mm` of them — a cover must not
    span an opening (its walls would also thin to nothing in the crease between the lips or the lids)."""
    n_input = len(injured_v)
    given = wound_mask is not None
    if given:
        wound_mask = np.asarray(wound_mask, bool)
        if wound_mask.shape != (n_input,):
            raise FacecoverError(f"{name}: the wound mask has {wound_mask.size} entries for {n_input} vertices")
        if not wound_mask.any():
            raise FacecoverError(f"{name}: the given wound mask is empty")
    marked = (wound_mask if given else np.zeros(n_input)).astype(float)
    blocked = np.zeros(n_input) if openings is None else (np.asarray(openings) > 0).astype(float)
    if blocked.shape != (n_input,):
        raise FacecoverError(f"{name}: the openings mask has {blocked.size} entries for {n_input} vertices")
    for _ in range(settings.subdivisions):  # a midpoint belongs to the wound when one of its ends does
        injured_v, injured_f, carried = subdivide(injured_v, injured_f, np.c_[marked, blocked])
        marked, blocked = np.ceil(carried[:, 0]), np.ceil(carried[:, 1])
    skin_normals = (smoothed_normals(injured_v, injured_f, settings.crease_smoothing_mm)
                    if settings.crease_smoothing_mm > 0 else vertex_normals(injured_v, injured_f))
    normals = smoothed_normals(injured_v, injured_f, settings.normal_smoothing_mm)
    d = distance_along_normals(injured_v, normals, RayScene(healthy_v, healthy_f))
    d[boundary_vertex_mask(injured_f, len(injured_v))] = np.nan  # the face outline: no wound measured there
    # skin lying on the healthy surface is not a wound, whatever a ray from inside a deep crease
    # (closed lips, eyelids) along the smoothed normal hits on the other side of it
    on_healthy = DistanceScene(healthy_v, healthy_f)(injured_v) < settings.wound_threshold_mm
    d[on_healthy & np.isfinite(d)] = 0.0
    hit = np.isfinite(d)
    if hit.mean() < 0.7:
        raise FacecoverError(f"{name}: only {100 * hit.mean():.0f} % of the injured face lies over the healthy "
                             "face: the two meshes are not aligned or not at the same scale (both must be mm, canonical pose)")
    wound = hit & (np.abs(d) > settings.wound_threshold_mm)
    if given:  # a given wound says where the cover may be; the skin's depth still decides, as for any cover
        wound &= marked > 0
    if not wound.any():
        raise FacecoverError(f"{name}: no wound: the healthy and injured surfaces agree within "
                             f"{settings.wound_threshold_mm} mm everywhere")
    off_wound = np.abs(d[hit & ~wound])
    if len(off_wound) and np.median(off_wound) > settings.max_misalignment_mm:
        raise FacecoverError(f"{name}: away from the wound the healthy face is {np.median(off_wound):.2f} mm "
                             "from the skin (median): the meshes are not aligned or not at the same scale")
    if wound.mean() > 0.5:
        raise FacecoverError(f"{name}: {100 * wound.mean():.0f} % of the face differs from the healthy face by "
                             f"more than {settings.wound_threshold_mm} mm: the meshes are not aligned or not at the same scale")
    graph = edge_graph(injured_v, injured_f)
    near_opening = grown(blocked > 0, graph, settings.opening_margin_mm)  # keep the cover off the openings
    if near_opening.any():
        wound &= ~near_opening
        if not wound.any():
            raise FacecoverError(f"{name}: the wound lies entirely within {settings.opening_margin_mm} mm of an eye "
                                 "opening, a nostril or the mouth opening: no cover can be made there")
    reach = dijkstra(graph, directed=False, indices=np.flatnonzero(wound), limit=settings.margin_mm, min_only=True)
    region = np.isfinite(reach) & ~near_opening
    selected = _fill_pinches(injured_f, region[injured_f].all(axis=1))
    # Where the cover only keeps the minimum wall (protrusions, margin band) its
    # outer surface is a true offset of the skin along the skin's own normal;
    # where it fills a depression deeper than that, it is the healthy face (the
    # ray hit along the smoothed normal). Positions blend over a narrow band.
    # With a clearance c the skin side lies c off the skin (along the skin's normal) and the minimum wall
    # starts there: the thin outer surface is c + t_min off the skin.
    t_min, c = settings.min_thickness_mm, settings.clearance_mm
    fill = np.where(hit, np.clip((d - t_min - c) / (0.3 * t_min), 0.0, 1.0), 0.0)
    w = (fill * fill * (3 - 2 * fill))[:, None]
    outer_all = injured_v + w * np.nan_to_num(d)[:, None] * normals + (1 - w) * (t_min + c) * skin_normals
    offset_all = outer_all - injured_v
    thickness = np.linalg.norm(offset_all, axis=1)
    directions = offset_all / thickness[:, None]

    parts_v, parts_f, parts, sides = [], [], [], []
    offset = 0
    labels = face_components(injured_f[selected]) if selected.any() else np.zeros(0, int)
    for label in np.unique(labels):
        pf = injured_f[selected][labels == label]
        pv, pf_local, ids = compact(injured_v, pf)
        area = triangle_areas(pv, pf_local).sum()
        if area < settings.min_part_area_mm2:
            continue
        outer = untangle(pv, pv + thickness[ids, None] * directions[ids], pf_local)
        inner = pv + c * skin_normals[ids] if c > 0 else pv  # the skin side, c off the skin
        shift = outer - inner
        length = np.linalg.norm(shift, axis=1)
        outer = enforce_min_distance(inner, pf_local, length, shift / length[:, None], settings.min_thickness_mm)
        sv, sf = thickened_patch(inner, outer, pf_local, settings.edge_radius_mm)
        m = len(pf_local)  # thickened_patch: outer faces, then the skin side, then the rim
        sides.append(np.r_[np.full(m, SIDE_OUTER), np.full(m, SIDE_SKIN), np.full(len(sf) - 2 * m, SIDE_RIM)])
        parts.append({"area_mm2": float(area), "volume_mm3": mesh_volume(sv, sf),
                      "max_thickness_mm": float(thickness[ids].max()), "vertices": int(len(ids))})
        parts_v.append(sv)
        parts_f.append(sf + offset)
        offset += len(sv)
    if not parts:
        raise FacecoverError(f"{name}: the wound is too small to make a cover part")
    v, f = np.concatenate(parts_v), np.concatenate(parts_f)
    report = {
        "parts": parts,
        "volume_mm3": float(sum(p["volume_mm3"] for p in parts)),
        "wound_vertices": int(wound.sum()),
        "wound_source": ("given mask" if given else "whole face") + f", where the skin departs from the healthy "
                        f"face by > {settings.wound_threshold_mm} mm",
        "footprint": region[:n_input],
        "wound": wound[:n_input],
        "cover_side": np.concatenate(sides).astype(np.uint8),
        "max_depression_mm": float(np.nanmax(np.where(wound, d, 0))),
        "max_protrusion_mm": float(-np.nanmin(np.where(wound, d, 0))),
        "settings": settings.__dict__,
    }
    return v, f, report


def skin_gap(skin_v: np.ndarray, footprint: np.ndarray, cover_v: np.ndarray, cover_f: np.ndarray,
             cover_side: np.ndarray) -> np.ndarray:
    """Gap (n,) mm between each skin vertex under the cover (`footprint` (n,) bool) and the cover's skin side
    (the faces marked SIDE_SKIN): the closest-point distance, which is `clearance_mm` where the skin side is
    offset by it; NaN off the footprint."""
    gap = np.full(len(skin_v), np.nan)
    skin_faces = cover_f[np.asarray(cover_side) == SIDE_SKIN]
    if len(skin_faces) and footprint.any():
        gap[footprint] = DistanceScene(cover_v, skin_faces)(skin_v[footprint])
    return gap


def outer_heights(skin_v: np.ndarray, skin_n: np.ndarray, cover_v: np.ndarray, cover_f: np.ndarray) -> np.ndarray:
    """Height (n,) mm of a cover's outer surface above skin points (n, 3) along their unit normals (n, 3):
    rays start just above the skin (so the cover's inner surface, lying on it, is not hit) and the first
    hit is the outer surface; 0 where the ray misses the cover (no cover there)."""
    start = 0.02
    t = RayScene(cover_v, cover_f).cast(skin_v + start * skin_n, skin_n)["t_hit"]
    return np.where(np.isfinite(t) & (t < 60.0), t + start, 0.0)


def compare_covers(injured_v: np.ndarray, injured_f: np.ndarray, wound: np.ndarray, predicted: tuple, reference: tuple,
                   predicted_footprint: np.ndarray, reference_footprint: np.ndarray) -> dict:
    """How far a predicted cover is from the reference cover (both (vertices, faces), mm, on the same injured
    face): distance between their outer surfaces along the skin normal over the true wound (mean, 95th
    percentile), volume difference (% of the reference), IoU of their footprints (boolean (n,) over the
    injured vertices)."""
    normals = smoothed_normals(injured_v, injured_f, 3.0)
    ids = np.flatnonzero(wound)
    h_pred = outer_heights(injured_v[ids], normals[ids], *predicted)
    h_ref = outer_heights(injured_v[ids], normals[ids], *reference)
    gap = np.abs(h_pred - h_ref)
    v_pred, v_ref = mesh_volume(*predicted), mesh_volume(*reference)
    union = (predicted_footprint | reference_footprint).sum()
    return {"outer_surface_mean_mm": float(gap.mean()), "outer_surface_p95_mm": float(np.percentile(gap, 95)),
            "volume_mm3": float(v_pred), "reference_volume_mm3": float(v_ref),
            "volume_difference_percent": float(100.0 * (v_pred - v_ref) / v_ref),
            "footprint_iou": float((predicted_footprint & reference_footprint).sum() / union) if union else 0.0}
