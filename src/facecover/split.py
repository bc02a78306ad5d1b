"""Train/validation/test split by subject (no subject in two sets)."""

from __future__ import annotations

import numpy as np

from . import FacecoverError

SETS = ("train", "val", "test")


def split_subjects(subjects: list[str], ratios=(0.6, 0.2, 0.2), seed: int = 0) -> dict[str, str]:
    """Assign each subject to train/val/test in the given ratios, shuffled with `seed`.

    Counts are rounded so that they add up to the number of subjects; with at
    least three subjects every set gets one.
    """
    subjects = sorted(set(subjects))
    if len(subjects) < 3:
        raise FacecoverError(f"split: need at least 3 subjects, got {len(subjects)}")
    ratios = np.asarray(ratios, float)
    if ratios.shape != (3,) or np.any(ratios <= 0):
        raise FacecoverError(f"split.ratios must be three positive numbers, got {ratios.tolist()}")
    ratios = ratios / ratios.sum()
    n = len(subjects)
    n_val = max(1, int(round(ratios[1] * n)))
    n_test = max(1, int(round(ratios[2] * n)))
    n_train = n - n_val - n_test
    order = np.random.default_rng(seed).permutation(n)
    names = np.repeat(SETS, [n_train, n_val, n_test])
    return {subjects[i]: str(names[k]) for k, i in enumerate(order)}
