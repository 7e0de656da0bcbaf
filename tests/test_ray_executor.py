"""Issue 18, item 1: matrix cells on Ray (``--executor ray``), on a local Ray instance the tests start
(``ray.init(num_cpus=2)``): the same cells as the local executor, a worker killed mid-cell retried or recorded as
failed with its message, a killed driver's run resumed with only the missing cells, workers with other models
refused. The models are untrained stand-ins in a zoo of this module's own; 8 real Fashion-MNIST test images.
Without Ray installed these tests skip; the one-line error of ``--executor ray`` is checked either way."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from conftest import have_data, save_classifier, save_gan, stand_in_gan, write_distribution

from defbench import DefbenchError
from defbench.harness.matrix import AttackSpec, LocalExecutor, MatrixRunner, MatrixSpec

DG = "defensegan[latent_steps=2,restarts=1]"

#: defenses that kill the process computing them (the Ray worker): ``killer`` on its first purification only
#: (a marker file remembers), ``doomed`` always; ``refuser`` raises a DefbenchError
PLUGINS = """
import os
from pathlib import Path

from defbench import DefbenchError
from defbench.defenses import Defense


class Killer(Defense):
    name = "killer"

    def __init__(self, shape=None, seed=0, marker="", device="cpu"):
        super().__init__(shape, seed)
        self.marker = marker

    def config(self):
        return {"marker": self.marker}

    def _purify(self, x, seed):
        if not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(3)
        return x


class Doomed(Defense):
    name = "doomed"

    def _purify(self, x, seed):
        os._exit(3)


class Refuser(Defense):
    name = "refuser"

    def _purify(self, x, seed):
        raise DefbenchError("refuser: this input is not allowed")
"""


def _save_classifier(seed: int) -> None:
    from defbench.classifiers.models import build_classifier

    torch.manual_seed(seed)
    save_classifier(build_classifier("fmnist"), {})


@pytest.fixture(scope="module")
def zoo_env(tmp_path_factory):
    """This module's zoo (an untrained classifier, a stand-in GAN) as DEFBENCH_HOME, and the test defenses
    installed for this process; ``env``: what the Ray workers need to import them."""
    if not have_data("fmnist"):
        pytest.skip("Fashion-MNIST not available offline (set DEFBENCH_DATA)")
    root = tmp_path_factory.mktemp("ray")
    entries = {n: f"crash_defenses:{n.capitalize()}" for n in ("killer", "doomed", "refuser")}
    site = write_distribution(
        root / "site", "crash-defenses", "0.1", "defbench.defenses", entries, {"crash_defenses": PLUGINS}
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEFBENCH_HOME", str(root / "home"))
        mp.syspath_prepend(str(site))
        _save_classifier(0)
        save_gan(*stand_in_gan("fmnist", 0))
        yield {"env": {"PYTHONPATH": str(site)}}


@pytest.fixture(scope="module")
def executor(zoo_env):
    """A local Ray instance and one executor for the module: its workers outlive a run, so a test after the
    first starts no processes unless the one before stopped them (a worker crash, a stopped run)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    from defbench.harness.ray_executor import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        with RayExecutor(worker_env=zoo_env["env"]) as ex:
            yield ex
    finally:
        ray.shutdown()


def _spec(out, defenses=("none", DG), attacks=("fgsm",), threats=("graybox", "bpda"), **kw) -> MatrixSpec:
    params = {"pgd": (("steps", 2),)}
    return MatrixSpec(
        dataset="fmnist",
        defenses=tuple(defenses),
        attacks=tuple(AttackSpec(a, 0.1, params.get(a, ())) for a in attacks),
        threats=tuple(threats),
        n=8,
        batch_size=4,
        preset="quick",
        progress=False,
        out=str(out),
        **kw,
    )


def _cells(store) -> dict:
    """Per cell key: everything stored but when and how fast it ran."""
    return {r["key"]: {k: v for k, v in r.items() if k not in ("created_at", "wall_seconds")} for r in store.rows()}


def test_ray_and_local_executors_store_identical_cells(executor, tmp_path):
    # one thread, as each worker (one CPU per cell) uses: other thread counts sum in another order, and the
    # scores of a defense with many optimisation steps can then differ in their last digits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = MatrixRunner(_spec(tmp_path / "local"))
        local.run(LocalExecutor())
    finally:
        torch.set_num_threads(threads)
    on_ray = MatrixRunner(_spec(tmp_path / "ray"))
    on_ray.run(executor)
    want, got = _cells(local.store), _cells(on_ray.store)
    assert len(want) == 2 + 3  # none: clean + gray-box; DefenseGAN: clean + gray-box + BPDA
    assert sorted(got) == sorted(want)
    diff = [(want[k]["defense"], want[k]["threat"], want[k]["attack"]) for k in want if got[k] != want[k]]
    assert not diff, f"Ray cells differ from local ones: {diff}"
    assert sorted(on_ray.computed) == sorted(local.computed)
    # the driver wrote every cell's example images, as the local run did
    from defbench.harness.examples import examples_path

    assert all(examples_path(tmp_path / "ray", k).is_file() for k in want)
    # models loaded once per worker, not per cell: at most two workers, one runner each, for five cells
    stats = executor.stats
    assert sum(stats["cells"].values()) == 5 and 1 <= len(stats["cells"]) <= 2
    assert stats["builds"] == {w: 1 for w in stats["cells"]}, stats


def test_killed_worker_is_retried_then_recorded_as_failed(executor, tmp_path):
    marker = tmp_path / "killed-once"
    spec = _spec(
        tmp_path / "out",
        defenses=("killer", "doomed"),
        attacks=(),
        defense_overrides={"killer": {"marker": str(marker)}},
    )
    runner = MatrixRunner(spec)
    runner.run(executor)
    assert marker.is_file()  # killer's first attempt died in the worker ...
    rows = list(runner.store.rows())
    assert [r["defense"] for r in rows] == ["killer"]  # ... and its retry was stored
    # doomed died on both attempts: recorded as failed, with the message, and retried by the next run
    (failure,) = runner.store.failures()
    assert failure["label"] == "s0 doomed none clean"
    assert "failed on a Ray worker 2 time(s)" in failure["message"] and "died" in failure["message"]
    assert runner.failed == [(failure["label"], failure["message"])]
    assert executor.stats["retries"] == 2 and executor.stats["failed"] == 1


class _DriverKilled(BaseException):
    pass


def test_resume_after_a_killed_driver_computes_only_the_missing_cells(executor, tmp_path):
    spec = {"defenses": ("none",), "attacks": ("fgsm", "pgd"), "threats": ("graybox",)}
    first = MatrixRunner(_spec(tmp_path / "out", **spec))
    everything = {first.key(c)[0].key for c in first.cells()}
    assert len(everything) == 3
    record = first.record

    def record_then_die(out):  # the driver dies after storing one cell, another in flight
        record(out)
        raise _DriverKilled

    first.record = record_then_die
    with pytest.raises(_DriverKilled):
        first.run(executor)  # stops its workers, as the end of a killed driver's Ray job does
    kept = set(first.computed)
    assert len(kept) == 1 and {r["key"] for r in first.store.rows()} == kept
    resumed = MatrixRunner(_spec(tmp_path / "out", **spec))
    executor.max_workers = 1  # one fresh worker starts faster than two on the 2-core CI
    try:
        resumed.run(executor)
    finally:
        executor.max_workers = None
    assert resumed.skipped == 1
    assert sorted(resumed.computed) == sorted(everything - kept)
    assert {r["key"] for r in resumed.store.rows()} == everything


def test_a_refusal_in_a_worker_is_raised_by_the_driver(executor, tmp_path):
    runner = MatrixRunner(_spec(tmp_path / "out", defenses=("refuser",), attacks=()))
    with pytest.raises(DefbenchError, match=r"^refuser: this input is not allowed \(in a Ray worker on ") as err:
        runner.run(executor)
    assert "\n" not in str(err.value)
    assert runner.store.count() == 0 and not runner.store.failures()  # a refusal is not a failed cell


# ------------------------------------------------------- workers that see other models (in this process)
@pytest.fixture
def worker(zoo_env, monkeypatch):
    """A :class:`CellWorker` in this process (what an actor runs), its changes to torch and the model loader
    undone afterwards; ``worker(home)`` reads the zoo under ``home``."""
    from defbench.harness import models
    from defbench.harness.ray_executor import CellWorker

    monkeypatch.setattr(models, "_fetch", models._fetch)
    threads = torch.get_num_threads()

    def make(home):
        monkeypatch.setenv("DEFBENCH_HOME", str(home))
        return CellWorker(1)

    yield make
    torch.set_num_threads(threads)


def test_a_worker_with_other_weights_is_refused_naming_them(worker, tmp_path):
    from defbench.harness.ray_executor import RayExecutor

    runner = MatrixRunner(_spec(tmp_path / "out", defenses=("none",), attacks=()))
    (cell,) = runner.cells()
    other = tmp_path / "other-home"
    w = worker(other)
    _save_classifier(1)  # another classifier under the same id, in the worker's zoo
    out, meta = w.compute("x", runner.spec, None, cell)
    assert out is not None and "refused" not in meta
    with pytest.raises(DefbenchError, match=r"under key .*model_sha256.classifier: driver [0-9a-f]+, worker") as err:
        RayExecutor.check_key(runner, cell, out, meta)
    assert "\n" not in str(err.value) and "docs/CLUSTER.md" in str(err.value) and str(other) in str(err.value)


def test_a_worker_with_another_torchattacks_is_refused_naming_it(worker, tmp_path, monkeypatch):
    """The numeric libraries' versions are in every key: a worker whose torchattacks differs from its driver's
    computes the cell under another key, refused with the version named; the same versions pass (test above)."""
    from defbench.harness import matrix
    from defbench.harness.ray_executor import RayExecutor

    runner = MatrixRunner(_spec(tmp_path / "out", defenses=("none",), attacks=()))
    (cell,) = runner.cells()
    w = worker(os.environ["DEFBENCH_HOME"])
    out, meta = w.compute("x", runner.spec, None, cell)
    RayExecutor.check_key(runner, cell, out, meta)  # silent: same zoo, same versions
    versions = {**matrix.library_versions(), "torchattacks": "9.9.9"}
    monkeypatch.setattr(matrix, "library_versions", lambda: versions)
    w = worker(os.environ["DEFBENCH_HOME"])
    out, meta = w.compute("y", runner.spec, None, cell)
    with pytest.raises(DefbenchError, match=r"defense.libraries.torchattacks: driver 3[.0-9]+, worker 9.9.9"):
        RayExecutor.check_key(runner, cell, out, meta)


def test_a_worker_never_trains_a_missing_model(worker, tmp_path):
    runner = MatrixRunner(_spec(tmp_path / "out", defenses=("none",), attacks=()))
    (cell,) = runner.cells()
    empty = tmp_path / "empty-home"
    out, meta = worker(empty).compute("x", runner.spec, None, cell)
    assert out is None and "classifier-fmnist-quick is not in the zoo" in str(meta["refused"])
    assert not list(empty.rglob("*.pt"))  # nothing trained


def test_executor_ray_without_ray_is_one_line(monkeypatch, tmp_path, capsys):
    from defbench.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["matrix", "--defense", "none", "--attacks", "none", "--executor", "ray", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "pip install -e '.[ray]'" in err
    assert main(["matrix", "--defense", "none", "--attacks", "none", "--address", "auto", "--out", str(tmp_path)]) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err


def test_a_classifier_object_from_the_api_is_refused(zoo_env, tmp_path):
    """Workers build models from the zoo by name: a classifier handed to the runner as an object cannot travel."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    from defbench.classifiers.models import build_classifier
    from defbench.harness.ray_executor import RayExecutor

    runner = MatrixRunner(
        _spec(tmp_path / "out", defenses=("none",), attacks=()), classifier=build_classifier("fmnist")
    )
    with pytest.raises(DefbenchError, match="run with the local executor"):
        runner.run(RayExecutor())


def test_connecting_keeps_the_caller_s_signal_handlers():
    """ray.init installs its own SIGTERM handler (sys.exit), so under --executor ray a SIGTERM aborted the run
    (exit 134) instead of running defbench's (exit 143, the resume message). Connecting keeps the caller's
    handlers, also when the connection fails. (A stand-in for ray that does what ray.init does to the signal.)"""
    import signal

    from defbench import DefbenchError
    from defbench.harness.ray_executor import RayExecutor

    class StandIn:
        def __init__(self, fail: bool):
            self.fail = fail

        def is_initialized(self):
            return False

        def init(self, **kw):
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(15))
            if self.fail:
                raise ConnectionError("no cluster")

    def mine(*a):
        pass

    before = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, mine)
        RayExecutor()._connect(StandIn(fail=False))
        assert signal.getsignal(signal.SIGTERM) is mine
        unreachable = RayExecutor()
        unreachable.address = "10.0.0.1:1"  # past the constructor's check: ray.init's own failure
        with pytest.raises(DefbenchError, match="cannot start or reach a Ray cluster"):
            unreachable._connect(StandIn(fail=True))
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_workers_get_the_nondeterministic_kernels_switch(monkeypatch):
    """DEFBENCH_NONDETERMINISTIC chose the CUDA kernels on the driver only: workers ran deterministic ones
    (found by the Ray audit); it is forwarded with DEFBENCH_HOME and DEFBENCH_DATA."""
    from defbench.harness.ray_executor import RayExecutor

    monkeypatch.setenv("DEFBENCH_NONDETERMINISTIC", "1")
    assert RayExecutor()._env()["DEFBENCH_NONDETERMINISTIC"] == "1"
    monkeypatch.delenv("DEFBENCH_NONDETERMINISTIC")
    assert "DEFBENCH_NONDETERMINISTIC" not in RayExecutor()._env()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_where_no_cluster_is_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """ray.init at an address where nothing listens retried for minutes with Ray's own log lines only, and
    '--address auto' without a cluster failed after the store was made: both are one line now, before any
    model or store; an address that answers, and no address, pass."""
    import socket

    import ray._private.services as services

    from defbench import DefbenchError
    from defbench.cli import main
    from defbench.harness.ray_executor import check_reachable

    port = _closed_port()
    with pytest.raises(DefbenchError, match=f"--address 127.0.0.1:{port}: cannot reach a Ray cluster at 127.0.0.1"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(DefbenchError, match="a Ray address is auto or HOST:PORT"):
        check_reachable("head-node")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(DefbenchError, match=r"\$RAY_ADDRESS 127.0.0.1"):
        check_reachable(None)
    monkeypatch.delenv("RAY_ADDRESS")

    def nothing_runs(addr, temp_dir=None):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(services, "canonicalize_bootstrap_address", nothing_runs)
    with pytest.raises(DefbenchError, match="--address auto: no Ray cluster runs on this machine"):
        check_reachable("auto")
    out = tmp_path / "o"
    args = ["matrix", "--defense", "none", "--attacks", "none", "--executor", "ray", "--no-progress"]
    assert main([*args, "--address", f"127.0.0.1:{port}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach a Ray cluster" in err and not out.exists()
    with socket.socket() as head:  # the silent twins: a port that accepts, auto finding it, no address at all
        head.bind(("127.0.0.1", 0))
        head.listen()
        there = f"127.0.0.1:{head.getsockname()[1]}"
        check_reachable(there)
        check_reachable(f"ray://{there}")
        monkeypatch.setattr(services, "canonicalize_bootstrap_address", lambda addr, temp_dir=None: there)
        check_reachable("auto")
    check_reachable(None)


def test_a_failed_cell_names_the_worker_it_failed_on():
    """A cell that raised on a worker (a node advertising a GPU without CUDA) was recorded with the error alone:
    which node could not run it was not said. The worker's address and pid are in the message now; a worker that
    died (no address to give) keeps its own wording."""
    import ray

    from defbench.harness.ray_executor import RayExecutor

    err = ray.exceptions.RayTaskError("compute", "tb", RuntimeError("Found no NVIDIA driver"), pid=7, ip="10.0.0.9")
    assert RayExecutor._why(ray, err) == "RuntimeError: Found no NVIDIA driver (on the worker at 10.0.0.9, pid 7)"
    died = RayExecutor._why(ray, ray.exceptions.WorkerCrashedError())
    assert died.startswith("the worker process died (WorkerCrashedError") and "on the worker at" not in died
