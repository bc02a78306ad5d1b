"""Inputs of the learning stages: embedding caches, the split, target meshes and loss weights.

An embedding cache (`results/embeddings/{name}.npz`, written by the embed
stage) holds `stem` (R,) render names, `clean` (R, 512) and `augmented`
(R, V, 512) L2-normalised embeddings. Cohort renders are named
``{variant}_{view}``, pool renders ``{identity}_{view}``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from .. import FacecoverError
from .network import EMBEDDING_DIM

SETS = ("train", "val", "test")


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """An embedding cache, checked: `stem` (R,), `clean` (R, 512), `augmented` (R, V, 512) float32."""
    from ..files import load_npz

    cache = load_npz(path)
    missing = [k for k in ("stem", "clean", "augmented") if k not in cache]
    if missing:
        raise FacecoverError(f"{path}: not an embedding cache (missing {', '.join(missing)})")
    clean, aug = cache["clean"], cache["augmented"]
    if clean.ndim != 2 or clean.shape[1] != EMBEDDING_DIM:
        raise FacecoverError(f"{path}: embeddings have width {clean.shape[1:] if clean.ndim == 2 else clean.shape}, "
                             f"expected {EMBEDDING_DIM} (an ArcFace embedding)")
    if aug.ndim != 3 or aug.shape[0] != len(clean) or aug.shape[2] != EMBEDDING_DIM:
        raise FacecoverError(f"{path}: 'augmented' has shape {aug.shape}, expected ({len(clean)}, V, {EMBEDDING_DIM})")
    if len(cache["stem"]) != len(clean):
        raise FacecoverError(f"{path}: {len(cache['stem'])} stems for {len(clean)} embeddings")
    if not (np.isfinite(clean).all() and np.isfinite(aug).all()):
        raise FacecoverError(f"{path}: non-finite embeddings")
    return {"stem": cache["stem"].astype(str), "clean": clean.astype(np.float32), "augmented": aug.astype(np.float32)}


def all_views(cache: dict) -> np.ndarray:
    """Every cached view of every render (R, 1 + V, 512): the clean one first, then the augmented ones."""
    return np.concatenate([cache["clean"][:, None], cache["augmented"]], axis=1)


def read_split(path: str | Path) -> dict[str, str]:
    """{subject: "train" | "val" | "test"} from `splits.csv`, checked."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FacecoverError(f"{path}: split file not found")
    try:
        table = pd.read_csv(path, dtype=str)
    except Exception as exc:
        raise FacecoverError(f"{path}: cannot read the split ({type(exc).__name__}: {exc})") from None
    if list(table.columns[:2]) != ["subject", "set"]:
        raise FacecoverError(f"{path}: expected columns 'subject,set', got {','.join(table.columns)}")
    bad = sorted(set(table["set"]) - set(SETS))
    if bad:
        raise FacecoverError(f"{path}: unknown set(s) {', '.join(bad)} (use {', '.join(SETS)})")
    if not table["subject"].is_unique:
        raise FacecoverError(f"{path}: a subject appears in more than one row")
    return dict(zip(table["subject"], table["set"]))


def subjects_in(split: dict[str, str], which: str, path: str | Path = "split") -> list[str]:
    """Sorted subjects of one set; FacecoverError naming the split file if there are none."""
    names = sorted(s for s, k in split.items() if k == which)
    if not names:
        raise FacecoverError(f"{path}: no {which} subject (the learning stages need train, val and test subjects)")
    return names


def fraction_of_subjects(subjects: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded choice of round(fraction × n) whole subjects (at least one), sorted."""
    if not 0 < fraction <= 1:
        raise FacecoverError(f"swav.fractions: {fraction} is outside (0, 1]")
    subjects = sorted(subjects)
    count = max(1, int(round(fraction * len(subjects))))
    rng = np.random.default_rng([int(seed), zlib.crc32(b"swav-subjects"), int(round(fraction * 1e6))])
    return sorted(subjects[i] for i in rng.permutation(len(subjects))[:count])


def region_vertex_weights(regions: np.ndarray, region_names, weights: dict[str, float]) -> np.ndarray:
    """Per-vertex loss weights (N,) from per-region weights {region name: weight}; every region must be named."""
    names = [str(n) for n in region_names]
    missing = sorted(set(names) - set(weights))
    if missing:
        raise FacecoverError(f"region_weights: no weight for region(s) {', '.join(missing)}")
    table = np.array([float(weights[n]) for n in names])
    if (table < 0).any() or table.max() <= 0:
        raise FacecoverError("region_weights: weights must be ≥ 0 with at least one > 0")
    return table[np.asarray(regions)]


def cohort_samples(caches: dict[str, dict], subjects: list[str], views: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (M, 512) of the subjects' renders and the index (M,) of each one's subject in `subjects`.

    `views`: "all" (clean and augmented views) or "clean"."""
    X, y = [], []
    for i, s in enumerate(subjects):
        e = all_views(caches[s]) if views == "all" else caches[s]["clean"][:, None]
        X.append(e.reshape(-1, EMBEDDING_DIM))
        y.append(np.full(len(X[-1]), i))
    return np.concatenate(X), np.concatenate(y)


def pool_samples(cache: dict, identity_names, views: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Pool embeddings (M, 512) and the index (M,) of each one's identity in `identity_names`."""
    index = {str(n): i for i, n in enumerate(identity_names)}
    owners = [s.rsplit("_", 1)[0] for s in cache["stem"]]
    unknown = sorted(set(owners) - set(index))
    if unknown:
        raise FacecoverError(f"pool embeddings: renders of identities not in the pool: {', '.join(unknown[:3])}")
    e = all_views(cache) if views == "all" else cache["clean"][:, None]
    ids = np.repeat([index[o] for o in owners], e.shape[1])
    return e.reshape(-1, EMBEDDING_DIM), ids
