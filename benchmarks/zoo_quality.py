"""Quality of the trained models, measured where the defenses use them; writes a Markdown table.

* classifier: clean accuracy on the whole test set (paper targets: Fashion-MNIST 91.50% MimicGAN,
  MNIST 98.98% RIDE, CIFAR-10 94.78% RIDE);
* GAN: DefenseGAN projection (L = 200, R = 10, SGD lr 10, momentum 0.7) of ``--n`` seeded clean test
  images: classifier accuracy on the reconstructions G(z*) and mean reconstruction MSE (InvGAN Table 2
  reports 0.81 on Fashion-MNIST and 0.98 on MNIST for DefenseGAN's clean accuracy), plus the smallest class
  share among the trainer's 2000 (``SPREAD_SAMPLES``) samples;
* encoder: ‖z − I(G(z))‖ against a random guess, and the classifier's accuracy on G(I(x)) (T = 0).

    python benchmarks/zoo_quality.py --datasets fmnist,mnist --preset paper --n 500
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from _common import command_line, markdown

from defbench import DefbenchError, metrics
from defbench.metrics import share_percent
from defbench.classifiers.train import model_accuracy
from defbench.datasets import class_names
from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.defenses.train_prior import (
    SPREAD_SAMPLES,
    class_spread,
    latent_recovery,
    projection_quality,
    spread_percent,
)
from defbench.harness import models, zoo
from defbench.harness.data import load_dataset
from defbench.seeding import resolve_device

PAPER_CLEAN = {"fmnist": "91.50 (MimicGAN)", "mnist": "98.98 (RIDE)", "cifar10": "94.78 (RIDE)"}
HEADER = ["model", "metric", "ours", "paper", "training time", "eval wall time"]
PAPER_DEFENSEGAN_CLEAN = {"fmnist": "0.81 (InvGAN T2)", "mnist": "0.98 (InvGAN T2)", "cifar10": "0.44 (InvGAN T2)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="fmnist,mnist")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--parts",
        default="classifier,gan,encoder",
        help="which models to measure (comma list of classifier, gan, encoder, samples: the smallest class share "
        f"of each GAN over --draws draws of {SPREAD_SAMPLES} samples, without projections)",
    )
    ap.add_argument("--draws", type=int, default=8, help="sample draws for --parts samples (seeds SEED..SEED+K-1)")
    ap.add_argument(
        "--gan-tags",
        default="-",
        help="comma list of the GANs to measure by zoo tag, '-' for the main GAN (default), e.g. "
        "-,sub80-s1,sub80-s2,sub80-s3 adds Fig. 9(b)'s replicas; the encoder rows belong to the main GAN",
    )
    ap.add_argument("--out", default="benchmarks/results/zoo_quality.md")
    args = ap.parse_args(argv)
    if args.draws < 1:
        ap.error(f"--draws must be >= 1, not {args.draws}")
    dev = resolve_device(args.device)
    tags = gan_tags(args.gan_tags)
    lines = [
        f"Command: `{command_line(argv)}`  ",
        f"Device: {torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'CPU (' + platform.machine() + ', ' + str(torch.get_num_threads()) + ' threads)'}; seed {args.seed}.",  # noqa: E501
        "",
    ]
    rows: list[list[str]] = []
    record = {}
    for ds in args.datasets.split(","):
        test = load_dataset(ds, "test")
        t0 = time.time()
        try:
            clf, cman = models.get_classifier(ds, args.preset, dev, train_missing=False)
        except DefbenchError as exc:
            rows.append([f"classifier-{ds}-{args.preset}", "missing", "—", PAPER_CLEAN.get(ds, "—"), "—", str(exc)])
            continue
        acc = model_accuracy(clf, test, dev)
        rows.append(
            [
                cman["id"],
                f"clean test accuracy (%, {len(test)} images{', JPEG copy' if test.note else ''})",
                f"{100 * acc:.2f}",
                PAPER_CLEAN.get(ds, "—"),
                f"{cman['metrics'].get('train_seconds', 0) / 60:.1f} min ({cman['metrics'].get('device', '?')})",
                f"{time.time() - t0:.0f}s",
            ]
        )
        record[cman["id"]] = {"clean_test_accuracy": acc}
        idx = test.eval_indices(args.n, args.seed)
        for tag in tags:
            if not zoo.exists(zoo.model_id("gan", ds, args.preset, tag)):
                rows.append([zoo.model_id("gan", ds, args.preset, tag), "missing", "—", "—", "—", "—"])
                continue
            t0 = time.time()
            G, D, gman = models.get_gan(ds, args.preset, dev, train_missing=False, tag=tag)
            if "gan" in args.parts:
                add_gan_rows(rows, record, ds, G, gman, clf, test, idx, args, dev, t0)
            if "samples" in args.parts:
                add_sample_rows(rows, ds, G, gman, clf, args, dev)
            if not tag and "encoder" in args.parts:
                if zoo.exists(zoo.model_id("encoder", ds, args.preset)):
                    add_encoder_rows(rows, record, ds, G, clf, test, idx, args, dev)
                else:  # said, as a missing classifier or GAN is
                    rows.append([zoo.model_id("encoder", ds, args.preset), "missing", "—", "—", "—", "—"])
    lines += markdown(rows, HEADER, ["left", "left", "right", "left", "right", "right"])
    for mid, rec in record.items():
        if "per_class" in rec:
            lines += per_class_lines(mid, rec, rec["dataset"], args.n)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    print("\n".join(lines))
    return 0


def gan_tags(spec: str) -> list[str]:
    """``--gan-tags``: a comma list of zoo GAN tags ('sub80-s1' is the GAN of an 80% subset with seed 1), '-'
    for the dataset's main GAN (the default). Every tag is checked before any work starts."""
    tags = [t.strip() for t in spec.split(",") if t.strip()] or ["-"]
    for t in tags:
        if t != "-":
            zoo.parse_gan_tag(t)  # a DefbenchError names what a tag may be
    return ["" if t == "-" else t for t in tags]


def add_gan_rows(rows, record, ds, G, gman, clf, test, idx, args, dev, t0) -> None:
    q = projection_quality(G, clf, test, idx, PAPER_CONFIGS["defensegan"], args.seed, dev)
    spread = class_spread(G, clf, SPREAD_SAMPLES, torch.Generator().manual_seed(args.seed), dev)
    tt = gman["metrics"].get("train_seconds", 0) / 60
    rows += [
        [
            gman["id"],
            f"accuracy on DefenseGAN projections (L=200, R=10) of {args.n} clean test images",
            "{:.3f} (Wilson 95%: {:.2f}–{:.2f})".format(
                q["projection_accuracy"], *metrics.wilson_interval(sum(ok for _, ok in q["per_class"]), q["n"])
            ),
            PAPER_DEFENSEGAN_CLEAN.get(ds, "—"),
            f"{tt:.1f} min (best epoch {gman['metrics'].get('best_epoch')})",
            f"{time.time() - t0:.0f}s",
        ],
        [gman["id"], "mean reconstruction MSE of those projections", f"{q['reconstruction_mse']:.4f}", "—", "", ""],
        [
            gman["id"],
            f"smallest class share % among {SPREAD_SAMPLES} samples (classifier labels)",
            spread_percent(min(spread)),
            "—",
            "",
            "",
        ],
    ]
    record[gman["id"]] = {
        "projection_accuracy": q["projection_accuracy"],
        "reconstruction_mse": q["reconstruction_mse"],
        "class_spread": spread,
        "per_class": q["per_class"],
        "dataset": ds,
    }


def add_sample_rows(rows, ds, G, gman, clf, args, dev) -> None:
    """The smallest class share among SPREAD_SAMPLES samples of G, over ``args.draws`` seeded draws: how far one draw's
    reading (the trainer's, or the gan rows') can move by the draw alone."""
    t0 = time.time()
    names = class_names(ds)
    lows = []
    for k in range(args.draws):
        spread = class_spread(G, clf, SPREAD_SAMPLES, torch.Generator().manual_seed(args.seed + k), dev)
        c = min(range(len(spread)), key=spread.__getitem__)
        lows.append((spread[c], names[c]))
    shares = sorted(v for v, _ in lows)
    which = ", ".join(f"{name} {k}×" for name, k in Counter(n for _, n in lows).items())
    # a median of an even number of draws is a half count: a whole count of twice the samples
    median = share_percent(statistics.median(shares), 2 * SPREAD_SAMPLES)
    rows.append(
        [
            gman["id"],
            f"smallest class share % among {SPREAD_SAMPLES} samples, {args.draws} draws (seeds {args.seed}–"
            f"{args.seed + args.draws - 1}): min–max (median); which class; every draw in seed order",
            f"{spread_percent(shares[0])}–{spread_percent(shares[-1])} ({median}); {which}; "
            + " / ".join(spread_percent(v) for v, _ in lows),
            "—",
            "",
            f"{time.time() - t0:.0f}s",
        ]
    )


def per_class_lines(gan_id: str, rec: dict, dataset: str, n: int) -> list[str]:
    """Per class: its share among SPREAD_SAMPLES samples of G and the accuracy on DefenseGAN projections of its test
    images (the class-by-class split of the GAN rows above)."""
    names = class_names(dataset, len(rec["class_spread"]))
    body = []
    for c, (share, (k_n, k_ok)) in enumerate(zip(rec["class_spread"], rec["per_class"], strict=True)):
        lo, hi = metrics.wilson_interval(k_ok, k_n)
        acc = f"{100 * k_ok / k_n:.0f} ({100 * lo:.0f}–{100 * hi:.0f})" if k_n else "—"
        body.append([f"{c} {names[c]}", spread_percent(share), str(k_n), acc])
    header = [
        "class",
        f"share of {SPREAD_SAMPLES} samples %",
        f"test images (of {n})",
        "projection accuracy % (Wilson 95%)",
    ]
    return ["", f"Per class, {gan_id}:", ""] + markdown(body, header, ["left", "right", "right", "right"])


def add_encoder_rows(rows, record, ds, G, clf, test, idx, args, dev) -> None:
    t0 = time.time()
    enc, eman = models.get_encoder(ds, args.preset, dev, train_missing=False)
    rec = latent_recovery(G, enc, args.seed + 1, dev)
    preds, labels = [], []
    with torch.no_grad():
        for start in range(0, len(idx), 250):
            x, y = test.get(idx[start : start + 250])
            preds.append(clf(G(enc(x.to(dev)).clamp(-1, 1))).argmax(1).cpu())
            labels.append(y)
    acc = metrics.accuracy(torch.cat(preds), torch.cat(labels))
    et = eman["metrics"].get("train_seconds", 0) / 60
    rows += [
        [
            eman["id"],
            "‖z − I(G(z))‖ vs random guess (500 z)",
            f"{rec['latent_error']:.2f} vs {rec['random_guess_latent_error']:.2f}",
            "—",
            f"{et:.1f} min",
            f"{time.time() - t0:.0f}s",
        ],
        [eman["id"], f"accuracy on G(I(x)) (T = 0) of {args.n} clean test images", f"{acc:.3f}", "—", "", ""],
    ]
    record[eman["id"]] = {**rec, "accuracy_T0": acc}


if __name__ == "__main__":
    sys.exit(main())
