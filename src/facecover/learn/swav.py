"""SwAV self-supervised pretraining of the mapping network's trunk (Caron et al. 2020).

Each injured render has several cached views (its clean embedding and the
augmented ones). The trunk maps every view to features; a projection head
and L2 normalisation give z; scores against K L2-normalised prototypes give
the predictions. Codes q are computed from the scores of each view by the
Sinkhorn-Knopp algorithm (equal share of the batch per prototype, no
gradient); the loss is the cross-entropy between the code of one view and
the softmax prediction (temperature τ) of every other view of the same
render, averaged over the view pairs ("swapped prediction"). Prototypes are
re-normalised every step and frozen for the first iterations. Collapse (all
samples on one prototype) shows as a loss stuck at ln K.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .. import FacecoverError


@dataclass(frozen=True)
class SwavSettings:
    """config `swav` block (except `fractions`)."""

    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 1e-4
    weight_decay: float = 1e-6
    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    prototypes: int = 32
    projection_dim: int = 128
    freeze_prototypes_iterations: int = 20


def sinkhorn(scores, epsilon: float = 0.05, iterations: int = 3):
    """Soft codes (B, K) for prototype scores (B, K): Sinkhorn-Knopp on exp(scores / ε).

    Each iteration scales rows (prototypes) to total 1/K, then columns (samples) to 1/B; the result is
    rescaled so that each sample's code sums to 1. No gradient flows through it."""
    import torch

    with torch.no_grad():
        Q = torch.exp((scores - scores.max()) / epsilon).T  # (K, B); the shift cancels in the normalisation
        Q /= Q.sum()
        K, B = Q.shape
        for _ in range(iterations):
            Q /= Q.sum(dim=1, keepdim=True)
            Q /= K
            Q /= Q.sum(dim=0, keepdim=True)
            Q /= B
        return (Q * B).T


def swav_model(trunk, hidden: int, settings: SwavSettings):
    """Trunk + projection head + prototypes as one module; forward gives (B, K) scores of (B, 512) embeddings."""
    import torch
    from torch import nn

    class SwAV(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = trunk
            self.projection = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden),
                                            nn.ReLU(), nn.Linear(hidden, settings.projection_dim))
            self.prototypes = nn.Linear(settings.projection_dim, settings.prototypes, bias=False)
            self.normalise_prototypes()

        def normalise_prototypes(self):
            with torch.no_grad():
                self.prototypes.weight.copy_(nn.functional.normalize(self.prototypes.weight, dim=1))

        def forward(self, embeddings):
            z = nn.functional.normalize(self.projection(self.trunk(nn.functional.normalize(embeddings, dim=1))), dim=1)
            return self.prototypes(z)

    return SwAV()


def swapped_prediction_loss(scores_per_view: list, settings: SwavSettings):
    """SwAV loss over V ≥ 2 views: mean over ordered pairs (s ≠ t) of −Σ q_s log softmax(scores_t / τ)."""
    import torch

    V = len(scores_per_view)
    if V < 2:
        raise FacecoverError("SwAV needs at least two views per render (embed.augmentations ≥ 1)")
    codes = [sinkhorn(s, settings.epsilon, settings.sinkhorn_iterations) for s in scores_per_view]
    log_p = [torch.log_softmax(s / settings.temperature, dim=1) for s in scores_per_view]
    total = 0.0
    for s in range(V):
        for t in range(V):
            if s != t:
                total = total + (-(codes[s] * log_p[t]).sum(dim=1).mean())
    return total / (V * (V - 1))


def pretrain_swav(model, views: np.ndarray, settings: SwavSettings, seed: int, device, progress: bool = True,
                  desc: str = "swav"):
    """Train `model` (from `swav_model`) in place on views (R, V, 512) of R renders.

    Returns the history, one dict per epoch: loss, the number of prototypes used (argmax of the predictions) and
    seconds; ln K (the collapsed loss) is `log_prototypes`."""
    import torch
    from tqdm import tqdm

    R, V, _ = views.shape
    if R < 2:
        raise FacecoverError(f"{desc}: SwAV needs at least 2 renders, got {R}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    data = torch.from_numpy(np.asarray(views, np.float32)).to(device)
    history, iteration = [], 0
    for epoch in tqdm(range(1, settings.epochs + 1), desc=desc, disable=None if progress else True):
        start = time.perf_counter()
        model.train()
        order = rng.permutation(R)
        total, count, used = 0.0, 0, set()
        for i in range(0, R, settings.batch_size):
            idx = order[i:i + settings.batch_size]
            if len(idx) < 2:  # BatchNorm and Sinkhorn need two samples
                continue
            batch = data[torch.from_numpy(idx).to(device)]  # (B, V, 512)
            scores = model(batch.reshape(-1, batch.shape[-1])).reshape(len(idx), V, -1)
            per_view = [scores[:, v] for v in range(V)]
            loss = swapped_prediction_loss(per_view, settings)
            optimiser.zero_grad()
            loss.backward()
            if iteration < settings.freeze_prototypes_iterations:
                model.prototypes.weight.grad = None
            optimiser.step()
            model.normalise_prototypes()
            iteration += 1
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            used |= set(per_view[0].detach().argmax(dim=1).tolist())  # predicted, not Sinkhorn-balanced
        history.append({"epoch": epoch, "loss": total / max(count, 1), "prototypes_used": len(used),
                        "log_prototypes": math.log(settings.prototypes), "seconds": time.perf_counter() - start})
    model.cpu().eval()
    return history


def pretrain_trunk(net, views: np.ndarray, settings: SwavSettings, seed: int, device, progress: bool = True,
                   desc: str = "swav"):
    """SwAV on views (R, V, 512) starting from `net`'s trunk (a MappingNetwork, e.g. the base model's).
    Returns (the SwAV module: trunk, projection, prototypes; the history)."""
    import copy

    import torch

    trunk = copy.deepcopy(net.trunk)
    hidden = net.head[1].in_features
    torch.manual_seed(seed)
    model = swav_model(trunk, hidden, settings)
    history = pretrain_swav(model, views, settings, seed, device, progress, desc)
    return model, history
