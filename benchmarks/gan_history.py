"""A zoo GAN's training, epoch by epoch, from its manifest (issue: papers' tables, second pass, item 3).

After every epoch the trainer records the classifier's accuracy on DefenseGAN projections of the validation images
(held out of the training split; the epoch with the best one is kept), the share of each class among 2,000 samples as
that classifier labels them, and under class feedback each class's weight in the batches at the epoch's end. This
script lays those records out, one row per model and epoch: the smallest class as a count of the 2,000 (a share of
4.95% is 99 samples, not 'about 5%'), the largest, and the weights. Nothing is trained or sampled.

    python benchmarks/gan_history.py --models gan-fmnist-paper-sub80-s1,gan-fmnist-paper-sub80-s2
"""

from __future__ import annotations

import argparse
import sys

from _common import command_line, markdown, write_table

from defbench import DefbenchError
from defbench.datasets import class_names
from defbench.defenses.train_prior import SPREAD_SAMPLES as SAMPLES
from defbench.harness import zoo


def _extreme(spread: list[float], names: list[str], pick) -> str:
    """'97 (trouser)': the count of 2,000 of the class ``pick`` (min / max) selects, with its name."""
    k = pick(range(len(spread)), key=spread.__getitem__)
    return f"{round(SAMPLES * spread[k])} ({names[k]})"


def rows_of(manifest: dict) -> list[list[str]]:
    """One row per recorded epoch of a GAN manifest: epoch (starred if kept), projection accuracy, smallest and largest
    class as counts of 2,000, and the class weights at the epoch's end ('—' without class feedback)."""
    names = class_names(manifest["dataset"])
    metrics = manifest["metrics"]
    out = []
    for rec in metrics["history"]:
        kept = "*" if rec["epoch"] == metrics.get("best_epoch") else ""
        weights = rec.get("class_weights")
        out.append(
            [
                manifest["id"],
                f"{rec['epoch']}{kept}",
                f"{rec['projection_accuracy']:.2f}",
                _extreme(rec["class_spread"], names, min),
                _extreme(rec["class_spread"], names, max),
                " ".join(f"{w:.2f}" for w in weights) if weights else "—",
            ]
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="comma list of zoo GAN ids, e.g. gan-fmnist-paper-sub80-s1")
    ap.add_argument("--out", default="benchmarks/results/gan_history.md")
    args = ap.parse_args(argv)
    body, lines = [], [f"Command: `{command_line(argv)}`; read from the manifests in {zoo.zoo_dir()}.", ""]
    for mid in [m.strip() for m in args.models.split(",") if m.strip()]:
        manifest = zoo.manifest_or_none(mid)
        if manifest is None or manifest.get("kind") != "gan":
            raise DefbenchError(f"no GAN {mid!r} in {zoo.zoo_dir()}; see 'defbench zoo list'")
        config = manifest.get("config", {})
        steer = config.get("feedback_classifier") or manifest.get("classifier")
        lines.append(
            f"- {mid} (sha256 {manifest['sha256'][:8]}, {manifest['metrics'].get('train_seconds', 0) / 60:.1f} min on "
            f"{manifest['metrics'].get('device', '?')}): counted by {manifest.get('classifier')}; class feedback "
            + (f"{config['class_feedback']} steered by {steer}" if config.get("class_feedback") else "off")
        )
        body += rows_of(manifest)
    header = ["model", "epoch (* kept)", "projection accuracy (validation)", "smallest class, of 2,000",
              "largest class, of 2,000", "class weights at the epoch's end (classes 0-9)"]  # fmt: skip
    lines += ["", *markdown(body, header, ["left", "right", "right", "right", "right", "left"])]
    return write_table(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
