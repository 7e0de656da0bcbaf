"""Training GAN priors (``defbench train gan``) and InvGAN encoders (``defbench train encoder``).

GAN recipe (stated in docs/MODELS.md): batch 64, Adam β = (0.5, 0.999), G at 2e-4, D at 1e-4, real labels
smoothed to 0.9, non-saturating G loss. Real and fake images go through D *in one batch*: with Table 4's
BatchNorm in training mode, separate all-real and all-fake batches get the same mean logit, so D cannot
tell them apart and its loss sits at 2 ln 2. After every epoch the generator is scored where the defenses use
it: classifier accuracy on projections of validation images (a seeded slice of the *training* split that the
GAN never trains on; the test split is not an argument of :func:`train_gan`, so model selection cannot see
it), and the spread of classes among samples; the best epoch's checkpoint is kept.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from defbench import DefbenchError
from defbench.datasets import SHAPES, ImageData
from defbench.defenses.priors import Encoder, build_gan, sample_latent
from defbench.defenses.projection import ProjectionConfig, ProjectionEngine
from defbench.metrics import accuracy, share_percent
from defbench.progress import bar as progress_bar
from defbench.seeding import seed_everything

TWO_LN2 = 2 * math.log(2)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: samples of G that the classifier labels after every epoch for the class shares the manifest records
SPREAD_SAMPLES = 2000


def spread_percent(share: float) -> str:
    """A class share of SPREAD_SAMPLES samples in %, written from its count (:func:`defbench.metrics.share_percent`:
    two decimals, cut, so 99 of 2000 reads 4.95 and never 5.0)."""
    return share_percent(share, SPREAD_SAMPLES)


#: the values of ``GANRecipe.feedback_classifier``: the recipe's own classifier, or a classifier preset
FEEDBACK_CLASSIFIERS = ("", "quick", "paper")


@dataclass(frozen=True)
class GANRecipe:
    epochs: int
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 1e-4
    real_label: float = 0.9
    subset_fraction: float = 1.0
    epoch_fraction: float = 1.0  #: fraction of the (subset) training set seen per epoch
    eval_images: int = 100  #: validation images (held out of the training split) projected after every epoch
    eval_restarts: int = 4
    eval_steps: int = 100
    #: weight of the mode-seeking term (Mao et al., CVPR 2019): G's loss gains λ / (ratio + 1e-5), ratio =
    #: mean |G(z_a) − G(z_b)| / mean |z_a − z_b| between the two halves of the batch; 0 = off (neither paper has
    #: it; on in the Fashion-MNIST paper preset only)
    mode_seeking: float = 0.0
    #: spectral normalisation in D instead of its batch norms (SN-GAN, the architectures InvGAN trains with);
    #: off by default, where D follows MimicGAN's appendix Table 4 (batch norm); on in the Fashion-MNIST paper preset
    spectral_norm: bool = False
    #: D's and G's losses: "bce" (the non-saturating GAN of both papers, real labels smoothed to ``real_label``) or
    #: "hinge" (D: relu(1 − l_real) + relu(1 + l_fake), G: −l_fake; SN-GAN's loss, the one InvGAN's code trains
    #: with; ``real_label`` does not apply)
    loss: str = "bce"
    #: PacGAN packing (Lin et al., NeurIPS 2018): D judges ``pack`` images at once, stacked along channels, and
    #: so sees a batch's lack of variety; 1 = off. A packed D cannot score one image, so Cowboy cannot use it
    pack: int = 1
    #: oversampling of one class of the training images: each of its images enters an epoch's pool
    #: ``oversample_weight`` times (a whole number; 1 = off), the pool is shuffled and an epoch takes its first
    #: images, so that class's share of the batches grows about that many times (labels used, where GAN training
    #: otherwise uses none; an experiment on class coverage, docs/MODELS.md, off in every preset)
    oversample_class: int = -1
    oversample_weight: int = 1
    #: class feedback (off at 0): every ``feedback_every`` steps the classifier labels ``feedback_samples``
    #: samples of G, and each class's weight in the batches is multiplied by (1 / (C · share))^class_feedback
    #: (geometric mean rescaled to 1, kept in [1 / feedback_bound, feedback_bound]): a class G draws too rarely
    #: is shown more often, one it draws too often less (labels used; an experiment on class coverage,
    #: docs/MODELS.md). ``feedback_classifier`` names the classifier preset that labels those samples; "" = the
    #: recipe's own classifier, which also counts the shares and selects the epoch, so the classifier that
    #: steers is then the one that checks
    class_feedback: float = 0.0
    feedback_every: int = 50
    feedback_samples: int = 1000
    feedback_bound: float = 4.0
    feedback_classifier: str = ""

    def __post_init__(self):  # here, not in gan_recipe: train_gan takes recipes built directly too
        if self.loss not in ("bce", "hinge"):
            raise DefbenchError(f"unknown GAN loss {self.loss!r}; choose bce or hinge")
        if self.pack < 1 or self.batch_size % self.pack:
            raise DefbenchError(f"pack must be >= 1 and divide the batch size {self.batch_size}; got {self.pack}")
        if not (isinstance(self.oversample_weight, int) and self.oversample_weight >= 1):
            raise DefbenchError(f"oversample_weight must be a whole number >= 1; got {self.oversample_weight!r}")
        if self.oversample_weight > 1 and not (isinstance(self.oversample_class, int) and self.oversample_class >= 0):
            raise DefbenchError(f"oversample_weight {self.oversample_weight} needs oversample_class, a label >= 0")
        if not (_number(self.class_feedback) and 0 <= self.class_feedback <= 4):
            raise DefbenchError(f"class_feedback must be a number in [0, 4] (0 = off); got {self.class_feedback!r}")
        for name in ("feedback_every", "feedback_samples"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise DefbenchError(f"{name} must be a whole number >= 1; got {value!r}")
        if not (_number(self.feedback_bound) and 1 <= self.feedback_bound <= 1000):
            raise DefbenchError(f"feedback_bound must be a number in [1, 1000]; got {self.feedback_bound!r}")
        if self.class_feedback > 0 and self.oversample_weight > 1:
            raise DefbenchError("class_feedback and oversample_weight both set the class mix; choose one")
        if self.feedback_classifier not in FEEDBACK_CLASSIFIERS:
            raise DefbenchError(
                f"feedback_classifier must be a classifier preset (quick or paper) or '' for the recipe's own; "
                f"got {self.feedback_classifier!r}"
            )
        if self.feedback_classifier and not self.class_feedback > 0:
            raise DefbenchError(
                f"feedback_classifier {self.feedback_classifier!r} steers nothing: class_feedback is 0 (to turn "
                "class feedback off, clear feedback_classifier too: feedback_classifier='' in Python, "
                "'--recipe-opt feedback_classifier=' on the command line)"
            )


GAN_RECIPES = {
    ("fmnist", "quick"): GANRecipe(epochs=1, epoch_fraction=0.5, eval_images=50, eval_restarts=2, eval_steps=50),
    # SN-GAN's D (InvGAN §4's architectures), a mode-seeking term on G, and class feedback steered by the quick
    # classifier (the paper classifier, which counts the target, only selects the epoch): the recipe whose main
    # prior projects >= 0.85 with every class at >= 5% in each of eight draws, and whose 80% replicas project
    # >= 0.85 with their smallest class 1.6-2.6 points above the recipe without feedback (docs/MODELS.md,
    # "Class coverage", fifteenth and sixteenth readings)
    ("fmnist", "paper"): GANRecipe(
        epochs=8, spectral_norm=True, mode_seeking=1.0, class_feedback=0.5, feedback_classifier="quick"
    ),
    ("mnist", "quick"): GANRecipe(epochs=1, epoch_fraction=0.5, eval_images=50, eval_restarts=2, eval_steps=50),
    ("mnist", "paper"): GANRecipe(epochs=1),  # 0.984 on DefenseGAN projections after 1 epoch (RESULTS)
    ("cifar10", "quick"): GANRecipe(epochs=1, epoch_fraction=0.3, eval_images=50, eval_restarts=2, eval_steps=50),
    ("cifar10", "paper"): GANRecipe(epochs=25),
}


def gan_recipe(dataset: str, preset: str, **overrides) -> GANRecipe:
    if (dataset, preset) not in GAN_RECIPES:
        if dataset == "imagenet":
            raise DefbenchError("no GAN prior for imagenet; GAN priors exist for fmnist, mnist, cifar10")
        raise DefbenchError(f"unknown preset {preset!r}; choose quick or paper")
    r = GAN_RECIPES[(dataset, preset)]
    r = GANRecipe(**{**asdict(r), **{k: v for k, v in overrides.items() if v is not None}})
    if r.epochs < 1 or not 0 < r.epoch_fraction <= 1:
        raise DefbenchError(
            f"GAN training needs epochs >= 1 and epoch_fraction in (0, 1]; got {r.epochs}, {r.epoch_fraction}"
        )
    return r


@torch.no_grad()
def sample_logits(G, classifier, n: int, gen: torch.Generator, device) -> torch.Tensor:
    """The classifier's logits (on the CPU) for ``n`` samples of G, latents drawn from ``gen`` 500 at a time."""
    out = []
    for start in range(0, n, 500):
        z = sample_latent(min(500, n - start), G.latent_dim, gen, device)
        out.append(classifier(G(z)).cpu())
    return torch.cat(out)


def spread_latents(seed: int) -> torch.Generator:
    """The generator of the latents whose samples :func:`train_gan` counts after each epoch (its ``class_spread``),
    for a reading of the very same samples by another classifier."""
    return torch.Generator().manual_seed(seed + 1)


def class_spread(G, classifier, n: int, gen: torch.Generator, device) -> list[float]:
    """Fraction of each class among ``n`` samples of G, as the classifier labels them."""
    counts = torch.bincount(sample_logits(G, classifier, n, gen, device).argmax(1), minlength=10)[:10].float()
    return (counts / counts.sum()).tolist()


def projection_quality(
    G, classifier, data: ImageData, indices, cfg: ProjectionConfig, seed: int, device, batch: int = 100
) -> dict:
    """Project the clean images ``data[indices]`` onto the range of G; mean reconstruction MSE and the classifier's
    accuracy on the reconstructions G(z*)."""
    engine = ProjectionEngine(G)
    preds, labels, errs, classes = [], [], [], 0
    for i, start in enumerate(range(0, len(indices), batch)):
        x, y = data.get(indices[start : start + batch])
        proj = engine.project(x.to(device), cfg, seed=seed + i)
        with torch.no_grad():
            logits = classifier(proj.x_hat)
        preds.append(logits.argmax(1).cpu())
        classes = logits.shape[1]
        labels.append(y)
        errs.append(proj.error.cpu())
    pred, y = torch.cat(preds), torch.cat(labels)
    return {
        "projection_accuracy": accuracy(pred, y),
        "reconstruction_mse": torch.cat(errs).mean().item(),
        "n": len(indices),
        "config": cfg.to_dict(),
        #: per class c: (images of class c, how many of them the classifier gets right after projection)
        "per_class": [(int((y == c).sum()), int(((pred == y) & (y == c)).sum())) for c in range(classes)],
    }


def mode_seeking_penalty(z: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """1 / (ratio + 1e-5), ratio = mean |G(z_a) − G(z_b)| / mean |z_a − z_b| over the two halves of a batch
    (Mao et al., "Mode Seeking GANs", CVPR 2019): small when distinct latents give distinct images, so G is
    pushed away from mapping many latents to one mode."""
    h = z.shape[0] // 2
    ratio = (fake[:h] - fake[h : 2 * h]).abs().mean() / (z[:h] - z[h : 2 * h]).abs().mean()
    return 1 / (ratio + 1e-5)


def packed(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(B, C, H, W) -> (B / pack, pack * C, H, W): consecutive images stacked along channels (PacGAN)."""
    b, c, h, w = x.shape
    return x.reshape(b // pack, pack * c, h, w)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, recipe: GANRecipe) -> torch.Tensor:
    """D's loss on its logits for real and fake images (a sum of the two halves' means)."""
    if recipe.loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return (
        F.binary_cross_entropy_with_logits(
            torch.cat([real, fake]), torch.cat([torch.full_like(real, recipe.real_label), torch.zeros_like(fake)])
        )
        * 2
    )


def generator_loss(fake: torch.Tensor, recipe: GANRecipe) -> torch.Tensor:
    """G's loss on D's logits for its images: non-saturating (bce) or −mean logit (hinge)."""
    if recipe.loss == "hinge":
        return -fake.mean()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def selection_split(n_train: int, recipe: GANRecipe, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation indices, GAN training indices) into the training split: a seeded permutation gives the first
    ``recipe.eval_images`` to epoch selection and ``subset_fraction`` of the rest to the GAN; disjoint."""
    if not 0 < recipe.eval_images < n_train:
        raise DefbenchError(f"eval_images must be in (0, {n_train}) for a training split of {n_train} images")
    perm = torch.randperm(n_train, generator=gen)
    rest = perm[recipe.eval_images :]
    return perm[: recipe.eval_images].sort().values, rest[: max(1, int(len(rest) * recipe.subset_fraction))]


def training_split(n_train: int, recipe: GANRecipe, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (validation, training) indices :func:`train_gan` uses for ``seed``, without training: the split is
    the first draw of the run's generator (tests/test_training.py checks the two agree)."""
    return selection_split(n_train, recipe, torch.Generator().manual_seed(seed))


def oversampled_pool(subset: torch.Tensor, labels: torch.Tensor, recipe: GANRecipe) -> torch.Tensor:
    """The training indices an epoch draws from: ``subset``, with each image of ``recipe.oversample_class``
    appended ``oversample_weight − 1`` more times (``subset`` itself when off)."""
    if recipe.oversample_weight == 1:
        return subset
    extra = subset[labels[subset] == recipe.oversample_class]
    if len(extra) == 0:
        raise DefbenchError(f"oversample_class {recipe.oversample_class}: no training image has that label")
    return torch.cat([subset, extra.repeat(recipe.oversample_weight - 1)])


def feedback_weights(weights: torch.Tensor, shares: torch.Tensor, gain: float, bound: float = 4.0) -> torch.Tensor:
    """One class-feedback update: each class's weight times (1 / (C · share))^gain, rescaled to a geometric mean
    of 1 (only the ratios between classes matter, and this keeps the weights from drifting to a bound together),
    then kept within [1 / bound, bound] (a share under half a percent counts as half a percent)."""
    log_w = weights.log() + gain * (1.0 / (len(shares) * shares.clamp_min(0.005))).log()
    return (log_w - log_w.mean()).exp().clamp(1 / bound, bound)


def epoch_orders(pool, labels, recipe: GANRecipe, per_epoch: int, gen: torch.Generator, weights=None):
    """The index chunks one epoch trains on. Without class feedback: one chunk, the first ``per_epoch`` of a
    shuffled pool. With it: chunks of ``feedback_every`` batches, each drawn without replacement with
    probability proportional to the image's class weight in ``weights`` at the time the chunk is drawn (the
    caller updates ``weights`` in place between chunks)."""
    if recipe.class_feedback == 0:
        yield pool[torch.randperm(len(pool), generator=gen)[:per_epoch]]
        return
    chunk = recipe.feedback_every * recipe.batch_size
    for start in range(0, per_epoch, chunk):
        p = weights[labels[pool]].double()
        yield pool[torch.multinomial(p, min(chunk, per_epoch - start), replacement=False, generator=gen)]


def gan_step(G, D, opt_g, opt_d, x: torch.Tensor, recipe: GANRecipe, gen: torch.Generator, device):
    """One D step and one G step on the real batch ``x``; returns the two losses (tensors)."""
    b = x.shape[0]
    # --- D step: real and fake in one batch (BatchNorm sees both)
    z = sample_latent(b, G.latent_dim, gen, device)
    fake = G(z)
    logits = D(packed(torch.cat([x, fake.detach()]), recipe.pack))
    loss_d = discriminator_loss(logits[: b // recipe.pack], logits[b // recipe.pack :], recipe)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    # --- G step: non-saturating loss, again through a mixed batch
    loss_g = generator_loss(D(packed(torch.cat([x, fake]), recipe.pack))[b // recipe.pack :], recipe)
    if recipe.mode_seeking > 0:
        loss_g = loss_g + recipe.mode_seeking * mode_seeking_penalty(z, fake)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


def train_gan(
    dataset: str,
    train: ImageData,
    classifier,
    recipe: GANRecipe,
    seed: int,
    device: torch.device,
    progress: bool = True,
    max_steps: int | None = None,
    on_epoch=None,
    each_epoch=None,
    steering=None,
) -> tuple[dict, dict]:
    """Train G and D on ``train`` less its validation slice (:func:`selection_split`); returns ({'G': state,
    'D': state}, metrics) for the epoch with the best projection accuracy on the validation slice (on a tie the
    later epoch).
    ``on_epoch(state, metrics)`` is called after every epoch with the best state so far (the zoo saves it, so
    a killed run keeps its best epoch). ``each_epoch(G, record)`` is called after every epoch's checks with this
    epoch's generator (in eval mode) and its history record, which the callback may add readings to.
    ``steering`` labels class feedback's samples (default: ``classifier``; the caller loads the recipe's
    ``feedback_classifier``, :func:`defbench.harness.models.steering_classifier`); ``classifier`` still selects the
    epoch and counts the recorded shares (``class_spread``); under feedback the record also holds the weights at
    the epoch's end (``class_weights``) and the steering classifier's count that last set them
    (``feedback_spread``, of ``feedback_samples`` samples), so a run steered by another classifier records both
    counts."""
    if recipe.feedback_classifier and steering is None:
        raise DefbenchError(
            f"the recipe steers with the {recipe.feedback_classifier!r} classifier; pass it as steering="
        )
    steering = classifier if steering is None else steering
    gen = seed_everything(seed)
    G, D = build_gan(dataset, spectral_norm=bool(recipe.spectral_norm), pack=recipe.pack)
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=recipe.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=recipe.lr_d, betas=(0.5, 0.999))
    eval_idx, subset = selection_split(len(train), recipe, gen)
    n_sub = len(subset)
    pool = oversampled_pool(subset, train.labels, recipe)
    per_epoch = max(recipe.batch_size, int(n_sub * recipe.epoch_fraction))
    eval_cfg = ProjectionConfig(latent_steps=recipe.eval_steps, restarts=recipe.eval_restarts)
    steps_per_epoch = per_epoch // recipe.batch_size
    total = recipe.epochs * steps_per_epoch if max_steps is None else min(max_steps, recipe.epochs * steps_per_epoch)
    bar = progress_bar(total=total, desc=f"train gan {dataset}", enabled=progress, unit="step")
    d_losses, g_losses, history = [], [], []
    best = None
    t0 = time.time()
    step = 0
    n_classes = int(train.labels.max()) + 1
    weights = torch.ones(n_classes)  # class feedback's weights (unused when it is off)
    feedback_gen = torch.Generator().manual_seed(seed + 2)  # its samples' latents, apart from training's draws
    shares = None  # the steering classifier's last count (None until feedback has counted)
    for epoch in range(recipe.epochs):
        G.train(), D.train()
        for order in epoch_orders(pool, train.labels, recipe, per_epoch, gen, weights):
            for x, _ in train.batches(recipe.batch_size, indices=order):
                if len(x) < recipe.batch_size or step >= total:
                    break
                loss_d, loss_g = gan_step(G, D, opt_g, opt_d, x.to(device), recipe, gen, device)
                d_losses.append(loss_d.item()), g_losses.append(loss_g.item())
                step += 1
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(d=f"{sum(d_losses[-20:]) / 20:.3f}", g=f"{sum(g_losses[-20:]) / 20:.3f}")
            if recipe.class_feedback > 0 and step < total:
                G.eval(), steering.eval()
                shares = torch.tensor(class_spread(G, steering, recipe.feedback_samples, feedback_gen, device))
                weights.copy_(
                    feedback_weights(weights, shares[:n_classes], recipe.class_feedback, recipe.feedback_bound)
                )
                G.train()
        G.eval(), D.eval()
        classifier.eval()
        q = projection_quality(G, classifier, train, eval_idx, eval_cfg, seed, device)
        spread = class_spread(G, classifier, SPREAD_SAMPLES, spread_latents(seed), device)
        rec = {
            "epoch": epoch + 1,
            "steps": step,
            "projection_accuracy": q["projection_accuracy"],
            "reconstruction_mse": q["reconstruction_mse"],
            "class_spread": [round(s, 4) for s in spread],
            "min_class_fraction": round(min(spread), 4),
            "d_loss": sum(d_losses[-50:]) / max(1, len(d_losses[-50:])),
            "g_loss": sum(g_losses[-50:]) / max(1, len(g_losses[-50:])),
        }
        if recipe.class_feedback > 0:
            rec["class_weights"] = [round(float(w), 3) for w in weights]
            if shares is not None:
                rec["feedback_spread"] = [round(float(v), 4) for v in shares]
        if each_epoch is not None:
            each_epoch(G, rec)
        history.append(rec)
        bar.write(
            f"epoch {epoch + 1}: projection accuracy {rec['projection_accuracy']:.3f} on {q['n']} validation images, "
            f"smallest class share {spread_percent(min(spread))}%, D loss {rec['d_loss']:.3f}, G loss {rec['g_loss']:.3f}",  # noqa: E501
            file=sys.stderr,
        )
        if best is None or rec["projection_accuracy"] >= best[0]["projection_accuracy"]:
            best = (rec, {"G": copy.deepcopy(G.state_dict()), "D": copy.deepcopy(D.state_dict())})
        metrics = {
            "best_epoch": best[0]["epoch"],
            "projection_accuracy_during_training": best[0]["projection_accuracy"],
            "history": history,
            "d_loss_trace": d_losses[:: max(1, len(d_losses) // 200)],
            "train_seconds": round(time.time() - t0, 1),
            "train_images": n_sub,
            "selection": {"split": "train", "validation_images": [int(i) for i in eval_idx]},
            "device": str(device),
            "epochs_done": epoch + 1,
            "epochs_planned": recipe.epochs,
        }
        if on_epoch is not None:
            on_epoch(best[1], metrics)
        if step >= total:
            break
    bar.close()
    return best[1], metrics


@dataclass(frozen=True)
class EncoderRecipe:
    iterations: int
    batch_size: int = 64
    lr: float = 2e-4
    eta: float = 0.02  #: hinge margin on the per-image mean ℓ1 error
    lambda_adv: float = 1.0  #: λ1
    lambda_semantic: float = 100.0  #: λ2
    lambda_latent: float = 1.0  #: λ3


ENCODER_RECIPES = {"quick": EncoderRecipe(iterations=400), "paper": EncoderRecipe(iterations=3000)}


def encoder_recipe(preset: str, **overrides) -> EncoderRecipe:
    if preset not in ENCODER_RECIPES:
        raise DefbenchError(f"unknown preset {preset!r}; choose quick or paper")
    return EncoderRecipe(**{**asdict(ENCODER_RECIPES[preset]), **{k: v for k, v in overrides.items() if v is not None}})


def train_encoder(
    dataset: str, G, recipe: EncoderRecipe, seed: int, device, progress: bool = True
) -> tuple[dict, dict]:
    """InvGAN's data-free encoder (Eq. 3-5): only samples of the frozen G are used, never training images."""
    gen = seed_everything(seed)
    c, h, _ = SHAPES[dataset]
    enc = Encoder(c, h, G.latent_dim).to(device)
    _, D = build_gan(dataset)
    D = D.to(device)
    G = G.to(device).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    opt_e = torch.optim.Adam(enc.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    b = recipe.batch_size
    real_t = torch.cat([torch.ones(b, device=device), torch.zeros(b, device=device)])
    bar = progress_bar(total=recipe.iterations, desc=f"train encoder {dataset}", enabled=progress, unit="step")
    t0 = time.time()
    trace = []
    for it in range(recipe.iterations):
        z = sample_latent(b, G.latent_dim, gen, device)
        with torch.no_grad():
            x = G(z)
        z_hat = enc(x)
        x_rec = G(z_hat)
        # D step: real = G(z), fake = G(I(G(z))), one mixed batch
        loss_d = F.binary_cross_entropy_with_logits(D(torch.cat([x, x_rec.detach()])), real_t) * 2
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        semantic = torch.clamp((x - x_rec).abs().flatten(1).mean(1), min=recipe.eta).mean()
        latent = (z - z_hat).pow(2).sum(1).sqrt().mean()
        adv = F.binary_cross_entropy_with_logits(D(torch.cat([x, x_rec]))[b:], torch.ones(b, device=device))
        loss = recipe.lambda_adv * adv + recipe.lambda_semantic * semantic + recipe.lambda_latent * latent
        opt_e.zero_grad(set_to_none=True)
        loss.backward()
        opt_e.step()
        bar.update(1)
        if it % 50 == 0:
            trace.append({"it": it, "semantic": semantic.item(), "latent": latent.item(), "adv": adv.item()})
            bar.set_postfix(sem=f"{semantic.item():.3f}", lat=f"{latent.item():.2f}")
        if (it + 1) % max(1, recipe.iterations // 10) == 0:  # a log line each tenth: off a terminal, no bar draws
            bar.write(
                f"encoder iteration {it + 1}/{recipe.iterations}: semantic {semantic.item():.3f}, latent "
                f"{latent.item():.2f}, adversarial {adv.item():.3f}",
                file=sys.stderr,
            )
    bar.close()
    enc.eval()
    metrics = latent_recovery(G, enc, seed + 1, device)
    metrics.update({"trace": trace, "train_seconds": round(time.time() - t0, 1), "device": str(device)})
    return {"E": enc.state_dict()}, metrics


@torch.no_grad()
def latent_recovery(G, enc, seed: int, device, n: int = 500) -> dict:
    """‖z − I(G(z))‖ for fresh z, against a random guess z' ~ U(-1, 1) (InvGAN's inversion check)."""
    gen = torch.Generator().manual_seed(seed)
    z = sample_latent(n, G.latent_dim, gen, device)
    z_hat = enc(G(z)).clamp(-1, 1)
    guess = sample_latent(n, G.latent_dim, gen, device)
    return {
        "latent_error": (z - z_hat).norm(dim=1).mean().item(),
        "random_guess_latent_error": (z - guess).norm(dim=1).mean().item(),
        "image_mae_GIGz": (G(z) - G(z_hat)).abs().mean().item(),
    }
