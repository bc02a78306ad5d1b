"""A two-part printable mould to cast a cover in silicone (mm, mm³).

`cover_mould(vertices, faces)` takes the cover as worn (canonical pose: the face looks along +z, the skin
side down) and builds, with exact booleans (manifold3d):

- a block around the cover, `wall_mm` beyond it on every side;
- the **parting surface**: in every vertical line, the cover's lowest point — the skin side, and under
  the rounded rim its lower quarter circle — so the parting line runs along the cover's rim; beyond the
  rim, the heights of the nearest rim points (inverse-distance weighted). Sampled on a grid of about
  `grid_mm` and warped into the block's top, so the **lower half** is the block below it (the skin
  side's positive, a copy of the injured skin) and the **upper half** the rest (the outer side's
  negative); the cover is subtracted from both, so the cavity is the cover itself (a film or sliver that
  the cover cuts off one half, where the sampled surface cuts a corner of it, joins the other half).
  Every vertical line meets the cavity in one stretch that starts on the parting surface: the halves part
  straight up.
- **registration keys**: a half sphere on the lower half's parting surface at each corner, a socket
  `key_clearance_mm` larger in the upper half;
- a **sprue** (a vertical channel from the top of the upper half to the cavity's highest point) and
  **vents** (thin channels from the cavity's outermost points in ±x, ±y), through the upper half.

The silicone needed is the cavity plus the channels' volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import FacecoverError
from .meshtools import RayScene, face_normals


@dataclass(frozen=True)
class MouldSettings:
    wall_mm: float = 8.0  # block beyond the cover on every side (room for the keys)
    grid_mm: float = 0.5  # spacing of the parting surface's samples
    key_radius_mm: float = 2.5
    key_clearance_mm: float = 0.2
    sprue_radius_mm: float = 2.0
    vent_radius_mm: float = 0.75


def _manifold(vertices: np.ndarray, faces: np.ndarray):
    from manifold3d import Manifold, Mesh

    solid = Manifold(Mesh(vert_properties=np.ascontiguousarray(vertices, np.float32),
                          tri_verts=np.ascontiguousarray(faces, np.uint32)))
    if solid.status().name != "NoError" or solid.is_empty():
        raise FacecoverError(f"mould: the cover is not a closed manifold solid ({solid.status().name})")
    return solid


def _pieces(solid) -> tuple:
    """The largest piece of a solid, and a list of the others."""
    pieces = sorted(solid.decompose(), key=lambda piece: -piece.volume())
    return pieces[0], pieces[1:]


def _arrays(solid) -> tuple[np.ndarray, np.ndarray]:
    mesh = solid.to_mesh()
    return np.asarray(mesh.vert_properties, np.float64)[:, :3], np.asarray(mesh.tri_verts, np.int64)


def parting_heights(vertices: np.ndarray, faces: np.ndarray, xy: np.ndarray, neighbours: int = 8) -> np.ndarray:
    """Height (k,) of the parting surface at points xy (k, 2): the cover's lowest point in that vertical
    line, and outside the cover the inverse-distance-weighted height of the nearest points that have one."""
    from scipy.spatial import cKDTree

    below = vertices[:, 2].min() - 1.0
    hit = RayScene(vertices, faces).cast(np.c_[xy, np.full(len(xy), below)], np.tile([0.0, 0.0, 1.0], (len(xy), 1)))
    z = below + hit["t_hit"].astype(np.float64)
    inside = np.isfinite(z)
    if not inside.any():
        raise FacecoverError("mould: the parting surface's grid misses the cover")
    if (~inside).any():
        tree = cKDTree(xy[inside])
        dist, idx = tree.query(xy[~inside], k=min(neighbours, int(inside.sum())))
        dist, idx = np.atleast_2d(dist).reshape(len(dist), -1), np.atleast_2d(idx).reshape(len(dist), -1)
        w = 1.0 / np.maximum(dist, 1e-6) ** 2
        z[~inside] = (w * z[inside][idx]).sum(axis=1) / w.sum(axis=1)
    return z


def _channel(spec: dict, wider_mm: float = 0.0):
    """A sprue or vent (`cover_mould`'s report["channels"] entry): a vertical cylinder, `wider_mm` wider and
    longer at both ends."""
    from manifold3d import Manifold

    radius = spec["radius_mm"] + wider_mm
    return Manifold.cylinder(spec["to_z_mm"] - spec["from_z_mm"] + 2 * wider_mm, radius, radius, 24).translate(
        (spec["xy_mm"][0], spec["xy_mm"][1], spec["from_z_mm"] - wider_mm))


def cover_mould(vertices: np.ndarray, faces: np.ndarray, settings: MouldSettings = MouldSettings()) -> dict:
    """The mould's lower and upper halves ((vertices, faces) each, in the cover's frame) and a report:
    cavity volume (block minus the two plain halves, before keys and channels), silicone estimate (mm³ and
    ml), where the sprue and vents are."""
    from manifold3d import Manifold, OpType

    cover = _manifold(vertices, faces)
    s = settings
    lo, hi = vertices.min(axis=0) - s.wall_mm, vertices.max(axis=0) + s.wall_mm
    size = hi - lo
    n = int(np.ceil(size[:2].max() / s.grid_mm))
    block = Manifold.cube(tuple(size)).translate(tuple(lo))
    bottom = Manifold.cube(tuple(size)).refine(n).translate(tuple(lo))

    from scipy.interpolate import RegularGridInterpolator

    gx, gy = np.linspace(lo[0], hi[0], n + 1), np.linspace(lo[1], hi[1], n + 1)  # the refined box's vertices
    GX, GY = np.meshgrid(gx, gy, indexing="ij")
    grid_z = parting_heights(vertices, faces, np.c_[GX.ravel(), GY.ravel()]).reshape(GX.shape)
    parting = RegularGridInterpolator((gx, gy), grid_z)

    def to_parting(points: np.ndarray) -> np.ndarray:  # the refined box's top onto the parting surface
        z = parting(np.clip(points[:, :2], lo[:2], hi[:2]))
        frac = (points[:, 2] - lo[2]) / size[2]
        return np.c_[points[:, :2], lo[2] + frac * (z - lo[2])]

    lower_plain = bottom.warp_batch(to_parting)
    # Where the sampled parting surface cuts a corner of the cover (at its rim, or a chord under a curved skin
    # side), the cover cuts pieces off a half: films and slivers lying between the cover and the *other*
    # half. Each goes to that other half (the one it rests on, and the one that parts with it), so the halves
    # still fill the block around the cover exactly: dropping them left them as cavity, silicone flash up to
    # 0.1 mm thick beyond the cover (0.2 mm³ on a 139 mm³ held-out cover).
    upper_plain = block - lower_plain
    lower, lower_cut = _pieces(lower_plain - cover)
    upper, upper_cut = _pieces(upper_plain - cover)
    lower = Manifold.batch_boolean([lower] + upper_cut, OpType.Add)
    upper = Manifold.batch_boolean([upper] + lower_cut, OpType.Add)
    cavity = block.volume() - lower.volume() - upper.volume()

    # registration keys at the corners, on the parting surface
    inset = s.wall_mm / 2
    corners = np.array([[lo[0] + inset, lo[1] + inset], [hi[0] - inset, lo[1] + inset],
                        [hi[0] - inset, hi[1] - inset], [lo[0] + inset, hi[1] - inset]])
    corner_z = parting(corners)
    for (x, y), z in zip(corners, corner_z):
        lower = lower + Manifold.sphere(s.key_radius_mm, 32).translate((x, y, z))
        upper = upper - Manifold.sphere(s.key_radius_mm + s.key_clearance_mm, 32).translate((x, y, z))

    # sprue at the cavity's highest point, vents at its outermost points, straight up through the upper half
    outer = face_normals(vertices, faces)[:, 2] > 0.3
    top_points = vertices[np.unique(faces[outer])] if outer.any() else vertices
    sprue = top_points[np.argmax(top_points[:, 2])]
    vents = [top_points[np.argmin(top_points[:, 0])], top_points[np.argmax(top_points[:, 0])],
             top_points[np.argmin(top_points[:, 1])], top_points[np.argmax(top_points[:, 1])]]
    channels, specs = [], []
    for point, radius in [(sprue, s.sprue_radius_mm)] + [(v, s.vent_radius_mm) for v in vents]:
        start = point[2] - 0.5  # into the cavity
        spec = {"xy_mm": [float(point[0]), float(point[1])], "from_z_mm": float(start), "to_z_mm": float(hi[2] + 1.0),
                "radius_mm": float(radius)}
        channel = _channel(spec)
        channels.append(channel)
        specs.append(spec)
        upper = upper - channel
    channel_volume = float(sum((c ^ (upper_plain - cover)).volume() for c in channels))
    dropped = 0.0
    halves = {}
    for name, half in (("lower", lower), ("upper", upper)):
        if half.status().name != "NoError" or half.is_empty():
            raise FacecoverError(f"mould: the {name} half is not a valid solid ({half.status().name})")
        # anything a key or a channel cut off (none measured: the cover's cuts went to the other half above)
        pieces = sorted(half.decompose(), key=lambda piece: -piece.volume())
        dropped += float(sum(piece.volume() for piece in pieces[1:]))
        halves[name] = pieces[0]
    lower, upper = halves["lower"], halves["upper"]
    report = {
        "block_mm": size.round(2).tolist(),
        "cavity_volume_mm3": float(cavity),
        "cover_volume_mm3": float(cover.volume()),
        "channels_volume_mm3": channel_volume,
        "slivers_dropped_mm3": dropped,
        "silicone_mm3": float(cavity + channel_volume),
        "silicone_ml": round(float(cavity + channel_volume) / 1000.0, 2),
        "sprue_mm": np.round(sprue, 2).tolist(),
        "vents_mm": [np.round(v, 2).tolist() for v in vents],
        "keys_mm": np.round(np.c_[corners, corner_z], 2).tolist(),
        "channels": specs,
        "settings": settings.__dict__,
    }
    return {"lower": _arrays(lower), "upper": _arrays(upper), "report": report}


def cavity_check(vertices: np.ndarray, faces: np.ndarray, mould: dict, samples: int = 20000, seed: int = 0,
                 sheet_mm: float = 1e-3) -> dict:
    """The mould's cavity, measured from the halves as made (`cover_mould`'s output, keys, channels and
    dropped slivers included), against the cover (vertices, faces; the frame `cover_mould` was given).

    The cavity is the block around the cover minus both halves, less the sprue and vents where they lie
    outside the cover (cut 0.01 mm wider: the very cylinders leave zero-thickness sheets along their walls),
    and only the pieces that meet the cover (the key sockets' clearance is not cavity).
    Returns its volume and the cover's (mm³), their difference (% of the cover's), the volume of cavity
    outside the cover and of cover outside the cavity (mm³), and the distance (mm) from the cavity's surface
    to the cover's and back, sampled by area (`samples` points each way; the cavity's points on a zero-thickness
    sheet between the halves left out, `sheet_share` of them): max and 99th percentile."""
    from manifold3d import Manifold, OpType

    from .meshtools import DistanceScene, sample_surface

    cover = _manifold(vertices, faces)
    wall = mould["report"]["settings"]["wall_mm"]
    lo, hi = vertices.min(axis=0) - wall, vertices.max(axis=0) + wall
    block = Manifold.cube(tuple(hi - lo)).translate(tuple(lo))
    halves = Manifold.batch_boolean([_manifold(*mould["lower"]), _manifold(*mould["upper"])], OpType.Add)
    void = block - halves
    for spec in mould["report"].get("channels", []):
        void = void - (_channel(spec, wider_mm=0.01) - cover)
    pieces = [piece for piece in void.decompose() if (piece ^ cover).volume() > 1e-6]
    cavity = Manifold.batch_boolean(pieces, OpType.Add) if pieces else Manifold()
    cv, cf = _arrays(cavity)
    out = {"cavity_volume_mm3": float(cavity.volume()), "cover_volume_mm3": float(cover.volume()),
           "cavity_pieces": len(pieces),
           "cavity_outside_cover_mm3": float((cavity - cover).volume()),
           "cover_outside_cavity_mm3": float((cover - cavity).volume())}
    out["volume_diff_percent"] = 100.0 * (out["cavity_volume_mm3"] / out["cover_volume_mm3"] - 1.0)
    if not len(cf):
        return out | {"distance_max_mm": float("inf"), "distance_p99_mm": float("inf")}
    points = sample_surface(cv, cf, samples, seed=seed)[0]
    # the booleans (in float32) leave zero-thickness sheets of "void" where the halves meet on the parting
    # surface: a point of the cavity's surface within `sheet_mm` of both halves is not cavity
    near = [DistanceScene(*mould[half])(points) < sheet_mm for half in ("lower", "upper")]
    sheet = near[0] & near[1]
    to_cover = DistanceScene(vertices, faces)(points[~sheet])
    to_cavity = DistanceScene(cv, cf)(sample_surface(vertices, faces, samples, seed=seed)[0])
    both = np.r_[to_cover, to_cavity]
    return out | {"distance_max_mm": float(both.max()), "distance_p99_mm": float(np.percentile(both, 99)),
                  "cavity_to_cover_max_mm": float(to_cover.max()) if len(to_cover) else 0.0,
                  "cover_to_cavity_max_mm": float(to_cavity.max()), "sheet_share": float(sheet.mean())}


def mould_print_layout(halves: dict, gap_mm: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Both halves in one mesh as they print: the lower half on its flat bottom, the upper half turned
    over onto its flat top, side by side along the block's shorter side (x, or y when the block is longer
    in x), `gap_mm` apart: the squarer layout. Along x always, a cover of two parts far apart (cohort
    subject30: a 122 × 92 mm block) laid out 254.8 mm long on a 205 mm bed; along y it is 195 mm."""
    lv, lf = halves["lower"]
    uv, uf = halves["upper"]
    uv = uv * [1.0, -1.0, -1.0]  # half a turn about x: the flat top down (winding kept)
    size = lv.max(axis=0) - lv.min(axis=0)
    along = 0 if size[0] <= size[1] else 1
    shift = np.zeros(3)
    shift[along] = lv[:, along].max() + gap_mm - uv[:, along].min()
    centre = lambda w: (w[:, 1 - along].min() + w[:, 1 - along].max()) / 2  # noqa: E731
    shift[1 - along] = centre(lv) - centre(uv)
    return np.r_[lv, uv + shift], np.r_[lf, uf + len(lv)]
