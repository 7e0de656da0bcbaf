"""Core: explicit seeds and devices. Every run takes a seed (default fixed, never time-based) and records it
beside its result; every random draw of a cell derives its seed from (run seed, cell, batch, ...) with
:func:`derive_seed`, so a resumed or reordered run gives the same numbers."""

from __future__ import annotations

import hashlib
import random
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


def derive_seed(*parts: Any) -> int:
    """A seed in [0, 2^63) that depends on ``parts`` only (their ``repr``), the same in every process: how a
    cell derives the seeds of its draws from (run seed, cell identity, batch, step, EOT draw)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63 - 1)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; a one-line error for anything
    else or for CUDA asked for where there is none."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise DefbenchError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DefbenchError("--device cuda asked for, but no CUDA device is available; use --device auto or cpu")
    return torch.device(device)
