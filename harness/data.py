"""One loader for Fashion-MNIST, MNIST, CIFAR-10 and ImageNet.

Images come out as float tensors in [0, 1], shape (N, C, H, W); normalisation lives inside the classifier
wrapper, so every epsilon in defbench is in pixel units.

Data root resolution:
  * an explicit root, the ``root`` argument (``--data-root``) or else the ``DEFBENCH_DATA`` environment variable,
    is the only root searched: when it does not exist or does not hold the dataset, the error names it (never a
    fall back to the user cache or a download the user did not ask for);
  * without one, in order: the user cache dir (``$DEFBENCH_HOME/data``, default ``~/.cache/defbench/data``);
    for Fashion-MNIST only, ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``); a
    torchvision download into the user cache dir.
Nothing is ever written into a data root that was found (it may be read-only); decoded caches go to the
user cache dir. A dataset file that is there but missing its partner, empty, truncated, corrupt or another
dataset's file is a :class:`DefbenchError` naming the file and what is wrong with it (docs/RELIABILITY.md).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from defbench import DefbenchError
from defbench.datasets import (  # noqa: F401 -- the core's dataset types, re-exported where they always were
    ALIASES,
    CIFAR10_CLASSES,
    DATASETS,
    NUM_CLASSES,
    PRETTY,
    SHAPES,
    ImageData,
    canonical_name,
    home_dir,
)

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TV_FOLDER = {"fmnist": "FashionMNIST", "mnist": "MNIST"}
#: IDX magic numbers: 0x00 0x00, type 0x08 (unsigned byte), number of dimensions
_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
#: the official files are recognised by the sha256 of their first _FINGERPRINT_BYTES decompressed bytes (the
#: header and first 100 images of an image file; all of a label file), computed only when the decompressed size is
#: an official one, so a load costs no full-file hash. Values from ../shared/data (MNIST: byte-identical to the
#: official files, whose published MD5s they match; Fashion-MNIST: Debian's copy of the official files).
_FINGERPRINT_BYTES = 16 + 100 * 28 * 28
_OFFICIAL_SIZES = (47040016, 7840016, 60008, 10008)
_OFFICIAL = {
    "000ee7912b582b2487c03b53fd520c1c2ece322c5216f5409d5135dec348c327": ("fmnist", "train", "images"),
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9": ("fmnist", "train", "labels"),
    "92ac3c38a919b36c2c5939096c5221db8dce7c3ed242947cfc1d5748e01d94e8": ("fmnist", "test", "images"),
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34": ("fmnist", "test", "labels"),
    "3f4288d4dbf00675febf5b5ce7f090a37c99e46242a43a85710ab0140e72a5c4": ("mnist", "train", "images"),
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5": ("mnist", "train", "labels"),
    "abe442c64c6c46875c1fde359625d516d071ba05d79816f955d138350d0d945f": ("mnist", "test", "images"),
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2": ("mnist", "test", "labels"),
}
#: top-level names in a data root that say which dataset it holds (for the "does not hold" message)
_ROOT_NAMES = {
    "FashionMNIST": "fmnist",
    "fashion-mnist": "fmnist",
    "MNIST": "mnist",
    "cifar-10-batches-py": "cifar10",
    "CIFAR10": "cifar10",
    "CIFAR10-jpeg": "cifar10",
    "cifar10-jpeg.zip": "cifar10",
    "imagenet": "imagenet",
    "ImageNet": "imagenet",
}


# ----------------------------------------------------------------------------------------------- IDX


def _read_bytes(path: Path) -> bytes:
    """The whole (decompressed) content of a dataset file, or a one-line error naming it and what is wrong."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DefbenchError(f"{path} is missing") from None
    except OSError as exc:
        raise DefbenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise DefbenchError(f"{path} is empty (0 bytes)")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except gzip.BadGzipFile as exc:
        raise DefbenchError(f"{path} is not a valid gzip file or is corrupt ({exc})") from None
    except EOFError:
        raise DefbenchError(f"{path} is truncated: its gzip stream ends early (the file has {size} bytes)") from None
    except zlib.error as exc:
        raise DefbenchError(f"{path} is corrupt: its gzip data does not decompress ({exc})") from None
    except OSError as exc:
        raise DefbenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise DefbenchError(f"{path} is empty (a gzip file of 0 bytes of data)")
    return data


def _parse_idx(path: Path, data: bytes, kind: str | None = None) -> np.ndarray:
    """IDX bytes to an array; ``kind`` ('images' or 'labels') also checks the magic number of that kind."""
    want = f"{_IDX_MAGIC[kind]} = {_IDX_MAGIC[kind]:#010x} for {kind}" if kind else "0x000008NN"
    if len(data) < 4:
        raise DefbenchError(f"{path} is too short for an IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise DefbenchError(
            f"{path} is not an unsigned-byte IDX file: magic number {magic:#010x} (expected {want}); "
            "the file is corrupt or of another format"
        )
    if kind and magic != _IDX_MAGIC[kind]:
        other = {v: k for k, v in _IDX_MAGIC.items()}.get(magic)
        what = f"an IDX {other[:-1]} file" if other else f"an IDX file of {ndim} dimensions"
        raise DefbenchError(f"{path} is {what} (magic number {magic}), expected {kind} (magic number {want})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DefbenchError(f"{path} is truncated inside its header ({len(data)} bytes, the header has {header})")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    expected, have = int(np.prod(dims, dtype=np.int64)), len(data) - header
    if kind == "images" and ndim == 3:
        said = f"{dims[0]} images of {dims[1]}x{dims[2]}"
    elif kind == "labels":
        said = f"{dims[0]} labels"
    else:
        said = "dimensions " + " x ".join(map(str, dims))
    if have < expected:
        raise DefbenchError(
            f"{path} is truncated: its header says {said} ({expected} bytes of data), the file holds {have}"
        )
    if have > expected:
        raise DefbenchError(
            f"{path} is corrupt: its header says {said} ({expected} bytes of data) but {have - expected} more "
            "bytes follow"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, kind: str | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array; a missing, empty, truncated or corrupt file is a
    one-line :class:`DefbenchError` naming it. ``kind`` ('images' or 'labels') also checks its magic number."""
    path = Path(path)
    return _parse_idx(path, _read_bytes(path), kind)


def _official_identity(data: bytes) -> tuple[str, str, str] | None:
    """(dataset, split, kind) when ``data`` is (or begins as) one of the official MNIST / Fashion-MNIST files."""
    if len(data) not in _OFFICIAL_SIZES:
        return None
    return _OFFICIAL.get(hashlib.sha256(data[:_FINGERPRINT_BYTES]).hexdigest())


def _find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The split's (images, labels) files in ``folder``, gzipped or not; None when neither is there; an error
    naming the missing one when only one is."""
    found: list[Path | None] = []
    for stem in _IDX_FILES[split]:
        found.append(next((c for c in (folder / (stem + ".gz"), folder / stem) if c.is_file()), None))
    if found[0] is None and found[1] is None:
        return None
    for have, stem in ((found[0], _IDX_FILES[split][1]), (found[1], _IDX_FILES[split][0])):
        if have is not None and None in found:
            raise DefbenchError(f"{folder / stem}[.gz] is missing (its partner {have} is there)")
    return found[0], found[1]  # type: ignore[return-value]


def _idx_candidates(name: str, root: Path) -> list[Path]:
    tv = _TV_FOLDER[name]
    return [root / tv / "raw", root / tv, root]


def _check_idx_identity(name: str, split: str, kind: str, folder: Path, path: Path, data: bytes) -> None:
    """Refuse another dataset's (or split's) file: by the official files' fingerprints, else by torchvision's
    folder name (``MNIST/raw`` read as Fashion-MNIST)."""
    ident = _official_identity(data)
    if ident is not None:
        if ident != (name, split, kind):
            d, sp, k = ident
            how = "its sha256 matches" if k == "labels" else "its header and first 100 images match"
            raise DefbenchError(
                f"{path} holds the official {PRETTY[d]} {sp} {k} ({how}), not the {PRETTY[name]} {split} {kind}; "
                f"point the data root at a folder with {_TV_FOLDER[name]}/raw/ holding the {PRETTY[name]} files"
            )
        return
    tv = folder.parent.name if folder.name == "raw" else folder.name
    for other, other_tv in _TV_FOLDER.items():
        if other != name and tv == other_tv:
            raise DefbenchError(
                f"{folder} is torchvision's {other_tv} folder ({PRETTY[other]}), not {_TV_FOLDER[name]}: its files "
                f"are not the official {PRETTY[name]} ones; point the data root at a folder with "
                f"{_TV_FOLDER[name]}/raw/"
            )


def _load_idx_dataset(name: str, split: str, roots: list[Path]) -> ImageData | None:
    c, h, w = SHAPES[name]
    for root in roots:
        for folder in _idx_candidates(name, root):
            pair = _find_idx_pair(folder, split)
            if not pair:
                continue
            arrays = []
            for path, kind in zip(pair, ("images", "labels"), strict=True):
                data = _read_bytes(path)
                arr = _parse_idx(path, data, kind)
                _check_idx_identity(name, split, kind, folder, path, data)
                arrays.append(arr)
            images, labels = arrays
            if images.shape[1:] != (h, w):
                raise DefbenchError(
                    f"{pair[0]} holds images of {images.shape[1]}x{images.shape[2]}, expected {h}x{w} for "
                    f"{PRETTY[name]}"
                )
            if images.shape[0] == 0:
                raise DefbenchError(f"{pair[0]} holds no images (its header says 0)")
            if images.shape[0] != labels.shape[0]:
                raise DefbenchError(
                    f"{pair[0]} holds {images.shape[0]} images but {pair[1]} holds {labels.shape[0]} labels"
                )
            bad = np.flatnonzero(labels >= NUM_CLASSES[name])
            if bad.size:
                raise DefbenchError(
                    f"{pair[1]} has labels outside 0-{NUM_CLASSES[name] - 1}: {int(labels[bad[0]])} at index "
                    f"{int(bad[0])} ({bad.size} such labels); the file is corrupt or not {PRETTY[name]}'s"
                )
            x = torch.from_numpy(images.copy()).unsqueeze(1)
            return ImageData(name, split, torch.from_numpy(labels.astype(np.int64)), str(folder), images=x)
    return None


# ------------------------------------------------------------------------------------------- CIFAR


def _load_cifar_official(folder: Path, split: str) -> ImageData:
    import pickle

    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for f in files:
        path = folder / f
        if not path.is_file():
            raise DefbenchError(f"{path} is missing (the official CIFAR-10 layout has data_batch_1..5 and test_batch)")
        raw = _read_bytes(path)
        try:
            d = pickle.loads(raw, encoding="latin1")
        except Exception as exc:  # a cut or garbled pickle raises any of a dozen exception types
            raise DefbenchError(
                f"{path} is not a CIFAR-10 python batch: it does not unpickle ({type(exc).__name__}: {exc}); "
                "truncated or corrupt"
            ) from None
        try:
            x = np.asarray(d["data"], dtype=np.uint8)
            y = np.asarray(d["labels"], dtype=np.int64)
        except (TypeError, KeyError, IndexError, ValueError):
            raise DefbenchError(f"{path} is not a CIFAR-10 python batch (no 'data' and 'labels' entries)") from None
        if x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise DefbenchError(f"{path} holds data of shape {x.shape}, expected (N, 3072): not CIFAR-10")
        if y.shape != (x.shape[0],):
            raise DefbenchError(f"{path} holds {x.shape[0]} images but {y.size} labels")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DefbenchError(f"{path} has labels outside 0-9 (min {y.min()}, max {y.max()})")
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y)
    return ImageData(
        "cifar10", split, torch.from_numpy(np.concatenate(ys)), str(folder), images=torch.from_numpy(np.concatenate(xs))
    )


def _decode_cifar_zip(zpath: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``split/<class>/NNNN.jpg`` of the JPEG copy; a damaged zip, a corrupt or missing image is a one-line
    error naming the zip and the image."""
    from PIL import Image

    if zpath.stat().st_size == 0:
        raise DefbenchError(f"{zpath} is empty (0 bytes)")
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DefbenchError(
            f"{zpath} is not a readable zip file ({exc}): truncated or corrupt (its index, the central directory "
            "at the end of the file, is missing or damaged)"
        ) from None
    with zf:
        all_names = zf.namelist()
        names = sorted(n for n in all_names if n.startswith(split + "/") and n.lower().endswith(".jpg"))
        if not names:
            tops = sorted({n.split("/")[0] + ("/" if "/" in n else "") for n in all_names})
            held = ", ".join(tops[:8]) + (f" and {len(tops) - 8} more" if len(tops) > 8 else "") or "nothing"
            raise DefbenchError(
                f"{zpath} holds no {split}/<class>/*.jpg images (it holds {held}); not the CIFAR-10 JPEG copy"
            )
        by_class: dict[str, list[str]] = {}
        for n in names:
            parts = n.split("/")
            if len(parts) != 3 or parts[1] not in CIFAR10_CLASSES:
                raise DefbenchError(
                    f"{zpath}: unexpected entry {n!r} (expected {split}/<class>/NNNN.jpg with a class of "
                    f"{', '.join(CIFAR10_CLASSES)})"
                )
            by_class.setdefault(parts[1], []).append(parts[2])
        for cls, files in by_class.items():  # the copy numbers each class's images 0000, 0001, ...
            stems = [f.rsplit(".", 1)[0] for f in files]
            if all(st.isdigit() for st in stems):
                nums = {int(st) for st in stems}
                gaps = sorted(set(range(min(nums), max(nums) + 1)) - nums)
                if gaps:
                    width = len(stems[0])
                    raise DefbenchError(
                        f"{zpath}: image {split}/{cls}/{gaps[0]:0{width}d}.jpg is missing ({split}/{cls} numbers its "
                        f"images up to {max(nums):0{width}d} but holds {len(files)}; {len(gaps)} missing)"
                    )
        counts = {cls: len(files) for cls, files in by_class.items()}
        if len(set(counts.values())) > 1:  # CIFAR-10 is balanced: a short class lost images
            short = min(counts, key=counts.get)
            most = max(counts.values())
            raise DefbenchError(
                f"{zpath}: {split}/{short} holds {counts[short]} images, other classes up to {most}; CIFAR-10 has "
                "the same number in every class, so images are missing"
            )
        imgs, labs = [], []
        for n in names:
            try:
                raw = zf.read(n)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                raise DefbenchError(f"{zpath}: image {n} is corrupt in the zip ({exc})") from None
            try:
                with Image.open(io.BytesIO(raw)) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
            except (OSError, ValueError, SyntaxError) as exc:
                raise DefbenchError(f"{zpath}: image {n} is not a readable JPEG ({exc})") from None
            if arr.shape != (3, 32, 32):
                raise DefbenchError(f"{zpath}: image {n} is {arr.shape[2]}x{arr.shape[1]}, expected 32x32")
            imgs.append(arr)
            labs.append(CIFAR10_CLASSES.index(n.split("/")[1]))
    return np.stack(imgs), np.asarray(labs, dtype=np.int64)


def _load_cifar_jpeg_zip(zpath: Path, split: str) -> ImageData:
    """Decode the JPEG ImageFolder zip once; the decoded arrays are cached in the user cache dir (a damaged cache
    file is said on one line and decoded again)."""
    st = zpath.stat()
    key = hashlib.sha256(f"{zpath.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:16]
    cache = home_dir() / "data-cache" / f"cifar10-jpeg-{split}-{key}.npz"
    images = labels = None
    if cache.is_file():
        try:
            with np.load(cache) as npz:
                images, labels = npz["images"], npz["labels"]
            if images.ndim != 4 or images.shape[1:] != (3, 32, 32) or labels.shape != (images.shape[0],):
                raise ValueError(f"shapes {images.shape} and {labels.shape}")
        except Exception as exc:  # a cut npz raises BadZipFile, EOFError, ValueError, ...
            print(
                f"defbench: warning: decoded cache {cache} is unreadable ({type(exc).__name__}: {exc}); "
                f"decoding {zpath} again",
                file=sys.stderr,
            )
            images = labels = None
    if images is None or labels is None:
        images, labels = _decode_cifar_zip(zpath, split)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
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
            if folder.is_dir() and any((folder / f).is_file() for f in ("test_batch", "data_batch_1")):
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

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im = TF.resize(im, 256)
            im = TF.center_crop(im, 224)
            return TF.to_tensor(im)
    except FileNotFoundError:
        raise DefbenchError(f"{path} is missing (it was there when the folder was listed)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DefbenchError(f"{path} is not a readable image ({exc}): truncated or corrupt") from None


_WNID = re.compile(r"n\d{8}")


def _read_synsets(path: Path) -> list[str]:
    """The wnids of a synset list (one ``nXXXXXXXX [name]`` per line, 1000 lines), checked."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefbenchError(f"synset list {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DefbenchError(f"cannot read synset list {path}: {exc.strerror or exc}") from None
    wnids, seen = [], {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        w = line.split()[0]
        if not _WNID.fullmatch(w):
            raise DefbenchError(f"synset list {path} line {no}: {w[:40]!r} is not a WordNet id (nXXXXXXXX)")
        if w in seen:
            raise DefbenchError(f"synset list {path} names {w} twice (lines {seen[w]} and {no})")
        seen[w] = no
        wnids.append(w)
    if len(wnids) != 1000:
        raise DefbenchError(f"synset list {path} has {len(wnids)} entries, expected 1000")
    return wnids


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
            synsets = next(
                (p for cand in IMAGENET_SYNSET_FILES for p in (folder / cand, folder.parent / cand) if p.is_file()),
                None,
            )
            if synsets is not None:
                wnids = _read_synsets(synsets)
            else:
                if len(classes) != 1000:
                    raise DefbenchError(
                        f"{folder} has {len(classes)} class folders, not 1000; put the standard synset list "
                        f"({IMAGENET_SYNSET_FILES[0]}: 1000 lines 'nXXXXXXXX name') beside it"
                    )
                wnids = classes
            index = {w: i for i, w in enumerate(wnids)}
            paths, labels = [], []
            for c in classes:
                if c not in index:
                    raise DefbenchError(f"{folder}: class folder {c!r} is not in the standard 1000-class index")
                for f in sorted((folder / c).iterdir()):
                    if f.suffix.lower() in (".jpeg", ".jpg", ".png"):
                        paths.append(str(f))
                        labels.append(index[c])
            if not paths:
                raise DefbenchError(f"{folder} has {len(classes)} class folders but no .JPEG/.jpg/.png images in them")
            return ImageData(
                "imagenet",
                split_dir,
                torch.tensor(labels, dtype=torch.long),
                str(folder),
                paths=tuple(paths),
                _load_path=imagenet_transform,
            )
    return None


# ----------------------------------------------------------------------------------------- entry


def _explicit_root(root: str | os.PathLike | None) -> tuple[Path, str] | None:
    """The explicit data root (``root``, else ``$DEFBENCH_DATA``) and how to name it in a message; None when there
    is none. It must be an existing directory."""
    if root is not None:
        given, label = os.fspath(root), "--data-root {}"
    else:
        given, label = os.environ.get("DEFBENCH_DATA", ""), "DEFBENCH_DATA={}"
        if not given:  # unset or set to nothing: no explicit root
            return None
    if not str(given).strip():
        raise DefbenchError(f"{label.format(repr(given))} is empty; give a directory, or leave it out to use the cache")
    path = Path(given).expanduser()
    label = label.format(given)
    shown = "" if str(path) == str(path.absolute()) else f" ({path.absolute()})"
    if not path.exists():
        raise DefbenchError(
            f"{label}{shown} does not exist; fix the path (an explicit data root is never replaced by the user cache "
            "or a download)"
        )
    if not path.is_dir():
        raise DefbenchError(f"{label}{shown} is a file, not a directory")
    return path, label


def candidate_roots(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The roots searched for ``name``: the explicit one alone when given, else the user cache (and Debian's
    Fashion-MNIST dir)."""
    explicit = _explicit_root(root)
    if explicit is not None:
        return [explicit[0]]
    roots = [home_dir() / "data"]
    if name == "fmnist":
        roots.append(DEBIAN_FMNIST)
    return roots


def _describe_root(root: Path) -> str:
    """What a data root holds, for the message when it does not hold the dataset asked for."""
    try:
        entries = sorted(root.iterdir(), key=lambda e: e.name)
    except OSError as exc:
        return f"it cannot be listed ({exc.strerror or exc})"
    if not entries:
        return "it is empty"
    shown = []
    for e in entries[:10]:
        label = e.name + ("/" if e.is_dir() else "")
        ds = _ROOT_NAMES.get(e.name)
        if ds is None and e.name.startswith(("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")):
            ds = "an MNIST-like IDX file"
        shown.append(f"{label} ({PRETTY.get(ds, ds)})" if ds else label)
    more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
    return "it holds " + ", ".join(shown) + more


def _expected_files(name: str, split: str = "test") -> str:
    if name in _TV_FOLDER:
        files = " and ".join(f + ".gz" for f in _IDX_FILES["train" if split == "train" else "test"])
        return f"<root>/{_TV_FOLDER[name]}/raw/ with {files} (or uncompressed)"
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
    """Load ``split`` ('train' or 'test'; ImageNet: 'val') of dataset ``name`` as an :class:`ImageData`.

    ``root`` (else ``$DEFBENCH_DATA``) is the only root searched when given; without one the user cache, Debian's
    Fashion-MNIST dir and (``download``) a torchvision download. Every problem is a one-line :class:`DefbenchError`
    naming the path."""
    name = canonical_name(name)
    if split not in ("train", "test", "val"):
        raise DefbenchError(f"unknown split {split!r}; choose train, test or val")
    if name != "imagenet" and split == "val":
        split = "test"
    explicit = _explicit_root(root)
    roots = candidate_roots(name, root)

    def attempt() -> ImageData | None:
        if name in _TV_FOLDER:
            return _load_idx_dataset(name, split, roots)
        if name == "cifar10":
            return _load_cifar(split, roots)
        return _load_imagenet(split, roots)

    try:
        data = attempt()
    except DefbenchError as exc:
        cache = home_dir() / "data"
        if explicit is None and str(cache) in str(exc):  # e.g. a download cut short: say how to get it again
            raise DefbenchError(
                f"{exc}; it is in the download cache {cache}: delete what is named to download again"
            ) from None
        raise
    if data is None and explicit is not None:
        path, label = explicit
        raise DefbenchError(
            f"{label} does not hold {PRETTY[name]} {split} data: expected {_expected_files(name, split)}; "
            f"{_describe_root(path)}; an explicit data root is the only one searched (no user cache, no download)"
        )
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
            f"{name} {split} data not found{reason}; expected {_expected_files(name, split)}; searched {searched}; "
            f"pass --data-root DIR or set DEFBENCH_DATA"
        )
    return data
