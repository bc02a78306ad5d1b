"""Seeded random generators: one independent stream per person and purpose, from the config's seed."""

from __future__ import annotations

import zlib

import numpy as np


def person_rng(seed: int, population: str, name: str) -> np.random.Generator:
    """Random generator for one person, independent of the others."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(population.encode()),
                                                          zlib.crc32(name.encode())]))
