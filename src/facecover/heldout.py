"""Held-out faces: scans the registration never saw, with their true correspondence (for tests and benchmarks).

The synthetic cohort is drawn from the same shape space the registration fits, so it cannot tell whether
registration holds on other faces. These faces are made another way, from the template (mm):

* ``warp`` — large smooth warps by Gaussian radial basis functions (other widths and amplitudes than the
  shape space's modes), in three dimensions, not along the normal;
* ``asymmetric`` — one side of the face wider and fuller than the other;
* ``narrow`` / ``wide`` — the face 15 % narrower / wider than the template, beyond the space's spread;
* ``open_eyes`` — holes where the eyes are (the lids cut open);
* ``parted_lips`` — the lips cut apart and the lower lip and chin lowered by a few mm;
* ``extended`` — a scan reaching past the face: sides of the head with ears, a hairline band, the neck
  and shoulders, joined to the face's outline;
* ``textured`` — the same face as a PLY with vertex colours and as an OBJ with texture coordinates;
* ``quads`` — an OBJ of quadrilaterals;
* ``dense`` — resampled to about 50 k or 300 k vertices;
* ``units`` — written in metres, centimetres or inches.

`warped_faces` makes whole healthy faces the same way (random warps and stretches of the template), for the
learning benchmark's held-out subjects.

Every case carries `truth` (7160, 3): where each template vertex is on that face, in the scan's frame and
units of mm — the true correspondence. Cases combine with a random pose and scanner noise.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

INCH_MM = 25.4


@dataclass
class HeldoutFace:
    """One held-out scan: `vertices` (n, 3) and `faces` (m, 3 or 4) in the file's units, the true template
    correspondence `truth` (7160, 3) in mm in the scan's frame, and how to write it."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    truth: np.ndarray
    units: str = "mm"                  # units the vertices are written in
    suffix: str = ".ply"
    colors: np.ndarray | None = None   # (n, 3) uint8 vertex colours
    uv: np.ndarray | None = None       # (n, 2) texture coordinates
    notes: dict = field(default_factory=dict)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def rbf_warp(vertices: np.ndarray, rng: np.random.Generator, count: int = 8, amplitude_mm: float = 4.0,
             width_mm: tuple[float, float] = (18.0, 45.0)) -> np.ndarray:
    """A smooth 3-D displacement field (n, 3) mm: a sum of Gaussian bumps at random centres on the face, each
    moving the skin in a random direction."""
    centres = vertices[rng.choice(len(vertices), count, replace=False)]
    widths = rng.uniform(*width_mm, count)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    amplitudes = amplitude_mm * rng.uniform(0.5, 1.0, count)
    d2 = ((vertices[:, None] - centres[None]) ** 2).sum(axis=2)
    weights = np.exp(-0.5 * d2 / widths**2)
    return (weights * amplitudes) @ directions


def _remove_rigid(displacement: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """The displacement field without its best rigid part (so a warp changes shape, not pose)."""
    from .shape_space import remove_rigid

    return remove_rigid(displacement[None], vertices)[0]


def shaped_faces(space: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Face shapes (template topology, canonical pose, mm) outside the shape space, by name."""
    v = space["vertices"]
    x = v[:, 0]
    half = np.ptp(x) / 2
    out = {}
    # large and broad (amplitude up to 8 mm, 25-60 mm wide), and smaller but tighter (4 mm, 10-25 mm wide)
    out["warp1"] = v + _remove_rigid(rbf_warp(v, _rng(seed, "warp0"), 10, 8.0, (25.0, 60.0)), v)
    out["warp2"] = v + _remove_rigid(rbf_warp(v, _rng(seed, "warp1"), 24, 4.0, (10.0, 25.0)), v)
    side = np.clip(x / half, 0, 1) ** 1.5  # 0 on the left half, rising to 1 at the right edge
    normals = _vertex_normals(v, space["faces"])
    asym = np.zeros_like(v)
    asym[:, 0] = 6.0 * side * np.sign(x)
    asym += normals * (2.5 * np.exp(-0.5 * ((x - 0.5 * half) / 20.0) ** 2) * (x > 0))[:, None]
    out["asymmetric"] = v + _remove_rigid(asym, v)
    for name, factor in (("narrow", 0.85), ("wide", 1.15)):
        scaled = v.copy()
        scaled[:, 0] *= factor
        out[name] = scaled
    return out


def warped_faces(space: dict, count: int, seed: int = 0, amplitude_mm: float = 2.0,
                 stretch: float = 0.06) -> np.ndarray:
    """`count` healthy faces (count, N, 3) mm in template topology and canonical pose, made another way than
    the shape space's people: the template warped by random smooth 3-D fields of Gaussian bumps at two
    scales (8 broad bumps 30-60 mm wide up to `amplitude_mm`, 16 tighter ones 12-25 mm wide up to half of
    it), then stretched along width, height and depth by independent factors within 1 ± `stretch`; the
    rigid part of the change is removed. Face i depends only on (seed, i)."""
    v = np.asarray(space["vertices"], np.float64)
    centre = v.mean(axis=0)
    out = np.empty((count, *v.shape))
    for i in range(count):
        rng = _rng(seed, f"warped{i:04d}")
        d = rbf_warp(v, rng, 8, amplitude_mm, (30.0, 60.0)) + rbf_warp(v, rng, 16, amplitude_mm / 2, (12.0, 25.0))
        stretched = centre + (v + d - centre) * rng.uniform(1 - stretch, 1 + stretch, 3)
        out[i] = v + _remove_rigid(stretched - v, v)
    return out


def _vertex_normals(v, f):
    from .meshtools import vertex_normals

    return vertex_normals(v, f)


def lowered_lip(space: dict, vertices: np.ndarray, drop_mm: float = 3.0) -> np.ndarray:
    """The face with the lower lip and chin lowered by up to `drop_mm` (the mouth opened a little)."""
    from .template import landmark_positions

    mouth_l, mouth_r = landmark_positions(space, vertices, ("mouth_left", "mouth_right"))
    mouth_y = 0.5 * (mouth_l[1] + mouth_r[1])
    half_width = 0.5 * abs(mouth_l[0] - mouth_r[0])
    v = vertices.copy()
    drop = np.clip((mouth_y - v[:, 1]) / 4.0, 0, 1) * np.exp(-0.5 * (v[:, 0] / (1.2 * half_width)) ** 4)
    v[:, 1] -= drop_mm * drop
    return v


def cut(space: dict, shape: np.ndarray, scan_v: np.ndarray, scan_f: np.ndarray, which: str) -> np.ndarray:
    """Triangles of a scan (canonical pose, mm) with the eyes cut open (`open_eyes`) or a strip between the
    lips removed (`parted_lips`); landmark positions come from the face's true template vertices `shape`."""
    from .template import landmark_positions

    centre = scan_v[scan_f].mean(axis=1)
    if which == "open_eyes":
        eyes = landmark_positions(space, shape, ("eye_left", "eye_right"))
        near = np.min([np.linalg.norm((centre - p)[:, :2] / [12.0, 5.0], axis=1) for p in eyes], axis=0) < 1.0
        return scan_f[~near]
    mouth_l, mouth_r = landmark_positions(space, shape, ("mouth_left", "mouth_right"))
    mouth_y = 0.5 * (mouth_l[1] + mouth_r[1]) - 1.5  # the parted lips' gap, below the lips' meeting line
    half_width = 0.5 * abs(mouth_l[0] - mouth_r[0])
    strip = (np.abs(centre[:, 1] - mouth_y) < 1.3) & (np.abs(centre[:, 0] - 0.5 * (mouth_l[0] + mouth_r[0]))
                                                        < 0.85 * half_width)
    return scan_f[~strip]


def extended_scan(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The face joined along its outline to more surface: the sides of the head (with ear-like bumps),
    a hairline band above the forehead, the neck and the shoulders (template vertices stay first)."""
    from .meshtools import boundary_loops

    loop = boundary_loops(faces, vertices)[0]
    rim = vertices[loop]
    centre = vertices.mean(axis=0)
    out = rim - centre
    out[:, 2] = 0.0
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-9
    rings, verts = [loop], [vertices]
    n = len(vertices)
    previous = rim
    for step in range(1, 9):
        t = step / 8.0
        ring = previous + 6.0 * out + np.array([0.0, 0.0, -9.0])   # outwards and backwards: sides of the head
        below = rim[:, 1] < centre[1] - 40.0                       # under the jaw: down the neck, then out
        ring[below] = previous[below] + np.array([0.0, -10.0, -3.0]) + (t > 0.6) * 12.0 * out[below] * [1, 0, 0]
        above = rim[:, 1] > centre[1] + 50.0                        # above the forehead: the hairline, rising
        ring[above] = previous[above] + np.array([0.0, 7.0, -6.0])
        ear = np.exp(-0.5 * ((rim[:, 1] - centre[1] - 5.0) / 14.0) ** 2) * (np.abs(rim[:, 0] - centre[0]) > 55.0)
        ring = ring + (ear * 4.0 * np.sin(np.pi * t))[:, None] * out
        ring = ring + rng.normal(0.0, 0.3, ring.shape)
        verts.append(ring)
        rings.append(np.arange(n, n + len(loop)))
        n += len(loop)
        previous = ring
    tris = [faces]
    for a, b in zip(rings[:-1], rings[1:]):
        a2, b2 = np.roll(a, -1), np.roll(b, -1)
        # the face's boundary edge runs a -> a2 in its triangles; the band continues it outwards
        tris.append(np.c_[a2, a, b])
        tris.append(np.c_[a2, b, b2])
    return np.concatenate(verts), np.concatenate(tris)


def quads_from(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Quadrilaterals (k, 4) from pairs of triangles sharing an edge (greedy), and the triangles left over
    (j, 3): (quads, triangles)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    used = np.zeros(len(faces), bool)
    quads = []
    for (i, j), edge in zip(mesh.face_adjacency, mesh.face_adjacency_edges):
        if used[i] or used[j]:
            continue
        fi = faces[i]
        k = int(np.setdiff1d(faces[j], edge)[0])
        # the quad goes around triangle i and inserts j's opposite vertex between the shared edge's ends
        for r in range(3):
            a, b = fi[r], fi[(r + 1) % 3]
            if {a, b} == set(edge):
                quads.append([a, k, b, fi[(r + 2) % 3]])
                break
        used[i] = used[j] = True
    return np.array(quads), faces[~used]


def resampled(vertices: np.ndarray, faces: np.ndarray, spacing_mm: float, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """A scanner-like resampling at about `spacing_mm` (own triangulation), as the synthetic cohort does."""
    from .cohort import ScanSettings, disk_parameterization, synthetic_scan

    uv = disk_parameterization(vertices, faces)
    settings = ScanSettings(point_spacing_mm=spacing_mm, noise_mm=0.0, holes=0, max_rotation_deg=0.0,
                            max_translation_mm=0.0)
    v, f, _ = synthetic_scan(vertices, faces, uv, rng, settings)
    return v, f


def posed(vertices: np.ndarray, truth: np.ndarray, rng: np.random.Generator, max_rotation_deg: float = 40.0,
          noise_mm: float = 0.15, normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scan vertices and truth in a random rigid pose; the scan also gets noise (mm) along `normals`."""
    from .cohort import random_rotation

    R = random_rotation(rng, max_rotation_deg)
    t = rng.uniform(-80.0, 80.0, 3)
    noisy = vertices.copy()
    if normals is not None and noise_mm > 0:
        noisy = noisy + rng.normal(0.0, noise_mm, len(noisy))[:, None] * normals
    return noisy @ R.T + t, truth @ R.T + t


def heldout_suite(space: dict, seed: int = 0, dense: tuple[int, ...] = (50_000, 300_000),
                  spacing_mm: float = 1.3) -> list[HeldoutFace]:
    """The held-out faces (see the module docstring), each with its true correspondence. Every scan has its
    own triangulation (resampled at about `spacing_mm`, like a scanner), a random pose and 0.15 mm noise."""
    import trimesh

    from .meshtools import vertex_normals

    faces = np.asarray(space["faces"])
    shapes = shaped_faces(space, seed)
    shapes["lips"] = lowered_lip(space, shapes["warp1"])
    suite = []

    def scan_of(shape, name, spacing=spacing_mm):
        return resampled(shape, faces, spacing, _rng(seed, "resample/" + name))

    def add(name, v, f, truth_canonical, **kw):
        rng = _rng(seed, "pose/" + name)
        n = vertex_normals(v, f) if f.shape[1] == 3 else vertex_normals(v, np.r_[f[:, :3], f[:, [0, 2, 3]]])
        scan, truth = posed(v, truth_canonical, rng, normals=n)
        suite.append(HeldoutFace(name, scan, f, truth, **kw))

    for name in ("warp1", "warp2", "asymmetric", "narrow", "wide"):
        add(name, *scan_of(shapes[name], name), shapes[name])
    v, f = scan_of(shapes["warp1"], "open_eyes")
    add("open_eyes", v, cut(space, shapes["warp1"], v, f, "open_eyes"), shapes["warp1"])
    v, f = scan_of(shapes["lips"], "parted_lips")
    add("parted_lips", v, cut(space, shapes["lips"], v, f, "parted_lips"), shapes["lips"])
    v, f = extended_scan(*scan_of(shapes["warp2"], "extended"), _rng(seed, "extended"))
    add("extended", v, f, shapes["warp2"])
    v, f = scan_of(shapes["asymmetric"], "textured")
    colours = (np.clip(0.5 + 0.002 * (v - v.mean(axis=0)), 0, 1) * 255).astype(np.uint8)
    add("textured_ply", v, f, shapes["asymmetric"], colors=colours)
    uv = (v[:, :2] - v[:, :2].min(axis=0)) / np.ptp(v[:, :2], axis=0)
    add("textured_obj", v, f, shapes["asymmetric"], suffix=".obj", uv=uv)
    v, f = scan_of(shapes["narrow"], "quads")
    quads, tris = quads_from(v, f)
    add("quads_obj", v, quads, shapes["narrow"], suffix=".obj", notes={"triangles": tris})
    area = float(trimesh.triangles.area(shapes["wide"][faces]).sum())
    for count in dense:
        # points are thinned after sampling: about 0.6 of the nominal count survive, hence the 0.775
        spacing = 0.775 * np.sqrt(2 * area / (np.sqrt(3) * count))
        add(f"dense_{count // 1000}k", *scan_of(shapes["wide"], f"dense{count}", spacing), shapes["wide"])
    v, f = scan_of(shapes["warp2"], "units")
    for units, factor in (("m", 1e-3), ("cm", 0.1), ("in", 1 / INCH_MM)):
        rng = _rng(seed, "units/" + units)
        scan, truth = posed(v, shapes["warp2"], rng, normals=vertex_normals(v, f))
        suite.append(HeldoutFace(f"units_{units}", scan * factor, f, truth, units=units))
    return suite


def write_face(face: HeldoutFace, folder):
    """Write a held-out face as a scan file (PLY with optional vertex colours, or OBJ with optional texture
    coordinates and quads); returns its path."""
    from pathlib import Path

    import trimesh

    path = Path(folder) / f"{face.name}{face.suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if face.suffix == ".obj":
        lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in face.vertices]
        if face.uv is not None:
            lines += [f"vt {u:.6f} {w:.6f}" for u, w in face.uv]
        polys = [face.faces] + ([face.notes["triangles"]] if "triangles" in face.notes else [])
        for poly in polys:
            for row in poly:
                ids = [str(i + 1) for i in row]
                lines.append("f " + " ".join(f"{i}/{i}" if face.uv is not None else i for i in ids))
        path.write_text("\n".join(lines) + "\n")
        return path
    mesh = trimesh.Trimesh(face.vertices, face.faces, vertex_colors=face.colors, process=False)
    mesh.export(path)
    return path


# Held-out *patients*: whole faces in their own topology (mm, canonical pose), each with named points to place a
# wound, from generators the product does not learn from (the pool and the cohort are ICT identities alone).

PATIENT_SETS = ("cohort", "handmade", "expressions", "asymmetric", "cohort_scars", "cohort_warped")
WOUND_SITES = ("cheek_left", "forehead", "nose", "chin", "cheek_right")


@dataclass
class PatientFace:
    """A healthy face `vertices` (n, 3) mm over `faces` (m, 3), canonical pose, and its named points (mm):
    eye_left, eye_right, nose_tip, mouth_left, mouth_right, chin."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    points: dict
    notes: dict = field(default_factory=dict)


def _ict_points(model: dict, vertices: np.ndarray) -> dict:
    lm = model["landmarks68"]
    return {"eye_right": vertices[lm[36:42]].mean(axis=0), "eye_left": vertices[lm[42:48]].mean(axis=0),
            "nose_tip": vertices[lm[30]], "mouth_right": vertices[lm[48]], "mouth_left": vertices[lm[54]],
            "chin": vertices[lm[8]]}


def _template_points(space: dict, vertices: np.ndarray) -> dict:
    from .template import landmark_positions

    names = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right", "chin")
    return dict(zip(names, landmark_positions(space, vertices, names)))


EXPRESSIONS = {  # ICT-FaceKit (ARKit) blendshape weights
    "squint": {"eyeSquint_L": 0.7, "eyeSquint_R": 0.7, "cheekSquint_L": 0.6, "cheekSquint_R": 0.6},
    "smile": {"mouthSmile_L": 0.7, "mouthSmile_R": 0.7, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3},
    "mouth_open": {"jawOpen": 0.25, "mouthLowerDown_L": 0.2, "mouthLowerDown_R": 0.2},
}


def patient_faces(space: dict, which: str, count: int, seed: int = 0) -> list[PatientFace]:
    """`count` healthy faces of one held-out set (see `PATIENT_SETS`):

    * ``cohort`` — people as the cohort's (ICT identities + fine detail, template topology): in-model;
    * ``cohort_scars`` — other people made the same way, to carry the cohort's scar mix (`scar_mix`) rather
      than one round dent: validation for raised, elongated and severe scars;
    * ``cohort_warped`` — other people made the same way, with an expression (ICT's blendshapes on the
      template, the kinds of `EXPRESSIONS` at 0.6-1.0 of their weight) and a strong smooth 3-D warp (bumps
      25-50 mm wide, up to 5 mm): validation for what a scan shows beyond a neutral face (template topology);
    * ``handmade`` — the old generator: the MeshMonk template and its hand-made anatomical and smooth modes
      (template topology, 140 mm face breadth);
    * ``expressions`` — ICT people (ICT's own topology, 9.7k vertices) with an expression (squint, smile,
      mouth slightly open) and a strong smooth 3-D warp (bumps 25-50 mm wide, up to 5 mm);
    * ``asymmetric`` — ICT people (ICT topology) with one side 5-8 mm wider and a cheek 2-3 mm fuller.
    """
    from . import ict
    from .cohort import person_vertices

    out = []
    cohort_like = ("cohort", "cohort_scars", "cohort_warped")  # people made like the cohort's (template topology)
    model = None if which in (*cohort_like, "handmade") else ict.closed_model(ict.load_model())
    for i in range(count):
        rng = _rng(seed, f"patient-{which}-{i}")
        name = f"{which}{i:02d}"
        if which in cohort_like:
            v = person_vertices(space, rng, with_detail=True)
            notes = {}
            if which == "cohort_warped":
                kind = list(EXPRESSIONS)[i % len(EXPRESSIONS)]
                weights = ict.expression_weights(space, **{key: value * rng.uniform(0.6, 1.0)
                                                           for key, value in EXPRESSIONS[kind].items()})
                v = v + np.tensordot(weights, np.asarray(space["expression_basis"], np.float64), axes=1)
                v = v + _remove_rigid(rbf_warp(v, rng, 8, 5.0, (25.0, 50.0)), v)
                notes = {"expression": kind, "warp_mm": 5.0}
            out.append(PatientFace(name, v, space["faces"], _template_points(space, v), notes))
        elif which == "handmade":
            z = np.clip(rng.standard_normal(len(space["handmade_sigma"])), -2.5, 2.5)
            v = space["handmade_vertices"] + np.tensordot(z * space["handmade_sigma"], space["handmade_basis"], axes=1)
            out.append(PatientFace(name, v, space["faces"], _template_points(space, v)))
        elif which in ("expressions", "asymmetric"):
            identity = np.clip(rng.standard_normal(len(model["identity_mm"])), -2.5, 2.5)
            if which == "expressions":
                kind = list(EXPRESSIONS)[i % len(EXPRESSIONS)]
                v = ict.face_vertices(model, identity, ict.expression_weights(model, **EXPRESSIONS[kind]))
                v = v + _remove_rigid(rbf_warp(v, rng, 8, 5.0, (25.0, 50.0)), v)
                notes = {"expression": kind, "warp_mm": 5.0}
            else:
                v = ict.face_vertices(model, identity)
                centre = v.mean(axis=0)
                side = 1.0 if rng.random() < 0.5 else -1.0
                x = (v[:, 0] - centre[0]) * side
                half = np.ptp(v[:, 0]) / 2
                widen = rng.uniform(5.0, 8.0)
                asym = np.zeros_like(v)
                asym[:, 0] = side * widen * np.clip(x / half, 0, 1) ** 1.5
                bulge = rng.uniform(2.0, 3.0) * np.exp(-0.5 * ((x - 0.45 * half) / 18.0) ** 2) * (x > 0)
                asym += _vertex_normals(v, model["triangles"]) * bulge[:, None]
                v = v + _remove_rigid(asym, v)
                notes = {"wider_side": "left" if side > 0 else "right", "widened_mm": round(widen, 2)}
            out.append(PatientFace(name, v, model["triangles"], _ict_points(model, v), notes))
        else:
            raise ValueError(f"unknown held-out set '{which}' (one of {', '.join(PATIENT_SETS)})")
    return out


def wound_site(face: PatientFace, site: str) -> np.ndarray:
    """Where a wound at `site` (one of `WOUND_SITES`) is centred on the face: the front-most surface point
    (largest z, canonical pose) within 4 mm, in the frontal (x, y) plane, of a point set from the face's
    named points (mm)."""
    p = face.points
    eyes = 0.5 * (p["eye_left"] + p["eye_right"])
    target = {
        "forehead": eyes + [0.0, 0.55 * (eyes[1] - p["chin"][1]) * 0.5, 0.0],
        "nose": 0.45 * p["nose_tip"] + 0.55 * eyes,
        "chin": p["chin"] + [0.0, 12.0, 0.0],
        "cheek_left": np.r_[p["eye_left"][0] + 6.0, 0.5 * (p["eye_left"][1] + p["mouth_left"][1]), 0.0],
        "cheek_right": np.r_[p["eye_right"][0] - 6.0, 0.5 * (p["eye_right"][1] + p["mouth_right"][1]), 0.0],
    }[site]
    near = np.flatnonzero(np.linalg.norm(face.vertices[:, :2] - target[:2], axis=1) < 4.0)
    return int(near[np.argmax(face.vertices[near, 2])])


def scar_mix(space: dict, face: PatientFace, rng: np.random.Generator, settings=None) -> dict:
    """The cohort's scars (`scars.simulate_scars` with `settings`, a `ScarSettings`; None: its defaults) on a
    face in template topology: `displacement` (n,) signed mm along the normal (+ raised) and the scars'
    `scar_kind`, `scar_region`, `scar_depth_mm`."""
    from .scars import ScarSettings, prepare_face, simulate_scars

    if len(face.vertices) != len(space["vertices"]):
        raise ValueError(f"{face.name}: the cohort's scars need template topology")
    settings = settings or ScarSettings()
    return simulate_scars(prepare_face(face.vertices, face.faces, space["regions"], settings), rng, settings)


def patient_dent(face: PatientFace, which: str, index: int, seed: int) -> tuple:
    """The round dent the held-out benchmarks give patient `index` of set `which`: at `WOUND_SITES[index]`
    (cycling), radius 9-11 mm on the nose and 9-18 mm elsewhere, 2-4 mm deep. Returns (rng, site,
    radius_mm, displacement (n,) mm); `rng` goes on to scan the face (the same stream in every benchmark)."""
    rng = np.random.default_rng([seed, index, PATIENT_SETS.index(which)])
    site = WOUND_SITES[index % len(WOUND_SITES)]
    radius = rng.uniform(9.0, 11.0) if site == "nose" else rng.uniform(9.0, 18.0)
    return rng, site, radius, dent(face, wound_site(face, site), radius, -rng.uniform(2.0, 4.0))


def dent(face: PatientFace, centre: int, radius_mm: float, depth_mm: float) -> np.ndarray:
    """A round wound's signed displacement (n,) mm along the normal (negative: a dent) with a smooth (C¹)
    fall-off to 0 at `radius_mm` geodesic distance from vertex `centre`."""
    from .meshtools import edge_graph
    from .scars import round_scar

    return round_scar(edge_graph(face.vertices, face.faces), centre, radius_mm, depth_mm)
