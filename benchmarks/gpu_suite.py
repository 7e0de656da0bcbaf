"""The GPU suite (issue 18, item 2): one command that measures what a GPU changes, in under 10 minutes.

On a CUDA machine it runs, in this order, each stage under a time cap taken from one overall ``--budget``:

1. models: the paper Fashion-MNIST classifier and GAN prior (``classifier-fmnist-paper``,
   ``gan-fmnist-paper``). A fresh GPU machine has an empty zoo, so the suite *trains them when missing*
   (``defbench train ... --preset paper``, timed); ``--no-train`` requires them instead and skips the stages
   that need them, naming the command that builds them. The zoo is ``$DEFBENCH_HOME/zoo`` as always.
2. throughput: :mod:`purify_throughput`'s measurements (its functions, imported): batched vs per-image
   loop for every defense at paper settings, DefenseGAN's chunk sizes, and each GAN row's FLOP rate against
   a dense fp32 GEMM peak measured in the same run. Fresh networks (timing does not depend on weights).
3. bpda: one BPDA cell, ``defbench matrix --defense defensegan --attacks pgd --threat bpda --n 20`` (PGD
   ε = 0.3, 40 steps, EOT 10 as the paper preset runs it).
4. fig5b: ``defbench paper run mimicgan-fig5b --n 500`` (the paper's n), with its wall time.

It writes one Markdown table (``--out``, default ``benchmarks/results/gpu_suite.md``) and the same rows as
CSV beside it, plus fig5b's own report as ``<out stem>_fig5b.md``. Stores, logs and reports live in
``--work`` (default ``runs/gpu_suite``), so a second run resumes fig5b's cells and reuses trained models.

Caps. A stage that reaches its cap stops there and says so in the table: the CLI stages get SIGTERM (defbench
keeps every finished cell; exit 143), the throughput stage starts no new measurement and cuts a per-image loop
short (its images/s stays a rate over the images it did). Caps are min(default, share of what is left):
models 180 s, throughput 120 s or 35%, BPDA 75 s or 40%, fig5b all that is left. Budget reasoning, from
FLOP counts (``FlopCounterMode``: one latent step of the Fashion-MNIST G, forward + input gradient, is
52.6 MFLOP per latent, 105 with D under Cowboy's λ_adv) and this project's CPU numbers (docs/RESULTS.md):

* fig5b at n = 500: ~4,000 DefenseGAN and ~4,000 Cowboy image projections (6 gray-box cells of 500 images
  and the gan-aware cell's two projections) at 10 restarts x 200 steps, 105 and 210 GFLOP each: 1.26 PFLOP.
  On one CPU thread fig5b took 2,792 s at n = 100 (20 of its 27 cells computed), so ~4 h at n = 500; an H200
  at a conservative 17 TFLOP/s (25% of its 67 TFLOP/s fp32) projects in ~75 s, plus ~8,000 MimicGAN steps of
  a 100-image batch (launch bound, ~1 ms each) and the attacks: ~2 min expected.
* BPDA: 40 PGD steps x EOT 10 = 400 projections of the 20 images (200 latents, 200 steps each), launch bound
  at ~0.35 ms a step: ~30-50 s (the CPU figure, 970 s for 20 images, had one draw per step, before EOT).
* models: ~7,000 classifier steps and ~7,500 GAN steps of batch 64-128, a few ms each: ~1-2 min (CPU:
  82.6 min for the GAN).
* throughput: 200 images per GAN defense (2,000 latents, ~5 ms a step), per-image loops over 10 images,
  RIDE (10,000 iterations whose CPU-side noise draws bound it on a GPU) on 16 images, loop over 2: ~1.5 min.

Expected total ~6 min on one H200, under the 10-minute limit with the test run of ``benchmarks/gpu_check.sh``.
Measured since on one H200 (2026-12-04, ``benchmarks/gpu_bpda.sh``; docs/RESULTS.md): the models stage's two
trainings took 35 s and 108 s of wall time (18 s and 90 s of training), ``tests/test_cuda.py`` 39 s; the
throughput stage, capped at 84 s inside an outer 90 s timeout, got to InvGAN, not MimicGAN and RIDE.

Without CUDA (or with ``--smoke``) it runs a tiny version of the same stages instead: stand-in (untrained)
quick-preset models in a temporary zoo, a few steps per measurement, a 2-image BPDA cell and fig5b under
the quick preset at n = 2 with a 20 s cap; it writes its table to a temporary folder unless ``--out`` is
given, and exits 0 after saying that the real suite needs CUDA.

    python benchmarks/gpu_suite.py                  # CUDA machine: the suite
    python benchmarks/gpu_suite.py --smoke          # any machine: the same code path in a minute

Data: ``$DEFBENCH_DATA``, else ``../shared/data`` beside the checkout, else ``shared/data`` inside it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import REPO, command_line, data_root, markdown, write_table

import purify_throughput as tp

STAGES = ("models", "throughput", "bpda", "fig5b")
COLUMNS = ("stage", "measurement", "setting", "value", "unit", "wall s", "note")
#: RIDE Table 2 (MNIST, BPDA): the n of the issue's target and the paper's "10-iteration PGD attack"
RIDE_BPDA_N, RIDE_BPDA_STEPS = 100, 10
FIG5B_CELLS = 27  # clean x 4 defenses + 5 gray-box attacks x 4 + gan-aware x 3 (the No Defense one is reused)


@dataclass
class Result:
    """One row of the suite's table."""

    stage: str
    measurement: str
    setting: str
    value: str
    unit: str
    wall_s: float | None
    note: str = ""


@dataclass
class Settings:
    """What each stage runs: the paper settings on a GPU, tiny ones for the smoke."""

    preset: str = "paper"
    images: int = 200  # throughput: images per GAN-defense measurement
    loop_images: int = 10
    ride_images: int = 16
    ride_loop_images: int = 2
    scale: float = 1.0
    repeats: int = 2
    chunks: tuple[int, ...] = (200, 500, 1000, 2000)
    bpda_n: int = 20
    bpda_extra: tuple[str, ...] = ()
    fig5b_n: int = 500
    caps: tuple[float, float, float] = (180.0, 120.0, 75.0)  # models, throughput, bpda (s)


SMOKE = Settings(
    preset="quick",
    images=2,
    loop_images=1,
    ride_images=1,
    ride_loop_images=1,
    scale=0.005,
    repeats=1,
    chunks=(10,),
    bpda_n=2,
    bpda_extra=(
        "--eot",
        "1",
        "--batch-size",
        "2",
        "--defense-opt",
        "defensegan:latent_steps=2",
        "--defense-opt",
        "defensegan:restarts=2",
        "--attack-opt",
        "pgd:steps=2",
    ),
    fig5b_n=2,
    caps=(30.0, 60.0, 120.0),
)
SMOKE_FIG5B_CAP = 20.0


class Suite:
    def __init__(self, args, settings: Settings, device: torch.device, work: Path, log_dir: Path):
        self.args, self.s, self.device, self.work, self.log_dir = args, settings, device, work, log_dir
        self.t0 = time.monotonic()
        self.rows: list[Result] = []
        self.models_ok = True

    # ------------------------------------------------------------------------------------------ plumbing
    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.t0)

    def cap(self, default: float, share: float = 1.0) -> float:
        return max(0.0, min(default, self.left() * share))

    def add(self, *row, **kw) -> None:
        r = Result(*row, **kw)
        self.rows.append(r)
        wall = "" if r.wall_s is None else f" ({r.wall_s:.1f} s)"
        print(f"[{r.stage}] {r.measurement}: {r.value} {r.unit}{wall} {r.note}".rstrip(), flush=True)

    def cli(self, name: str, args: list[str], cap: float) -> tuple[int, float, bool, str]:
        """``python -m defbench ARGS`` with its output in ``<log_dir>/<name>.log``; SIGTERM at ``cap`` seconds
        (defbench stops like Ctrl-C, finished cells kept), SIGKILL 30 s later. (exit code, seconds, capped,
        last lines of output)."""
        log = self.log_dir / f"{name}.log"
        cmd = [sys.executable, "-m", "defbench", *args]
        print(f"$ defbench {' '.join(args)}   (cap {cap:.0f} s, log {log})", flush=True)
        t0 = time.monotonic()
        capped = False
        with open(log, "w") as fh:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
            try:
                proc.wait(timeout=max(1.0, cap))
            except subprocess.TimeoutExpired:
                capped = True
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        seconds = time.monotonic() - t0
        tail = log.read_text(errors="replace").splitlines()[-40:]
        return proc.returncode, seconds, capped, "\n".join(tail)

    # ------------------------------------------------------------------------------------------ stages
    def stage_models(self) -> None:
        """The two paper models, trained when missing under one cap for both. A GAN stopped at the cap keeps
        its best epoch so far in the zoo (``defbench train gan`` saves after every epoch): the later stages
        then time that GAN (timing does not depend on the weights) and the table says how far it got."""
        from defbench.harness import zoo

        stage_end = time.monotonic() + self.cap(self.s.caps[0])
        for kind in ("classifier", "gan"):
            mid = zoo.model_id(kind, "fmnist", self.s.preset)
            if zoo.exists(mid):
                self.add("models", mid, "in the zoo", "present", "", None, _metric(zoo.manifest_or_none(mid)))
                continue
            if self.args.no_train or not self.models_ok:
                self.models_ok = False
                why = f"build it with: {zoo.build_hint(mid)}" if self.args.no_train else "the classifier is missing"
                self.add("models", mid, "--no-train" if self.args.no_train else "", "missing", "", None, why)
                continue
            cap = max(0.0, stage_end - time.monotonic())
            args = ["train", kind, "--dataset", "fmnist", "--preset", self.s.preset, "--device", str(self.device)]
            rc, sec, capped, tail = self.cli(f"train_{kind}", args + ["--no-progress"], cap)
            ok = zoo.exists(mid)
            self.models_ok &= ok
            note = _metric(zoo.manifest_or_none(mid)) if ok else ""
            if rc != 0:
                note = _failure(rc, capped, cap, tail) + (f"; the zoo keeps: {note}" if note else "")
            value = "trained" if rc == 0 else ("partly trained" if ok else "failed")
            self.add("models", f"train {mid}", f"defbench {' '.join(args)}", value, "", sec, note)

    def stage_throughput(self) -> None:
        s = self.s
        cap = self.cap(s.caps[1], 0.35)
        t0 = time.monotonic()
        deadline = t0 + cap
        print(f"throughput: cap {cap:.0f} s", flush=True)
        bench = tp.make_bench(max(s.images, s.ride_images), self.device)
        tp.warm_up(bench)
        peak = tp.gemm_peak(self.device)
        self.add("throughput", "dense GEMM peak", peak[1], f"{peak[0] / 1e9:.1f}", "GFLOP/s", None)
        fwd = tp.step_flops(tp.ProjectionEngine(bench.G), tp.ProjectionConfig(restarts=1), bench.x[:1])[0]
        self.add(
            "throughput",
            "one latent step, Fashion-MNIST G",
            "forward + gradient to z",
            f"{fwd / 1e6:.1f}",
            "MFLOP/latent",
            None,
        )
        rows: list[tp.Row] = []
        for name in tp.DEFENSES:
            ride = name == "ride"
            rows += tp.measure_defense(
                name,
                bench,
                s.scale,
                1 if ride else s.repeats,
                s.chunks,
                images=s.ride_images if ride else s.images,
                loop_images=s.ride_loop_images if ride else s.loop_images,
                deadline=deadline,
                log=lambda line: print(line, flush=True),
            )
        for r in rows:
            setting = f"{r.images:g} images" if r.seconds is not None else ""
            if r.flop_rate:
                rate = f"{r.flop_rate / 1e9:.1f} GFLOP/s = {100 * r.flop_rate / peak[0]:.1f}% of GEMM peak"
                note = f"{r.note}; {r.latents} latents together; {rate}"
            else:
                note = r.note
            value = "—" if r.images_per_s is None else f"{r.images_per_s:.2f}"
            self.add("throughput", f"{r.defense}: {r.mode}", setting, value, "images/s", r.seconds, note)
        for d in dict.fromkeys(r.defense for r in rows):
            ratio = tp.batched_over_loop(rows, d)
            if ratio is not None:
                self.add("throughput", f"{d}: batched / per-image loop", "", f"{ratio:.2f}", "x", None)
        self.ride_bpda_estimate(rows)
        self.add("throughput", "stage", f"cap {cap:.0f} s", "", "", time.monotonic() - t0)

    def ride_bpda_estimate(self, rows: list[tp.Row]) -> None:
        """RIDE Table 2's MNIST BPDA cell at n = 100 (issue "RIDE that works as published"): 10 PGD steps, each a
        purification of the attacked batch, plus the final one, per EOT draw; the time follows from the batched
        RIDE rate just measured (the classifier's share is negligible beside 10,000 RIDE iterations). Measured
        at a step scale the rate is for the iterations that scale ran (s x K, but never under 5), so the estimate
        scales it by their share of the paper's K."""
        rate = [r.images_per_s for r in rows if r.defense == "ride" and r.mode.startswith("batched") and r.images_per_s]
        if not rate:
            return
        per_s = rate[0] * tp.ride_iterations(self.s.scale) / tp.RIDE_K  # purifications per second at the paper's K
        for eot, why in ((1, "the paper's protocol"), (10, "defbench's default for randomized defenses")):
            purifications = RIDE_BPDA_N * (RIDE_BPDA_STEPS * eot + 1)
            self.add(
                "throughput",
                f"ride: Table 2 MNIST BPDA, n = {RIDE_BPDA_N}, EOT {eot} (estimate)",
                f"{purifications} purifications",
                f"{purifications / per_s / 60:.1f}",
                "min",
                None,
                f"{why}; from the batched RIDE rate above"
                + ("" if self.s.scale == 1 else f" scaled by x{self.s.scale:g}"),
            )

    def stage_bpda(self) -> None:
        if not self.models_ok:
            self.add("bpda", "defensegan, PGD, BPDA", "", "skipped", "", None, "needs the models")
            return
        cap = self.cap(self.s.caps[2], 0.4)
        out = self.work / "bpda"
        args = [
            "matrix",
            "--defense",
            "defensegan",
            "--attacks",
            "pgd",
            "--eps",
            "0.3",
            "--threat",
            "bpda",
            "--n",
            str(self.s.bpda_n),
            "--no-baseline",
            "--preset",
            self.s.preset,
            "--device",
            str(self.device),
            "--out",
            str(out),
            *self.s.bpda_extra,
        ]
        rc, sec, capped, tail = self.cli("bpda", args + ["--no-progress"], cap)
        acc = _bpda_accuracy(out / "defbench.sqlite")
        note = (acc + "; " if acc else "") + (
            "CPU: 970 s for 20 images on 1 thread with one EOT draw per step (docs/RESULTS.md, invgan-table2-fmnist)"
        )
        if rc != 0:
            note = _failure(rc, capped, cap, tail) + "; " + note
        self.add(
            "bpda",
            "defensegan, PGD ε=0.3, BPDA",
            f"n={self.s.bpda_n}, {self.s.preset} preset" + (" (smoke budgets)" if self.s.bpda_extra else ""),
            f"{sec:.1f}",
            "s",
            sec,
            note,
        )

    def stage_fig5b(self) -> None:
        if not self.models_ok:
            self.add("fig5b", "mimicgan-fig5b", "", "skipped", "", None, "needs the models")
            return
        cap = SMOKE_FIG5B_CAP if self.args.smoke else self.cap(10**6) - 10
        if cap < 30 and not self.args.smoke:
            self.add("fig5b", "mimicgan-fig5b", "", "skipped", "", None, f"only {self.left():.0f} s of the budget left")
            return
        out = self.work / "fig5b"
        args = ["paper", "run", "mimicgan-fig5b", "--n", str(self.s.fig5b_n), "--preset", self.s.preset]
        args += ["--device", str(self.device), "--out", str(out)]
        before = _cells(out / "defbench.sqlite")
        rc, sec, capped, tail = self.cli("fig5b", args + ["--no-progress"], cap)
        after = _cells(out / "defbench.sqlite")
        summary = next((ln.strip() for ln in reversed(tail.splitlines()) if "cells computed" in ln), "")
        if rc == 0:
            note = summary or f"{after - before} cells computed"
        else:
            note = f"{_failure(rc, capped, cap, tail)}; {after} of {FIG5B_CELLS} cells stored, a rerun resumes"
        spent = _seconds_by_defense(out / "defbench.sqlite")
        note += (f"; cell seconds: {spent}" if spent else "") + "; CPU: 2,792 s at n = 100 on 1 thread (20 of 27 cells)"
        for src in sorted(out.glob("mimicgan-fig5b.md")):
            dst = Path(self.args.out).with_name(Path(self.args.out).stem + "_fig5b.md")
            dst.write_text(src.read_text())
        setting = f"n={self.s.fig5b_n}, {self.s.preset} preset, cap {cap:.0f} s"
        self.add("fig5b", "defbench paper run mimicgan-fig5b", setting, f"{sec:.1f}", "s", sec, note)

    # ------------------------------------------------------------------------------------------ report
    def write(self, argv) -> int:
        out = Path(self.args.out)
        dev = tp.device_name(self.device)
        cuda = f"CUDA {torch.version.cuda}, " if self.device.type == "cuda" else ""
        lines = [
            f"Command: `{command_line(argv)}`  ",
            f"Device: {dev}; {cuda}torch {torch.__version__}; {datetime.date.today().isoformat()}; "
            f"budget {self.args.budget:.0f} s, suite wall {time.monotonic() - self.t0:.0f} s"
            + ("; **smoke run (tiny settings), not a measurement**" if self.args.smoke else "")
            + ".  ",
            f"Data: {os.environ.get('DEFBENCH_DATA', 'loader default')}; work dir: {self.work}.",
            "",
        ]
        body = [
            [r.stage, r.measurement, r.setting, r.value, r.unit, "" if r.wall_s is None else f"{r.wall_s:.1f}", r.note]
            for r in self.rows
        ]
        lines += markdown(body, COLUMNS, ["left", "left", "left", "right", "left", "right", "left"])
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["wall_s" if c == "wall s" else c for c in COLUMNS])
            for r in self.rows:
                wall = "" if r.wall_s is None else round(r.wall_s, 2)
                w.writerow([r.stage, r.measurement, r.setting, r.value, r.unit, wall, r.note])
        return write_table(lines, out)


def _metric(manifest: dict | None) -> str:
    m = (manifest or {}).get("metrics", {})
    parts = []
    if "clean_test_accuracy" in m:
        parts.append(f"clean test accuracy {m['clean_test_accuracy']:.4f}")
    if "projection_accuracy_during_training" in m:
        parts.append(f"projection accuracy {m['projection_accuracy_during_training']:.2f} (100 images)")
    if "epochs_done" in m:
        parts.append(f"{m['epochs_done']} of {m.get('epochs_planned', '?')} epochs (best {m.get('best_epoch', '?')})")
    if "train_seconds" in m:
        parts.append(f"trained in {m['train_seconds']} s on {m.get('device', '?')}")
    return "; ".join(parts)


def _failure(rc: int, capped: bool, cap: float, tail: str) -> str:
    if capped:
        return f"stopped at its {cap:.0f} s cap (exit {rc})"
    last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "")
    return f"exit {rc}: {last[:200]}"


def _cells(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db) as c:
            return int(c.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
    except sqlite3.Error:
        return 0


def _query(db: Path, sql: str) -> list[tuple]:
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(db) as c:
            return c.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def _bpda_accuracy(db: Path) -> str:
    """The BPDA cell from the store: 'robust accuracy k/n, cell X s'; '' when there is none."""
    rows = _query(db, "SELECT correct, n, wall_seconds FROM cells WHERE threat = 'bpda'")
    return "; ".join(f"robust accuracy {k}/{n}, the cell's own time {w:.1f} s" for k, n, w in rows)


def _seconds_by_defense(db: Path) -> str:
    """Seconds the store's cells took, summed per defense (where fig5b's time went)."""
    rows = _query(db, "SELECT defense, SUM(wall_seconds), COUNT(*) FROM cells GROUP BY defense ORDER BY defense")
    return ", ".join(f"{d} {w:.0f} s ({n} cells)" for d, w, n in rows)


# ---------------------------------------------------------------------------------------------- smoke zoo
def stand_in_zoo(home: Path) -> None:
    """Untrained quick-preset classifier and GAN in ``home``'s zoo: the smoke exercises the code, not models."""
    from defbench.classifiers.models import build_classifier
    from defbench.defenses.priors import build_gan
    from defbench.harness import zoo

    os.environ["DEFBENCH_HOME"] = str(home)
    torch.manual_seed(0)
    clf = build_classifier("fmnist")
    G, D = build_gan("fmnist")
    G.train()
    with torch.no_grad():  # BatchNorm statistics from one pass, so that G's outputs are not degenerate
        G(torch.rand(256, G.latent_dim) * 2 - 1)
    base = {"dataset": "fmnist", "preset": "quick", "config": {}, "metrics": {"stand_in": True}}
    zoo.save(
        zoo.model_id("classifier", "fmnist", "quick"),
        clf.state_dict(),
        {**base, "kind": "classifier", "arch": clf.arch},
    )
    state = {**{f"G.{k}": v for k, v in G.state_dict().items()}, **{f"D.{k}": v for k, v in D.state_dict().items()}}
    zoo.save(zoo.model_id("gan", "fmnist", "quick"), state, {**base, "kind": "gan", "arch": "dcgan28"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole suite (default 480)")
    ap.add_argument("--out", default=None, help="Markdown table (default benchmarks/results/gpu_suite.md)")
    ap.add_argument("--work", default=None, help="stores and logs (default runs/gpu_suite; resumable)")
    ap.add_argument("--no-train", action="store_true", help="require the paper models instead of training them")
    ap.add_argument("--smoke", action="store_true", help="tiny settings and stand-in models, on any device")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma list of stages to run, in this order")
    ap.add_argument("--device", default="auto", help="auto | cuda | cpu (cpu implies --smoke)")
    args = ap.parse_args(argv)
    device = tp.resolve_device(args.device)
    if device.type != "cuda" and not args.smoke:
        print("gpu_suite: the suite needs a CUDA device and found none; running the CPU smoke of the same stages")
        args.smoke = True
    tmp = Path(tempfile.mkdtemp(prefix="defbench-gpu-smoke-")) if args.smoke else None
    if args.out is None:
        args.out = str(tmp / "gpu_suite.md") if tmp else str(REPO / "benchmarks" / "results" / "gpu_suite.md")
    work = Path(args.work) if args.work else (tmp / "work" if tmp else REPO / "runs" / "gpu_suite")
    work.mkdir(parents=True, exist_ok=True)
    data_root()
    if tmp:
        stand_in_zoo(tmp / "home")
    stages = [st.strip() for st in args.stages.split(",") if st.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        ap.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    suite = Suite(args, SMOKE if args.smoke else Settings(), device, work, work)
    for stage in stages:
        getattr(suite, f"stage_{stage}")()
    rc = suite.write(argv)
    if args.smoke and device.type != "cuda":
        print(f"gpu_suite: CPU smoke done ({args.out}); the suite itself needs CUDA")
    return rc


if __name__ == "__main__":
    sys.exit(main())
