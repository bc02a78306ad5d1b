"""A linear face shape space over the template: identities = mean + basis @ coefficients.

Two kinds of modes, all displacement fields in millimetres per unit coefficient
(coefficients are standard-normal; each mode carries its standard deviation):

* **anatomical modes** — smooth regional deformations around landmarks with
  spreads taken from adult anthropometry (Farkas 1994 orders of magnitude):
  face breadth, lower-face height, face depth, nose length/projection/width, jaw width, chin
  projection, eye spacing, lip and brow and cheekbone prominence;
* **Laplace–Beltrami modes** — the lowest-frequency eigenfunctions of the
  template's cotangent Laplacian, displacing along the surface normal with a
  standard deviation that falls with frequency: smooth, anatomically
  plausible bumps and hollows.

All modes are made orthogonal to the six rigid motions of the mean face, so
an identity's canonical pose is well defined (its best rigid fit to the mean
is the identity transform, to first order). Higher Laplace–Beltrami modes
(``detail`` basis) describe fine individual detail that a registration model
built from the main basis cannot express; the synthetic cohort adds some so
that registration is not tested against its own model only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .meshtools import triangle_areas


def cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Cotangent stiffness L (n, n), positive semi-definite, and lumped mass M (n, n) in mm²."""
    n = len(vertices)
    L_rows, L_cols, L_vals = [], [], []
    area = triangle_areas(vertices, faces)
    for k in range(3):
        i, j, o = faces[:, (k + 1) % 3], faces[:, (k + 2) % 3], faces[:, k]
        e1, e2 = vertices[i] - vertices[o], vertices[j] - vertices[o]
        cot = np.einsum("ij,ij->i", e1, e2) / (np.linalg.norm(np.cross(e1, e2), axis=1) + 1e-12)
        w = 0.5 * cot
        L_rows += [i, j, i, j]
        L_cols += [j, i, i, j]
        L_vals += [-w, -w, w, w]
    L = sp.coo_matrix((np.concatenate(L_vals), (np.concatenate(L_rows), np.concatenate(L_cols))), shape=(n, n)).tocsr()
    mass = np.zeros(n)
    for k in range(3):
        np.add.at(mass, faces[:, k], area / 3.0)
    return L, sp.diags(mass).tocsr()


def laplace_beltrami_modes(vertices: np.ndarray, faces: np.ndarray, count: int) -> np.ndarray:
    """The `count` lowest non-constant Laplace–Beltrami eigenfunctions (count, n), scaled to max |φ| = 1."""
    L, M = cotangent_laplacian(vertices, faces)
    # a fixed start vector: ARPACK's default is random, which makes the modes differ in the last bits
    vals, vecs = spla.eigsh(L, k=count + 1, M=M, sigma=-1e-6, which="LM", v0=np.ones(len(vertices)))
    order = np.argsort(vals)
    vecs = vecs[:, order[1:]].T  # drop the constant mode
    vecs /= np.abs(vecs).max(axis=1, keepdims=True)
    # eigsh's signs are arbitrary: fix them so the basis is reproducible
    vecs *= np.sign(vecs[np.arange(len(vecs)), np.abs(vecs).argmax(axis=1)])[:, None]
    return vecs


def rigid_generators(vertices: np.ndarray) -> np.ndarray:
    """Orthonormal basis (6, n*3) of infinitesimal rigid motions of `vertices` (n, 3)."""
    c = vertices - vertices.mean(axis=0)
    gens = [np.tile(e, (len(c), 1)) for e in np.eye(3)]
    gens += [np.cross(np.tile(axis, (len(c), 1)), c) for axis in np.eye(3)]
    G = np.stack([g.ravel() for g in gens])
    q, _ = np.linalg.qr(G.T)
    return q.T


def remove_rigid(modes: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Project rigid-motion components out of displacement modes (k, n, 3)."""
    Q = rigid_generators(vertices)
    flat = modes.reshape(len(modes), -1)
    return (flat - (flat @ Q.T) @ Q).reshape(modes.shape)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, smooth (C1) in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _gaussian_weight(vertices: np.ndarray, center: np.ndarray, radius_mm: float) -> np.ndarray:
    d2 = np.sum((vertices - center) ** 2, axis=1)
    return np.exp(-0.5 * d2 / radius_mm**2)


def anatomical_modes(vertices: np.ndarray, landmarks: dict[str, int], normals: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Named regional modes (k, n, 3) mm per unit and their standard deviations (k,) mm.

    Each mode is scaled so that a unit coefficient moves its key measurement
    by 1 mm (e.g. face breadth changes by 1 mm); the std dev is that
    measurement's adult spread.
    """
    v = vertices
    L = {name: v[idx] for name, idx in landmarks.items()}
    half_w, half_d = np.ptp(v[:, 0]) / 2, np.ptp(v[:, 2]) / 2
    zeros = np.zeros_like(v)
    modes, sigmas, names = [], [], []

    def add(name, field, sigma):
        names.append(name)
        modes.append(field)
        sigmas.append(sigma)

    def axis_field(axis, values):
        f = zeros.copy()
        f[:, axis] = values
        return f

    # Whole-face proportions act where they are measured: breadth at the sides
    # (zygion/gonion), lower-face height at chin and jaw, depth along z. A unit
    # coefficient moves the measurement by 1 mm (breadth: both sides together).
    lateral = _smoothstep((np.abs(v[:, 0]) - 0.3 * half_w) / (0.7 * half_w))
    add("face_breadth", axis_field(0, 0.5 * np.sign(v[:, 0]) * lateral), 5.5)
    nose_y = L["nose_tip"][1]
    lower = _smoothstep((nose_y - v[:, 1]) / max(nose_y - L["chin"][1], 1e-6))
    add("lower_face_height", axis_field(1, -lower), 5.0)
    add("face_depth", axis_field(2, (v[:, 2] - v[:, 2].min()) / (2 * half_d)), 4.0)
    nose_tip, nasion = L["nose_tip"], L["nasion"]
    w_nose = _gaussian_weight(v, 0.5 * (nose_tip + nasion), 18.0)
    along = np.clip((nasion[1] - v[:, 1]) / max(nasion[1] - nose_tip[1], 1e-6), 0, 1.5)
    add("nose_length", axis_field(1, -w_nose * along), 3.5)
    add("nose_projection", axis_field(2, _gaussian_weight(v, nose_tip, 12.0)), 2.5)
    below_bridge = _smoothstep((nose_tip[1] + 15.0 - v[:, 1]) / 10.0)  # alae, not the bridge
    add("nose_width", axis_field(0, w_nose * np.clip((v[:, 0] - nose_tip[0]) / 17.0, -1, 1) * below_bridge), 2.0)
    chin, mouth_y = L["chin"], 0.5 * (L["mouth_left"][1] + L["mouth_right"][1])
    jaw = np.clip((mouth_y - v[:, 1]) / max(mouth_y - chin[1], 1e-6), 0, 1) ** 1.5
    add("jaw_width", axis_field(0, jaw * v[:, 0] / half_w), 3.0)
    add("chin_projection", axis_field(2, _gaussian_weight(v, chin, 16.0)), 2.5)
    eyes = _gaussian_weight(v, L["eye_left"], 14.0) + _gaussian_weight(v, L["eye_right"], 14.0)
    add("eye_spacing", axis_field(0, 0.5 * eyes * np.tanh(v[:, 0] / 8.0)), 1.5)  # smooth across the midline
    mouth_c = 0.5 * (L["mouth_left"] + L["mouth_right"])
    add("lip_fullness", normals * _gaussian_weight(v, mouth_c, 12.0)[:, None], 1.5)
    brow = 0.5 * (L["eye_left"] + L["eye_right"]) + np.array([0, 16.0, 0])
    w_brow = np.exp(-0.5 * ((v[:, 1] - brow[1]) / 8.0) ** 2) * _smoothstep((60.0 - np.abs(v[:, 0])) / 20.0)
    add("brow_ridge", normals * w_brow[:, None], 1.5)
    mirrored = np.c_[np.abs(v[:, 0]), v[:, 1:]]  # both sides at once
    cheekbones = _gaussian_weight(mirrored, np.abs(L["eye_left"]) + [8, -22, 0], 14.0)
    add("cheekbone_prominence", normals * cheekbones[:, None], 1.5)
    return names, np.stack(modes), np.asarray(sigmas)


def build_shape_space(vertices: np.ndarray, faces: np.ndarray, landmark_names, landmark_vertices,
                      n_lb_modes: int = 40, n_detail_modes: int = 60,
                      lb_sigma_mm: float = 1.5, detail_sigma_mm: float = 0.12) -> dict[str, np.ndarray]:
    """Shape space arrays: `basis` (k, n, 3), `sigma` (k,), `mode_names`, `detail` (m, n, 3), `detail_sigma` (m,)."""
    from .meshtools import vertex_normals

    normals = vertex_normals(vertices, faces)
    landmarks = dict(zip([str(n) for n in landmark_names], np.asarray(landmark_vertices)))
    names, anat, anat_sigma = anatomical_modes(vertices, landmarks, normals)
    lb = laplace_beltrami_modes(vertices, faces, n_lb_modes + n_detail_modes)
    lb_fields = lb[:, :, None] * normals[None]
    k = np.arange(1, len(lb) + 1)
    lb_sigma = lb_sigma_mm / np.sqrt(1.0 + k / 4.0)
    basis = remove_rigid(np.concatenate([anat, lb_fields[:n_lb_modes]]), vertices)
    detail = remove_rigid(lb_fields[n_lb_modes:], vertices)
    return {
        "basis": basis.astype(np.float32),
        "sigma": np.concatenate([anat_sigma, lb_sigma[:n_lb_modes]]),
        "mode_names": np.array(names + [f"lb{i + 1}" for i in range(n_lb_modes)]),
        "detail": detail.astype(np.float32),
        "detail_sigma": np.full(n_detail_modes, detail_sigma_mm),
    }


def handmade_face_space(n_lb_modes: int = 40, n_detail_modes: int = 60) -> dict[str, np.ndarray]:
    """The MeshMonk template (mm, landmarks, regions) and the hand-made shape space over it (anatomical +
    Laplace–Beltrami modes): the old generator, kept for held-out faces and to start the registration
    that brings the real face model onto the template."""
    from .template import build_template

    t = build_template()
    return {**t, **build_shape_space(t["vertices"], t["faces"], t["landmark_names"], t["landmark_vertices"],
                                     n_lb_modes=n_lb_modes, n_detail_modes=n_detail_modes)}


DETAIL_FROM = 40  # the people's fine detail: Laplace–Beltrami modes above the 40th


def face_space(n_lb_modes: int = 0, n_detail_modes: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    """The template in template topology with real anatomy, its landmarks and regions, and its shape space.

    The template's mesh is registered to ICT-FaceKit's neutral face (`ict.template_correspondence`); its
    mean face is that neutral face, landmarks and regions are found again on it, and the space's modes are:

    * ``basis[:people_modes]`` — ICT's 100 identity modes on the template (σ = 1: a person is a standard-
      normal draw): the people of the pool and the cohort, the decoder's and the fit's world;
    * ``basis[people_modes:]`` — `n_lb_modes` smooth Laplace–Beltrami modes (hand-made) that would widen the
      registration's prior beyond the model. The default is none: with the 40 lowest the registration of
      ICT people slid 0.77–1.50 mm (mean vertex error, three cohort scans) against 0.53–0.72 mm without them;
      what the model cannot express the refinement along the normals and MeshMonk take (`ingest`);
    * ``detail`` — Laplace–Beltrami modes 41 to 40 + `n_detail_modes` (finer than the face model's):
      individual detail the synthetic people add.

    ``expression_basis`` holds ICT's 53 expressions on the template (held-out faces), ``handmade_*`` the
    old hand-made space over the MeshMonk template (held-out faces of the old generator).
    """
    from . import ict
    from .meshtools import vertex_normals
    from .template import build_template

    old = handmade_face_space()  # the old generator: 40 smooth modes, its own detail
    model = ict.closed_model(ict.load_model())
    corr = ict.template_correspondence(old, model, seed=seed)
    mean = ict.on_template(model, corr, model["neutral_mm"])
    corr["ict_to_canonical"][:3, 3] -= mean.mean(axis=0)  # canonical origin: the vertex centroid
    mean = mean - mean.mean(axis=0)
    t = build_template(vertices=mean, name="the ICT-FaceKit neutral face on the template")
    faces = t["faces"]
    identity = remove_rigid(ict.on_template(model, corr, model["identity_mm"], offsets=True), mean)
    expression = ict.on_template(model, corr, model["expression_mm"], offsets=True)
    normals = vertex_normals(mean, faces)
    lb = laplace_beltrami_modes(mean, faces, DETAIL_FROM + n_detail_modes)[:, :, None] * normals[None]
    lb = remove_rigid(lb, mean)
    k = np.arange(1, len(lb) + 1)
    lb_sigma = 1.5 / np.sqrt(1.0 + k / 4.0)
    return {
        **t,
        "basis": np.concatenate([identity, lb[:n_lb_modes]]).astype(np.float32),
        "sigma": np.concatenate([np.ones(len(identity)), lb_sigma[:n_lb_modes]]),
        "mode_names": np.array([f"ict{i + 1}" for i in range(len(identity))] + [f"lb{i + 1}" for i in range(n_lb_modes)]),
        "people_modes": np.array(len(identity)),
        "detail": lb[DETAIL_FROM:].astype(np.float32),
        "detail_sigma": np.full(n_detail_modes, 0.12),
        "expression_basis": expression.astype(np.float32),
        "expression_names": model["expression_names"],
        "handmade_vertices": old["vertices"],
        "handmade_basis": old["basis"],
        "handmade_sigma": old["sigma"],
        "ict_registration_mm": np.array([corr["registration"]["mean_surface_distance_mm"],
                                         corr["registration"]["p95_surface_distance_mm"]]),
    }


def sample_coefficients(rng: np.random.Generator, count: int, size: int, truncate: float = 2.5) -> np.ndarray:
    """Standard-normal coefficients (count, size), truncated to ±`truncate` std devs."""
    z = rng.standard_normal((count, size))
    return np.clip(z, -truncate, truncate)


def identity_vertices(mean: np.ndarray, basis: np.ndarray, sigma: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Vertices (n, 3) mm of the identity with standard-normal coefficients z (k,)."""
    return mean + np.tensordot(z * sigma, basis, axes=1)
