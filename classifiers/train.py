"""Training the papers' classifiers (``defbench train classifier``)."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from defbench import DefbenchError, metrics
from defbench.classifiers.models import ARCHS, Classifier, build_classifier
from defbench.datasets import ImageData
from defbench.progress import bar as progress_bar
from defbench.seeding import seed_everything


@dataclass(frozen=True)
class ClassifierRecipe:
    epochs: int
    batch_size: int = 128
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    augment: bool = False  # random crop (pad 4) + horizontal flip, CIFAR only
    #: the crop's offset drawn per image (the presets, as torchvision's RandomCrop) or, False, once per batch (the
    #: code until 2026-12-06: a model trained then reads as trained so, and the zoo names the difference)
    crop_per_image: bool = False
    train_fraction: float = 1.0
    #: None: the paper's architecture of the dataset (``PAPER_ARCH``); else a name ``build_classifier`` knows
    arch: str | None = None
    #: ``one-cycle`` (the presets) or ``constant`` (cleverhans' tutorials: Adam at a fixed rate)
    schedule: str = "one-cycle"


#: (dataset, preset) -> recipe. 'paper' reaches the papers' clean accuracies; 'quick' trains in about a minute
#: or two on 2 CPU cores for smoke runs.
RECIPES = {
    ("fmnist", "quick"): ClassifierRecipe(epochs=2),
    ("fmnist", "paper"): ClassifierRecipe(epochs=15),
    ("mnist", "quick"): ClassifierRecipe(epochs=1),
    ("mnist", "paper"): ClassifierRecipe(epochs=8),
    ("cifar10", "quick"): ClassifierRecipe(epochs=1, train_fraction=0.2, augment=True, crop_per_image=True),
    ("cifar10", "paper"): ClassifierRecipe(
        epochs=200, optimizer="sgd", lr=0.1, weight_decay=5e-4, augment=True, crop_per_image=True
    ),
}


def recipe_for(dataset: str, preset: str, **overrides) -> ClassifierRecipe:
    if (dataset, preset) not in RECIPES:
        if dataset == "imagenet":
            raise DefbenchError("the ImageNet classifier is torchvision's pretrained ResNet-50; it is not trained here")
        raise DefbenchError(f"unknown preset {preset!r}; choose quick or paper")
    r = RECIPES[(dataset, preset)]
    r = ClassifierRecipe(**{**asdict(r), **{k: v for k, v in overrides.items() if v is not None}})
    if r.epochs < 1:
        raise DefbenchError(f"--epochs must be >= 1, got {r.epochs}")
    if r.schedule not in ("one-cycle", "constant"):
        raise DefbenchError(f"unknown learning-rate schedule {r.schedule!r}; choose one-cycle or constant")
    if r.optimizer not in ("adam", "sgd"):  # anything but adam trained with SGD
        raise DefbenchError(f"unknown optimizer {r.optimizer!r}; choose adam or sgd")
    if not 0 < r.train_fraction <= 1:
        raise DefbenchError(f"train_fraction must be in (0, 1], got {r.train_fraction}")
    if r.arch is not None and r.arch not in ARCHS:
        raise DefbenchError(f"unknown classifier architecture {r.arch!r}; choose one of: {', '.join(ARCHS)}")
    return r


def _augment(x: torch.Tensor, gen: torch.Generator, per_image: bool = True) -> torch.Tensor:
    """The CIFAR recipe's augmentation, as torchvision's RandomHorizontalFlip and RandomCrop(padding=4, reflect):
    a left-right flip with probability 1/2 per image, then a crop at a random offset of the 4-pixel reflect-padded
    image, drawn per image (``per_image=False``: one offset for the batch, as the code drew it until 2026-12-06)."""
    n, c, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    if not per_image:
        dx, dy = torch.randint(0, 9, (2,), generator=gen).tolist()
        return padded[:, :, dy : dy + h, dx : dx + w]
    dy, dx = torch.randint(0, 9, (2, n), generator=gen).to(x.device)
    ar = lambda k: torch.arange(k, device=x.device)
    rows = (dy.view(n, 1) + ar(h)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + ar(w)).view(n, 1, 1, w)
    return padded[ar(n).view(n, 1, 1, 1), ar(c).view(1, c, 1, 1), rows, cols]


@torch.no_grad()
def model_accuracy(
    model: Classifier, data: ImageData, device: torch.device, batch_size: int = 500, indices=None
) -> float:
    """Clean accuracy of ``model`` on ``data`` (or its ``indices``), by :func:`defbench.metrics.accuracy`."""
    model.eval()
    preds, labels = [], []
    for x, y in data.batches(batch_size, indices=indices):
        preds.append(model(x.to(device)).argmax(1).cpu())
        labels.append(y)
    return metrics.accuracy(torch.cat(preds), torch.cat(labels)) if preds else math.nan


def train_classifier(
    dataset: str,
    train: ImageData,
    test: ImageData,
    recipe: ClassifierRecipe,
    seed: int,
    device: torch.device,
    progress: bool = True,
) -> tuple[Classifier, dict]:
    gen = seed_everything(seed)
    model = build_classifier(dataset, recipe.arch).to(device)
    n_train = int(len(train) * recipe.train_fraction)
    idx = torch.randperm(len(train), generator=gen)[:n_train]
    if recipe.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay, nesterov=True
        )
    steps = recipe.epochs * ((n_train + recipe.batch_size - 1) // recipe.batch_size)
    if recipe.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    bar = progress_bar(total=steps, desc=f"train classifier {dataset}", enabled=progress, unit="step")
    history = []
    for epoch in range(recipe.epochs):
        model.train()
        for x, y in train.batches(recipe.batch_size, shuffle=True, seed=seed * 1000 + epoch, indices=idx):
            if recipe.augment:
                x = _augment(x, gen, recipe.crop_per_image)
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        acc = model_accuracy(model, test, device)
        history.append({"epoch": epoch + 1, "test_accuracy": acc})
        bar.write(f"epoch {epoch + 1}/{recipe.epochs}: clean test accuracy {acc:.4f}", file=sys.stderr)
    bar.close()
    metrics = {
        "clean_test_accuracy": history[-1]["test_accuracy"],
        "history": history,
        "train_seconds": round(time.time() - t0, 1),
        "train_images": n_train,
        "device": str(device),
    }
    return model.eval(), metrics
