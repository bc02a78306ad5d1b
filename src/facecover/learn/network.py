"""The mapping network (MICA's layout) and its checkpoints.

    L2-normalised 512-d ArcFace embedding
      -> Linear(512, 300)
      -> 3 × [LeakyReLU(0.2), Linear(300, 300)]      (the *trunk*, shared with SwAV)
      -> LeakyReLU(0.2), Linear(300, K)               (the *head*: the decoder's K coefficients)

Checkpoints are plain dicts of tensors and numbers written with `torch.save`
and read with ``torch.load(..., weights_only=True)``; a missing, corrupt or
mismatched file is a FacecoverError naming it.
"""

from __future__ import annotations

from pathlib import Path

from .. import FacecoverError

EMBEDDING_DIM = 512
HIDDEN = 300
HIDDEN_LAYERS = 3


def _torch():
    import torch

    return torch


def mapping_network(n_coefficients: int, hidden: int = HIDDEN, hidden_layers: int = HIDDEN_LAYERS):
    """A `MappingNetwork` module: (B, 512) embeddings -> (B, n_coefficients) decoder coefficients."""
    torch = _torch()
    from torch import nn

    class MappingNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Linear(EMBEDDING_DIM, hidden)]
            for _ in range(hidden_layers):
                layers += [nn.LeakyReLU(0.2), nn.Linear(hidden, hidden)]
            self.trunk = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(hidden, n_coefficients))
            self.n_coefficients = n_coefficients

        def features(self, embeddings):
            """Trunk features (B, hidden) of embeddings (B, 512); the input is L2-normalised here."""
            return self.trunk(torch.nn.functional.normalize(embeddings, dim=1))

        def forward(self, embeddings):
            return self.head(self.features(embeddings))

    return MappingNetwork()


def set_linear_trunk(net, directions) -> None:
    """Make the trunk pass the projections u = directions.T @ x (directions (512, r), r ≤ hidden/2) through
    linearly: every layer holds each projection twice, as +u and −u, and since LeakyReLU(a) − LeakyReLU(−a)
    = 1.2 a the next layer recovers u exactly. The trunk output is [LeakyReLU(u), LeakyReLU(−u)] padded with
    zeros — a linear function of u for the head to read."""
    import numpy as np

    torch = _torch()
    linear = [m for m in net.trunk if isinstance(m, torch.nn.Linear)]
    hidden = linear[0].out_features
    r = directions.shape[1]
    if 2 * r > hidden:
        raise FacecoverError(f"mapping network: {r} directions need {2 * r} hidden units, it has {hidden}")
    first = np.zeros((hidden, directions.shape[0]))
    first[:r], first[r:2 * r] = directions.T, -directions.T
    relay = np.zeros((hidden, hidden))
    relay[:r, :r] = relay[r:2 * r, r:2 * r] = np.eye(r) / 1.2
    relay[:r, r:2 * r] = relay[r:2 * r, :r] = -np.eye(r) / 1.2
    with torch.no_grad():
        linear[0].weight.copy_(torch.from_numpy(first))
        for layer in linear[1:]:
            layer.weight.copy_(torch.from_numpy(relay))
        for layer in linear:
            layer.bias.zero_()


def save_checkpoint(path: str | Path, state: dict, **meta) -> None:
    """Write a checkpoint atomically: `state` (a module's state_dict, or {name: state_dict}) plus numbers/strings."""
    torch = _torch()
    from ..files import atomic_path

    import json

    import numpy as np

    def plain(value):  # numpy scalars/arrays -> Python numbers/lists, so weights_only loading accepts them
        return value.tolist() if isinstance(value, (np.generic, np.ndarray)) else str(value)

    meta = json.loads(json.dumps(meta, default=plain))
    with atomic_path(path) as tmp:
        torch.save({"state": state, **meta}, tmp)


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict:
    """Read a checkpoint with ``weights_only=True``; FacecoverError naming the file if missing, corrupt or
    not of `kind` (the `kind` entry written with it, e.g. "mapping" or "swav")."""
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise FacecoverError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise FacecoverError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(ckpt, dict) or "state" not in ckpt:
        raise FacecoverError(f"{path}: not a facecover checkpoint (no 'state' entry)")
    if kind is not None and ckpt.get("kind") != kind:
        raise FacecoverError(f"{path}: a '{ckpt.get('kind')}' checkpoint, expected '{kind}'")
    return ckpt


def load_mapping(path: str | Path, n_coefficients: int | None = None):
    """The mapping network stored in a "mapping" checkpoint (eval mode, CPU) and the checkpoint dict."""
    ckpt = load_checkpoint(path, "mapping")
    k = int(ckpt["n_coefficients"])
    if n_coefficients is not None and k != n_coefficients:
        raise FacecoverError(f"{path}: the network predicts {k} coefficients but the decoder has {n_coefficients} "
                             "(it was trained with another decoder; rerun training)")
    net = mapping_network(k, int(ckpt.get("hidden", HIDDEN)), int(ckpt.get("hidden_layers", HIDDEN_LAYERS)))
    try:
        net.load_state_dict(ckpt["state"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise FacecoverError(f"{path}: checkpoint does not fit the mapping network ({str(exc)[:200]})") from None
    return net.eval(), ckpt
