"""The linear geometry decoder: vertices = mean + Σ_k z_k basis_k (template topology, mm).

By default the decoder is the PCA of the pool's true meshes: `basis` holds the
principal directions scaled by their standard deviation, so the coefficients
z of a face from the pool's population are roughly standard normal. A user
decoder (e.g. FLAME's shape space resampled to the template topology) is an
``.npz`` with `mean` (N, 3) and `basis` (K, N, 3) in mm whose coefficients are
also roughly standard normal; it is checked for shape and units on load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import FacecoverError

MAX_COMPONENTS = 1000
FACE_BREADTH_RANGE_MM = (60.0, 400.0)  # width of a face (or head) in mm; metres give < 1


def pca_decoder(meshes: np.ndarray, components: int) -> dict[str, np.ndarray]:
    """PCA decoder of meshes (P, N, 3) mm: `mean` (N, 3), `basis` (K, N, 3) = direction × std dev,
    `explained_variance_ratio` (K,) and `std_mm` (K,) (the standard deviation of each coefficient's mode, mm)."""
    meshes = np.asarray(meshes)
    if meshes.ndim != 3 or meshes.shape[2] != 3:
        raise FacecoverError(f"decoder: meshes must be (P, N, 3), got {meshes.shape}")
    P = len(meshes)
    k = min(int(components), P - 1)
    if k < 1:
        raise FacecoverError(f"decoder: PCA needs at least 2 meshes, got {P}")
    X = meshes.reshape(P, -1).astype(np.float64)  # (P, 3N), centred in place
    mean = X.mean(axis=0)
    X -= mean
    # principal directions from the (P, P) Gram matrix: X Xᵀ = U diag(s²) Uᵀ, and direction_k × s_k = U_kᵀ X,
    # so basis_k = U_kᵀ X / sqrt(P − 1) (memory of one copy of the data, not the SVD's three)
    gram = X @ X.T
    s2, U = np.linalg.eigh(gram)
    top = np.argsort(s2)[::-1][:k]
    basis = (U[:, top].T @ X) / np.sqrt(P - 1)
    basis *= np.sign(basis[np.arange(k), np.abs(basis).argmax(axis=1)])[:, None]  # reproducible signs
    variance = np.maximum(s2[top], 0.0) / (P - 1)
    return {
        "mean": mean.reshape(-1, 3),
        "basis": basis.reshape(k, -1, 3),
        "explained_variance_ratio": variance / (np.trace(gram) / (P - 1)),  # trace: the total variance × (P − 1)
        "std_mm": np.sqrt(variance),
    }


def check_decoder(mean: np.ndarray, basis: np.ndarray, n_vertices: int, name: str = "decoder") -> None:
    """Raise FacecoverError naming `name` unless mean (N, 3) and basis (K, N, 3) are a template-topology
    decoder in millimetres."""
    if mean.ndim != 2 or mean.shape[1] != 3:
        raise FacecoverError(f"{name}: 'mean' must have shape (N, 3), got {mean.shape}")
    if mean.shape[0] != n_vertices:
        raise FacecoverError(f"{name}: 'mean' has {mean.shape[0]} vertices; the template has {n_vertices} "
                             "(the decoder must be in template topology)")
    if basis.ndim != 3 or basis.shape[1:] != mean.shape:
        raise FacecoverError(f"{name}: 'basis' must have shape (K, {n_vertices}, 3), got {basis.shape}")
    if not 1 <= len(basis) <= MAX_COMPONENTS:
        raise FacecoverError(f"{name}: 'basis' has {len(basis)} components (1 to {MAX_COMPONENTS} allowed)")
    if not (np.isfinite(mean).all() and np.isfinite(basis).all()):
        raise FacecoverError(f"{name}: non-finite values in 'mean' or 'basis'")
    breadth = float(np.ptp(mean[:, 0]))
    if breadth < 1.0:
        raise FacecoverError(f"{name}: the mean face is {breadth:.3f} units wide, which looks like metres; "
                             "the decoder must be in millimetres (multiply mean and basis by 1000)")
    lo, hi = FACE_BREADTH_RANGE_MM
    if not lo <= breadth <= hi:
        raise FacecoverError(f"{name}: the mean face is {breadth:.1f} mm wide; a face is {lo:.0f}-{hi:.0f} mm "
                             "(check the units)")


def load_decoder(path: str | Path, n_vertices: int) -> dict[str, np.ndarray]:
    """A decoder .npz (`mean` (N, 3), `basis` (K, N, 3), mm), checked against the template's N vertices."""
    from ..files import load_npz

    arrays = load_npz(path)
    missing = [k for k in ("mean", "basis") if k not in arrays]
    if missing:
        raise FacecoverError(f"{path}: missing array(s) {', '.join(missing)} (a decoder holds 'mean' (N, 3) and "
                             "'basis' (K, N, 3) in mm)")
    mean, basis = np.asarray(arrays["mean"], np.float64), np.asarray(arrays["basis"], np.float64)
    check_decoder(mean, basis, n_vertices, str(path))
    return {**arrays, "mean": mean, "basis": basis}


def decode(decoder: dict, z: np.ndarray) -> np.ndarray:
    """Vertices (..., N, 3) mm for coefficients z (..., K)."""
    return decoder["mean"] + np.tensordot(z, decoder["basis"], axes=1)


def coefficients_of(decoder: dict, vertices: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (K,) of vertices (N, 3) mm (exact for a face in the decoder's span)."""
    B = decoder["basis"].reshape(len(decoder["basis"]), -1)
    return np.linalg.lstsq(B.T, (vertices - decoder["mean"]).ravel(), rcond=None)[0]


def fit_coefficients(decoder: dict, vertices: np.ndarray, weights: np.ndarray, prior_mean: np.ndarray | None = None,
                     prior_weight: float = 1.0) -> np.ndarray:
    """Regularised least squares: z (K,) minimising Σ_v w_v |decode(z)_v − vertices_v|² + λ |z − z0|².

    `vertices` (N, 3) mm, `weights` (N,) ≥ 0 (0 = ignore the vertex, e.g. inside the wound),
    `prior_mean` z0 (K,) (default 0, the mean face), `prior_weight` λ in mm² (the squared residual one unit
    of coefficient is worth)."""
    B = decoder["basis"]
    K = len(B)
    z0 = np.zeros(K) if prior_mean is None else np.asarray(prior_mean, np.float64)
    sw = np.sqrt(np.asarray(weights, np.float64))[:, None]
    A = (B * sw[None]).reshape(K, -1).T  # (3N, K)
    b = ((vertices - decoder["mean"]) * sw).ravel()
    lhs = A.T @ A + prior_weight * np.eye(K)
    return np.linalg.solve(lhs, A.T @ b + prior_weight * z0)
