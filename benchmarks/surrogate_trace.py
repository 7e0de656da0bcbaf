"""Step by step, what MimicGAN's learned surrogate f̂ does during one purification of a corrupted or attacked batch.

MimicGAN-1 Fig. 4(b)'s Dropped Pixels row: most runs of the spec end with f̂'s conv path dead (ReLU(conv2(·)) = 0 on
every projection, `mimicgan_corruption_sweep.py`'s "conv path live %" column), after which only f̂ = W·x is left.
This script purifies one batch (the seeded evaluation images, as the sweep) and records after every step of
Alg. 1 — T × (T1 surrogate steps, then T2 latent steps) — on the *clean* images (a fixed probe: the projections
move) the live share of the conv path, W, conv2's bias and the conv path's size beside the shortcut (mean
|f̂(x) − W·x| over mean |W·x|), so the table shows when the path dies and whether it comes back. For MimicGAN-2's
surrogate (``surrogate_arch=mimicgan2``) the shortcut is the spatial transformer's A(x): its columns are then
max |A − I|, conv4's bias and mean |f̂(x) − A(x)| over mean |A(x)|. ``--corruption``
also takes a gray-box attack on the paper classifier (``fgsm:eps=0.15:labels=predicted``, Fig. 5(b)'s reading) or
``clean`` (the images themselves).

It watches the engine from outside: the engine's progress hook (``progress_step``, called after every step) and
its surrogate class are swapped in ``defbench.defenses.projection`` for the run; nothing else changes.

    python benchmarks/surrogate_trace.py --corruption drop-pixels:mask=batch --variant mimicgan --purify-seed 0
"""

from __future__ import annotations

import argparse
import sys

import torch
from _common import command_line, data_root, dataset_name, markdown, write_table
from mimicgan_corruption_sweep import corruption

import defbench.defenses.projection as projection
from defbench.defenses.projection import surrogate_input
from defbench.harness.data import load_dataset
from defbench.harness.models import build_defense, get_classifier


def trace(defense, xc: torch.Tensor, probe: torch.Tensor, seed: int) -> list[dict]:
    """One purification of ``xc`` by ``defense`` (a learned-surrogate GAN-prior defense) under ``seed``; one
    record per optimiser step: the surrogate's state on ``probe`` images."""
    made, records = [], []
    probe = surrogate_input(probe, defense.cfg)

    def watched(base):
        class Watched(base):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                made.append(self)

        return Watched

    def record():
        if not made:
            return
        f = made[-1]
        records.append(
            {
                "live": f.open_share(probe),
                "w": f.shortcut_state(),
                "bias": f.last_conv.bias.item(),
                "conv": conv_share(f, probe),
            }
        )

    saved = projection.MimicSurrogate, projection.SpatialMimicSurrogate, projection.progress_step
    projection.MimicSurrogate = watched(saved[0])
    projection.SpatialMimicSurrogate = watched(saved[1])
    projection.progress_step = record
    try:
        defense.purify(xc, seed=seed)
    finally:
        projection.MimicSurrogate, projection.SpatialMimicSurrogate, projection.progress_step = saved
    if not made:
        raise SystemExit(f"{defense.name}: no learned surrogate to trace")
    return records


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--dataset", type=dataset_name, default="fmnist", help="fmnist | mnist (the paper preset's models from the zoo)"
    )
    ap.add_argument("--n", type=int, default=100, help="images in the batch (the seeded evaluation draw)")
    ap.add_argument("--seed", type=int, default=0, help="the image draw")
    ap.add_argument(
        "--corruption",
        default="drop-pixels:mask=batch",
        help="NAME or NAME:KEY=VALUE, as the sweep; a gray-box attack; or clean",
    )
    ap.add_argument("--corruption-seed", type=int, default=0)
    ap.add_argument("--variant", default="mimicgan", help="a learned-surrogate defense label")
    ap.add_argument("--purify-seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=10, help="rows: the first surrogate steps, then every N-th step")
    ap.add_argument("--out", default="benchmarks/results/surrogate_trace.md")
    args = ap.parse_args(argv)
    root = data_root()
    data = load_dataset(args.dataset, "test", root=root)
    x, y = data.get(data.eval_indices(args.n, args.seed))
    if args.corruption == "clean":
        xc = x
    else:  # a corruption ignores the model; an attack runs on the classifier alone (gray-box)
        clf, _ = get_classifier(args.dataset, "paper", data_root=root)  # built before the seed: it draws from it
        torch.manual_seed(args.corruption_seed)  # the sweep's draw of the corruption
        xc = corruption(args.corruption, args.dataset)(clf, x, y)
    defense = build_defense(args.variant, args.dataset, data_root=root)
    cfg = defense.cfg
    records = trace(defense, xc, x, args.purify_seed)
    period = cfg.surrogate_steps + cfg.latent_steps
    body = []
    for i, r in enumerate(records):
        step = i + 1
        if i < cfg.surrogate_steps or step % args.every == 0 or step == len(records):
            kind = "f̂" if i % period < cfg.surrogate_steps else "z"
            body.append(
                [step, kind, f"{100 * r['live']:.1f}", f"{r['w']:+.3f}", f"{r['bias']:+.3f}", f"{r['conv']:.3f}"]
            )
    lines = [
        f"Command: `{command_line(argv)}` — CPU, torch threads {torch.get_num_threads()}; {args.dataset}, the "
        f"paper preset's GAN (or the variant's), the {args.n} evaluation images of seed {args.seed} in one batch, "
        f"corruption `{args.corruption}` (seed {args.corruption_seed}), purification seed {args.purify_seed}. Before "
        f"the first step the conv path is live on {100 * start_live(defense, x, args.purify_seed):.1f}% of the probe.",
        "",
    ]
    spatial = cfg.surrogate_arch == "mimicgan2"
    header = ["step", "updates", "conv path live % (clean probe)", "max abs(A − I)" if spatial else "W"]
    header += ["conv4 bias", "conv path / A(x)"] if spatial else ["conv2 bias", "conv path / W·x"]
    lines += markdown(body, header)
    return write_table(lines, args.out)


@torch.no_grad()
def conv_share(f, probe: torch.Tensor) -> float:
    """Size of f̂'s conv path beside its shortcut on ``probe``: mean |f̂(x) − s| / mean |s| (0 when closed), with
    the shortcut s = W·x (MimicGAN-1's surrogate) or A(x) (MimicGAN-2's)."""
    shortcut = f.shortcut(probe)
    return ((f(probe) - shortcut).abs().mean() / shortcut.abs().mean().clamp_min(1e-12)).item()


def start_live(defense, probe: torch.Tensor, seed: int) -> float:
    """The conv path's live share on ``probe`` for the surrogate a projection under ``seed`` starts from."""
    cfg = defense.cfg.with_(outer_iters=0)  # the start, no step
    f = defense.engine.project(probe, cfg, seed=seed).surrogate
    return f.open_share(surrogate_input(probe, cfg))


if __name__ == "__main__":
    sys.exit(main())
