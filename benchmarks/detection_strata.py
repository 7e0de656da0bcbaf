"""Where InvGAN's detection AUC is lost: split by whether the prior projects the clean image to its own class.

InvGAN's attack detection (Eq. 7) scores an input x by ‖Φ(x) − Φ(x̂)‖, Φ the classifier's penultimate features and
x̂ the defense's projection; its Table 3 AUC sets the clean images the classifier gets right (negatives) against
the successful adversarial examples made from them (positives). A prior that misses some clean images projects
them elsewhere, so their clean scores are large, as an attacked image's would be. This script reads a store's
clean and gray-box cells and gives the protocol AUC on all images and on two strata fixed by the *clean* cell:
the images whose clean projection the classifier still gets right, and those it gets wrong. Beside it, the AUC of
every clean against every attacked image (InvGAN's code's reading), the protocol AUC for the pixel-space score
‖x − x̂‖ (the stored projection error; InvGAN's ablation prefers Φ) and the median scores of each side.

``--draws N …`` adds one stratum per N: the images a run with ``--n N`` (same seed) evaluates, which are a subset of
a larger run's (the seeded draw is a prefix of one permutation), so a run at n = 300 also gives its n = 100 cells.

    python benchmarks/detection_strata.py --store DIR --attacks FGSM CW-L2 --defenses defensegan invgan
    python benchmarks/detection_strata.py --store DIR --attacks CW-L2 --defenses defensegan --dataset mnist --draws 100
"""

from __future__ import annotations

import argparse
import statistics

from _common import auc_cell, command_line, dataset_name, emit, markdown
from paired_cells import clean_by_defense, select

from defbench.metrics import roc_auc
from defbench.reports.common import detection_auc_all, protocol_scores

#: per-image fields of a stored row, filtered together
_PER_IMAGE = ("labels", "preds", "preds_undefended", "scores", "indices")


def subset(row: dict, keep: set[int]) -> dict:
    """The row restricted to the images (test-set indices) in ``keep``, stored projection errors included."""
    idx = [int(i) for i in row["indices"]]
    pick = [k for k, i in enumerate(idx) if i in keep]
    out = {**row, **{f: [row[f][k] for k in pick] for f in _PER_IMAGE}}
    errors = (row.get("extra") or {}).get("projection_error")
    if errors is not None:
        out["extra"] = {**row["extra"], "projection_error": [errors[k] for k in pick]}
    return out


def pixel_scores(row: dict) -> dict:
    """The row with the pixel-space score ‖x − x̂‖ (its stored projection error) in place of Eq. 7's."""
    return {**row, "scores": row["extra"]["projection_error"]}


def strata(clean: dict, draws: dict[int, set[int]] | None = None) -> dict[str, set[int]]:
    """Test-set indices per stratum, fixed by the clean cell: all, whether the defended prediction is right, and
    one stratum per entry of ``draws`` (n -> the indices of the seeded draw of n), which must lie in the run."""
    right = {
        int(i) for i, p, y in zip(clean["indices"], clean["preds"], clean["labels"], strict=True) if int(p) == int(y)
    }
    every = {int(i) for i in clean["indices"]}
    out = {"all": every, "clean projection right": right, "clean projection wrong": every - right}
    for n, keep in (draws or {}).items():
        if not keep <= every:
            raise SystemExit(f"the draw of --n {n} has {len(keep - every)} images outside this run's {len(every)}")
        out[f"the draw of --n {n}"] = set(keep)
    return out


def draw_indices(dataset: str, ns: list[int], seed: int, data_root: str | None = None) -> dict[int, set[int]]:
    """The test-set indices a run with ``--n N --seed seed`` evaluates, for each N (the matrix's own draw)."""
    from defbench.harness.data import load_dataset

    test = load_dataset(dataset, "test", root=data_root)
    return {n: {int(i) for i in test.eval_indices(n, seed)} for n in ns}


def _auc_cell(neg: list[float], pos: list[float]) -> str:
    return auc_cell(roc_auc(neg, pos), len(neg), len(pos))


def stratum_rows(clean: dict, attacked: dict, draws: dict[int, set[int]] | None = None) -> list[list[object]]:
    """One table row per stratum: images, negatives / positives, Φ AUC, Φ AUC of all images, pixel AUC, median
    scores (neg / pos)."""
    out = []
    for name, keep in strata(clean, draws).items():
        c, a = subset(clean, keep), subset(attacked, keep)
        neg, pos = protocol_scores(c, a)
        med = " / ".join(f"{statistics.median(s):.2f}" if s else "—" for s in (neg, pos))
        every = auc_cell(*detection_auc_all(c, a))
        pixel = _auc_cell(*protocol_scores(pixel_scores(c), pixel_scores(a)))
        out.append([name, len(c["indices"]), f"{len(neg)} / {len(pos)}", _auc_cell(neg, pos), every, pixel, med])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="a run's output dir (its defbench.sqlite)")
    ap.add_argument("--attacks", nargs="+", default=["FGSM", "CW-L2"], help="attack labels as stored")
    ap.add_argument("--defenses", nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--draws", nargs="+", type=int, default=[], help="add the images of the draw of --n N (needs --dataset)"
    )
    ap.add_argument("--dataset", type=dataset_name, help="the run's dataset (for --draws)")
    ap.add_argument("--data-root", help="dataset root (else $DEFBENCH_DATA, as the matrix)")
    ap.add_argument("--out", help="write the Markdown table here too")
    args = ap.parse_args(argv)
    if args.draws and not args.dataset:
        raise SystemExit("--draws needs --dataset (the draw is the dataset's seeded permutation)")
    draws = draw_indices(args.dataset, args.draws, args.seed, args.data_root) if args.draws else None
    clean_rows = clean_by_defense(select(args.store, "clean", "none", args.seed), args.defenses)
    lines = [
        f"Command: `{command_line(argv)}`  ",
        "Success protocol: negatives are the clean images the classifier gets right, positives the successful "
        "gray-box adversarial examples made from them. Strata by the defended *clean* cell. AUC with its "
        "Hanley–McNeil 95% interval; Φ = ‖Φ(x) − Φ(x̂)‖ (Eq. 7), pixel = ‖x − x̂‖.",
    ]
    header = ["stratum", "images", "neg / pos", "AUC Φ", "AUC Φ, all images", "AUC pixel", "median Φ score neg / pos"]
    for d in args.defenses:
        if d not in clean_rows:
            raise SystemExit(f"no clean cell of {d} in {args.store}")
        for name in args.attacks:
            cells = [r for r in select(args.store, name, "graybox", args.seed) if r["defense"] == d]
            if len(cells) != 1:
                raise SystemExit(f"{len(cells)} {name}/graybox cells of {d} in {args.store} (one needed)")
            lines += ["", f"**{d}, {name}**", "", *markdown(stratum_rows(clean_rows[d], cells[0], draws), header)]
    return emit(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
