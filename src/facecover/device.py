"""Which torch device a stage runs on (config `device: auto|cpu|cuda`).

`CUDA_VISIBLE_DEVICES` is honoured (torch only sees the GPUs it lists, as
SLURM sets it for a job that asked for GPUs). When a GPU is wanted but none is
usable — e.g. a cluster job given a GPU on a node without CUDA — the stage
runs on the CPU after a one-line notice instead of failing.
"""

from __future__ import annotations

import os
import sys

from . import FacecoverError

CHOICES = ("auto", "cpu", "cuda")


def select_device(requested: str = "auto", notice=None):
    """torch.device for `requested`; prints one line to stderr (or calls `notice`) on a CPU fallback."""
    import torch

    if requested not in CHOICES:
        raise FacecoverError(f"device: '{requested}' is not one of {', '.join(CHOICES)}")
    say = notice or (lambda msg: print(msg, file=sys.stderr))
    if requested == "cpu":
        return torch.device("cpu")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda" or visible not in (None, "", "-1"):
        say(f"facecover: no usable CUDA GPU (CUDA_VISIBLE_DEVICES={visible!r}, torch {torch.__version__}); "
            "running on the CPU")
    return torch.device("cpu")
