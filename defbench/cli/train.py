"""``defbench train`` (a classifier, GAN prior or InvGAN encoder into the model zoo) and ``defbench zoo list|show``
(the trained models with their metrics)."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict
from dataclasses import fields as dataclass_fields

from defbench import DefbenchError
from defbench.attacks.registry import check_value
from defbench.classifiers.train import recipe_for
from defbench.cli.options import add_common, count_type, fraction_type, key_value, lowered
from defbench.datasets import DATASETS, SHAPES, canonical_name
from defbench.defenses.train_prior import encoder_recipe, gan_recipe
from defbench.harness import models, zoo
from defbench.limits import MAX_STEPS
from defbench.seeding import DEFAULT_SEED, resolve_device


def add_parsers(sub) -> None:
    tr = sub.add_parser("train", help="train a classifier, GAN prior or InvGAN encoder into the model zoo")
    tr.add_argument("kind", choices=("classifier", "gan", "encoder"), help="what to train")
    tr.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    tr.add_argument(
        "--preset",
        type=lowered,
        default="paper",
        help="quick (minutes on 2 CPU cores) | paper (the papers' budgets; default)",
    )
    tr.add_argument(
        "--epochs", type=count_type("epochs"), default=None, help="override the preset's epochs (classifier, gan)"
    )
    tr.add_argument(
        "--iterations", type=count_type("iterations"), default=None, help="override the preset's iterations (encoder)"
    )
    tr.add_argument(
        "--subset-fraction",
        type=fraction_type,
        default=1.0,
        help="GAN only: train on a random fraction of the training set (default 1.0; MimicGAN: 0.8)",
    )
    tr.add_argument("--holdout-class", type=int, default=None, help="GAN (or its encoder): leave this class out")
    tr.add_argument(
        "--recipe-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one field of the preset's training recipe (repeatable), e.g. lr_d=5e-5 for a gan "
        "(the fields: docs/MODELS.md, or 'defbench zoo show ID' of a trained model); the model keeps the preset's "
        "zoo id, and 'zoo list' and every run that loads it say it was not trained as its preset",
    )
    tr.add_argument("--force", action="store_true", help="retrain even if the zoo has the model")
    add_common(tr)
    tr.set_defaults(func=train)

    zp = sub.add_parser(
        "zoo",
        help="list the trained models with their metrics",
        description="'zoo list': one line per trained model (id, architecture, clean accuracy, projection "
        "accuracy or latent error, training seconds; a failed or unfinished training says so, and so does a model "
        "trained with another recipe or seed than its id's preset, e.g. by --epochs). 'zoo show ID': "
        "its manifest (recipe, seed, metrics, sha256). The zoo is $DEFBENCH_HOME/zoo (default "
        "~/.cache/defbench/zoo).",
    )
    zp.add_argument("action", choices=("list", "show"), help="list all | show ID")
    zp.add_argument("id", nargs="?", help="model id for 'show'")
    zp.set_defaults(func=show_zoo)


def train(args) -> int:
    """Train the model the flags name into the zoo (waiting for another process training it); print its metrics."""
    ds = canonical_name(args.dataset)
    dev = resolve_device(args.device)
    if args.preset not in models.PRESETS:
        raise DefbenchError(f"unknown preset {args.preset!r}; choose one of: {', '.join(models.PRESETS)}")
    common = dict(
        preset=args.preset, seed=args.seed, device=dev, data_root=args.data_root, progress=not args.no_progress
    )
    if args.holdout_class is not None and not 0 <= args.holdout_class < 10:
        raise DefbenchError(f"--holdout-class must be a class of {ds} (0 to 9), got {args.holdout_class}")
    if args.kind == "encoder" and args.epochs is not None:
        raise DefbenchError("--epochs is for classifier and gan; the encoder takes --iterations")
    if args.kind != "encoder" and args.iterations is not None:
        raise DefbenchError("--iterations is for the encoder; classifier and gan take --epochs")
    if args.kind == "classifier" and (args.subset_fraction != 1.0 or args.holdout_class is not None):
        raise DefbenchError("--subset-fraction and --holdout-class are for gan and encoder, not classifier")
    if args.kind == "classifier" and args.seed != DEFAULT_SEED:  # its zoo id has no seed: it would pose as seed 0's
        raise DefbenchError(
            f"--seed is for gan and encoder: the zoo keeps one classifier per dataset and preset (seed {DEFAULT_SEED})"
        )
    if ds not in SHAPES or ds == "imagenet":
        raise DefbenchError(f"defbench does not train {ds} models (ImageNet uses torchvision's pretrained ResNet-50)")
    extra = recipe_overrides(args.kind, ds, args.preset, args.recipe_opt)
    tag = models.gan_tag(args.subset_fraction, args.seed, args.holdout_class) if args.kind != "classifier" else ""
    mid = zoo.model_id(args.kind, ds, args.preset, tag)
    with zoo.lock(mid):  # another process training the same model: wait for it, then say it is there
        half = zoo.half_message(mid)
        if half and not args.force:
            raise DefbenchError(half)
        if zoo.exists(mid) and not args.force:
            print(f"{mid} already in the zoo (use --force to retrain)")
            return 0
        if args.kind == "classifier":
            entry = models.build_classifier_model(ds, epochs=args.epochs, **common, **extra)
        elif args.kind == "gan":
            entry = models.build_gan_model(
                ds,
                subset_fraction=args.subset_fraction,
                holdout_class=args.holdout_class,
                epochs=args.epochs,
                **common,
                **extra,
            )
        else:  # the encoder of the GAN the same flags name (a replica with --subset-fraction / --holdout-class)
            entry = models.build_encoder_model(ds, iterations=args.iterations, tag=tag, **common, **extra)
    print(f"saved {entry.id} -> {entry.path}")
    print(json.dumps({k: v for k, v in entry.manifest["metrics"].items() if not isinstance(v, (list, dict))}))
    return 0


#: recipe fields with a flag of their own
FLAGGED = {"epochs": "--epochs", "iterations": "--iterations", "subset_fraction": "--subset-fraction"}


def recipe_overrides(kind: str, dataset: str, preset: str, opts: list[str]) -> dict:
    """``--recipe-opt KEY=VALUE`` options as overrides of ``kind``'s recipe for ``dataset`` and ``preset``: each KEY
    a field of that recipe (not one with a flag of its own, not twice), each VALUE of the field's type; the recipe
    they make is built here, so its own refusals come before any data is loaded or model trained."""
    if not opts:
        return {}
    build = {
        "classifier": lambda **kw: recipe_for(dataset, preset, **kw),
        "gan": lambda **kw: gan_recipe(dataset, preset, **kw),
        "encoder": lambda **kw: encoder_recipe(preset, **kw),
    }[kind]
    preset_recipe = build()
    fields = asdict(preset_recipe)
    # the sign rule reads the field's declared default, not the preset's value: a preset that turns an option on
    # (class_feedback=0.5) must not forbid turning it off (class_feedback=0)
    declared = {f.name: fields[f.name] if f.default is MISSING else f.default for f in dataclass_fields(preset_recipe)}
    out: dict = {}
    for opt in opts:
        key, value = key_value(opt, "--recipe-opt", opt)
        if key in FLAGGED:
            raise DefbenchError(f"--recipe-opt {opt!r}: set {key} with {FLAGGED[key]}")
        if key not in fields:
            names = ", ".join(k for k in fields if k not in FLAGGED)
            raise DefbenchError(f"--recipe-opt {opt!r}: the {kind} recipe has no field {key!r}; its fields: {names}")
        if key in out:
            raise DefbenchError(f"--recipe-opt sets {key} twice")
        out[key] = check_value(value, fields[key], f"--recipe-opt {key}")
        _check_sign(key, out[key], declared[key])
    build(**out)
    return out


def _check_sign(key: str, value, default) -> None:
    """A number whose field defaults to a positive one stays positive (a count a whole number in [1, MAX_STEPS]: a
    batch size, a step count), where it defaults to 0 (an option that is off) stays >= 0; a negative default (a
    class index meaning 'none') is the recipe's to check."""
    if isinstance(default, bool) or not isinstance(default, (int, float)) or default < 0:
        return
    if isinstance(default, int) and default > 0 and not 1 <= value <= MAX_STEPS:
        raise DefbenchError(f"--recipe-opt {key} must be a whole number in [1, {MAX_STEPS:,}], got {value}")
    if default > 0 and not value > 0:
        raise DefbenchError(f"--recipe-opt {key} must be > 0, got {value}")
    if not value >= 0:
        raise DefbenchError(f"--recipe-opt {key} must be >= 0, got {value}")


def show_zoo(args) -> int:
    """``zoo list``: one line per model with its main metrics; ``zoo show ID``: its manifest."""
    if args.action == "show":
        if not args.id:
            raise DefbenchError("zoo show needs a model id; see 'defbench zoo list'")
        half = zoo.half_message(args.id)
        if half:
            raise DefbenchError(half)
        m = zoo.manifest_or_none(args.id)
        if m is None and zoo.exists(args.id):
            raise DefbenchError(
                f"manifest of {args.id} in {zoo.zoo_dir()} is unreadable; rebuild with: {zoo.build_hint(args.id)}"
            )
        if m is None:
            raise DefbenchError(f"no model {args.id!r} in {zoo.zoo_dir()}; see 'defbench zoo list'")
        print(json.dumps(m, indent=2))
        return 0
    if args.id:  # 'zoo list ID' listed everything, as if the id were not there
        raise DefbenchError(f"zoo list takes no model id (got {args.id!r}); for one model: defbench zoo show {args.id}")
    rows = zoo.entries()
    if not rows:
        print(f"the zoo at {zoo.zoo_dir()} is empty; build models with 'defbench train ...'")
        return 0
    for e in rows:
        m = e.manifest.get("metrics", {})
        keys = ("clean_test_accuracy", "projection_accuracy_during_training", "latent_error", "train_seconds")
        summary = ", ".join(f"{k}={m[k]:.4g}" if isinstance(m.get(k), float) else f"{k}={m[k]}" for k in keys if k in m)
        err = f"  ({e.manifest['error']}; see 'defbench zoo show {e.id}')" if e.manifest.get("error") else ""
        stopped = models.unfinished(e.manifest)
        err += f"  (unfinished: {stopped})" if stopped else ""
        drift = models.model_drift(e.id, e.manifest)
        err += f"  (not its preset's recipe: {'; '.join(drift)})" if drift else ""
        print(f"{e.id:40s} {e.manifest.get('arch', '?')!s:16} {summary}{err}")
    return 0
