"""The ``defbench`` command line. Errors meant for the user print on one line (no traceback), exit 2."""

from __future__ import annotations

import argparse
import json
import sys

from defbench import DefbenchError, __version__
from defbench.harness.seeding import DEFAULT_SEED


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None,
                   help="dataset root (else $DEFBENCH_DATA, the user cache, Debian's dataset dir, a download)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: cuda when present)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"explicit seed (default {DEFAULT_SEED})")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    from defbench.harness.data import DATASETS

    ap = argparse.ArgumentParser(prog="defbench", description=(
        "Evaluate adversarial purification defenses (DefenseGAN, Cowboy, InvGAN, MimicGAN, RIDE, median, TVM) "
        "against library attacks under gray-box, BPDA, reparameterisation and GAN-aware threat models."))
    ap.add_argument("--version", action="version", version=f"defbench {__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    tr = sub.add_parser("train", help="train a classifier, GAN prior or InvGAN encoder into the model zoo")
    tr.add_argument("kind", choices=("classifier", "gan", "encoder"), help="what to train")
    tr.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    tr.add_argument("--preset", default="paper", help="quick (minutes on 2 CPU cores) | paper (the papers' budgets)")
    tr.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (classifier, gan)")
    tr.add_argument("--iterations", type=int, default=None, help="override the preset's iterations (encoder)")
    tr.add_argument("--subset-fraction", type=float, default=1.0,
                    help="GAN only: train on a random fraction of the training set (MimicGAN: 0.8)")
    tr.add_argument("--holdout-class", type=int, default=None, help="GAN (or its encoder): leave this class out")
    tr.add_argument("--force", action="store_true", help="retrain even if the zoo has the model")
    _common(tr)

    zp = sub.add_parser("zoo", help="list the trained models with their metrics")
    zp.add_argument("action", choices=("list", "show"), help="list all | show ID")
    zp.add_argument("id", nargs="?", help="model id for 'show'")

    rp = sub.add_parser("report", help="print the tables of a run's store; --html writes one self-contained page",
                        description="Print the tables of OUT/defbench.sqlite as 'defbench matrix' does at the end "
                                    "of a run (and rewrite its CSV, LaTeX and PNG files); with --html also write one "
                                    "self-contained HTML file: tables, paper vs ours, sanity flags, sweep plots and "
                                    "example image grids (see docs/REPORT.md).")
    rp.add_argument("out", metavar="OUT", help="output dir of a 'defbench matrix' or 'defbench paper run'")
    rp.add_argument("--html", nargs="?", const="", default=None, metavar="PATH",
                    help="write the HTML report to PATH (default OUT/report.html)")
    rp.set_defaults(func=_report)

    from defbench.harness import commands

    commands.add_subcommands(sub, _common)
    return ap


def _train(args) -> int:
    from defbench.harness import models, zoo
    from defbench.harness.data import canonical_name
    from defbench.harness.seeding import resolve_device

    ds = canonical_name(args.dataset)
    dev = resolve_device(args.device)
    if args.preset not in models.PRESETS:
        raise DefbenchError(f"unknown preset {args.preset!r}; choose one of: {', '.join(models.PRESETS)}")
    common = dict(preset=args.preset, seed=args.seed, device=dev, data_root=args.data_root,
                  progress=not args.no_progress)
    if args.kind == "classifier":
        mid = zoo.model_id("classifier", ds, args.preset)
        if zoo.exists(mid) and not args.force:
            print(f"{mid} already in the zoo (use --force to retrain)")
            return 0
        entry = models.build_classifier_model(ds, epochs=args.epochs, **common)
    elif args.kind == "gan":
        if not 0 < args.subset_fraction <= 1:
            raise DefbenchError(f"--subset-fraction must be in (0, 1], got {args.subset_fraction}")
        mid = zoo.model_id("gan", ds, args.preset, models.gan_tag(args.subset_fraction, args.seed, args.holdout_class))
        if zoo.exists(mid) and not args.force:
            print(f"{mid} already in the zoo (use --force to retrain)")
            return 0
        entry = models.build_gan_model(ds, subset_fraction=args.subset_fraction, holdout_class=args.holdout_class,
                                       epochs=args.epochs, **common)
    else:  # the encoder of the GAN the same flags name (a replica with --subset-fraction / --holdout-class)
        tag = models.gan_tag(args.subset_fraction, args.seed, args.holdout_class)
        mid = zoo.model_id("encoder", ds, args.preset, tag)
        if zoo.exists(mid) and not args.force:
            print(f"{mid} already in the zoo (use --force to retrain)")
            return 0
        entry = models.build_encoder_model(ds, iterations=args.iterations, tag=tag, **common)
    print(f"saved {entry.id} -> {entry.path}")
    print(json.dumps({k: v for k, v in entry.manifest["metrics"].items() if not isinstance(v, (list, dict))}))
    return 0


def _zoo(args) -> int:
    from defbench.harness import zoo

    if args.action == "show":
        if not args.id:
            raise DefbenchError("zoo show needs a model id; see 'defbench zoo list'")
        m = zoo.manifest_or_none(args.id)
        if m is None:
            raise DefbenchError(f"no model {args.id!r} in {zoo.zoo_dir()}")
        print(json.dumps(m, indent=2))
        return 0
    rows = zoo.entries()
    if not rows:
        print(f"the zoo at {zoo.zoo_dir()} is empty; build models with 'defbench train ...'")
        return 0
    for e in rows:
        m = e.manifest.get("metrics", {})
        keys = ("clean_test_accuracy", "projection_accuracy_during_training", "latent_error", "train_seconds")
        summary = ", ".join(f"{k}={m[k]:.4g}" if isinstance(m.get(k), float) else f"{k}={m[k]}"
                            for k in keys if k in m)
        print(f"{e.id:40s} {e.manifest.get('arch', '?'):16s} {summary}")
    return 0


def _report(args) -> int:
    from pathlib import Path

    from defbench.harness.store import DB_NAME, Store
    from defbench.reports.render import write_reports

    if not (Path(args.out) / DB_NAME).is_file():
        raise DefbenchError(f"no store {Path(args.out) / DB_NAME}; OUT must be the --out dir of a matrix or paper run")
    store = Store(args.out)
    try:
        print(write_reports(store, args.out))
        if args.html is not None:
            from defbench.reports.html import write_html_report

            print(f"HTML report: {write_html_report(store, args.out, args.html or None)}")
    finally:
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.cmd:
        ap.print_help()
        return 0
    try:
        if args.cmd == "train":
            return _train(args)
        if args.cmd == "zoo":
            return _zoo(args)
        return args.func(args)
    except DefbenchError as exc:
        print(f"defbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("defbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
