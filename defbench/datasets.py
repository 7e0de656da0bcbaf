"""Core: dataset names, image shapes and class counts, and the labelled image set every layer passes around
(:class:`ImageData`). Loading the files is the harness's job (:mod:`defbench.harness.data`); this module holds
only what classifiers, defenses and attacks need to know about data, and imports nothing of defbench but
:class:`~defbench.DefbenchError`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from defbench import DefbenchError

#: canonical name -> accepted aliases
ALIASES = {
    "fmnist": ("fmnist", "fashion-mnist", "fashionmnist", "fashion_mnist"),
    "mnist": ("mnist",),
    "cifar10": ("cifar10", "cifar-10", "cifar"),
    "imagenet": ("imagenet", "imagenet-val", "ilsvrc2012"),
}
DATASETS = tuple(ALIASES)

#: class names where a report or benchmark prints them (index = label)
CLASS_NAMES = {
    "fmnist": ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
#: image shape (C, H, W) and number of classes
SHAPES = {"fmnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32), "imagenet": (3, 224, 224)}
NUM_CLASSES = {"fmnist": 10, "mnist": 10, "cifar10": 10, "imagenet": 1000}
CIFAR10_CLASSES = CLASS_NAMES["cifar10"]
#: how the messages name a dataset
PRETTY = {"fmnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10", "imagenet": "ImageNet"}


def canonical_name(name: str) -> str:
    """Map a user-given dataset name to its canonical form, or raise a one-line error listing the choices."""
    key = name.strip().lower()
    for canon, aliases in ALIASES.items():
        if key in aliases:
            return canon
    raise DefbenchError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def class_names(dataset: str, classes: int = 10) -> tuple[str, ...]:
    """What a table prints for labels 0 .. classes − 1: the class names where the dataset has them (under any
    alias: ``fashion-mnist`` prints Fashion-MNIST's names), else the labels as digits."""
    names = CLASS_NAMES.get(canonical_name(dataset))
    return names[:classes] if names and classes <= len(names) else tuple(str(c) for c in range(classes))


def home_dir() -> Path:
    """defbench's cache dir: ``$DEFBENCH_HOME`` or ``~/.cache/defbench``."""
    env = os.environ.get("DEFBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "defbench"


@dataclass
class ImageData:
    """A labelled image set. ``images`` holds uint8 (N, C, H, W) for the small datasets; ImageNet loads
    lazily from ``paths``. ``source`` says where the data came from (shown beside every result)."""

    name: str
    split: str
    labels: torch.Tensor
    source: str
    images: torch.Tensor | None = None
    paths: Sequence[str] = field(default_factory=tuple)
    note: str = ""
    _load_path: Callable[[str], torch.Tensor] | None = None
    _sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def sha256(self) -> str:
        """The identity of the data, not of its path: a sha256 over the name, split, labels and image bytes
        (the decoded uint8 tensor of the small datasets; the bytes of every image file of a lazily loaded set,
        with per-file digests cached in the user cache dir by path, size and mtime). Computed once per
        instance. A store keys its cells by it, so a copy of the data elsewhere reuses them and a changed
        image recomputes them."""
        if self._sha256 is None:
            h = hashlib.sha256(f"{self.name}|{self.split}|{len(self)}|".encode())
            h.update(self.labels.to(torch.int64).contiguous().numpy().tobytes())
            if self.images is not None:
                h.update(str(tuple(self.images.shape)).encode())
                h.update(self.images.to(torch.uint8).contiguous().numpy().tobytes())
            else:
                for digest in _file_digests(self.paths):
                    h.update(bytes.fromhex(digest))
            self._sha256 = h.hexdigest()
        return self._sha256

    @property
    def shape(self) -> tuple[int, int, int]:
        return SHAPES[self.name]

    def get(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images in [0, 1] and int64 labels for the given indices."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.images is not None:
            x = self.images[idx].float().div_(255.0)
        else:
            assert self._load_path is not None
            x = torch.stack([self._load_path(self.paths[int(i)]) for i in idx])
        return x, self.labels[idx]

    def batches(
        self, batch_size: int, shuffle: bool = False, seed: int = 0, indices: Sequence[int] | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate over (x, y) batches; the order is fixed by ``seed`` when shuffling."""
        idx = torch.arange(len(self)) if indices is None else torch.as_tensor(indices)
        if shuffle:
            g = torch.Generator().manual_seed(seed)
            idx = idx[torch.randperm(len(idx), generator=g)]
        for start in range(0, len(idx), batch_size):
            yield self.get(idx[start : start + batch_size])

    def eval_indices(self, n: int, seed: int, stratified: bool = False) -> torch.Tensor:
        """The ``n`` seeded evaluation images used by every cell of a run (sorted for readability).
        ``stratified``: the same number from every class (n // classes each; the first n % classes classes of
        a seeded class order get one more), e.g. RIDE's ImageNet subset of 2 validation images per class."""
        if n > len(self):
            raise DefbenchError(f"--n {n} is larger than the {self.name} {self.split} set ({len(self)} images)")
        if n <= 0:
            raise DefbenchError(f"--n must be positive, got {n}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        if not stratified:
            return perm[:n].sort().values
        labels = self.labels[perm]
        classes = labels.unique()
        order = classes[torch.randperm(len(classes), generator=g)]
        picked = []
        for i, c in enumerate(order.tolist()):
            want = n // len(classes) + (1 if i < n % len(classes) else 0)
            have = perm[labels == c][:want]
            if len(have) < want:
                raise DefbenchError(
                    f"--n {n} needs {want} images of class {c}, the {self.name} {self.split} set has {len(have)}"
                )
            picked.append(have)
        return torch.cat(picked).sort().values


def _file_digests(paths: Sequence[str]) -> list[str]:
    """sha256 of each file's bytes, reusing ``$DEFBENCH_HOME/data-cache/file-sha256.json`` entries whose size
    and mtime still match (ImageNet's 50 000 files are read once, not once per run)."""
    import json

    cache_path = home_dir() / "data-cache" / "file-sha256.json"
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    except (OSError, ValueError):
        cache = {}
    out, changed = [], False
    for p in paths:
        st = os.stat(p)
        key = str(Path(p).resolve())
        hit = cache.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            out.append(hit[2])
            continue
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        cache[key] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
        out.append(cache[key][2])
        changed = True
    if changed:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
        except OSError:  # a read-only cache dir costs time, not correctness
            pass
    return out
