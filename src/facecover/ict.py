"""The ICT-FaceKit face model: people with real anatomy, brought onto the template (mm).

ICT-FaceKit (USC Institute for Creative Technologies, MIT licence; `data/ICT-FaceKit-LICENSE`,
`data/ICT-FaceKit-CREDITS.md`) is a linear face model built from light-stage scans of real people:
a neutral face, 100 identity modes (a person is ``neutral + Σ w_i identity_i``, w ~ N(0, 1)) and 53
expression blendshapes (ARKit names, weights in [0, 1]). The copy shipped in `data/ict_face_model.npz` is
cut to the face area (9409 vertices, 18461 triangles) and in millimetres.

Its mesh is open at the eyes and the mouth; the template is closed there. `closing_operator` closes them
with a linear map, so every person and every mode closes the same way: the mouth zipped shut between the
lips, each eye with two rings and a centre (each new vertex a fixed average of the eye's rim). `template_correspondence` registers the template to
the closed neutral face with the project's own registration (`ingest.register_template_to_scan`) and
embeds each registered template vertex in the ICT surface (triangle + barycentric coordinates): any ICT
face then has a template-topology version, ``on_template``.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import scipy.sparse as sp

from .meshtools import apply_transform, boundary_loops

MODEL_FILE = "ict_face_model.npz"


def load_model() -> dict[str, np.ndarray]:
    """The shipped ICT face model: `neutral_mm` (n, 3), `identity_mm` (100, n, 3), `expression_mm` (53, n, 3),
    `expression_names` (53,), `triangles` (m, 3), `landmarks68` (68,), all float64 / int64, mm."""
    path = files("facecover.data").joinpath(MODEL_FILE)
    with np.load(str(path), allow_pickle=False) as data:
        model = {k: data[k] for k in data.files}
    for key in ("neutral_mm", "identity_mm", "expression_mm"):
        model[key] = model[key].astype(np.float64)
    model["triangles"] = model["triangles"].astype(np.int64)
    return model


def _zipper(loop: np.ndarray, x: np.ndarray) -> list[list[int]]:
    """Triangles closing a slit-shaped hole (the mouth): the loop (in the face's winding) split at its two
    extreme vertices along x into two chains, bridged from one corner to the other; no new vertices."""
    m = len(loop)
    lo, hi = int(np.argmin(x[loop])), int(np.argmax(x[loop]))
    a = [loop[(lo + k) % m] for k in range((hi - lo) % m + 1)]            # lo -> hi along the loop
    b = [loop[(lo - k) % m] for k in range((lo - hi) % m + 1)]            # lo -> hi against it
    # a and b share both corners: open with one triangle at the first corner, close with one at the other
    tris, i, j = [[a[1], a[0], b[1]]], 1, 1
    while i < len(a) - 2 or j < len(b) - 2:
        advance_a = j == len(b) - 2 or (i < len(a) - 2 and x[a[i + 1]] <= x[b[j + 1]])
        if advance_a:  # edge a[i] -> a[i+1] runs with the loop: the new triangle takes it the other way
            tris.append([a[i + 1], a[i], b[j]])
            i += 1
        else:          # edge b[j+1] -> b[j] runs with the loop
            tris.append([b[j], b[j + 1], a[i]])
            j += 1
    tris.append([a[-1], a[-2], b[-2]])
    return tris


def closing_operator(triangles: np.ndarray, n_vertices: int, vertices: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Close every boundary loop but the outer one (eyes, mouth): a sparse map W (n + k, n) giving the closed
    mesh's vertices as ``W @ vertices`` and its triangles (m + t, 3). The mouth (the inner loop lowest on the
    face) is zipped shut between the lips, as a closed mouth is (a fan to its centre would make a pocket
    behind the lips, and a deep crease); each eye gets two rings (at 2/3 and 1/3 of the way from the rim to
    the rim's centroid) and the centroid, fanned together: closed lids."""
    loops = boundary_loops(triangles, vertices)[1:]  # the longest (in mm) is the face's outer rim
    mouth = min(range(len(loops)), key=lambda k: vertices[loops[k], 1].mean()) if loops else -1
    rows, cols, vals = list(range(n_vertices)), list(range(n_vertices)), [1.0] * n_vertices
    new_tris = []
    nxt = n_vertices
    for index, loop in enumerate(loops):
        if index == mouth:
            new_tris += _zipper(np.asarray(loop), vertices[:, 0])
            continue
        m = len(loop)
        rings = [loop]
        for t in (1 / 3, 2 / 3):  # share of the way to the centre
            ring = np.arange(nxt, nxt + m)
            for i, v in enumerate(loop):
                rows += [ring[i]] * (m + 1)
                cols += [v] + list(loop)
                vals += [1 - t] + [t / m] * m
            nxt += m
            rings.append(ring)
        centre = nxt
        rows += [centre] * m
        cols += list(loop)
        vals += [1.0 / m] * m
        nxt += 1
        for outer, inner in zip(rings[:-1], rings[1:]):
            for i in range(m):
                j = (i + 1) % m
                # the rim runs the way the face's own triangles do: keep their winding
                new_tris += [[outer[j], outer[i], inner[i]], [outer[j], inner[i], inner[j]]]
        ring = rings[-1]
        new_tris += [[ring[(i + 1) % m], ring[i], centre] for i in range(m)]
    W = sp.csr_matrix((vals, (rows, cols)), shape=(nxt, n_vertices))
    return W, np.r_[triangles, np.asarray(new_tris, np.int64).reshape(-1, 3)]


def closed_model(model: dict) -> dict:
    """The model with eyes and mouth closed (`closing_operator`): same keys, more vertices."""
    W, tris = closing_operator(model["triangles"], len(model["neutral_mm"]), model["neutral_mm"])
    out = dict(model)
    out["neutral_mm"] = W @ model["neutral_mm"]
    for key in ("identity_mm", "expression_mm"):
        out[key] = np.stack([W @ m for m in model[key]])
    out["triangles"] = tris
    return out


def face_vertices(model: dict, identity: np.ndarray | None = None, expression: np.ndarray | None = None
                  ) -> np.ndarray:
    """Vertices (n, 3) mm of the face with identity weights (≤ 100,) and expression weights (≤ 53,)."""
    v = model["neutral_mm"].copy()
    if identity is not None:
        v += np.tensordot(np.asarray(identity, np.float64), model["identity_mm"][:len(identity)], axes=1)
    if expression is not None:
        v += np.tensordot(np.asarray(expression, np.float64), model["expression_mm"][:len(expression)], axes=1)
    return v


def expression_weights(model: dict, **named: float) -> np.ndarray:
    """Expression weights (53,) from ARKit names, e.g. ``expression_weights(m, mouthSmile_L=0.6)``."""
    names = [str(n) for n in model["expression_names"]]
    w = np.zeros(len(names))
    for name, value in named.items():
        w[names.index(name)] = value
    return w


def template_correspondence(space: dict, model: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Where each template vertex lies on the (closed) ICT face: `triangle` (N,), `barycentric` (N, 3) and the
    rigid map `ict_to_canonical` (4, 4), from registering the template to the neutral ICT face with the
    project's registration (MeshMonk non-rigid from the shape-space fit: the ICT face is a real person's,
    outside the hand-made space). `registration` holds its residuals (mm)."""
    import trimesh

    from .ingest import RegistrationSettings, register_template_to_scan
    from .template import surface_embedding

    scan = trimesh.Trimesh(model["neutral_mm"], model["triangles"], process=False)
    reg = register_template_to_scan(space, scan, RegistrationSettings(nonrigid="meshmonk", seed=seed, partial=False),
                                    name="ICT-FaceKit neutral face")
    T = reg.scan_to_canonical
    neutral = apply_transform(T, model["neutral_mm"])
    tri, bary = surface_embedding(neutral, model["triangles"], reg.vertices)
    return {"triangle": tri, "barycentric": bary, "ict_to_canonical": T,
            "registration": reg.report["residuals"]}


def on_template(model: dict, corr: dict, vertices_or_offsets: np.ndarray, offsets: bool = False) -> np.ndarray:
    """ICT-topology vertices (…, n, 3) brought to template topology (…, N, 3) in the canonical frame.
    With `offsets=True` they are displacements (rotated, not translated)."""
    T = corr["ict_to_canonical"]
    a = np.asarray(vertices_or_offsets, np.float64)
    a = a @ T[:3, :3].T + (0.0 if offsets else T[:3, 3])
    corners = model["triangles"][corr["triangle"]]  # (N, 3)
    return np.einsum("nk,...nkd->...nd", corr["barycentric"], a[..., corners, :])
