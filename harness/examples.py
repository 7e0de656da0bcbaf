"""Example images of a cell, for the HTML report's grids (``defbench report OUT --html``).

The runner saves the first k images (default :data:`DEFAULT_K` = 4) of each cell it computes: the clean image
``x``, the input the defense saw ``x_in`` (the adversarial example; ``x`` itself in a clean cell) and its
purification ``x_hat``, with the labels and the bare classifier's predictions on ``x`` and ``x_in`` and the
defended prediction on ``x_hat``. One file per cell, ``<out>/examples/<cell key>.pt`` (the store's ``key``
column): a dict of CPU tensors written by :func:`torch.save` to a unique temporary name and moved into place
with :func:`os.replace`, so a reader never sees half a file and concurrent writers never clobber each other's
temporary file. Read it back with :func:`load_examples` (``weights_only=True``).

Images are stored as float16 (k x C x H x W, in [0, 1]): about 25 KB per MNIST cell, 3.6 MB per
ImageNet (224 x 224 RGB) cell at k = 4. Stores made before this module have no example files; the report says so.
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch

#: images saved per cell
DEFAULT_K = 4
#: folder of the example files inside a run's output dir
EXAMPLES_DIR = "examples"
#: format of the example files (a key of the saved dict)
FORMAT_VERSION = 1
_IMAGES = ("x", "x_in", "x_hat")
_VECTORS = ("labels", "indices", "pred_clean", "pred_in", "pred_hat")


def examples_path(out_dir: str | Path, key: str) -> Path:
    """Where the examples of the cell with store key ``key`` live."""
    return Path(out_dir) / EXAMPLES_DIR / f"{key}.pt"


def _predict(classifier, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return classifier(x).argmax(1).cpu()


def examples_blob(classifier, x, x_in, x_hat, labels, indices=None, k: int = DEFAULT_K) -> dict[str, Any]:
    """The dict of CPU tensors saved for a cell: its first k images (fewer in a smaller cell) and predictions.

    ``pred_clean`` / ``pred_in``: the bare classifier on ``x`` / ``x_in``; ``pred_hat``: on ``x_hat``, i.e. the
    defended model's prediction for the purification shown (for a randomized defense, that one purification)."""
    k = min(int(k), len(x))
    xs = [t[:k].detach() for t in (x, x_in, x_hat)]
    blob: dict[str, Any] = {
        name: t.float().clamp(0, 1).cpu().to(torch.float16) for name, t in zip(_IMAGES, xs, strict=True)
    }
    blob["labels"] = torch.as_tensor(labels[:k]).detach().cpu().long()
    idx = torch.as_tensor(list(indices[:k]) if indices is not None else range(k)).long()
    blob["indices"] = idx
    blob["pred_clean"], blob["pred_in"], blob["pred_hat"] = (_predict(classifier, t) for t in xs)
    blob["format"] = torch.tensor(FORMAT_VERSION)
    return blob


def write_examples(path: str | Path, blob: dict[str, Any]) -> Path:
    """``torch.save`` ``blob`` to ``path`` atomically: a unique temporary file beside it, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def cell_examples(runner, idx, x, x_in, x_hat, y, k: int | None = None) -> dict[str, Any] | None:
    """The example blob of a cell of ``runner`` (a :class:`~defbench.harness.matrix.MatrixRunner`) from its first
    batch, or None when saving is off (``runner.examples_k``, default :data:`DEFAULT_K`; 0 turns it off). Computed
    where the cell runs; written by the process that writes the store (:func:`save_examples_blob`)."""
    k = getattr(runner, "examples_k", DEFAULT_K) if k is None else k
    if not k or k < 1:
        return None
    indices = [int(i) for i in list(idx)[:k]]
    return examples_blob(runner.classifier, x, x_in, x_hat, y, indices, k)


def save_examples_blob(out_dir: str | Path, key, blob: dict[str, Any]) -> Path | None:
    """Write a cell's example blob under its store key. A failure to write is a warning, never a lost cell."""
    try:
        return write_examples(examples_path(out_dir, getattr(key, "key", key)), blob)
    except (OSError, RuntimeError) as exc:
        warnings.warn(f"could not save the example images of cell {getattr(key, 'key', key)}: {exc}", stacklevel=2)
        return None


def load_examples(out_dir: str | Path, key: str) -> dict[str, torch.Tensor] | None:
    """The saved examples of cell ``key``, or None when there is no (readable, well-formed) file."""
    path = examples_path(out_dir, key)
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 -- a damaged file only costs the report its grid
        return None
    if not isinstance(blob, dict) or any(not isinstance(blob.get(n), torch.Tensor) for n in _IMAGES + _VECTORS):
        return None
    n = len(blob["x"])
    if any(blob[n_].shape != blob["x"].shape for n_ in _IMAGES) or any(len(blob[v]) != n for v in _VECTORS):
        return None
    return blob
