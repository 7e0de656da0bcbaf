"""Model zoo: checkpoints in ``$DEFBENCH_HOME/zoo`` (default ``~/.cache/defbench/zoo``), never in the repo.

Each model is ``<id>.pt`` (a plain state dict, loaded with ``torch.load(weights_only=True)``) beside
``<id>.json``, its manifest: kind, dataset, architecture, training config (seed included), metrics, the
sha256 of the .pt file, and the defbench version. Loading verifies the sha256 before unpickling anything,
and every refusal says why: not in the zoo, a manifest without its checkpoint or a checkpoint without its
manifest (never silently retrained over: ``--force`` retrains), an unreadable manifest, a hash mismatch
(truncated, bit-flipped or altered), code in the pickle, not a state dict. Two processes that need the same
model hold :func:`lock` while they check, train or load it: the second waits and reuses what the first
trained.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from defbench import DefbenchError, __version__
from defbench.datasets import home_dir
from defbench.harness.store import ensure_dir, os_error_line
from defbench.seeding import DEFAULT_SEED

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


def _tmp_name(d: Path, name: str) -> Path:
    """A fresh temporary file in ``d`` (unique per call, so concurrent writers never share one)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=d)
    os.close(fd)
    return Path(tmp)


def _zoo_dir_for_writing() -> Path:
    return ensure_dir(zoo_dir(), "the model zoo")


def save(mid: str, state: dict[str, Any], manifest: dict[str, Any]) -> Entry:
    """Write the state dict and its manifest atomically (unique temp files + rename); returns the entry."""
    d = _zoo_dir_for_writing()
    pt, js = d / f"{mid}.pt", d / f"{mid}.json"
    tmp = tmpj = None
    try:
        tmp = _tmp_name(d, f"{mid}.pt")
        # through a buffer: torch.save names the archive inside the file after the file, and the temporary
        # file's random name made the sha256 (part of every cell's key) differ for the same weights saved twice
        buf = io.BytesIO()
        torch.save(state, buf)
        tmp.write_bytes(buf.getvalue())
        manifest = dict(
            manifest,
            id=mid,
            sha256=sha256_file(tmp),
            defbench_version=__version__,
            saved_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        tmpj = _tmp_name(d, f"{mid}.json")
        tmpj.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(tmp, pt)
        os.replace(tmpj, js)
    except OSError as exc:
        raise DefbenchError(f"cannot save model {mid} in {d}: {os_error_line(exc).split(': ', 1)[-1]}") from None
    finally:
        for t in (tmp, tmpj):
            if t is not None and t.exists():
                t.unlink(missing_ok=True)
    return Entry(mid, manifest, pt)


_held = threading.local()


def writable() -> bool:
    """Whether this process can write the zoo (save a model, make a lock file): False for a zoo directory mounted
    read-only; a zoo not made yet is writable when it can be made."""
    d = zoo_dir()
    return not d.is_dir() or os.access(d, os.W_OK)


@contextlib.contextmanager
def lock(mid: str):
    """Hold the zoo's lock of model ``mid`` (``fcntl.flock`` on ``.<mid>.lock``): one process at a time checks,
    trains or loads it, so a second process waits for the first to finish training and then reuses the model.
    Re-entrant within a thread; a no-op where file locks are unavailable and in a zoo this process cannot write
    (loads only: their sha256 check stands in for the lock)."""
    held = getattr(_held, "ids", None)
    if held is None:
        held = _held.ids = {}
    if held.get(mid):
        held[mid] += 1
        try:
            yield
        finally:
            held[mid] -= 1
        return
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    if not writable():
        # a read-only zoo (a volume the workers of a cluster mount read-only): no lock file can be made, and no
        # process trains into it here; a load verifies the checkpoint's sha256, so a model replaced meanwhile is
        # refused, not read half-written
        held[mid] = 1
        try:
            yield
        finally:
            held.pop(mid, None)
        return
    d = _zoo_dir_for_writing()
    with open(d / f".{mid}.lock", "a+") as fh:  # closing it releases the lock
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                import sys

                print(
                    f"defbench: waiting for another process that trains or loads {mid} ...", file=sys.stderr, flush=True
                )
                fcntl.flock(fh, fcntl.LOCK_EX)
            held[mid] = 1
            yield
        finally:
            held.pop(mid, None)


# ----------------------------------------------------------------------------------- GAN replicas' tags
def gan_tag(subset_fraction: float = 1.0, seed: int = DEFAULT_SEED, holdout_class: int | None = None) -> str:
    """The tag of a GAN replica's zoo id: ``sub80-s1`` (80% subset, seed 1), ``s1`` (the whole training set, seed
    1; the default seed has no tag), ``no3`` (class 3 left out), or a combination such as ``s2-no3``. Every
    setting that changes the weights is in it, so two different models never share an id."""
    parts = []
    if subset_fraction < 1.0:
        parts.append(f"sub{int(round(subset_fraction * 100))}-s{seed}")
    elif seed != DEFAULT_SEED:
        parts.append(f"s{seed}")
    if holdout_class is not None:
        parts.append(f"no{holdout_class}")
    return "-".join(parts)


def parse_gan_tag(tag: str) -> dict:
    """Inverse of :func:`gan_tag`: ``'sub80-s1'`` -> subset_fraction 0.8, seed 1; ``'s2'`` -> seed 2; ``'no3'``
    -> holdout_class 3."""
    import re

    m = re.fullmatch(r"(?:sub(\d{1,2})-s(\d+)|s(\d+))(?:-no(\d+))?|no(\d+)", tag or "")
    if m is None:
        raise DefbenchError(
            f"GAN tag {tag!r} must look like sub80-s1 (80% subset, seed 1), s1 (seed 1), no3 (class 3 left out) "
            "or a combination such as sub80-s1-no3"
        )
    out: dict = {}
    if m.group(1):
        out.update(subset_fraction=int(m.group(1)) / 100, seed=int(m.group(2)))
    if m.group(3):
        if int(m.group(3)) == DEFAULT_SEED:
            raise DefbenchError(f"GAN tag {tag!r}: seed {DEFAULT_SEED} is the default and has no tag (drop s0)")
        out["seed"] = int(m.group(3))
    if m.group(4) or m.group(5):
        out["holdout_class"] = int(m.group(4) or m.group(5))
    return out


def tag_flags(tag: str) -> str:
    """The ``defbench train`` flags that build the GAN replica ``tag``."""
    kw = parse_gan_tag(tag)
    flags = []
    if "subset_fraction" in kw:
        flags.append(f"--subset-fraction {kw['subset_fraction']:g} --seed {kw['seed']}")
    elif "seed" in kw:
        flags.append(f"--seed {kw['seed']}")
    if "holdout_class" in kw:
        flags.append(f"--holdout-class {kw['holdout_class']}")
    return " ".join(flags)


def status(mid: str) -> str:
    """'complete' (checkpoint and manifest), 'missing' (neither), 'no-checkpoint' (a manifest whose .pt is
    gone) or 'no-manifest' (a .pt whose manifest is gone)."""
    pt, js = (zoo_dir() / f"{mid}.pt").is_file(), (zoo_dir() / f"{mid}.json").is_file()
    return {
        (True, True): "complete",
        (False, False): "missing",
        (False, True): "no-checkpoint",
        (True, False): "no-manifest",
    }[(pt, js)]


def half_message(mid: str) -> str | None:
    """The one-line report of a model that is half there (None when it is complete or missing): never silently
    retrained over, since the user may want to restore the missing half."""
    st = status(mid)
    if st == "no-checkpoint":
        return (
            f"model {mid}: the zoo holds its manifest {zoo_dir() / (mid + '.json')} but its checkpoint {mid}.pt "
            f"is gone; restore it, or retrain with: {build_hint(mid)}"
        )
    if st == "no-manifest":
        return (
            f"model {mid}: the zoo holds its checkpoint {zoo_dir() / (mid + '.pt')} but its manifest {mid}.json "
            f"is gone, so its sha256 cannot be verified; restore it, or retrain with: {build_hint(mid)}"
        )
    return None


def parse_id(mid: str, manifest: dict | None = None) -> tuple[str, str, str, str]:
    """Model id ``mid`` as (kind, dataset, preset, tag): ``gan-mnist-paper-no3`` -> ``('gan', 'mnist', 'paper',
    'no3')``. The manifest's ``kind``, ``dataset`` and ``preset`` come first (a dataset name may hold a hyphen);
    the id's first three fields fill in what it lacks. The tag is what follows ``kind-dataset-preset`` in the id,
    '' when the id does not start so."""
    m = manifest or {}
    from_id = (mid.split("-") + ["", "", ""])[:3]
    kind, dataset, preset = (m.get(k) or v for k, v in zip(("kind", "dataset", "preset"), from_id, strict=True))
    prefix = f"{kind}-{dataset}-{preset}"
    tag = mid[len(prefix) :].lstrip("-") if mid.startswith(prefix) else ""
    return kind, dataset, preset, tag


def build_hint(mid: str) -> str:
    kind, dataset, preset, tag = parse_id(mid, manifest_or_none(mid))
    flags = ""
    if tag:
        flags = " " + tag_flags(tag)
    return f"defbench train {kind} --dataset {dataset} --preset {preset}{flags} --force"


def malformed(manifest: Any) -> str | None:
    """Why ``manifest`` (parsed JSON) is not a manifest defbench wrote, or None: not an object, or a ``config``
    or ``metrics`` that is not one (read as objects everywhere: such a file is unreadable, not a crash)."""
    if not isinstance(manifest, dict):
        return f"not a JSON object but {json.dumps(manifest)[:40]}"
    bad = [k for k in ("config", "metrics") if k in manifest and not isinstance(manifest[k], dict)]
    return f"its {bad[0]!r} is {json.dumps(manifest[bad[0]])[:40]}, not an object" if bad else None


def manifest_or_none(mid: str, root: Path | None = None) -> dict[str, Any] | None:
    """Model ``mid``'s manifest in the zoo (or in the zoo folder ``root``), None when absent, unreadable or
    :func:`malformed`."""
    js = (zoo_dir() if root is None else Path(root)) / f"{mid}.json"
    if not js.is_file():
        return None
    try:
        m = json.loads(js.read_text())
    except (OSError, ValueError):
        return None
    return None if malformed(m) else m


def exists(mid: str) -> bool:
    return (zoo_dir() / f"{mid}.pt").is_file() and (zoo_dir() / f"{mid}.json").is_file()


def load(mid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, manifest) of model ``mid``; a missing, half-there, corrupted or foreign file -> a
    DefbenchError that gives the reason."""
    pt, js = zoo_dir() / f"{mid}.pt", zoo_dir() / f"{mid}.json"
    half = half_message(mid)
    if half:
        raise DefbenchError(half)
    if not pt.is_file() or not js.is_file():
        raise DefbenchError(f"model {mid} is not in the zoo ({zoo_dir()}); build it with: {build_hint(mid)}")
    hint = f"rebuild with: {build_hint(mid)}"
    try:
        manifest = json.loads(js.read_text())
    except json.JSONDecodeError as exc:
        raise DefbenchError(
            f"manifest {js} is unreadable (not JSON: {exc.msg} at line {exc.lineno}; truncated or altered); {hint}"
        ) from None
    except UnicodeDecodeError:
        raise DefbenchError(f"manifest {js} is unreadable (not UTF-8 text; corrupted); {hint}") from None
    except OSError as exc:
        raise DefbenchError(f"manifest {js} is unreadable ({os_error_line(exc).split(': ', 1)[-1]})") from None
    why = malformed(manifest)
    if why:
        raise DefbenchError(f"manifest {js} is unreadable ({why}; altered?); {hint}")
    expected = manifest.get("sha256")
    if not isinstance(expected, str) or len(expected) != 64:
        raise DefbenchError(f"manifest {js} is unreadable (it holds no sha256 of its checkpoint; altered?); {hint}")
    try:
        actual = sha256_file(pt)
    except OSError as exc:
        raise DefbenchError(f"checkpoint {pt} is unreadable ({os_error_line(exc).split(': ', 1)[-1]})") from None
    if actual != expected:
        raise DefbenchError(
            f"checkpoint {pt} fails its sha256 check (hash mismatch: the manifest says "
            f"{expected[:12]}..., the file is {actual[:12]}... in {pt.stat().st_size} bytes: "
            f"truncated, bit-flipped or altered); {hint}"
        )
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- whatever unpickling raises, the file is refused with its reason
        code = _foreign_globals(pt)
        if code or "Unsupported global" in str(exc):
            why = f"code in the pickle: it names {', '.join(code[:2]) or 'Python objects'} to call, refused unloaded"
        else:
            why = f"not a torch state dict file: {type(exc).__name__}"
        raise DefbenchError(f"{pt} is not a defbench checkpoint ({why}); {hint}") from None
    if not isinstance(state, dict):
        raise DefbenchError(
            f"{pt} is not a defbench checkpoint (not a state dict but a {type(state).__name__}); {hint}"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DefbenchError(
            f"{pt} is not a defbench checkpoint (not a state dict: entry {str(bad[0])[:40]!r} is "
            f"not a named tensor); {hint}"
        )
    return state, manifest


def _foreign_globals(pt: Path) -> list[str]:
    """The Python objects (other than torch's and collections.OrderedDict) that the pickle in ``pt`` (a plain
    pickle or torch's zip format) would import and call; read with pickletools, nothing is executed."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(pt):
            with zipfile.ZipFile(pt) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = pt.read_bytes()
        found, strings = [], []
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # noqa: BLE001 -- an unparsable stream: whatever names it held stay unknown
        found = found if "found" in locals() else []
    return [g for g in found if not (g.startswith("torch.") or g == "collections.OrderedDict")]


def entries() -> list[Entry]:
    out = []
    d = zoo_dir()
    if not d.is_dir():
        return out
    for js in sorted(d.glob("*.json")):
        try:
            m = json.loads(js.read_text())
        except (ValueError, OSError):
            m = {"id": js.stem, "error": "unreadable manifest"}
        if malformed(m):
            m = {"id": js.stem, "error": "unreadable manifest"}
        if not (d / f"{js.stem}.pt").is_file():
            m = {**m, "error": "checkpoint missing (manifest only)"}
        out.append(Entry(js.stem, m, d / f"{js.stem}.pt"))
    for pt in sorted(d.glob("*.pt")):
        if not (d / f"{pt.stem}.json").is_file():
            out.append(Entry(pt.stem, {"id": pt.stem, "error": "manifest missing (checkpoint only)"}, pt))
    return sorted(out, key=lambda e: e.id)
