"""The ``matrix`` sub-command (and the hook where later sub-commands register)."""

from __future__ import annotations

import argparse
import time

from defbench import DefbenchError


def _csv(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def add_subcommands(sub, common) -> None:
    from defbench.attacks.threats import THREATS
    from defbench.defenses.registry import DEFENSES
    from defbench.harness.matrix import DEFAULT_ATTACKS

    mp = sub.add_parser(
        "matrix", help="run attacks x defenses end to end and print robust-accuracy and detection-AUC tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every attack against the chosen defense(s) under the chosen threat models, store one "
                    "row per cell in <out>/defbench.sqlite (a killed run resumes), and print the tables.",
        epilog="examples:\n  defbench matrix --defense mimicgan --preset quick\n"
               "  defbench matrix --defense all --threat graybox,bpda --n 500\n"
               "  defbench matrix --defense defensegan --attacks fgsm,pgd --eps 0.1,0.2,0.3")
    mp.add_argument("--defense", default="mimicgan", help=f"NAME, a,b or all; one of: {', '.join(DEFENSES)}; a variant fixes options in its name, "
                         "e.g. 'defensegan[restarts=1,latent_steps=50]' or 'mimicgan[gan=sub80-s1]' (a GAN replica)")
    mp.add_argument("--dataset", default="fmnist", help="fmnist (default) | mnist | cifar10 | imagenet")
    mp.add_argument("--attacks", default="all",
                    help=f"all (= {','.join(DEFAULT_ATTACKS)}), a comma list incl. plugins, or none (clean only)")
    mp.add_argument("--threat", default="graybox", help=f"comma list of: {', '.join(THREATS)} (default graybox)")
    mp.add_argument("--eps", default=None, help="ε (pixel units in [0, 1]) or a comma list to sweep; bounded attacks only")
    mp.add_argument("--n", type=int, default=None, help="test images per cell (default 500; quick preset 100)")
    add_threat_n(mp)
    mp.add_argument("--seeds", type=int, default=1, help="number of seeds (seed, seed+1, ...); mean ± std over them")
    mp.add_argument("--batch-size", type=int, default=100, help="images attacked and purified together (default 100)")
    mp.add_argument("--preset", default="paper", help="paper (the papers' settings) | quick (smoke budgets)")
    mp.add_argument("--eot", type=int, default=None,
                    help="EOT samples per BPDA gradient on randomized defenses (probabilities averaged, Athalye et "
                         "al. 2018); default 10 (paper) / 4 (quick); 1 turns EOT off (the report flags it)")
    mp.add_argument("--eval-repeats", type=int, default=None,
                    help="purifications per image for randomized defenses (correct = correct in all); "
                         "default 3 (paper) / 1 (quick)")
    mp.add_argument("--defense-opt", action="append", default=[], metavar="[DEFENSE:]KEY=VALUE",
                    help="override a defense hyperparameter, e.g. defensegan:restarts=4 (repeatable)")
    mp.add_argument("--defense-config", default=None, help="JSON file {defense: {key: value}} of overrides")
    mp.add_argument("--attack-opt", action="append", default=[], metavar="ATTACK:KEY=VALUE",
                    help="override an attack parameter, e.g. pgd:steps=100 (repeatable)")
    mp.add_argument("--no-baseline", action="store_true",
                    help="do not add the undefended classifier ('none') as a reference column")
    mp.add_argument("--out", default="runs/matrix", help="output dir: store, CSV, LaTeX, plots (default runs/matrix)")
    common(mp)
    mp.set_defaults(func=run_matrix)

    from defbench.harness.papers import add_parser as add_paper_parser

    add_paper_parser(sub, common)  # defbench paper list | paper run TABLE


def add_threat_n(parser) -> None:
    parser.add_argument("--n-threat", action="append", default=[], metavar="THREAT=N",
                        help="fewer images for an expensive threat, e.g. bpda=25 (repeatable): its cells attack a "
                             "seeded subset of the n images; every table gives each cell's n")


def parse_threat_n(opts: list[str]) -> dict[str, int]:
    """``["bpda=25"]`` -> ``{"bpda": 25}`` (threat names are checked by the matrix spec)."""
    out = {}
    for opt in opts:
        t, _, k = opt.partition("=")
        try:  # no '=' leaves k empty, which int() refuses too
            out[t.strip().lower()] = int(k)
        except ValueError:
            raise DefbenchError(f"--n-threat {opt!r} must look like THREAT=N, e.g. bpda=25") from None
    return out


def _overrides(args, defenses: list[str]) -> dict:
    from defbench.defenses.registry import check_name, load_json_object, parse_overrides

    out: dict[str, dict] = {}
    if args.defense_config:
        for name, kv in load_json_object(args.defense_config).items():
            if not isinstance(kv, dict):
                raise DefbenchError(f"--defense-config: entry {name!r} must map option names to values")
            out.setdefault(check_name(name), {}).update(kv)
    for opt in args.defense_opt:
        target, _, kv = opt.rpartition(":") if ":" in opt.split("=", 1)[0] else ("", "", opt)
        names = [check_name(target)] if target else defenses
        for n in names:
            out.setdefault(n, {}).update(parse_overrides([kv]))
    return out


def _attack_specs(args, dataset: str):
    from defbench.attacks.registry import available
    from defbench.defenses.registry import parse_overrides
    from defbench.harness.matrix import DEFAULT_ATTACKS, AttackSpec

    if args.attacks.strip().lower() == "none":
        return ()
    names = list(DEFAULT_ATTACKS) if args.attacks.strip().lower() == "all" else [a.lower() for a in _csv(args.attacks)]
    table = available()
    for n in names:
        if n not in table:
            raise DefbenchError(f"unknown attack {n!r}; choose one of: {', '.join(table)}, all, none")
    params: dict[str, dict] = {}
    for opt in args.attack_opt:
        if ":" not in opt:
            raise DefbenchError(f"--attack-opt {opt!r} must look like ATTACK:KEY=VALUE")
        a, kv = opt.split(":", 1)
        params.setdefault(a.lower(), {}).update(parse_overrides([kv]))
    eps_list: list[float | None] = [None]
    if args.eps:
        try:
            eps_list = [float(e) for e in _csv(args.eps)]
        except ValueError:
            raise DefbenchError(f"--eps {args.eps!r} must be a number or a comma list of numbers") from None
        for e in eps_list:
            if not 0 <= e <= 1:
                raise DefbenchError(f"epsilon {e} is outside [0, 1] (pixel units)")
    specs = []
    for n in names:
        cls = table[n]
        for e in (eps_list if cls.bounded else [None]):
            specs.append(AttackSpec(n, e, tuple(sorted(params.get(n, {}).items()))))
    return tuple(specs)


def run_matrix(args) -> int:
    from defbench.attacks.threats import check_threat
    from defbench.defenses.registry import DEFENSES, check_name, split_names
    from defbench.harness.data import canonical_name
    from defbench.harness.matrix import MatrixRunner, MatrixSpec
    from defbench.harness.models import PRESETS
    from defbench.harness.seeding import resolve_device
    from defbench.reports.render import write_reports

    if args.preset not in PRESETS:
        raise DefbenchError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}")
    dataset = canonical_name(args.dataset)
    defenses = list(DEFENSES) if args.defense.strip().lower() == "all" else [check_name(d) for d in split_names(args.defense)]
    if "none" not in defenses and not args.no_baseline:
        defenses.insert(0, "none")  # the undefended reference column, as in the papers' tables
    threats = [check_threat(t) for t in _csv(args.threat)]
    n = args.n if args.n is not None else (100 if args.preset == "quick" else 500)
    if n < 1:
        raise DefbenchError(f"--n must be positive, got {n}")
    if args.seeds < 1:
        raise DefbenchError(f"--seeds must be >= 1, got {args.seeds}")
    repeats = args.eval_repeats if args.eval_repeats is not None else (1 if args.preset == "quick" else 3)
    spec = MatrixSpec(dataset=dataset, defenses=tuple(defenses), attacks=_attack_specs(args, dataset),
                      threats=tuple(threats), n=n, seeds=tuple(args.seed + i for i in range(args.seeds)),
                      batch_size=args.batch_size, preset=args.preset, device=str(resolve_device(args.device)),
                      eot=args.eot, eval_repeats=repeats, threat_n=parse_threat_n(args.n_threat),
                      defense_overrides=_overrides(args, defenses),
                      data_root=args.data_root, out=args.out, progress=not args.no_progress)
    t0 = time.time()
    runner = MatrixRunner(spec)
    runner.run()
    md = write_reports(runner.store, args.out)
    print(md)
    print(f"\n{len(runner.computed)} cells computed, {runner.skipped} reused from {runner.store.path} "
          f"in {time.time() - t0:.0f}s on {spec.device}")
    return 0
