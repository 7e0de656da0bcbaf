"""DefenseGAN, Cowboy, InvGAN and MimicGAN: thin, named configurations of the one projection engine.

============  ===================================================================================
defensegan    f̂ = I, per-image mean squared error, L = 200 SGD steps (lr 10, momentum 0.7, as in the
              DefenseGAN authors' code), R = 10 random restarts, keep the best restart per image
cowboy        DefenseGAN + λ_adv = 1e-3 · log(1 − D(G(z))) (as the MimicGAN paper implements Cowboy), the
              weight taken against the per-image sum of squared errors (the papers' ‖x − G(z)‖²), i.e.
              1e-3 / 784 against DefenseGAN's per-pixel mean on 28 x 28 images
invgan        z0 = I(x) from the data-free encoder, T = 1000 gradient steps on ‖G(z) − x‖₂ (Eq. 6),
              lr 0.01, one restart; BPDA backward the identity (the paper's "e.g., identity function", its
              code's straight-through attack; the stronger of the two backwards measured, docs/RESULTS.md;
              ``bpda_stand_in=encoder`` differentiates x ↦ G(I(x)) instead, the default until 2026-12-04)
mimicgan      learned surrogate (Table 5), z0 = mean of 1000 prior samples, T = 10 × (T1 = 10 surrogate
              RMSProp steps at γs = 1e-2, T2 = 10 latent RMSProp steps at γg = 8e-2), ℓ1 mimicking loss,
              λ_adv = 1e-4; batch-coupled (one surrogate per purified batch, batches of 100). T1, T2, γs, γg
              are MimicGAN-2 §5.2's; neither paper states the outer T (Alg. 1 leaves it open): T = 10 is ours
============  ===================================================================================

DefenseGAN, Cowboy and MimicGAN are randomized (their output depends on the seed: random restarts; MimicGAN's
mean-latent start and surrogate initialisation); InvGAN with one restart is deterministic (:func:`seed_dependent`).
"""

from __future__ import annotations

import torch

from defbench import DefbenchError
from defbench.defenses.base import Defense
from defbench.defenses.projection import Projection, ProjectionConfig, ProjectionEngine, surrogate_output_scale

PAPER_CONFIGS: dict[str, ProjectionConfig] = {
    "defensegan": ProjectionConfig(
        latent_steps=200, restarts=10, optimizer="sgd", lr=10.0, momentum=0.7, loss="mse", init="random"
    ),
    "cowboy": ProjectionConfig(
        latent_steps=200,
        restarts=10,
        optimizer="sgd",
        lr=10.0,
        momentum=0.7,
        loss="mse",
        init="random",
        lambda_adv=1e-3,
        adv_against_sum=True,
    ),
    "invgan": ProjectionConfig(
        latent_steps=1000,
        restarts=1,
        optimizer="sgd",
        lr=0.01,
        momentum=0.0,
        loss="l2",
        init="encoder",
        bpda_stand_in="identity",
    ),
    "mimicgan": ProjectionConfig(
        outer_iters=10,
        surrogate_steps=10,
        latent_steps=10,
        restarts=1,
        optimizer="rmsprop",
        lr=8e-2,
        surrogate_lr=1e-2,
        loss="l1",
        init="mean",
        surrogate="mimic",
        lambda_adv=1e-4,
    ),
}


def seed_dependent(cfg: ProjectionConfig) -> bool:
    """Whether a projection under ``cfg`` depends on its seed, i.e. whether the defense is randomized: random
    restarts, the mean-latent start (the mean of ``mean_samples`` seeded prior draws), a learned surrogate (its
    initialisation is a seeded draw) and the encoder start's jittered extra restarts all are. MimicGAN is
    therefore randomized: BPDA attacks it with EOT and evaluation draws fresh seeds, like DefenseGAN."""
    return cfg.init in ("random", "mean") or cfg.surrogate == "mimic" or (cfg.init == "encoder" and cfg.restarts > 1)


class GANPriorDefense(Defense):
    """x̂ = G(z*) where z* comes from :class:`ProjectionEngine` under ``cfg``."""

    def __init__(
        self, name: str, G, D=None, encoder=None, cfg: ProjectionConfig | None = None, shape=None, seed: int = 0
    ):
        super().__init__(shape, seed)
        self.name = name
        self.cfg = cfg or PAPER_CONFIGS[name]
        if self.cfg.bpda_stand_in == "encoder" and encoder is None:
            raise DefbenchError(f"{name}: bpda_stand_in=encoder needs an encoder (InvGAN's)")
        self.engine = ProjectionEngine(G, D, encoder)
        self.G, self.D, self.encoder = G, D, encoder
        self.randomized = seed_dependent(self.cfg)
        self.batch_coupled = self.cfg.surrogate == "mimic" and self.cfg.surrogate_steps > 0
        self.last: Projection | None = None
        self.models: dict[str, str] = {}  # zoo ids of G / encoder, set by the registry

    def config(self):
        return {"projection": self.cfg.to_dict(), "seed": self.seed, **({"models": self.models} if self.models else {})}

    def project(self, x: torch.Tensor, seed: int | None = None) -> Projection:
        """The full projection result (latents included), for attacks that work through the latent."""
        self.purify(x, seed)
        return self.last

    def _purify(self, x, seed):
        self.last = self.engine.project(x, self.cfg, seed=seed)
        return self.last.x_hat

    def surrogate_scale(self, y: torch.Tensor) -> float | None:
        """With a learned surrogate (MimicGAN): mean |f̂(x̂)| / mean |y| for the last projection of the observations
        ``y``; near 0 when f̂ has collapsed to output (almost) nothing, which the projection then matches with
        near-black images (docs/DEFENSES.md). None for a defense without a learned surrogate."""
        p = self.last
        if p is None or p.surrogate is None or self.cfg.surrogate != "mimic":
            return None
        return surrogate_output_scale(p.x_hat, y, self.cfg, p.surrogate)

    @property
    def has_reparameterization(self) -> bool:
        return self.encoder is not None

    def reparameterize(self, x):
        if self.encoder is None:
            return None
        return self.G(self.encoder(x).clamp(-1, 1))

    def stand_in(self, x):
        # bpda_stand_in: identity (InvGAN's paper config); encoder: x ↦ G(I(x)) (an encoder is checked at
        # construction); auto, the rule of cells stored before the option: G(I(x)) with an encoder, else identity
        if self.cfg.bpda_stand_in == "identity" or self.encoder is None:
            return x
        return self.reparameterize(x)
