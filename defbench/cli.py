"""The ``defbench`` command line. Errors meant for the user print on one line (no traceback), exit 2."""

from __future__ import annotations

import argparse
import json
import sys

from defbench import DefbenchError, __version__
from defbench.attacks import registry as attack_registry
from defbench.classifiers import registry as classifier_registry
from defbench.datasets import DATASETS, SHAPES, canonical_name
from defbench.defenses import registry as defense_registry
from defbench.harness import commands, models, zoo
from defbench.harness.commands import count_type, fraction_type, seed_type
from defbench.harness.store import DB_NAME, Store, check_store, os_error_line, salvage_store
from defbench.reports.html import write_html_report
from defbench.reports.render import write_reports
from defbench.seeding import DEFAULT_SEED, resolve_device


class _ArgError(Exception):
    """A command-line error argparse found (unknown option, missing argument, a value of the wrong kind)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (``defbench matrix: error: ...``) instead of usage + message, so every
    bad input reads the same; sub-parsers inherit the class."""

    def error(self, message: str):
        raise _ArgError(self.prog, message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-root",
        default=None,
        help="dataset root (else $DEFBENCH_DATA, the user cache, Debian's dataset dir, a download)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: cuda when present)")

    p.add_argument("--seed", type=seed_type, default=DEFAULT_SEED, help=f"explicit seed (default {DEFAULT_SEED})")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="defbench",
        description=(
            "Evaluate adversarial purification defenses (DefenseGAN, Cowboy, InvGAN, MimicGAN, RIDE, median, TVM) "
            "against library attacks under gray-box, BPDA, reparameterisation and GAN-aware threat models."
        ),
    )
    ap.add_argument("--version", action="version", version=f"defbench {__version__}")
    ap.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an error (also after a command: 'defbench matrix ... --debug')",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    tr = sub.add_parser("train", help="train a classifier, GAN prior or InvGAN encoder into the model zoo")
    tr.add_argument("kind", choices=("classifier", "gan", "encoder"), help="what to train")
    tr.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    tr.add_argument("--preset", default="paper", help="quick (minutes on 2 CPU cores) | paper (the papers' budgets)")
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
        help="GAN only: train on a random fraction of the training set (MimicGAN: 0.8)",
    )
    tr.add_argument("--holdout-class", type=int, default=None, help="GAN (or its encoder): leave this class out")
    tr.add_argument("--force", action="store_true", help="retrain even if the zoo has the model")
    _common(tr)

    zp = sub.add_parser("zoo", help="list the trained models with their metrics")
    zp.add_argument("action", choices=("list", "show"), help="list all | show ID")
    zp.add_argument("id", nargs="?", help="model id for 'show'")

    for kind in ("defense", "attack", "classifier"):
        lp = sub.add_parser(kind, help=f"list the {kind}s: built-ins and installed plugins (with their distribution)")
        lp.add_argument("action", choices=("list",), help="list")
        lp.set_defaults(func=_list_plugins, kind=kind)

    sp = sub.add_parser(
        "store",
        help="check a run's store, or rebuild a damaged one from its intact cells",
        description="'check OUT' reads every cell of OUT/defbench.sqlite and reports the intact and "
        "broken ones (exit 1 if any is broken); 'salvage OUT' rebuilds the store from its "
        "intact cells, keeping the damaged file beside it as defbench.sqlite.damaged-*; "
        "the next run recomputes only the dropped cells. Salvage while no run uses OUT.",
    )
    sp.add_argument("action", choices=("check", "salvage"), help="check | salvage")
    sp.add_argument("out", metavar="OUT", help="output dir of a 'defbench matrix' or 'defbench paper run'")
    sp.set_defaults(func=_store)

    rp = sub.add_parser(
        "report",
        help="print the tables of a run's store; --html writes one self-contained page",
        description="Print the tables of OUT/defbench.sqlite as 'defbench matrix' does at the end "
        "of a run (and rewrite its CSV, LaTeX and PNG files); with --html also write one "
        "self-contained HTML file: tables, paper vs ours, sanity flags, sweep plots and "
        "example image grids (see docs/REPORT.md).",
    )
    rp.add_argument("out", metavar="OUT", help="output dir of a 'defbench matrix' or 'defbench paper run'")
    rp.add_argument(
        "--html",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="write the HTML report to PATH (default OUT/report.html)",
    )
    rp.set_defaults(func=_report)

    commands.add_subcommands(sub, _common)
    return ap


def _list_plugins(args) -> int:
    """``defbench defense list`` / ``attack list`` / ``classifier list``: one line per name, built-ins first
    (a classifier's line ends with the datasets it supports)."""
    if args.kind == "classifier":
        for n, cls in classifier_registry.available().items():
            dist = classifier_registry.distribution_of(cls)
            where = "plugin: " + " ".join(dist) if dist else "built-in"
            print(f"{n}\t{where}\t{','.join(classifier_registry.supported_datasets(cls))}")
        return 0
    if args.kind == "defense":
        names = list(defense_registry.available())
        owner = {n: defense_registry.distribution_of(c) for n, c in defense_registry.plugins().items()}
    else:
        names = list(attack_registry.available())
        owner = {n: attack_registry.distribution_of(c) for n, c in attack_registry.plugins().items()}
    for n in names:
        dist = owner.get(n)
        print(f"{n}\t{'plugin: ' + ' '.join(dist) if dist else 'built-in'}")
    return 0


def _train(args) -> int:
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
    if ds not in SHAPES or ds == "imagenet":
        raise DefbenchError(f"defbench does not train {ds} models (ImageNet uses torchvision's pretrained ResNet-50)")
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
            entry = models.build_classifier_model(ds, epochs=args.epochs, **common)
        elif args.kind == "gan":
            entry = models.build_gan_model(
                ds, subset_fraction=args.subset_fraction, holdout_class=args.holdout_class, epochs=args.epochs, **common
            )
        else:  # the encoder of the GAN the same flags name (a replica with --subset-fraction / --holdout-class)
            entry = models.build_encoder_model(ds, iterations=args.iterations, tag=tag, **common)
    print(f"saved {entry.id} -> {entry.path}")
    print(json.dumps({k: v for k, v in entry.manifest["metrics"].items() if not isinstance(v, (list, dict))}))
    return 0


def _store(args) -> int:
    if args.action == "check":
        chk = check_store(args.out)
        print(chk.summary())
        return 0 if chk.ok else 1
    chk, backup = salvage_store(args.out)
    if backup is None:
        print(f"{chk.summary()}; nothing to salvage")
    else:
        print(
            f"{chk.path}: kept {len(chk.intact)} intact cell(s), dropped {len(chk.broken)} broken row(s)"
            f"{' and unreadable pages' if chk.errors else ''}; the damaged file is {backup}; the next run "
            "recomputes the dropped cells"
        )
    return 0


def _zoo(args) -> int:
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
    rows = zoo.entries()
    if not rows:
        print(f"the zoo at {zoo.zoo_dir()} is empty; build models with 'defbench train ...'")
        return 0
    for e in rows:
        m = e.manifest.get("metrics", {})
        keys = ("clean_test_accuracy", "projection_accuracy_during_training", "latent_error", "train_seconds")
        summary = ", ".join(f"{k}={m[k]:.4g}" if isinstance(m.get(k), float) else f"{k}={m[k]}" for k in keys if k in m)
        err = f"  ({e.manifest['error']}; see 'defbench zoo show {e.id}')" if e.manifest.get("error") else ""
        print(f"{e.id:40s} {e.manifest.get('arch', '?')!s:16} {summary}{err}")
    return 0


def _report(args) -> int:
    from pathlib import Path

    if not (Path(args.out) / DB_NAME).is_file():
        raise DefbenchError(f"no store {Path(args.out) / DB_NAME}; OUT must be the --out dir of a matrix or paper run")
    store = Store(args.out)
    try:
        print(write_reports(store, args.out))
        if args.html is not None:
            print(f"HTML report: {write_html_report(store, args.out, args.html or None)}")
    finally:
        store.close()
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the cell in flight is dropped (its transaction never began), every finished
    cell stays in the store and the next run resumes."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    import os
    import signal
    import sqlite3

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("DEFBENCH_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    old_term = None
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. called from a test's worker thread): leave SIGTERM alone
        pass
    try:
        ap = build_parser()
        args = ap.parse_args(argv)
        if not args.cmd:
            ap.print_help()
            return 0
        if args.cmd == "train":
            return _train(args)
        if args.cmd == "zoo":
            return _zoo(args)
        return args.func(args)
    except _ArgError as exc:
        if debug:
            raise
        print(f"defbench: error: {_one_line(exc)} (see '{exc.prog} --help')", file=sys.stderr)
        return 2
    except DefbenchError as exc:
        if debug:
            raise
        print(f"defbench: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except _Terminated:
        print(
            "defbench: terminated (SIGTERM); finished cells are stored, rerun the same command to resume",
            file=sys.stderr,
        )
        return 143
    except KeyboardInterrupt:
        print("defbench: interrupted; finished cells are stored, rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a file-system fault: said as such (permission, read-only, disk full)
        if debug:
            raise

        print(
            f"defbench: error: {_one_line(os_error_line(exc))} ({type(exc).__name__}; --debug shows where)",
            file=sys.stderr,
        )
        return 1
    except sqlite3.Error as exc:
        if debug:
            raise
        print(f"defbench: error: the results store failed: {_one_line(exc)} (--debug shows where)", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug or an unforeseen fault: one line, the traceback with --debug
        if debug:
            raise
        print(
            f"defbench: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} (rerun with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
