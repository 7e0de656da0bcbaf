"""One loader for Fashion-MNIST, MNIST, CIFAR-10 and ImageNet.

Images come out as float tensors in [0, 1], shape (N, C, H, W); normalisation lives inside the classifier
wrapper, so every epsilon in defbench is in pixel units.

Data root resolution, in order:
  1. the ``root`` argument (``--data-root``) or the ``DEFBENCH_DATA`` environment variable;
  2. the user cache dir (``$DEFBENCH_HOME/data``, default ``~/.cache/defbench/data``);
  3. for Fashion-MNIST only, ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``);
  4. a torchvision download into the user cache dir.
Nothing is ever written into a data root that was found (it may be read-only); decoded caches go to the
user cache dir.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from defbench import DefbenchError

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")

#: canonical name -> accepted aliases
ALIASES = {
    "fmnist": ("fmnist", "fashion-mnist", "fashionmnist", "fashion_mnist"),
    "mnist": ("mnist",),
    "cifar10": ("cifar10", "cifar-10", "cifar"),
    "imagenet": ("imagenet", "imagenet-val", "ilsvrc2012"),
}
DATASETS = tuple(ALIASES)

#: image shape (C, H, W) and number of classes
SHAPES = {"fmnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32), "imagenet": (3, 224, 224)}
NUM_CLASSES = {"fmnist": 10, "mnist": 10, "cifar10": 10, "imagenet": 1000}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TV_FOLDER = {"fmnist": "FashionMNIST", "mnist": "MNIST"}


def canonical_name(name: str) -> str:
    """Map a user-given dataset name to its canonical form, or raise a one-line error listing the choices."""
    key = name.strip().lower()
    for canon, aliases in ALIASES.items():
        if key in aliases:
            return canon
    raise DefbenchError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


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


# ----------------------------------------------------------------------------------------------- IDX


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte
        raise DefbenchError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DefbenchError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


def _find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    found = []
    for stem in _IDX_FILES[split]:
        for cand in (folder / (stem + ".gz"), folder / stem):
            if cand.is_file():
                found.append(cand)
                break
        else:
            return None
    return found[0], found[1]


def _idx_candidates(name: str, root: Path) -> list[Path]:
    tv = _TV_FOLDER[name]
    return [root / tv / "raw", root / tv, root]


def _load_idx_dataset(name: str, split: str, roots: list[Path]) -> ImageData | None:
    for root in roots:
        for folder in _idx_candidates(name, root):
            pair = _find_idx_pair(folder, split)
            if pair:
                images = read_idx(pair[0])
                labels = read_idx(pair[1])
                if images.shape[0] != labels.shape[0]:
                    raise DefbenchError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
                x = torch.from_numpy(images.copy()).unsqueeze(1)
                return ImageData(name, split, torch.from_numpy(labels.astype(np.int64)), str(folder), images=x)
    return None


# ------------------------------------------------------------------------------------------- CIFAR


def _load_cifar_official(folder: Path, split: str) -> ImageData:
    import pickle

    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for f in files:
        with open(folder / f, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(d["labels"])
    return ImageData(
        "cifar10", split, torch.tensor(ys, dtype=torch.long), str(folder), images=torch.from_numpy(np.concatenate(xs))
    )


def _load_cifar_jpeg_zip(zpath: Path, split: str) -> ImageData:
    """Decode the JPEG ImageFolder zip once; the decoded arrays are cached in the user cache dir."""
    from PIL import Image

    st = zpath.stat()
    key = hashlib.sha256(f"{zpath.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:16]
    cache = home_dir() / "data-cache" / f"cifar10-jpeg-{split}-{key}.npz"
    if cache.is_file():
        with np.load(cache) as npz:
            images, labels = npz["images"], npz["labels"]
    else:
        imgs, labs = [], []
        with zipfile.ZipFile(zpath) as zf:
            names = sorted(n for n in zf.namelist() if n.startswith(split + "/") and n.lower().endswith(".jpg"))
            for n in names:
                cls = n.split("/")[1]
                if cls not in CIFAR10_CLASSES:
                    raise DefbenchError(f"{zpath}: unexpected class folder {cls!r}")
                with Image.open(io.BytesIO(zf.read(n))) as im:
                    imgs.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
                labs.append(CIFAR10_CLASSES.index(cls))
        images, labels = np.stack(imgs), np.asarray(labs, dtype=np.int64)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        os.replace(tmp, cache)
    return ImageData(
        "cifar10",
        split,
        torch.from_numpy(labels),
        str(zpath),
        images=torch.from_numpy(images),
        note="JPEG-compressed CIFAR-10 copy (quality ~75), not the lossless original",
    )


def _load_cifar(split: str, roots: list[Path]) -> ImageData | None:
    for root in roots:
        for folder in (root / "cifar-10-batches-py", root / "CIFAR10" / "cifar-10-batches-py"):
            if (folder / "test_batch").is_file():
                return _load_cifar_official(folder, split)
        for zpath in (root / "CIFAR10-jpeg" / "cifar10-jpeg.zip", root / "cifar10-jpeg.zip"):
            if zpath.is_file():
                return _load_cifar_jpeg_zip(zpath, split)
    return None


# ---------------------------------------------------------------------------------------- ImageNet

IMAGENET_SYNSET_FILES = ("LOC_synset_mapping.txt", "synsets.txt", "imagenet_synsets.txt")


def imagenet_transform(path: str) -> torch.Tensor:
    """The standard evaluation transform: resize 256, centre crop 224, to [0, 1] (no normalisation)."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    with Image.open(path) as im:
        im = im.convert("RGB")
        im = TF.resize(im, 256)
        im = TF.center_crop(im, 224)
        return TF.to_tensor(im)


def _load_imagenet(split: str, roots: list[Path]) -> ImageData | None:
    """ImageNet validation set in ImageFolder layout (``<root>/imagenet/val/<wnid>/*.JPEG``).

    The class index is the standard one: the 1000 WordNet ids sorted. With all 1000 folders present the
    folder order is that index; with fewer, a synset list (``LOC_synset_mapping.txt`` or ``synsets.txt``,
    one wnid first on each line, 1000 lines) must sit beside the split folder.
    """
    if split != "val" and split != "test":
        split_dir = split
    else:
        split_dir = "val"
    for root in roots:
        for folder in (root / "imagenet" / split_dir, root / "ImageNet" / split_dir, root / split_dir):
            if not folder.is_dir():
                continue
            classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
            if not classes:
                continue
            wnids = None
            for cand in IMAGENET_SYNSET_FILES:
                for p in (folder / cand, folder.parent / cand):
                    if p.is_file():
                        wnids = [ln.split()[0] for ln in p.read_text().splitlines() if ln.strip()]
                        break
                if wnids:
                    break
            if wnids is None:
                if len(classes) != 1000:
                    raise DefbenchError(
                        f"{folder} has {len(classes)} class folders, not 1000; put the standard synset list "
                        f"({IMAGENET_SYNSET_FILES[0]}: 1000 lines 'nXXXXXXXX name') beside it"
                    )
                wnids = classes
            if len(wnids) != 1000:
                raise DefbenchError(f"synset list beside {folder} has {len(wnids)} entries, expected 1000")
            index = {w: i for i, w in enumerate(wnids)}
            paths, labels = [], []
            for c in classes:
                if c not in index:
                    raise DefbenchError(f"{folder}: class folder {c!r} is not in the standard 1000-class index")
                for f in sorted((folder / c).iterdir()):
                    if f.suffix.lower() in (".jpeg", ".jpg", ".png"):
                        paths.append(str(f))
                        labels.append(index[c])
            return ImageData(
                "imagenet",
                "val",
                torch.tensor(labels, dtype=torch.long),
                str(folder),
                paths=tuple(paths),
                _load_path=imagenet_transform,
            )
    return None


# ----------------------------------------------------------------------------------------- entry


def candidate_roots(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    roots: list[Path] = []
    explicit = root if root is not None else os.environ.get("DEFBENCH_DATA")
    if explicit:
        roots.append(Path(explicit).expanduser())
    roots.append(home_dir() / "data")
    if name == "fmnist":
        roots.append(DEBIAN_FMNIST)
    return roots


def _expected_files(name: str) -> str:
    if name in _TV_FOLDER:
        files = ", ".join(f + ".gz" for pair in _IDX_FILES.values() for f in pair)
        return f"<root>/{_TV_FOLDER[name]}/raw/ with {files}"
    if name == "cifar10":
        return "<root>/cifar-10-batches-py/ (official) or <root>/CIFAR10-jpeg/cifar10-jpeg.zip"
    return "<root>/imagenet/val/<wnid>/*.JPEG (ImageFolder layout) plus LOC_synset_mapping.txt if < 1000 classes"


def _download(name: str, split: str, target: Path) -> None:
    import torchvision

    target.mkdir(parents=True, exist_ok=True)
    train = split == "train"
    if name == "fmnist":
        torchvision.datasets.FashionMNIST(str(target), train=train, download=True)
    elif name == "mnist":
        torchvision.datasets.MNIST(str(target), train=train, download=True)
    elif name == "cifar10":
        torchvision.datasets.CIFAR10(str(target), train=train, download=True)


def load_dataset(
    name: str, split: str = "test", root: str | os.PathLike | None = None, download: bool = True
) -> ImageData:
    """Load ``split`` ('train' or 'test'; ImageNet: 'val') of dataset ``name`` as an :class:`ImageData`."""
    name = canonical_name(name)
    if split not in ("train", "test", "val"):
        raise DefbenchError(f"unknown split {split!r}; choose train, test or val")
    if name != "imagenet" and split == "val":
        split = "test"
    roots = candidate_roots(name, root)

    def attempt() -> ImageData | None:
        if name in _TV_FOLDER:
            return _load_idx_dataset(name, split, roots)
        if name == "cifar10":
            return _load_cifar(split, roots)
        return _load_imagenet(split, roots)

    data = attempt()
    if data is None and download and name != "imagenet":
        try:
            _download(name, split, home_dir() / "data")
        except Exception as exc:  # offline, or the mirror refused: fall through to the clear message
            reason = f" (download failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        else:
            reason = ""
            data = attempt()
    else:
        reason = ""
    if data is None:
        searched = ", ".join(str(r) for r in roots)
        raise DefbenchError(
            f"{name} {split} data not found{reason}; expected {_expected_files(name)}; searched {searched}; "
            f"pass --data-root DIR or set DEFBENCH_DATA"
        )
    return data
