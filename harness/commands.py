"""The ``matrix`` and ``paper`` sub-commands and the argument types of every command: part of the CLI layer (with
:mod:`defbench.cli`), the top of the import graph, kept at its old path."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from defbench import DefbenchError
from defbench.attacks.base import COMMON_OPTIONS
from defbench.attacks.registry import available
from defbench.attacks.threats import THREATS, check_threat
from defbench.classifiers.registry import check_name as check_classifier
from defbench.datasets import canonical_name
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.defenses.registry import DEFENSES, base_name, check_name, split_names, split_variant
from defbench.defenses.registry import plugins as defense_plugins
from defbench.defenses.ride import RIDEConfig
from defbench.harness import matrix, papers
from defbench.harness.matrix import DEFAULT_ATTACKS, AttackSpec, MatrixSpec
from defbench.harness.models import PRESETS, parse_gan_tag
from defbench.harness.ray_executor import add_executor_args, executor_from_args
from defbench.harness.store import check_dir, os_error_line
from defbench.reports.paper import list_markdown, write_paper_report
from defbench.reports.render import write_reports
from defbench.seeding import resolve_device


def _csv(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


# ---------------------------------------------------------------------------------- argument types
#: the largest value each count accepts: far above any real run, low enough that a typo (an extra zero or
#: three) is refused at once instead of allocating or running for days
LIMITS = {
    "n": 1_000_000,
    "seeds": 1_000,
    "batch-size": 100_000,
    "eot": 10_000,
    "eval-repeats": 1_000,
    "epochs": 100_000,
    "iterations": 100_000_000,
    "n-threat": 1_000_000,
}
MAX_SEED = 2**31 - 1


def count_type(flag: str, minimum: int = 1):
    """An argparse type: an integer in [minimum, LIMITS[flag]]; anything else (text, 1.5, NaN, inf, 0, -3,
    10**12) is refused with one line naming the flag."""
    hi = LIMITS[flag]

    def parse(text: str) -> int:
        try:
            v = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if not minimum <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {minimum} and {hi}, got {v}")
        return v

    parse.__name__ = f"--{flag}"
    return parse


def seed_type(text: str) -> int:
    try:
        v = int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {v}")
    return v


def finite_float(text: str, what: str) -> float:
    """``text`` as a finite float, or a DefbenchError naming ``what`` (NaN and inf are refused)."""
    import math

    try:
        v = float(str(text).strip())
    except ValueError:
        raise DefbenchError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise DefbenchError(f"{what} must be a finite number, got {text!r}")
    return v


def fraction_type(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        v = finite_float(text, "the value")
    except DefbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("the value ", "")) from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {v:g}")
    return v


def parse_eps(text: str) -> list[float]:
    """``--eps`` as a list of budgets, each in (0, 1] (pixel units): NaN, inf, 0, negatives, > 1 refused."""
    items = _csv(text)
    if not items:
        raise DefbenchError(f"--eps {text!r} is empty; give a number in (0, 1] or a comma list of them")
    out = []
    for e in items:
        try:
            v = finite_float(e, "--eps")
        except DefbenchError:
            raise DefbenchError(f"--eps {text!r} must be a number or a comma list of numbers in (0, 1]") from None
        if not 0 <= v <= 1:
            raise DefbenchError(f"epsilon {v:g} is outside [0, 1] (pixel units); --eps must be in (0, 1]")
        if v == 0:
            raise DefbenchError("epsilon 0 leaves every image as it is; --eps must be in (0, 1]")
        out.append(v)
    return list(dict.fromkeys(out))


def check_value(value, default, what: str):
    """``value`` (parsed from JSON) where ``default`` shows the expected type: an int for an int, a number
    for a float (finite), a string for a string, true/false for a bool; NaN and inf are refused everywhere."""
    import math

    def bad(kind):
        shown = json.dumps(value) if _jsonable(value) and not isinstance(value, float) else repr(value)
        return DefbenchError(f"{what} must be {kind}, got {shown}")

    if isinstance(value, float) and not math.isfinite(value):
        raise bad("a finite number")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad("a whole number")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
    elif isinstance(value, (dict, list)):
        raise bad("a single value")
    return value


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def add_subcommands(sub, common) -> None:

    mp = sub.add_parser(
        "matrix",
        help="run attacks x defenses end to end and print robust-accuracy and detection-AUC tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every attack against the chosen defense(s) under the chosen threat models, store one "
        "row per cell in <out>/defbench.sqlite (a killed run resumes), and print the tables.",
        epilog="examples:\n  defbench matrix --defense mimicgan --preset quick\n"
        "  defbench matrix --defense all --threat graybox,bpda --n 500\n"
        "  defbench matrix --defense defensegan --attacks fgsm,pgd --eps 0.1,0.2,0.3",
    )
    mp.add_argument(
        "--defense",
        default="mimicgan",
        help=f"NAME, a,b or all; one of: {', '.join(DEFENSES)}; a variant fixes options in its name, "
        "e.g. 'defensegan[restarts=1,latent_steps=50]' or 'mimicgan[gan=sub80-s1]' (a GAN replica)",
    )
    mp.add_argument("--dataset", default="fmnist", help="fmnist (default) | mnist | cifar10 | imagenet")
    mp.add_argument(
        "--classifier",
        default="zoo",
        help="zoo (default: the zoo's classifier of the dataset and preset, trained on demand) or an installed "
        "classifier plugin ('defbench classifier list')",
    )
    mp.add_argument(
        "--attacks",
        default="all",
        help=f"all (= {','.join(DEFAULT_ATTACKS)}), a comma list incl. plugins, or none (clean only)",
    )
    mp.add_argument("--threat", default="graybox", help=f"comma list of: {', '.join(THREATS)} (default graybox)")
    mp.add_argument(
        "--eps", default=None, help="ε (pixel units in [0, 1]) or a comma list to sweep; bounded attacks only"
    )
    mp.add_argument(
        "--n", type=count_type("n"), default=None, help="test images per cell (default 500; quick preset 100)"
    )
    add_threat_n(mp)
    mp.add_argument(
        "--seeds", type=count_type("seeds"), default=1, help="number of seeds (seed, seed+1, ...); mean ± std over them"
    )
    mp.add_argument(
        "--batch-size",
        type=count_type("batch-size"),
        default=100,
        help="images attacked and purified together (default 100)",
    )
    mp.add_argument("--preset", default="paper", help="paper (the papers' settings) | quick (smoke budgets)")
    mp.add_argument(
        "--eot",
        type=count_type("eot"),
        default=None,
        help="EOT samples per BPDA gradient on randomized defenses (probabilities averaged, Athalye et "
        "al. 2018); default 10 (paper) / 4 (quick); 1 turns EOT off (the report flags it)",
    )
    mp.add_argument(
        "--eval-repeats",
        type=count_type("eval-repeats"),
        default=None,
        help="purifications per image for randomized defenses (correct = correct in all); "
        "default 3 (paper) / 1 (quick)",
    )
    mp.add_argument(
        "--defense-opt",
        action="append",
        default=[],
        metavar="[DEFENSE:]KEY=VALUE",
        help="override a defense hyperparameter, e.g. defensegan:restarts=4, or kernel_size=5 when "
        "the run has one defense (repeatable)",
    )
    mp.add_argument("--defense-config", default=None, help="JSON file {defense: {key: value}} of overrides")
    mp.add_argument(
        "--attack-opt",
        action="append",
        default=[],
        metavar="ATTACK:KEY=VALUE",
        help="override an attack parameter, e.g. pgd:steps=100 (repeatable)",
    )
    mp.add_argument(
        "--no-baseline", action="store_true", help="do not add the undefended classifier ('none') as a reference column"
    )
    mp.add_argument("--out", default="runs/matrix", help="output dir: store, CSV, LaTeX, plots (default runs/matrix)")

    add_executor_args(mp)
    common(mp)
    mp.set_defaults(func=run_matrix)

    add_paper_parser(sub, common)  # defbench paper list | paper run TABLE


def add_threat_n(parser) -> None:
    parser.add_argument(
        "--n-threat",
        action="append",
        default=[],
        metavar="THREAT=N",
        help="fewer images for an expensive threat, e.g. bpda=25 (repeatable): its cells attack a "
        "seeded subset of the n images; every table gives each cell's n",
    )


def parse_threat_n(opts: list[str]) -> dict[str, int]:
    """``["bpda=25"]`` -> ``{"bpda": 25}`` (threat names are checked by the matrix spec)."""
    out = {}
    for opt in opts:
        t, _, k = opt.partition("=")
        try:  # no '=' leaves k empty, which int() refuses too
            v = int(k)
        except ValueError:
            raise DefbenchError(f"--n-threat {opt!r} must look like THREAT=N, e.g. bpda=25") from None
        if not t.strip():
            raise DefbenchError(f"--n-threat {opt!r} must look like THREAT=N, e.g. bpda=25")
        if not 1 <= v <= LIMITS["n-threat"]:
            raise DefbenchError(
                f"--n-threat {t.strip()}={v}: the number of images must be >= 1"
                if v < 1
                else f"--n-threat {t.strip()}={v}: at most {LIMITS['n-threat']} images"
            )
        out[t.strip().lower()] = v
    return out


def defense_fields(base: str, dataset: str) -> dict:
    """Every option of defense ``base`` with its default (the default's type is the option's type)."""
    import dataclasses
    import inspect

    if base == "none":
        return {}
    if base in ("median", "tvm") or base not in DEFENSES:  # keyword options with defaults (a plugin's too)
        cls = {"median": MedianFilter, "tvm": TVMinimization}.get(base) or defense_plugins()[base]
        return {
            k: p.default
            for k, p in inspect.signature(cls.__init__).parameters.items()
            if k not in ("self", "shape", "seed", "dataset", "device") and p.default is not inspect.Parameter.empty
        }
    if base == "ride":
        cfg = RIDEConfig.for_dataset(dataset)
    else:
        cfg = PAPER_CONFIGS[base]
        return {**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}, "gan": ""}
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def load_config_file(path: str, flag: str = "--defense-config") -> dict:
    """A JSON file holding one object, or one line that says why not (a malformed file names its line)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DefbenchError(f"{flag} {path} is a directory, not a JSON file")
    if not p.is_file():
        raise DefbenchError(f"{flag} {path}: file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DefbenchError(f"{flag} {path} is not UTF-8 text (not a JSON file?)") from None
    except OSError as exc:
        raise DefbenchError(f"{flag} {os_error_line(exc, path)}") from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefbenchError(
            f"{flag} {path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(loaded, dict):
        raise DefbenchError(
            f"{flag} {path} must hold a JSON object {{defense: {{option: value}}}}, not a {type(loaded).__name__}"
        )
    return loaded


def _split_target(opt: str) -> tuple[str, str]:
    """``'defensegan[gan=sub80-s1]:restarts=4'`` -> (target, 'restarts=4'); no target -> ('', opt). The ':'
    that separates the target is the first one outside brackets and before the first '='."""
    depth = 0
    for i, ch in enumerate(opt):
        depth += (ch == "[") - (ch == "]")
        if depth == 0 and ch == "=":
            break
        if depth == 0 and ch == ":":
            return opt[:i].strip(), opt[i + 1 :]
    return "", opt


def _kv(text: str, flag: str, opt: str) -> tuple[str, object]:
    if "=" not in text:
        raise DefbenchError(
            f"{flag} {opt!r} must look like {'[DEFENSE:]' if 'defense' in flag else 'ATTACK:'}KEY=VALUE"
        )
    k, v = text.split("=", 1)
    k = k.strip()
    if not k:
        raise DefbenchError(f"{flag} {opt!r} has an empty KEY")
    try:
        return k, json.loads(v)
    except ValueError:
        return k, v.strip()


def _overrides(args, defenses: list[str], dataset: str = "fmnist") -> dict:
    """Per-defense overrides from --defense-config and --defense-opt, checked before any work: every target
    must be a defense of the run, every key one of its options, every value of the option's type (finite)."""
    in_run = set(defenses) | {base_name(d) for d in defenses}
    run_text = ", ".join(defenses)

    def target(name: str, where: str) -> str:
        label = check_name(name)
        if label not in in_run:
            raise DefbenchError(
                f"{where}: defense {label} is not in this run ({run_text}); add it to --defense or drop the option"
            )
        return label

    out: dict[str, dict] = {}
    if args.defense_config:
        for name, kv in load_config_file(args.defense_config).items():
            where = f"--defense-config {args.defense_config}"
            if not isinstance(kv, dict):
                raise DefbenchError(f"{where}: entry {name!r} must map option names to values")
            out.setdefault(target(name, where), {}).update(kv)
    configurable = [d for d in defenses if base_name(d) != "none"]
    for opt in args.defense_opt:
        tgt, kv = _split_target(opt)
        k, v = _kv(kv, "--defense-opt", opt)
        if tgt:
            name = target(tgt, f"--defense-opt {opt}")
        else:  # the help's own form KEY=VALUE: the one defense of the run (its variants share the base)
            bases = sorted({base_name(d) for d in configurable})
            if not bases:
                raise DefbenchError(f"--defense-opt {opt}: the run has no defense with options (only none)")
            if len(bases) > 1:
                raise DefbenchError(
                    f"--defense-opt {opt} names no defense and the run has several "
                    f"({', '.join(bases)}); write DEFENSE:{kv.strip()}"
                )
            name = bases[0]
        out.setdefault(name, {})[k] = v
    for d in defenses:  # every option that reaches a defense, variants' own included
        base, inline = split_variant(d)
        fields = defense_fields(base, dataset)
        for src, opts in ((base, out.get(base, {})), (d, out.get(d, {}) if d != base else {}), (d, inline)):
            if opts and not fields:
                raise DefbenchError(f"defense {base} takes no options (got {', '.join(sorted(opts))})")
            unknown = sorted(set(opts) - set(fields))
            if unknown:
                raise DefbenchError(
                    f"unknown option(s) {', '.join(unknown)} for defense {base}; valid: {', '.join(sorted(fields))}"
                )
            for k in list(opts):
                checked = check_value(opts[k], fields[k], f"option {k} of defense {src}")
                if k == "gan" and checked:  # a GAN replica tag: its form is checked now, not after training
                    parse_gan_tag(checked)
                if opts is not inline:
                    opts[k] = checked
    return out


def _attack_specs(args, dataset: str):

    text = args.attacks.strip().lower()
    if text == "none":
        names: list[str] = []
    elif text == "all":
        names = list(DEFAULT_ATTACKS)
    else:
        names = list(dict.fromkeys(a.lower() for a in _csv(args.attacks)))
        if not names:
            raise DefbenchError(f"--attacks {args.attacks!r} names no attack; give names, all or none")
    table = available()
    for n in names:
        if n not in table:
            raise DefbenchError(f"unknown attack {n!r}; choose one of: {', '.join(table)}, all, none")
    params: dict[str, dict] = {}
    for opt in args.attack_opt:
        a, kv = _split_target(opt)
        if not a:
            raise DefbenchError(f"--attack-opt {opt!r} must look like ATTACK:KEY=VALUE")
        a = a.lower()
        if a not in table:
            raise DefbenchError(f"--attack-opt {opt}: unknown attack {a!r}; choose one of: {', '.join(table)}")
        if a not in names:
            raise DefbenchError(
                f"--attack-opt {opt}: attack {a} is not in this run "
                f"({', '.join(names) or 'no attacks'}); add it to --attacks or drop the option"
            )
        k, v = _kv(kv, "--attack-opt", opt)

        defaults = {**COMMON_OPTIONS, **table[a].defaults}
        if k not in defaults:
            raise DefbenchError(f"unknown parameter {k} for attack {a}; valid: {', '.join(sorted(defaults)) or 'none'}")
        params.setdefault(a, {})[k] = check_value(v, defaults[k], f"--attack-opt {a}:{k}")
    eps_list: list[float | None] = [None]
    if args.eps is not None:
        eps_list = parse_eps(args.eps)
    specs = []
    for n in names:
        cls = table[n]
        for e in eps_list if cls.bounded else [None]:
            specs.append(AttackSpec(n, e, tuple(sorted(params.get(n, {}).items()))))
    return tuple(specs)


def run_matrix(args) -> int:

    check_dir(args.out)  # a file in its place or above it, no permission: said now, before any work
    if args.preset not in PRESETS:
        raise DefbenchError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}")
    dataset = canonical_name(args.dataset)
    classifier = check_classifier(args.classifier)
    if not split_names(args.defense):
        raise DefbenchError(f"--defense {args.defense!r} names no defense; give names or all")
    defenses = (
        list(DEFENSES) if args.defense.strip().lower() == "all" else [check_name(d) for d in split_names(args.defense)]
    )
    defenses = list(dict.fromkeys(defenses))
    if "none" not in defenses and not args.no_baseline:
        defenses.insert(0, "none")  # the undefended reference column, as in the papers' tables
    if not _csv(args.threat):
        raise DefbenchError(f"--threat {args.threat!r} names no threat model")
    threats = list(dict.fromkeys(check_threat(t) for t in _csv(args.threat)))
    n = args.n if args.n is not None else (100 if args.preset == "quick" else 500)
    repeats = args.eval_repeats if args.eval_repeats is not None else (1 if args.preset == "quick" else 3)
    threat_n = {check_threat(t): k for t, k in parse_threat_n(args.n_threat).items()}
    for t, k in threat_n.items():
        if t not in threats:
            raise DefbenchError(
                f"--n-threat {t}={k}: threat {t} is not in this run "
                f"({', '.join(threats)}); add it to --threat or drop the option"
            )
    spec = MatrixSpec(
        dataset=dataset,
        defenses=tuple(defenses),
        attacks=_attack_specs(args, dataset),
        threats=tuple(threats),
        n=n,
        seeds=tuple(args.seed + i for i in range(args.seeds)),
        batch_size=args.batch_size,
        preset=args.preset,
        device=str(resolve_device(args.device)),
        eot=args.eot,
        eval_repeats=repeats,
        threat_n=threat_n,
        defense_overrides=_overrides(args, defenses, dataset),
        data_root=args.data_root,
        out=args.out,
        progress=not args.no_progress,
        classifier=classifier,
    )

    executor = executor_from_args(args)  # a missing Ray is said before any model loads
    t0 = time.time()
    runner = matrix.MatrixRunner(spec)
    runner.run(executor)
    md = write_reports(runner.store, args.out)
    print(md)
    print(
        f"\n{len(runner.computed)} cells computed, {runner.skipped} reused from {runner.store.path} "
        f"in {time.time() - t0:.0f}s on {spec.device}"
    )
    if runner.failed:
        print(
            f"defbench: error: {len(runner.failed)} cell(s) failed and are not in the tables ("
            + "; ".join(f"{lbl}: {msg}" for lbl, msg in runner.failed[:3])
            + "); rerun to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


# ======================================================================================= paper
def add_paper_parser(sub, common) -> None:
    """Register ``defbench paper list`` and ``defbench paper run TABLE``."""
    pp = sub.add_parser(
        "paper",
        help="reproduce a paper's table: list the specs, run one against the paper",
        description="Paper tables as specs: 'list' shows them, 'run TABLE' runs one through the "
        "matrix runner (resumable store) and prints paper / ours / delta per cell.",
    )
    psub = pp.add_subparsers(dest="paper_cmd", metavar="ACTION")
    lp = psub.add_parser("list", help="list every paper table spec and whether it can run")
    lp.set_defaults(func=cmd_list)
    rp = psub.add_parser(
        "run",
        help="run one table (or a group such as invgan-table2) and compare to the paper",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  defbench paper run mimicgan-fig5b --preset quick --n 20\n"
        "  defbench paper run invgan-table2 --n 500",
    )
    rp.add_argument("table", help="table id from 'defbench paper list', or a group prefix (e.g. invgan-table2)")
    rp.add_argument(
        "--n",
        type=count_type("n"),
        default=None,
        help=f"images per cell (default the paper's n, 500 when the paper gives none; quick preset at most "
        f"{papers.QUICK_N})",
    )
    add_threat_n(rp)
    rp.add_argument("--preset", default="paper", help="paper (the papers' settings) | quick (smoke budgets)")
    rp.add_argument(
        "--out", default=None, help="store and report dir (default runs/paper/<dataset>-<preset>-n<N>-b<B>)"
    )
    add_executor_args(rp)
    common(rp)
    rp.set_defaults(func=cmd_run)
    pp.set_defaults(func=lambda args: (pp.print_help(), 0)[1])


def cmd_list(args) -> int:
    print(list_markdown(list(papers.TABLES.values())))
    return 0


def cmd_run(args) -> int:
    if not args.table.strip():
        raise DefbenchError("paper run needs a table id; see 'defbench paper list'")
    tables = papers.resolve(args.table)
    if args.preset not in PRESETS:
        raise DefbenchError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}")
    if args.out is not None:
        check_dir(args.out)  # a file in its place or above it, no permission: said before any work
    threat_n = parse_threat_n(args.n_threat)
    if len(tables) == 1 and not tables[0].runnable:
        raise DefbenchError(f"paper table {tables[0].id} is not yet supported: {tables[0].unsupported}")
    runnable = [t for t in tables if t.runnable]
    if not runnable:
        raise DefbenchError(
            f"no table of {args.table} can run yet: " + "; ".join(f"{t.id}: {t.unsupported}" for t in tables)
        )
    device = str(resolve_device(args.device))
    executor = executor_from_args(args)
    for t in runnable:
        res = papers.run_table(
            t,
            args.n,
            args.preset,
            device,
            args.seed,
            args.out,
            args.data_root,
            not args.no_progress,
            threat_n,
            executor=executor,
        )
        print(write_paper_report(res, res.out))
        print(
            f"\n{res.computed} cells computed, {res.reused} reused from {Path(res.out) / 'defbench.sqlite'} in "
            f"{res.seconds:.0f}s on {res.device}\n"
        )
        sys.stdout.flush()
    for t in tables:
        if not t.runnable:
            print(f"skipped {t.id}: not yet supported: {t.unsupported}")
    return 0
