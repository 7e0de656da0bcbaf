"""How the Ray executor shares a cluster among cells (mutation audit of harness/ray_executor.py, session 48): the
GPUs each cell asks for, the device its worker uses and how many workers the cluster fits, computed by hand from
the cluster's resources; the refusals of a cell that cannot fit (and their silent twins); the environment the
workers get. A stand-in for ``ray`` answers ``cluster_resources``: no Ray instance is started."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from test_ray_executor import worker, zoo_env

from defbench import DefbenchError

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
FIXTURES = (worker, zoo_env)  # test_ray_executor's in-process CellWorker and its zoo, taken by name below


class Cluster:
    """What RayExecutor._share asks of ray: the cluster's CPUs and GPUs."""

    def __init__(self, cpus: float, gpus: float = 0):
        self.res = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}

    def cluster_resources(self):
        return dict(self.res)


@pytest.fixture
def executor(monkeypatch):
    from defbench.harness.ray_executor import RayExecutor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return RayExecutor


@pytest.mark.parametrize(
    "cpus, gpus, device, kw, want",
    [
        # (GPUs per cell, the workers' device, workers = CPUs // CPUs per cell, and GPUs // GPUs per cell)
        (4, 0, "cpu", {}, (0.0, "cpu", 4)),
        (4, 0, "cpu", {"num_cpus_per_cell": 1.5}, (0.0, "cpu", 2)),  # 4 // 1.5 = 2
        (3, 0, "cpu", {"num_cpus_per_cell": 2}, (0.0, "cpu", 1)),
        (8, 2, "cuda", {}, (1.0, "cuda", 2)),  # a CUDA spec: one GPU per cell, two GPUs -> two workers
        (8, 2, "cpu", {}, (0.0, "cpu", 8)),  # --device cpu: the cluster's GPUs are not used
        (8, 1, "cpu", {"use_cluster_gpus": True}, (1.0, "cuda", 1)),  # --device auto on a cluster with one GPU
        (8, 0, "cpu", {"use_cluster_gpus": True}, (0.0, "cpu", 8)),  # ... and on one without
        (8, 1, "cpu", {"num_gpus_per_cell": 0.25}, (0.25, "cuda", 4)),  # a fraction shares a GPU: 1 // 0.25
        (2, 1, "cpu", {"num_gpus_per_cell": 0.25}, (0.25, "cuda", 2)),  # the CPUs bound it
        (16, 4, "cuda", {"num_gpus_per_cell": 0}, (0, "cpu", 16)),  # an explicit 0 keeps the cells on CPUs
    ],
)
def test_share_of_the_cluster_per_cell(cpus, gpus, device, kw, want, executor):
    ex = executor(**kw)
    assert ex._share(Cluster(cpus, gpus), SimpleNamespace(device=device)) == want


def test_a_cell_that_cannot_fit_is_refused_before_any_worker_starts(executor):
    """A CUDA run on a cluster without GPUs, or more CPUs per cell than the cluster has: one line each; the
    silent twins are the same asks on a cluster that has exactly enough."""
    with pytest.raises(
        DefbenchError, match="each cell asks for 1 GPU but the Ray cluster has 0; run with --device cpu"
    ):
        executor()._share(Cluster(8, 0), SimpleNamespace(device="cuda"))
    assert executor()._share(Cluster(8, 1), SimpleNamespace(device="cuda")) == (1.0, "cuda", 1)
    with pytest.raises(DefbenchError, match="each cell asks for 2 GPU but the Ray cluster has 1"):
        executor(num_gpus_per_cell=2)._share(Cluster(8, 1), SimpleNamespace(device="cpu"))
    with pytest.raises(DefbenchError, match="each cell asks for 16 CPUs but the Ray cluster has 8"):
        executor(num_cpus_per_cell=16)._share(Cluster(8), SimpleNamespace(device="cpu"))
    assert executor(num_cpus_per_cell=8)._share(Cluster(8), SimpleNamespace(device="cpu")) == (0.0, "cpu", 1)


@pytest.mark.parametrize("kw", [{"num_cpus_per_cell": 0}, {"num_cpus_per_cell": -1}, {"num_gpus_per_cell": -0.5}])
def test_a_share_of_no_cpu_or_negative_gpus_is_refused(kw, executor):
    with pytest.raises(DefbenchError, match="a Ray cell needs num_cpus_per_cell > 0 and num_gpus_per_cell >= 0"):
        executor(**kw)


def test_the_smallest_shares_are_accepted(executor):
    ex = executor(num_cpus_per_cell=0.5, num_gpus_per_cell=0, max_retries=3)
    assert (ex.num_cpus_per_cell, ex.num_gpus_per_cell, ex.max_retries) == (0.5, 0, 3)
    assert executor(max_retries=-2).max_retries == 0


def test_workers_get_the_driver_s_zoo_and_data_and_the_caller_s_env_on_top(executor, monkeypatch):
    """DEFBENCH_HOME (the zoo) and DEFBENCH_DATA are forwarded, unset ones are not; worker_env wins over both."""
    monkeypatch.setenv("DEFBENCH_HOME", "/shared/home")
    monkeypatch.setenv("DEFBENCH_DATA", "/shared/data")
    monkeypatch.delenv("DEFBENCH_NONDETERMINISTIC", raising=False)
    assert executor()._env() == {"DEFBENCH_HOME": "/shared/home", "DEFBENCH_DATA": "/shared/data"}
    env = executor(worker_env={"DEFBENCH_DATA": "/node/data", "PYTHONPATH": "/p"})._env()
    assert env == {"DEFBENCH_HOME": "/shared/home", "DEFBENCH_DATA": "/node/data", "PYTHONPATH": "/p"}
    monkeypatch.delenv("DEFBENCH_DATA")
    assert executor()._env() == {"DEFBENCH_HOME": "/shared/home"}


def test_the_local_address_is_not_checked_for_a_cluster(monkeypatch):
    """RAY_ADDRESS=local (Ray's own word for a fresh local instance) passes like no address; a HOST:PORT without a
    host is refused."""
    from defbench.harness.ray_executor import check_reachable

    monkeypatch.setenv("RAY_ADDRESS", "local")
    check_reachable(None)
    check_reachable("local")
    with pytest.raises(DefbenchError, match="a Ray address is auto or HOST:PORT"):
        check_reachable(":6379")


def test_a_worker_saves_as_many_example_images_as_the_driver_asks(worker, tmp_path):
    """The driver's examples_k (0: saving off) reaches the worker's runner: the outcome carries k images' indices,
    or none; without it the worker keeps its runner's default."""
    from test_ray_executor import _spec

    from defbench.harness.examples import DEFAULT_K
    from defbench.harness.matrix import MatrixRunner

    runner = MatrixRunner(_spec(tmp_path / "out", defenses=("none",), attacks=()))
    (cell,) = runner.cells()
    w = worker(os.environ["DEFBENCH_HOME"])
    out, _ = w.compute("x", runner.spec, 0, cell)
    assert out.result is not None and out.examples is None
    out, meta = w.compute("x", runner.spec, 3, cell)
    assert not meta["built"] and len(out.examples["indices"]) == 3
    out, _ = worker(os.environ["DEFBENCH_HOME"]).compute("y", runner.spec, None, cell)
    assert len(out.examples["indices"]) == min(DEFAULT_K, runner.spec.n)
