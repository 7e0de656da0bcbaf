"""benchmarks/purify_throughput.py and benchmarks/gpu_suite.py by hand, on CPU with fakes: a fake clock for the
timings and caps, fake defenses that record what they are asked to purify, fake subprocesses for the CLI stages. Every
number is set against a computation written out here (s50 audit)."""

from __future__ import annotations

import inspect
import signal
import subprocess
import types

import pytest
import torch

from conftest import import_benchmark, md_rows


@pytest.fixture(scope="module")
def tp():
    return import_benchmark("purify_throughput")


@pytest.fixture(scope="module")
def gs():
    return import_benchmark("gpu_suite")


class Clock:
    """time.monotonic and time.perf_counter both read ``now``, which only ``advance`` moves."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic

    def advance(self, dt: float) -> None:
        self.now += dt


# ------------------------------------------------------------------------------------------ purify_throughput
def test_row_rates_by_hand(tp):
    r = tp.Row("defensegan", "batched", images=6, seconds=2.0, flops=30.0)
    assert r.images_per_s == 3.0 and r.flop_rate == 15.0
    skipped = tp.Row("defensegan", "batched", 0, None)
    assert skipped.images_per_s is None and skipped.flop_rate is None


def test_timed_keeps_the_run_with_least_time_per_unit_under_a_fake_clock(tp, monkeypatch):
    clock = Clock(0.0)
    monkeypatch.setattr(tp, "time", clock)
    costs, calls = [2.0, 2.0, 2.0, 3.0, 9.0], []
    units = [lambda: (calls.append(1), clock.advance(costs.pop(0)))] * 3
    # run 1: three units of 2 s (t = 6 < 7); run 2: one unit of 3 s, then t = 9 is past the deadline: cut, and no
    # third run. Run 2 took less time (3 s) but more per unit (3 s against 2 s): run 1 is the best.
    assert tp.timed(units, "cpu", repeats=3, deadline=7.0) == (6.0, 3)
    assert len(calls) == 4
    # a deadline already past: the first unit still runs, once, and is the measurement
    clock, costs[:] = Clock(50.0), [0.5, 7.0]
    monkeypatch.setattr(tp, "time", clock)
    units = [lambda: clock.advance(costs.pop(0))] * 3
    assert tp.timed(units, "cpu", repeats=2, deadline=10.0) == (0.5, 1)


def test_gemm_peak_is_two_n_cubed_over_the_best_time(tp, monkeypatch):
    times = [0.5, 0.25, 0.4]
    monkeypatch.setattr(tp, "timed", lambda units, device, repeats=2, deadline=None: (times.pop(0), 1))
    flops, desc = tp.gemm_peak("cpu", n=64, repeats=3)
    assert flops == 2 * 64**3 / 0.25 and desc == "torch.mm fp32 64x64" and not times
    times.append(0.5)
    monkeypatch.setattr(tp.torch, "mm", lambda a, b: None)  # the default n on a CPU, without the 2048^3 product
    assert tp.gemm_peak("cpu", repeats=1)[1] == "torch.mm fp32 2048x2048"


def test_flops_per_image_is_restarts_x_outer_x_steps(tp, monkeypatch):
    monkeypatch.setattr(tp, "step_flops", lambda engine, cfg, y: (7.0, 3.0))
    cfg = types.SimpleNamespace(restarts=2, outer_iters=3, latent_steps=5, surrogate_steps=4)
    d = types.SimpleNamespace(cfg=cfg, engine=None)
    assert tp.flops_per_image(d, torch.zeros(1, 1, 28, 28)) == (2 * 3 * (5 * 7.0 + 4 * 3.0), 7.0)


def test_step_flops_of_mimicgan_by_hand(tp):
    """MimicGAN's surrogate f̂ (conv 5x5 1->16, conv 5x5 16->1 at 28x28: 16 * 25 * 784 multiply-adds each) and its
    λ_adv term (D's forward pass: conv 1->64 at 14x14 and 64->128 at 7x7, 4x4 kernels, FC 6272->1024->1). A
    surrogate step: G's and D's forward passes, f̂'s forward pass, and f̂'s backward pass to its weights (both
    convs) and to conv2's input (G's output needs no gradient). A latent step: G's, D's and f̂'s forward passes and
    their gradients to the input. Per latent, whatever the number of latents counted."""
    from test_gpu_suite import G28_STEP

    from defbench.defenses.gan_prior import PAPER_CONFIGS
    from defbench.defenses.priors import build_gan
    from defbench.defenses.projection import ProjectionEngine

    conv = 16 * 25 * 784
    d_fwd = 2 * (64 * 16 * 196 + 128 * 64 * 16 * 49 + 6272 * 1024 + 1024)
    torch.manual_seed(0)
    G, D = build_gan("fmnist")
    engine, y = ProjectionEngine(G, D), torch.rand(2, 1, 28, 28)
    latent, surr = tp.step_flops(engine, PAPER_CONFIGS["mimicgan"], y)
    assert surr == G28_STEP / 2 + d_fwd + 2 * (2 + 3) * conv
    assert latent == G28_STEP + 2 * d_fwd + 2 * (2 + 2) * conv
    assert tp.step_flops(engine, PAPER_CONFIGS["mimicgan"], y, n=4) == (latent, surr)
    assert tp.step_flops(engine, PAPER_CONFIGS["defensegan"], y) == (G28_STEP, 0.0)


def test_gan_defense_gives_the_encoder_to_invgan_only(tp):
    from defbench.defenses.gan_prior import PAPER_CONFIGS
    from defbench.defenses.priors import Encoder, build_gan

    G, D = build_gan("fmnist")
    bench = tp.Bench(torch.zeros(1, 1, 28, 28), G, D, Encoder(1, 28), torch.device("cpu"))
    assert tp.gan_defense(bench, "invgan", PAPER_CONFIGS["invgan"]).encoder is bench.encoder
    assert tp.gan_defense(bench, "defensegan", PAPER_CONFIGS["defensegan"]).encoder is None


class FakeTimed:
    """tp.timed that calls every unit once and says each took ``per_unit`` seconds."""

    def __init__(self, per_unit=0.5):
        self.per_unit, self.calls = per_unit, []

    def __call__(self, units, device, repeats=2, deadline=None):
        self.calls.append((len(units), repeats, deadline))
        for u in units:
            u()
        return self.per_unit * len(units), len(units)


@pytest.fixture
def fake_gan(tp, monkeypatch):
    """tp.gan_defense and tp.flops_per_image faked: every defense built is recorded with its config, every purify
    call with (defense index, images, seed); 100 FLOPs per image."""
    built, purified = [], []

    class FakeGAN:
        def __init__(self, name, cfg):
            self.i, self.cfg = len(built), cfg
            self.batch_coupled = name == "mimicgan"
            built.append((name, cfg))

        def purify(self, x, seed=None):
            purified.append((self.i, len(x), seed))
            return x

    monkeypatch.setattr(tp, "gan_defense", lambda bench, name, cfg: FakeGAN(name, cfg))
    monkeypatch.setattr(tp, "flops_per_image", lambda d, y: (100.0, 1.0))
    timer = FakeTimed()
    monkeypatch.setattr(tp, "timed", timer)
    return built, purified, timer


def fake_bench(tp, n):
    return types.SimpleNamespace(x=torch.zeros(n, 1, 28, 28), device=torch.device("cpu"))


def test_defensegan_modes_by_hand(tp, fake_gan):
    built, purified, timer = fake_gan
    rows = tp.measure_defense(
        "defensegan", fake_bench(tp, 6), scale=0.01, repeats=3, chunks=(60, 20, 50), images=5, loop_images=2, log=str
    )
    # 5 images x R = 10 restarts = 50 latents; 200 x 0.01 = 2 latent steps; every unit 0.5 s
    got = [(r.mode, r.images, r.seconds, r.latents, r.flops) for r in rows]
    assert got == [
        ("batched (default chunk)", 5, 0.5, 50, 500.0),  # min(50, the CPU chunk 200) latents together
        ("per-image loop", 2, 1.0, 10, 200.0),  # 2 images, one unit each, an image's 10 restarts together
        ("restart loop (all images)", 5, 5.0, 5, 500.0),  # 10 units of one restart of the 5 images
        ("batched, chunk 20 latents", 5, 0.5, 20, 500.0),
        ("batched, chunk 50 latents", 5, 0.5, 50, 500.0),  # 50 = all the latents: still measured; 60 is not
    ]
    assert [r.images_per_s for r in rows] == [10.0, 2.0, 1.0, 10.0, 10.0]
    assert all(c[1] == 3 for c in timer.calls)
    cfgs = [cfg for _, cfg in built]
    assert [c.latent_steps for c in cfgs] == [2] * 5 and cfgs[0].restarts == 10
    assert (cfgs[1].restarts, cfgs[1].chunk_size) == (10, 10)
    assert cfgs[2].restarts == 1 and cfgs[2].chunk_size >= 50  # one restart of every image in one chunk
    assert [c.chunk_size for c in cfgs[3:]] == [20, 50]
    assert [p for p in purified if p[0] == 0] == [(0, 5, 0)]
    assert [p for p in purified if p[0] == 1] == [(1, 1, 0), (1, 1, 0)]
    assert [p for p in purified if p[0] == 2] == [(2, 5, r) for r in range(10)]  # restart r draws seed r
    assert tp.batched_over_loop(rows, "defensegan") == 10.0 / 2.0


def test_single_restart_and_mimicgan_modes_by_hand(tp, fake_gan):
    built, purified, _ = fake_gan
    bench = fake_bench(tp, 3)
    inv = tp.measure_defense("invgan", bench, scale=0.01, loop_images=9, log=str)
    # R = 1: no restart loop; a loop over more images than there are runs over the 3 there are
    assert [(r.mode, r.images, r.latents) for r in inv] == [("batched (default chunk)", 3, 3), ("per-image loop", 3, 1)]
    assert built[0][1].latent_steps == 10  # 1000 x 0.01
    built.clear()
    mim = tp.measure_defense("mimicgan", bench, scale=0.2, loop_images=2, log=str)
    # the paper's 10 outer x (10 surrogate + 10 latent) steps at x0.2: 2 outer iterations of 2 latent steps
    assert (built[0][1].outer_iters, built[0][1].latent_steps) == (2, 2)
    assert mim[0].note == f"2x({built[0][1].surrogate_steps} f̂ + 2 z) steps, R=1"
    assert [(r.mode, r.images, r.seconds, r.latents) for r in mim] == [
        ("batched (default chunk)", 3, 0.5, 3),
        ("per-image loop", 2, 1.0, 1),
    ]


def test_ride_and_library_modes_by_hand(tp, monkeypatch):
    timer = FakeTimed(0.25)
    monkeypatch.setattr(tp, "timed", timer)
    made = []

    class FakeRIDE:
        def __init__(self, cfg, shape, device):
            made.append(cfg)

        def purify(self, x, seed=None):
            return x

    monkeypatch.setattr(tp, "RIDE", FakeRIDE)
    rows = tp.measure_defense("ride", fake_bench(tp, 4), scale=0.01, loop_images=3, log=str)
    assert made[0].iterations == 20  # the paper's K = 2000 per checkpoint, x0.01
    assert made[0].arch == tp.RIDEConfig.for_dataset("fmnist").arch
    assert [(r.mode, r.images, r.seconds) for r in rows] == [
        ("batched (grouped conv)", 4, 0.25),
        ("per-image loop", 3, 0.75),
    ]
    assert tp.batched_over_loop(rows, "ride") == (4 / 0.25) / (3 / 0.75)
    assert tp.measure_defense("ride", fake_bench(tp, 4), scale=0.001, log=str) and made[1].iterations == 5
    kernels, default = [], inspect.signature(tp.MedianFilter).parameters["kernel_size"].default
    fake = types.SimpleNamespace(purify=lambda x: x)
    monkeypatch.setattr(tp, "MedianFilter", lambda k, shape: kernels.append(k) or fake)
    med = tp.measure_defense("median", fake_bench(tp, 4), log=str)
    assert kernels == [default] == [3]  # the library's (and the registry's) 3x3 window
    assert [(r.mode, r.images, r.seconds) for r in med] == [("library (per image inside)", 4, 0.25)]


def test_batched_over_loop_takes_the_first_batched_row(tp):
    rows = [
        tp.Row("ride", "batched (grouped conv)", 4, 2.0),  # 2 img/s
        tp.Row("ride", "per-image loop", 2, 4.0),  # 0.5 img/s
        tp.Row("defensegan", "batched (default chunk)", 10, 1.0),
        tp.Row("defensegan", "per-image loop", 2, 1.0),
        tp.Row("defensegan", "batched, chunk 200 latents", 10, 0.5),
        tp.Row("invgan", "batched (default chunk)", 0, None, "skipped: time cap"),
    ]
    assert tp.batched_over_loop(rows, "ride") == 4.0
    assert tp.batched_over_loop(rows, "defensegan") == 5.0
    assert tp.batched_over_loop(rows, "invgan") is None
    ratios = md_rows("\n".join(tp.markdown(rows, ["h"])))
    assert ["ride", "4.00x"] in ratios and ["defensegan", "5.00x"] in ratios


def test_efficiency_lines_by_hand(tp, monkeypatch):
    monkeypatch.setattr(tp, "step_flops", lambda engine, cfg, y: (5e6, 0.0))
    monkeypatch.setattr(tp, "ProjectionEngine", lambda G: None)
    monkeypatch.setattr(tp, "gan_defense", lambda bench, name, cfg: types.SimpleNamespace(engine=None))
    bench = types.SimpleNamespace(x=torch.zeros(1, 1, 28, 28), G=None)
    rows = [tp.Row("cowboy", "batched (default chunk)", 4, 2.0, flops=8e9, latents=40), tp.Row("median", "m", 4, 1.0)]
    cells = md_rows("\n".join(tp.efficiency_lines(rows, bench, (16e9, "mm"))))
    # 8e9 FLOPs in 2 s = 4 GFLOP/s, a quarter of the 16 GFLOP/s peak; the median row has no FLOP count
    assert cells[1:] == [["cowboy", "batched (default chunk)", "40", "5.0", "4.00", "25.0"]]


def test_main_passes_its_arguments_on(tp, monkeypatch, tmp_path):
    calls, written = [], []
    bench = types.SimpleNamespace(device=torch.device("cpu"))
    monkeypatch.setattr(tp, "make_bench", lambda images, device: calls.append(("bench", images, device)) or bench)
    monkeypatch.setattr(tp, "warm_up", lambda b: None)
    monkeypatch.setattr(tp, "gemm_peak", lambda device: (1e9, "mm"))
    monkeypatch.setattr(tp, "measure_defense", lambda *a, **k: calls.append((a, k["loop_images"])) or [])
    monkeypatch.setattr(tp, "efficiency_lines", lambda rows, b, peak: [])
    monkeypatch.setattr(tp, "write_table", lambda lines, out: written.append(out) or 0)
    argv = ["--images", "7", "--scale", "0.5", "--defenses", "ride,tvm", "--chunks", "30,10", "--repeats", "4"]
    assert tp.main([*argv, "--loop-images", "3", "--out", str(tmp_path / "t.md")]) == 0
    assert calls == [
        ("bench", 7, "auto"),
        (("ride", bench, 0.5, 4, (30, 10)), 3),
        (("tvm", bench, 0.5, 4, (30, 10)), 3),
    ]
    calls.clear()
    tp.main([*argv, "--out", str(tmp_path / "t.md")])
    assert [c[1] for c in calls[1:]] == [None, None]  # --loop-images 0 (default): the loops run over all images


# ------------------------------------------------------------------------------------------ gpu_suite
def suite(gs, monkeypatch, tmp_path, budget=100.0, settings=None, smoke=False, clock=None):
    clock = clock or Clock()
    monkeypatch.setattr(gs, "time", clock)
    args = types.SimpleNamespace(budget=budget, no_train=False, smoke=smoke, out=str(tmp_path / "suite.md"))
    return gs.Suite(args, settings or gs.Settings(), torch.device("cpu"), tmp_path, tmp_path), clock


def test_caps_are_the_default_or_a_share_of_what_is_left(gs, monkeypatch, tmp_path):
    s, clock = suite(gs, monkeypatch, tmp_path, budget=100.0)
    clock.advance(40.0)
    assert s.left() == 60.0
    assert s.cap(120.0, 0.35) == pytest.approx(21.0) and s.cap(75.0, 0.4) == pytest.approx(24.0)
    assert s.cap(10.0) == 10.0
    clock.advance(100.0)
    assert s.cap(120.0, 0.35) == 0.0


class FakeCLI:
    def __init__(self, *results):
        self.calls, self.results = [], list(results)

    def __call__(self, name, args, cap):
        self.calls.append((name, args, cap))
        return self.results.pop(0)


def test_cli_stops_a_stage_at_its_cap_with_sigterm(gs, monkeypatch, tmp_path):
    events = []

    class Proc:
        returncode = 143

        def __init__(self, cmd, **kw):
            events.append(("cmd", cmd[1:]))

        def wait(self, timeout=None):
            events.append(("wait", timeout))
            if len(events) == 2:
                raise subprocess.TimeoutExpired("defbench", timeout)

        def send_signal(self, sig):
            events.append(("signal", sig))

        def kill(self):
            events.append(("kill",))

    monkeypatch.setattr(gs, "subprocess", types.SimpleNamespace(**{**vars(subprocess), "Popen": Proc}))
    s, _ = suite(gs, monkeypatch, tmp_path)
    rc, _, capped, _ = s.cli("bpda", ["matrix"], 12.5)
    assert (rc, capped) == (143, True)
    assert events == [("cmd", ["-m", "defbench", "matrix"]), ("wait", 12.5), ("signal", signal.SIGTERM), ("wait", 30)]


def test_models_stage_trains_what_is_missing_under_its_cap(gs, monkeypatch, tmp_path):
    from defbench.harness import zoo

    clf, gan = zoo.model_id("classifier", "fmnist", "paper"), zoo.model_id("gan", "fmnist", "paper")
    in_zoo = set()
    monkeypatch.setattr(zoo, "exists", lambda mid: mid in in_zoo)
    monkeypatch.setattr(zoo, "manifest_or_none", lambda mid: None)

    def run(settings, *results):
        """The models stage with each training run's (exit code, capped, what it leaves in the zoo)."""
        s, _ = suite(gs, monkeypatch, tmp_path, budget=1000.0, settings=settings)
        todo, calls = list(results), []

        def cli(name, args, cap):
            rc, capped, leaves = todo.pop(0)
            calls.append((name, args, cap))
            in_zoo.update(leaves)
            return rc, 5.0, capped, "last line"

        s.cli = cli
        s.stage_models()
        return s, calls

    s, calls = run(gs.SMOKE, (0, False, {zoo.model_id("classifier", "fmnist", "quick")}), (143, True, set()))
    want = ["--dataset", "fmnist", "--preset", "quick", "--device", "cpu", "--no-progress"]
    assert calls == [
        ("train_classifier", ["train", "classifier", *want], 30.0),  # the smoke's models cap, 30 s < 1000 s left
        ("train_gan", ["train", "gan", *want], 30.0),
    ]
    # the GAN stopped at its cap with no epoch saved: failed, and the later stages will be skipped
    assert [r.value for r in s.rows] == ["trained", "failed"] and not s.models_ok
    # a classifier that failed: the GAN is not trained; the paper settings' cap is 180 s
    in_zoo.clear()
    s, calls = run(gs.Settings(), (1, False, set()))
    assert [(c[0], c[2]) for c in calls] == [("train_classifier", 180.0)]
    assert [r.value for r in s.rows] == ["failed", "missing"] and s.rows[1].note == "the classifier is missing"
    # a GAN run that failed (not capped) after saving an epoch: the zoo keeps it, partly trained
    in_zoo.clear()
    in_zoo.add(clf)
    s, calls = run(gs.Settings(), (1, False, {gan}))
    assert [r.value for r in s.rows] == ["present", "partly trained"] and s.models_ok
    assert s.rows[1].note == "exit 1: last line"


def test_bpda_and_fig5b_command_lines_and_caps(gs, monkeypatch, tmp_path):
    s, _ = suite(gs, monkeypatch, tmp_path, budget=100.0, settings=gs.SMOKE, smoke=True)
    s.cli = FakeCLI((0, 3.0, False, ""), (0, 4.0, False, ""))
    cells = [20, 27]
    monkeypatch.setattr(gs, "_cells", lambda db: cells.pop(0))
    s.stage_bpda()
    s.stage_fig5b()
    (_, bpda, bpda_cap), (_, fig, fig_cap) = s.cli.calls
    assert bpda[: bpda.index("--out")] == [
        "matrix", "--defense", "defensegan", "--attacks", "pgd", "--eps", "0.3", "--threat", "bpda",
        "--n", "2", "--no-baseline", "--preset", "quick", "--device", "cpu",
    ]  # fmt: skip
    assert bpda[bpda.index("--out") + 2 :] == [*gs.SMOKE.bpda_extra, "--no-progress"]
    assert bpda_cap == 40.0  # min(the smoke's 120 s, 40% of the 100 s left)
    assert fig[:6] == ["paper", "run", "mimicgan-fig5b", "--n", "2", "--preset"]
    assert fig_cap == gs.SMOKE_FIG5B_CAP and s.rows[-1].note.startswith("7 cells computed;")  # 27 - 20 before
    # the real suite: fig5b gets what is left less 10 s, and is skipped under 30 s
    s, clock = suite(gs, monkeypatch, tmp_path, budget=100.0)
    s.cli = FakeCLI((0, 3.0, False, ""))
    s.stage_bpda()
    assert s.cli.calls[0][1][s.cli.calls[0][1].index("--n") + 1] == "20" and s.cli.calls[0][2] == 40.0
    cells[:] = [0, 27]
    s.cli = FakeCLI((0, 3.0, False, ""))
    clock.advance(20.0)
    s.stage_fig5b()
    assert s.cli.calls[0][2] == 70.0 and s.cli.calls[0][1][4] == "500"
    clock.advance(45.0)  # 35 s left: 25 s for fig5b, under 30
    s.stage_fig5b()
    assert len(s.cli.calls) == 1 and s.rows[-1].value == "skipped"


def test_throughput_stage_rows_ratios_and_ride_estimate_by_hand(gs, monkeypatch, tmp_path):
    tp = gs.tp
    Row = tp.Row
    canned = {
        "defensegan": [
            Row("defensegan", "batched (default chunk)", 4, 2.0, "s", flops=8e9, latents=40),  # 2 img/s, 4 GFLOP/s
            Row("defensegan", "per-image loop", 1, 2.0, "s", flops=2e9, latents=10),  # 0.5 img/s
        ],
        "ride": [Row("ride", "batched (grouped conv)", 5, 10.0, "K"), Row("ride", "per-image loop", 1, 4.0, "K")],
    }
    got = {}
    bench = types.SimpleNamespace(G=None, x=torch.zeros(1, 1, 28, 28))
    monkeypatch.setattr(tp, "make_bench", lambda images, device: got.setdefault("bench", images) and bench)
    monkeypatch.setattr(tp, "warm_up", lambda bench: None)
    monkeypatch.setattr(tp, "gemm_peak", lambda device: (16e9, "mm"))
    monkeypatch.setattr(tp, "step_flops", lambda engine, cfg, y: (52.6e6, 0.0))
    monkeypatch.setattr(tp, "ProjectionEngine", lambda G: None)

    def measure(name, bench, scale, repeats, chunks, images, loop_images, deadline, log):
        got[name] = (scale, repeats, chunks, images, loop_images, deadline)
        return canned.get(name, [])

    monkeypatch.setattr(tp, "measure_defense", measure)
    settings = gs.Settings(images=3, loop_images=2, ride_images=5, ride_loop_images=1, scale=0.01, repeats=3)
    s, clock = suite(gs, monkeypatch, tmp_path, budget=100.0, settings=settings)
    s.stage_throughput()
    deadline = clock.now + 35.0  # min(120 s, 35% of the 100 s left)
    assert got.pop("bench") == 5
    assert got.pop("ride") == (0.01, 1, settings.chunks, 5, 1, deadline)
    assert set(got.values()) == {(0.01, 3, settings.chunks, 3, 2, deadline)} and list(got) == [
        d for d in tp.DEFENSES if d != "ride"
    ]
    rows = {r.measurement: r for r in s.rows}
    b = rows["defensegan: batched (default chunk)"]
    assert (b.value, b.setting) == ("2.00", "4 images")
    assert b.note == "s; 40 latents together; 4.0 GFLOP/s = 25.0% of GEMM peak"
    assert rows["defensegan: batched / per-image loop"].value == "4.00"
    assert rows["ride: batched / per-image loop"].value == "2.00"  # 0.5 against 0.25 img/s
    # RIDE at x0.01 of its iterations purified 0.5 img/s, so 0.005 img/s at the paper's K; n = 100 images x
    # (10 PGD steps x EOT + the final purification)
    for eot in (1, 10):
        est = rows[f"ride: Table 2 MNIST BPDA, n = 100, EOT {eot} (estimate)"]
        assert est.setting == f"{100 * (10 * eot + 1)} purifications"
        assert float(est.value) == pytest.approx(100 * (10 * eot + 1) / 0.005 / 60, abs=0.05)


def test_ride_estimate_counts_the_iterations_the_scale_ran(gs, monkeypatch, tmp_path):
    """Under x0.0025 the run's K stays at 5 (not scale x 2000): at x0.0005 the measured 0.5 img/s is for 5 of the
    paper's 2000 iterations, i.e. 0.5 x 5 / 2000 img/s at the paper's K, not 0.5 x 0.0005."""
    tp = gs.tp
    assert (tp.RIDE_K, tp.ride_iterations(0.01), tp.ride_iterations(0.0005), tp.ride_iterations(0.0)) == (
        2000,
        20,
        5,
        5,
    )
    canned = [tp.Row("ride", "batched (grouped conv)", 5, 10.0, "K")]
    monkeypatch.setattr(tp, "make_bench", lambda images, device: types.SimpleNamespace(G=None, x=torch.zeros(1)))
    monkeypatch.setattr(tp, "warm_up", lambda bench: None)
    monkeypatch.setattr(tp, "gemm_peak", lambda device: (16e9, "mm"))
    monkeypatch.setattr(tp, "step_flops", lambda engine, cfg, y: (52.6e6, 0.0))
    monkeypatch.setattr(tp, "ProjectionEngine", lambda G: None)
    monkeypatch.setattr(tp, "measure_defense", lambda name, *a, **k: canned if name == "ride" else [])
    settings = gs.Settings(images=3, loop_images=2, ride_images=5, ride_loop_images=1, scale=0.0005, repeats=1)
    s, _ = suite(gs, monkeypatch, tmp_path, budget=100.0, settings=settings)
    s.stage_throughput()
    rows = {r.measurement: r for r in s.rows}
    for eot in (1, 10):
        est = rows[f"ride: Table 2 MNIST BPDA, n = 100, EOT {eot} (estimate)"]
        assert float(est.value) == pytest.approx(100 * (10 * eot + 1) / (0.5 * 5 / 2000) / 60, abs=0.05)


def test_cpu_runs_the_smoke_settings_in_a_temporary_folder(gs, monkeypatch, tmp_path, capsys):
    made = []

    class FakeSuite:
        def __init__(self, args, settings, device, work, log_dir):
            made.append((args, settings, device, work))

        def write(self, argv):
            return 0

    monkeypatch.setattr(gs, "Suite", FakeSuite)
    monkeypatch.setattr(gs, "stand_in_zoo", lambda home: made.append(home))
    monkeypatch.setattr(gs.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "smoke"))
    assert gs.main(["--device", "cpu", "--stages", ""]) == 0
    home, (args, settings, device, work) = made
    assert "needs a CUDA device" in capsys.readouterr().out
    assert args.smoke and settings is gs.SMOKE and device.type == "cpu"
    assert home == tmp_path / "smoke" / "home" and work == tmp_path / "smoke" / "work"
    assert args.out == str(tmp_path / "smoke" / "gpu_suite.md")
