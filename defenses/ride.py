"""RIDE: Robust Iterative Data Estimation (Lin, Pfister, Zhang), Alg. 1-2, one network per input.

Per image a fresh 8-layer fully convolutional network h (3x3 convs, 32 filters, ReLU, sigmoid output for
images in (0, 1), no BatchNorm) is fitted as a denoising autoencoder: each iteration draws an input
z ~ N(x^(t-1), σ²) and a target s ~ N(x^(t-1), σ²) (n = 1) and takes an Adam step (lr 1e-4, weight decay
1e-4) on ‖s − h(z)‖². After every K/T iterations the estimate moves: x^(t) = α x^(t-1) + (1 − α) x_est^(t),
with x_est^(t) = E_z[h(z)] (averaged over ``estimate_samples`` draws). Defaults σ = 0.5, K = 2000,
T = 5, α = 0.9 are the paper's (its public code ships other defaults; we follow the paper). We read K as
the total number of DAE iterations, split over the T checkpoints.

Batched: the networks of all images in a batch are one grouped-convolution network (groups = batch size),
so a batch runs as one tensor program, never a Python loop over images. Adam is element-wise, so one Adam
over the stacked weights is exactly one Adam per image. Every image draws its initial weights and noise from
its own generator, seeded by (seed, hash of the image), so purifying an image alone or inside any batch gives
the same result.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from defbench import DefbenchError
from defbench.defenses.base import Defense


@dataclass(frozen=True)
class RIDEConfig:
    layers: int = 8
    width: int = 32
    sigma: float = 0.5
    iterations: int = 2000       #: K, total DAE iterations
    checkpoints: int = 5         #: T
    alpha: float = 0.9
    lr: float = 1e-4
    weight_decay: float = 1e-4
    estimate_samples: int = 8    #: draws of z used for E_z[h(z)] at each checkpoint
    noise_block: int = 50        #: iterations of noise drawn per generator call

    def __post_init__(self):
        if self.layers < 2 or self.width < 1 or self.iterations < 0 or self.checkpoints < 1:
            raise DefbenchError(f"invalid RIDE config {self}")
        if not 0 <= self.alpha <= 1:
            raise DefbenchError(f"RIDE alpha must be in [0, 1], got {self.alpha}")


def image_seed(seed: int, img: torch.Tensor) -> int:
    digest = hashlib.sha256(img.detach().cpu().float().numpy().tobytes()).digest()
    return (int.from_bytes(digest[:8], "little") ^ (seed * 0x9E3779B97F4A7C15)) % (2**63 - 1)


class GroupedFCN:
    """B independent FCNs as one grouped-convolution network; weights[i] has shape (B*out, in, 3, 3)."""

    def __init__(self, channels: int, cfg: RIDEConfig, gens: list[torch.Generator], device):
        self.b = len(gens)
        dims = [channels] + [cfg.width] * (cfg.layers - 1) + [channels]
        self.params: list[torch.Tensor] = []
        for cin, cout in zip(dims[:-1], dims[1:]):
            bound = 1.0 / (cin * 9) ** 0.5  # PyTorch's default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            w = torch.cat([torch.rand(cout, cin, 3, 3, generator=g) for g in gens]).mul_(2 * bound).sub_(bound)
            bias = torch.cat([torch.rand(cout, generator=g) for g in gens]).mul_(2 * bound).sub_(bound)
            self.params += [w.to(device).requires_grad_(True), bias.to(device).requires_grad_(True)]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, C, H, W) -> (B, C, H, W), image i through network i."""
        b, c, h, w = z.shape
        out = z.reshape(1, b * c, h, w)
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            out = F.conv2d(out, self.params[2 * i], self.params[2 * i + 1], padding=1, groups=b)
            out = torch.sigmoid(out) if i == n_layers - 1 else F.relu(out)
        return out.reshape(b, c, h, w)


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

    def _purify(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        cfg = self.cfg
        dev = self.device or x.device
        b, c, h, w = x.shape
        gens = [torch.Generator().manual_seed(image_seed(seed, x[i])) for i in range(b)]
        net = GroupedFCN(c, cfg, gens, dev)
        opt = torch.optim.Adam(net.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        x_t = x.to(dev).float()
        per_ckpt = [cfg.iterations // cfg.checkpoints + (1 if i < cfg.iterations % cfg.checkpoints else 0)
                    for i in range(cfg.checkpoints)]
        noise, pos = None, 0

        def draw(k: int) -> torch.Tensor:
            """k noise images per image from its own generator: (k, B, C, H, W)."""
            return torch.stack([torch.randn(k, c, h, w, generator=g) for g in gens], 1).to(dev)

        for k_t in per_ckpt:
            for _ in range(k_t):
                if noise is None or pos >= noise.shape[0]:
                    noise, pos = draw(cfg.noise_block * 2), 0
                z = x_t + cfg.sigma * noise[pos]
                s = x_t + cfg.sigma * noise[pos + 1]
                pos += 2
                loss = (net(z) - s).pow(2).flatten(1).mean(1).sum()  # each network sees its own loss only
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                draws = draw(cfg.estimate_samples)
                est = torch.stack([net(x_t + cfg.sigma * draws[j]) for j in range(cfg.estimate_samples)]).mean(0)
                x_t = cfg.alpha * x_t + (1 - cfg.alpha) * est
        return x_t.to(x.device)
