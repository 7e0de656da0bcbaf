"""Cells of the attack matrix on a Ray cluster (``--executor ray``; see docs/CLUSTER.md).

The driver (the process that runs ``defbench matrix``) keeps everything that writes: it decides which cells
are missing from the store, hands them to a pool of Ray actors and records every outcome the moment it comes
back (:meth:`MatrixRunner.record`), so a killed driver loses only the cells in flight and the next run resumes
exactly as with the local executor. Each actor reserves one cell's share of the cluster (``num_cpus_per_cell``,
``num_gpus_per_cell``), builds one :class:`MatrixRunner` from the driver's :class:`MatrixSpec` on its first cell
and computes cell after cell with it: models load once per worker, not once per cell.

Models reach the workers through the zoo path (``$DEFBENCH_HOME/zoo``, forwarded from the driver), not the
object store: the driver has already loaded (or trained) every model the cells need while computing their
keys, so the zoo on storage every node shares, or the one machine of a single-node cluster, has them; a
worker only reads files it verifies by sha256, never trains (a missing model is an error naming the worker),
and a worker that loaded other weights or data computes its cells under other keys, which the driver refuses.
Shipping the weights through the object store instead would need the cells' models up front (defenses load
theirs lazily, by name) and would not cover the data, which workers also read from a path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import socket
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import torch

from defbench import DefbenchError
from defbench.harness import models
from defbench.harness.matrix import Cell, CellOutcome, Executor, MatrixRunner
from defbench.harness.zoo import zoo_dir
from defbench.seeding import NONDETERMINISTIC_ENV

INSTALL_HINT = "pip install -e '.[ray]'"
#: driver environment variables the workers get (where the zoo and the data are; whether CUDA kernels may be
#: nondeterministic)
FORWARDED_ENV = ("DEFBENCH_HOME", "DEFBENCH_DATA", NONDETERMINISTIC_ENV)
EXECUTORS = ("local", "ray")


def import_ray():
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DefbenchError(
            f"--executor ray needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    return ray


def cell_label(cell: Cell) -> str:
    """The label :meth:`MatrixRunner.compute_cell_guarded` gives a failed cell."""
    return f"s{cell.seed} {cell.defense} {cell.threat} {cell.attack.name if cell.attack else 'clean'}"


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


class _NoStore:
    """A worker's stand-in for the store: workers compute cells, only the driver writes them."""

    def __init__(self, out: str):
        self.path = Path(out) / "defbench.sqlite"

    def __getattr__(self, name: str):
        raise RuntimeError(f"a Ray worker never uses the store (Store.{name}); the driver records every cell")


def _no_training() -> None:
    """In a worker process: a model missing from the zoo is an error, never trained here (the driver has
    loaded every model the cells use, so a missing one means this worker sees another zoo)."""
    fetch = models._fetch
    if getattr(fetch, "_defbench_worker", False):
        return

    def fetch_no_train(mid, build, train_missing):
        return fetch(mid, build, False)

    fetch_no_train._defbench_worker = True
    models._fetch = fetch_no_train


def _writable_out(out: str) -> str:
    """The worker's output dir, used only for the gray-box adversarial cache: the driver's when this machine can
    write there (one machine, or shared storage), else a directory of its own under the temp dir (the cache
    files are checked by name and sha256 wherever they live)."""
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        if os.access(out, os.W_OK):
            return out
    except OSError:
        pass
    tag = hashlib.sha256(out.encode()).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"defbench-worker-{tag}")


class CellWorker:
    """The body of one Ray actor: builds a :class:`MatrixRunner` from the driver's spec on its first cell of a
    run and reuses it for every further cell of that spec (the actor itself outlives the run: the next run of
    the same executor saves the process start and imports)."""

    def __init__(self, threads: int):
        self.threads = max(1, threads)
        self.digest: str | None = None
        self.runner = None  # built on the first cell: a spare worker loads no model

    def compute(self, digest: str, spec, examples_k: int | None, cell: Cell) -> tuple[CellOutcome | None, dict]:
        """(outcome, meta). A :class:`DefbenchError` (a refusal meant for the user) comes back in ``meta`` as a
        value, not raised, so the driver re-raises it as it is and never retries it; any other exception
        propagates (the driver retries the cell)."""
        meta: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "zoo": str(zoo_dir())}
        try:
            meta["built"] = digest != self.digest
            if meta["built"]:
                torch.set_num_threads(self.threads)
                _no_training()
                self.runner, self.digest = None, None
                spec = dataclasses.replace(spec, out=_writable_out(spec.out))
                self.runner = MatrixRunner(spec, store=_NoStore(spec.out))
                self.digest = digest
            if examples_k is not None:
                self.runner.examples_k = examples_k
            out = self.runner.compute_cell_guarded(cell)
            _, dcfg, acfg = self.runner.key(cell)
        except DefbenchError as exc:
            return None, {**meta, "refused": exc}
        return out, {**meta, "defense_config": dcfg, "attack_config": acfg}


#: seconds to wait for a cluster's address to accept a connection: ray.init waited minutes at an address where
#: nothing listens, printing only Ray's own retry lines
REACH_TIMEOUT_S = 5.0


def check_reachable(address: str | None, timeout: float = REACH_TIMEOUT_S) -> None:
    """Refuse, before any work, a Ray cluster that cannot be there: ``"auto"`` (or ``$RAY_ADDRESS``'s) with no
    cluster on this machine, a ``HOST:PORT`` (``ray://HOST:PORT``) where nothing accepts a connection within
    ``timeout`` seconds. ``None`` (a local instance) passes."""
    env = os.environ.get("RAY_ADDRESS") or None
    target, origin = (address, "--address") if address is not None else (env, "$RAY_ADDRESS")
    if target is None or target == "local":
        return
    where = f"{origin} {target}"
    if target == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # Ray's layout changed: ray.init says it, later
            return
        try:
            resolved = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError) as exc:
            raise DefbenchError(
                f"{where}: no Ray cluster runs on this machine ({_one_line(exc, 200)}); start one with 'ray start "
                "--head', or leave out --address for a Ray instance of this run"
            ) from None
        if resolved is None:
            return
        target = resolved
    host, sep, port = target.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DefbenchError(f"{where}: a Ray address is auto or HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else _one_line(exc, 120)
        raise DefbenchError(
            f"{where}: cannot reach a Ray cluster at {host}:{port} ({why or type(exc).__name__}); is the cluster's "
            "head running ('ray status' there) and its port open from here?"
        ) from None


class RayExecutor(Executor):
    """Computes cells on Ray actors and records them in this process (the driver) as they arrive.

    ``address``: ``None`` starts a local Ray instance (or joins ``$RAY_ADDRESS``), ``"auto"`` the cluster this
    machine is part of, ``HOST:PORT`` another. Each actor reserves ``num_cpus_per_cell`` CPUs and
    ``num_gpus_per_cell`` GPUs (``None``: one GPU when the spec's device is CUDA or, with ``use_cluster_gpus``,
    when the cluster has GPUs; else none; a fraction shares a GPU) and computes one cell at a time; there are as
    many actors as the cluster fits (at most ``max_workers``). A cell whose worker crashes or raises anything
    but a :class:`DefbenchError` is retried ``max_retries`` times, then recorded as failed with the message
    (the next run tries it again); a :class:`DefbenchError` stops the run, raised here. ``worker_env``:
    environment variables for the workers on top of the driver's ``DEFBENCH_HOME`` and ``DEFBENCH_DATA``.

    The actors outlive a run, so the next run of this executor (``paper run`` over several tables) starts no new
    processes; :meth:`close` (or ``with RayExecutor() as ex``) hands their CPUs and GPUs back, as does the end
    of the driver. After a run, :attr:`stats` has the cells each worker computed, the runners it built (one per
    worker and spec), the retries and the failed cells."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus_per_cell: float = 1,
        num_gpus_per_cell: float | None = None,
        max_retries: int = 1,
        worker_env: dict[str, str] | None = None,
        max_workers: int | None = None,
        use_cluster_gpus: bool = False,
    ):
        import_ray()  # said now, before any model loads
        check_reachable(address)  # and an address where no cluster is: minutes of Ray's retries, a store left
        if num_cpus_per_cell <= 0 or (num_gpus_per_cell is not None and num_gpus_per_cell < 0):
            raise DefbenchError("a Ray cell needs num_cpus_per_cell > 0 and num_gpus_per_cell >= 0")
        self.address = address
        self.num_cpus_per_cell = num_cpus_per_cell
        self.num_gpus_per_cell = num_gpus_per_cell
        self.max_retries = max(0, int(max_retries))
        self.worker_env = dict(worker_env or {})
        self.max_workers = max_workers
        self.use_cluster_gpus = use_cluster_gpus
        self.stats: dict[str, Any] = {}
        self._actors: list[Any] = []
        self._made_with: tuple | None = None  # the options the actors were made with

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (and whatever they still compute)."""
        if self._actors:
            ray = import_ray()
            if ray.is_initialized():
                for a in self._actors:
                    ray.kill(a, no_restart=True)
        self._actors, self._made_with = [], None

    # ------------------------------------------------------------------------------------------ setup
    def _connect(self, ray) -> None:
        if ray.is_initialized():
            return
        self._actors, self._made_with = [], None  # handles of an earlier Ray session are gone
        import logging

        kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
        if self.address is None:
            kwargs["include_dashboard"] = False
        import signal

        # ray.init puts its own SIGTERM handler (sys.exit) in place of the caller's: defbench's (exit 143 with the
        # resume message, docs/RELIABILITY.md) would never run, and the process aborted. Keep the caller's.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"at {self.address}" if self.address else "(local)"
            raise DefbenchError(
                f"cannot start or reach a Ray cluster {where}: {_one_line(exc, 200)}; start one with "
                "'ray start --head', or leave out --address for a Ray instance on this machine"
            ) from None
        finally:
            for sig, handler in handlers.items():
                if handler is not None and signal.getsignal(sig) is not handler:
                    try:
                        signal.signal(sig, handler)
                    except ValueError:  # not the main thread: Ray could not have set it either
                        pass

    def _env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        return {**env, **self.worker_env}

    def _share(self, ray, spec) -> tuple[float, str, int]:
        """(GPUs per cell, the workers' device, how many workers the cluster fits)."""
        res = ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        cuda = str(spec.device).startswith("cuda")
        ngpu = self.num_gpus_per_cell
        if ngpu is None:
            ngpu = 1.0 if cuda or (self.use_cluster_gpus and gpus >= 1) else 0.0
        device = "cuda" if ngpu > 0 else "cpu"  # a worker sees the GPU Ray gave it as cuda:0
        if ngpu > gpus:
            raise DefbenchError(
                f"each cell asks for {ngpu:g} GPU but the Ray cluster has {gpus:g}; "
                "run with --device cpu, or add GPU nodes to the cluster"
            )
        if self.num_cpus_per_cell > cpus:
            raise DefbenchError(f"each cell asks for {self.num_cpus_per_cell:g} CPUs but the Ray cluster has {cpus:g}")
        fit = int(cpus // self.num_cpus_per_cell)
        if ngpu > 0:
            fit = min(fit, int(gpus // ngpu))
        return ngpu, device, max(1, fit)

    def _spawn(self, ray):
        ncpu, ngpu, env = self._made_with
        opts: dict[str, Any] = {
            "num_cpus": ncpu,
            "num_gpus": ngpu,
            "max_restarts": 0,  # a dead worker is replaced by a fresh actor (and its cell retried) in run()
            "max_task_retries": 0,
        }
        if env:
            opts["runtime_env"] = {"env_vars": dict(env)}
        return ray.remote(CellWorker).options(**opts).remote(max(1, int(ncpu)))

    # ------------------------------------------------------------------------------------------ checks
    @staticmethod
    def check_key(runner, cell: Cell, out: CellOutcome, meta: dict[str, Any]) -> None:
        """Refuse a worker's outcome whose key differs from the driver's key of the cell: the worker used other
        models, data or code, and its cell would be filed under a key this run never asked for."""
        want, dcfg, acfg = runner.key(cell)
        if out.key.key == want.key:
            return
        ours = {
            **{f"key.{k}": v for k, v in dataclasses.asdict(want).items()},
            **_flat(dcfg, "defense"),
            **_flat(acfg, "attack"),
        }
        theirs = {
            **{f"key.{k}": v for k, v in dataclasses.asdict(out.key).items()},
            **_flat(meta.get("defense_config") or {}, "defense"),
            **_flat(meta.get("attack_config") or {}, "attack"),
        }
        diff = [
            f"{k}: driver {str(ours.get(k))[:16]}, worker {str(theirs.get(k))[:16]}"
            for k in sorted(set(ours) | set(theirs))
            if ours.get(k) != theirs.get(k) and not k.endswith("_hash")
        ]
        raise DefbenchError(
            f"Ray worker on {meta.get('host')} (zoo {meta.get('zoo')}) computed cell {cell_label(cell)} under "
            f"key {out.key.key}, this driver's key is {want.key} ({'; '.join(diff[:3]) or 'configs differ'}); "
            "workers must load the driver's models and data and run its library versions: put DEFBENCH_HOME and "
            "the data on storage every node shares, install the same environment (docs/CLUSTER.md)"
        )

    @staticmethod
    def reraise(exc: DefbenchError, meta: dict[str, Any]):
        """A worker's refusal, raised here as the same exception, saying where it happened."""
        exc.args = (f"{exc} (in a Ray worker on {meta.get('host')}, zoo {meta.get('zoo')})",) + exc.args[1:]
        raise exc

    @staticmethod
    def _why(ray, exc: Exception) -> str:
        if isinstance(exc, ray.exceptions.RayTaskError) and getattr(exc, "cause", None) is not None:
            cause = exc.cause  # where it ran: a node that cannot run the cells (no CUDA behind its GPU) is named
            where = f" (on the worker at {exc.ip}, pid {exc.pid})" if getattr(exc, "ip", None) else ""
            return f"{type(cause).__name__}: {_one_line(cause)}{where}"
        if isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)):
            return f"the worker process died ({type(exc).__name__}: {_one_line(exc, 200)})"
        return f"{type(exc).__name__}: {_one_line(exc)}"

    # ------------------------------------------------------------------------------------------ run
    def run(self, runner, cells: list[Cell]) -> None:
        self.stats = {"cells": {}, "builds": {}, "retries": 0, "failed": 0}
        if not cells:
            return
        if getattr(runner.spec, "external_defenses", ()) or str(runner.classifier_id).startswith("user-"):
            raise DefbenchError(
                "the Ray executor builds the classifier and every defense on the workers from the zoo, by name; "
                "a classifier or defense objects handed to defbench.evaluate run with the local executor"
            )
        ray = import_ray()
        self._connect(ray)
        spec = runner.spec
        ngpu, device, fit = self._share(ray, spec)
        made_with = (self.num_cpus_per_cell, ngpu, tuple(sorted(self._env().items())))
        if made_with != self._made_with:
            self.close()
            self._made_with = made_with
        nworkers = min(len(cells), fit, self.max_workers or fit)
        while len(self._actors) < nworkers:
            self._actors.append(self._spawn(ray))
        # what every worker builds its runner from: absolute paths (a worker's cwd is not the driver's), no
        # progress bars, the device of its share
        wspec = dataclasses.replace(
            spec,
            out=str(Path(spec.out).resolve()),
            data_root=None if spec.data_root is None else str(Path(spec.data_root).resolve()),
            progress=False,
            device=device,
        )
        # a worker rebuilds its runner when the spec or any model or data changed since its last run (the cells'
        # keys cover the sha256 of every model and of the data)
        keys = sorted(runner.key(c)[0].key for c in cells)
        digest = hashlib.sha256(pickle.dumps((wspec, keys))).hexdigest()
        examples_k = getattr(runner, "examples_k", None)
        if spec.progress:
            print(
                f"ray: {len(cells)} cells on {nworkers} workers ({self.num_cpus_per_cell:g} CPU"
                + (f", {ngpu:g} GPU" if ngpu else "")
                + f" each, device {device})",
                file=sys.stderr,
                flush=True,
            )
        idle = deque(range(nworkers))
        todo = deque(range(len(cells)))
        attempts = [0] * len(cells)
        inflight: dict[Any, tuple[int, int]] = {}  # object ref -> (cell index, actor slot)
        try:
            while todo or inflight:
                while todo and idle:
                    i, slot = todo.popleft(), idle.popleft()
                    attempts[i] += 1
                    inflight[self._actors[slot].compute.remote(digest, wspec, examples_k, cells[i])] = (i, slot)
                # a short timeout keeps Ctrl-C and SIGTERM prompt while the workers compute
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                for ref in done:
                    i, slot = inflight.pop(ref)
                    try:
                        out, meta = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        if not isinstance(exc, ray.exceptions.RayTaskError):  # the actor is gone: a fresh one
                            ray.kill(self._actors[slot], no_restart=True)
                            self._actors[slot] = self._spawn(ray)
                        idle.append(slot)
                        if attempts[i] <= self.max_retries:
                            self.stats["retries"] += 1
                            todo.appendleft(i)
                        else:
                            self.stats["failed"] += 1
                            msg = f"failed on a Ray worker {attempts[i]} time(s): {self._why(ray, exc)}"
                            key = runner.key(cells[i])[0]
                            runner.record(CellOutcome(cells[i], key, cell_label(cells[i]), failure=msg))
                        continue
                    idle.append(slot)
                    if "refused" in meta:
                        self.reraise(meta["refused"], meta)
                    self.check_key(runner, cells[i], out, meta)
                    worker = (meta["host"], meta["pid"])
                    self.stats["cells"][worker] = self.stats["cells"].get(worker, 0) + 1
                    self.stats["builds"][worker] = self.stats["builds"].get(worker, 0) + int(meta["built"])
                    runner.record(out)
        except BaseException:
            self.close()  # stops the cells still in flight; a killed driver's workers end with its Ray job
            raise
