"""Devices: ``resolve_device``'s choices and errors, and the deterministic CUDA kernels it switches on (an H200
gave one cell's DefenseGAN predictions that differed on 7-8 of 100 images between two computations without them;
tests/test_cuda.py checks the outcome on a GPU). PyTorch's switches can be set without a GPU, so the switching
is tested here."""

from __future__ import annotations

import pytest
import torch

from defbench import DefbenchError
from defbench.seeding import NONDETERMINISTIC_ENV, cuda_kernels_deterministic, deterministic_kernels, resolve_device


def test_cpu_changes_no_switch(torch_switches):
    assert resolve_device("cpu") == torch.device("cpu")
    assert deterministic_kernels(torch.device("cpu")) is True
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_cuda_switches_to_deterministic_kernels(torch_switches):
    import os

    assert not cuda_kernels_deterministic()
    assert deterministic_kernels(torch.device("cuda")) is True
    assert cuda_kernels_deterministic() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.backends.cudnn.benchmark and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_opting_out_keeps_pytorch_defaults(torch_switches, monkeypatch):
    monkeypatch.setenv(NONDETERMINISTIC_ENV, "1")
    assert deterministic_kernels(torch.device("cuda")) is False
    assert not cuda_kernels_deterministic()


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda0", "cuda:x", "cuda:-1", "cuda:", "cuda:0:1", "cuda:٣"])
def test_unknown_device_is_a_one_line_error(bad, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a CUDA machine: checked before torch
    with pytest.raises(DefbenchError, match="unknown device"):
        resolve_device(bad)


def test_cuda_ordinal_past_the_devices_is_a_one_line_error(monkeypatch, torch_switches):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DefbenchError, match="1 CUDA device"):
        resolve_device("cuda:1")
    assert resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_one_line_error():
    with pytest.raises(DefbenchError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_the_runner_switches_its_device_too(torch_switches, monkeypatch):
    """A Ray worker builds its MatrixRunner from a device string without resolve_device: the runner switches the
    kernels itself (here recorded, since this machine may have no CUDA)."""
    import defbench.harness.matrix as matrix

    seen = []
    monkeypatch.setattr(matrix, "deterministic_kernels", lambda dev: seen.append(dev))
    monkeypatch.setattr(matrix, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    spec = matrix.MatrixSpec(dataset="fmnist", defenses=["none"], attacks=[], n=1, device="cpu")
    with pytest.raises(RuntimeError, match="stop"):
        matrix.MatrixRunner(spec)
    assert seen == [torch.device("cpu")]
