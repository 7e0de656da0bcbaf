"""Core: explicit seeds and devices. Every run takes a seed (default fixed, never time-based) and records it
beside its result; every random draw of a cell derives its seed from (run seed, cell, batch, ...) with
:func:`derive_seed`, so a resumed or reordered run gives the same numbers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from defbench import DefbenchError

DEFAULT_SEED = 0


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; returns a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def kept_random_state() -> Iterator[None]:
    """Run a block and give Python's, numpy's and torch's global generators (CUDA's too) the states they had
    before it: a caller's own random draws after :func:`defbench.evaluate` go on as if defbench had not seeded
    them for its cells. CUDA initialised inside the block gets the seed its lazy initialisation would have given
    it (``torch.initial_seed()``: the caller's last ``torch.manual_seed``, else PyTorch's default)."""
    py, npy, cpu, first = random.getstate(), np.random.get_state(), torch.get_rng_state(), torch.initial_seed()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        elif torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(first)


def derive_seed(*parts: Any) -> int:
    """A seed in [0, 2^63) that depends on ``parts`` only (their ``repr``), the same in every process: how a
    cell derives the seeds of its draws from (run seed, cell identity, batch, step, EOT draw)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63 - 1)


#: set to 1 to keep PyTorch's default (faster, nondeterministic) CUDA kernels
NONDETERMINISTIC_ENV = "DEFBENCH_NONDETERMINISTIC"


def deterministic_kernels(device: torch.device) -> bool:
    """On CUDA, switch PyTorch to deterministic kernels (cuDNN's deterministic algorithms, no autotuning, cuBLAS
    with a fixed workspace, ``torch.use_deterministic_algorithms`` warning where an op has none), unless
    ``$DEFBENCH_NONDETERMINISTIC`` is 1. Without it one cell computed twice on an H200 gave DefenseGAN predictions
    that differed on 7-8 of 100 images (docs/RESULTS.md, "Deterministic CUDA kernels"); on the CPU PyTorch's
    kernels are deterministic already and nothing is changed. Returns whether CUDA kernels are deterministic."""
    if device.type != "cuda":
        return True
    if os.environ.get(NONDETERMINISTIC_ENV, "") == "1":
        return cuda_kernels_deterministic()
    # cuBLAS reads this when its handle is made: set before the first matrix product on the device
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    return True


def cuda_kernels_deterministic() -> bool:
    """Whether PyTorch runs deterministic CUDA kernels now (what :func:`deterministic_kernels` switches on)."""
    return bool(torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` (or such a ``torch.device``); a
    one-line error for anything else or for CUDA asked for where there is none. A CUDA device comes with
    deterministic kernels (:func:`deterministic_kernels`), so that a cell gives the same numbers every time it is
    computed."""
    if isinstance(device, torch.device):
        device = str(device)  # torch.device("cuda", 1) -> "cuda:1"
    if not isinstance(device, str):
        raise DefbenchError(f"device must be auto, cpu, cuda or cuda:N (a str or torch.device), got {device!r}")
    device = device.strip().lower()  # as dataset, defense, attack and threat names: 'CPU' is cpu
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ordinal = device.split(":", 1)[1] if device.startswith("cuda:") else None
    if device not in ("cpu", "cuda") and not (ordinal is not None and ordinal.isdigit() and ordinal.isascii()):
        raise DefbenchError(f"unknown device {device!r}; choose auto, cpu, cuda or cuda:N (N = 0, 1, ...)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DefbenchError("--device cuda asked for, but no CUDA device is available; use --device auto or cpu")
    if ordinal is not None and int(ordinal) >= torch.cuda.device_count():
        raise DefbenchError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
        )
    dev = torch.device(device)
    deterministic_kernels(dev)
    return dev
