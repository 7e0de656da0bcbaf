"""Threat models compose rather than multiply: each is the same library attack handed a different model.

==========  ==========================================================================================
graybox     the classifier f alone; the defense is applied afterwards (the papers' main setting)
bpda        f ∘ defense.bpda: forward purifies, backward uses the defense's stand-in (the identity unless
            a defense says otherwise: InvGAN with ``bpda_stand_in=encoder`` differentiates x ↦ G(I(x)));
            randomized defenses average the probabilities of ``eot``
            purifications with explicitly derived seeds (EOT);
            batch-coupled defenses see the whole attacked batch at once
reparam     f ∘ G ∘ I (InvGAN §3.4): gradients through the encoder and generator
gan-aware   f ∘ G on the latent u = (z + 1) / 2 ∈ [0, 1]^d, started at the defense's projection z*; the
            result G(z_adv) is pulled back into the ε-ball around x (MimicGAN's "obfuscated" attack); the
            attack's ε is first of all a latent-space budget (on u, i.e. 2ε on z), which the tables say
==========  ==========================================================================================
"""

from __future__ import annotations

import math

import torch
from torch import nn

from defbench import DefbenchError
from defbench.attacks.base import image_violations, perturb, settle_output
from defbench.seeding import derive_seed

THREATS = ("graybox", "bpda", "reparam", "gan-aware")


def check_threat(name: str) -> str:
    key = name.strip().lower()
    if key not in THREATS:
        raise DefbenchError(f"unknown threat model {name!r}; choose one of: {', '.join(THREATS)}")
    return key


class BPDAModel(nn.Module):
    """f ∘ defense.bpda, with EOT over ``eot`` purifications for a randomized defense.

    Every purification gets an explicit seed ``derive_seed(seed, call, draw)``: ``seed`` is set by the caller per
    cell and batch (:meth:`reseed`, which also restarts the call counter), ``call`` counts this model's forward
    passes since then and ``draw`` is the EOT draw. A cell's draws thus depend on (run seed, cell, batch) only,
    never on what ran before. With ``eot`` > 1 the output is log of the mean of the draws' softmax
    probabilities (Athalye et al. 2018's EOT: a cross-entropy on it is the loss of the expected probability,
    and its argmax the expected prediction); with ``eot`` = 1 the classifier's logits are returned unchanged.
    """

    def __init__(self, classifier: nn.Module, defense, eot: int = 1, seed: int = 0):
        super().__init__()
        self.classifier, self.defense, self.eot = classifier, defense, max(1, eot)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Start a new stream of draws (per cell and batch)."""
        self.seed, self.calls = int(seed), 0

    def forward(self, x):
        call = self.calls
        self.calls += 1
        logits = [self.classifier(self.defense.bpda(x, seed=derive_seed(self.seed, call, j))) for j in range(self.eot)]
        if self.eot == 1:
            return logits[0]
        logp = torch.stack([lg.log_softmax(1) for lg in logits])
        return torch.logsumexp(logp, 0) - math.log(self.eot)


class ReparamModel(nn.Module):
    """logits = f(G(I(x))) with I(x) clipped to the latent box."""

    def __init__(self, classifier: nn.Module, G: nn.Module, encoder: nn.Module):
        super().__init__()
        self.classifier, self.G, self.encoder = classifier, G, encoder

    def forward(self, x):
        return self.classifier(self.G(self.encoder(x).clamp(-1, 1)))


class ReparamPathModel(nn.Module):
    """logits = f(R(x)) for a defense's own ``reparameterize`` R (a user's or a plugin's encoder-generator path)."""

    def __init__(self, classifier: nn.Module, defense):
        super().__init__()
        self.classifier, self.defense = classifier, defense

    def forward(self, x):
        return self.classifier(self.defense.reparameterize(x))


class LatentModel(nn.Module):
    """logits = f(G(2u − 1)) for u ∈ [0, 1]^d: lets any image-space library attack work on the latent."""

    def __init__(self, classifier: nn.Module, G: nn.Module):
        super().__init__()
        self.classifier, self.G = classifier, G

    def forward(self, u):
        return self.classifier(self.G(u.flatten(1) * 2 - 1))


def gan_aware(attack, classifier, defense, x, y, seed: int) -> torch.Tensor:
    """Run ``attack`` on f ∘ G from the defense's own projection of x; return x_adv in image space: G(u*), and for
    a bounded attack clipped to ℓ∞ ε of x in pixels (the same ε as the latent budget)."""
    G = getattr(defense, "G", None)
    if G is None or not hasattr(defense, "project"):
        raise DefbenchError(f"threat gan-aware needs a GAN-prior defense, not {defense.name}")
    proj = defense.project(x, seed=seed)
    u = ((proj.z + 1) / 2).clamp(0, 1).detach()
    u4 = u.view(u.shape[0], 1, 1, -1)  # library attacks want 4-d inputs
    u_adv = perturb(attack, LatentModel(classifier, G), u4, y)
    with torch.no_grad():
        g = G(u_adv.flatten(1) * 2 - 1)
    # the image that is scored is G's, not the latent checked above: finite and in [0, 1] too
    found = image_violations(x, g)
    attack.last_violations = [*attack.last_violations, *found]
    g = settle_output(attack, x, g, found, who=f"{attack.who} under threat gan-aware: its latent's image G(u)")
    if attack.bounded and attack.eps is not None:
        return (x + (g - x).clamp(-attack.eps, attack.eps)).clamp(0, 1)
    return g.clamp(0, 1)


def attack_model(
    threat: str, classifier: nn.Module, defense, eot: int = 1, G=None, encoder=None, seed: int = 0
) -> nn.Module:
    """The model a library attack is handed under ``threat`` (not for gan-aware, see :func:`gan_aware`).
    ``seed`` starts the BPDA model's stream of purification seeds (see :class:`BPDAModel`)."""
    if threat == "graybox":
        return classifier
    if threat == "bpda":
        return BPDAModel(classifier, defense, eot if defense.randomized else 1, seed=seed)
    if threat == "reparam":
        G = G if G is not None else getattr(defense, "G", None)
        encoder = encoder if encoder is not None else getattr(defense, "encoder", None)
        if (G is None or encoder is None) and getattr(defense, "has_reparameterization", False):
            return ReparamPathModel(classifier, defense)
        if G is None or encoder is None:
            raise DefbenchError("threat reparam needs the dataset's GAN and InvGAN encoder")
        return ReparamModel(classifier, G, encoder)
    raise DefbenchError(f"threat {threat!r} has no single attack model")
