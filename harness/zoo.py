"""Model zoo: checkpoints in ``$DEFBENCH_HOME/zoo`` (default ``~/.cache/defbench/zoo``), never in the repo.

Each model is ``<id>.pt`` (a plain state dict, loaded with ``torch.load(weights_only=True)``) beside
``<id>.json``, its manifest: kind, dataset, architecture, training config (seed included), metrics, the
sha256 of the .pt file, and the defbench version. Loading verifies the sha256 before unpickling anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from defbench import DefbenchError, __version__
from defbench.harness.data import home_dir

KINDS = ("classifier", "gan", "encoder")


def zoo_dir() -> Path:
    return home_dir() / "zoo"


def model_id(kind: str, dataset: str, preset: str, tag: str = "") -> str:
    """The zoo id, e.g. ``gan-fmnist-paper`` or ``gan-fmnist-paper-sub80-s1``."""
    return "-".join(p for p in (kind, dataset, preset, tag) if p)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Entry:
    id: str
    manifest: dict[str, Any]
    path: Path


def save(mid: str, state: dict[str, Any], manifest: dict[str, Any]) -> Entry:
    """Write the state dict and its manifest atomically (temp file + rename); returns the entry."""
    d = zoo_dir()
    d.mkdir(parents=True, exist_ok=True)
    pt, js = d / f"{mid}.pt", d / f"{mid}.json"
    tmp = d / f".{mid}.pt.tmp"
    torch.save(state, tmp)
    manifest = dict(manifest, id=mid, sha256=sha256_file(tmp), defbench_version=__version__,
                    saved_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    os.replace(tmp, pt)
    tmpj = d / f".{mid}.json.tmp"
    tmpj.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmpj, js)
    return Entry(mid, manifest, pt)


def build_hint(mid: str) -> str:
    m = manifest_or_none(mid) or {}
    kind, dataset, preset = (mid.split("-") + ["", "", ""])[:3]
    kind, dataset, preset = m.get("kind", kind), m.get("dataset", dataset), m.get("preset", preset)
    tag = mid[len(f"{kind}-{dataset}-{preset}"):].lstrip("-")
    flags = ""
    if tag:
        from defbench.harness.models import tag_flags

        flags = " " + tag_flags(tag)
    return f"defbench train {kind} --dataset {dataset} --preset {preset}{flags} --force"


def manifest_or_none(mid: str) -> dict[str, Any] | None:
    js = zoo_dir() / f"{mid}.json"
    if not js.is_file():
        return None
    try:
        return json.loads(js.read_text())
    except (OSError, ValueError):
        return None


def exists(mid: str) -> bool:
    return (zoo_dir() / f"{mid}.pt").is_file() and (zoo_dir() / f"{mid}.json").is_file()


def load(mid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, manifest) of model ``mid``; a missing, corrupted or foreign file -> DefbenchError."""
    pt, js = zoo_dir() / f"{mid}.pt", zoo_dir() / f"{mid}.json"
    if not pt.is_file() or not js.is_file():
        raise DefbenchError(f"model {mid} is not in the zoo ({zoo_dir()}); build it with: {build_hint(mid)}")
    try:
        manifest = json.loads(js.read_text())
        expected = manifest["sha256"]
    except (ValueError, KeyError, OSError):
        raise DefbenchError(f"manifest {js} is unreadable; rebuild with: {build_hint(mid)}") from None
    actual = sha256_file(pt)
    if actual != expected:
        raise DefbenchError(f"checkpoint {pt} fails its sha256 check (corrupted or altered); rebuild with: "
                            f"{build_hint(mid)}")
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DefbenchError(f"{pt} is not a defbench checkpoint ({type(exc).__name__}); rebuild with: "
                            f"{build_hint(mid)}") from None
    if not isinstance(state, dict):
        raise DefbenchError(f"{pt} is not a defbench checkpoint (no state dict); rebuild with: {build_hint(mid)}")
    return state, manifest


def entries() -> list[Entry]:
    out = []
    d = zoo_dir()
    if not d.is_dir():
        return out
    for js in sorted(d.glob("*.json")):
        try:
            m = json.loads(js.read_text())
        except ValueError:
            m = {"id": js.stem, "error": "unreadable manifest"}
        out.append(Entry(js.stem, m, d / f"{js.stem}.pt"))
    return out
