"""Where InvGAN's detection AUC is lost: split by whether the prior projects the clean image to its own class.

InvGAN's attack detection (Eq. 7) scores an input x by ‖Φ(x) − Φ(x̂)‖, Φ the classifier's penultimate features and
x̂ the defense's projection; its Table 3 AUC sets the clean images the classifier gets right (negatives) against
the successful adversarial examples made from them (positives). A prior that misses some clean images projects
them elsewhere, so their clean scores are large, as an attacked image's would be. This script reads a store's
clean and gray-box cells and gives the protocol AUC on all images and on two strata fixed by the *clean* cell:
the images whose clean projection the classifier still gets right, and those it gets wrong. Beside it, the same
AUC for the pixel-space score ‖x − x̂‖ (the stored projection error; InvGAN's ablation prefers Φ) and the median
scores of each side.

    python benchmarks/detection_strata.py --store DIR --attacks FGSM CW-L2 --defenses defensegan invgan
"""

from __future__ import annotations

import argparse
import statistics

from _common import auc_cell, command_line, emit, markdown
from paired_cells import select

from defbench.metrics import roc_auc
from defbench.reports.common import protocol_scores

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


def strata(clean: dict) -> dict[str, set[int]]:
    """Test-set indices per stratum, fixed by the clean cell: all, and whether the defended prediction is right."""
    right = {int(i) for i, p, y in zip(clean["indices"], clean["preds"], clean["labels"]) if int(p) == int(y)}
    every = {int(i) for i in clean["indices"]}
    return {"all": every, "clean projection right": right, "clean projection wrong": every - right}


def _auc_cell(neg: list[float], pos: list[float]) -> str:
    return auc_cell(roc_auc(neg, pos), len(neg), len(pos))


def stratum_rows(clean: dict, attacked: dict) -> list[list[object]]:
    """One table row per stratum: images, negatives / positives, Φ AUC, pixel AUC, median scores (neg / pos)."""
    out = []
    for name, keep in strata(clean).items():
        c, a = subset(clean, keep), subset(attacked, keep)
        neg, pos = protocol_scores(c, a)
        med = " / ".join(f"{statistics.median(s):.2f}" if s else "—" for s in (neg, pos))
        pixel = _auc_cell(*protocol_scores(pixel_scores(c), pixel_scores(a)))
        out.append([name, len(c["indices"]), f"{len(neg)} / {len(pos)}", _auc_cell(neg, pos), pixel, med])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="a run's output dir (its defbench.sqlite)")
    ap.add_argument("--attacks", nargs="+", default=["FGSM", "CW-L2"], help="attack labels as stored")
    ap.add_argument("--defenses", nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the Markdown table here too")
    args = ap.parse_args(argv)
    clean_rows = {r["defense"]: r for r in select(args.store, "clean", "none", args.seed)}
    lines = [
        f"Command: `{command_line(argv)}`  ",
        "Success protocol: negatives are the clean images the classifier gets right, positives the successful "
        "gray-box adversarial examples made from them. Strata by the defended *clean* cell. AUC with its "
        "Hanley–McNeil 95% interval; Φ = ‖Φ(x) − Φ(x̂)‖ (Eq. 7), pixel = ‖x − x̂‖.",
    ]
    header = ["stratum", "images", "neg / pos", "AUC Φ", "AUC pixel", "median Φ score neg / pos"]
    for d in args.defenses:
        if d not in clean_rows:
            raise SystemExit(f"no clean cell of {d} in {args.store}")
        for name in args.attacks:
            cells = [r for r in select(args.store, name, "graybox", args.seed) if r["defense"] == d]
            if len(cells) != 1:
                raise SystemExit(f"{len(cells)} {name}/graybox cells of {d} in {args.store} (one needed)")
            lines += ["", f"**{d}, {name}**", "", *markdown(stratum_rows(clean_rows[d], cells[0]), header)]
    return emit(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
