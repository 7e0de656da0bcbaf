"""Reliability of the results store (issue 16): two processes on one --out, a corrupt store checked and
salvaged cell by cell, full and read-only disks said as such. Bounded: stand-in rows, no models."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from defbench import DefbenchError
from defbench.cli import main
from defbench.harness.store import (
    DB_NAME,
    CellKey,
    CellResult,
    Store,
    check_dir,
    check_store,
    os_error_line,
    row_problem,
    salvage_store,
)

REPO = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def key(i: int, defense: str = "median") -> CellKey:
    return CellKey("fmnist", "clf@x", defense, "dh", "fgsm", "ah", "graybox", i)


def result(n: int = 20, pad: int = 0) -> CellResult:
    labels = [i % 10 for i in range(n)]
    return CellResult(
        labels,
        labels[::-1],
        labels,
        [0.5] * n,
        list(range(n)),
        0.1,
        "cpu",
        {"name": "median", "pad": "x" * pad},
        {"name": "fgsm"},
        {},
    )


def fill(out: Path, cells: int, pad: int = 0) -> None:
    s = Store(out)
    for i in range(cells):
        s.put(key(i), result(pad=pad))
    s.close()


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------------- two processes
WRITER = textwrap.dedent("""
    import sys, time
    from defbench.harness.store import CellKey, CellResult, Store
    out, t0, who, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    for r in range(rounds):
        while time.time() < t0 + r * 0.15:
            time.sleep(0.002)
        s = Store(f"{out}/r{r}")          # both processes create the same store at the same moment
        for i in range(6):                # cells 0-5 and 3-8: three written by both
            k = CellKey("fmnist", "c", "median", "dh", "fgsm", "ah", "graybox", i + 3 * who)
            s.put(k, CellResult([1, 2], [1, 2], [1, 1], [0.0, 0.0], [0, 1], 0.0, "cpu", {"who": who}, {}, {}))
        s.close()
    print("done")
""")


def test_two_processes_create_and_fill_one_store(tmp_path):
    """Two processes create the same store at the same instant, 12 times over, and write overlapping cells:
    both finish, no 'database is locked', every cell is stored once."""
    rounds = 12
    t0 = time.time() + 2.5  # both have imported defbench by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(t0), str(w), str(rounds)],
            env=_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (0, 1)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (o, e) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and "done" in o, e[-2000:]
        assert "locked" not in e
    for r in range(rounds):
        with sqlite3.connect(tmp_path / f"r{r}" / DB_NAME) as c:
            seeds = [s for (s,) in c.execute("SELECT seed FROM cells ORDER BY seed")]
            assert seeds == list(range(9))
            assert c.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone() == ("2",)
            assert c.execute("SELECT COUNT(*) FROM meta").fetchone() == (2,)


def test_creating_an_existing_store_is_idempotent(tmp_path):
    fill(tmp_path, 3)
    s = Store(tmp_path)  # opens, creates nothing twice
    assert s.count() == 3
    s.put(key(0), result(n=5))  # the same cell again: kept once, the first copy wins
    assert s.count() == 3 and next(s.rows(seed=0))["n"] == 20


def test_a_foreign_sqlite_file_is_not_adopted(tmp_path):
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        c.execute("CREATE TABLE other (x)")
    with pytest.raises(DefbenchError, match="not a defbench store"):
        Store(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        assert {n for (n,) in c.execute("SELECT name FROM sqlite_master")} == {"other"}


# ------------------------------------------------------------------------------------- corrupt stores
def test_broken_row_is_found_reported_and_salvaged(tmp_path, capsys):
    fill(tmp_path, 5)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        c.execute("UPDATE cells SET preds='[1, 2' WHERE seed=2")
        c.execute("UPDATE cells SET correct=correct+1 WHERE seed=3")
    s = Store(tmp_path)
    with pytest.raises(DefbenchError, match=r"is broken .*defbench store salvage"):
        list(s.rows())
    s.close()
    assert main(["store", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "3 intact cell(s), 2 broken row(s)" in out
    assert main(["store", "salvage", str(tmp_path)]) == 0
    assert "kept 3 intact cell(s), dropped 2" in capsys.readouterr().out
    assert list(tmp_path.glob(f"{DB_NAME}.damaged-*"))  # the damaged file is kept
    s = Store(tmp_path)
    assert sorted(r["seed"] for r in s.rows()) == [0, 1, 4]  # rows() works again; the next run redoes 2 and 3
    s.close()
    assert main(["store", "check", str(tmp_path)]) == 0


def test_salvage_keeps_the_record_of_failed_cells(tmp_path):
    """Salvage rebuilt the cells table only: the record of a failed cell (a plugin crash, its message) was lost
    (found by the Ray/store audit); it is carried over while the cell holds no result."""
    fill(tmp_path, 3)
    s = Store(tmp_path)
    s.put_failure(key(9), "s9 median graybox FGSM", "RuntimeError: boom")
    s.close()
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        c.execute("UPDATE cells SET preds='[1, 2' WHERE seed=1")
    _, backup = salvage_store(tmp_path)
    assert backup is not None
    s = Store(tmp_path)
    assert [(f["label"], f["message"]) for f in s.failures()] == [("s9 median graybox FGSM", "RuntimeError: boom")]
    assert sorted(r["seed"] for r in s.rows()) == [0, 2]
    s.close()


def test_store_check_names_failed_cells_and_is_silent_without(tmp_path, capsys):
    """'store check' counted intact and broken cells only: a store whose cell failed (a plugin crash) read as
    complete. The failed cells without a result are named, the exit status stays 0 (failures are not damage);
    a failure whose cell was computed since, or none at all, says nothing."""
    fill(tmp_path, 2)
    assert main(["store", "check", str(tmp_path)]) == 0
    assert "failed and hold" not in capsys.readouterr().out
    s = Store(tmp_path)
    s.put_failure(key(9), "s9 median graybox FGSM", "RuntimeError:\n boom")
    s.put_failure(key(1), "s1 median graybox FGSM", "an earlier failure, computed since")
    s.close()
    assert main(["store", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    said = "1 cell(s) failed and hold no result, the next run retries them (s9 median graybox FGSM: RuntimeError: boom)"
    assert said in out and "computed since" not in out and out.count("\n") == 1


def test_salvage_waits_for_no_one_and_refuses_while_a_store_is_written(tmp_path):
    """Salvage replaced the file under a run still writing it: the run's next cells went into the moved-away
    damaged file and were lost. A process writing the store holds its in-use lock (shared: two runs share a
    store), salvage takes it exclusively and refuses while a writer holds it; a store opened for reading (a
    report) does not stop it, and once the writer closes, salvage runs. A run started during a salvage (from its
    first read of the store on: a cell written between the read and the rebuild was lost) is refused."""
    fill(tmp_path, 3)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        c.execute("UPDATE cells SET preds='[1, 2' WHERE seed=1")
    writer = Store(tmp_path)
    with pytest.raises(DefbenchError, match="is in use by a process writing its store"):
        salvage_store(tmp_path)
    writer.close()
    reader = Store(tmp_path, readonly=True)
    from defbench.harness import store as store_module

    real_check, real_rebuild = store_module.check_store, store_module._rebuild

    def refused_now(out):  # a run that starts while salvage reads the store, or rebuilds it
        with pytest.raises(DefbenchError, match="'defbench store salvage' is rebuilding this store"):
            Store(out)

    store_module.check_store = lambda out: refused_now(out) or real_check(out)
    store_module._rebuild = lambda out, path, chk: refused_now(out) or real_rebuild(out, path, chk)
    try:
        _, backup = salvage_store(tmp_path)
    finally:
        store_module.check_store, store_module._rebuild = real_check, real_rebuild
    reader.close()
    assert backup is not None
    s = Store(tmp_path)
    assert sorted(r["seed"] for r in s.rows()) == [0, 2]
    s.close()


def test_flipped_key_field_is_broken(tmp_path):
    fill(tmp_path, 2)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        c.execute("UPDATE cells SET defense='medjan' WHERE seed=1")
    chk = check_store(tmp_path)
    assert len(chk.intact) == 1 and "key does not match" in chk.broken[0]


def test_truncated_store_keeps_every_intact_cell(tmp_path, capsys):
    fill(tmp_path, 120, pad=3000)  # ~ 100 pages: the rows spread over many leaves
    db = tmp_path / DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    originals = {r["key"]: r for r in check_store(tmp_path).intact}
    raw = db.read_bytes()
    db.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(DefbenchError) as err:  # opening or reading says what is wrong and what to do
        s = Store(tmp_path)
        list(s.rows())
    assert "store salvage" in str(err.value) and "\n" not in str(err.value)
    assert main(["store", "check", str(tmp_path)]) == 1
    assert "damage" in capsys.readouterr().out
    chk, backup = salvage_store(tmp_path)
    assert backup is not None and backup.exists()
    assert 40 <= len(chk.intact) < 120  # every cell before the cut survives
    s = Store(tmp_path)
    kept = list(s.rows())
    s.close()
    assert len(kept) == len(chk.intact)
    for r in kept:  # a kept cell is the cell that was stored, byte for byte
        o = originals[r["key"]]
        assert r["preds"] == json.loads(o["preds"]) and r["created_at"] == o["created_at"]
    assert check_store(tmp_path).ok


@pytest.mark.parametrize("content", [b"garbage " * 300, b"SQLite format 3\x00" + b"\xff" * 50])
def test_garbage_store_is_refused_in_one_line_and_salvaged_empty(tmp_path, capsys, content, monkeypatch):
    from defbench.harness import models

    def no_training(*a, **k):
        raise AssertionError("a model was trained")

    monkeypatch.setattr(models, "_fetch", no_training)  # the store is refused before any model is needed
    (tmp_path / DB_NAME).write_bytes(content)
    rc = main(
        [
            "matrix",
            "--preset",
            "quick",
            "--attacks",
            "none",
            "--defense",
            "none",
            "--n",
            "5",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    err = one_line(capsys)
    assert rc == 2 and ("not a defbench store" in err or "damaged" in err), err
    assert "store salvage" in err
    assert (tmp_path / DB_NAME).read_bytes() == content  # nothing overwritten
    assert main(["store", "salvage", str(tmp_path)]) == 0
    assert "kept 0 intact cell(s)" in capsys.readouterr().out
    Store(tmp_path).close()  # a fresh, working store in its place


def test_an_empty_file_becomes_a_store(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"")  # SQLite's own view: an empty database
    s = Store(tmp_path)
    assert s.count() == 0
    s.close()


def test_store_commands_bad_input(tmp_path, capsys):
    assert main(["store", "check", str(tmp_path / "nothing")]) == 2
    assert "no store" in one_line(capsys)
    assert main(["store", "fix", str(tmp_path)]) == 2
    assert "invalid choice" in one_line(capsys)
    assert main(["store", "check"]) == 2
    assert "required" in one_line(capsys)


def test_row_problem_accepts_a_good_row(tmp_path):
    fill(tmp_path, 1)
    with sqlite3.connect(tmp_path / DB_NAME) as c:
        c.row_factory = sqlite3.Row
        row = dict(c.execute("SELECT * FROM cells").fetchone())
    assert row_problem(row) is None
    assert "missing" in row_problem({**row, "labels": None})
    # a detection-score list cut short changed the AUC table while check said intact; so did a wrong count
    assert "per-image lists" in row_problem({**row, "scores": json.dumps(json.loads(row["scores"])[:2])})
    assert "correct_undefended" in row_problem({**row, "correct_undefended": row["correct_undefended"] - 1})
    assert "its correct count" in row_problem({**row, "correct": row["correct"] + 1})


# ------------------------------------------------------------------------------------- disks
def test_full_disk_is_said_as_such(tmp_path):
    s = Store(tmp_path)
    s.put(key(0), result())
    pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
    s.conn.execute(f"PRAGMA max_page_count={pages + 1}")  # what a full disk looks like to SQLite
    with pytest.raises(DefbenchError, match=r"no space left on device \(disk full\)"):
        for i in range(1, 50):
            s.put(key(i), result(pad=5000))
    s.close()
    assert check_store(tmp_path).ok  # every cell written before is intact


def test_read_only_store_is_said_as_such(tmp_path):
    fill(tmp_path, 1)
    s = Store(tmp_path)
    s.conn.close()
    s.conn = sqlite3.connect(f"{(tmp_path / DB_NAME).resolve().as_uri()}?mode=ro", uri=True)
    with pytest.raises(DefbenchError, match="read-only"):
        s.put(key(5), result())


def test_out_dir_checks(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DefbenchError, match="is a file, not a directory"):
        check_dir(f)
    with pytest.raises(DefbenchError, match="is below the file"):
        check_dir(f / "a" / "b")
    with pytest.raises(DefbenchError, match="is empty"):
        check_dir("")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(DefbenchError, match="permission denied"):
        check_dir(tmp_path / "new")
    monkeypatch.setattr(os, "statvfs", lambda p: type("V", (), {"f_flag": os.ST_RDONLY})())
    with pytest.raises(DefbenchError, match="read-only file system"):
        check_dir(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_os_errors_are_named():
    assert "no space left on device" in os_error_line(OSError(errno.ENOSPC, "No space", "/x"))
    assert "permission denied" in os_error_line(PermissionError(errno.EACCES, "Permission denied", "/x"))
    assert "read-only file system" in os_error_line(OSError(errno.EROFS, "Read-only", "/x"))


@pytest.mark.parametrize(
    "exc, expect, rc",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/out/x.pt"), "/out/x.pt: no space left on device", 1),
        (PermissionError(errno.EACCES, "Permission denied", "/out"), "/out: permission denied", 1),
        (OSError(errno.EROFS, "Read-only file system", "/ro"), "/ro: read-only file system", 1),
        (sqlite3.OperationalError("database is locked"), "the results store failed", 1),
        (RuntimeError("boom"), "internal error: RuntimeError: boom (rerun with --debug", 1),
    ],
)
def test_faults_reach_the_user_as_one_line(monkeypatch, capsys, tmp_path, exc, expect, rc):
    from defbench.cli import matrix

    def fail(args):
        raise exc

    monkeypatch.setattr(matrix, "run", fail)
    assert main(["matrix", "--out", str(tmp_path)]) == rc
    assert expect in one_line(capsys)
    assert main(["matrix", "--out", str(tmp_path), "--debug"]) == rc  # --debug adds the traceback
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and expect in err.strip().splitlines()[-1]


def test_report_reads_the_store_without_writing_it(tmp_path, capsys):
    """'defbench report' only reads: a store left in rollback-journal mode (as salvage leaves one) keeps its
    bytes and its mode (opened read-write, it was switched to WAL and write-locked)."""
    import hashlib

    fill(tmp_path, 2)
    db = tmp_path / DB_NAME
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA journal_mode=DELETE")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert main(["report", str(tmp_path)]) == 0
    assert "median" in capsys.readouterr().out
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with pytest.raises(DefbenchError, match="no store"):
        Store(tmp_path / "elsewhere", readonly=True)
    assert not (tmp_path / "elsewhere").exists()


def test_report_lists_failed_cells_and_is_silent_without(tmp_path, capsys):
    """A cell that failed (a plugin crash) holds no number: the Markdown and HTML reports list it with its message
    (its '—' read 'not run' before); a store without failures has no such section."""
    fill(tmp_path, 2)
    assert main(["report", str(tmp_path), "--html"]) == 0
    assert "Failed cells" not in capsys.readouterr().out
    assert "Failed cells" not in (tmp_path / "report.html").read_text()
    s = Store(tmp_path)
    s.put_failure(key(7, defense="tvm"), "s7 tvm graybox FGSM", "RuntimeError: plugin <crash>")
    s.close()
    assert main(["report", str(tmp_path), "--html"]) == 0
    out = capsys.readouterr().out
    assert "### Failed cells" in out and "1 cell(s) failed" in out
    assert "- s7 tvm graybox FGSM: RuntimeError: plugin <crash>" in out
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Failed cells</h2>" in page and "plugin &lt;crash&gt;" in page


def test_report_html_path_is_checked_before_the_tables(tmp_path, capsys):
    """--html PATH that is a directory, or below a file, is one line and exit 2 before any table is printed (it
    was an IsADirectoryError / FileExistsError after the tables); a good path writes the page."""
    fill(tmp_path, 1)
    (tmp_path / "afile").write_text("x")
    for bad, expect in (
        (tmp_path, "is a directory; give the page's file path"),
        (tmp_path / "afile" / "x.html", "afile is a file, not a directory"),
    ):
        assert main(["report", str(tmp_path), "--html", str(bad)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and expect in one_line_err(captured.err)
    assert main(["report", str(tmp_path), "--html", str(tmp_path / "page.html")]) == 0
    assert (tmp_path / "page.html").is_file()


def one_line_err(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("defbench: error: "), err
    return err


# ------------------------------------------------------------------------------------- round trip
def test_a_row_reads_back_what_was_put(tmp_path):
    """Everything a report computes from comes back as it was put: labels, both prediction lists, indices and the
    detection scores to 6 decimals (the AUC ranks them, and scores kept to 2 decimals would tie images the score
    tells apart: the audit's mutant that did so was seen only by the slow golden-values test)."""
    res = result(6)
    res.preds = [3, 1, 4, 1, 5, 9]
    res.scores = [0.1234567, 0.1234561, 2.5, -1.0, 1e-7, 0.9999996]
    s = Store(tmp_path)
    s.put(key(0), res)
    (row,) = list(s.rows())
    s.close()
    assert row["labels"] == res.labels and row["preds"] == [3, 1, 4, 1, 5, 9]
    assert row["preds_undefended"] == res.preds_undefended and row["indices"] == res.indices
    assert row["scores"] == [0.123457, 0.123456, 2.5, -1.0, 0.0, 1.0]
    assert row["n"] == 6 and row["correct"] == sum(p == y for p, y in zip(res.preds, res.labels, strict=True))
