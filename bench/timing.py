"""Timing shared by the benchmarks: every method gets the same warm-up and the same repetitions."""

from __future__ import annotations

import time

import numpy as np


def warm_median_seconds(fn, repeat: int):
    """Median wall time (s) of `repeat` calls of `fn` after one untimed warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out
