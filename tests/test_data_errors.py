"""Bad dataset files and data roots (issue 16, data): each case is one DefbenchError line naming the path and what
is wrong; an explicit data root is never replaced by the user cache or a download. Every case is built from small
files written here (or copies of ../shared/data where a real file is needed)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from defbench import DefbenchError
from defbench.harness import data as D

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """No test here may reach the network or the session's cache: a download attempt fails the test."""

    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(D, "_download", refuse)
    monkeypatch.setattr(D, "DEBIAN_FMNIST", tmp_path / "no-debian")
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))


def write_idx(path: Path, arr: np.ndarray, magic: int, extra: bytes = b"", cut: int = 0) -> Path:
    """An IDX file (gzipped when the name ends .gz); ``cut`` drops that many bytes from the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    body += arr.astype(np.uint8).tobytes() + extra
    body = body[: len(body) - cut]
    path.write_bytes(gzip.compress(body) if path.suffix == ".gz" else body)
    return path


def idx_root(root: Path, folder: str = "FashionMNIST/raw", n: int = 5, labels=None, shape=(28, 28)) -> Path:
    raw = root / folder
    imgs = np.random.RandomState(0).randint(0, 256, (n, *shape))
    write_idx(raw / T10K[0], imgs, 2051)
    write_idx(raw / T10K[1], np.arange(n) % 10 if labels is None else np.asarray(labels), 2049)
    return raw


def error(name: str, root, split: str = "test") -> str:
    """The one-line message of loading ``name`` from ``root``."""
    with pytest.raises(DefbenchError) as exc:
        D.load_dataset(name, split, root)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def need_shared(*rel: str) -> None:
    if not all((SHARED / r).is_file() for r in rel):
        pytest.skip("needs ../shared/data")


# ------------------------------------------------------------------------------------------- IDX files


def test_missing_partner_file(tmp_path):
    raw = idx_root(tmp_path)
    (raw / T10K[1]).unlink()
    msg = error("fmnist", tmp_path)
    assert f"{raw / 't10k-labels-idx1-ubyte'}[.gz] is missing" in msg and str(raw / T10K[0]) in msg


def test_empty_files(tmp_path):
    raw = idx_root(tmp_path)
    (raw / T10K[0]).write_bytes(b"")
    assert error("fmnist", tmp_path) == f"{raw / T10K[0]} is empty (0 bytes)"
    (raw / T10K[0]).write_bytes(gzip.compress(b""))
    assert error("fmnist", tmp_path) == f"{raw / T10K[0]} is empty (a gzip file of 0 bytes of data)"


def test_truncated_idx_header_says_more(tmp_path):
    raw = idx_root(tmp_path)
    write_idx(raw / T10K[0], np.zeros((5, 28, 28)), 2051, cut=2 * 784)
    msg = error("fmnist", tmp_path)
    assert msg == (
        f"{raw / T10K[0]} is truncated: its header says 5 images of 28x28 (3920 bytes of data), the file holds 2352"
    )
    write_idx(raw / T10K[0], np.zeros((5, 28, 28)), 2051, cut=3920 + 6)  # cut inside the header
    assert "is truncated inside its header (10 bytes, the header has 16)" in error("fmnist", tmp_path)
    write_idx(raw / T10K[0], np.zeros((5, 28, 28)), 2051, extra=b"\0" * 7)
    assert "is corrupt: its header says 5 images of 28x28 (3920 bytes of data) but 7 more bytes follow" in error(
        "fmnist", tmp_path
    )


def test_truncated_real_gzip_file(tmp_path):
    need_shared("FashionMNIST/raw/" + T10K[0])
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in T10K:
        shutil.copyfile(SHARED / "FashionMNIST" / "raw" / f, raw / f)
    data = (raw / T10K[0]).read_bytes()
    (raw / T10K[0]).write_bytes(data[: len(data) * 2 // 3])
    msg = error("fmnist", tmp_path)
    assert msg.startswith(f"{raw / T10K[0]} is truncated: its gzip stream ends early"), msg
    # the same file decompressed and cut: the header's count is the evidence
    (raw / T10K[0]).unlink()
    body = gzip.decompress(data)
    (raw / "t10k-images-idx3-ubyte").write_bytes(body[: len(body) // 2])
    msg = error("fmnist", tmp_path)
    assert msg == (
        f"{raw / 't10k-images-idx3-ubyte'} is truncated: its header says 10000 images of 28x28 (7840000 bytes of "
        "data), the file holds 3919992"
    )


def test_corrupt_gzip_and_garbage(tmp_path):
    raw = idx_root(tmp_path)
    (raw / T10K[0]).write_bytes(b"this is not gzip at all")
    assert error("fmnist", tmp_path).startswith(f"{raw / T10K[0]} is not a valid gzip file or is corrupt")
    good = gzip.compress(np.random.RandomState(1).bytes(20000))
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    (raw / T10K[0]).write_bytes(bytes(bad))
    msg = error("fmnist", tmp_path)
    assert msg.startswith(str(raw / T10K[0])) and ("corrupt" in msg or "truncated" in msg), msg


def test_bad_magic_and_wrong_dims(tmp_path):
    raw = idx_root(tmp_path)
    write_idx(raw / T10K[0], np.zeros((5, 28, 28)), 0x12345678)
    assert error("fmnist", tmp_path) == (
        f"{raw / T10K[0]} is not an unsigned-byte IDX file: magic number 0x12345678 (expected 2051 = 0x00000803 for "
        "images); the file is corrupt or of another format"
    )
    write_idx(raw / T10K[0], np.arange(5), 2049)  # a labels file where the images belong
    assert error("fmnist", tmp_path) == (
        f"{raw / T10K[0]} is an IDX label file (magic number 2049), expected images (magic number 2051 = "
        "0x00000803 for images)"
    )
    write_idx(raw / T10K[0], np.zeros((5, 784)), 0x802)
    assert "is an IDX file of 2 dimensions (magic number 2050)" in error("fmnist", tmp_path)
    idx_root(tmp_path, shape=(32, 32))
    assert error("fmnist", tmp_path) == f"{raw / T10K[0]} holds images of 32x32, expected 28x28 for Fashion-MNIST"


def test_count_mismatch_and_labels_out_of_range(tmp_path):
    raw = idx_root(tmp_path, labels=[0, 1, 2, 3])
    assert error("fmnist", tmp_path) == f"{raw / T10K[0]} holds 5 images but {raw / T10K[1]} holds 4 labels"
    idx_root(tmp_path, labels=[0, 1, 2, 12, 255])
    assert error("fmnist", tmp_path) == (
        f"{raw / T10K[1]} has labels outside 0-9: 12 at index 3 (2 such labels); the file is corrupt or not "
        "Fashion-MNIST's"
    )
    write_idx(raw / T10K[0], np.zeros((0, 28, 28)), 2051)
    write_idx(raw / T10K[1], np.zeros(0), 2049)
    assert error("fmnist", tmp_path) == f"{raw / T10K[0]} holds no images (its header says 0)"


# --------------------------------------------------------------------------------- another dataset


def test_mnist_files_where_fashion_mnist_is_asked(tmp_path):
    """Official files are recognised by a fingerprint (header + first 100 images; all of a label file)."""
    need_shared(*("MNIST/raw/" + f for f in T10K))
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in T10K:
        shutil.copyfile(SHARED / "MNIST" / "raw" / f, raw / f)
    assert error("fmnist", tmp_path) == (
        f"{raw / T10K[0]} holds the official MNIST test images (its header and first 100 images match), not the "
        "Fashion-MNIST test images; point the data root at a folder with FashionMNIST/raw/ holding the "
        "Fashion-MNIST files"
    )
    # the Debian layout (files directly in the root) pointed at MNIST's folder
    msg = error("fmnist", SHARED / "MNIST" / "raw")
    assert msg.startswith(f"{SHARED / 'MNIST' / 'raw' / T10K[0]} holds the official MNIST test images")


def test_train_labels_where_test_labels_belong(tmp_path):
    need_shared("FashionMNIST/raw/" + T10K[0], "FashionMNIST/raw/train-labels-idx1-ubyte.gz")
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    shutil.copyfile(SHARED / "FashionMNIST" / "raw" / T10K[0], raw / T10K[0])
    shutil.copyfile(SHARED / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte.gz", raw / T10K[1])
    assert error("fmnist", tmp_path).startswith(
        f"{raw / T10K[1]} holds the official Fashion-MNIST train labels (its sha256 matches), not the "
        "Fashion-MNIST test labels"
    )


def test_torchvision_folder_of_the_other_dataset(tmp_path):
    """Files that are not the official ones, in torchvision's MNIST folder, asked for as Fashion-MNIST."""
    raw = idx_root(tmp_path, folder="MNIST/raw")
    assert error("fmnist", raw) == (
        f"{raw} is torchvision's MNIST folder (MNIST), not FashionMNIST: its files are not the official "
        "Fashion-MNIST ones; point the data root at a folder with FashionMNIST/raw/"
    )
    assert len(D.load_dataset("mnist", "test", raw)) == 5  # the same files asked for as MNIST


def test_explicit_root_holding_another_dataset(tmp_path):
    idx_root(tmp_path, folder="MNIST/raw")
    (tmp_path / "notes.txt").write_text("x")
    assert error("fmnist", tmp_path) == (
        f"--data-root {tmp_path} does not hold Fashion-MNIST test data: expected <root>/FashionMNIST/raw/ with "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (or uncompressed); it holds MNIST/ (MNIST), "
        "notes.txt; an explicit data root is the only one searched (no user cache, no download)"
    )
    msg = error("cifar10", tmp_path, "train")
    assert msg.startswith(f"--data-root {tmp_path} does not hold CIFAR-10 train data") and "MNIST/ (MNIST)" in msg


# ------------------------------------------------------------------------------------------ roots


def test_typo_in_data_root_while_the_cache_holds_data(tmp_path, monkeypatch):
    idx_root(tmp_path / "home" / "data")  # the user cache holds Fashion-MNIST
    monkeypatch.delenv("DEFBENCH_DATA", raising=False)
    assert len(D.load_dataset("fmnist", "test")) == 5  # no explicit root: the cache, silently
    typo = tmp_path / "shared" / "dta"
    assert error("fmnist", typo) == (
        f"--data-root {typo} does not exist; fix the path (an explicit data root is never replaced by the user "
        "cache or a download)"
    )
    monkeypatch.setenv("DEFBENCH_DATA", str(typo))
    assert error("fmnist", None).startswith(f"DEFBENCH_DATA={typo} does not exist")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEFBENCH_DATA", "dta")
    assert error("fmnist", None).startswith(f"DEFBENCH_DATA=dta ({tmp_path / 'dta'}) does not exist")
    (tmp_path / "empty").mkdir()
    assert "; it is empty; an explicit data root is the only one searched" in error("fmnist", tmp_path / "empty")


def test_root_that_is_a_file_or_empty(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    assert error("fmnist", tmp_path / "f") == f"--data-root {tmp_path / 'f'} is a file, not a directory"
    assert error("fmnist", "  ").startswith("--data-root '  ' is empty")
    monkeypatch.setenv("DEFBENCH_DATA", "")  # set to nothing: as if unset (the cache; nothing there, no download)
    with pytest.raises(DefbenchError, match="fmnist test data not found; expected"):
        D.load_dataset("fmnist", "test", download=False)


def test_broken_file_in_the_download_cache_says_how_to_refetch(tmp_path, monkeypatch):
    raw = idx_root(tmp_path / "home" / "data")
    monkeypatch.delenv("DEFBENCH_DATA", raising=False)
    (raw / T10K[1]).write_bytes(b"")
    assert error("fmnist", None) == (
        f"{raw / T10K[1]} is empty (0 bytes); it is in the download cache {tmp_path / 'home' / 'data'}: delete what "
        "is named to download again"
    )


# ------------------------------------------------------------------------------------------- CIFAR-10


def jpeg(size=32, value=40) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def cifar_zip(root: Path, entries: dict[str, bytes] | None = None, drop=()) -> Path:
    zpath = root / "CIFAR10-jpeg" / "cifar10-jpeg.zip"
    zpath.parent.mkdir(parents=True, exist_ok=True)
    if entries is None:
        entries = {f"test/{c}/{i:04d}.jpg": jpeg(value=30 * i) for c in ("airplane", "truck") for i in range(3)}
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        for n, b in entries.items():
            if n not in drop:
                zf.writestr(n, b)
    return zpath


def test_cifar_zip_missing_image(tmp_path):
    z = cifar_zip(tmp_path, drop=("test/truck/0001.jpg",))
    assert error("cifar10", tmp_path) == (
        f"{z}: image test/truck/0001.jpg is missing (test/truck numbers its images up to 0002 but holds 2; 1 missing)"
    )
    z = cifar_zip(tmp_path, drop=("test/truck/0002.jpg",))  # the last one: the class is short
    assert error("cifar10", tmp_path) == (
        f"{z}: test/truck holds 2 images, other classes up to 3; CIFAR-10 has the same number in every class, "
        "so images are missing"
    )


def test_cifar_zip_corrupt_image(tmp_path):
    entries = {f"test/airplane/{i:04d}.jpg": jpeg() for i in range(2)}
    z = cifar_zip(tmp_path, {**entries, "test/airplane/0001.jpg": b"\xff\xd8 not really a jpeg"})
    msg = error("cifar10", tmp_path)
    assert msg.startswith(f"{z}: image test/airplane/0001.jpg is not a readable JPEG ("), msg
    z = cifar_zip(tmp_path, {**entries, "test/airplane/0001.jpg": jpeg(size=64)})
    assert error("cifar10", tmp_path) == f"{z}: image test/airplane/0001.jpg is 64x64, expected 32x32"
    # a flipped byte inside a stored image: the zip's CRC catches it
    z = cifar_zip(tmp_path, entries)
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("test/airplane/0001.jpg")
    data[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF
    z.write_bytes(bytes(data))
    msg = error("cifar10", tmp_path)
    assert msg.startswith(f"{z}: image test/airplane/0001.jpg is corrupt in the zip (Bad CRC-32"), msg


def test_cifar_zip_bad_index(tmp_path):
    """The zip's index (central directory, at its end) cut off or damaged; an empty zip file."""
    z = cifar_zip(tmp_path)
    data = z.read_bytes()
    z.write_bytes(data[: len(data) * 2 // 3])
    assert error("cifar10", tmp_path) == (
        f"{z} is not a readable zip file (File is not a zip file): truncated or corrupt (its index, the central "
        "directory at the end of the file, is missing or damaged)"
    )
    z.write_bytes(b"")
    assert error("cifar10", tmp_path) == f"{z} is empty (0 bytes)"


def test_cifar_zip_of_something_else(tmp_path):
    z = cifar_zip(tmp_path, {"train/airplane/0000.jpg": jpeg(), "README.md": b"x"})
    assert error("cifar10", tmp_path) == (
        f"{z} holds no test/<class>/*.jpg images (it holds README.md, train/); not the CIFAR-10 JPEG copy"
    )
    z = cifar_zip(tmp_path, {"test/zebra/0000.jpg": jpeg()})
    assert error("cifar10", tmp_path).startswith(f"{z}: unexpected entry 'test/zebra/0000.jpg'")


def test_cifar_damaged_decoded_cache_is_decoded_again(tmp_path, capsys):
    cifar_zip(tmp_path)
    first = D.load_dataset("cifar10", "test", tmp_path)
    (cache,) = (tmp_path / "home" / "data-cache").glob("cifar10-jpeg-test-*.npz")
    capsys.readouterr()
    written = cache.stat().st_mtime_ns
    intact = D.load_dataset("cifar10", "test", tmp_path)  # an intact cache is read (not rewritten), silently
    assert capsys.readouterr().err == "" and intact.sha256() == first.sha256()
    assert cache.stat().st_mtime_ns == written
    cache.write_bytes(cache.read_bytes()[:200])
    again = D.load_dataset("cifar10", "test", tmp_path)
    err = capsys.readouterr().err
    assert err.startswith(f"defbench: warning: decoded cache {cache} is unreadable (") and err.count("\n") == 1
    assert first.sha256() == again.sha256()
    # a readable npz of the wrong shapes (another version's layout, say) is refused the same way
    np.savez(cache, images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.zeros(2, np.int64))
    third = D.load_dataset("cifar10", "test", tmp_path)
    err = capsys.readouterr().err
    assert "is unreadable (ValueError: shapes (2, 32, 32, 3) and (2,))" in err and err.count("\n") == 1
    assert third.sha256() == first.sha256()


def cifar_batch(path: Path, n: int = 4, labels=None, data=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    d = {
        "data": np.zeros((n, 3072), np.uint8) if data is None else data,
        "labels": list(range(n)) if labels is None else labels,
    }
    path.write_bytes(pickle.dumps(d))


def test_cifar_official_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    cifar_batch(folder / "test_batch")
    assert len(D.load_dataset("cifar10", "test", tmp_path)) == 4
    assert error("cifar10", tmp_path, "train") == (
        f"{folder / 'data_batch_1'} is missing (the official CIFAR-10 layout has data_batch_1..5 and test_batch)"
    )
    data = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(data[: len(data) // 2])
    msg = error("cifar10", tmp_path)
    assert msg.startswith(f"{folder / 'test_batch'} is not a CIFAR-10 python batch: it does not unpickle (")
    cifar_batch(folder / "test_batch", data=np.zeros((4, 784), np.uint8))
    assert error("cifar10", tmp_path) == (
        f"{folder / 'test_batch'} holds data of shape (4, 784), expected (N, 3072): not CIFAR-10"
    )
    cifar_batch(folder / "test_batch", labels=[0, 1, 2, 10])
    assert error("cifar10", tmp_path) == f"{folder / 'test_batch'} has labels outside 0-9 (min 0, max 10)"
    cifar_batch(folder / "test_batch", labels=[0, 1, 2])
    assert error("cifar10", tmp_path) == f"{folder / 'test_batch'} holds 4 images but 3 labels"


# ------------------------------------------------------------------------------------------- ImageNet


def imagenet_root(root: Path, synsets: bytes | None = None) -> Path:
    from PIL import Image

    wnids = [f"n{i:08d}" for i in range(1000)]
    val = root / "imagenet" / "val"
    for w in (wnids[3], wnids[997]):
        (val / w).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(val / w / "a.JPEG")
    listing = "".join(f"{w} name\n" for w in wnids).encode() if synsets is None else synsets
    (root / "imagenet" / "LOC_synset_mapping.txt").write_bytes(listing)
    return root / "imagenet" / "LOC_synset_mapping.txt"


def test_imagenet_bad_synset_list(tmp_path):
    good = [f"n{i:08d} name" for i in range(1000)]
    syn = imagenet_root(tmp_path, "\n".join(good[:999]).encode())
    assert error("imagenet", tmp_path, "val") == f"synset list {syn} has 999 entries, expected 1000"
    imagenet_root(tmp_path, "\n".join(good[:5] + ["n00000001 again"] + good[6:]).encode())
    assert error("imagenet", tmp_path, "val") == f"synset list {syn} names n00000001 twice (lines 2 and 6)"
    imagenet_root(tmp_path, "\n".join(["wnid,name"] + good).encode())
    msg = error("imagenet", tmp_path, "val")
    assert msg == f"synset list {syn} line 1: 'wnid,name' is not a WordNet id (nXXXXXXXX)"
    imagenet_root(tmp_path, b"\xff\xfe" + "\n".join(good).encode("utf-16-le"))
    assert error("imagenet", tmp_path, "val") == f"synset list {syn} is not UTF-8 text (byte 0)"
    imagenet_root(tmp_path, b"")
    assert error("imagenet", tmp_path, "val") == f"synset list {syn} has 0 entries, expected 1000"


def test_imagenet_corrupt_image_and_empty_classes(tmp_path):
    imagenet_root(tmp_path)
    ds = D.load_dataset("imagenet", "val", tmp_path)
    bad = Path(ds.paths[1])
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DefbenchError) as exc:
        ds.get([1])
    assert str(exc.value).startswith(f"{bad} is not a readable image (") and "\n" not in str(exc.value)
    for p in ds.paths:
        Path(p).unlink()
    assert error("imagenet", tmp_path, "val") == (
        f"{tmp_path / 'imagenet' / 'val'} has 2 class folders but no .JPEG/.jpg/.png images in them"
    )


# --------------------------------------------------------------------------------------- silent cases


def test_correct_roots_load_silently(tmp_path, capsys):
    need_shared(*("FashionMNIST/raw/" + f for f in T10K), *("MNIST/raw/" + f for f in T10K))
    cifar_zip(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm = D.load_dataset("fmnist", "test", SHARED)
        mn = D.load_dataset("mnist", "test", SHARED)
        small = D.load_dataset("mnist", "test", idx_root(tmp_path / "r", folder="MNIST/raw").parent.parent)
        cf = D.load_dataset("cifar10", "test", tmp_path)
    assert capsys.readouterr().err == ""
    assert fm.labels[:3].tolist() == [9, 2, 1] and mn.labels[:3].tolist() == [7, 2, 1]
    assert len(small) == 5 and len(cf) == 6


# -------------------------------------------------------------------------------------------- the CLI


def test_cli_typo_in_data_root_is_one_line_exit_2(tmp_path, capsys):
    from defbench.cli import main

    idx_root(tmp_path / "home" / "data")  # the cache holds data: it must not be used
    typo = tmp_path / "shard" / "data"
    out = tmp_path / "out"
    argv = ["matrix", "--defense", "none", "--attacks", "fgsm", "--n", "2", "--data-root", str(typo)]
    rc = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err == (
        f"defbench: error: --data-root {typo} does not exist; fix the path (an explicit data root is never "
        "replaced by the user cache or a download)\n"
    )
    assert not out.exists()


def test_cli_subprocess_bad_file(tmp_path):
    """A real process: a truncated file in the data root gives one stderr line, exit 2, nothing written."""
    raw = idx_root(tmp_path / "data")
    write_idx(raw / T10K[0], np.zeros((5, 28, 28)), 2051, cut=100)
    env = {**os.environ, "DEFBENCH_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    env.pop("DEFBENCH_DEBUG", None)
    argv = ["matrix", "--defense", "none", "--attacks", "fgsm", "--n", "2", "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-m", "defbench", *argv, "--data-root", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"defbench: error: {raw / T10K[0]} is truncated: its header says 5 images of 28x28 (3920 bytes of data), "
        "the file holds 3820\n"
    )
    assert not (tmp_path / "out").exists()
