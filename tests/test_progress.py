"""The defense-step progress bar: long loops report each optimiser step, exactly once, and only to a reporter
someone opened; the matrix shows the bar with progress on and stays silent with --no-progress."""

from __future__ import annotations

import dataclasses

import torch

from defbench import progress
from defbench.cli import main
from defbench.defenses.projection import ProjectionConfig, ProjectionEngine
from defbench.defenses.ride import RIDE, RIDEConfig

TINY_RIDE = RIDEConfig.for_dataset("mnist", iterations=3, checkpoints=2, estimate_samples=1, noise_block=2)


def _count(fn) -> int:
    seen = []
    with progress.reporting(seen.append):
        fn()
    assert all(n == 1 for n in seen)
    return len(seen)


def test_step_without_a_reporter_does_nothing():
    progress.step()  # no reporter open: no error, nothing recorded anywhere
    seen = []
    with progress.reporting(seen.append):
        pass
    progress.step(5)
    assert seen == []


def test_reporters_nest_and_restore():
    outer, inner = [], []
    with progress.reporting(outer.append):
        progress.step(1)
        with progress.reporting(inner.append):
            progress.step(2)
        progress.step(3)
    assert outer == [1, 3] and inner == [2]


def test_ride_reports_one_step_per_network_update():
    x = torch.rand(2, 1, 28, 28)
    for cfg in (TINY_RIDE, dataclasses.replace(TINY_RIDE, split_iterations=True, iterations=5)):
        assert _count(lambda cfg=cfg: RIDE(cfg, shape=(1, 28, 28)).purify(x, seed=0)) == sum(cfg.per_checkpoint())


def test_projection_reports_latent_and_surrogate_steps(random_gan):
    G, D = random_gan
    engine = ProjectionEngine(G, D)
    y = torch.rand(3, 1, 28, 28)
    plain = ProjectionConfig(latent_steps=4, outer_iters=1, restarts=2, chunk_size=2)  # 1 image per chunk
    assert _count(lambda: engine.project(y, plain)) == 3 * 4
    mimic = dataclasses.replace(plain, surrogate="mimic", outer_iters=2, surrogate_steps=3, restarts=1)
    assert _count(lambda: engine.project(y, mimic)) == 2 * (3 + 4)  # one shared chunk for a shared surrogate


def test_matrix_shows_the_defense_step_bar_only_with_progress_on_a_terminal(tiny_zoo, tmp_path, capsys, monkeypatch):
    """On a terminal the bars draw; with --no-progress they do not, nor into a log file or a pipe (a cluster job's
    log held megabytes of carriage-return redraws), where the cell's accuracy line is the progress."""
    import sys

    args = ["matrix", "--preset", "quick", "--attacks", "none", "--defense", "ride", "--n", "2"]
    args += ["--defense-opt", "ride:iterations=2", "--defense-opt", "ride:checkpoints=1"]
    args += ["--defense-opt", "ride:estimate_samples=1"]
    assert main(args + ["--out", str(tmp_path / "log")]) == 0
    err = capsys.readouterr().err
    assert "defense steps" not in err and "\r" not in err and "accuracy" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(args + ["--out", str(tmp_path / "on")]) == 0
    assert "ride none clean: defense steps" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "off"), "--no-progress"]) == 0
    assert "defense steps" not in capsys.readouterr().err


def test_a_bar_draws_on_a_terminal_only():
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, drawn in ((io.StringIO(), False), (Terminal(), True)):
        with progress.bar(range(3), desc="work", file=stream) as it:
            assert list(it) == [0, 1, 2]
        assert ("work" in stream.getvalue()) == drawn
    off = Terminal()
    list(progress.bar(range(3), desc="work", file=off, enabled=False))
    assert off.getvalue() == ""


def test_matrix_log_lines_go_to_stderr_and_stdout_holds_the_tables(tiny_zoo, tmp_path, capsys):
    """`defbench matrix ... > table.md`: a cell's accuracy line and a resumed run's skip line are log, on stderr;
    stdout carries the tables only (with or without progress)."""
    args = ["matrix", "--preset", "quick", "--attacks", "none", "--defense", "median", "--n", "2"]
    args += ["--out", str(tmp_path / "o")]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "accuracy" in first.err and "images," in first.err and "images," not in first.out
    assert main(args) == 0
    second = capsys.readouterr()
    assert "already in" in second.err and "already in" not in second.out
    assert main(args + ["--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == second.out and "|" in quiet.out  # the same tables either way


def test_a_bar_on_a_terminal_counts_up_to_the_total_it_is_given():
    """A training bar is handed its total (steps, iterations): a terminal shows 'done/total', not a bare count."""
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with progress.bar(total=4, desc="train", file=stream, unit="step") as b:
        for _ in range(4):
            b.update(1)
    assert "4/4" in stream.getvalue() and b.total == 4


def test_tqdm_disable_in_the_environment_silences_a_bar_on_a_terminal(monkeypatch):
    """TQDM_DISABLE=1 (tqdm's documented switch, set on clusters) silences the bars as --no-progress does; unset,
    the same bar draws."""
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def drawn() -> str:
        stream = Terminal()
        with progress.bar(total=3, file=stream) as b:
            b.update(3)
        return stream.getvalue()

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert "3/3" in drawn()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert drawn() == ""
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert "3/3" in drawn()


def test_a_reporter_is_closed_when_its_block_raises():
    """A defense that fails mid-purification (the matrix records the error and goes on) leaves no reporter open:
    the next cell's steps go to its own bar, not to the failed cell's."""
    seen = []
    try:
        with progress.reporting(seen.append):
            progress.step(1)
            raise RuntimeError("purify failed")
    except RuntimeError:
        pass
    progress.step(7)
    assert seen == [1]
