"""Issue 13, item 3: a cell is what produced it.

The store key covers the data (its bytes, not its path), the sha256 of every model the cell used (classifier,
GAN, encoder, and the G and I a reparameterisation attack differentiates on a defense without an encoder),
the defbench version and a plugin's distribution and version. Plugins cannot take another attack's name.

Every test here runs in its own model zoo (a temporary ``DEFBENCH_HOME``) with untrained stand-in models,
on 8 real Fashion-MNIST test images.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, save_classifier, save_encoder, save_gan, stand_in_gan
from test_attack_checks import fake_distribution

from defbench import DefbenchError
from defbench.attacks import get_attack
from defbench.harness.matrix import AttackSpec, Cell, MatrixRunner, MatrixSpec
from defbench.harness.store import config_hash

RAW = SHARED_DATA / "FashionMNIST" / "raw"
FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DG = "defensegan[latent_steps=2,restarts=1]"  # no encoder: a reparam attack on it brings the dataset's G and I


@pytest.fixture
def zoo_home(tmp_path, monkeypatch, fmnist):
    """A zoo of its own: an untrained classifier, a stand-in GAN and an untrained encoder (quick preset)."""
    from defbench.classifiers.models import build_classifier

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    clf = build_classifier("fmnist")
    save_classifier(clf, {})
    save_gan(*stand_in_gan("fmnist", 0))
    save_encoder(0)
    return tmp_path / "home"


def run(out: Path, data_root=None, defenses=("none",), threats=("graybox",), n=8, batch_size=8) -> MatrixRunner:
    spec = MatrixSpec(
        dataset="fmnist",
        defenses=tuple(defenses),
        attacks=(AttackSpec("fgsm", 0.1),),
        threats=tuple(threats),
        n=n,
        batch_size=batch_size,
        preset="quick",
        progress=False,
        data_root=None if data_root is None else str(data_root),
        out=str(out),
    )
    runner = MatrixRunner(spec)
    runner.run()
    return runner


def computed(runner: MatrixRunner) -> set[tuple[str, str]]:
    """(defense, threat) of the cells this run computed."""
    by_key = {runner.key(c)[0].key: c for c in runner.cells()}
    return {(by_key[k].defense, by_key[k].threat) for k in runner.computed}


def data_root(tmp_path: Path, name: str, change: int | None = None) -> Path:
    """A copy of the Fashion-MNIST test files; ``change``: that test image gets one pixel inverted."""
    raw = tmp_path / name / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in FILES:
        shutil.copyfile(RAW / f, raw / f)
    if change is not None:
        data = bytearray(gzip.decompress((raw / FILES[0]).read_bytes()))
        pos = 16 + change * 28 * 28 + 14 * 28 + 14  # the centre pixel
        data[pos] = 255 - data[pos]
        (raw / FILES[0]).write_bytes(gzip.compress(bytes(data)))
    return tmp_path / name


def test_other_data_recomputes_a_moved_copy_does_not(zoo_home, tmp_path):
    """Same run, same --out: a copy of the data at another path reuses every cell; a copy with one evaluated
    image changed recomputes every cell (and the gray-box adversarials are not taken from the cache)."""
    if not (RAW / FILES[0]).is_file():
        pytest.skip("needs the shared Fashion-MNIST files")
    out = tmp_path / "out"
    first = run(out, data_root(tmp_path, "a"))
    assert len(first.computed) == 2
    again = run(out, data_root(tmp_path, "b"))  # same bytes, other path
    assert again.computed == [] and again.skipped == 2
    idx = first.test.eval_indices(8, 0)
    changed = run(out, data_root(tmp_path, "c", change=int(idx[0])))
    assert len(changed.computed) == 2, "cells computed from other data were reused"
    assert changed.data_sha256 != first.data_sha256
    assert len(list((out / "adv-cache").glob("*.pt"))) == 2
    rows = list(changed.store.rows())
    assert {r["defense_config"]["data_sha256"] for r in rows} == {first.data_sha256, changed.data_sha256}


def test_new_gan_recomputes_the_cells_that_used_it(zoo_home, tmp_path):
    """Replacing the GAN recomputes the GAN defense's cells and every reparameterisation cell (they
    differentiate the dataset's G); replacing the encoder recomputes only the reparameterisation cells of
    the defenses without an encoder; the undefended clean and gray-box cells are reused throughout."""
    out = tmp_path / "out"
    kw = {"defenses": ("none", DG), "threats": ("graybox", "reparam")}
    first = run(out, **kw)
    assert len(first.computed) == 6
    save_gan(*stand_in_gan("fmnist", 1))  # "retrained": other weights under the same zoo id
    second = run(out, **kw)
    assert computed(second) == {(DG, "none"), (DG, "graybox"), (DG, "reparam"), ("none", "reparam")}
    save_encoder(1)
    third = run(out, **kw)
    assert computed(third) == {(DG, "reparam"), ("none", "reparam")}
    fourth = run(out, **kw)
    assert fourth.computed == []
    cfg = next(r for r in fourth.store.rows(defense=DG, threat="reparam"))
    assert set(cfg["defense_config"]["model_sha256"]) == {"classifier", "G", "D"}
    assert set(cfg["attack_config"]["model_sha256"]) == {"G", "I"}


def test_defbench_version_is_part_of_the_key(zoo_home, tmp_path, monkeypatch):
    import defbench

    runner = MatrixRunner(
        MatrixSpec(
            dataset="fmnist",
            defenses=("none",),
            attacks=(AttackSpec("fgsm"),),
            n=8,
            batch_size=8,
            preset="quick",
            progress=False,
            out=str(tmp_path / "o"),
        )
    )
    cell = Cell(0, "none", "graybox", AttackSpec("fgsm"))
    before = runner.key(cell)[0].key
    monkeypatch.setattr(defbench, "__version__", "99.0")
    assert runner.key(cell)[0].key != before


# --------------------------------------------------------------------------------------------- plugins
def install(tmp_path, monkeypatch, sub, dist, version, entries):
    monkeypatch.syspath_prepend(str(fake_distribution(tmp_path / sub, dist, version, entries)))


def skipped(capsys, monkeypatch, name: str | None = None) -> str:
    """A refused attack plugin is skipped, not fatal: the built-ins work and list as before, the plugin is not
    listed, one warning line gives the reason; asking for it by ``name`` is a one-line error with the same
    reason. Returns the warning (and, with ``name``, the error) text."""
    from defbench import plugins
    from defbench.attacks.registry import BUILTIN, available

    monkeypatch.setattr(plugins, "WARNED", set())
    capsys.readouterr()
    table = available()
    warning = capsys.readouterr().err
    assert warning.startswith("defbench: warning: skipped attack plugin") and warning.count("\n") == 1, warning
    assert list(table) == list(BUILTIN) and type(get_attack("fgsm", "fmnist")) is BUILTIN["fgsm"]
    if name is None:
        return warning
    with pytest.raises(DefbenchError) as err:
        get_attack(name, "fmnist")
    msg = str(err.value)
    assert "\n" not in msg and f"unknown attack {name!r}; a plugin of that name was skipped: " in msg, msg
    return warning + msg


def test_plugin_shadowing_a_builtin_is_skipped_and_the_builtin_runs(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "s", "evil-attacks", "1.0", {"pgd": "ShadowPGD"})
    msg = skipped(capsys, monkeypatch)
    assert "'pgd'" in msg and "evil-attacks 1.0" in msg and "distribution defbench" in msg, msg
    from defbench.attacks.registry import BUILTIN

    assert type(get_attack("pgd", "fmnist", 0.1)) is BUILTIN["pgd"]


def test_plugin_names_a_lookup_would_not_find_as_written_are_skipped(tmp_path, monkeypatch, capsys):
    """get_attack lowercases: an attack plugin 'FGSM' was listed as a plugin while the built-in ran, and 'MyAtk'
    was listed and never found (found by the API audit)."""
    install(tmp_path, monkeypatch, "c", "case-attacks", "0.1", {"FGSM": "ShadowFGSMCase"})
    msg = skipped(capsys, monkeypatch)
    assert "built-in attack 'fgsm'" in msg and "a lookup of 'FGSM' finds the built-in" in msg, msg
    monkeypatch.syspath_prepend(str(fake_distribution(tmp_path / "m", "mixed-attacks", "0.1", {"MyAtk": "MixedCase"})))
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if not p.endswith("/c")])
    msg = skipped(capsys, monkeypatch, "MyAtk")
    assert "looked up in lower case" in msg and "name it 'myatk'" in msg, msg


def test_two_plugins_with_one_name_are_both_skipped(tmp_path, monkeypatch, capsys):
    """Neither of two distributions taking one name is 'the' plugin of it: both are skipped, the other plugins
    and the built-ins work (one clashing package made every listing and run fail), and the name's error names
    both distributions."""
    install(tmp_path, monkeypatch, "a", "first-attacks", "0.1", {"goodatk": "GoodAttack"})
    install(tmp_path, monkeypatch, "b", "second-attacks", "0.2", {"goodatk": "GoodAttack"})
    msg = skipped(capsys, monkeypatch, "goodatk")
    assert "'goodatk'" in msg and "first-attacks 0.1" in msg and "second-attacks 0.2" in msg, msg


def test_nameless_plugin_is_skipped(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "n", "nameless-attacks", "0.1", {"nameless": "Nameless"})
    msg = skipped(capsys, monkeypatch, "nameless")
    assert "sets no name of its own" in msg and "nameless-attacks 0.1" in msg, msg


def test_plugin_name_must_match_its_entry_point(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "m", "odd-attacks", "0.1", {"mismatch": "Mismatch"})
    assert "must match" in skipped(capsys, monkeypatch, "mismatch")


def test_plugin_distribution_and_version_are_in_the_key(tmp_path, monkeypatch, capsys):
    from defbench import plugins

    monkeypatch.setattr(plugins, "WARNED", set())
    install(tmp_path, monkeypatch, "v1", "good-attacks", "0.1", {"goodatk": "GoodAttack"})
    cfg1 = get_attack("goodatk", "fmnist").config()
    assert "skipped" not in capsys.readouterr().err  # the silent twin of the refusals above: a sound plugin
    assert cfg1["plugin"] == {"distribution": "good-attacks", "version": "0.1"}
    install(tmp_path, monkeypatch, "v2", "good-attacks", "0.2", {"goodatk": "GoodAttack"})  # first on sys.path
    cfg2 = get_attack("goodatk", "fmnist").config()
    assert cfg2["plugin"]["version"] == "0.2" and config_hash(cfg1) != config_hash(cfg2)
    assert "plugin" not in get_attack("pgd", "fmnist").config()


def test_lazily_loaded_data_is_identified_by_its_files_bytes(tmp_path, monkeypatch):
    """ImageNet-style sets (images read from files) hash the files' bytes: a copy elsewhere has the same
    identity, one changed file another (the per-file digest cache notices the new size and mtime)."""
    from defbench.harness.data import ImageData

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))

    def folder(name: str) -> list[str]:
        paths = []
        for i in range(3):
            p = tmp_path / name / f"{i}.JPEG"
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(bytes([i]) * 100)
            paths.append(str(p))
        return paths

    def sha(paths: list[str]) -> str:
        return ImageData("imagenet", "val", torch.tensor([0, 1, 2]), "x", paths=tuple(paths)).sha256()

    a, b = folder("a"), folder("b")
    assert sha(a) == sha(b)
    Path(b[1]).write_bytes(b"\x07" * 101)
    assert sha(a) != sha(b)
    assert sha(b) == sha(b)  # from the digest cache


def test_a_same_size_rewrite_of_a_lazily_loaded_file_is_other_data(tmp_path, monkeypatch):
    """The per-file digest cache reuses a digest only while the file's size and mtime both match: a file rewritten
    with other bytes of the same length (a re-encoded image, say) is hashed again, so its cells are recomputed."""
    import os

    from defbench.harness.data import ImageData

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    p = tmp_path / "0.JPEG"
    p.write_bytes(b"\x01" * 100)
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))

    def sha() -> str:
        return ImageData("imagenet", "val", torch.tensor([0]), "x", paths=(str(p),)).sha256()

    first = sha()
    assert sha() == first  # from the digest cache
    p.write_bytes(b"\x02" * 100)
    os.utime(p, ns=(2_000_000_000, 2_000_000_000))  # another mtime, whatever the file system's resolution
    assert sha() != first


def test_labels_are_part_of_the_data_identity():
    """ImageData.sha256 covers the labels as well as the images: the same images with one label changed are other
    data (their robust accuracies differ), so a store must not hand back the cells of the old labels."""
    from defbench.harness.data import ImageData

    images = torch.arange(4 * 28 * 28).remainder(256).to(torch.uint8).view(4, 1, 28, 28)
    a = ImageData("fmnist", "test", torch.tensor([0, 1, 2, 3]), "x", images=images)
    b = ImageData("fmnist", "test", torch.tensor([0, 1, 2, 9]), "x", images=images.clone())
    assert a.sha256() == ImageData("fmnist", "test", torch.tensor([0, 1, 2, 3]), "y", images=images.clone()).sha256()
    assert a.sha256() != b.sha256()


class _Scaled(torch.nn.Module):
    """A user's classifier that divides its input by a plain attribute before the network."""

    def __init__(self, net, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        return self.net(x / self.scale)


def _blur_defense(k: int):
    """A user's Defense whose config() does not name k (Defense's default)."""
    from defbench.defenses.base import Defense

    class Blur(Defense):
        name = "blur"

        def __init__(self, k):
            super().__init__((1, 28, 28), 0)
            self.k = k

        def _purify(self, x, seed):
            return torch.nn.functional.avg_pool2d(x, self.k, stride=1, padding=self.k // 2)

    return Blur(k)


def test_plain_attributes_of_a_users_classifier_and_defense_are_in_the_key(zoo_home, tmp_path):
    """The same weights divided by scale 1.0 then 3.0, and a user's Blur(k=1) then Blur(k=3) whose config() does
    not name k, reused the first run's cells (found by an audit); each is now a cell of its own, and the same
    attribute values again reuse theirs."""
    from defbench.api import evaluate
    from defbench.classifiers.models import build_classifier

    torch.manual_seed(0)
    net = build_classifier("fmnist")
    store = str(tmp_path / "s")
    kw = dict(dataset="fmnist", attacks=("fgsm",), n=4, batch_size=4, preset="quick", store=store)

    def run_keys(scale, k):
        from defbench.harness.store import Store

        evaluate(_Scaled(net, scale), _blur_defense(k), **kw)
        s = Store(store)
        got = {r["key"] for r in s.rows()}
        s.close()
        return got

    first = run_keys(1.0, 1)
    scaled = run_keys(3.0, 1) - first
    assert len(scaled) == len(first)  # every cell anew: the classifier differs
    blurred = run_keys(1.0, 3) - first - scaled
    assert len(blurred) == 2  # the blur's clean and FGSM cells anew, the undefended ones reused
    assert run_keys(1.0, 3) - first - scaled - blurred == set()


def test_a_zoo_model_changed_in_memory_is_keyed_by_its_weights(zoo_home):
    """model_sha256 gave a zoo model its checkpoint's sha256 even after its weights were changed in memory (a user's
    defense on the zoo G, halved in place, reused the cells of the original); now only while they are the
    checkpoint's."""
    from defbench.harness import models, zoo

    G, _, manifest = models.get_gan("fmnist", "quick", "cpu", train_missing=False)
    assert models.model_sha256(G) == manifest["sha256"] == zoo.manifest_or_none("gan-fmnist-quick")["sha256"]
    with torch.no_grad():
        next(G.parameters()).mul_(0.5)
    assert models.model_sha256(G) == models.weights_sha256(G) != manifest["sha256"]


def test_attribute_values_read_numbers_arrays_and_leave_out_the_rest():
    """What a user's object contributes to its cells' key: plain values, numpy scalars and arrays and tensors by
    value; functions and arbitrary objects not; a module's own bookkeeping not."""
    import numpy as np

    from defbench.harness.models import attribute_values

    class Obj:
        def __init__(self, k, w):
            self.k, self.w, self.fn, self.other = k, w, len, object()

    a = attribute_values(Obj(np.int64(3), np.array([0.5, 1.0])))
    assert a["k"] == 3 and a["w"].startswith("ndarray float64 (2,) ") and set(a) == {"k", "w"}
    assert attribute_values(Obj(3, np.array([0.5, 2.0])))["w"] != a["w"]
    lin = attribute_values(torch.nn.Sequential(torch.nn.Linear(2, 3)))
    assert lin == {"0.in_features": 2, "0.out_features": 3}


def test_own_encoder_reparam_cell_keys_its_g_and_i_once(zoo_home, tmp_path, monkeypatch):
    """A reparameterisation cell on a defense with its own encoder (InvGAN) keys the G and I it differentiates,
    by the sha256 the defense's models have, and hashes their weights once per runner, not at every key()."""
    from defbench.harness import models as hm

    spec = MatrixSpec(
        dataset="fmnist",
        defenses=("invgan",),
        attacks=(AttackSpec("fgsm", 0.1),),
        threats=("reparam",),
        n=8,
        batch_size=8,
        preset="quick",
        progress=False,
        out=str(tmp_path / "out"),
    )
    runner = MatrixRunner(spec)
    cell = Cell(0, "invgan", "reparam", AttackSpec("fgsm", 0.1))
    d = runner.defense("invgan")
    _, dcfg, acfg = runner.key(cell)
    assert acfg["model_sha256"] == {"G": hm.model_sha256(d.G), "I": hm.model_sha256(d.encoder)}
    assert acfg["model_sha256"] == {"G": dcfg["model_sha256"]["G"], "I": dcfg["model_sha256"]["encoder"]}
    calls = []
    real = hm.weights_sha256
    monkeypatch.setattr(hm, "weights_sha256", lambda m: calls.append(m) or real(m))
    again = runner.key(cell)
    assert again[2] == acfg and calls == []


def _user_classes(forward_body: str, purify_body: str):
    """A user's classifier class and Defense class named Net and Blur, with the given forward and _purify: as a
    notebook that redefines them after an edit."""
    from defbench.defenses.base import Defense

    src = (
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, net):\n        super().__init__()\n        self.net = net\n"
        f"    def forward(self, x):\n        {forward_body}\n"
        "class Blur(Defense):\n    name = 'blur'\n"
        f"    def _purify(self, x, seed):\n        {purify_body}\n"
    )
    scope = {"torch": torch, "Defense": Defense}
    exec(compile(src, "<notebook cell>", "exec"), scope)
    return scope["Net"], scope["Blur"]


def test_an_edited_forward_or_purify_is_another_cell(zoo_home, tmp_path):
    """The same weights under an edited forward, and a Defense whose _purify was edited, reused the first
    version's cells (found by the API audit: clean 0.75 and FGSM 0.5 reused where the edit gives 0.5625 and
    0.25); the code of a user's own classes is in the key now, and the unedited code again reuses its cells."""
    from defbench.api import evaluate
    from defbench.classifiers.models import build_classifier
    from defbench.harness.models import methods_sha256
    from defbench.harness.store import Store

    torch.manual_seed(0)
    net = build_classifier("fmnist")
    store = str(tmp_path / "s")
    kw = dict(dataset="fmnist", attacks=("fgsm",), n=4, batch_size=4, preset="quick", store=store, baseline=False)

    def keys(forward_body, purify_body):
        Net, Blur = _user_classes(forward_body, purify_body)
        evaluate(Net(net), Blur((1, 28, 28), 0), **kw)
        s = Store(store)
        got = {r["key"] for r in s.rows()}
        s.close()
        return got

    first = keys("return self.net(x)", "return x")
    assert len(first) == 2
    forward_edited = keys("return self.net((x - 0.5) / 0.5)", "return x") - first
    assert len(forward_edited) == 2
    purify_edited = keys("return self.net(x)", "return x.clamp(0.1, 0.9)") - first - forward_edited
    assert len(purify_edited) == 2
    assert keys("return self.net(x)", "return x") - first - forward_edited - purify_edited == set()
    A, _ = _user_classes("return self.net(x)", "return x")
    B, _ = _user_classes("return self.net(x)", "return x")
    assert methods_sha256(A(net)) == methods_sha256(B(net))  # the same code in two class objects: one identity


def test_another_n_or_batch_size_recomputes_and_the_threat_keys_its_own_cell(zoo_home, tmp_path):
    """n and the batch size are the cell's images and its purification (and attack-start) batches: a rerun into
    the same --out with another n, or another batch size, recomputes its cells and stores rows of its own, never
    the first run's (a key without n handed a user who asked for n = 4 the rows of n = 8). The threat keys a cell
    too: the median filter is deterministic, so its BPDA attack config is its gray-box one, and the two are still
    two cells."""
    out = tmp_path / "out"
    first = run(out)
    assert len(first.computed) == 2
    fewer = run(out, n=4)
    assert len(fewer.computed) == 2 and fewer.skipped == 0
    assert sorted(r["n"] for r in fewer.store.rows()) == [4, 4, 8, 8]
    smaller = run(out, batch_size=4)
    assert len(smaller.computed) == 2 and smaller.skipped == 0
    sizes = sorted(r["extra"]["batch_size"] for r in smaller.store.rows() if r["n"] == 8)
    assert sizes == [4, 4, 8, 8]
    again = run(out)
    assert again.computed == [] and again.skipped == 2
    run(out, defenses=("median",))
    both = run(out, defenses=("median",), threats=("graybox", "bpda"))
    assert computed(both) == {("median", "bpda")} and both.skipped == 2
