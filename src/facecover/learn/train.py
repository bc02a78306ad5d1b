"""Supervised training of the mapping network through the fixed linear decoder.

    embedding -> mapping network -> coefficients z -> vertices = mean + basis @ z

Loss: masked L1 over vertices in mm — the mean absolute coordinate error,
each vertex weighted by its region's weight (MICA weights its face region
150× the rest). Used twice: the *base model* on the pool (true meshes of
clean identities) and *fine-tuning* on the cohort (injured renders -> the
subject's healthy registered mesh). AdamW, shuffled mini-batches, a seeded
run; the epoch with the lowest validation loss is kept.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from .. import FacecoverError


@dataclass(frozen=True)
class TrainSettings:
    """One supervised run (config `base` / `finetune` blocks)."""

    epochs: int = 50
    batch_size: int = 50
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10  # stop when the validation loss has not improved for this many epochs (0: never)


def vertex_l1(pred, target, weights):
    """Masked L1 (mm) per sample (B,): Σ_v w_v Σ_c |pred − target| / (3 Σ_v w_v) for (B, N, 3) tensors, w (N,)."""
    return (weights[None, :, None] * (pred - target).abs()).sum(dim=(1, 2)) / (3.0 * weights.sum())


class DecoderLayer:
    """The fixed linear decoder as torch tensors on a device: coefficients (B, K) -> vertices (B, N, 3) mm."""

    def __init__(self, decoder: dict, device):
        import torch

        basis = np.asarray(decoder["basis"], np.float32)
        self.K, self.N = basis.shape[0], basis.shape[1]
        self.basis = torch.from_numpy(basis.reshape(self.K, -1)).to(device)
        self.mean = torch.from_numpy(np.asarray(decoder["mean"], np.float32).reshape(-1)).to(device)

    def __call__(self, z):
        return (self.mean + z @ self.basis).reshape(len(z), self.N, 3)

    def offsets(self, targets):
        """Targets (S, N, 3) mm minus the decoder's mean, flattened (S, 3N): what `decoded_l1` compares with."""
        return targets.reshape(len(targets), -1) - self.mean


def decoded_l1(z, decoder_layer: DecoderLayer, offsets, weights):
    """`vertex_l1(decoder_layer(z), targets, weights)` (B,) computed in one pass, with `offsets` (B, 3N) =
    `decoder_layer.offsets(targets)`: the decoded vertices and their differences are never kept for the
    backward pass, only the weighted signs (twice as fast per batch on a CPU, the same values and gradients)."""
    w3 = weights.repeat_interleave(3)
    return _decoded_l1_function().apply(z, decoder_layer.basis, offsets, w3) / (3.0 * weights.sum())


@functools.cache
def _decoded_l1_function():
    """The autograd function (built on first use: torch is imported only by the stages that train)."""
    import torch

    class DecodedL1(torch.autograd.Function):
        """Σ_j w_j |(z B − offsets)_j| per row; gradient (w ⊙ sign(z B − offsets)) Bᵀ with respect to z."""

        @staticmethod
        def forward(ctx, z, basis, offsets, w3):
            residual = torch.addmm(offsets, z, basis, beta=-1)
            signs = torch.sign(residual).mul_(w3)
            ctx.save_for_backward(signs, basis)
            return residual.abs_() @ w3

        @staticmethod
        def backward(ctx, grad):
            signs, basis = ctx.saved_tensors
            return (signs * grad[:, None]) @ basis.T, None, None, None

    return DecodedL1


def evaluate_loss(net, decoder_layer, X, y, offsets, weights, device, batch: int = 512) -> float:
    """Mean masked L1 (mm) of the network over embeddings X (M, 512) with target meshes whose
    `decoder_layer.offsets` are offsets[y]."""
    import torch

    net.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(X), batch):
            xb = torch.from_numpy(X[i:i + batch]).to(device)
            ob = offsets[torch.from_numpy(y[i:i + batch]).to(device)]
            total += float(decoded_l1(net(xb), decoder_layer, ob, weights).sum())
    return total / max(len(X), 1)


def train_mapping(net, decoder: dict, vertex_weights: np.ndarray, train: tuple, val: tuple,
                  settings: TrainSettings, seed: int, device, desc: str = "train", progress: bool = True):
    """Train `net` (a MappingNetwork) in place and load the weights of its best validation epoch.

    `train` and `val` are (X (M, 512) float32 embeddings, y (M,) target index, targets (S, N, 3) mm).
    Returns the history: one dict per epoch (epoch, train_loss_mm, val_loss_mm, seconds) and the best epoch.
    """
    import torch
    from tqdm import tqdm

    X, y, T = train
    Xv, yv, Tv = val
    if len(X) == 0 or len(Xv) == 0:
        raise FacecoverError(f"{desc}: no training or no validation samples")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net.to(device)
    layer = DecoderLayer(decoder, device)
    w = torch.from_numpy(np.asarray(vertex_weights, np.float32)).to(device)
    targets = layer.offsets(torch.from_numpy(np.asarray(T, np.float32)).to(device))
    val_targets = layer.offsets(torch.from_numpy(np.asarray(Tv, np.float32)).to(device))
    # fused: one kernel for all parameters (on a CPU the step is several times quicker than the default; a
    # cached fine-tuning epoch 13 % quicker, same results)
    optimiser = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  fused=True)
    history = []
    best = (evaluate_loss(net, layer, Xv, yv, val_targets, w, device), 0, _copy_state(net))
    history.append({"epoch": 0, "train_loss_mm": np.nan, "val_loss_mm": best[0], "seconds": 0.0})
    bar = tqdm(range(1, settings.epochs + 1), desc=desc, disable=None if progress else True)
    for epoch in bar:
        start = time.perf_counter()
        net.train()
        order = rng.permutation(len(X))
        total = 0.0
        for i in range(0, len(order), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            xb = torch.from_numpy(X[idx]).to(device)
            ob = targets[torch.from_numpy(y[idx]).to(device)]
            loss = decoded_l1(net(xb), layer, ob, w).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        val_loss = evaluate_loss(net, layer, Xv, yv, val_targets, w, device)
        history.append({"epoch": epoch, "train_loss_mm": total / len(X), "val_loss_mm": val_loss,
                        "seconds": time.perf_counter() - start})
        if val_loss < best[0]:
            best = (val_loss, epoch, _copy_state(net))
        bar.set_postfix(train=f"{total / len(X):.3f}", val=f"{val_loss:.3f}", best=best[1])
        if settings.patience and epoch - best[1] >= settings.patience:
            break
    net.load_state_dict(best[2])
    net.cpu().eval()
    return history, best[1]


def principal_directions(X: np.ndarray, count: int) -> np.ndarray:
    """The `count` leading principal directions (D, count) of the rows of X (M, D), centred."""
    Xc = np.asarray(X, np.float64) - np.mean(X, axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    return Vt[:count].T


def head_inputs(net, X: np.ndarray, batch: int = 4096) -> np.ndarray:
    """What the head's linear layer reads: LeakyReLU of the trunk features (M, hidden) float64, CPU."""
    import torch

    net = net.cpu().eval()
    with torch.no_grad():
        out = [net.head[0](net.features(torch.from_numpy(np.asarray(X[i:i + batch], np.float32)))).numpy()
               for i in range(0, len(X), batch)]
    return np.concatenate(out).astype(np.float64)


def weighted_ridge(features: np.ndarray, y: np.ndarray, targets: np.ndarray, decoder: dict,
                   vertex_weights: np.ndarray, val: tuple,
                   alphas=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 0.3, 1.0)) -> dict:
    """Closed-form linear map from features (M, F) to decoder coefficients: W (F, K), b (K,) minimising
    Σ_i Σ_v w_v |decode(φ_i W + b)_v − T_{y_i, v}|² + λ |W|² (bias not penalised).

    With S = Φᵀ Φ (centred) = Q Λ Qᵀ and G = B diag(w) Bᵀ = P Γ Pᵀ, the optimum is
    W = Q [(Qᵀ Φᵀ C P)_ij / (Λ_i Γ_j + λ)] Pᵀ, where row i of C is B diag(w) (T_{y_i} − mean), and
    b = G⁻¹ c̄ − φ̄ W. λ = α · mean(Λ) · mean(Γ) for each α in `alphas`; the one with the lowest masked L1
    (mm) on `val` = (features (Mv, F), y (Mv,), targets (Sv, N, 3)) is kept.
    Returns {W, b, alpha, val_loss_mm}."""
    B = np.asarray(decoder["basis"], np.float64).reshape(len(decoder["basis"]), -1)  # (K, 3N)
    mean = np.asarray(decoder["mean"], np.float64).reshape(-1)
    w = np.asarray(vertex_weights, np.float64)
    w3 = np.repeat(w, 3)
    flat = np.asarray(targets).reshape(len(targets), -1)
    C = np.concatenate([((flat[i:i + 256] - mean) * w3) @ B.T for i in range(0, len(flat), 256)])[y]  # (M, K)
    G = (B * w3) @ B.T
    phi_mean, c_mean = features.mean(axis=0), C.mean(axis=0)
    Phi = features - phi_mean
    lam_s, Q = np.linalg.eigh(Phi.T @ Phi)
    lam_g, P = np.linalg.eigh(G)
    R = Q.T @ (Phi.T @ (C - c_mean)) @ P
    z_mean = np.linalg.solve(G, c_mean)
    fv, yv, Tv = val
    Tv = np.asarray(Tv).reshape(len(Tv), -1)  # float32 stays float32; rows are upcast per batch
    best = None
    for alpha in alphas:
        lam = alpha * max(lam_s.mean(), 1e-12) * lam_g.mean()
        W = Q @ (R / (np.maximum(lam_s, 0)[:, None] * lam_g[None, :] + lam)) @ P.T
        b = z_mean - phi_mean @ W
        loss = 0.0
        for i in range(0, len(fv), 256):  # masked L1 on the validation samples, in batches
            pred = mean + (fv[i:i + 256] @ W + b) @ B
            loss += float((np.abs(pred - Tv[yv[i:i + 256]]) @ w3).sum())
        loss /= 3.0 * w.sum() * len(fv)
        if best is None or loss < best["val_loss_mm"]:
            best = {"W": W, "b": b, "alpha": float(alpha), "val_loss_mm": loss}
    return best


def fit_head(net, decoder: dict, vertex_weights: np.ndarray, train: tuple, val: tuple) -> dict:
    """Set the head's linear layer to the closed-form `weighted_ridge` from what it reads (LeakyReLU of the
    trunk features) to the decoder coefficients. `train`/`val` are (X embeddings, y target index, targets).
    Returns {alpha, val_loss_mm}."""
    import torch

    X, y, T = train
    Xv, yv, Tv = val
    fit = weighted_ridge(head_inputs(net, X), y, T, decoder, vertex_weights, (head_inputs(net, Xv), yv, Tv))
    with torch.no_grad():
        net.head[1].weight.copy_(torch.from_numpy(fit["W"].T))
        net.head[1].bias.copy_(torch.from_numpy(fit["b"]))
    return {"alpha": fit["alpha"], "val_loss_mm": fit["val_loss_mm"]}


def linear_start(net, decoder: dict, vertex_weights: np.ndarray, train: tuple, val: tuple) -> dict:
    """Start a mapping network as the best linear model, exactly: weighted ridge regression (W, b) on the
    raw embeddings; the trunk passes u = Dᵀ x through linearly (`set_linear_trunk`), where the orthonormal
    D (512, hidden/2) holds W's K output directions plus the embeddings' leading principal directions; the
    head reads u back from [LeakyReLU(u), LeakyReLU(−u)] and applies Wᵀ D. Returns {alpha, val_loss_mm}."""
    import torch

    from .network import set_linear_trunk

    X, y, T = train
    Xv, yv, Tv = val
    fit = weighted_ridge(np.asarray(X, np.float64), y, T, decoder, vertex_weights,
                         (np.asarray(Xv, np.float64), yv, Tv))
    W, b = fit["W"], fit["b"]
    r = net.head[1].in_features // 2
    U = np.linalg.svd(W, full_matrices=False)[0]                # (512, K): the directions the map reads
    extra = principal_directions(X, r)
    extra -= U @ (U.T @ extra)                                  # orthogonal to U
    D = np.linalg.qr(np.c_[U, extra])[0][:, :r]
    r = D.shape[1]  # fewer directions than hidden/2 when there are few samples
    set_linear_trunk(net, D)
    M = W.T @ D                                                 # (K, r): z = M u + b
    head = np.zeros((len(b), net.head[1].in_features))
    head[:, :r], head[:, r:2 * r] = M / 1.2, -M / 1.2           # LeakyReLU(u) − LeakyReLU(−u) = 1.2 u
    with torch.no_grad():
        net.head[1].weight.copy_(torch.from_numpy(head))
        net.head[1].bias.copy_(torch.from_numpy(b))
    return {"alpha": fit["alpha"], "val_loss_mm": fit["val_loss_mm"]}


def _copy_state(net) -> dict:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def predict_coefficients(net, X: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Decoder coefficients (M, K) float64 for embeddings X (M, 512), on the CPU."""
    import torch

    net = net.cpu().eval()
    with torch.no_grad():
        out = [net(torch.from_numpy(np.asarray(X[i:i + batch], np.float32))).numpy() for i in range(0, len(X), batch)]
    return np.concatenate(out).astype(np.float64)


def base_model(decoder: dict, pool_vertices: np.ndarray, pool_names, pool_cache: dict, vertex_weights: np.ndarray,
               settings: TrainSettings, val_fraction: float, seed: int, device, progress: bool = True):
    """The base model (the analogue of pretrained MICA): a mapping network trained on the pool's clean and
    augmented render embeddings -> the identity's true mesh (P, N, 3) mm.

    A seeded `val_fraction` of the identities is held out to choose the ridge penalty and the epoch. The
    network starts as the closed-form weighted ridge regression (`linear_start`), then AdamW refines it.
    Returns (network on the CPU, report dict)."""
    import time as _time

    from .data import pool_samples
    from .network import mapping_network

    start = _time.perf_counter()
    names = [str(n) for n in pool_names]
    n_val = max(1, int(round(val_fraction * len(names))))
    if len(names) - n_val < 2:
        raise FacecoverError(f"base model: the pool has {len(names)} identities; need at least 3 (cohort.pool_size)")
    order = np.random.default_rng([int(seed), 1]).permutation(len(names))
    val_ids = np.zeros(len(names), bool)
    val_ids[order[:n_val]] = True
    X, y = pool_samples(pool_cache, names)
    is_val = val_ids[y]
    train, val = (X[~is_val], y[~is_val], pool_vertices), (X[is_val], y[is_val], pool_vertices)
    net = mapping_network(len(decoder["basis"]))
    start_fit = linear_start(net, decoder, vertex_weights, train, val)
    history, best = train_mapping(net, decoder, vertex_weights, train, val, settings, seed, device, "base model",
                                  progress)
    return net, {"identities_train": int((~val_ids).sum()), "identities_val": int(n_val),
                 "samples_train": int((~is_val).sum()), "ridge_alpha": start_fit["alpha"],
                 "ridge_val_loss_mm": start_fit["val_loss_mm"], "best_epoch": best, "history": history,
                 "seconds": _time.perf_counter() - start}


def finetune_model(net, decoder: dict, caches: dict, train_subjects: list[str], val_subjects: list[str],
                   healthy: dict, vertex_weights: np.ndarray, settings: TrainSettings, seed: int, device,
                   progress: bool = True, desc: str = "fine-tune"):
    """Fine-tune `net` on the injured renders of the training subjects (clean and augmented embeddings) ->
    each subject's healthy registered mesh (N, 3) mm in `healthy`; the validation subjects' clean
    embeddings choose the epoch (0 = keep the starting network). Returns (network, report dict)."""
    import time as _time

    from .data import cohort_samples

    start = _time.perf_counter()
    X, y = cohort_samples(caches, train_subjects, "all")
    Xv, yv = cohort_samples(caches, val_subjects, "clean")
    T = np.stack([healthy[s] for s in train_subjects])
    Tv = np.stack([healthy[s] for s in val_subjects])
    history, best = train_mapping(net, decoder, vertex_weights, (X, y, T), (Xv, yv, Tv), settings, seed, device,
                                  desc, progress)
    return net, {"subjects_train": list(train_subjects), "subjects_val": list(val_subjects),
                 "samples_train": int(len(X)), "best_epoch": best, "history": history,
                 "seconds": _time.perf_counter() - start}
