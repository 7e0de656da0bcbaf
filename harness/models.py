"""Getting trained models: from the zoo, or trained on demand (with a progress bar), or a clear error with
the exact command that builds them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import warnings
from typing import Any

import numpy as np
import torch

from defbench import DefbenchError
from defbench.classifiers.models import Classifier, build_classifier, load_imagenet_resnet50
from defbench.classifiers.train import recipe_for, train_classifier
from defbench.datasets import SHAPES, canonical_name
from defbench.defenses import registry as defense_registry
from defbench.defenses.base import Defense
from defbench.defenses.priors import Encoder, build_gan, sample_latent
from defbench.defenses.train_prior import encoder_recipe, gan_recipe, train_encoder, train_gan
from defbench.harness import zoo
from defbench.harness.data import load_dataset
from defbench.harness.identity import array_digest, methods_sha256, weights_sha256  # noqa: F401 -- re-exported
from defbench.harness.zoo import gan_tag, parse_gan_tag, tag_flags  # noqa: F401 -- GAN tags, re-exported
from defbench.seeding import DEFAULT_SEED

PRESETS = ("quick", "paper")


def _fetch(mid: str, build, train_missing: bool) -> tuple[dict, dict]:
    """(state, manifest) of zoo model ``mid``, calling ``build()`` first when it is missing and allowed. The
    zoo's lock of ``mid`` is held throughout, so of two processes that need it only one trains; the other waits
    and loads. A model that is half there (manifest or checkpoint gone) is reported, never retrained over."""
    with zoo.lock(mid):
        half = zoo.half_message(mid)
        if half:
            raise DefbenchError(half)
        if not zoo.exists(mid):
            if not train_missing:
                raise DefbenchError(f"model {mid} is not in the zoo; build it with: {zoo.build_hint(mid)}")
            if not zoo.writable():  # said before hours of training whose result could not be saved
                raise DefbenchError(
                    f"model {mid} is not in the zoo {zoo.zoo_dir()}, which this process cannot write (read-only); "
                    f"build it where the zoo is writable: {zoo.build_hint(mid)}"
                )
            # said always (not a progress bar): under the paper preset this can take hours of an otherwise quiet run
            print(
                f"defbench: model {mid} is not in the zoo ({zoo.zoo_dir()}); training it now, as "
                f"'{zoo.build_hint(mid).removesuffix(' --force')}' would",
                file=sys.stderr,
                flush=True,
            )
            build()
        return zoo.load(mid)


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise DefbenchError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")


def build_classifier_model(
    dataset: str,
    preset: str = "paper",
    seed: int = DEFAULT_SEED,
    device="cpu",
    data_root=None,
    progress: bool = True,
    **overrides,
) -> zoo.Entry:
    recipe = recipe_for(dataset, preset, **overrides)
    train, test = load_dataset(dataset, "train", data_root), load_dataset(dataset, "test", data_root)
    model, metrics = train_classifier(dataset, train, test, recipe, seed, torch.device(device), progress)
    manifest = {
        "kind": "classifier",
        "dataset": dataset,
        "preset": preset,
        "arch": model.arch,
        "config": {**dataclasses.asdict(recipe), "seed": seed},
        "metrics": metrics,
        "data_source": test.source,
        "data_note": test.note,
    }
    return zoo.save(zoo.model_id("classifier", dataset, preset), model.cpu().state_dict(), manifest)


def get_classifier(
    dataset: str, preset: str = "paper", device="cpu", data_root=None, train_missing=True, progress: bool = True
) -> tuple[Classifier, dict]:
    dataset = canonical_name(dataset)
    if dataset == "imagenet":
        return load_imagenet_resnet50().to(device).eval(), {"id": "torchvision-resnet50-IMAGENET1K_V1"}
    _check_preset(preset)
    mid = zoo.model_id("classifier", dataset, preset)
    state, manifest = _fetch(
        mid,
        lambda: build_classifier_model(dataset, preset, device=device, data_root=data_root, progress=progress),
        train_missing,
    )
    warn_drift(mid, manifest)
    model = build_classifier(dataset, manifest.get("arch"))
    _load_state(model, state, mid, manifest)
    return model.to(device).eval(), manifest


def _load_state(module: torch.nn.Module, state: dict, mid: str, manifest: dict | None = None) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise DefbenchError(
            f"checkpoint {mid} does not fit its architecture ({str(exc).splitlines()[0][:100]}); "
            f"rebuild with: {zoo.build_hint(mid)}"
        ) from None
    if manifest is not None:  # the identity of the weights, for the keys of the cells that use them
        module.zoo_id = mid
        module.zoo_sha256 = str(manifest.get("sha256") or "") or None
        module.zoo_weights_sha256 = weights_sha256(module)  # what model_sha256 checks the weights still are


def model_sha256(module: torch.nn.Module) -> str:
    """The sha256 that identifies a model: its zoo checkpoint's (verified when it was loaded) while its weights
    are still the checkpoint's, else (a model that did not come from the zoo, such as torchvision's ImageNet
    ResNet-50 or a stand-in, or a zoo model whose weights were changed in memory since) the sha256 of its
    weights."""
    now = weights_sha256(module)
    zoo_sha = getattr(module, "zoo_sha256", None)
    return zoo_sha if zoo_sha and getattr(module, "zoo_weights_sha256", None) == now else now


def attribute_models(obj) -> dict[str, str]:
    """sha256 of every ``nn.Module`` an object holds as an attribute (and of the object itself when it is one):
    the weights behind a defense handed in by a user (:mod:`defbench.api`), keyed ``attr:<name>``."""
    out = {"self": weights_sha256(obj)} if isinstance(obj, torch.nn.Module) else {}
    for name, m in sorted(vars(obj).items()):
        if isinstance(m, torch.nn.Module):
            out[f"attr:{name}"] = model_sha256(m)
    return out


_NOT_PLAIN = object()


def _plain(v: Any, depth: int = 0) -> Any:
    """``v`` as JSON-able data when it is a plain value (None, bool, number, str; a tensor as its bytes' sha256;
    tuples, lists and dicts of these), else a sentinel: what :func:`attribute_values` keys."""
    if isinstance(v, np.generic):  # a numpy scalar (np.float32(0.5), np.int64(3))
        v = v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    # a Parameter a module registered is in its weights, never in vars(); one held by a plain object or in a list
    # or dict is in no state dict, so it counts by value like any tensor
    digest = array_digest(v)
    if digest is not None:
        return digest
    if depth < 4 and isinstance(v, (tuple, list)):
        items = [_plain(x, depth + 1) for x in v]
        return _NOT_PLAIN if _NOT_PLAIN in items else items
    if depth < 4 and isinstance(v, dict) and all(isinstance(k, str) for k in v):
        items = {k: _plain(x, depth + 1) for k, x in v.items()}
        return _NOT_PLAIN if _NOT_PLAIN in items.values() else items
    return _NOT_PLAIN


def attribute_values(obj) -> dict[str, Any]:
    """The plain values (see :func:`_plain`) an object holds as attributes, and for a module those of each of its
    submodules (``sub.name``; nn.Module's own bookkeeping left out), for the key of a user's object whose
    ``config()`` or weights do not name them: a ``Blur(k=5)`` never reuses ``Blur(k=1)``'s cells, nor a classifier
    that divides by ``self.scale = 3.0`` those of the same weights at 1.0. Modules' weights are keyed by
    :func:`attribute_models` / :func:`weights_sha256`; functions and other objects an attribute holds, and the
    code of ``forward``, are not covered."""
    owners = obj.named_modules() if isinstance(obj, torch.nn.Module) else [("", obj)]
    out: dict[str, Any] = {}
    for prefix, owner in owners:
        for name, v in sorted(vars(owner).items()):
            if isinstance(owner, torch.nn.Module) and (name.startswith("_") or name == "training"):
                continue
            p = _plain(v)
            if p is not _NOT_PLAIN:
                out[f"{prefix}.{name}" if prefix else name] = p
    return out


def user_model_sha256(module: torch.nn.Module) -> str:
    """The sha256 that identifies a classifier handed in by a user: its weights, the plain values its modules hold
    (:func:`attribute_values`: a scale it divides by) and the code of its own classes' methods
    (:func:`~defbench.harness.identity.methods_sha256`: an edited ``forward``)."""
    attrs = json.dumps(attribute_values(module), sort_keys=True)
    return hashlib.sha256(f"{weights_sha256(module)}|{attrs}|{methods_sha256(module)}".encode()).hexdigest()


def defense_models(defense) -> dict[str, str]:
    """sha256 of every trained model a defense holds: ``G`` and ``D`` (the GAN prior) and ``encoder``."""
    return {
        k: model_sha256(m)
        for k, m in (
            ("G", getattr(defense, "G", None)),
            ("D", getattr(defense, "D", None)),
            ("encoder", getattr(defense, "encoder", None)),
        )
        if isinstance(m, torch.nn.Module)
    }


def build_gan_model(
    dataset: str,
    preset: str = "paper",
    seed: int = DEFAULT_SEED,
    device="cpu",
    data_root=None,
    progress: bool = True,
    subset_fraction: float = 1.0,
    holdout_class: int | None = None,
    **overrides,
) -> zoo.Entry:
    recipe = gan_recipe(dataset, preset, subset_fraction=subset_fraction, **overrides)
    classifier, _ = get_classifier(dataset, preset, device, data_root, progress=progress)
    train = load_dataset(dataset, "train", data_root)  # epoch selection uses a slice of it, never the test split
    if holdout_class is not None:  # leave-one-class-out GAN (MimicGAN anomaly detection)
        keep = (train.labels != holdout_class).nonzero().squeeze(1)
        train = dataclasses.replace(train, images=train.images[keep], labels=train.labels[keep])
    tag = gan_tag(subset_fraction, seed, holdout_class)
    mid = zoo.model_id("gan", dataset, preset, tag)
    saved: list[zoo.Entry] = []

    def save(state: dict, metrics: dict) -> None:
        """Called after every epoch: the zoo always holds the best epoch so far ('complete' says if done)."""
        manifest = {
            "kind": "gan",
            "dataset": dataset,
            "preset": preset,
            "arch": "dcgan28" if SHAPES[dataset][1] == 28 else "dcgan32",
            "config": {**dataclasses.asdict(recipe), "seed": seed, "holdout_class": holdout_class},
            "metrics": metrics,
            "classifier": zoo.model_id("classifier", dataset, preset),
            "complete": metrics["epochs_done"] >= metrics["epochs_planned"],
        }
        saved.append(zoo.save(mid, {f"{k}.{n}": t for k, sd in state.items() for n, t in sd.items()}, manifest))
        _save_grid(state["G"], dataset, zoo.zoo_dir() / f"{mid}-samples.png", seed)

    steering = steering_classifier(dataset, recipe, preset, classifier, device, data_root, progress)
    train_gan(
        dataset, train, classifier, recipe, seed, torch.device(device), progress, on_epoch=save, steering=steering
    )
    return saved[-1]


def steering_classifier(dataset: str, recipe, preset: str, classifier, device="cpu", data_root=None, progress=True):
    """The classifier that steers ``recipe``'s class feedback: ``classifier`` (the ``preset``'s own, which
    selects the epoch) unless the recipe names another preset in ``feedback_classifier``; that one is loaded
    from the zoo (trained if missing)."""
    if not recipe.feedback_classifier or recipe.feedback_classifier == preset:
        return classifier
    steering, _ = get_classifier(dataset, recipe.feedback_classifier, device, data_root, progress=progress)
    return steering


def _save_grid(g_state: dict, dataset: str, path, seed: int) -> None:
    from torchvision.utils import save_image

    G, _ = build_gan(dataset)
    G.load_state_dict(g_state)
    with torch.no_grad():
        save_image(G.eval()(sample_latent(64, G.latent_dim, torch.Generator().manual_seed(seed))), str(path), nrow=8)


def _split(state: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}


def get_gan(
    dataset: str,
    preset: str = "paper",
    device="cpu",
    data_root=None,
    train_missing=True,
    progress: bool = True,
    tag: str = "",
) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    dataset = canonical_name(dataset)
    _check_preset(preset)
    mid = zoo.model_id("gan", dataset, preset, tag)
    kw = parse_gan_tag(tag) if tag else {}
    state, manifest = _fetch(
        mid,
        lambda: build_gan_model(dataset, preset, device=device, data_root=data_root, progress=progress, **kw),
        train_missing,
    )
    warn_drift(mid, manifest)
    stopped = unfinished(manifest)
    if stopped:
        warnings.warn(
            f"{mid} in the zoo is a checkpoint of an unfinished training run ({stopped}): results with it are that "
            f"checkpoint's, not the preset's model; finish it with: {zoo.build_hint(mid)}",
            stacklevel=2,
        )
    config = manifest.get("config", {})
    G, D = build_gan(dataset, spectral_norm=bool(config.get("spectral_norm", False)), pack=int(config.get("pack", 1)))
    _load_state(G, _split(state, "G"), mid, manifest)
    _load_state(D, _split(state, "D"), mid, manifest)
    return G.to(device).eval(), D.to(device).eval(), manifest


def unfinished(manifest: dict) -> str | None:
    """How far a GAN's training got when it has not run every planned epoch (the zoo keeps the best epoch after
    every epoch, so a killed or still running training leaves a usable-looking model), or None when it has.
    Manifests say so with ``complete``; older ones are read from ``epochs_done`` and ``epochs_planned``; one that
    records neither is not judged."""
    metrics = manifest.get("metrics") or {}
    done, planned = metrics.get("epochs_done"), metrics.get("epochs_planned")
    stopped = manifest.get("complete") is False or (done is not None and planned is not None and done < planned)
    if not stopped:
        return None
    best = metrics.get("best_epoch")
    return f"{done} of {planned} epochs done" + (f", epoch {best} kept" if best is not None else "")


def recipe_changes(manifest: dict, recipe) -> dict[str, tuple]:
    """Where a zoo model's recipe (its manifest's ``config``) differs from ``recipe`` (the preset's today):
    ``{field: (trained, preset)}`` in the recipe's field order. A field the manifest lacks was trained at the
    field's default (options are added off by default); a field without a default that the manifest lacks is not
    compared."""
    config = manifest.get("config") or {}
    out = {}
    for field in dataclasses.fields(recipe):
        default = field.default if field.default is not dataclasses.MISSING else None
        trained = config.get(field.name, default)
        wanted = getattr(recipe, field.name)
        if trained is not None and trained != wanted:
            out[field.name] = (trained, wanted)
    return out


def recipe_drift(manifest: dict, recipe) -> list[str]:
    """:func:`recipe_changes` as ``'field: trained X, preset Y'`` lines (the zoo's warning)."""
    return [f"{f}: trained {t!r}, preset {w!r}" for f, (t, w) in recipe_changes(manifest, recipe).items()]


def model_drift(mid: str, manifest: dict) -> list[str]:
    """How zoo model ``mid`` was trained otherwise than its id says, as ``'field: trained X, preset Y'`` lines:
    another recipe than its preset's today (``defbench train classifier --epochs 1`` saves under the preset's id)
    or another seed than the id's (trained before a non-default seed got its own id), or for a GAN another left-out
    class than the id's ``noK`` (a renamed file). [] when it was trained as its id says, or when its id names no
    recipe defbench knows."""
    kind, dataset, preset, tag = zoo.parse_id(mid, manifest)
    try:
        kw = parse_gan_tag(tag) if tag and kind != "classifier" else {}
        if kind == "classifier":
            recipe = recipe_for(dataset, preset)
        elif kind == "gan":
            recipe = gan_recipe(dataset, preset, subset_fraction=kw.get("subset_fraction", 1.0))
        elif kind == "encoder":
            recipe = encoder_recipe(preset)
        else:
            return []
    except (DefbenchError, KeyError, TypeError):  # a dataset, preset or tag without a recipe: nothing to compare
        return []
    drift = recipe_drift(manifest, recipe)
    trained = manifest.get("config") or {}
    trained_seed = trained.get("seed", DEFAULT_SEED)
    if trained_seed != kw.get("seed", DEFAULT_SEED):
        drift.append(f"seed: trained {trained_seed!r}, id {kw.get('seed', DEFAULT_SEED)!r}")
    left_out = trained.get("holdout_class")
    if kind == "gan" and left_out != kw.get("holdout_class"):  # a GAN trained without class K, or with it
        drift.append(f"holdout_class: trained {left_out!r}, id {kw.get('holdout_class')!r}")
    return drift


def warn_drift(mid: str, manifest: dict) -> None:
    """Warn when zoo model ``mid`` was trained otherwise than its id says (:func:`model_drift`): results with it
    are that model's, not the preset's."""
    drift = model_drift(mid, manifest)
    if drift:
        warnings.warn(
            f"{mid} in the zoo was trained with another recipe than its preset's today ({'; '.join(drift)}): "
            f"results with it are that model's, not the preset's; rebuild with: {zoo.build_hint(mid)}",
            stacklevel=3,
        )


def build_encoder_model(
    dataset: str,
    preset: str = "paper",
    seed: int = DEFAULT_SEED,
    device="cpu",
    data_root=None,
    progress: bool = True,
    tag: str = "",
    **overrides,
) -> zoo.Entry:
    """The InvGAN encoder of GAN ``gan-<dataset>-<preset>[-<tag>]`` (same tag in its id)."""
    recipe = encoder_recipe(preset, **overrides)
    G, _, gman = get_gan(dataset, preset, device, data_root, progress=progress, tag=tag)
    state, metrics = train_encoder(dataset, G, recipe, seed, torch.device(device), progress)
    mid = zoo.model_id("encoder", dataset, preset, tag)
    manifest = {
        "kind": "encoder",
        "dataset": dataset,
        "preset": preset,
        "arch": "invgan-encoder",
        "config": {**dataclasses.asdict(recipe), "seed": seed},
        "metrics": metrics,
        "gan": gman["id"],
        "gan_sha256": gman["sha256"],
    }
    return zoo.save(mid, {f"E.{k}": v for k, v in state["E"].items()}, manifest)


def get_encoder(
    dataset: str,
    preset: str = "paper",
    device="cpu",
    data_root=None,
    train_missing=True,
    progress: bool = True,
    tag: str = "",
) -> tuple[torch.nn.Module, dict]:
    dataset = canonical_name(dataset)
    _check_preset(preset)
    mid = zoo.model_id("encoder", dataset, preset, tag)
    state, manifest = _fetch(
        mid,
        lambda: build_encoder_model(dataset, preset, device=device, data_root=data_root, progress=progress, tag=tag),
        train_missing,
    )
    gman = zoo.manifest_or_none(zoo.model_id("gan", dataset, preset, tag)) or {}
    if manifest.get("gan_sha256") and gman.get("sha256") and manifest["gan_sha256"] != gman["sha256"]:
        raise DefbenchError(
            f"encoder {mid} was trained for another GAN than the one in the zoo; rebuild with: {zoo.build_hint(mid)}"
        )
    warn_drift(mid, manifest)
    c, h, _ = SHAPES[dataset]
    enc = Encoder(c, h)
    _load_state(enc, _split(state, "E"), mid, manifest)
    return enc.to(device).eval(), manifest


def build_defense(
    name: str,
    dataset: str = "fmnist",
    preset: str = "paper",
    device="cpu",
    overrides: dict | None = None,
    seed: int = 0,
    data_root=None,
    train_missing: bool = True,
    progress: bool = True,
) -> Defense:
    """:func:`defbench.defenses.registry.build_defense` with the model zoo as the GAN-prior defenses' model source:
    their G, D and encoder of ``dataset`` and ``preset`` come from the zoo, trained on demand unless
    ``train_missing`` is False."""
    return defense_registry.build_defense(
        name, dataset, preset, device, overrides, seed, data_root, train_missing, progress, models=sys.modules[__name__]
    )
