"""RIDE: Robust Iterative Data Estimation (Lin, Pfister, Zhang), Alg. 1-2 and the supplement, one network per input.

Per image a fresh fully convolutional network h (3x3 convs, ReLU, sigmoid output for images in (0, 1), no
BatchNorm) is fitted as a denoising autoencoder (Alg. 1). At every checkpoint t = 1..T, DAE(x^(t-1)) runs K
Adam iterations, each on one pair (z, s) ~ N(x^(t-1), σ²) × N(x^(t-1), σ²) (n = 1) with the loss
‖s − h(z)‖² over a random 1 − p share of the pixels, and returns x_est^(t) = E_z[h(z)]. Then
x^(t) = α x^(t-1) + (1 − α) x_est^(t), except on the pixels whose ℓ1 distance between x_est^(t) and x^(t-1)
is below the image's median distance, where x^(t) takes x_est^(t) (non-maximum suppression). The defense
returns x_est^(T), as Alg. 2's output "estimated true data x_est" does.

Readings (each an option, see docs/DEFENSES.md for the paper's sentence behind each):

* ``iterations`` is K *per checkpoint* (Alg. 2 hands K to every DAE call: 10,000 iterations in all at the
  defaults); ``split_iterations=True`` is the earlier reading, K in all, split over the T checkpoints;
* ``arch``: the supplement's Table 3 network per dataset (``mnist``: 4 layers of 16 filters, dropout before
  conv2 and conv3; ``cifar10``: 5 layers of 32, dropout before conv2, conv3; ``imagenet``: 8 layers of 32,
  dropout before conv4, conv5, conv6 — the main text's "8-layer FCN"); ``dropout`` is the ratio (0.5);
* ``loss_mask`` p = 0.9 (random loss masking), ``nms`` (τ = median), ``init`` (``uniform``: Xavier-uniform;
  ``torch``: PyTorch's default conv initialisation), ``estimate_samples`` (draws behind E_z[h(z)]);
* ``sigma_units``: σ on [0, 1] pixels (``pixel``), or on the classifier's normalised images (``normalized``:
  σ times the per-channel std, 0.3081 for MNIST, ImageNet's stds otherwise);
* ``input`` ``noisy`` (DAE) or ``fixed`` (DIP's fixed random input), ``target_noise`` (s ~ N(x, σ²) as in
  Alg. 1; False: s = x), ``output`` ``estimate`` (x_est^(T)) or ``iterate`` (x^(T)).
  DIP = ``input=fixed,target_noise=false,alpha=1,nms=false``; I-DIP the same with α = 0.9 and NMS;
  DAE = ``alpha=1,nms=false``; RIDE = the defaults (Fig. 5(a)'s ablation).

Batched: the networks of all images in a batch are one grouped-convolution network (groups = batch size),
so a batch runs as one tensor program, never a Python loop over images. Adam is element-wise, so one Adam
over the stacked weights is exactly one Adam per image. Every random draw of an image (initial weights,
noise, dropout and loss masks) comes from its own generator, seeded by (seed, hash of the image), so
purifying an image alone or inside any batch gives the same result.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from defbench import DefbenchError, progress
from defbench.defenses.base import Defense

#: supplement Table 3: (filters, conv layers, 1-based conv layers whose input passes through Dropout)
ARCHS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "mnist": (16, 4, (2, 3)),
    "cifar10": (32, 5, (2, 3)),
    "imagenet": (32, 8, (4, 5, 6)),
}
#: which Table 3 network each dataset uses (Fashion-MNIST, not in the paper, takes MNIST's)
DATASET_ARCH = {"mnist": "mnist", "fmnist": "mnist", "cifar10": "cifar10", "imagenet": "imagenet"}
#: per-channel std of the classifier normalisation the paper's σ may be read in (supplement, "Image Normalization")
NORM_STD = {"mnist": (0.3081,), "cifar10": (0.229, 0.224, 0.225), "imagenet": (0.229, 0.224, 0.225)}


@dataclass(frozen=True)
class RIDEConfig:
    arch: str = "imagenet"  #: Table 3 network (build_defense picks the dataset's)
    width: int = 0  #: filters per hidden layer; 0 = the arch's
    layers: int = 0  #: conv layers; 0 = the arch's
    dropout: float = 0.5  #: Dropout ratio at the arch's positions (0 = none)
    sigma: float = 0.5
    sigma_units: str = "pixel"  #: "pixel" ([0, 1] images) or "normalized" (σ · classifier std)
    iterations: int = 2000  #: K, DAE iterations per checkpoint
    split_iterations: bool = False  #: True: K in all, split over the T checkpoints (earlier reading)
    checkpoints: int = 5  #: T
    alpha: float = 0.9
    nms: bool = True  #: non-maximum suppression, τ = median pixel distance
    loss_mask: float = 0.9  #: p, share of pixels left out of the loss at each iteration
    target_noise: bool = True  #: s ~ N(x, σ²) (Alg. 1); False: s = x
    input: str = "noisy"  #: "noisy": z ~ N(x, σ²) (DAE); "fixed": one fixed random input (DIP)
    init: str = "uniform"  #: "uniform" (Xavier-uniform) or "torch" (PyTorch's conv default)
    lr: float = 1e-4
    weight_decay: float = 1e-4
    estimate_samples: int = 8  #: draws of z behind E_z[h(z)] at each checkpoint
    output: str = "estimate"  #: "estimate": x_est^(T) (Alg. 2); "iterate": x^(T)
    noise_block: int = 25  #: iterations of random draws made per generator call

    def __post_init__(self):
        checks = [
            (self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}"),
            (self.width >= 0 and self.layers in (0,) + tuple(range(2, 65)), "width >= 0 and layers 0 or 2..64"),
            (0 <= self.dropout < 1 and 0 <= self.loss_mask < 1, "dropout and loss_mask must lie in [0, 1)"),
            (self.iterations >= 0 and self.checkpoints >= 1, "iterations >= 0 and checkpoints >= 1"),
            (0 <= self.alpha <= 1, "alpha must lie in [0, 1]"),
            (math.isfinite(self.sigma) and self.sigma >= 0, "sigma must be finite and >= 0"),
            (self.sigma_units in ("pixel", "normalized"), "sigma_units must be 'pixel' or 'normalized'"),
            (self.input in ("noisy", "fixed"), "input must be 'noisy' or 'fixed'"),
            (self.init in ("uniform", "torch"), "init must be 'uniform' or 'torch'"),
            (self.output in ("estimate", "iterate"), "output must be 'estimate' or 'iterate'"),
            (
                math.isfinite(self.lr) and self.lr > 0 and math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                "lr must be finite and > 0, weight_decay finite and >= 0",
            ),
            (self.estimate_samples >= 1 and self.noise_block >= 1, "estimate_samples and noise_block must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DefbenchError(f"invalid RIDE config: {msg} ({self})")

    @classmethod
    def for_dataset(cls, dataset: str, **overrides) -> "RIDEConfig":
        return cls(**{"arch": DATASET_ARCH.get(dataset, "imagenet"), **overrides})

    def network(self) -> tuple[int, int, tuple[int, ...]]:
        width, layers, drop = ARCHS[self.arch]
        return self.width or width, self.layers or layers, drop if self.dropout > 0 else ()

    def per_checkpoint(self) -> list[int]:
        if not self.split_iterations:
            return [self.iterations] * self.checkpoints
        k, r = divmod(self.iterations, self.checkpoints)
        return [k + (1 if i < r else 0) for i in range(self.checkpoints)]


def image_seed(seed: int, img: torch.Tensor) -> int:
    digest = hashlib.sha256(img.detach().cpu().float().numpy().tobytes()).digest()
    return (int.from_bytes(digest[:8], "little") ^ (seed * 0x9E3779B97F4A7C15)) % (2**63 - 1)


class GroupedFCN:
    """B independent FCNs as one grouped-convolution network; weights[i] has shape (B*out, in, 3, 3)."""

    def __init__(self, channels: int, cfg: RIDEConfig, gens: list[torch.Generator], device):
        self.b = len(gens)
        width, layers, self.dropout_at = cfg.network()
        self.p = cfg.dropout
        dims = [channels] + [width] * (layers - 1) + [channels]
        self.params: list[torch.Tensor] = []
        for cin, cout in zip(dims[:-1], dims[1:], strict=True):
            if cfg.init == "uniform":  # Xavier-uniform weights, zero bias
                w_bound, b_bound = math.sqrt(6.0 / (9 * (cin + cout))), 0.0
            else:  # PyTorch's default conv init: U(±1/sqrt(fan_in)) for weights and bias
                w_bound = b_bound = 1.0 / math.sqrt(cin * 9)
            w = torch.cat([torch.rand(cout, cin, 3, 3, generator=g) for g in gens]).mul_(2 * w_bound).sub_(w_bound)
            bias = torch.cat([torch.rand(cout, generator=g) for g in gens]).mul_(2 * b_bound).sub_(b_bound)
            self.params += [w.to(device).requires_grad_(True), bias.to(device).requires_grad_(True)]
        self.width = width

    @property
    def n_layers(self) -> int:
        return len(self.params) // 2

    def __call__(self, z: torch.Tensor, keep: list[torch.Tensor] | None = None) -> torch.Tensor:
        """z: (B, C, H, W) -> (B, C, H, W), image i through network i. ``keep``: one (B, width, H, W) 0/1 mask
        per Dropout position (training); None runs the network without dropout (the estimate)."""
        b, c, h, w = z.shape
        out = z.reshape(1, b * c, h, w)
        masks = iter(keep or ())
        for i in range(self.n_layers):
            if keep is not None and (i + 1) in self.dropout_at:
                out = out * next(masks).reshape(1, -1, h, w) / (1 - self.p)
            out = F.conv2d(out, self.params[2 * i], self.params[2 * i + 1], padding=1, groups=b)
            out = torch.sigmoid(out) if i == self.n_layers - 1 else F.relu(out)
        return out.reshape(b, c, h, w)


def draw_workers(images: int) -> int:
    """Threads that make the per-image draws of a batch: one per image, at most torch's intra-op thread count
    (so ``OMP_NUM_THREADS=1`` keeps RIDE on one core)."""
    return max(1, min(images, torch.get_num_threads()))


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="ride-draws")
    return _POOLS[workers]


if hasattr(os, "register_at_fork"):  # a forked child starts its own threads
    os.register_at_fork(after_in_child=_POOLS.clear)


class _Draws:
    """Per-image random draws in blocks: image i's k-th draw depends on its own generator only.

    The draws are made on the CPU, so an image gets the same noise on every device and in every batch; the
    images' generators run on up to :func:`draw_workers` threads (each generator in one thread, so the values
    do not depend on the threads). For a GPU the block is stacked into pinned memory and copied without
    waiting, so a block costs no synchronisation of the device. On a GPU these draws, not the networks, bound
    RIDE's speed (benchmarks/gpu_suite.py measures it)."""

    def __init__(self, gens: list[torch.Generator], device, workers: int | None = None):
        self.gens, self.device = gens, torch.device(device)
        self.workers = draw_workers(len(gens)) if workers is None else max(1, min(workers, len(gens)))
        self.pin = self.device.type == "cuda"

    def _draw(self, fn, k: int, shape: tuple[int, ...]) -> torch.Tensor:
        one = lambda g: fn(k, *shape, generator=g)
        parts = list(_pool(self.workers).map(one, self.gens)) if self.workers > 1 else [one(g) for g in self.gens]
        if not self.pin:
            return torch.stack(parts, 1).to(self.device)
        out = torch.empty((k, len(self.gens), *shape), pin_memory=True)
        return torch.stack(parts, 1, out=out).to(self.device, non_blocking=True)

    def normal(self, k: int, *shape: int) -> torch.Tensor:
        """(k, B, *shape)."""
        return self._draw(torch.randn, k, shape)

    def uniform(self, k: int, *shape: int) -> torch.Tensor:
        return self._draw(torch.rand, k, shape)


class RIDE(Defense):
    name = "ride"
    randomized = True
    batch_coupled = False

    def __init__(self, cfg: RIDEConfig | None = None, shape=None, seed: int = 0, device=None):
        super().__init__(shape, seed)
        self.cfg = cfg or RIDEConfig()
        self.device = device

    def config(self):
        return {**asdict(self.cfg), "seed": self.seed}

    def _sigma(self, c: int, dev) -> torch.Tensor:
        cfg = self.cfg
        if cfg.sigma_units == "pixel":
            return torch.full((1, c, 1, 1), cfg.sigma, device=dev)
        std = NORM_STD[cfg.arch]
        std = std if len(std) == c else (sum(std) / len(std),) * c
        return cfg.sigma * torch.tensor(std, device=dev).view(1, c, 1, 1)

    def _purify(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        cfg = self.cfg
        dev = self.device or x.device
        b, c, h, w = x.shape
        x_cpu = x.detach().cpu()  # one copy for the batch's seeds, not one per image
        gens = [torch.Generator().manual_seed(image_seed(seed, x_cpu[i])) for i in range(b)]
        net = GroupedFCN(c, cfg, gens, dev)
        opt = torch.optim.Adam(net.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        draws = _Draws(gens, dev)
        sigma = self._sigma(c, dev)
        n_drop = len(net.dropout_at)
        fixed = draws.normal(1, c, h, w)[0] if cfg.input == "fixed" else None  # DIP's input, drawn once
        x_t = x.to(dev).float()
        est = x_t
        block: dict[str, torch.Tensor] = {}
        pos = cfg.noise_block
        for k_t in cfg.per_checkpoint():
            for _ in range(k_t):
                if pos >= cfg.noise_block:  # one block of draws per image for the next noise_block iterations
                    nb = cfg.noise_block
                    block = {
                        "z": draws.normal(nb, c, h, w),
                        "s": draws.normal(nb, c, h, w),
                        "mask": draws.uniform(nb, 1, h, w),
                        "drop": draws.uniform(nb, n_drop, net.width, h, w) if n_drop else None,
                    }
                    pos = 0
                z = fixed if fixed is not None else x_t + sigma * block["z"][pos]
                s = x_t + sigma * block["s"][pos] if cfg.target_noise else x_t
                keep = (
                    []
                    if block["drop"] is None
                    else [(block["drop"][pos][:, j] >= cfg.dropout).float() for j in range(n_drop)]
                )
                sel = (block["mask"][pos] >= cfg.loss_mask).float()  # keep a 1 - p share of the pixels
                pos += 1
                err = (net(z, keep) - s).pow(2) * sel
                # each network sees its own loss only: the mean squared error over its unmasked pixels
                loss = (err.flatten(1).sum(1) / (sel.flatten(1).sum(1) * c).clamp_min(1)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                progress.step()
            with torch.no_grad():
                if fixed is not None:
                    est = net(fixed)
                else:
                    zs = draws.normal(cfg.estimate_samples, c, h, w)
                    est = torch.stack([net(x_t + sigma * zs[j]) for j in range(cfg.estimate_samples)]).mean(0)
                x_t = self._combine(x_t, est)
        out = est if cfg.output == "estimate" else x_t
        return out.to(x.device)

    def _combine(self, x_t: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
        """x^(t) = α x^(t-1) + (1 − α) x_est^(t); with NMS, pixels closer than the image's median ℓ1 distance
        take x_est^(t) outright (supplement, Eq. 14)."""
        cfg = self.cfg
        mixed = cfg.alpha * x_t + (1 - cfg.alpha) * est
        if not cfg.nms:
            return mixed
        d = (x_t - est).abs().sum(1, keepdim=True)  # (B, 1, H, W): ℓ1 over channels per pixel
        tau = d.flatten(1).median(1).values.view(-1, 1, 1, 1)
        return torch.where(d < tau, est, mixed)
