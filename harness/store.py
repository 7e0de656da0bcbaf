"""Results store: one SQLite database per output dir (``<out>/defbench.sqlite``), one row per cell.

A cell is (dataset, classifier, defense + config hash, attack + config hash, threat, seed). The defense
config holds what every cell of the run shares and its number depends on: ``data_sha256`` (the data itself,
not its path), ``model_sha256`` (classifier, G, D, encoder), ``defbench_version`` and ``results_version`` (see
:data:`RESULTS_VERSION`); the attack config holds
a plugin's distribution and version and the G and I a reparameterisation attack differentiates. A row is
written in a single transaction once its cell is complete, so a killed run (even SIGKILL) loses at most the
cell in flight and a restart skips every finished cell.

Row fields: the key fields above plus the full defense and attack configs (JSON), ``n``, ``correct``
(defended accuracy numerator), ``correct_undefended`` (the bare classifier on the same inputs), per-sample
``labels``, ``preds``, ``preds_undefended``, ``scores`` (InvGAN detection score ‖Φ(x_in) − Φ(x̂)‖ of the
cell's inputs), ``indices`` (test-set indices), wall time, device and ``extra`` (JSON: EOT samples, notes).
The clean row of a (dataset, classifier, defense, seed) has attack = 'clean', threat = 'none'.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from defbench import DefbenchError, __version__, metrics

#: 2: cells are keyed by the sha256 of their data and models and by the defbench version (issue 13); the
#: rows of a version-1 store cannot say which data and weights produced them, so they are never reused
SCHEMA_VERSION = 2
#: what the numbers of a cell mean for the code that computes them. The key's ``defbench_version`` never moved
#: (0.1.0), so a resumed store mixed cells computed before and after a change of what a cell computes (a seed
#: derivation, an optimiser step, an attack's default) without a trace. Every such change bumps this number,
#: which is part of every cell's key (``results_version`` in the defense config, and in the gray-box cache's
#: name): a store resumed by newer code recomputes its cells. ``tests/test_results_version.py`` keeps the numbers
#: a few small cells give at this version and fails when they change while it stays the same. 1: the cells
#: stored before this number existed; 2: since 2026-12-06; 3: since 2026-12-06, a universal perturbation is
#: fitted on its own number of images at every batch size (a batch smaller than that fitted on the batch); 4: since
#: 2026-12-07, universal-art's search scores clip(x + ν), the images the attack presents, not x + ν unclipped; 5:
#: since 2026-12-07, an adaptive (BPDA, reparam, gan-aware) cell draws its attack's randomness from a stream named
#: with one purification per image, so ``--eval-repeats`` no longer moves the adversarial examples (the cells of
#: one purification per image keep their draws and numbers).
RESULTS_VERSION = 5
DB_NAME = "defbench.sqlite"

_COLUMNS = """
    key TEXT PRIMARY KEY,
    dataset TEXT NOT NULL, classifier TEXT NOT NULL, defense TEXT NOT NULL, defense_hash TEXT NOT NULL,
    attack TEXT NOT NULL, attack_hash TEXT NOT NULL, threat TEXT NOT NULL, seed INTEGER NOT NULL,
    defense_config TEXT NOT NULL, attack_config TEXT NOT NULL,
    n INTEGER NOT NULL, correct INTEGER NOT NULL, correct_undefended INTEGER NOT NULL,
    labels TEXT NOT NULL, preds TEXT NOT NULL, preds_undefended TEXT NOT NULL, scores TEXT NOT NULL,
    indices TEXT NOT NULL, wall_seconds REAL NOT NULL, device TEXT NOT NULL, created_at TEXT NOT NULL,
    defbench_version TEXT NOT NULL, extra TEXT NOT NULL
"""


_FAILURES_TABLE = (
    "CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, label TEXT NOT NULL, message TEXT NOT NULL, "
    "created_at TEXT NOT NULL)"
)


def _readable_failures(path: Path) -> list[tuple]:
    """The ``failures`` rows a (possibly damaged) store still gives; none when it cannot say."""
    try:
        conn = _connect(path, readonly=True)
        try:
            return conn.execute("SELECT key, label, message, created_at FROM failures").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def no_store(path: Path) -> DefbenchError:
    """The error for an OUT that holds no store (a report or a check never creates one)."""
    return DefbenchError(f"no store {path}; OUT must be the --out dir of a matrix or paper run")


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CellKey:
    dataset: str
    classifier: str
    defense: str
    defense_hash: str
    attack: str
    attack_hash: str
    threat: str
    seed: int

    @property
    def key(self) -> str:
        return hashlib.sha256(
            "|".join(
                map(
                    str,
                    (
                        self.dataset,
                        self.classifier,
                        self.defense,
                        self.defense_hash,
                        self.attack,
                        self.attack_hash,
                        self.threat,
                        self.seed,
                    ),
                )
            ).encode()
        ).hexdigest()[:24]


@dataclass
class CellResult:
    labels: list[int]
    preds: list[int]
    preds_undefended: list[int]
    scores: list[float]
    indices: list[int]
    wall_seconds: float
    device: str
    defense_config: dict[str, Any] = field(default_factory=dict)
    attack_config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


#: seconds a writer waits for another process's transaction (two runs on one --out) before giving up
BUSY_TIMEOUT_S = 120.0
#: the JSON columns of a row (a row whose JSON does not parse is broken: ``store check`` finds it)
JSON_COLUMNS = ("defense_config", "attack_config", "labels", "preds", "preds_undefended", "scores", "indices", "extra")
_FIX = "see 'defbench store check {out}' and 'defbench store salvage {out}'"


def os_error_line(exc: OSError, path: str | Path | None = None) -> str:
    """One line for a file-system failure that says what it is (permission, read-only, full disk, ...)."""
    import errno

    where = path or exc.filename or "a file"
    why = {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on device (disk full)",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENOTDIR: "a path component is a file, not a directory",
        errno.EISDIR: "is a directory",
        errno.ENOENT: "no such file or directory",
        errno.ENAMETOOLONG: "file name too long",
    }.get(exc.errno, exc.strerror or str(exc))
    return f"{where}: {why}"


def check_dir(path: str | Path, what: str = "--out") -> Path:
    """Check, without creating anything, that ``path`` is or can become a writable directory; else a one-line
    DefbenchError: empty, a file in its place or above it, no permission, a read-only file system."""
    if str(path).strip() == "":
        raise DefbenchError(f"{what} is empty; give a directory")
    p = Path(path).expanduser()
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            if q == p:
                raise DefbenchError(f"{what} {p} is a file, not a directory")
            raise DefbenchError(f"{what} {p} is below the file {q}, which is not a directory")
    existing = next((q for q in (p, *p.parents) if q.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        ro = _read_only_fs(existing)
        raise DefbenchError(
            f"cannot write {what} {p}: {existing} is on a read-only file system"
            if ro
            else f"cannot write {what} {p}: permission denied on {existing}"
        )
    return p


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def ensure_dir(path: str | Path, what: str = "--out") -> Path:
    """Create the output directory ``path`` (and its parents), or a one-line DefbenchError that says why not:
    a file in its place or above it, permission denied, a read-only or full file system."""
    p = check_dir(path, what)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DefbenchError(
            f"cannot create {what} {p}: {os_error_line(exc, exc.filename or p).split(': ', 1)[-1]}"
        ) from None
    return p


def _sqlite_line(path: Path, exc: sqlite3.Error) -> str:
    """What a sqlite error means for the user: a damaged store, a full disk, no write permission, ..."""
    msg = str(exc).lower()
    out = path.parent
    if "disk is full" in msg or "database or disk is full" in msg:
        return (
            f"cannot write {path}: no space left on device (disk full); free space and rerun (finished cells are kept)"
        )
    if "readonly" in msg or "read-only" in msg:
        return f"cannot write {path}: the store or its directory is read-only (permission denied or a read-only file system)"  # noqa: E501
    if "unable to open" in msg:
        return f"cannot open {path}: permission denied or the directory is not writable"
    if "locked" in msg or "busy" in msg:
        return (
            f"{path} stayed locked by another process for more than {BUSY_TIMEOUT_S:.0f}s; "
            "is a run on the same --out hung?"
        )
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg or "disk i/o" in msg:
        return f"{path} is damaged ({exc}); " + _FIX.format(out=out)
    return f"{path}: {exc}; " + _FIX.format(out=out)


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def _create(conn: sqlite3.Connection) -> None:
    """Create the schema of an empty database; idempotent, and safe when two processes create one store: the
    first takes the write lock (BEGIN IMMEDIATE), the second waits for it (busy timeout) and finds the tables.
    A database that already holds other tables is left alone (the schema check then refuses it)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type='table'").fetchone()[0] == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('defbench_version', ?)", (__version__,))
            conn.execute(f"CREATE TABLE IF NOT EXISTS cells ({_COLUMNS})")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


#: a lock file beside the store: every process writing the store holds it shared, salvage holds it exclusively
IN_USE = f".{DB_NAME}.in-use"


def _hold(out: Path, exclusive: bool) -> Any:
    """The open lock file ``out/IN_USE`` with a non-blocking ``flock`` on it (shared, or ``exclusive``), or a
    DefbenchError saying who holds it the other way; None where file locks are unavailable."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    fh = open(out / IN_USE, "a+")
    try:
        fcntl.flock(fh, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        if exclusive:
            raise DefbenchError(
                f"{out} is in use by a process writing its store (a matrix or paper run, or a Store left open): "
                "salvage would lose the cells it writes meanwhile; stop it (its finished cells are kept) and "
                "salvage then"
            ) from None
        raise DefbenchError(
            f"{out}: 'defbench store salvage' is rebuilding this store; rerun when it is done"
        ) from None
    return fh


class Store:
    """The store of one output dir. Several processes may share it (WAL, a busy timeout of
    :data:`BUSY_TIMEOUT_S`, idempotent creation): each cell is one transaction, written once."""

    def __init__(self, out_dir: str | Path, readonly: bool = False):
        """The store of ``out_dir``, created when missing; ``readonly`` opens an existing one for reading only
        (a report: no lock taken, its journal mode and bytes left as they are)."""
        if readonly:
            self.path = Path(out_dir) / DB_NAME
            if not self.path.is_file():
                raise no_store(self.path)
        else:
            self.path = ensure_dir(out_dir) / DB_NAME
        self._in_use = None if readonly else _hold(self.path.parent, exclusive=False)  # salvage waits for us
        try:
            self._open(readonly)
        except BaseException:
            if self._in_use is not None:
                self._in_use.close()
            raise

    def _open(self, readonly: bool) -> None:
        """Connect, switch to WAL and create the tables (a writer), and check the schema version."""
        try:
            self.conn = _connect(self.path, readonly=readonly)
            # WAL needs an exclusive moment; retry while another process creates (a reader leaves the mode alone)
            for attempt in range(0 if readonly else 50):
                try:
                    self.conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 49:
                        raise
                    time.sleep(0.05 * (1 + attempt % 5))
            if not readonly:
                self.conn.isolation_level = None  # explicit transactions in _create
                _create(self.conn)
                self.conn.isolation_level = ""  # Python's default: put() is one transaction
            row = self.conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc):
                raise DefbenchError(f"{self.path} is not a defbench store; use another --out") from None
            if "not a database" in str(exc):
                raise DefbenchError(
                    f"{self.path} is not a defbench store or is damaged ({exc}); use another "
                    f"--out, or {_FIX.format(out=self.path.parent)}"
                ) from None
            raise DefbenchError(_sqlite_line(self.path, exc)) from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = row[0] if row else "none"
            why = " (its cells are not keyed by the sha256 of their data and models)" if found == "1" else ""
            raise DefbenchError(
                f"{self.path} holds a store of schema version {found}{why}, this defbench writes "
                f"version {SCHEMA_VERSION}; use another --out or move that directory away"
            )

    def has(self, key: CellKey) -> bool:
        try:
            return self.conn.execute("SELECT 1 FROM cells WHERE key=?", (key.key,)).fetchone() is not None
        except sqlite3.DatabaseError as exc:
            raise DefbenchError(_sqlite_line(self.path, exc)) from None

    def put(self, key: CellKey, res: CellResult) -> None:
        n = len(res.labels)
        row = {
            "key": key.key,
            **{
                k: getattr(key, k)
                for k in ("dataset", "classifier", "defense", "defense_hash", "attack", "attack_hash", "threat", "seed")
            },
            "defense_config": json.dumps(res.defense_config, sort_keys=True, default=str),
            "attack_config": json.dumps(res.attack_config, sort_keys=True, default=str),
            "n": n,
            "correct": int(metrics.correct(res.preds, res.labels).sum()),
            "correct_undefended": int(metrics.correct(res.preds_undefended, res.labels).sum()),
            "labels": json.dumps(res.labels),
            "preds": json.dumps(res.preds),
            "preds_undefended": json.dumps(res.preds_undefended),
            "scores": json.dumps([round(float(s), 6) for s in res.scores]),
            "indices": json.dumps(res.indices),
            "wall_seconds": res.wall_seconds,
            "device": res.device,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "defbench_version": __version__,
            "extra": json.dumps(res.extra, sort_keys=True, default=str),
        }
        cols = ", ".join(row)
        try:
            with self.conn:  # one transaction: the cell is there whole or not at all
                # a cell another process stored meanwhile (same key: same inputs) is kept, not written twice
                self.conn.execute(
                    f"INSERT OR IGNORE INTO cells ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
                )
        except sqlite3.DatabaseError as exc:
            raise DefbenchError(_sqlite_line(self.path, exc)) from None

    def rows(self, **where: Any) -> Iterator[dict[str, Any]]:
        sql = "SELECT * FROM cells"
        if where:
            sql += " WHERE " + " AND ".join(f"{k}=?" for k in where)
        try:
            cur = self.conn.execute(sql, tuple(where.values()))
            names = [d[0] for d in cur.description]
            for r in cur:
                d = dict(zip(names, r, strict=True))
                try:
                    for k in JSON_COLUMNS:
                        d[k] = json.loads(d[k])
                except (TypeError, ValueError):
                    raise DefbenchError(
                        f"{self.path}: cell {d.get('key')} is broken (its {k} is not JSON); "
                        + _FIX.format(out=self.path.parent)
                    ) from None
                yield d
        except sqlite3.DatabaseError as exc:
            raise DefbenchError(_sqlite_line(self.path, exc)) from None

    def put_failure(self, key: CellKey, label: str, message: str) -> None:
        """Record that the cell ``key`` failed (e.g. a plugin attack crashed on a batch); the cell itself stays
        absent, so the next run tries it again. ``failures()`` lists them."""
        try:
            with self.conn:
                self.conn.execute(_FAILURES_TABLE)
                self.conn.execute(
                    "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                    (key.key, label, message, time.strftime("%Y-%m-%dT%H:%M:%S")),
                )
        except sqlite3.DatabaseError as exc:
            raise DefbenchError(_sqlite_line(self.path, exc)) from None

    def failures(self) -> list[dict[str, Any]]:
        """Failed cells not stored since: key, label, message, created_at."""
        try:
            if self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='failures'").fetchone() is None:
                return []
            cur = self.conn.execute(
                "SELECT f.key, f.label, f.message, f.created_at FROM failures f WHERE NOT "
                "EXISTS (SELECT 1 FROM cells c WHERE c.key = f.key) ORDER BY f.created_at"
            )
            return [dict(zip(("key", "label", "message", "created_at"), r, strict=True)) for r in cur]
        except sqlite3.DatabaseError as exc:
            raise DefbenchError(_sqlite_line(self.path, exc)) from None

    def count(self) -> int:
        try:
            return self.conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise DefbenchError(_sqlite_line(self.path, exc)) from None

    def close(self) -> None:
        self.conn.close()
        if self._in_use is not None:
            self._in_use.close()  # releases the shared lock
            self._in_use = None


# ------------------------------------------------------------------------------ check and salvage
_KEY_FIELDS = ("dataset", "classifier", "defense", "defense_hash", "attack", "attack_hash", "threat", "seed")
_COLUMN_NAMES = tuple(c.split()[0] for c in _COLUMNS.replace("\n", " ").split(",") if c.strip())


def row_problem(d: dict[str, Any]) -> str | None:
    """Why a raw ``cells`` row (column -> stored value) is not an intact cell, or None when it is: a missing
    column, JSON that does not parse, per-image lists (detection scores included) of the wrong length, a
    ``correct`` or ``correct_undefended`` count that does not match its predictions, or a key that is not the
    hash of its key fields (a flipped byte)."""
    missing = [c for c in _COLUMN_NAMES if d.get(c) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        j = {k: json.loads(d[k]) for k in JSON_COLUMNS}
    except (TypeError, ValueError):
        return "a JSON column does not parse"
    n = d["n"]
    lists = ("labels", "preds", "preds_undefended", "scores", "indices")
    if not isinstance(n, int) or any(not isinstance(j[k], list) or len(j[k]) != n for k in lists):
        return f"per-image lists do not all hold n={n} entries"
    try:
        if d["correct"] != int(metrics.correct(j["preds"], j["labels"]).sum()):
            return "its correct count does not match its predictions"
        if d["correct_undefended"] != int(metrics.correct(j["preds_undefended"], j["labels"]).sum()):
            return "its correct_undefended count does not match its undefended predictions"
        key = CellKey(*(d[k] for k in _KEY_FIELDS)).key
    except (TypeError, ValueError):
        return "a field of the wrong type"
    if key != d["key"]:
        return "its key does not match its fields"
    return None


def _readable_rows(conn: sqlite3.Connection, errors: list[str]) -> Iterator[dict[str, Any]]:
    """Every ``cells`` row that can still be read, in rowid order; a damaged region of the table is skipped
    (probing past it with growing steps) and noted in ``errors``."""
    last, lo, hi = -(2**63), -(2**63), 2**62
    for _ in range(10_000):
        try:
            cur = conn.execute("SELECT rowid, * FROM cells WHERE rowid > ? ORDER BY rowid", (last,))
            names = [c[0] for c in cur.description]
            for r in cur:
                last = r[0]
                yield dict(zip(names[1:], r[1:], strict=True))
            return
        except sqlite3.DatabaseError as exc:
            errors.append(f"unreadable rows after rowid {last if last > lo else 0}: {exc}")
        step, nxt = 1, None
        while last + step < hi:
            try:
                found = conn.execute(
                    "SELECT rowid FROM cells WHERE rowid > ? ORDER BY rowid LIMIT 1", (last + step,)
                ).fetchone()
                if found is None:
                    return
                nxt = found[0]
                break
            except sqlite3.DatabaseError:
                step *= 2
        if nxt is None:
            return
        last = nxt - 1


@dataclass
class StoreCheck:
    path: Path
    intact: list[dict[str, Any]] = field(default_factory=list)  # raw rows of the intact cells
    broken: list[str] = field(default_factory=list)  # "key: why" per broken row
    errors: list[str] = field(default_factory=list)  # file-level damage (unreadable pages, ...)
    failed: list[str] = field(default_factory=list)  # "label: message" per failed cell without a result (no damage)

    @property
    def ok(self) -> bool:
        return not self.broken and not self.errors

    def summary(self) -> str:
        s = f"{self.path}: {len(self.intact)} intact cell(s)"
        if self.broken:
            s += f", {len(self.broken)} broken row(s) ({'; '.join(self.broken[:3])}{'; ...' if len(self.broken) > 3 else ''})"  # noqa: E501
        if self.errors:
            s += f", damage: {'; '.join(self.errors[:2])}"
        s += "" if self.ok else f"; 'defbench store salvage {self.path.parent}' keeps the intact cells"
        if self.failed:
            s += (
                f"; {len(self.failed)} cell(s) failed and hold no result, the next run retries them ("
                + "; ".join(self.failed[:3])
                + ("; ..." if len(self.failed) > 3 else "")
                + ")"
            )
        return s


def check_store(out_dir: str | Path) -> StoreCheck:
    """Read every cell of ``<out_dir>/defbench.sqlite`` that can be read and sort them into intact and broken;
    never writes the store. A file that is no store at all is a DefbenchError."""
    path = Path(out_dir) / DB_NAME
    if not path.is_file():
        raise no_store(path)
    res = StoreCheck(path)
    conn, copy = _open_for_reading(path, res.errors)
    if conn is None:
        return res
    try:
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = (
                conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone() if "meta" in tables else None
            )
        except sqlite3.DatabaseError as exc:
            res.errors.append(f"the file is not a readable SQLite database ({exc})")
            return res
        if "cells" not in tables:
            res.errors.append("it has no cells table")
            return res
        if version is not None and version[0] != str(SCHEMA_VERSION):
            raise DefbenchError(
                f"{path} holds a store of schema version {version[0]}, this defbench reads version "
                f"{SCHEMA_VERSION}; nothing to check or salvage"
            )
        try:
            for e in conn.execute("PRAGMA integrity_check(20)"):
                if e[0] != "ok":
                    res.errors.append(f"integrity: {e[0]}")
        except sqlite3.DatabaseError as exc:
            res.errors.append(f"integrity check failed ({exc})")
        seen = set()
        for d in _readable_rows(conn, res.errors):
            why = row_problem(d)
            if why is None and d["key"] in seen:
                why = "a second copy of its key"
            if why is None:
                seen.add(d["key"])
                res.intact.append(d)
            else:
                res.broken.append(f"{d.get('key')}: {why}")
        if "failures" in tables:  # recorded failures, not damage: said, the exit status stays the cells'
            try:
                for key, label, message in conn.execute("SELECT key, label, message FROM failures ORDER BY key"):
                    if key not in seen:
                        res.failed.append(f"{label}: {' '.join(str(message).split())[:200]}")
            except sqlite3.DatabaseError as exc:
                res.errors.append(f"the record of failed cells is unreadable ({exc})")
    finally:
        conn.close()
        if copy is not None:
            copy.unlink(missing_ok=True)
    return res


def _open_for_reading(path: Path, errors: list[str]) -> tuple[sqlite3.Connection | None, Path | None]:
    """A connection that can read ``path``'s schema: the file itself (with its WAL), else a copy whose header
    is repaired (page count set to the pages the file still has, rollback mode): a truncated store's header
    still claims its old size, and SQLite then refuses the whole file. (connection, the copy to delete)."""
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise DefbenchError(_sqlite_line(path, exc)) from None
    try:
        conn.execute("SELECT name FROM sqlite_master").fetchall()
        return conn, None
    except sqlite3.DatabaseError as exc:
        first = exc
        conn.close()
    raw = bytearray(path.read_bytes())
    if len(raw) < 100 or not raw.startswith(b"SQLite format 3\x00"):
        errors.append(f"the file is not a readable SQLite database ({first})")
        return None, None
    page = int.from_bytes(raw[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1) or len(raw) < page:
        errors.append(f"the file is not a readable SQLite database ({first}; its header is damaged)")
        return None, None
    raw[28:32] = (len(raw) // page).to_bytes(4, "big")
    raw[18] = raw[19] = 1
    copy = path.parent / f".{path.name}.read-{os.getpid()}"
    copy.write_bytes(bytes(raw[: len(raw) // page * page]))
    try:
        conn = sqlite3.connect(str(copy))
        conn.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        copy.unlink(missing_ok=True)
        errors.append(f"the file is not a readable SQLite database ({first}; {exc})")
        return None, None
    errors.append(f"the file is damaged ({first}; {len(raw)} bytes, {len(raw) // page} whole pages: truncated?)")
    return conn, copy


def salvage_store(out_dir: str | Path) -> tuple[StoreCheck, Path | None]:
    """Rebuild ``<out_dir>/defbench.sqlite`` from its intact cells. The damaged file (with its -wal and -shm)
    is kept beside it as ``defbench.sqlite.damaged-<time>``; a store with nothing wrong is left as it is
    (returns None for the backup). The next run recomputes exactly the cells that were dropped. Refused while
    a process writes the store (:data:`IN_USE`), whose cells would go into the file moved away."""
    out = Path(out_dir)
    if not (out / DB_NAME).is_file():
        raise no_store(out / DB_NAME)
    hold = _hold(out, exclusive=True)  # from the read on: a cell a run wrote meanwhile would be lost
    try:
        chk = check_store(out)
        return chk, (None if chk.ok else _rebuild(out, chk.path, chk))
    finally:
        if hold is not None:
            hold.close()


def _rebuild(out: Path, path: Path, chk: StoreCheck) -> Path:
    """The store rebuilt from ``chk``'s intact cells; returns where the damaged file went."""
    tmp = out / f".{DB_NAME}.salvage-{os.getpid()}"
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(str(tmp))
        conn.isolation_level = None
        _create(conn)
        with conn:
            conn.execute("BEGIN")
            for d in chk.intact:
                conn.execute(
                    f"INSERT OR IGNORE INTO cells ({', '.join(_COLUMN_NAMES)}) VALUES "
                    f"({', '.join('?' * len(_COLUMN_NAMES))})",
                    tuple(d[c] for c in _COLUMN_NAMES),
                )
            failures = _readable_failures(path)  # which cells failed, and why: kept while they hold no result
            if failures:
                conn.execute(_FAILURES_TABLE)
                conn.executemany("INSERT OR IGNORE INTO failures VALUES (?, ?, ?, ?)", failures)
            conn.execute("COMMIT")
        conn.close()
        backup = out / f"{DB_NAME}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        os.replace(path, backup)
        for suffix in ("-wal", "-shm"):  # a stale WAL must never be applied to the rebuilt file
            side = Path(f"{path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{backup}{suffix}"))
        os.replace(tmp, path)
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise DefbenchError(_sqlite_line(tmp, exc)) from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DefbenchError(f"cannot salvage {path}: {os_error_line(exc)}") from None
    return backup
