"""Faults during a run (issue 16): the gray-box cache under two writers and tampering, broken and crashing
attack plugins, SIGTERM and resume. Small matrices on the tiny test models."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from conftest import write_distribution
from defbench.cli import main
from defbench.harness.matrix import _read_adv_cache, _write_adv_cache

REPO = Path(__file__).resolve().parents[1]
DEFBENCH = [sys.executable, "-m", "defbench"]


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------- gray-box cache
def test_cache_file_is_checked_when_read(tmp_path, capsys):
    x = torch.rand(4, 1, 28, 28)
    p = tmp_path / "abc-s0-b0.pt"
    _write_adv_cache(p, "abc-s0-b0", x, "[]")
    assert torch.equal(_read_adv_cache(p, "abc-s0-b0", x)["x_adv"], x)
    assert list(tmp_path.iterdir()) == [p]  # no temporary file left
    blob = torch.load(p, weights_only=True)
    blob["x_adv"] = blob["x_adv"].clone()
    blob["x_adv"][0, 0, 0, 0] = 1 - blob["x_adv"][0, 0, 0, 0]  # one pixel changed, hash kept
    torch.save(blob, p)
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    assert "has a sha256 that does not match" in capsys.readouterr().err
    _write_adv_cache(p, "abc-s0-b0", x, "[]")
    assert _read_adv_cache(p, "abc-s1-b0", x) is None  # another batch's file copied in its place
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    p.write_bytes(b"garbage")
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    torch.save({"x_adv": x}, p)  # an old-format file without a hash
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    assert "recomputing" in capsys.readouterr().err


CACHE_WRITER = textwrap.dedent("""
    import sys, time, torch
    from pathlib import Path
    from defbench.harness.matrix import _read_adv_cache, _write_adv_cache
    path, t0 = Path(sys.argv[1]), float(sys.argv[2])
    x = torch.linspace(0, 1, 4 * 28 * 28).reshape(4, 1, 28, 28)
    while time.time() < t0:
        time.sleep(0.002)
    for i in range(60):
        _write_adv_cache(path, "k-s0-b0", x, "[]")
        blob = _read_adv_cache(path, "k-s0-b0", x)
        assert blob is not None and torch.equal(blob["x_adv"], x)
    print("ok")
""")


def test_two_writers_of_one_cache_file(tmp_path):
    """Two processes write and read one cache file 60 times each: no collision on a temporary name, every
    read sees a whole file."""
    path = tmp_path / "adv-cache" / "k-s0-b0.pt"
    t0 = time.time() + 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CACHE_WRITER, str(path), str(t0)],
            env=_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "ok" in out and "recomputing" not in err, err[-2000:]
    assert [q.name for q in path.parent.iterdir()] == ["k-s0-b0.pt"]


GRAYBOX = [
    "matrix",
    "--defense",
    "median,tvm",
    "--attacks",
    "fgsm",
    "--n",
    "10",
    "--batch-size",
    "10",
    "--preset",
    "quick",
    "--no-progress",
]


def _preds(db: Path) -> dict:
    with sqlite3.connect(db) as c:
        return {(d, a, t): p for d, a, t, p in c.execute("SELECT defense, attack, threat, preds FROM cells")}


def test_tampered_cache_never_reaches_a_cell(tiny_zoo, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(GRAYBOX + ["--out", str(out)]) == 0
    assert "failed" not in capsys.readouterr().err  # a sound run: no cell-failure line
    first = _preds(out / "defbench.sqlite")
    (cache,) = (out / "adv-cache").glob("*.pt")
    blob = torch.load(cache, weights_only=True)
    blob["x_adv"] = torch.zeros_like(blob["x_adv"])  # all-black "adversarials" under the old hash
    torch.save(blob, cache)
    (out / "defbench.sqlite").unlink()  # the cells are recomputed from the cache
    capsys.readouterr()
    assert main(GRAYBOX + ["--out", str(out)]) == 0
    assert "has a sha256 that does not match" in capsys.readouterr().err
    assert _preds(out / "defbench.sqlite") == first
    assert _read_adv_cache(cache, cache.stem, torch.zeros_like(blob["x_adv"])) is not None  # rewritten whole


def test_a_cache_file_beyond_the_budget_is_recomputed_even_with_a_matching_sha256(tiny_zoo, tmp_path, capsys):
    """The cache's sha256 is no signature: a file rewritten with images 0.5 away from the clean ones (beyond FGSM's
    ε) and its hash recomputed passed every check of the read; the attack's own budget check now refuses it and
    the batch is recomputed, the cells as a sound run has them. A sound cache is read silently."""
    out = tmp_path / "o"
    assert main(GRAYBOX + ["--out", str(out)]) == 0
    first = _preds(out / "defbench.sqlite")
    (cache,) = (out / "adv-cache").glob("*.pt")
    (out / "defbench.sqlite").unlink()
    capsys.readouterr()
    assert main(GRAYBOX + ["--out", str(out)]) == 0  # read from the cache
    assert "gray-box cache" not in capsys.readouterr().err and _preds(out / "defbench.sqlite") == first
    blob = torch.load(cache, weights_only=True)
    far = torch.where(blob["x_adv"] > 0.5, blob["x_adv"] - 0.5, blob["x_adv"] + 0.5)
    _write_adv_cache(cache, cache.stem, far, blob["violations"])  # a hash that matches
    (out / "defbench.sqlite").unlink()
    assert main(GRAYBOX + ["--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "holds images the attack's checks refuse" in err and "> ε = " in err
    assert _preds(out / "defbench.sqlite") == first


# ------------------------------------------------------------------------------------- plugins
PLUGIN = textwrap.dedent("""
    import torch
    from defbench.attacks import Attack

    class Crasher(Attack):
        name = "crasher"
        label_name = "Crasher"
        bounded = True

        def run(self, model, x, y):
            raise RuntimeError("expected 3 channels, got 1")
""")


def fake_dist(root: Path, dist: str, entries: dict[str, str], module: str, source: str | None) -> Path:
    return write_distribution(root, dist, "0.3", "defbench.attacks", entries, {module: source} if source else None)


def test_plugin_that_fails_to_import_is_skipped(tmp_path, monkeypatch, capsys):
    from defbench import plugins
    from defbench.attacks import registry

    monkeypatch.setattr(plugins, "WARNED", set())
    root = fake_dist(
        tmp_path / "site",
        "broken-attacks",
        {"brk": "broken_mod:Brk", "gone": "no_such_mod:X"},
        "broken_mod",
        "import torchattacks.does_not_exist\n",
    )
    monkeypatch.syspath_prepend(str(root))
    atk = registry.get_attack("fgsm", "fmnist")  # the built-ins keep working
    assert atk.name == "fgsm" and "brk" not in registry.available()
    registry.get_attack("pgd", "fmnist")
    err = capsys.readouterr().err
    assert err.count("\n") == 2  # one line per broken plugin, once per process
    assert "skipped attack plugin 'brk'" in err and "distribution broken-attacks 0.3" in err
    assert "ModuleNotFoundError" in err and "no_such_mod" in err


def test_plugin_that_crashes_fails_only_its_cell(tiny_zoo, tmp_path, monkeypatch, capsys):
    root = fake_dist(tmp_path / "site", "crashing-attacks", {"crasher": "crash_mod:Crasher"}, "crash_mod", PLUGIN)
    monkeypatch.syspath_prepend(str(root))
    out = tmp_path / "o"
    rc = main(
        [
            "matrix",
            "--defense",
            "median",
            "--attacks",
            "fgsm,crasher",
            "--n",
            "10",
            "--batch-size",
            "10",
            "--preset",
            "quick",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    cap = capsys.readouterr()
    assert rc == 1, cap.err
    assert "crashing-attacks 0.3 crashed: RuntimeError: expected 3 channels, got 1" in cap.err
    assert "Traceback" not in cap.err
    # each failed cell says so as it fails (one line per cell: no defense and median), before the run's summary
    going_on = [ln for ln in cap.err.splitlines() if ln.startswith("defbench: cell ") and "the other cells go on" in ln]
    assert len(going_on) == 2 and all("failed: " in ln and "crashing-attacks" in ln for ln in going_on), cap.err
    (summary,) = [ln for ln in cap.err.splitlines() if ln.startswith("defbench: error: ")]
    assert summary.startswith("defbench: error: 2 cell(s) failed and are not in the tables (") and summary.endswith(
        "); rerun to retry them"
    ), summary
    with sqlite3.connect(out / "defbench.sqlite") as c:
        cells = {(d, a) for d, a in c.execute("SELECT defense, attack FROM cells")}
        failures = list(c.execute("SELECT label, message FROM failures"))
    assert cells == {("none", "clean"), ("median", "clean"), ("none", "fgsm"), ("median", "fgsm")}
    assert len(failures) == 2 and all("crashing-attacks" in m for _, m in failures)
    assert "FGSM" in cap.out  # the tables of the other cells are printed


# ------------------------------------------------------------------------------------- SIGTERM
def _rows(db: Path) -> dict:
    try:
        with sqlite3.connect(db) as c:
            return dict(c.execute("SELECT key, created_at FROM cells"))
    except sqlite3.OperationalError:  # the file exists, its tables are being created
        return {}


def test_sigterm_replaced_by_another_exception_in_c_code_is_still_a_sigterm(monkeypatch, capsys, tmp_path):
    """The handler's exception is raised wherever the main thread is; C code that catches and replaces it (seen in
    a run: numpy's buffer-format parsing raised "ValueError: 'T{d:val:q:i1:q:i2:}' is not a valid PEP 3118 buffer
    format string") must not turn a SIGTERM into an internal error with exit 1."""
    from defbench import cli
    from defbench.cli import matrix

    def replaced(args):
        try:
            cli._on_sigterm(signal.SIGTERM, None)
        except KeyboardInterrupt:
            raise ValueError("'T{d:val:}' is not a valid PEP 3118 buffer format string") from None

    def plain(args):
        raise ValueError("'T{d:val:}' is not a valid PEP 3118 buffer format string")

    monkeypatch.setattr(matrix, "run", replaced)
    assert main(["matrix", "--out", str(tmp_path)]) == 143
    err = capsys.readouterr().err
    assert err.startswith("defbench: terminated (SIGTERM)") and "internal error" not in err

    def replaced_int(args):
        try:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, through the handler main installed
        except KeyboardInterrupt:
            raise ValueError("replaced") from None

    monkeypatch.setattr(matrix, "run", replaced_int)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the precondition: Python's own Ctrl-C handler
    assert main(["matrix", "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err.startswith("defbench: interrupted;")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the run
    monkeypatch.setattr(matrix, "run", plain)  # the same error with no signal (none left over from the last run)
    assert main(["matrix", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("defbench: internal error: ValueError")


def test_sigterm_leaves_a_consistent_store_and_the_run_resumes(tiny_zoo, tmp_path):
    out = tmp_path / "run"
    cmd = DEFBENCH + [
        "matrix",
        "--defense",
        "none,median,tvm",
        "--attacks",
        "fgsm,deepfool",
        "--n",
        "20",
        "--batch-size",
        "10",
        "--preset",
        "quick",
        "--no-progress",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = out / "defbench.sqlite"
    deadline = time.time() + 240
    while time.time() < deadline:
        if db.exists() and len(_rows(db)) >= 3:
            break
        if proc.poll() is not None:
            pytest.fail("matrix finished before it could be stopped: " + proc.stderr.read()[-2000:])
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    from defbench.harness.store import check_store

    chk = check_store(out)
    assert chk.ok, chk.summary()
    before = _rows(db)
    assert 3 <= len(before) < 9  # 3 clean cells + 2 attacks x 3 defenses
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    after = _rows(db)
    assert len(after) == 9 and all(after[k] == t for k, t in before.items())
    assert f"{9 - len(before)} cells computed, {len(before)} reused" in res.stdout


# ------------------------------------------------------------------------------------- two runs, one --out
def test_two_matrix_runs_on_one_out(tiny_zoo, tmp_path):
    """Two `defbench matrix` processes started together on one --out with overlapping cells (none and median
    under fgsm are in both): both finish, no 'database is locked', every cell is stored once, and the store
    and the gray-box cache pass their checks."""
    out = tmp_path / "shared"
    common = ["--n", "10", "--batch-size", "10", "--preset", "quick", "--no-progress", "--out", str(out)]
    cmds = [
        DEFBENCH + ["matrix", "--defense", "median", "--attacks", "fgsm,pgd"] + common,
        DEFBENCH + ["matrix", "--defense", "median,tvm", "--attacks", "fgsm"] + common,
    ]
    procs = [subprocess.Popen(c, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_o, e) in zip(procs, results, strict=True):
        assert p.returncode == 0, e[-2000:]
        assert "locked" not in e and "Traceback" not in e, e[-2000:]
    with sqlite3.connect(out / "defbench.sqlite") as c:
        cells = list(c.execute("SELECT defense, attack, threat FROM cells"))
    expect = {
        ("none", "clean", "none"),
        ("median", "clean", "none"),
        ("tvm", "clean", "none"),
        ("none", "fgsm", "graybox"),
        ("median", "fgsm", "graybox"),
        ("tvm", "fgsm", "graybox"),
        ("none", "pgd", "graybox"),
        ("median", "pgd", "graybox"),
    }
    assert sorted(cells) == sorted(expect)  # each once
    from defbench.harness.store import check_store

    assert check_store(out).ok
    assert not [p for p in (out / "adv-cache").iterdir() if p.suffix != ".pt"]  # no temporary file left
