"""Pose of each cover part on the bed, and where the slicer's supports touch it (mm, mm²).

A cover part has three kinds of faces (`filling.SIDE_*`): the outer surface, the **skin side** (the
side lying on the wound) and the rim. Supports leave scars where they touch a part, so each part is
turned so that none touch its skin side: skin side up where the shape allows, else tilted just as far
as it takes to free the skin side (or to the least support on it).

With this pose the slicer profile also keeps supports to the bed (`support_material_buildplate_only`):
without that PrusaSlicer stood a few support columns on the skin side under overhangs of the rim
(measured 0.9 and 1.3 mm² on two of three test covers; 0 with it).

The slicer's automatic support threshold (PrusaSlicer 2.5, `support_material_threshold = 0`) supports
slopes up to about 35° from the horizontal (measured on a hemispherical shell: 419 mm² under the inner
cap where a 45° threshold gives 628 mm²); the estimate uses 45°, on the safe side for the skin.

Two figures of support contact, both in mm² of area seen from above:

- the **geometric estimate** (used to choose the pose): `overhang_contact`, the projected area of the
  faces that face downwards more steeply than the slicer's overhang threshold and are not on the bed —
  what a slicer must hold up from below — plus `standing_contact`, where the support columns under them
  stand on the part itself.
- `gcode_support_contact` (the **measurement**): the sliced G-code's support extrusions
  (`;TYPE:Support material` and `;TYPE:Support material interface`), sampled every 0.25 mm along each
  path; a sample touches the part when the part's surface lies within the support's contact distance
  plus 1.5 layers straight above it (support under the part) or below it (support standing on the part),
  and the face it meets there says which side. Each sample stands for its path width × length. This is
  what the print report gives when PrusaSlicer ran; without it the estimate is reported, labelled so.
"""

from __future__ import annotations

import re

import numpy as np

from .filling import SIDE_OUTER, SIDE_RIM, SIDE_SKIN
from .meshtools import RayScene, face_components, face_normals, triangle_areas

SIDE_NAMES = {SIDE_SKIN: "skin_side_mm2", SIDE_OUTER: "outer_side_mm2", SIDE_RIM: "rim_mm2"}


def rotation_taking(direction: np.ndarray, to: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """The smallest rotation (3, 3) that turns unit vector `direction` onto unit vector `to`."""
    a = np.asarray(direction, float) / np.linalg.norm(direction)
    b = np.asarray(to, float) / np.linalg.norm(to)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(a @ b)
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # half a turn about any axis perpendicular to a
        p = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        p /= np.linalg.norm(p)
        return 2 * np.outer(p, p) - np.eye(3)
    k = axis / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * K @ K


def sphere_directions(count: int) -> np.ndarray:
    """`count` unit vectors spread evenly over the sphere (Fibonacci lattice), (count, 3)."""
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return np.c_[r * np.cos(phi), r * np.sin(phi), z]


def overhang_contact(vertices: np.ndarray, faces: np.ndarray, side: np.ndarray, ups: np.ndarray,
                     overhang_deg: float = 45.0, bed_mm: float = 0.2) -> dict[int, np.ndarray]:
    """Geometric estimate of support contact (mm², projected on the bed) per side for each candidate
    "up" direction (k, 3) of one part: faces turned downwards more steeply than `overhang_deg` from the
    horizontal (the slicer's support threshold), except those within `bed_mm` of the part's lowest point
    (they lie on the bed). Returns {side: (k,) mm²}."""
    normals = face_normals(vertices, faces)
    areas = triangle_areas(vertices, faces)
    limit = np.cos(np.radians(90.0 - overhang_deg))  # |n_z| above this: flatter than the threshold
    out = {s: np.zeros(len(ups)) for s in SIDE_NAMES}
    for start in range(0, len(ups), 64):  # in blocks, to bound memory
        u = ups[start:start + 64]
        nz = normals @ u.T  # (m, k)
        heights = vertices @ u.T
        top = heights[faces].max(axis=1) - heights.min(axis=0)  # (m, k): highest corner above the bed
        hanging = (nz < -limit) & (top > bed_mm)
        projected = np.where(hanging, -nz * areas[:, None], 0.0)
        for s in out:
            out[s][start:start + 64] = projected[side == s].sum(axis=0)
    return out


def best_up_direction(vertices: np.ndarray, faces: np.ndarray, side: np.ndarray, overhang_deg: float = 45.0,
                      candidates: int = 400) -> tuple[np.ndarray, dict]:
    """The pose of one part: its "up" direction (3,) and the estimate there.

    Candidates: `candidates` directions over the sphere plus the skin side's mean normal ("skin side
    up"). Chosen: among the poses with the least skin-side contact (within 1 mm² of the least), the one
    closest to skin side up. Not the least outer-side contact: on a thin shell that is usually the part
    standing on its rim, 1 mm of first layer that a nozzle knocks over; skin side up it rests on its
    outer side (and the supports under it)."""
    normals = face_normals(vertices, faces)
    areas = triangle_areas(vertices, faces)
    skin = side == SIDE_SKIN
    skin_up = (normals[skin] * areas[skin, None]).sum(axis=0) if skin.any() else np.array([0.0, 0.0, -1.0])
    skin_up = skin_up / (np.linalg.norm(skin_up) + 1e-12)
    ups = np.r_[skin_up[None], sphere_directions(candidates)]
    contact = overhang_contact(vertices, faces, side, ups, overhang_deg)
    tilt = np.degrees(np.arccos(np.clip(ups @ skin_up, -1, 1)))
    # supports standing on the part under an overhang (ray casting, so only for the candidates that the
    # overhangs alone allow, least tilt first, until one keeps the skin side free)
    ok = np.flatnonzero(contact[SIDE_SKIN] <= contact[SIDE_SKIN].min() + 1.0)
    scene = RayScene(vertices, faces)
    best, best_key = None, None
    for k in ok[np.argsort(tilt[ok])]:
        standing = standing_contact(vertices, faces, side, ups[k], scene, overhang_deg)
        key = (contact[SIDE_SKIN][k] + standing[SIDE_SKIN] > 1.0, contact[SIDE_SKIN][k] + standing[SIDE_SKIN], tilt[k])
        if best_key is None or key < best_key:
            best, best_key, best_standing = k, key, standing
        if not key[0]:
            break
    estimate = {name: float(contact[s][best] + best_standing[s]) for s, name in SIDE_NAMES.items()}
    return ups[best], {**estimate, "skin_side_tilt_from_up_deg": float(tilt[best])}


def standing_contact(vertices: np.ndarray, faces: np.ndarray, side: np.ndarray, up: np.ndarray, scene: RayScene,
                     overhang_deg: float = 45.0) -> dict[int, float]:
    """Geometric estimate of the supports standing on the part (mm², projected) per side, with `up` (3,)
    vertical: below each overhanging face (as in `overhang_contact`) a ray straight down; where it meets
    the part rather than the bed, a support column stands there on the face it meets."""
    normals = face_normals(vertices, faces)
    areas = triangle_areas(vertices, faces)
    nz = normals @ up
    hanging = np.flatnonzero(nz < -np.cos(np.radians(90.0 - overhang_deg)))
    out = {s: 0.0 for s in SIDE_NAMES}
    if len(hanging) == 0:
        return out
    centres = vertices[faces[hanging]].mean(axis=1)
    hit = scene.cast(centres - 1e-3 * up, np.tile(-up, (len(hanging), 1)))
    below = hit["triangle"] >= 0
    for s in out:
        out[s] = float((-nz[hanging] * areas[hanging])[below & (side[np.maximum(hit["triangle"], 0)] == s)].sum())
    return out


def orient_parts(vertices: np.ndarray, faces: np.ndarray, side: np.ndarray, overhang_deg: float = 45.0,
                 gap_mm: float = 5.0) -> tuple[np.ndarray, list[dict]]:
    """Turn every separate part into its best pose (about its own centre), and lay the parts out in a row
    along x, `gap_mm` apart, when turned parts would overlap as seen from above. Returns the new
    vertices and, per part, its up direction (in the input frame) and the geometric estimate."""
    vertices = np.asarray(vertices, float).copy()
    labels = face_components(faces)
    parts, ids_of = [], []
    for k in np.unique(labels):
        ids = np.unique(faces[labels == k])
        local = np.full(len(vertices), -1)
        local[ids] = np.arange(len(ids))
        pf = local[faces[labels == k]]
        up, estimate = best_up_direction(vertices[ids], pf, side[labels == k], overhang_deg)
        centre = vertices[ids].mean(axis=0)
        vertices[ids] = (vertices[ids] - centre) @ rotation_taking(up).T + centre
        parts.append({"up_direction": np.round(up, 4).tolist(), "estimate": estimate})
        ids_of.append(ids)
    boxes = [(vertices[ids, :2].min(axis=0), vertices[ids, :2].max(axis=0)) for ids in ids_of]
    overlap = any((boxes[i][0] < boxes[j][1]).all() and (boxes[j][0] < boxes[i][1]).all()
                  for i in range(len(boxes)) for j in range(i))
    if overlap:
        x = 0.0
        for i in np.argsort([b[0][0] for b in boxes]):
            lo, hi = boxes[i]
            vertices[ids_of[i], 0] += x - lo[0]
            vertices[ids_of[i], 1] -= (lo[1] + hi[1]) / 2
            x += hi[0] - lo[0] + gap_mm
    return vertices, parts


def support_paths(gcode: str) -> list[tuple[float, float, np.ndarray, np.ndarray, float]]:
    """Support extrusions of a PrusaSlicer G-code (relative or absolute E): (layer top z, layer height,
    start xy, end xy, width) per extruding move inside `;TYPE:Support material…` blocks."""
    out = []
    x = y = z = 0.0
    height, width, e_abs, relative = 0.2, 0.4, 0.0, True
    in_support = False
    number = re.compile(r"([XYZE])(-?[\d.]+)")
    for line in gcode.splitlines():
        if line.startswith(";"):
            if line.startswith(";TYPE:"):
                in_support = line.startswith(";TYPE:Support material")
            elif line.startswith(";Z:"):
                z = float(line[3:])
            elif line.startswith(";HEIGHT:"):
                height = float(line[8:])
            elif line.startswith(";WIDTH:"):
                width = float(line[7:])
            continue
        if line.startswith("M83"):
            relative = True
        elif line.startswith("M82"):
            relative = False
        elif line.startswith("G92"):
            m = re.search(r"E(-?[\d.]+)", line)
            if m:
                e_abs = float(m.group(1))
        if not (line.startswith("G1 ") or line.startswith("G0 ")):
            continue
        values = dict((k, float(v)) for k, v in number.findall(line.split(";")[0]))
        nx, ny = values.get("X", x), values.get("Y", y)
        extruded = 0.0
        if "E" in values:
            extruded = values["E"] if relative else values["E"] - e_abs
            e_abs = e_abs + values["E"] if relative else values["E"]
        if in_support and extruded > 0 and (nx != x or ny != y):
            out.append((z, height, np.array([x, y]), np.array([nx, ny]), width))
        x, y = nx, ny
    return out


def gcode_support_contact(gcode: str, vertices: np.ndarray, faces: np.ndarray, side: np.ndarray,
                          contact_distance_mm: float = 0.2, step_mm: float = 0.25) -> dict:
    """Measured support contact (mm²) per side of the part (vertices and faces as placed in the sliced
    STL, `side` per face): see the module's docstring. Also per part (in `face_components` order) and the
    support's total extruded area."""
    paths = support_paths(gcode)
    labels = face_components(faces)
    result = {name: 0.0 for name in SIDE_NAMES.values()}
    if not paths:
        return {**result, "parts": [dict(result) for _ in range(labels.max() + 1)], "support_paths": 0,
                "support_extruded_area_mm2": 0.0}
    points, weights, heights = [], [], []
    for z, h, a, b, w in paths:
        length = float(np.linalg.norm(b - a))
        n = max(1, int(np.ceil(length / step_mm)))
        t = (np.arange(n) + 0.5) / n
        xy = a + t[:, None] * (b - a)
        points.append(np.c_[xy, np.full(n, z)])
        weights.append(np.full(n, w * length / n))
        heights.append(np.full(n, h))
    points, weights, heights = np.concatenate(points), np.concatenate(weights), np.concatenate(heights)
    scene = RayScene(vertices, faces)
    # the part's surface lies within (gap, gap + 1 layer] of a support layer's top (or bottom) that touches
    # it, the next layer's one more layer away
    reach = contact_distance_mm + 1.0 * heights + 0.05
    up = scene.cast(points, np.tile([0.0, 0.0, 1.0], (len(points), 1)))
    under = np.isfinite(up["t_hit"]) & (up["t_hit"] <= reach)  # support holding the part up
    base = points - np.c_[np.zeros((len(points), 2)), heights]
    down = scene.cast(base, np.tile([0.0, 0.0, -1.0], (len(points), 1)))
    on = np.isfinite(down["t_hit"]) & (down["t_hit"] <= reach) & ~under  # support standing on the part
    touched = np.where(under, up["triangle"], np.where(on, down["triangle"], -1))
    hit = touched >= 0
    touched_side, touched_part = side[touched[hit]], labels[touched[hit]]
    parts = []
    for k in range(int(labels.max()) + 1):
        parts.append({name: float(weights[hit][(touched_part == k) & (touched_side == s)].sum())
                      for s, name in SIDE_NAMES.items()})
    for name in SIDE_NAMES.values():
        result[name] = float(sum(p[name] for p in parts))
    result["parts"] = parts
    result["support_paths"] = len(paths)
    result["support_extruded_area_mm2"] = float(weights.sum())
    return result
