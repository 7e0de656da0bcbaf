"""MimicGAN-2 Table 2, one variable at a time: how much of each batch is the left-out class.

MimicGAN fits one surrogate per batch, shared by its images; the f̂ = I baseline (the paper's "PGD") projects
every image on its own. The paper's test set is the other 20% of the normal training images plus the whole
left-out class (about 36% positives) in batches of 1000; ``defbench paper run mimicgan-table2`` draws n seeded
MNIST test images (7-18% of them from the left-out class). Only MimicGAN's score can depend on the batch's
make-up, so this script changes that alone. For each left-out class K (GAN ``gan-mnist-<preset>-noK``, from
the zoo, never trained here), two batches of ``--n`` images:

- ``base``: the paper run's own draw (``eval_indices(n, seed)``), its class-K images positive;
- ``share``: ``base`` with its last negatives replaced by further class-K test images (seeded), up to
  ``--share`` of the batch; every image of both keeps its position.

Both rows purify both batches with the paper run's seed; the score is the projection error ‖x − G(z*)‖₂
(:func:`defbench.harness.matrix.projection_error`). Per (class, batch, row): positives, negatives, the AUC
with its Hanley–McNeil interval; per (class, row), the largest change of an image's score between the two
batches (0 for a projection that treats each image on its own: the f̂ = I row's check).

``--options KEY=VALUE[,...]`` adds settings to both rows (``surrogate_activation=tanh``: a TanH surrogate path).
``--gan-seed N`` runs the GANs of another training seed (``gan-mnist-<preset>-sN-noK``); ``--batches base``
purifies the paper run's draw alone (half the time: what a GAN-seed comparison needs). ``--summarize`` reads the
tables of several runs back and pairs the rows over their classes; tables of several GAN seeds (read from each
table's caption) are summarised per seed, then each seed against the lowest one, class by class. A run on GANs
trained other than the preset says (e.g. ``defbench train gan --dataset mnist --holdout-class K --epochs 4`` into
another ``$DEFBENCH_HOME``) names their recipe in its caption, read from the zoo's manifests with the epoch each
kept; ``--summarize`` gives its rows names of their own and pairs them over the classes the run holds.

    OMP_NUM_THREADS=1 python benchmarks/anomaly_share.py --classes 1 4 --out benchmarks/results/anomaly_share.md
    python benchmarks/anomaly_share.py --summarize a.md b.md
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import auc_cell, command_line, data_root, emit, markdown

from defbench.metrics import roc_auc

#: the two rows of mimicgan-table2 (its spec's variants; ``{gan}`` is the GAN's tag, ``no{k}`` in the paper run)
ROWS = {
    "f̂ = I": "mimicgan[gan={gan},latent_steps=75,surrogate=identity,surrogate_steps=25]",
    "MimicGAN": "mimicgan[gan={gan},latent_steps=75,surrogate_steps=25]",
}


def with_options(variant: str, options: str) -> str:
    """``name[a=1]`` with ``options`` (``KEY=VALUE[,...]``) added inside its brackets (``name`` alone gains them);
    unchanged for no options."""
    if not options:
        return variant
    return f"{variant[:-1]},{options}]" if variant.endswith("]") else f"{variant}[{options}]"


def batches(labels: np.ndarray, base: np.ndarray, k: int, share: float, seed: int) -> dict[str, np.ndarray]:
    """Test-set indices of the two batches for left-out class ``k``: ``base`` as drawn, and ``share``: ``base``
    with its last other-class images replaced by further class-k images (a seeded draw of the rest) until
    round(share * len(base)) are class k. Raises ValueError where that cannot be done."""
    n = len(base)
    pos = base[labels[base] == k]
    neg = base[labels[base] != k]
    want = round(share * n)
    if want < len(pos):
        raise ValueError(f"--share {share} is under the base batch's share of class {k} ({len(pos)} of {n})")
    if want > n - 1:
        raise ValueError(f"--share {share} leaves no negatives in a batch of {n}")
    rest = np.setdiff1d(np.flatnonzero(labels == k), pos)
    if want - len(pos) > len(rest):
        raise ValueError(f"class {k} has only {len(pos) + len(rest)} test images, --share asks for {want}")
    extra = np.random.default_rng(seed).choice(rest, want - len(pos), replace=False)
    share = base.copy()
    share[np.flatnonzero(labels[base] != k)[len(neg) - len(extra) :]] = extra
    return {"base": base, "share": share}


def scores(defense, x: torch.Tensor, seed: int) -> np.ndarray:
    """The paper run's score of every image: projection error of the purification the matrix gives the whole
    batch (batch 0, repeat 0 of a cell of run seed ``seed``)."""
    from defbench.harness.matrix import projection_error, purify_seed

    return np.asarray(projection_error(x, defense.purify(x, seed=purify_seed(seed, 0))))


def surrogate_end(defense) -> list[str] | None:
    """The learned f̂ after the defense's last purification: the share of its conv path that is alive on the
    projections, and its shortcut: W (MimicGAN-1's surrogate) or the spatial transformer's largest distance from
    the identity map, max |A − I| (MimicGAN-2's). None where the last projection had no learned surrogate."""
    from defbench.defenses.projection import surrogate_input

    p = getattr(defense, "last", None)
    if p is None or p.surrogate is None or defense.cfg.surrogate != "mimic":
        return None
    f = p.surrogate
    live = f"{f.open_share(surrogate_input(p.x_hat, defense.cfg)):.1%}"
    return [live, f"{f.shortcut_name} {f.shortcut_state():.3f}"]


def class_rows(k: int, idx: dict[str, np.ndarray], score: dict[tuple[str, str], np.ndarray], labels) -> list[list]:
    """Table lines of class ``k``: per batch and row, positives, negatives, AUC (95%) and the change of the
    shared images' scores between the batches."""
    out = []
    both = {"base", "share"} <= set(idx)  # the score change needs both batches (--batches may run one)
    kept = idx["base"] == idx["share"] if both else None  # the images in both batches: each keeps its position
    for row in (r for r in ROWS if ("base", r) in score or ("share", r) in score):
        moved = f"{np.abs(score[('base', row)] - score[('share', row)])[kept].max():.2g}" if both else "—"
        for b in idx:
            held = labels[idx[b]] == k
            err = score[(b, row)]
            auc = roc_auc(err[~held], err[held])
            cell = auc_cell(auc, int((~held).sum()), int(held.sum()))
            out.append([k, row, b, int(held.sum()), int((~held).sum()), cell, moved])
    return out


#: how a table's caption names its GANs: gan-mnist-<preset>-noK (seed 0) or gan-mnist-<preset>-sN-noK
GAN_NAME = re.compile(r"GANs gan-mnist-[\w.]+?-(?:s(\d+)-)?noK")
#: how a caption gives the --options its rows ran with
OPTIONS = re.compile(r"(?:Both rows|The row) with `([^`]*)`")


#: how a caption gives the GANs' recipe where it is not the preset's (e.g. more epochs)
GAN_RECIPE = re.compile(r"GANs trained with `([^`]*)`")


def row_label(row: str, options: str, gan_changes: str = "") -> str:
    """A row's name in a summary: ``MimicGAN``, ``MimicGAN [OPTIONS]`` for a run with --options, and ``MimicGAN [GAN
    epochs=4]`` (before any options, ``; ``-separated) for a run on GANs trained other than the preset says."""
    parts = [f"GAN {gan_changes}" if gan_changes else "", options]
    label = "; ".join(p for p in parts if p)
    return f"{row} [{label}]" if label else row


def gan_provenance(classes: list[int], preset: str, gan_seed: int) -> tuple[str, str]:
    """(the GANs' recipe changes against the preset as ``field=value[,...]``, '' when trained as it says; the kept
    epoch of each, ``K: kept/trained``) from the zoo's manifests of ``gan-mnist-<preset>-[sN-]noK``."""
    from defbench.defenses.train_prior import gan_recipe
    from defbench.harness import zoo
    from defbench.harness.models import recipe_changes

    recipe, changes, kept = gan_recipe("mnist", preset), {}, []
    for k in classes:
        m = zoo.manifest_or_none(zoo.model_id("gan", "mnist", preset, zoo.gan_tag(1.0, gan_seed, k))) or {}
        for field, (trained, _) in recipe_changes(m, recipe).items():
            changes.setdefault(field, set()).add(trained)
        metrics = m.get("metrics") or {}
        kept.append(f"{k}: {metrics.get('best_epoch', '?')}/{metrics.get('epochs_done', '?')}")
    return ",".join(f"{f}={'|'.join(map(str, sorted(v)))}" for f, v in changes.items()), ", ".join(kept)


def read_tables(paths: list[str]) -> dict[tuple[int, int, str, str], float]:
    """AUC by (GAN seed, left-out class, row, batch) from tables this script wrote (several runs, one class or more
    each; the seed from the caption's GAN name, 0 when it names none; a row run with --options is named
    :func:`row_label`). Raises ValueError on a seed, class, row and batch that two tables both hold."""
    out: dict[tuple[int, int, str, str], float] = {}
    for path in paths:
        text = Path(path).read_text()
        m = GAN_NAME.search(text)
        seed = int(m.group(1)) if m and m.group(1) else 0
        opts = OPTIONS.search(text)
        recipe = GAN_RECIPE.search(text)
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 7 or not cells[0].isdigit():
                continue  # caption, header, rule
            label = row_label(cells[1], opts.group(1) if opts else "", recipe.group(1) if recipe else "")
            key = (seed, int(cells[0]), label, cells[2])
            if key in out:
                raise ValueError(
                    f"GAN seed {seed}, class {key[1]}, {key[2]}, {key[3]} batch is in two tables (second: {path})"
                )
            auc = cells[5].split()[0]
            out[key] = math.nan if auc == "—" else float(auc)  # "—": no AUC (a side of the batch empty)
    return out


def extra_order(label: str) -> tuple[str, int]:
    """Rows run with options or on other GANs, grouped by their bracket and in ROWS' order inside it, so a pair of
    one run reads ``MimicGAN [X] − f̂ = I [X]`` as the spec's rows do."""
    row, _, bracket = label.partition(" [")
    return bracket, list(ROWS).index(row) if row in ROWS else len(ROWS)


def held_text(classes: list[int]) -> str:
    """``classes 1, 4, 7`` (or ``all 10``) for a summary line."""
    return "all 10" if list(classes) == list(range(10)) else "classes " + ", ".join(map(str, classes))


def mean_text(v: list[float]) -> str:
    """``mean 0.609 ± 0.245 over 10 classes`` (std ddof 1; ``—`` for one class)."""
    sd = f"{np.std(v, ddof=1):.3f}" if len(v) > 1 else "—"
    return f"mean {np.mean(v):.3f} ± {sd} over {len(v)} classes"


def paired(row: str, other: str, d: np.ndarray) -> str:
    """One line of a paired comparison over classes: ``d`` = row − other per class."""
    from scipy.stats import wilcoxon

    p = f"{wilcoxon(d).pvalue:.2g}" if len(d) > 1 and d.any() else "—"
    return (
        f"{row} − {other} {d.mean():+.3f} on average, {row} above on {(d > 0).sum()} of {len(d)} classes; "
        f"paired Wilcoxon signed-rank p = {p}"
    )


def summary(aucs: dict[tuple[int, int, str, str], float]) -> list[str]:
    """Per GAN seed and batch: each row's mean ± std (ddof 1) over the classes, and MimicGAN − f̂ = I paired over
    the classes (mean, classes where MimicGAN is above, Wilcoxon signed-rank p); then that difference, share
    against base, where both batches were run. With several GAN seeds, each seed against the lowest, per row and
    batch over the classes both hold: how far the mean over classes moves, and each class's change. A row run with
    --options (named ``ROW [OPTIONS]``) is set against MimicGAN and f̂ = I of the same seed and batch, and against the
    option rows named before it."""
    from scipy.stats import wilcoxon

    lines = [
        f"- {f'GAN seed {s}, ' if s else ''}class {k}, {b}, {row}: no AUC (a side of the batch empty), left out "
        "of what follows"
        for (s, k, row, b), v in sorted(aucs.items())
        if v != v
    ]
    aucs = {key: v for key, v in aucs.items() if v == v}
    seeds = sorted({s for s, _, _, _ in aucs})
    for s in seeds:
        tag = f"GAN seed {s}, " if len(seeds) > 1 else ""
        classes = sorted({k for s2, k, _, _ in aucs if s2 == s})
        diff = {}
        for b in ("base", "share"):
            # each spec row over every class, or said to hold some only (a mean over some classes is not the
            # table's); a row not run in this batch (--rows) says nothing
            full = []
            for row in ROWS:
                held = [k for k in classes if (s, k, row, b) in aucs]
                if len(held) == len(classes):
                    full.append(row)
                    v = [aucs[(s, k, row, b)] for k in classes]
                    lines.append(f"- {tag}{b}, {row}: {mean_text(v)}")
                elif held:
                    lines.append(
                        f"- {tag}{b}, {row}: {len(held)} of {len(classes)} classes only ({held_text(held)}), "
                        "no mean over classes"
                    )
            if len(full) == len(ROWS):
                diff[b] = np.array([aucs[(s, k, "MimicGAN", b)] - aucs[(s, k, "f̂ = I", b)] for k in classes])
                lines.append(f"- {tag}{b}: {paired('MimicGAN', 'f̂ = I', diff[b])}")
            # rows run with --options: each against the rows of the spec, class by class
            extra = sorted({r for s2, _, r, b2 in aucs if (s2, b2) == (s, b) and r not in ROWS}, key=extra_order)
            for i, row in enumerate(extra):  # each over the classes it holds (a run of some classes only)
                held = [k for k in classes if (s, k, row, b) in aucs]
                v = [aucs[(s, k, row, b)] for k in held]
                lines.append(f"- {tag}{b}, {row}: {mean_text(v)} ({held_text(held)})")
                for other in [*reversed(list(ROWS)), *extra[:i]]:  # the spec's rows, then the option rows before it
                    common = [k for k in held if (s, k, other, b) in aucs]
                    if common:
                        d = np.array([aucs[(s, k, row, b)] - aucs[(s, k, other, b)] for k in common])
                        lines.append(f"- {tag}{b}: {paired(row, other, d)}")
        if len(diff) == 2:
            d = diff["share"] - diff["base"]
            p = f"{wilcoxon(d).pvalue:.2g}" if len(classes) > 1 and d.any() else "—"
            lines.append(
                f"- {tag}share − base of that difference: {d.mean():+.3f} on average, larger on {(d > 0).sum()} of "
                f"{len(classes)} classes; Wilcoxon p = {p}"
            )
    labels = [*ROWS, *sorted({r for _, _, r, _ in aucs if r not in ROWS}, key=extra_order)]
    for s in seeds[1:]:
        for b in ("base", "share"):
            for row in labels:  # the spec's rows, then rows run with options or on other GANs
                held = [k for s2, k, r, b2 in aucs if (s2, r, b2) == (s, row, b)]
                common = sorted(k for k in held if (seeds[0], k, row, b) in aucs)
                if not common:
                    continue
                d = np.array([aucs[(s, k, row, b)] - aucs[(seeds[0], k, row, b)] for k in common])
                worst = common[int(np.abs(d).argmax())]
                lines.append(
                    f"- {b}, {row}, GAN seed {s} − seed {seeds[0]} over the {len(common)} classes both hold: the mean "
                    f"moves by {d.mean():+.3f}; a class by {np.abs(d).mean():.3f} on average, at most "
                    f"{np.abs(d).max():.3f} (class {worst}); per class "
                    + ", ".join(f"{k}: {v:+.2f}" for k, v in zip(common, d, strict=True))
                )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, nargs="+", default=list(range(10)), help="left-out classes (default all)")
    p.add_argument("--n", type=int, default=100, help="images per batch (the paper run's n; default 100)")
    p.add_argument("--share", type=float, default=0.36, help="left-out share of the share batch (paper: about 0.36)")
    p.add_argument("--seed", type=int, default=0, help="the paper run's seed (its draw and purification seed)")
    p.add_argument("--preset", default="paper", help="zoo preset of the GANs (default paper)")
    p.add_argument(
        "--gan-seed", type=int, default=0, help="training seed of the GANs (default 0, the paper run's: gan=noK)"
    )
    p.add_argument(
        "--batches",
        nargs="+",
        choices=["base", "share"],
        default=["base", "share"],
        help="which batches to purify (default both; base alone for a GAN-seed comparison)",
    )
    p.add_argument(
        "--options",
        default="",
        help="KEY=VALUE[,KEY=VALUE] added to both rows' settings (e.g. surrogate_activation=tanh); default none",
    )
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="which rows to run (default both)")
    p.add_argument("--out", help="write the Markdown table here")
    p.add_argument("--save", help="write every image's score here (JSON: class -> batch -> row -> indices, scores)")
    p.add_argument("--summarize", nargs="+", metavar="TABLE", help="summarise tables of earlier runs; run nothing")
    a = p.parse_args(argv)
    if a.summarize:
        try:
            aucs = read_tables(a.summarize)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        head = f"Command: `{command_line(argv)}`: AUCs over the classes of the tables named"
        return emit([head, "", *summary(aucs)], a.out)
    from defbench.harness.data import load_dataset
    from defbench.harness.models import build_defense
    from defbench.harness.zoo import gan_tag

    root = data_root()
    gan_changes, kept = gan_provenance(a.classes, a.preset, a.gan_seed)
    test = load_dataset("mnist", "test", root)
    labels = np.asarray(test.labels)
    base = np.asarray(test.eval_indices(a.n, a.seed))
    lines, saved, ends = [], {}, []
    t0 = time.time()
    for k in a.classes:
        try:
            idx = batches(labels, base, k, a.share, a.seed) if "share" in a.batches else {"base": base}
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        idx = {b: ix for b, ix in idx.items() if b in a.batches}
        score = {}
        for row, name in ((r, ROWS[r]) for r in a.rows):
            variant = with_options(name.format(gan=gan_tag(1.0, a.gan_seed, k)), a.options)
            d = build_defense(variant, "mnist", a.preset, "cpu", seed=0, data_root=root, train_missing=False)
            for b, ix in idx.items():
                x, _ = test.get(torch.as_tensor(ix))
                score[(b, row)] = scores(d, x, a.seed)
                if (end := surrogate_end(d)) is not None:
                    ends.append([k, row, b, *end])
        lines += class_rows(k, idx, score, labels)
        saved[k] = {
            b: {"indices": ix.tolist(), **{row: score[(b, row)].round(6).tolist() for row in a.rows}}
            for b, ix in idx.items()
        }
        if a.save:
            Path(a.save).write_text(json.dumps(saved, indent=1))
        print(f"class {k} done, {time.time() - t0:.0f} s", file=sys.stderr)
    header = ["left out", "row", "batch", "positives", "negatives", "AUC (95%)", "largest score change"]
    not_run = "" if "share" in a.batches else " (not run here)"
    rows_run = f" Rows run: {', '.join(a.rows)}." if len(a.rows) < len(ROWS) else ""
    options = f" {'Both rows' if len(a.rows) > 1 else 'The row'} with `{a.options}`." if a.options else ""
    caption = (
        f"Command: `{command_line(argv)}`; CPU, {torch.get_num_threads()} thread(s), {time.time() - t0:.0f} s. "
        f"MNIST test images; `base` is the seeded draw of `defbench paper run mimicgan-table2 --n {a.n}` (seed "
        f"{a.seed}), `share` the same with its last other-class images replaced by left-out ones, up to "
        f"{a.share:.0%} of {a.n}{not_run}. GANs gan-mnist-{a.preset}-{gan_tag(1.0, a.gan_seed, 0)[:-1]}K (class K left "
        f"out{'; GANs trained with `' + gan_changes + '` (the preset otherwise)' if gan_changes else ''}; kept "
        f"epoch / epochs trained: {kept}).{rows_run}{options}"
        " Score: ‖x − G(z*)‖₂ of one purification "
        "at the paper run's seed; AUC with the "
        "left-out class positive, Hanley–McNeil interval. Last column: the largest change of an image's score "
        "between the two batches, over the images in both."
    )
    out = [caption, "", *markdown(lines, header)]
    if ends:
        end_header = ["left out", "row", "batch", "f̂ conv path alive", "f̂ shortcut"]
        out += ["", "The learned f̂ at the end of each purification:", "", *markdown(ends, end_header)]
    return emit(out, a.out)


if __name__ == "__main__":
    sys.exit(main())
