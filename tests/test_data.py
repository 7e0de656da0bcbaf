import gzip
import zipfile
from io import BytesIO

import numpy as np
import pytest
import torch

from defbench import DefbenchError
from defbench.harness import data as D


def test_fmnist_checks_from_shared_readme(fmnist):
    train, test = fmnist
    assert len(train) == 60000 and len(test) == 10000
    assert train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    x, _ = train.get(range(60000))
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert abs(x.mean().item() - 0.2860) < 1e-3 and abs(x.std().item() - 0.3530) < 1e-3


def test_mnist_loads():
    from conftest import have_data

    if not have_data("mnist"):
        pytest.skip("MNIST not available")
    test = D.load_dataset("mnist", "test")
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_unknown_dataset_lists_choices():
    with pytest.raises(DefbenchError, match="choose one of: fmnist, mnist, cifar10, imagenet"):
        D.canonical_name("svhn")


def test_aliases():
    assert D.canonical_name("Fashion-MNIST") == "fmnist"
    assert D.canonical_name("CIFAR-10") == "cifar10"


def test_class_names_under_any_alias_else_digits():
    from defbench.datasets import CLASS_NAMES, class_names

    assert class_names("Fashion-MNIST") == class_names("fmnist") == CLASS_NAMES["fmnist"]
    assert class_names("cifar-10")[3] == "cat"
    assert class_names("mnist") == tuple("0123456789")
    assert class_names("fmnist", 3) == ("T-shirt", "trouser", "pullover")
    assert class_names("imagenet", 1000)[999] == "999"  # no names stored: the labels themselves
    with pytest.raises(DefbenchError, match="unknown dataset"):
        class_names("svhn")


def _write_idx(path, arr, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_idx_layout_in_explicit_root(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.random.RandomState(0).randint(0, 256, (5, 28, 28))
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", imgs, 2051)
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(5), 2049)
    ds = D.load_dataset("mnist", "test", root=tmp_path, download=False)
    x, y = ds.get([0, 4])
    assert torch.allclose(x[0, 0], torch.from_numpy(imgs[0]).float() / 255)
    assert y.tolist() == [0, 4]


def test_missing_data_offline_names_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEFBENCH_DATA", raising=False)  # no explicit root: the cache, then (here not) a download
    monkeypatch.setattr(D, "DEBIAN_FMNIST", tmp_path / "nowhere")
    with pytest.raises(DefbenchError) as err:
        D.load_dataset("fmnist", "test", download=False)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "--data-root" in msg and "\n" not in msg


def test_failed_download_gives_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(D, "DEBIAN_FMNIST", tmp_path / "nowhere")

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(D, "_download", offline)
    monkeypatch.delenv("DEFBENCH_DATA", raising=False)  # a download is tried only without an explicit root
    with pytest.raises(DefbenchError, match="download failed: OSError"):
        D.load_dataset("fmnist", "test")


def test_cifar_jpeg_zip_layout(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    zpath = tmp_path / "CIFAR10-jpeg" / "cifar10-jpeg.zip"
    zpath.parent.mkdir()
    with zipfile.ZipFile(zpath, "w") as zf:
        for cls in ("airplane", "truck"):
            for i in range(2):
                buf = BytesIO()
                Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(buf, "JPEG")
                zf.writestr(f"test/{cls}/{i:04d}.jpg", buf.getvalue())
    ds = D.load_dataset("cifar10", "test", root=tmp_path, download=False)
    assert len(ds) == 4 and sorted(ds.labels.tolist()) == [0, 0, 9, 9]
    assert "JPEG" in ds.note
    x, _ = ds.get([0])
    assert x.shape == (1, 3, 32, 32)
    # nothing written into the data root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CIFAR10-jpeg", "home"]


def test_cifar_jpeg_zip_decodes_rgb_in_channel_order(tmp_path, monkeypatch):
    """The JPEG copy decodes to (R, G, B) channels: a pure red image is channel 0 only. The grey images above look
    the same in any channel order, so a BGR decode (reversed channels) would pass them."""
    from PIL import Image

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    zpath = tmp_path / "CIFAR10-jpeg" / "cifar10-jpeg.zip"
    zpath.parent.mkdir()
    buf = BytesIO()
    Image.fromarray(np.tile(np.array([255, 0, 0], np.uint8), (32, 32, 1))).save(buf, "JPEG", quality=95)
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("test/airplane/0000.jpg", buf.getvalue())
    x, _ = D.load_dataset("cifar10", "test", root=tmp_path, download=False).get([0])
    assert x[0, 0].mean() > 0.9
    assert x[0, 1:].max() < 0.1


def test_cifar_official_batch_is_planar_rgb(tmp_path):
    """CIFAR-10's python batches store each image as 1024 red, then 1024 green, then 1024 blue bytes, each plane
    row-major (the dataset's documented layout): image[c, i, j] = row[1024 c + 32 i + j]. Reading the row as
    32x32x3 (HWC) scrambles the pixels and the channels."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    row = (np.arange(3072) % 256).astype(np.uint8)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": row[None], "labels": [3]}))
    x, y = D.load_dataset("cifar10", "test", root=tmp_path, download=False).get([0])
    assert y.tolist() == [3]
    assert torch.equal((x[0] * 255).round().to(torch.uint8), torch.from_numpy(row.reshape(3, 32, 32)))


def test_fake_imagenet_folder(tmp_path):
    from PIL import Image

    wnids = [f"n{i:08d}" for i in range(1000)]
    val = tmp_path / "imagenet" / "val"
    for w in (wnids[3], wnids[997]):
        (val / w).mkdir(parents=True)
        Image.fromarray(np.zeros((300, 260, 3), np.uint8)).save(val / w / "a.JPEG")
    with pytest.raises(DefbenchError, match="not 1000"):
        D.load_dataset("imagenet", "val", root=tmp_path)
    (tmp_path / "imagenet" / "LOC_synset_mapping.txt").write_text("".join(f"{w} name\n" for w in wnids))
    ds = D.load_dataset("imagenet", "val", root=tmp_path)
    assert ds.labels.tolist() == [3, 997] and ds.split == "val"
    x, _ = ds.get([1])
    assert x.shape == (1, 3, 224, 224)
    # the train folder is the train split (it was labelled 'val', in its sha256 and its messages)
    train = tmp_path / "imagenet" / "train" / wnids[5]
    train.mkdir(parents=True)
    Image.fromarray(np.zeros((300, 260, 3), np.uint8)).save(train / "b.JPEG")
    tr = D.load_dataset("imagenet", "train", root=tmp_path)
    assert tr.split == "train" and tr.labels.tolist() == [5] and tr.sha256() != ds.sha256()


def test_imagenet_transform_resizes_to_256_then_crops_224(tmp_path):
    """The standard ImageNet evaluation transform (torchvision's ResNet50_Weights.IMAGENET1K_V1.transforms(), less
    its Normalize): resize the shorter side to 256, centre crop 224. A 256x256 image loses 16 rows top and bottom,
    so a white band in rows 0-15 is cut off (a resize to 224 would keep it); a non-square image matches
    torchvision's transform undone of its normalisation."""
    import torchvision
    from PIL import Image

    a = np.zeros((256, 256, 3), np.uint8)
    a[:16] = 255
    Image.fromarray(a).save(tmp_path / "band.png")
    x = D.imagenet_transform(str(tmp_path / "band.png"))
    assert x.shape == (3, 224, 224) and x.max() == 0
    t = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms()
    img = np.random.RandomState(0).randint(0, 256, (300, 270, 3)).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "odd.png")
    with Image.open(tmp_path / "odd.png") as im:
        want = t(im.convert("RGB")) * torch.tensor(t.std).view(3, 1, 1) + torch.tensor(t.mean).view(3, 1, 1)
    got = D.imagenet_transform(str(tmp_path / "odd.png"))
    assert got.shape == want.shape == (3, 224, 224)
    assert torch.allclose(got, want, atol=1e-5)


def test_eval_indices_seeded_and_bounded(fmnist):
    _, test = fmnist
    a, b = test.eval_indices(50, 3), test.eval_indices(50, 3)
    assert torch.equal(a, b) and not torch.equal(a, test.eval_indices(50, 4))
    with pytest.raises(DefbenchError, match="larger than"):
        test.eval_indices(10001, 0)


def test_eval_indices_are_the_documented_seeded_draw():
    """eval_indices(n, seed) is the first n of torch.randperm(N) drawn with a generator seeded ``seed``, sorted: the
    images every cell of a run evaluates, so recorded results name them by (n, seed) alone."""
    labels = torch.arange(200) % 10
    ds = D.ImageData("fmnist", "test", labels, "x", images=torch.zeros(200, 1, 28, 28, dtype=torch.uint8))
    for n, seed in ((1, 0), (17, 0), (50, 3), (200, 7)):
        want = torch.randperm(200, generator=torch.Generator().manual_seed(seed))[:n].sort().values
        assert torch.equal(ds.eval_indices(n, seed), want), (n, seed)


def test_eval_indices_stratified(fmnist):
    _, test = fmnist
    idx = test.eval_indices(25, 1, stratified=True)
    counts = torch.bincount(test.labels[idx], minlength=10)
    assert len(idx) == 25 and len(set(idx.tolist())) == 25
    assert sorted(counts.tolist()) == [2] * 5 + [3] * 5
    assert torch.equal(idx, test.eval_indices(25, 1, stratified=True))
    assert not torch.equal(idx, test.eval_indices(25, 2, stratified=True))


@pytest.mark.parametrize("dataset", ["fmnist", "mnist"])
def test_each_classifier_normalises_with_its_own_dataset_s_statistics(dataset):
    """The paper classifier of each greyscale dataset normalises by that dataset's training-set mean and std,
    computed here from the images (Fashion-MNIST's and MNIST's constants swapped left every test passing but the
    slow golden-values one)."""
    from conftest import have_data

    from defbench.classifiers.models import build_classifier

    if not have_data(dataset):
        pytest.skip(f"{dataset} not available")
    x, _ = D.load_dataset(dataset, "train").get(range(60000))
    clf = build_classifier(dataset)
    assert clf.mean.flatten().tolist() == pytest.approx([x.mean().item()], abs=1e-3)
    assert clf.std.flatten().tolist() == pytest.approx([x.std().item()], abs=1e-3)
