"""Why BPDA collapses DefenseGAN and InvGAN on Fashion-MNIST (InvGAN Table 2: 59 / 71%; ours 0-5%), one
hypothesis at a time (issue: papers' tables, second pass, item 4).

Every reading is one ``defbench matrix`` cell pair (clean + BPDA PGD) on the same seeded test images, the paper
preset's models and settings, with exactly one thing changed from the base reading:

* base: PGD ε = 0.3, 40 steps (cleverhans MadryEtAl's travel), EOT 1 and one purification per evaluation
  (the 2019 paper's protocol had no EOT; EOT can only strengthen the attack, so EOT 1 is the reading most
  favourable to the defense);
* budget: ε = 0.15 (ε = 0.3 on images in [-1, 1], the pixel range of the GAN's tanh and of many cleverhans
  models of the time, is 0.15 on our [0, 1] images);
* attack steps: 10 PGD steps (same total travel, step 0.04) instead of 40;
* attack travel: 10 PGD steps of 0.01 or 0.02 (total travel 0.1 or 0.2 instead of 0.4; the papers state no
  BPDA step size, and a shorter travel is a weaker attack);
* projection steps: DefenseGAN L = 50 or 400 instead of 200 (R = 10 kept); InvGAN T = 200 or 2000 instead of
  1000;
* attack: CW-L2 through the same BPDA model instead of PGD (readings D7 / I7): InvGAN's code, which the paper
  names, lists ``bpda-l2`` among the attack types of Tables 2 and 3, a Carlini-Wagner L2 attack whose loss is
  read at the projection and whose gradient passes to the input unchanged, with 4 binary-search steps of 100
  iterations at lr 0.2 from the constant 10 (``whitebox.py``). Here it is foolbox's CW-L2 (defbench's ``cw`` with
  ``binary_search_steps=4``) handed the BPDA model. Two differences from that code remain: InvGAN's BPDA
  backward here is x ↦ G(I(x)), the code's is the identity, and the code reads CW's distance term at the
  projection (after a second tanh squashing of it), foolbox at the input. Each iteration purifies once: GPU
  work at the paper's n (D7 was measured on 10 images on this CPU in 70 min: docs/RESULTS.md).

* BPDA backward (reading I8): the identity, as InvGAN's code's straight-through attack has it, instead of the
  gradient of x ↦ G(I(x)) that the other InvGAN readings keep (``--defense-opt invgan:bpda_stand_in=identity``
  against ``=auto``); DefenseGAN's backward is the identity already. At n = 100 the identity left InvGAN 3% where
  G(I(x)) left 26 (same CPU, same images), so InvGAN's paper config hands BPDA the identity since 2026-12-04
  (docs/RESULTS.md). Reading I10 is I7's CW-L2 on that backward: the code's `bpda-l2` for InvGAN's column as the
  code runs it (I7 keeps G(I(x)), as first measured), paired with I8 so that only the attack changes.

The prior is one more hypothesis: ``--home DIR`` runs the same readings with the models of another zoo
(``DIR/zoo``, e.g. a GAN trained with another recipe; a missing encoder is trained there on demand). The table
names the GAN the readings used: its sha256, D's normalisation and the epoch its run kept.

Each cell runs through the CLI into ``--work``/<reading> (its store makes a rerun free), and the table gives clean
and BPDA accuracy as k / n with the Wilson 95% interval, and the BPDA cell's detection AUC (InvGAN Table 3's
column: every clean image against every attacked one, as InvGAN's code computes it, Hanley–McNeil 95%). ``--compare
OTHER_WORK`` pairs each reading's BPDA cell with the same reading's cell in another work dir (e.g. the base zoo's
run) on the images both hold: right in both, only here, only there, in neither, and the exact McNemar p-value.
``--pair-base`` pairs each reading's BPDA cell the same way with its own defense's base reading (D0 or I0) in this
work dir: the one change, paired.

    OMP_NUM_THREADS=1 python benchmarks/bpda_causes.py --n 20 --out benchmarks/results/bpda_causes_fmnist.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from _common import auc_cell, command_line, data_root, dataset_name, markdown, write_table
from paired_cells import correct_by_image

from defbench.datasets import class_names, home_dir
from defbench.harness import zoo
from defbench.harness.store import DB_NAME, Store
from defbench.metrics import mcnemar_p, paired_counts, wilson_interval
from defbench.reports.common import detection_auc_all

#: PGD at 10 steps of the given size: travel 0.1 / 0.2 where the base travels 0.4
TRAVEL = {step: ["--attack-opt", "pgd:steps=10", "--attack-opt", f"pgd:step={step}"] for step in (0.01, 0.02)}

#: each defense's base reading, which every other reading of that defense changes one thing of
BASE = {"defensegan": "D0", "invgan": "I0"}

#: the InvGAN readings keep the BPDA backward they were first measured with, x ↦ G(I(x)) (``auto``: the rule of
#: cells stored before the option, so their stores are reused); I8 changes it to the identity, InvGAN's default
#: since 2026-12-04
GII = ["--defense-opt", "invgan:bpda_stand_in=auto"]
#: InvGAN's default backward since then, the identity (readings I8, I9)
IDENTITY = ["--defense-opt", "invgan:bpda_stand_in=identity"]

#: label -> (hypothesis, defense, extra matrix arguments)
READINGS: dict[str, tuple[str, str, list[str]]] = {
    "D0": ("base", "defensegan", ["--eps", "0.3"]),
    "D1": ("budget: ε 0.15", "defensegan", ["--eps", "0.15"]),
    "D2": ("attack: 10 PGD steps", "defensegan", ["--eps", "0.3", "--attack-opt", "pgd:steps=10"]),
    "D5": ("attack: 10 steps of 0.01", "defensegan", ["--eps", "0.3", *TRAVEL[0.01]]),
    "D6": ("attack: 10 steps of 0.02", "defensegan", ["--eps", "0.3", *TRAVEL[0.02]]),
    "D3": ("projection: L = 50", "defensegan", ["--eps", "0.3", "--defense-opt", "defensegan:latent_steps=50"]),
    "D4": ("projection: L = 400", "defensegan", ["--eps", "0.3", "--defense-opt", "defensegan:latent_steps=400"]),
    "I0": ("base", "invgan", ["--eps", "0.3", *GII]),
    "I1": ("budget: ε 0.15", "invgan", ["--eps", "0.15", *GII]),
    "I2": ("attack: 10 PGD steps", "invgan", ["--eps", "0.3", "--attack-opt", "pgd:steps=10", *GII]),
    "I5": ("attack: 10 steps of 0.01", "invgan", ["--eps", "0.3", *TRAVEL[0.01], *GII]),
    "I6": ("attack: 10 steps of 0.02", "invgan", ["--eps", "0.3", *TRAVEL[0.02], *GII]),
    "I3": ("projection: T = 200", "invgan", ["--eps", "0.3", "--defense-opt", "invgan:latent_steps=200", *GII]),
    "I4": ("projection: T = 2000", "invgan", ["--eps", "0.3", "--defense-opt", "invgan:latent_steps=2000", *GII]),
    "D7": ("attack: CW-L2 (InvGAN's code's bpda-l2)", "defensegan", ["--attack-opt", "cw:binary_search_steps=4"]),
    "I7": ("attack: CW-L2 (InvGAN's code's bpda-l2)", "invgan", ["--attack-opt", "cw:binary_search_steps=4", *GII]),
    "I8": (
        "BPDA backward: the identity (InvGAN's code; its default since), not G(I(x))",
        "invgan",
        ["--eps", "0.3", *IDENTITY],
    ),
    "I9": (
        "I5 (10 steps of 0.01) with I8's identity backward: paired with I8, the travel alone",
        "invgan",
        ["--eps", "0.3", *TRAVEL[0.01], *IDENTITY],
    ),
    "I10": (
        "I7 (CW-L2) with I8's identity backward, InvGAN's code's bpda-l2 as it runs: paired with I8, the attack alone",
        "invgan",
        ["--attack-opt", "cw:binary_search_steps=4", *IDENTITY],
    ),
}

#: readings whose one change is measured against another reading than their defense's base
PAIR_WITH = {"I9": "I8", "I10": "I8"}

#: the BPDA attack of a reading: PGD unless the reading changes it
ATTACKS = {"D7": "cw", "I7": "cw", "I10": "cw"}


def attack_of(label: str) -> str:
    return ATTACKS.get(label, "pgd")


def read_cells(out: Path) -> dict[str, dict]:
    """A reading's cells by attack (``clean``, ``pgd``) as stored: counts, predictions and their own wall time."""
    store = Store(out)
    try:
        return {r["attack"]: r for r in store.rows()}
    finally:
        store.close()


def bpda_cell(work: Path, label: str) -> dict:
    """The stored BPDA cell of reading ``label`` in ``work``, or a one-line exit that says to run that reading first
    (without creating a store where there was none)."""
    out = Path(work) / label
    cell = read_cells(out).get(attack_of(label)) if (out / DB_NAME).exists() else None
    if cell is None:
        raise SystemExit(f"no BPDA cell of reading {label} in {work}: run it there first (--only {label})")
    return cell


def paired_bpda(here: dict, there: dict) -> str:
    """Two BPDA cells of one reading paired on their common images: both / only here / only there / neither (p)."""
    a, b = correct_by_image(here), correct_by_image(there)
    common = sorted(set(a) & set(b))
    both, only_a, only_b, neither = paired_counts([a[i] for i in common], [b[i] for i in common])
    # two significant figures, not two decimals: a change of 47 images against 0 is p = 1.4e-14, not "0.00"
    return f"{both} / {only_a} / {only_b} / {neither} (p = {mcnemar_p(only_a, only_b):.2g})"


def detection_cell(clean: dict, attacked: dict) -> str:
    """The BPDA cell's detection AUC (InvGAN's score, every clean image against every attacked one: how InvGAN's
    code computes Table 3) with its Hanley–McNeil 95% interval; "—" where the scores rank nothing."""
    return auc_cell(*detection_auc_all(clean, attacked))


def run_reading(label: str, args) -> list[object]:
    hypothesis, defense, extra = READINGS[label]
    attack = attack_of(label)
    out = Path(args.work) / label
    cmd = [sys.executable, "-m", "defbench", "matrix", "--dataset", args.dataset, "--preset", "paper"]
    cmd += ["--defense", defense, "--attacks", attack, "--threat", "bpda", "--n", str(args.n), "--eot", "1"]
    cmd += ["--eval-repeats", "1", "--no-baseline", "--no-progress", "--out", str(out), *extra]
    env = {**os.environ, **({"DEFBENCH_HOME": args.home} if args.home else {})}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    got = read_cells(out)
    row: list[object] = [label, defense, hypothesis]
    for name in ("clean", attack):
        n, k = got[name]["n"], got[name]["correct"]
        lo, hi = wilson_interval(k, n)
        row.append(f"{k}/{n} ({100 * lo:.0f}–{100 * hi:.0f})")
    bpda = got[attack]
    row.append(detection_cell(got["clean"], bpda))
    names = class_names(args.dataset)
    kept = [names[y] for y, p in zip(bpda["labels"], bpda["preds"], strict=True) if y == p]
    row += [", ".join(sorted(kept)) or "—", f"{bpda['wall_seconds']:.0f} ({bpda['device']})"]
    if args.compare:
        row.append(paired_bpda(bpda, bpda_cell(args.compare, label)))
    return row


def describe_prior(home: Path, dataset: str) -> str:
    """The paper-preset GAN of ``home``'s zoo as its manifest records it (or that there is none yet)."""
    manifest = zoo.manifest_or_none(zoo.model_id("gan", dataset, "paper"), root=home / "zoo")
    if manifest is None:
        return f"no gan-{dataset}-paper in {home}/zoo yet (the first reading trains it)"
    config, metrics = manifest.get("config", {}), manifest.get("metrics", {})
    norm = "spectral norm" if config.get("spectral_norm") else "batch norm"
    kept = f"epoch {metrics.get('best_epoch', '?')} of {metrics.get('epochs_done', '?')} run"
    return f"gan-{dataset}-paper sha256 {manifest.get('sha256', '?')[:8]} (D with {norm}; {kept})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=dataset_name, default="fmnist")
    ap.add_argument("--n", type=int, default=20, help="test images per cell (default 20)")
    ap.add_argument("--only", nargs="+", choices=sorted(READINGS), help="readings to run (default all)")
    ap.add_argument("--work", default="runs/bpda_causes", help="one matrix output dir per reading")
    ap.add_argument("--out", default="benchmarks/results/bpda_causes.md")
    ap.add_argument("--home", help="run with the models of this DEFBENCH_HOME (the prior hypothesis)")
    ap.add_argument("--compare", help="another --work dir whose readings to pair with these (BPDA cells)")
    ap.add_argument(
        "--pair-base", action="store_true", help="pair each reading's BPDA cell with its defense's base (D0 / I0)"
    )
    args = ap.parse_args(argv)
    data_root()
    header = [
        "reading",
        "defense",
        "one change from the base",
        "clean",
        "BPDA (PGD unless the change says)",
        "BPDA detection AUC, all images",
        "classes kept under BPDA",
        "BPDA cell (s, device)",
    ]
    rows = []
    for label in args.only or list(READINGS):
        rows.append(run_reading(label, args))
        print(" | ".join(map(str, rows[-1])), flush=True)
    align = ["left"] * 3 + ["right"] * 3 + ["left", "right"]
    if args.compare:
        header.append(f"BPDA paired with {args.compare}: both / only here / only there / neither (McNemar p)")
        align.append("right")
    if args.pair_base:
        for row in rows:  # after every reading ran, so a base listed last is there too
            label, base = row[0], PAIR_WITH.get(row[0], BASE[row[1]])
            row.append("—" if label == base else paired_bpda(*(bpda_cell(args.work, r) for r in (label, base))))
        other = ", ".join(f"{r}: with {b}" for r, b in PAIR_WITH.items())
        header.append(
            f"BPDA paired with the base reading ({other}): both / only here / only base / neither (McNemar p)"
        )
        align.append("right")
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [
        f"Command: `{command_line(argv)}` (OMP_NUM_THREADS={threads}); {args.dataset}, paper preset models, "
        f"n = {args.n} seeded test images per cell, BPDA with EOT 1 and one purification per evaluation; "
        "k / n with the Wilson 95% interval; the detection AUC of InvGAN's score, every clean image against every "
        "BPDA image, with the Hanley–McNeil 95% interval; the BPDA cell's wall time as its store recorded it. Prior: "
        f"{describe_prior(Path(args.home).expanduser() if args.home else home_dir(), args.dataset)}.",
        "",
        *markdown(rows, header, align),
    ]
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
