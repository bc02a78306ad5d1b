"""Embedding cache: ArcFace embeddings of every render in a folder, clean and augmented.

Each render `{stem}.png` (+ `{stem}.json` with its 5 ArcFace landmarks, px) is
aligned with insightface's `norm_crop` (112 x 112) and embedded once as is
and `augmentations` times with random crop shift/rotation/zoom, brightness,
contrast and noise (`encoder.augmented_face`). Later stages (SwAV, training)
read these arrays instead of running the encoder every epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import FacecoverError
from .encoder import AugmentSettings, alignment_matrix, augmented_face, embed_faces, load_render, warp_face


def render_stems(renders_dir: str | Path) -> list[str]:
    """Sorted stems of the renders (`*.png` with a landmark `.json` beside them) in a folder."""
    folder = Path(renders_dir)
    if not folder.is_dir():
        raise FacecoverError(f"{folder}: renders folder not found")
    stems = sorted(p.stem for p in folder.glob("*.png"))
    if not stems:
        raise FacecoverError(f"{folder}: no renders (*.png) to embed")
    return stems


def embed_renders(model, renders_dir: str | Path, augmentations: int, settings: AugmentSettings,
                  rng: np.random.Generator, stems: list[str] | None = None,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Arrays for the cache: `stem` (N,), `clean` (N, 512) and `augmented` (N, augmentations, 512),
    L2-normalised float32 embeddings of the N renders `stems` (default: all) in `renders_dir`."""
    from tqdm import tqdm

    stems = list(stems) if stems else render_stems(renders_dir)
    clean, augmented = [], []
    for stem in tqdm(stems, desc=f"embed {Path(renders_dir).name}", disable=None if progress else True):
        image, landmarks = load_render(Path(renders_dir) / f"{stem}.png")
        alignment = alignment_matrix(landmarks)  # computed once, reused by every augmented view
        faces = [warp_face(image, alignment)]
        faces += [augmented_face(image, landmarks, rng, settings, alignment) for _ in range(augmentations)]
        e = embed_faces(model, faces)
        clean.append(e[0])
        augmented.append(e[1:])
    return {"stem": np.array(stems), "clean": np.stack(clean),
            "augmented": np.stack(augmented)}
