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


def _check(requested: str) -> None:
    if requested not in CHOICES:
        raise FacecoverError(f"device: '{requested}' is not one of {', '.join(CHOICES)}")


def _fallback_notice(requested: str, what: str, notice) -> None:
    """One line when a GPU was asked for (explicitly, or by the scheduler setting CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if requested == "cuda" or visible not in (None, "", "-1"):
        (notice or (lambda msg: print(msg, file=sys.stderr)))(
            f"facecover: no usable CUDA GPU (CUDA_VISIBLE_DEVICES={visible!r}, {what}); running on the CPU")


def select_device(requested: str = "auto", notice=None):
    """torch.device for `requested`; prints one line to stderr (or calls `notice`) on a CPU fallback."""
    import torch

    _check(requested)
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    _fallback_notice(requested, f"torch {torch.__version__}", notice)
    return torch.device("cpu")


def onnx_providers(requested: str = "auto", notice=None) -> list[str]:
    """onnxruntime execution providers for `requested` (CUDA first when usable, CPU always last)."""
    import onnxruntime

    _check(requested)
    if requested != "cpu" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if requested != "cpu":
        _fallback_notice(requested, f"onnxruntime {onnxruntime.__version__} without CUDA", notice)
    return ["CPUExecutionProvider"]
