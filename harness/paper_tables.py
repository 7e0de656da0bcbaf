"""The catalogue of paper specs: :data:`TABLES` by id (every paper's data module) and :func:`resolve`."""

from __future__ import annotations

from defbench import DefbenchError
from defbench.harness import paper_invgan, paper_mimicgan, paper_ride
from defbench.harness.paper_spec import PaperTable


def _all_tables() -> dict[str, PaperTable]:
    tables = [*paper_mimicgan.tables(), *paper_invgan.tables(), *paper_ride.tables()]
    order = sorted(tables, key=lambda t: t.id)
    return {t.id: t for t in order}


TABLES: dict[str, PaperTable] = _all_tables()


def resolve(name: str) -> list[PaperTable]:
    """A table by id, or a group by prefix (``invgan-table2`` = its MNIST and Fashion-MNIST parts)."""
    key = name.strip().lower()
    if key in TABLES:
        return [TABLES[key]]
    group = [t for tid, t in TABLES.items() if tid.startswith(key + "-")]
    if group:
        return group
    raise DefbenchError(f"unknown paper table {name!r}; choose one of: {', '.join(TABLES)} (see 'defbench paper list')")
