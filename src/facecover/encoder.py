"""The frozen identity encoder: face image -> 512-d ArcFace embedding.

Either a configured insightface ArcFace ONNX file (e.g. ``w600k_r50.onnx``) or
a *bootstrap* encoder trained here: a small ResNet with the ArcFace additive
angular margin loss on renders of the synthetic pool identities (standing in
for Glint360k), exported to ONNX with insightface's input convention
(N x 3 x 112 x 112, RGB, ``(x - 127.5) / 127.5``; one 512-d output). Either
way the file is loaded through ``insightface.model_zoo.get_model``.

Images are uint8 BGR arrays (H, W, 3) as OpenCV/insightface use them;
landmarks are the 5 ArcFace points in pixels, shape (5, 2), in insightface's
order (right eye, left eye, nose tip, right and left mouth corner).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import FacecoverError

FACE_SIZE = 112          # ArcFace input, pixels (square)
EMBEDDING_DIM = 512


# ----------------------------------------------------------------- face crops

def load_render(image_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A render and its landmarks: (BGR uint8 (H, W, 3), ArcFace landmarks (5, 2) px) from `x.png` + `x.json`."""
    from PIL import Image

    image_path = Path(image_path)
    meta_path = image_path.with_suffix(".json")
    try:
        image = np.asarray(Image.open(image_path).convert("RGB"))[:, :, ::-1]
        landmarks = np.asarray(json.loads(meta_path.read_text())["arcface_landmarks_px"], dtype=np.float32)
    except FileNotFoundError as exc:
        raise FacecoverError(f"{exc.filename}: missing (renders come as .png + .json pairs)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise FacecoverError(f"{image_path}: cannot read render or its landmarks ({exc})") from None
    if landmarks.shape != (5, 2) or not np.isfinite(landmarks).all():
        raise FacecoverError(f"{meta_path}: expected 5 finite ArcFace landmarks, got shape {landmarks.shape}")
    return np.ascontiguousarray(image), landmarks


def alignment_matrix(landmarks: np.ndarray) -> np.ndarray:
    """insightface's ArcFace alignment (2, 3): the similarity taking the 5 landmarks (px) to the template
    positions of the 112 x 112 crop (`face_align.estimate_norm`)."""
    import warnings

    from insightface.utils import face_align

    with warnings.catch_warnings():  # scikit-image's notice about insightface's own call, once per image
        warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)
        return face_align.estimate_norm(np.asarray(landmarks, np.float32), image_size=FACE_SIZE)


def warp_face(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 112 x 112 crop of a BGR image under an alignment matrix (2, 3), as `face_align.norm_crop` warps."""
    import cv2

    return cv2.warpAffine(image, matrix, (FACE_SIZE, FACE_SIZE), borderValue=0.0)


def aligned_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112 x 112 ArcFace crop (insightface `norm_crop`) of a BGR image given its 5 landmarks (px)."""
    return warp_face(image, alignment_matrix(landmarks))


@dataclass(frozen=True)
class AugmentSettings:
    """Random view changes for training and for the embedding cache (config `embed` block)."""

    max_shift: float = 0.04          # crop shift, fraction of the eye-mouth distance
    max_rotation_deg: float = 8.0    # in-plane rotation
    max_scale: float = 0.06          # relative zoom
    brightness: float = 0.25         # relative brightness / contrast change
    noise_std: float = 4.0           # Gaussian pixel noise, grey levels


def augmented_face(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                   settings: AugmentSettings = AugmentSettings(), alignment: np.ndarray | None = None) -> np.ndarray:
    """A randomly changed 112 x 112 crop: shifted/rotated/zoomed crop, brightness, contrast and noise.

    The crop is the ArcFace alignment of the landmarks moved by a random similarity S (about their centre);
    as that alignment is a least-squares similarity fit it equals `alignment` ∘ S⁻¹, so the alignment of
    the unmoved landmarks (`alignment_matrix`, computed here if not given) is reused."""
    centre = landmarks.mean(axis=0)
    size = np.linalg.norm(landmarks[:2].mean(axis=0) - landmarks[3:].mean(axis=0))
    angle = math.radians(rng.uniform(-settings.max_rotation_deg, settings.max_rotation_deg))
    scale = 1.0 + rng.uniform(-settings.max_scale, settings.max_scale)
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shift = rng.uniform(-settings.max_shift, settings.max_shift, 2) * size
    # S(p) = rot (p - centre) + centre + shift; S⁻¹(q) = rot⁻¹ (q - centre - shift) + centre
    inv = np.linalg.inv(rot)
    S_inv = np.eye(3)
    S_inv[:2, :2], S_inv[:2, 2] = inv, centre - inv @ (centre + shift)
    base = alignment_matrix(landmarks) if alignment is None else alignment
    face = warp_face(image, (np.r_[base, [[0.0, 0.0, 1.0]]] @ S_inv)[:2]).astype(np.float32)
    gain = 1.0 + rng.uniform(-settings.brightness, settings.brightness)
    contrast = 1.0 + rng.uniform(-settings.brightness, settings.brightness) / 2
    mean = face.mean()
    face = (face - mean) * contrast + mean * gain + rng.normal(0.0, settings.noise_std, face.shape)
    return np.clip(face, 0, 255).astype(np.uint8)


def to_tensor_batch(faces: list[np.ndarray]) -> np.ndarray:
    """insightface's preprocessing: BGR uint8 crops -> float32 (N, 3, 112, 112), RGB, (x - 127.5) / 127.5."""
    x = np.stack(faces)[..., ::-1].astype(np.float32)
    return np.ascontiguousarray(((x - 127.5) / 127.5).transpose(0, 3, 1, 2))


# ------------------------------------------------------------ the bootstrap net

def identity_network(width: int = 16, embedding_dim: int = EMBEDDING_DIM, blocks: tuple[int, ...] = (1, 1, 1, 1)):
    """A ResNet in insightface's IResNet layout (4 stages of `blocks` residual blocks, `width` channels
    doubling per stage): (N, 3, 112, 112) normalised RGB -> (N, embedding_dim) embedding (not normalised).
    The bootstrap encoder is small (one block per stage, width 16); width 64 with blocks (3, 4, 14, 3) is
    the IResNet-50 of insightface's w600k_r50."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(
                nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout),
                nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (nn.Identity() if cin == cout and stride == 1 else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

        def forward(self, x):
            return self.body(x) + self.skip(x)

    widths = [width, 2 * width, 4 * width, 8 * width]
    layers = [nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0])]  # 56 px
    cin = widths[0]
    for w, n in zip(widths, blocks):                             # 28, 14, 7, 4 px
        layers.append(Block(cin, w, 2))
        layers += [Block(w, w, 1) for _ in range(n - 1)]
        cin = w
    side = 4
    layers += [nn.BatchNorm2d(cin), nn.Dropout(0.2), nn.Flatten(), nn.Linear(cin * side * side, embedding_dim),
               nn.BatchNorm1d(embedding_dim)]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        assert net.eval()(torch.zeros(2, 3, FACE_SIZE, FACE_SIZE)).shape == (2, embedding_dim)
    return net


def arcface_logits(embeddings, weight, labels, scale: float, margin: float):
    """ArcFace (additive angular margin) logits: s * cos(theta + m) for the true class, s * cos(theta) otherwise."""
    import torch
    import torch.nn.functional as F

    cos = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1 + 1e-7, 1 - 1e-7)
    target = cos.gather(1, labels[:, None])
    theta = torch.acos(target)
    # past pi - m, cos(theta + m) stops decreasing; use the usual linear continuation there
    with_margin = torch.where(theta + margin < math.pi, torch.cos(theta + margin), target - margin * math.sin(margin))
    return scale * cos.scatter(1, labels[:, None], with_margin)


@dataclass(frozen=True)
class EncoderSettings:
    """Training of the bootstrap encoder (config `arcface` block, except `model`)."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.002
    width: int = 16                  # channels of the first stage (x2 per stage)
    margin: float = 0.3              # additive angular margin, radians
    scale: float = 32.0              # logit scale s
    val_fraction: float = 0.1        # identities held out to measure verification
    patience: int = 3                # stop when the held-out separation has not improved for this many epochs
    min_epochs: int = 12             # ... but not before this many (0 patience: always train all epochs)
    plateau_delta: float = 0.005     # an improvement smaller than this is a plateau
    identities: int = 0              # `facecover encoder` trains on the first this many pool identities (0: all)
    augment: AugmentSettings = AugmentSettings()


def identities_in(renders_dir: str | Path, limit: int = 0) -> dict[str, list[Path]]:
    """Render files per identity in a pool render folder (`{identity}_{view}.png`); with `limit`, only the
    first `limit` identities in name order."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(Path(renders_dir).glob("*_*.png")):
        groups.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    if limit:
        groups = {name: groups[name] for name in sorted(groups)[:limit]}
    if len(groups) < 4:
        raise FacecoverError(f"{renders_dir}: found {len(groups)} identities with renders; "
                             "training the encoder needs at least 4 (config cohort.pool_size, arcface.identities)")
    return groups


def train_identity_encoder(renders: dict[str, list[tuple[np.ndarray, np.ndarray]]], settings: EncoderSettings,
                           seed: int, device, progress: bool = True):
    """Train the bootstrap encoder on renders {identity: [(BGR image, landmarks), ...]}.

    Identities are split (seeded) into training and held-out ones. After every epoch the held-out
    identities' separation (mean cosine of same- minus different-identity pairs) is measured; training
    stops early when it has reached a plateau (`patience`, `min_epochs`, `plateau_delta`). Each image's
    ArcFace alignment is computed once; augmentations reuse it. Returns (network in eval mode on the
    CPU, report dict with the loss and held-out separation per epoch and the final verification figures).
    """
    import torch
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    names = sorted(renders)
    # verification needs different-identity pairs: hold out at least 2 identities, or none for tiny pools
    n_val = max(2, round(settings.val_fraction * len(names))) if settings.val_fraction > 0 and len(names) >= 10 else 0
    order = rng.permutation(len(names))
    val_names = sorted(names[i] for i in order[:n_val])
    train_names = sorted(names[i] for i in order[n_val:])
    samples = [(img, lm, label, alignment_matrix(lm)) for label, n in enumerate(train_names) for img, lm in renders[n]]
    heldout = [(n, aligned_face(img, lm)) for n in val_names for img, lm in renders[n]]
    heldout_x = torch.from_numpy(to_tensor_batch([f for _, f in heldout])) if heldout else None
    heldout_ids = np.array([n for n, _ in heldout])

    def heldout_figures(on) -> dict:
        """Verification figures of the held-out images, the network in eval mode on device `on`."""
        net.eval()
        with torch.no_grad():
            emb = torch.cat([net(heldout_x[i:i + 256].to(on)).cpu() for i in range(0, len(heldout_x), 256)])
        return verification_figures(emb.numpy(), heldout_ids)

    def separation() -> float | None:
        if heldout_x is None:
            return None
        figures = heldout_figures(device)
        return figures["cosine_same"] - figures["cosine_different"]

    net = identity_network(settings.width).to(device)
    weight = torch.nn.Parameter(torch.randn(len(train_names), EMBEDDING_DIM, device=device) * 0.01)
    params = list(net.parameters()) + [weight]
    optimiser = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=5e-4)
    steps_per_epoch = max(1, math.ceil(len(samples) / settings.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate,
                                                   total_steps=settings.epochs * steps_per_epoch, pct_start=0.15)
    history = []
    start = time.perf_counter()
    for epoch in tqdm(range(settings.epochs), desc="train encoder", disable=None if progress else True):
        net.train()
        perm = rng.permutation(len(samples))
        total, correct, count = 0.0, 0, 0
        for b in range(steps_per_epoch):
            batch = [samples[i] for i in perm[b * settings.batch_size:(b + 1) * settings.batch_size]]
            if len(batch) < 2:        # BatchNorm needs two samples
                continue
            x = torch.from_numpy(to_tensor_batch([augmented_face(img, lm, rng, settings.augment, alignment=m)
                                                  for img, lm, _, m in batch])).to(device)
            y = torch.tensor([label for _, _, label, _ in batch], device=device)
            logits = arcface_logits(net(x), weight, y, settings.scale, settings.margin)
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(1) == y).sum())
            count += len(batch)
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "train_accuracy": correct / max(count, 1),
                        "heldout_separation": separation()})
        seps = [h["heldout_separation"] for h in history]
        started = epoch + 1 >= max(settings.min_epochs, settings.patience + 1)
        if (settings.patience > 0 and seps[-1] is not None and started
                and max(seps[-settings.patience:]) < max(seps[:-settings.patience]) + settings.plateau_delta):
            break
    net = net.cpu().eval()
    report = {"identities_train": len(train_names), "identities_heldout": len(val_names), "heldout_names": val_names,
              "images_train": len(samples), "settings": asdict(settings), "seed": seed, "device": str(device),
              "train_seconds": round(time.perf_counter() - start, 1), "epochs_trained": len(history),
              "stopped_early": len(history) < settings.epochs, "history": history}
    if heldout:
        report["heldout"] = heldout_figures(torch.device("cpu"))
    return net, report


def verification_figures(embeddings: np.ndarray, identities: np.ndarray) -> dict:
    """Face verification over all image pairs: mean cosine of same/different-identity pairs, ROC AUC
    (chance that a same pair is more similar than a different pair; 0.5 = chance) and rank-1
    identification (each image's most similar other image shows the same identity)."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sim = e @ e.T
    iu = np.triu_indices(len(e), 1)
    same = (identities[:, None] == identities[None, :])[iu]
    s = sim[iu]
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if not n_same or not n_diff:
        raise FacecoverError("verification needs at least two identities, one of them with two images")
    # Mann-Whitney: ranks of the similarities, ties sharing their average rank (as scipy's rankdata,
    # whose module alone takes 0.6 s to import)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    auc = (ranks[same].sum() - n_same * (n_same + 1) / 2) / (n_same * n_diff)
    np.fill_diagonal(sim, -np.inf)
    rank1 = float((identities[sim.argmax(1)] == identities).mean())
    return {"cosine_same": float(s[same].mean()), "cosine_different": float(s[~same].mean()),
            "verification_auc": float(auc), "rank1_identification": rank1,
            "images": int(len(e)), "identities": int(len(np.unique(identities)))}


def export_onnx(net, path: str | Path) -> None:
    """Write the network as an insightface-compatible ArcFace ONNX (static 112 x 112, dynamic batch, one output)."""
    import torch

    from .files import atomic_path

    net = net.cpu().eval()
    with atomic_path(path) as tmp:
        torch.onnx.export(net, torch.zeros(1, 3, FACE_SIZE, FACE_SIZE), str(tmp), dynamo=False,
                          input_names=["input.1"], output_names=["embedding"], opset_version=17,
                          dynamic_axes={"input.1": {0: "batch"}, "embedding": {0: "batch"}})
    load_identity_encoder(path)  # fails loudly if insightface would not route it to ArcFaceONNX


# ------------------------------------------------------------------- loading

def load_identity_encoder(path: str | Path, providers: list[str] | None = None, threads: int = 0):
    """The encoder at `path` as insightface's ArcFaceONNX (its `get_feat` embeds 112 x 112 BGR crops), run
    on `threads` CPU threads (0: onnxruntime's default, one per core; the embeddings are the same)."""
    import onnxruntime
    from insightface.model_zoo import get_model
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    path = Path(path)
    if not path.is_file():
        raise FacecoverError(f"{path}: ArcFace model file not found")
    try:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(0, int(threads))
        model = get_model(str(path), providers=providers or ["CPUExecutionProvider"], sess_options=options)
    except Exception as exc:  # onnxruntime/onnx raise their own types for corrupt files
        raise FacecoverError(f"{path}: cannot load as an ONNX model ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, ArcFaceONNX):
        raise FacecoverError(f"{path}: not an ArcFace recognition model (insightface needs input N x 3 x 112 x 112 "
                             "with static height/width and exactly one output)")
    out = model.get_feat([np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8)] * 2)
    if out.shape != (2, EMBEDDING_DIM):
        raise FacecoverError(f"{path}: embeddings have shape {out.shape[1:]}, expected ({EMBEDDING_DIM},)")
    return model


def embed_faces(model, faces: list[np.ndarray], batch: int = 64) -> np.ndarray:
    """L2-normalised embeddings (N, 512) float32 of 112 x 112 BGR crops."""
    out = np.concatenate([model.get_feat(faces[i:i + batch]) for i in range(0, len(faces), batch)])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
