"""Results store: one SQLite database per output dir (``<out>/defbench.sqlite``), one row per cell.

A cell is (dataset, classifier, defense + config hash, attack + config hash, threat, seed). The defense
config holds what every cell of the run shares and its number depends on: ``data_sha256`` (the data itself,
not its path), ``model_sha256`` (classifier, G, D, encoder) and ``defbench_version``; the attack config holds
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
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from defbench import DefbenchError, __version__

#: 2: cells are keyed by the sha256 of their data and models and by the defbench version (issue 13); the
#: rows of a version-1 store cannot say which data and weights produced them, so they are never reused
SCHEMA_VERSION = 2
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
        return hashlib.sha256("|".join(map(str, (self.dataset, self.classifier, self.defense, self.defense_hash,
                                                 self.attack, self.attack_hash, self.threat, self.seed))).encode()
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


class Store:
    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=60)
            self.conn.execute("PRAGMA journal_mode=WAL")
            if fresh:
                with self.conn:
                    self.conn.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
                    self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    self.conn.execute("INSERT INTO meta VALUES ('defbench_version', ?)", (__version__,))
                    self.conn.execute(f"CREATE TABLE cells ({_COLUMNS})")
            row = self.conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DefbenchError(f"{self.path} is not a defbench store ({exc}); use another --out") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = row[0] if row else "none"
            why = " (its cells are not keyed by the sha256 of their data and models)" if found == "1" else ""
            raise DefbenchError(f"{self.path} holds a store of schema version {found}{why}, this defbench writes "
                                f"version {SCHEMA_VERSION}; use another --out or move that directory away")

    def has(self, key: CellKey) -> bool:
        return self.conn.execute("SELECT 1 FROM cells WHERE key=?", (key.key,)).fetchone() is not None

    def put(self, key: CellKey, res: CellResult) -> None:
        n = len(res.labels)
        row = {
            "key": key.key, **{k: getattr(key, k) for k in ("dataset", "classifier", "defense", "defense_hash",
                                                            "attack", "attack_hash", "threat", "seed")},
            "defense_config": json.dumps(res.defense_config, sort_keys=True, default=str),
            "attack_config": json.dumps(res.attack_config, sort_keys=True, default=str),
            "n": n, "correct": sum(int(p == y) for p, y in zip(res.preds, res.labels)),
            "correct_undefended": sum(int(p == y) for p, y in zip(res.preds_undefended, res.labels)),
            "labels": json.dumps(res.labels), "preds": json.dumps(res.preds),
            "preds_undefended": json.dumps(res.preds_undefended),
            "scores": json.dumps([round(float(s), 6) for s in res.scores]), "indices": json.dumps(res.indices),
            "wall_seconds": res.wall_seconds, "device": res.device,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "defbench_version": __version__,
            "extra": json.dumps(res.extra, sort_keys=True, default=str),
        }
        cols = ", ".join(row)
        with self.conn:  # one transaction: the cell is there whole or not at all
            self.conn.execute(f"INSERT OR REPLACE INTO cells ({cols}) VALUES ({', '.join('?' * len(row))})",
                              tuple(row.values()))

    def rows(self, **where: Any) -> Iterator[dict[str, Any]]:
        sql = "SELECT * FROM cells"
        if where:
            sql += " WHERE " + " AND ".join(f"{k}=?" for k in where)
        cur = self.conn.execute(sql, tuple(where.values()))
        names = [d[0] for d in cur.description]
        for r in cur:
            d = dict(zip(names, r))
            for k in ("defense_config", "attack_config", "labels", "preds", "preds_undefended", "scores",
                      "indices", "extra"):
                d[k] = json.loads(d[k])
            yield d

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]

    def close(self) -> None:
        self.conn.close()
