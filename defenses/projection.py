"""The projection engine behind every GAN-prior defense (DefenseGAN, Cowboy, InvGAN, MimicGAN).

It minimises, over latents z_j (clipped to [-1, 1] after every step) and optionally a surrogate f̂:

    Σ_j L(y_j, f̂(G(z_j))) + λ_adv Σ_j log(1 − D(G(z_j))) + λ_I Σ_j (‖y_j − G(z_j)‖₁ + ‖f̂(G(z_j)) − G(z_j)‖₁)

with all restarts of all images of a chunk in one latent tensor. Without a surrogate every latent gets the
gradient of its own term only, so chunking never changes the answer (the chunk size is a speed knob chosen
per device). With a learned surrogate (MimicGAN) f̂ is shared by the whole batch: the defense is
batch-coupled and the batch is never chunked. Schedule: ``outer_iters`` × (``surrogate_steps`` f̂ steps then
``latent_steps`` z steps), each parameter set with its own persistent optimiser; without a learned surrogate
the same latent optimiser simply runs ``outer_iters × latent_steps`` steps. Per image the restart with the
lowest reconstruction error ‖y − f̂(G(z))‖² is kept (DefenseGAN's rule).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from defbench import DefbenchError
from defbench.progress import step as progress_step
from defbench.defenses.priors import (
    SURROGATE_ACTIVATIONS,
    SURROGATE_ARCHS,
    MimicSurrogate,
    SpatialMimicSurrogate,
    sample_latent,
)

LOSSES = ("mse", "l2", "l1")
OPTIMIZERS = ("sgd", "rmsprop", "rmsprop-tf", "adam")
INITS = ("random", "mean", "encoder")
SURROGATES = ("none", "mimic", "identity")
SURROGATE_RANGES = ("unit", "signed")
SURROGATE_INITS = ("near-identity", "random", "dcgan-convs")
BPDA_STAND_INS = ("auto", "identity", "encoder")
#: fields added after stores were first written: left out of to_dict() (the store key) at these values
_HASH_STABLE = {
    "surrogate_range": "unit",
    "surrogate_init": "near-identity",
    "surrogate_activation": "relu",
    "surrogate_arch": "mimicgan1",
    "adv_against_sum": False,
    "bpda_stand_in": "auto",
}


@dataclass(frozen=True)
class ProjectionConfig:
    """Settings of one projection; the GAN-prior defenses are named instances of it."""

    outer_iters: int = 1  #: T (MimicGAN outer loop); 1 for plain projections
    latent_steps: int = 200  #: latent steps per outer iteration (DefenseGAN L, InvGAN T, MimicGAN T2)
    surrogate_steps: int = 0  #: surrogate steps per outer iteration (MimicGAN T1)
    restarts: int = 10  #: R random restarts per image
    optimizer: str = "sgd"  #: latent optimiser: sgd | rmsprop (PyTorch's) | rmsprop-tf (TF 1's) | adam
    lr: float = 10.0  #: latent learning rate (γ_g), > 0
    momentum: float = 0.7  #: SGD momentum (DefenseGAN's code: 0.7)
    loss: str = "mse"  #: per-image fidelity: mse (mean squared) | l2 (‖·‖₂) | l1 (‖·‖₁)
    lambda_adv: float = 0.0  #: weight of log(1 − D(G(z)))
    #: λ_adv weighs log(1 − D(G(z))) against the per-image *sum* of squared errors (the papers' ‖x − G(z)‖²),
    #: not their mean: with loss=mse the term is divided by the pixel count, so the objective is the paper's
    #: divided by a constant and SGD steps on the fidelity term stay DefenseGAN's (Cowboy)
    adv_against_sum: bool = False
    lambda_identity: float = 0.0  #: weight of MimicGAN's identity loss
    #: random (U(-1,1)) | mean (mean of ``mean_samples`` prior draws: one start per image, restarts=1 only) | encoder
    init: str = "random"
    mean_samples: int = 1000  #: prior draws behind init=mean (>= 1 there; unused otherwise)
    surrogate: str = "none"  #: none | mimic (learned, Table 5) | identity (mimic surrogate frozen at I)
    surrogate_lr: float = 1e-2  #: γ_s (RMSProp); 0 freezes f̂ at its start
    #: pixel range f̂ sees: unit ([0, 1], our images) | signed ([-1, 1], the paper's TF code: a negative is W = −1)
    surrogate_range: str = "unit"
    #: start of the learned f̂: near-identity (W = 1, mask ~ N(0, 1e-2); our choice) | random (W and the mask drawn
    #: at random, the paper's "random initialisation": MimicSurrogate.randomize_) | dcgan-convs (near-identity with
    #: the convolutions drawn as the DCGAN TensorFlow code does: MimicSurrogate.dcgan_convs_)
    surrogate_init: str = "near-identity"
    #: f̂'s activation after its second conv: relu (Table 5) | tanh (MimicGAN-1's choice for occlusion and
    #: inpainting; a TanH path cannot close, where the ReLU one closes in its first steps in most runs measured)
    surrogate_activation: str = "relu"
    #: the learned f̂'s architecture: mimicgan1 (MimicGAN-1's appendix Table 5) | mimicgan2 (MimicGAN-2's Fig. 3:
    #: a spatial transformer, four convs, the mask; SpatialMimicSurrogate). f̂ = I (surrogate=identity) is the
    #: same exact identity under both
    surrogate_arch: str = "mimicgan1"
    chunk_size: int = 0  #: latents per chunk; 0 = choose per device
    #: what BPDA differentiates in the backward pass (the defense's, not the projection's, setting; here because
    #: the GAN-prior defenses are named instances of this config): identity (InvGAN's paper config) | encoder
    #: (x ↦ G(I(x)), InvGAN's until 2026-12-04) | auto (the rule of every stored cell keyed without this field:
    #: encoder when the defense has one, else identity)
    bpda_stand_in: str = "auto"

    def __post_init__(self):
        for field, value, choices in (
            ("loss", self.loss, LOSSES),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("init", self.init, INITS),
            ("surrogate", self.surrogate, SURROGATES),
            ("surrogate_range", self.surrogate_range, SURROGATE_RANGES),
            ("surrogate_init", self.surrogate_init, SURROGATE_INITS),
            ("surrogate_activation", self.surrogate_activation, SURROGATE_ACTIVATIONS),
            ("surrogate_arch", self.surrogate_arch, SURROGATE_ARCHS),
            ("bpda_stand_in", self.bpda_stand_in, BPDA_STAND_INS),
        ):
            if value not in choices:
                raise DefbenchError(f"projection {field} {value!r} unknown; choose one of: {', '.join(choices)}")
        for field in ("outer_iters", "latent_steps", "surrogate_steps", "mean_samples", "chunk_size"):
            if getattr(self, field) < 0:
                raise DefbenchError(f"projection {field} must be >= 0, got {getattr(self, field)}")
        if self.restarts < 1:
            raise DefbenchError(f"projection restarts must be >= 1, got {self.restarts}")
        for field in ("lr", "momentum", "lambda_adv", "lambda_identity", "surrogate_lr"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise DefbenchError(f"projection {field} must be a finite number >= 0, got {value}")
        if self.lr == 0:
            raise DefbenchError("projection lr must be > 0 (latent_steps=0 leaves the starting latents as they are)")
        if self.adv_against_sum and self.loss != "mse":
            raise DefbenchError("adv_against_sum applies to loss=mse only (l1 and l2 are per-image sums or norms)")
        if self.surrogate_arch == "mimicgan2" and self.surrogate_init != "near-identity":
            raise DefbenchError(
                f"surrogate_init={self.surrogate_init} draws Table 5's W and convs; the mimicgan2 surrogate starts "
                "near the identity only (surrogate_init=near-identity)"
            )
        if self.surrogate == "mimic" and self.restarts != 1:
            raise DefbenchError("a learned surrogate is shared by the batch; use restarts=1 with surrogate=mimic")
        if self.init == "mean" and self.restarts != 1:
            raise DefbenchError(
                f"init=mean starts every restart from the same latent (the mean of mean_samples prior draws), so "
                f"restarts={self.restarts} would repeat one projection; use restarts=1, or init=random for restarts"
            )
        if self.init == "mean" and self.mean_samples < 1:
            raise DefbenchError(
                f"init=mean averages mean_samples prior draws: mean_samples must be >= 1, got {self.mean_samples}"
            )

    @property
    def total_latent_steps(self) -> int:
        return self.outer_iters * self.latent_steps

    def with_(self, **kw) -> "ProjectionConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in _HASH_STABLE.items():
            if d[k] == v:
                del d[k]
        return d


def surrogate_input(g: torch.Tensor, cfg: ProjectionConfig) -> torch.Tensor:
    """Images ``g`` in [0, 1] as f̂ sees them: in the range ``cfg.surrogate_range`` names."""
    return g * 2 - 1 if cfg.surrogate_range == "signed" else g


def observed(g: torch.Tensor, cfg: ProjectionConfig, surrogate: nn.Module | None) -> torch.Tensor:
    """f̂(g): what the projection compares with the observation, for images ``g`` in [0, 1] (G's output)."""
    if surrogate is None:
        return g
    out = surrogate(surrogate_input(g, cfg))
    return (out + 1) / 2 if cfg.surrogate_range == "signed" else out


@torch.no_grad()
def surrogate_output_scale(x_hat: torch.Tensor, y: torch.Tensor, cfg: ProjectionConfig, surrogate: nn.Module) -> float:
    """mean |f̂(x̂)| / mean |y| for projections ``x_hat`` of observations ``y``: near 0 when f̂ has collapsed to
    output (almost) nothing, which the projection then matches with near-black images (docs/DEFENSES.md)."""
    est = observed(x_hat, cfg, surrogate)
    return (est.abs().mean() / y.to(est.device).abs().mean().clamp_min(1e-12)).item()


@dataclass
class Projection:
    """Result of projecting a batch: x̂ = f-free reconstruction G(z*), the chosen latents and errors."""

    x_hat: torch.Tensor
    z: torch.Tensor
    error: torch.Tensor  #: per image ‖y − f̂(G(z*))‖² / pixels
    surrogate: nn.Module | None = None


#: latents per chunk on a CPU: chunks of 50-200 latents ran within ±10% of each other on 2 cores and one
#: huge batch about 2x slower (docs/RESULTS.md, purification throughput); cache-sized chunks win there
CPU_CHUNK = 200
#: latents per chunk on a GPU with room for them: thousands of latents per kernel to fill the device (the
#: paper's batch of 100 images x 10 restarts, 1000 latents, goes in one chunk); not yet measured on a GPU:
#: benchmarks/gpu_suite.py sweeps the chunk size
GPU_CHUNK = 8192
#: device memory one latent may take during a latent step, a generous bound: autograd keeps 0.1 MiB of
#: activations per latent for the Fashion-MNIST G, 0.7 MiB for the CIFAR-10 G and D (Cowboy); doubled for
#: the gradients in flight
GPU_BYTES_PER_LATENT = 2 << 20
#: share of the device's memory the chunk may take (the models, the classifier and the attack need the rest)
GPU_MEMORY_SHARE = 0.25


def default_chunk(device: torch.device | str, total_memory: int | None = None) -> int:
    """Latents per chunk when ``ProjectionConfig.chunk_size`` is 0 (the default), chosen per device.

    * CPU (and any device but CUDA): :data:`CPU_CHUNK` (200), the value measured fastest on CPU.
    * CUDA: :data:`GPU_CHUNK` (8192) latents, or fewer on a small card: at most
      :data:`GPU_MEMORY_SHARE` of the device's memory at :data:`GPU_BYTES_PER_LATENT` each, never below
      :data:`CPU_CHUNK`. ``total_memory`` (bytes) stands in for the device's own figure (tests).

    Without a learned surrogate chunking never changes the answer, so this is a speed knob only; a
    batch-coupled projection (MimicGAN) is never chunked whatever this returns."""
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_CHUNK
    if total_memory is None:
        total_memory = torch.cuda.get_device_properties(device).total_memory
    fits = int(total_memory * GPU_MEMORY_SHARE) // GPU_BYTES_PER_LATENT
    return max(CPU_CHUNK, min(GPU_CHUNK, fits))


def per_image_loss(kind: str, diff: torch.Tensor) -> torch.Tensor:
    flat = diff.flatten(1)
    if kind == "mse":
        return flat.pow(2).mean(1)
    if kind == "l2":
        return flat.pow(2).sum(1).add(1e-12).sqrt()
    return flat.abs().sum(1)


def _optimizer(kind: str, params, lr: float, momentum: float) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if kind == "rmsprop-tf":
        return tf_rmsprop(params, lr)
    return torch.optim.Adam(params, lr=lr)


def tf_rmsprop(params, lr: float) -> torch.optim.RMSprop:
    """PyTorch's RMSprop set up as TensorFlow 1's ``tf.train.RMSPropOptimizer`` defaults, which the MimicGAN
    authors' TensorFlow code used: decay 0.9, ε 1e-10 and the mean-square accumulator started at 1 (PyTorch
    starts it at 0 with decay 0.99, so its first steps are about 10·lr per coordinate whatever the gradient's
    size — a jump of 0.8 in a latent box of [-1, 1] at MimicGAN's γ_g = 8e-2)."""
    params = list(params)
    opt = torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10)
    for p in params:
        opt.state[p] = {
            "step": torch.tensor(0.0),
            "square_avg": torch.ones_like(p, memory_format=torch.preserve_format),
        }
    return opt


class ProjectionEngine:
    """Batched latent optimisation against a frozen generator ``G`` (and discriminator ``D`` / encoder)."""

    def __init__(self, G: nn.Module, D: nn.Module | None = None, encoder: nn.Module | None = None):
        self.G, self.D, self.encoder = (
            G.eval(),
            (D.eval() if D is not None else None),
            (encoder.eval() if encoder is not None else None),
        )
        for m in (self.G, self.D, self.encoder):
            if m is not None:
                for p in m.parameters():
                    p.requires_grad_(False)
        self.latent_dim = G.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def initial_latents(self, y: torch.Tensor, cfg: ProjectionConfig, gen: torch.Generator) -> torch.Tensor:
        n = y.shape[0]
        if cfg.init == "random":
            z = sample_latent(n * cfg.restarts, self.latent_dim, gen).view(n, cfg.restarts, -1)
        elif cfg.init == "mean":
            mean = sample_latent(cfg.mean_samples, self.latent_dim, gen).mean(0)
            z = mean.expand(n, cfg.restarts, -1).clone()
        else:
            if self.encoder is None:
                raise DefbenchError("init=encoder needs an InvGAN encoder (defbench train encoder --dataset D)")
            with torch.no_grad():
                z0 = self.encoder(y).cpu()
            z = z0.unsqueeze(1).expand(n, cfg.restarts, -1).clone()
            if cfg.restarts > 1:  # extra restarts: encoder guess plus small jitter
                z[:, 1:] += 0.1 * torch.randn(z[:, 1:].shape, generator=gen)
        return z.clamp_(-1, 1)

    def project(self, y: torch.Tensor, cfg: ProjectionConfig, seed: int = 0) -> Projection:
        """Project the batch ``y`` (N, C, H, W) in [0, 1] onto the range of G under ``cfg``."""
        dev = self.device
        gen = torch.Generator().manual_seed(seed)
        y = y.to(dev)
        z_all = self.initial_latents(y, cfg, gen)  # (N, R, d) on CPU: independent of chunking
        surrogate = None
        if cfg.surrogate != "none":
            c, s = y.shape[1], y.shape[-1]
            arch = (
                SpatialMimicSurrogate
                if cfg.surrogate == "mimic" and cfg.surrogate_arch == "mimicgan2"
                else MimicSurrogate
            )
            # nn.Conv2d's default init draws from the global RNG before the seeded init overwrites it: leave the
            # global RNG as it was (a purification has no effect on the draws of what runs after it)
            with torch.random.fork_rng(devices=[]):
                surrogate = arch(c, s, generator=gen, activation=cfg.surrogate_activation).to(dev)
            if cfg.surrogate == "identity":
                surrogate.make_identity()
            elif cfg.surrogate_init == "random":  # drawn after the latents: their draw stays the default's
                surrogate.randomize_(gen)
            elif cfg.surrogate_init == "dcgan-convs":
                surrogate.dcgan_convs_(gen)
        n, r = y.shape[0], cfg.restarts
        chunk = cfg.chunk_size or default_chunk(dev)
        imgs_per_chunk = n if cfg.surrogate == "mimic" else max(1, chunk // r)
        xs, zs, errs = [], [], []
        for start in range(0, n, imgs_per_chunk):
            yc = y[start : start + imgs_per_chunk]
            zc = z_all[start : start + imgs_per_chunk].to(dev)
            x_hat, z, err = self._project_chunk(yc, zc, cfg, surrogate)
            xs.append(x_hat), zs.append(z), errs.append(err)
        return Projection(torch.cat(xs), torch.cat(zs), torch.cat(errs), surrogate)

    def _terms(
        self, y_rep: torch.Tensor, z: torch.Tensor, cfg: ProjectionConfig, surrogate: nn.Module | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-latent objective, per-latent reconstruction error)."""
        g = self.G(z)
        est = observed(g, cfg, surrogate)
        fid = per_image_loss(cfg.loss, y_rep - est)
        obj = fid
        if cfg.lambda_adv:
            # log(1 − D(G(z))) with D's logit l: log(1 − σ(l)) = −softplus(l)
            lam = cfg.lambda_adv / y_rep[0].numel() if cfg.adv_against_sum else cfg.lambda_adv
            obj = obj + lam * (-F.softplus(self.D(g)))
        if cfg.lambda_identity:
            ident = (y_rep - g).flatten(1).abs().sum(1) + (est - g).flatten(1).abs().sum(1)
            obj = obj + cfg.lambda_identity * ident
        err = (y_rep - est).detach().flatten(1).pow(2).mean(1)
        return obj, err

    def _project_chunk(self, y, z0, cfg, surrogate):
        n, r, d = z0.shape
        y_rep = y.repeat_interleave(r, dim=0)
        z = z0.reshape(n * r, d).clone().requires_grad_(True)
        if cfg.lambda_adv and self.D is None:
            raise DefbenchError("lambda_adv > 0 needs the GAN's discriminator")
        if cfg.lambda_adv and getattr(self.D, "pack", 1) > 1:
            raise DefbenchError(
                f"lambda_adv > 0 scores each image with D, but this GAN's D judges packs of {self.D.pack} images "
                "(PacGAN); train a prior with pack=1 for Cowboy"
            )
        z_opt = _optimizer(cfg.optimizer, [z], cfg.lr, cfg.momentum)
        learn_f = cfg.surrogate == "mimic" and cfg.surrogate_steps > 0
        # γ_s with RMSProp (Alg. 1): TF 1's flavour when the latents use it
        s_kind = "rmsprop-tf" if cfg.optimizer == "rmsprop-tf" else "rmsprop"
        s_opt = _optimizer(s_kind, surrogate.parameters(), cfg.surrogate_lr, 0.0) if learn_f else None
        for _ in range(cfg.outer_iters):
            if learn_f:
                zd = z.detach()
                for _ in range(cfg.surrogate_steps):
                    s_opt.zero_grad(set_to_none=True)
                    obj, _ = self._terms(y_rep, zd, cfg, surrogate)
                    obj.sum().backward()
                    s_opt.step()
                    progress_step()
            for _ in range(cfg.latent_steps):
                z_opt.zero_grad(set_to_none=True)
                obj, _ = self._terms(y_rep, z, cfg, surrogate)
                (grad,) = torch.autograd.grad(obj.sum(), z)
                z.grad = grad
                z_opt.step()
                with torch.no_grad():
                    z.clamp_(-1, 1)
                progress_step()
        with torch.no_grad():
            _, err = self._terms(y_rep, z, cfg, surrogate)
            err = err.view(n, r)
            best = err.argmin(1)
            rows = torch.arange(n, device=err.device)  # a CPU index into a device tensor would be copied over
            z_best = z.detach().view(n, r, d)[rows, best]
            x_hat = self.G(z_best)
        return x_hat, z_best, err[rows, best]
