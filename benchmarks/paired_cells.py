"""Defenses compared on the same images: paired counts and an exact McNemar test between the cells of a store.

Two accuracies with overlapping Wilson intervals may still differ, and two that look apart may not: cells of one
run are measured on the same test images, so the question is how many images one defense gets right that the
other gets wrong. For every pair of defenses under one (attack, threat) of the store, the table gives both right,
only the first, only the second, both wrong, and the exact two-sided McNemar p-value (a binomial test of the
discordant images at 1/2). An adaptive attack (BPDA) makes each defense's adversarials against that defense, so a
pair is the same clean image attacked twice, not one input purified twice.

    python benchmarks/paired_cells.py --store runs/paper/mnist-paper-n100-b100 --attack PGD --threat bpda \\
        --out benchmarks/results/paired_ride_table2_mnist.md

With ``--versus-clean`` each attacked cell is paired with its own defense's clean cell (on the attacked cell's
images, a subset when ``--n-threat`` ran it on fewer): what the attack keeps, takes and turns right.

With ``--against OTHER_STORE`` each cell is paired instead with the cell of the other run that has the same
defense, threat and attack settings (same ε; the models a white-box attack differentiates may differ): two runs
of one table that differ in one thing (a prior swapped in the zoo, a code change), on the same images. Add
``--against-attack LABEL`` when that one thing is an attack setting: each cell is then paired with the other run's
cell of the same defense, threat and ε under the attack stored as LABEL (``FGSM (predicted labels)`` against
``FGSM``).

With ``--pool-seeds 0 1 2`` the pairs table pools each defense's cells of those seeds of a ``--seeds`` run (each
seed draws its own images; an image pairs with itself within its seed): one test over all of them, where one
seed's 100 images cannot separate a few points.

A defense needs one cell where a table pairs it: a store holding two (PGD at 10 and at 20 steps run into one
--out, both labelled PGD; cells of two classifiers) is refused, and ``--attack 'PGD steps=20'`` (the report's
row name) picks one setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

from _common import command_line, emit, markdown

from defbench import DefbenchError
from defbench.harness.store import Store
from defbench.metrics import mcnemar_p, paired_counts
from defbench.reports.common import attack_key, attack_names, eps_equal, is_clean


def correct_by_image(row: dict) -> dict[int, bool]:
    return {int(i): int(p) == int(y) for i, p, y in zip(row["indices"], row["preds"], row["labels"], strict=True)}


#: the columns of a pairs table
PAIRS_HEADER = ["pair (A vs B)", "images", "right: A / B", "both right", "only A", "only B", "both wrong", "McNemar p"]


def defense_of(cells: dict | list[dict]) -> str:
    """The defense of a cell, or of the first of several cells (one per seed) of one defense."""
    return (cells if isinstance(cells, dict) else cells[0])["defense"]


def pooled_correct(cells: dict | list[dict]) -> dict:
    """Right or wrong per image of one cell; of several cells (one per seed) keyed by (seed, image), so that
    images pair within their seed."""
    if isinstance(cells, dict):
        return correct_by_image(cells)
    return {(c["seed"], i): ok for c in cells for i, ok in correct_by_image(c).items()}


def pair_row(label: str, a: dict | list[dict], b: dict | list[dict]) -> list[object]:
    """One table row: cells ``a`` and ``b`` (or the cells of several seeds each) on the images both hold (paired
    counts and McNemar's p)."""
    ca, cb = pooled_correct(a), pooled_correct(b)
    common = sorted(set(ca) & set(cb))
    if not common:
        raise DefbenchError(f"cells {defense_of(a)} and {defense_of(b)} share no test image")
    both, only_a, only_b, neither = paired_counts([ca[i] for i in common], [cb[i] for i in common])
    return [
        label,
        len(common),
        f"{both + only_a} / {both + only_b}",
        both,
        only_a,
        only_b,
        neither,
        f"{mcnemar_p(only_a, only_b):.3g}",
    ]


def pairs(rows: list[dict] | list[list[dict]]) -> list[list[object]]:
    """One table row per pair of cells (in the order given), on the images both cells hold; an entry may be the
    cells of one defense at several seeds, pooled."""
    return [pair_row(f"{defense_of(a)} vs {defense_of(b)}", a, b) for a, b in itertools.combinations(rows, 2)]


def cell_name(row: dict) -> str:
    eps = (row.get("attack_config") or {}).get("eps")
    return row["defense"] + (f" @ ε {eps:g}" if eps is not None else "")


def twin_key(row: dict) -> tuple[str, str, str]:
    """A cell's identity across runs: defense, threat and the attack's settings without the hashes of the models
    it differentiates (a white-box attack through another prior is the same attack on another model)."""
    attack = {k: v for k, v in row["attack_config"].items() if k != "model_sha256"}
    return row["defense"], row["threat"], json.dumps(attack, sort_keys=True, default=str)


def twins(row: dict, others: list[dict], any_attack: bool) -> list[dict]:
    """The cells of ``others`` that :func:`across` may pair with ``row``."""
    if not any_attack:
        return [o for o in others if twin_key(o) == twin_key(row)]
    eps = row["attack_config"].get("eps")
    return [
        o
        for o in others
        if o["defense"] == row["defense"]
        and o["threat"] == row["threat"]
        and eps_equal(o["attack_config"].get("eps"), eps)
    ]


def across(
    rows: list[dict], others: list[dict], any_attack: bool = False, left: list[str] | None = None
) -> list[list[object]]:
    """One table row per cell of ``rows`` with a twin in ``others`` (:func:`twin_key`); ``any_attack``: the twin
    is the cell of the same defense, threat and ε whatever the attack's other settings (``others`` holds one
    attack: the one variable changed). The cells without a twin are named in ``left`` when it is given."""
    if left is not None:
        left += [cell_name(r) for r in rows if not twins(r, others, any_attack)]
    if not any_attack:
        twin = {twin_key(r): r for r in one_each(others, "--against", twin_key)}
        return [pair_row(cell_name(r), r, twin[twin_key(r)]) for r in rows if twin_key(r) in twin]
    out = []
    for r in rows:
        match = twins(r, others, True)
        if len(match) > 1:
            raise SystemExit(f"{len(match)} cells of {r['defense']} could be the twin of {cell_name(r)}: one needed")
        out += [pair_row(cell_name(r), r, match[0])] if match else []
    return out


def versus_clean(rows: list[dict], clean: list[dict], left: list[str] | None = None) -> list[list[object]]:
    """One table row per attacked cell of ``rows`` whose defense has a clean cell in ``clean``: the clean cell
    (A) against the attacked one (B) on the attacked cell's images — how many images right when clean the
    attack keeps (both right) or takes (only A), and how many it turns right (only B). The cells without a
    clean cell are named in ``left`` when it is given."""
    by = clean_by_defense(clean, {r["defense"] for r in rows})
    if left is not None:
        left += [cell_name(r) for r in rows if r["defense"] not in by]
    return [pair_row(f"{cell_name(r)}: clean vs attacked", by[r["defense"]], r) for r in rows if r["defense"] in by]


def at_eps(rows: list[dict], eps: float | None) -> list[dict]:
    """The cells at ``eps`` (all when None); a defense holding cells at several ε (an ``--eps`` sweep) without
    ``eps`` is refused: pairing would pick one of them silently."""
    if eps is not None:
        return [r for r in rows if eps_equal(r["attack_config"].get("eps"), eps)]
    seen: dict[str, set] = {}
    for r in rows:
        seen.setdefault(r["defense"], set()).add(r["attack_config"].get("eps"))
    for d, found in seen.items():
        if len(found) > 1:
            values = ", ".join(f"{v:g}" for v in sorted(v for v in found if v is not None))
            raise SystemExit(f"{d} has cells at several ε ({values}) in this store: choose one with --eps")
    return rows


def select(store_dir: str, attack: str, threat: str, seed: int) -> list[dict]:
    """The cells of ``seed`` under ``threat`` (under BPDA with the undefended gray-box cell) whose attack is
    ``attack``: its stored label (``PGD``, or ``clean``) or the name the report's tables give it where several
    settings share that label (``PGD steps=20``)."""
    store = Store(store_dir)
    try:
        rows = [
            r
            for r in store.rows(seed=seed)
            if r["threat"] == threat or (threat == "bpda" and r["defense"] == "none" and r["threat"] == "graybox")
        ]
    finally:
        store.close()
    shown = attack_names(rows)
    return [
        r
        for r in rows
        if (r["attack_config"].get("label") or r["attack"]) == attack
        or (not is_clean(r) and shown.get(attack_key(r)) == attack)
    ]


def clean_by_defense(clean: list[dict], defenses) -> dict[str, dict]:
    """The clean cell of each of ``defenses`` that ``clean`` holds, by defense; two clean cells of one of them
    (another classifier or setting) are refused by :func:`one_each`, those of other defenses are not looked at."""
    wanted = [c for c in clean if c["defense"] in set(defenses)]
    return {r["defense"]: r for r in one_each(wanted, "clean", lambda r: r["defense"])}


def one_each(rows: list[dict], what: str, key=cell_name) -> list[dict]:
    """``rows``, refused (one line) when a defense holds two of them at one ε: cells of other attack settings
    under one label (``PGD`` at 10 and at 20 steps, run into one --out) or of another classifier. A pair would
    take one of them silently, or pair them with each other as if they were two defenses. ``key``: what must be
    unique (default :func:`cell_name`: defense and ε)."""
    by: dict[object, list[dict]] = {}
    for r in rows:
        by.setdefault(key(r), []).append(r)
    for cells in by.values():
        if len(cells) > 1:
            name = cell_name(cells[0])
            shown = attack_names(cells)
            labels = sorted({"clean" if is_clean(c) else shown[attack_key(c)] for c in cells})
            differ = f"attacks {', '.join(labels)}" if len(labels) > 1 else "cells of other models or settings"
            raise SystemExit(
                f"{len(cells)} {what} cells of {name} in one store ({differ}) where one is needed: a table would "
                "pick one silently or show both under one name; "
                + ("name one with --attack as the report's table does" if len(labels) > 1 else "keep one per --out")
            )
    return rows


def pick_defenses(rows: list[dict], args: argparse.Namespace) -> list[dict]:
    """The rows of the defenses named by --defenses, in that order (every row when none is named); a named defense
    without a cell exits with one line naming it (also used by cell_classes.py)."""
    if not args.defenses:
        return rows
    missing = [d for d in args.defenses if not any(r["defense"] == d for r in rows)]
    if missing:
        raise SystemExit(f"no {args.attack}/{args.threat} cell of {', '.join(missing)} in {args.store}")
    return [r for d in args.defenses for r in rows if r["defense"] == d]


def chosen_cells(args: argparse.Namespace, seed: int) -> list[dict]:
    """The cells of ``seed`` that --attack, --threat, --defenses and --eps pick, in --defenses' order."""
    rows = select(args.store, args.attack, args.threat, seed)
    rows = [r for r in rows if not args.defenses or r["defense"] in args.defenses]
    if args.eps is not None or not (args.versus_clean or args.against):  # a pair of defenses needs one ε each
        rows = at_eps(rows, args.eps)
    # after --eps: a defense without a cell at that ε is named
    return one_each(pick_defenses(rows, args), f"{args.attack}/{args.threat}")


def cell_arguments(ap: argparse.ArgumentParser, what: str) -> None:
    """The options that pick a store's cells: --store, --attack, --threat, --defenses (``what`` they are for),
    --seed (also used by cell_classes.py)."""
    ap.add_argument("--store", required=True, help="a run's output dir (its defbench.sqlite)")
    ap.add_argument(
        "--attack",
        default="clean",
        help="attack label as stored (PGD, FGSM, ...), the report's row name where settings share a label "
        "('PGD steps=20'), or clean",
    )
    ap.add_argument("--threat", default="none", help="graybox | bpda | reparam | none (clean)")
    ap.add_argument("--defenses", nargs="*", help=f"defenses to {what}, in this order (default: all in the store)")
    ap.add_argument("--seed", type=int, default=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cell_arguments(ap, "pair")
    ap.add_argument(
        "--against",
        metavar="OTHER_STORE",
        help="pair each cell with the same cell (defense, threat, attack and ε) of another run instead",
    )
    ap.add_argument(
        "--against-attack",
        metavar="LABEL",
        help="with --against: pair with the other run's cells of this attack label (an attack setting changed)",
    )
    ap.add_argument(
        "--versus-clean",
        action="store_true",
        help="pair each cell with the same defense's clean cell instead (what the attack keeps, takes, fixes)",
    )
    ap.add_argument("--eps", type=float, help="the cells at this ε (needed when the store swept ε)")
    ap.add_argument(
        "--pool-seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="pair each defense's cells of these seeds together (images paired within their seed; counts and "
        "McNemar's p over all of them) instead of one --seed's",
    )
    ap.add_argument("--out", help="write the Markdown table here too")
    args = ap.parse_args(argv)
    if args.pool_seeds:
        return pooled(args, argv)
    if args.against_attack and not args.against:
        raise SystemExit("--against-attack pairs with another run's cells: it needs --against")
    rows = chosen_cells(args, args.seed)
    if args.versus_clean or args.against:
        left: list[str] = []  # the cells of --store that the table cannot hold: named under it
        if args.versus_clean:
            body = versus_clean(rows, select(args.store, "clean", "none", args.seed), left)
            first = "clean, B: attacked"
            why = "its defense's clean cell on the attacked cell's images (only A: right when clean, wrong attacked)."
            missing = "has a clean cell beside it"
        else:
            other_attack = args.against_attack or args.attack
            others = select(args.against, other_attack, args.threat, args.seed)
            body = across(rows, others, bool(args.against_attack), left)
            first = "--store, B: --against"
            why = "the cell of the other run that has the same defense, threat and attack settings."
            if args.against_attack:
                why = f"the other run's {other_attack} cell of the same defense, threat and ε."
            missing = f"has a twin in {args.against}"
        if not body:
            raise SystemExit(f"no {args.attack}/{args.threat} cell of {args.store} {missing}")
        header = [f"cell (A: {first})", "images", "right: A / B", "both right", "only A", "only B"]
        header += ["both wrong", "McNemar p"]
        return emit(
            [
                f"Command: `{command_line(argv)}`  ",
                f"Cells: attack {args.attack}, threat {args.threat}, seed {args.seed}; each paired with {why}",
                "",
                *markdown(body, header, ["left"] + ["right"] * (len(header) - 1)),
                *(["", f"Not in the table, having no {missing.split(' ', 2)[2]}: {', '.join(left)}."] if left else []),
            ],
            args.out,
        )
    if len(rows) < 2:
        raise SystemExit(f"fewer than two {args.attack}/{args.threat} cells in {args.store}")
    header = PAIRS_HEADER
    lines = [
        f"Command: `{command_line(argv)}`  ",
        f"Cells: attack {args.attack}, threat {args.threat}, seed {args.seed} (the undefended cell of a BPDA "
        "run is its gray-box cell: BPDA through no defense is the attack on the classifier).",
        "",
        *markdown(pairs(rows), header, ["left"] + ["right"] * (len(header) - 1)),
    ]
    return emit(lines, args.out)


def pooled(args: argparse.Namespace, argv) -> int:
    """The pairs table over several seeds: each defense's cell at every seed named, pooled (--pool-seeds)."""
    if args.versus_clean or args.against:
        raise SystemExit("--pool-seeds pairs defenses of one store: not with --versus-clean or --against")
    per_seed = [chosen_cells(args, seed) for seed in args.pool_seeds]
    names = [r["defense"] for r in per_seed[0]]
    for seed, rows in zip(args.pool_seeds, per_seed, strict=True):
        have = [r["defense"] for r in rows]
        if sorted(have) != sorted(names):
            missing = sorted(set(names) ^ set(have))
            raise SystemExit(f"seed {seed} lacks or adds {args.attack}/{args.threat} cells of {', '.join(missing)}")
    if len(names) < 2:
        raise SystemExit(f"fewer than two {args.attack}/{args.threat} cells in {args.store}")
    groups = [[r for rows in per_seed for r in rows if r["defense"] == d] for d in names]
    header = PAIRS_HEADER
    seeds = ", ".join(map(str, args.pool_seeds))
    lines = [
        f"Command: `{command_line(argv)}`  ",
        f"Cells: attack {args.attack}, threat {args.threat}, seeds {seeds} pooled: each defense's cells of those "
        "seeds together, an image paired with itself within its seed.",
        "",
        *markdown(pairs(groups), header, ["left"] + ["right"] * (len(header) - 1)),
    ]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
