import pytest

from facecover import FacecoverError
from facecover.device import select_device


def test_cpu_and_auto_without_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    notes = []
    assert select_device("cpu", notes.append).type == "cpu"
    assert select_device("auto", notes.append).type == "cpu"
    assert notes == []  # nothing was asked for that is missing


def test_gpu_requested_but_missing_falls_back_with_one_notice(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # what SLURM sets for a job given a (fake) GPU
    for requested in ("cuda", "auto"):
        notes = []
        assert select_device(requested, notes.append).type == "cpu"
        assert len(notes) == 1 and "CUDA_VISIBLE_DEVICES='0'" in notes[0] and "CPU" in notes[0]


def test_gpu_used_when_available(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto").type == "cuda"
    assert select_device("cuda").type == "cuda"


def test_bad_value():
    with pytest.raises(FacecoverError, match="'gpu' is not one of"):
        select_device("gpu")


def test_onnx_providers(monkeypatch):
    import onnxruntime

    from facecover.device import onnx_providers

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    notes = []
    assert onnx_providers("auto", notes.append) == ["CPUExecutionProvider"] and notes == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert onnx_providers("auto", notes.append) == ["CPUExecutionProvider"]
    assert len(notes) == 1 and "running on the CPU" in notes[0]
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda")[0] == "CUDAExecutionProvider"
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
