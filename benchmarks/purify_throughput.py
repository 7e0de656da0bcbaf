"""Purification throughput: the batched engine against a naive per-image loop, side by side in one run.

For every defense at paper settings (or ``--scale``-shrunk step counts, stated in the table) this times
  * batched: the defense as shipped (all images x restarts in one latent tensor, chunked per device;
    RIDE as one grouped-convolution program over the batch);
  * per-image loop: one image and its restarts at a time (one RIDE network at a time);
  * restart loop (GAN defenses with R > 1): all images, one restart at a time;
and for DefenseGAN a sweep of chunk sizes. Timing does not depend on the weights, so fresh (untrained)
networks are used and the zoo is not needed. Writes a Markdown table to ``--out``.

    python benchmarks/purify_throughput.py --images 20 --scale 0.1 --out benchmarks/results/purify_throughput.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch
from _common import command_line, write_table

from defbench.defenses.base import Defense
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.priors import Encoder, build_gan
from defbench.defenses.ride import RIDE, RIDEConfig
from defbench.harness.data import load_dataset
from defbench.harness.seeding import resolve_device


REPEATS = 2


def timed(fn) -> float:
    """Best of REPEATS wall-clock runs (the first run also serves as warm-up)."""
    best = float("inf")
    for _ in range(REPEATS):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def scaled_gan_cfg(name: str, scale: float):
    cfg = PAPER_CONFIGS[name]
    return cfg.with_(latent_steps=max(1, round(cfg.latent_steps * scale)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20, help="images per measurement (default 20)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply step counts (1.0 = paper settings)")
    ap.add_argument("--defenses", default="defensegan,cowboy,invgan,mimicgan,ride,median,tvm")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2, help="time each mode this many times, keep the best")
    ap.add_argument("--out", default="benchmarks/results/purify_throughput.md")
    args = ap.parse_args(argv)
    global REPEATS
    REPEATS = max(1, args.repeats)
    dev = resolve_device(args.device)
    torch.manual_seed(0)
    x, _ = load_dataset("fmnist", "test").get(range(args.images))
    x = x.to(dev)
    G, D = build_gan("fmnist")
    G, D = G.to(dev).eval(), D.to(dev).eval()
    enc = Encoder(1, 28).to(dev).eval()
    rows = []
    # warm-up (allocator, thread pools, lazy imports) so the first timed mode is not penalised
    GANPriorDefense(
        "defensegan", G, D, None, PAPER_CONFIGS["defensegan"].with_(latent_steps=3), shape=(1, 28, 28)
    ).purify(x[:2], seed=0)
    RIDE(RIDEConfig(iterations=3, checkpoints=1), shape=(1, 28, 28), device=dev).purify(x[:2], seed=0)
    MedianFilter(3, shape=(1, 28, 28)).purify(x[:2])

    def add(defense, mode, seconds, note=""):
        rows.append((defense, mode, args.images / seconds, seconds, note))
        print(f"{defense:11s} {mode:28s} {args.images / seconds:9.2f} img/s  ({seconds:.1f}s) {note}", flush=True)

    for name in args.defenses.split(","):
        if name in PAPER_CONFIGS:
            cfg = scaled_gan_cfg(name, args.scale)
            if name == "mimicgan":
                cfg = cfg.with_(outer_iters=max(1, round(cfg.outer_iters * args.scale)))
            d = GANPriorDefense(name, G, D, enc if name == "invgan" else None, cfg, shape=(1, 28, 28))
            steps = f"{cfg.outer_iters}x{cfg.latent_steps} steps, R={cfg.restarts}"
            add(name, "batched (default chunk)", timed(lambda: d.purify(x, seed=0)), steps)
            if name == "mimicgan":
                add(
                    name,
                    "per-image loop",
                    timed(lambda: [d.purify(x[i : i + 1], seed=0) for i in range(len(x))]),
                    "not equivalent: the surrogate is shared by the batch",
                )
                continue
            single = GANPriorDefense(
                name, G, D, enc if name == "invgan" else None, cfg.with_(chunk_size=cfg.restarts), shape=(1, 28, 28)
            )
            add(
                name,
                "per-image loop",
                timed(lambda: [single.purify(x[i : i + 1], seed=0) for i in range(len(x))]),
                steps,
            )
            if cfg.restarts > 1:
                one = GANPriorDefense(name, G, D, None, cfg.with_(restarts=1, chunk_size=10**6), shape=(1, 28, 28))
                add(
                    name,
                    "restart loop (all images)",
                    timed(lambda: [one.purify(x, seed=r) for r in range(cfg.restarts)]),
                    steps,
                )
            if name == "defensegan":
                for chunk in (50, 100, 200, 400, 1000):
                    if chunk > args.images * cfg.restarts:
                        break
                    dd = GANPriorDefense(name, G, D, None, cfg.with_(chunk_size=chunk), shape=(1, 28, 28))
                    add(name, f"batched, chunk {chunk} latents", timed(lambda: dd.purify(x, seed=0)), steps)
        elif name == "ride":
            rcfg = RIDEConfig(iterations=max(5, round(2000 * args.scale)))
            r = RIDE(rcfg, shape=(1, 28, 28), device=dev)
            add(name, "batched (grouped conv)", timed(lambda: r.purify(x, seed=0)), f"K={rcfg.iterations}")
            add(
                name,
                "per-image loop",
                timed(lambda: [r.purify(x[i : i + 1], seed=0) for i in range(len(x))]),
                f"K={rcfg.iterations}",
            )
        elif name in ("median", "tvm"):
            d: Defense = (
                MedianFilter(3, shape=(1, 28, 28)) if name == "median" else TVMinimization(0.1, shape=(1, 28, 28))
            )
            add(name, "library (per image inside)", timed(lambda: d.purify(x)))

    def ratio(defense):
        b = [r for r in rows if r[0] == defense and r[1].startswith("batched")]
        loop = [r for r in rows if r[0] == defense and r[1] == "per-image loop"]
        return (b[0][2] / loop[0][2]) if b and loop else None

    dev_name = (
        torch.cuda.get_device_name(0)
        if dev.type == "cuda"
        else f"CPU ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} threads)"
    )
    lines = [
        f"Command: `{command_line(argv)}`  ",
        f"Device: {dev_name}; torch {torch.__version__}; {args.images} Fashion-MNIST test images; step counts x{args.scale} of the paper settings; best of {REPEATS} runs.",  # noqa: E501
        "",
        "| defense | mode | images/s | seconds | note |",
        "|---|---|---:|---:|---|",
    ]
    lines += [f"| {d} | {m} | {ips:.2f} | {s:.1f} | {n} |" for d, m, ips, s, n in rows]
    lines += ["", "| defense | batched / per-image loop |", "|---|---:|"]
    for d in dict.fromkeys(r[0] for r in rows):
        rr = ratio(d)
        if rr is not None:
            lines.append(f"| {d} | {rr:.2f}x |")
    return write_table(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
