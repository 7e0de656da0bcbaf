"""Purification throughput: the batched engine against a naive per-image loop, side by side in one run.

For every defense at paper settings (or ``--scale``-shrunk step counts, stated in the table) this times
  * batched: the defense as shipped (all images x restarts in one latent tensor, chunked per device;
    RIDE as one grouped-convolution program over the batch);
  * per-image loop: one image and its restarts at a time (one RIDE network at a time), over the first
    ``--loop-images`` images (default all; images/s is a rate, so the two modes compare either way);
  * restart loop (GAN defenses with R > 1): all images, one restart at a time;
and for DefenseGAN a sweep of chunk sizes (``--chunks``). Timing does not depend on the weights, so fresh
(untrained) networks are used and the zoo is not needed.

Efficiency reference: the FLOPs of one latent step of the projection engine (the generator's forward pass and
its gradient with respect to the latents; D's too under λ_adv, and MimicGAN's surrogate steps) are counted by
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; element-wise work is not
counted), and each GAN row's achieved FLOP rate is set against a dense fp32 GEMM peak (``torch.mm`` of two
large square matrices) measured in the same run on the same device.

Writes Markdown tables to ``--out``; :mod:`gpu_suite` imports the functions below.

    python benchmarks/purify_throughput.py --images 20 --scale 0.1 --out benchmarks/results/purify_throughput.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from _common import command_line, data_root, write_table
from _common import markdown as table

from defbench.defenses.base import Defense
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.priors import Encoder, MimicSurrogate, build_gan, sample_latent
from defbench.defenses.projection import ProjectionConfig, ProjectionEngine, default_chunk
from defbench.defenses.ride import RIDE, RIDEConfig
from defbench.harness.data import load_dataset
from defbench.harness.seeding import resolve_device

DEFENSES = ("defensegan", "cowboy", "invgan", "mimicgan", "ride", "median", "tvm")
CPU_CHUNKS = (50, 100, 200, 400, 1000)
SHAPE = (1, 28, 28)


@dataclass
class Row:
    """One timed mode. ``seconds`` is None for a mode skipped at the time cap; ``flops`` counts the whole mode
    (None: not counted); ``latents`` are the latents optimised together (GAN defenses)."""

    defense: str
    mode: str
    images: float
    seconds: float | None
    note: str = ""
    flops: float | None = None
    latents: int | None = None

    @property
    def images_per_s(self) -> float | None:
        return None if not self.seconds else self.images / self.seconds

    @property
    def flop_rate(self) -> float | None:
        return None if self.flops is None or not self.seconds else self.flops / self.seconds


@dataclass
class Bench:
    """The inputs every measurement shares: Fashion-MNIST test images and fresh networks on ``device``."""

    x: torch.Tensor
    G: torch.nn.Module
    D: torch.nn.Module
    encoder: torch.nn.Module
    device: torch.device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(units: Sequence[Callable[[], object]], device, repeats: int = 2, deadline: float | None = None):
    """Best of ``repeats`` wall-clock runs of ``units`` called one after another (the first run doubles as a
    warm-up). Past ``deadline`` (``time.monotonic()``) a run stops after the unit in progress and no further
    run starts. Returns (seconds, units done) of the run with the least time per unit."""
    device = torch.device(device)
    best: tuple[float, int] | None = None
    for _ in range(max(1, repeats)):
        sync(device)
        t0, done = time.perf_counter(), 0
        for unit in units:
            if done and deadline is not None and time.monotonic() > deadline:
                break
            unit()
            done += 1
        sync(device)
        dt = time.perf_counter() - t0
        if best is None or dt / done < best[0] / best[1]:
            best = (dt, done)
        if deadline is not None and time.monotonic() > deadline:
            break
    return best


def make_bench(images: int, device="auto") -> Bench:
    dev = resolve_device(device) if isinstance(device, str) else device
    data_root()
    torch.manual_seed(0)
    x, _ = load_dataset("fmnist", "test").get(range(images))
    G, D = build_gan("fmnist")
    return Bench(x.to(dev), G.to(dev).eval(), D.to(dev).eval(), Encoder(1, 28).to(dev).eval(), dev)


def warm_up(bench: Bench) -> None:
    """Allocator, thread pools, kernels and lazy imports, so that the first timed mode is not penalised."""
    x = bench.x[:2]
    gan_defense(bench, "defensegan", PAPER_CONFIGS["defensegan"].with_(latent_steps=3)).purify(x, seed=0)
    RIDE(RIDEConfig(iterations=3, checkpoints=1), shape=SHAPE, device=bench.device).purify(x, seed=0)
    MedianFilter(3, shape=SHAPE).purify(x)
    sync(bench.device)


#: RIDE's K (iterations per checkpoint) at the paper's readings, which ``--scale`` shrinks
RIDE_K = RIDEConfig.for_dataset("fmnist").iterations


def ride_iterations(scale: float) -> int:
    """RIDE's K at a step scale: scale x the paper's, rounded, and never under 5 (so at scales under 5 / K the
    run's K is *more* than scale x K: a rate measured there is for ride_iterations(scale) / K of the work)."""
    return max(5, round(RIDE_K * scale))


def scaled_gan_cfg(name: str, scale: float) -> ProjectionConfig:
    cfg = PAPER_CONFIGS[name]
    cfg = cfg.with_(latent_steps=max(1, round(cfg.latent_steps * scale)))
    if name == "mimicgan":
        cfg = cfg.with_(outer_iters=max(1, round(cfg.outer_iters * scale)))
    return cfg


def gan_defense(bench: Bench, name: str, cfg: ProjectionConfig) -> GANPriorDefense:
    return GANPriorDefense(name, bench.G, bench.D, bench.encoder if name == "invgan" else None, cfg, shape=SHAPE)


# ------------------------------------------------------------------------------------------- FLOP counting
def step_flops(engine: ProjectionEngine, cfg: ProjectionConfig, y: torch.Tensor, n: int = 8) -> tuple[float, float]:
    """(FLOPs of one latent step, FLOPs of one surrogate step), per latent, of the engine under ``cfg``:
    the same ``_terms`` call and gradient as ``ProjectionEngine._project_chunk``, on ``n`` latents, counted by
    ``FlopCounterMode`` (matrix products and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    dev = engine.device
    y_rep = y[:1].to(dev).expand(n, *y.shape[1:])
    z = sample_latent(n, engine.latent_dim, torch.Generator().manual_seed(0)).to(dev).requires_grad_(True)
    surrogate = None
    if cfg.surrogate != "none":
        surrogate = MimicSurrogate(y.shape[1], y.shape[-1], generator=torch.Generator().manual_seed(0)).to(dev)
    with FlopCounterMode(display=False) as fc:
        obj, _ = engine._terms(y_rep, z, cfg, surrogate)
        # the engine's torch.autograd.grad(obj.sum(), z), which FlopCounterMode's module tracker refuses
        obj.sum().backward(inputs=[z])
    latent = fc.get_total_flops() / n
    surr = 0.0
    if cfg.surrogate == "mimic" and cfg.surrogate_steps:
        with FlopCounterMode(display=False) as fc:
            obj, _ = engine._terms(y_rep, z.detach(), cfg, surrogate)
            obj.sum().backward()
        surr = fc.get_total_flops() / n
    return latent, surr


def flops_per_image(defense: GANPriorDefense, y: torch.Tensor) -> tuple[float, float]:
    """(FLOPs the projection spends per image, FLOPs of one latent step per latent) under the defense's
    config: restarts x outer iterations x (latent steps + surrogate steps); the final pick of the best restart
    (one forward pass) is left out."""
    cfg = defense.cfg
    latent, surr = step_flops(defense.engine, cfg, y)
    return cfg.restarts * cfg.outer_iters * (cfg.latent_steps * latent + cfg.surrogate_steps * surr), latent


def gemm_peak(device, n: int | None = None, repeats: int = 5) -> tuple[float, str]:
    """(FLOP/s, description) of the best of ``repeats`` fp32 ``torch.mm`` of two n x n matrices (n = 8192 on a
    GPU, 2048 on a CPU) after one warm-up product."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen).to(device), torch.randn(n, n, generator=gen).to(device)
    torch.mm(a, b)
    best = min(timed([lambda: torch.mm(a, b)], device, repeats=1)[0] for _ in range(repeats))
    desc = f"torch.mm fp32 {n}x{n}"
    if device.type == "cuda":
        desc += f", TF32 {'allowed' if torch.backends.cuda.matmul.allow_tf32 else 'off'} for matmul"
        desc += f" ({'allowed' if torch.backends.cudnn.allow_tf32 else 'off'} for cuDNN convolutions)"
    return 2 * n**3 / best, desc


# ------------------------------------------------------------------------------------------- measurements
def measure_defense(
    name: str,
    bench: Bench,
    scale: float = 1.0,
    repeats: int = 2,
    chunks: Sequence[int] = CPU_CHUNKS,
    images: int | None = None,
    loop_images: int | None = None,
    deadline: float | None = None,
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Every mode of one defense on the first ``images`` of the bench (default all), the per-image loop over
    the first ``loop_images`` of those (default all). A mode that would start past ``deadline`` is kept as a
    row with ``seconds=None`` and the note 'skipped: time cap'."""
    x = bench.x[: images or len(bench.x)]
    n = len(x)
    n_loop = min(n, loop_images or n)
    dev = bench.device
    rows: list[Row] = []

    def add(mode, units, note="", flops_per_img=None, latents=None, per_unit_images=None):
        if deadline is not None and time.monotonic() > deadline:
            rows.append(Row(name, mode, 0, None, "skipped: time cap"))
            log(f"{name:11s} {mode:28s} skipped: time cap")
            return
        seconds, done = timed(units, dev, repeats, deadline)
        # units are images (per-image loops) or shares of the whole batch (one call, or one restart each)
        imgs = done * per_unit_images if per_unit_images else n * done / len(units)
        if done < len(units):
            note = (note + "; " if note else "") + f"cut at the time cap after {done} of {len(units)} calls"
        row = Row(name, mode, imgs, seconds, note, None if flops_per_img is None else flops_per_img * imgs, latents)
        rows.append(row)
        rate = f"{row.flop_rate / 1e9:8.2f} GFLOP/s" if row.flop_rate else ""
        log(f"{name:11s} {mode:28s} {row.images_per_s:9.2f} img/s ({imgs:g} images, {seconds:.1f}s) {rate} {note}")

    if name in PAPER_CONFIGS:
        cfg = scaled_gan_cfg(name, scale)
        d = gan_defense(bench, name, cfg)
        fpi, _ = flops_per_image(d, x)
        inner = f"({cfg.surrogate_steps} f̂ + {cfg.latent_steps} z)" if cfg.surrogate_steps else f"{cfg.latent_steps}"
        steps = f"{cfg.outer_iters}x{inner} steps, R={cfg.restarts}"
        chunk = n * cfg.restarts if d.batch_coupled else min(n * cfg.restarts, default_chunk(dev))
        add("batched (default chunk)", [lambda: d.purify(x, seed=0)], steps, fpi, chunk)
        if name == "mimicgan":
            loop_note = "not equivalent: the surrogate is shared by the batch"
            units = [lambda i=i: d.purify(x[i : i + 1], seed=0) for i in range(n_loop)]
            add("per-image loop", units, loop_note, fpi, 1, per_unit_images=1)
            return rows
        single = gan_defense(bench, name, cfg.with_(chunk_size=cfg.restarts))
        units = [lambda i=i: single.purify(x[i : i + 1], seed=0) for i in range(n_loop)]
        add("per-image loop", units, steps, fpi, cfg.restarts, per_unit_images=1)
        if cfg.restarts > 1:
            one = gan_defense(bench, name, cfg.with_(restarts=1, chunk_size=10**6))
            units = [lambda r=r: one.purify(x, seed=r) for r in range(cfg.restarts)]
            add("restart loop (all images)", units, steps, fpi, n)
        if name == "defensegan":
            for c in sorted(chunks):  # ascending, so the first chunk past the latents ends the sweep
                if c > n * cfg.restarts:
                    break
                dd = gan_defense(bench, name, cfg.with_(chunk_size=c))
                add(f"batched, chunk {c} latents", [lambda dd=dd: dd.purify(x, seed=0)], steps, fpi, c)
    elif name == "ride":
        # the paper's readings: K iterations per checkpoint, T checkpoints, the supplement's MNIST network
        rcfg = RIDEConfig.for_dataset("fmnist", iterations=ride_iterations(scale))
        r = RIDE(rcfg, shape=SHAPE, device=dev)
        note = f"K={rcfg.iterations} x T={rcfg.checkpoints}, {rcfg.arch} net"
        add("batched (grouped conv)", [lambda: r.purify(x, seed=0)], note)
        units = [lambda i=i: r.purify(x[i : i + 1], seed=0) for i in range(n_loop)]
        add("per-image loop", units, note, per_unit_images=1)
    elif name in ("median", "tvm"):
        d: Defense = MedianFilter(3, shape=SHAPE) if name == "median" else TVMinimization(0.1, shape=SHAPE)
        add("library (per image inside)", [lambda: d.purify(x)])
    else:
        raise SystemExit(f"unknown defense {name!r}; choose from {', '.join(DEFENSES)}")
    return rows


def batched_over_loop(rows: Sequence[Row], defense: str) -> float | None:
    b = [r for r in rows if r.defense == defense and r.mode.startswith("batched") and r.images_per_s]
    loop = [r for r in rows if r.defense == defense and r.mode == "per-image loop" and r.images_per_s]
    return b[0].images_per_s / loop[0].images_per_s if b and loop else None


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def efficiency_lines(rows: Sequence[Row], bench: Bench, peak: tuple[float, str]) -> list[str]:
    """The FLOP-rate table of the GAN rows against the GEMM peak; no lines when no GAN row was timed."""
    timed = [r for r in rows if r.flop_rate is not None]
    if not timed:
        return []
    fwd = step_flops(ProjectionEngine(bench.G), ProjectionConfig(restarts=1), bench.x[:1])[0]
    per_step: dict[str, float] = {}
    body = []
    for r in timed:
        if r.defense not in per_step:
            cfg = PAPER_CONFIGS[r.defense]
            per_step[r.defense] = step_flops(gan_defense(bench, r.defense, cfg).engine, cfg, bench.x[:1])[0]
        body.append(
            [
                r.defense,
                r.mode,
                str(r.latents),
                f"{per_step[r.defense] / 1e6:.1f}",
                f"{r.flop_rate / 1e9:.2f}",
                f"{100 * r.flop_rate / peak[0]:.1f}",
            ]
        )
    header = ["defense", "mode", "latents together", "MFLOP per latent step", "achieved GFLOP/s", "% of GEMM peak"]
    return [
        f"Dense GEMM peak, same run: **{peak[0] / 1e9:.1f} GFLOP/s** ({peak[1]}). One latent step of the "
        f"Fashion-MNIST generator (forward + gradient to the latents) counts {fwd / 1e6:.1f} MFLOP per latent "
        "(FlopCounterMode: matrix products and convolutions only).",
        "",
        *table(body, header, ["left", "left", "right", "right", "right", "right"]),
    ]


#: column alignment of the rows table
RIGHT3 = ["left", "left", "right", "right", "right", "left"]


def markdown(rows: Sequence[Row], header: Sequence[str], efficiency: Sequence[str] = ()) -> list[str]:
    def rate(r: Row) -> list[str]:
        if r.seconds is None:
            return ["—", "—", "—"]
        return [f"{r.images:g}", f"{r.images_per_s:.2f}", f"{r.seconds:.1f}"]

    body = [[r.defense, r.mode, *rate(r), r.note] for r in rows]
    defenses = dict.fromkeys(r.defense for r in rows)
    ratios = [[d, f"{q:.2f}x"] for d in defenses if (q := batched_over_loop(rows, d)) is not None]
    lines = list(header) + [""]
    lines += table(body, ["defense", "mode", "images", "images/s", "seconds", "note"], RIGHT3)
    lines += [""] + table(ratios, ["defense", "batched / per-image loop"], ["left", "right"])
    if efficiency:
        lines += [""] + list(efficiency)
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20, help="images per measurement (default 20)")
    ap.add_argument("--loop-images", type=int, default=0, help="images of the per-image loops (default all)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply step counts (1.0 = paper settings)")
    ap.add_argument("--defenses", default=",".join(DEFENSES))
    ap.add_argument("--chunks", default=",".join(map(str, CPU_CHUNKS)), help="DefenseGAN chunk sizes to sweep")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2, help="time each mode this many times, keep the best")
    ap.add_argument("--out", default="benchmarks/results/purify_throughput.md")
    args = ap.parse_args(argv)
    bench = make_bench(args.images, args.device)
    warm_up(bench)
    peak = gemm_peak(bench.device)
    print(f"dense GEMM peak: {peak[0] / 1e9:.1f} GFLOP/s ({peak[1]})", flush=True)
    rows: list[Row] = []
    for name in args.defenses.split(","):
        rows += measure_defense(
            name,
            bench,
            args.scale,
            args.repeats,
            tuple(int(c) for c in args.chunks.split(",") if c),
            loop_images=args.loop_images or None,
            log=lambda s: print(s, flush=True),
        )
    header = [
        f"Command: `{command_line(argv)}`  ",
        f"Device: {device_name(bench.device)}; torch {torch.__version__}; {args.images} Fashion-MNIST test images; "
        f"step counts x{args.scale} of the paper settings; best of {max(1, args.repeats)} runs.",
    ]
    return write_table(markdown(rows, header, efficiency_lines(rows, bench, peak)), args.out)


if __name__ == "__main__":
    sys.exit(main())
