"""``defbench matrix``: every attack against the chosen defenses under the chosen threat models, end to end, into
a resumable store, then the tables. Its input (defenses and their options, attacks and theirs, ε, threats, image
counts) is checked here, before any model loads."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import time

from defbench import DefbenchError
from defbench.attacks.registry import PLUGINS as ATTACK_PLUGINS
from defbench.attacks.registry import available as available_attacks
from defbench.attacks.registry import check_option, check_value, get_attack
from defbench.attacks.threats import THREATS, check_threat
from defbench.classifiers.registry import check_name as check_classifier
from defbench.cli.options import (
    add_classifier,
    add_common,
    add_executor,
    add_threat_n,
    count_type,
    csv_list,
    executor,
    key_value,
    load_config_file,
    lowered,
    parse_eps,
    parse_threat_n,
    split_target,
)
from defbench.datasets import canonical_name
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.defenses.registry import DEFENSES, base_name, check_name, split_names, split_variant
from defbench.defenses.registry import check_options as check_defense_options
from defbench.defenses.registry import plugins as defense_plugins
from defbench.defenses.ride import RIDEConfig
from defbench.harness import matrix as harness_matrix
from defbench.harness.matrix import DEFAULT_ATTACKS, AttackSpec, MatrixSpec
from defbench.harness.models import PRESETS, parse_gan_tag
from defbench.harness.store import check_dir
from defbench.reports.render import write_reports
from defbench.seeding import resolve_device


def add_parser(sub) -> None:
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
        "e.g. 'defensegan[restarts=1,latent_steps=50]' or 'mimicgan[gan=sub80-s1]' (a GAN replica); default mimicgan",
    )
    mp.add_argument("--dataset", default="fmnist", help="fmnist (default) | mnist | cifar10 | imagenet")
    add_classifier(mp)
    mp.add_argument(
        "--attacks",
        default="all",
        help=f"all (the default: {','.join(DEFAULT_ATTACKS)}), a comma list incl. plugins, or none (clean only)",
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
        "--seeds",
        type=count_type("seeds"),
        default=1,
        help="number of seeds (seed, seed+1, ...); each seed draws its own n test images and seeds the attacks' "
        "and defenses' randomness; tables give mean ± std over them (default 1)",
    )
    mp.add_argument(
        "--batch-size",
        type=count_type("batch-size"),
        default=100,
        help="images attacked and purified together (default 100)",
    )
    mp.add_argument(
        "--preset", type=lowered, default="paper", help="paper (the papers' settings; default) | quick (smoke budgets)"
    )
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
        "default 3 (paper) / 1 (quick). The attack's draws do not depend on it: the first purification is "
        "the one-purification cell's, under every threat",
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
    add_executor(mp)
    add_common(mp)
    mp.set_defaults(func=run)


def run(args) -> int:
    """Check the input, run the cells the store lacks, print the tables; exit 1 when a cell failed."""
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
    if not csv_list(args.threat):
        raise DefbenchError(f"--threat {args.threat!r} names no threat model")
    threats = list(dict.fromkeys(check_threat(t) for t in csv_list(args.threat)))
    # a plugin defense may have its own reparameterize() (known once it is built)
    harness_matrix.check_threats_apply(threats, defenses, lambda d: base_name(d) not in DEFENSES)
    n = args.n if args.n is not None else (100 if args.preset == "quick" else 500)
    repeats = args.eval_repeats if args.eval_repeats is not None else (1 if args.preset == "quick" else 3)
    threat_n = parse_threat_n(args.n_threat)
    for t, k in threat_n.items():
        if t not in threats:
            raise DefbenchError(
                f"--n-threat {t}={k}: threat {t} is not in this run "
                f"({', '.join(threats)}); add it to --threat or drop the option"
            )
    attacks = attack_specs(args, dataset)
    harness_matrix.check_used(threats, list(dict.fromkeys(a.name for a in attacks)), args.eot, args.eps)
    spec = MatrixSpec(
        dataset=dataset,
        defenses=tuple(defenses),
        attacks=attacks,
        threats=tuple(threats),
        n=n,
        seeds=tuple(args.seed + i for i in range(args.seeds)),
        batch_size=args.batch_size,
        preset=args.preset,
        device=str(resolve_device(args.device)),
        eot=args.eot,
        eval_repeats=repeats,
        threat_n=threat_n,
        defense_overrides=overrides(args, defenses, dataset),
        data_root=args.data_root,
        out=args.out,
        progress=not args.no_progress,
        classifier=classifier,
    )
    cells_executor = executor(args)  # a missing Ray is said before any model loads
    t0 = time.time()
    runner = harness_matrix.MatrixRunner(spec)
    runner.run(cells_executor)
    print(write_reports(runner.store, args.out))
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


# ---------------------------------------------------------------------------------- defenses and their options
def defense_fields(base: str, dataset: str) -> dict:
    """Every option of defense ``base`` with its default (the default's type is the option's type)."""
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
        return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    cfg = PAPER_CONFIGS[base]
    return {**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}, "gan": ""}


def overrides(args, defenses: list[str], dataset: str = "fmnist") -> dict:
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
    from_opts: dict[tuple[str, str], tuple[str, object]] = {}  # (defense, key) -> the --defense-opt that set it
    for opt in args.defense_opt:
        tgt, kv = split_target(opt)
        k, v = key_value(kv, "--defense-opt", opt)
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
        if (name, k) in from_opts and from_opts[(name, k)][1] != v:
            raise DefbenchError(
                f"--defense-opt {from_opts[(name, k)][0]} and --defense-opt {opt} set {name}'s {k} twice; give it once"
            )
        from_opts[(name, k)] = (opt, v)
        out.setdefault(name, {})[k] = v  # over --defense-config's value: the command line wins
    parsed = {d: split_variant(d) for d in defenses}  # (base name, the variant's own options)
    for d in defenses:  # every option that reaches a defense, variants' own included
        base, inline = parsed[d]
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
    for target, opts in out.items():  # an option every defense it reaches fixes in its own name would be ignored
        reached = [d for d in defenses if d == target or (d != parsed[d][0] and parsed[d][0] == target)]
        for k in opts:
            if all(k in parsed[d][1] for d in reached):
                raise DefbenchError(
                    f"option {k} of {target} (--defense-opt / --defense-config) is ignored: "
                    f"{', '.join(reached)} fix{'es' * (len(reached) == 1)} {k} in the name; give it in one place"
                )
    for d in defenses:  # ranges, choices and combinations, merged as the runner merges them: now, not after
        # the classifier and GAN have loaded (or trained, for hours) and a store exists
        check_defense_options(d, dataset, harness_matrix.defense_options(d, args.preset, out))
    return out


# ---------------------------------------------------------------------------------- attacks and their options
def attack_specs(args, dataset: str) -> tuple[AttackSpec, ...]:
    """The run's attacks (``--attacks``), each at every ``--eps`` when bounded, with their ``--attack-opt``
    parameters checked against the attack's options."""
    text = args.attacks.strip().lower()
    if text == "none":
        names: list[str] = []
    elif text == "all":
        names = list(DEFAULT_ATTACKS)
    else:
        names = list(dict.fromkeys(a.lower() for a in csv_list(args.attacks)))
        if not names:
            raise DefbenchError(f"--attacks {args.attacks!r} names no attack; give names, all or none")
    table = available_attacks()
    for n in names:
        if n not in table:
            raise ATTACK_PLUGINS.unknown(n, table, ", all, none")
    params: dict[str, dict] = {}
    for opt in args.attack_opt:
        a, kv = split_target(opt)
        if not a:
            raise DefbenchError(f"--attack-opt {opt!r} must look like ATTACK:KEY=VALUE")
        a = a.lower()
        if a not in table:
            raise DefbenchError(f"--attack-opt {opt}: {ATTACK_PLUGINS.unknown(a, table)}")
        if a not in names:
            raise DefbenchError(
                f"--attack-opt {opt}: attack {a} is not in this run "
                f"({', '.join(names) or 'no attacks'}); add it to --attacks or drop the option"
            )
        k, v = key_value(kv, "--attack-opt", opt)
        v = check_option(a, k, v, f"--attack-opt {a}:{k}")
        if k in params.get(a, {}) and params[a][k] != v:
            raise DefbenchError(f"--attack-opt sets {a}'s {k} twice ({params[a][k]!r} and {v!r}); give it once")
        params.setdefault(a, {})[k] = v
    for a, opts in params.items():
        get_attack(a, dataset, **opts)  # the attack's own checks (a positive step size, ...): now, before any work
    eps_list: list[float | None] = [None]
    if args.eps is not None:
        eps_list = parse_eps(args.eps)
    specs = []
    for n in names:
        cls = table[n]
        for e in eps_list if cls.bounded else [None]:
            specs.append(AttackSpec(n, e, tuple(sorted(params.get(n, {}).items()))))
    return tuple(specs)
