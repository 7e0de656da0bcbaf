"""Explicit seeds: every run takes one (default fixed, never time-based) and records it beside its result."""

from __future__ import annotations

import random

import numpy as np
import torch

DEFAULT_SEED = 0


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; returns a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    from defbench import DefbenchError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise DefbenchError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DefbenchError("--device cuda asked for, but no CUDA device is available; use --device auto or cpu")
    return torch.device(device)
