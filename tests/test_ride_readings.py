"""benchmarks/ride_readings.py with a fake attack, fake classifiers and a fake RIDE: every cell of its table (the
accuracies with their Wilson intervals, the ℓ2 distances to the clean images, the time per image), the images and
seeds it hands on, --only, --clean-only and --save, by hand."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import import_benchmark, md_row, md_rows

from defbench.datasets import ImageData

N_SET = 40
THRESHOLD = {"quick": 0.5, "paper": 0.4}  # each fake classifier: class 1 where the mean pixel is over it
C = 0.6  # where the fake RIDE pulls the images


class Clf:
    def __init__(self, preset):
        self.preset, self.t = preset, THRESHOLD[preset]

    def __call__(self, x):
        m = x.flatten(1).mean(1)
        return torch.stack([self.t - m, m - self.t], 1)


def _pred(x, preset):
    return (x.reshape(len(x), -1).mean(1) > THRESHOLD[preset]).astype(int)


def _alpha(label):
    """A fake variant's strength: x̂ = a x + (1 − a) C, C = 0.6, with a from its label's ``alpha=`` (1 when none)."""
    m = re.search(r"alpha=([0-9.]+)", label)
    return float(m.group(1)) if m else 1.0


def _wilson_cell(k, n):
    """``accuracy_cell`` by hand: the Wilson score interval, z = 1.96."""
    z = 1.959963984540054
    centre, half = (k + z * z / 2) / (n + z * z), z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return f"{100 * k / n:.0f} ({100 * lo:.0f}–{100 * hi:.0f})"


@pytest.fixture
def rr(monkeypatch):
    mod = import_benchmark("ride_readings")
    g = torch.Generator().manual_seed(3)
    images = (torch.rand(N_SET, 1, 2, 2, generator=g) * 255).to(torch.uint8)
    labels = (images.float().flatten(1).mean(1) > 127.5).long()  # the quick classifier's verdict on the image,
    labels[::4] = 1 - labels[::4]  # wrong on every fourth image
    fake_set = ImageData("mnist", "test", labels, "test", images=images)
    log = SimpleNamespace(attacks=[], purify=[], built=[], clfs=[], clock=iter(()))

    def get_classifier(dataset, preset, *a, **k):
        log.clfs.append((dataset, preset))
        return Clf(preset), {}

    def get_attack(name, dataset, eps, **params):
        def attack(clf, x, y):
            # x_adv = 1 − x, and a draw of the global RNG (a real PGD's random start)
            log.attacks.append((name, dataset, eps, params, clf.preset, x.clone(), y.clone(), float(torch.rand(()))))
            return 1 - x

        return attack

    class Fake:
        def __init__(self, label):
            self.a = _alpha(label)

        def purify(self, batch, seed=0):
            log.purify.append((len(batch), seed))
            return self.a * batch + (1 - self.a) * C

    monkeypatch.setattr(mod, "load_dataset", lambda *a, **k: fake_set)
    monkeypatch.setattr(mod, "get_classifier", get_classifier)
    monkeypatch.setattr(mod, "get_attack", get_attack)
    monkeypatch.setattr(mod, "build_defense", lambda label, *a, **k: log.built.append((label, *a)) or Fake(label))
    monkeypatch.setattr(mod, "time", SimpleNamespace(time=lambda: next(log.clock)))
    return SimpleNamespace(mod=mod, set=fake_set, log=log)


def _expected(x, y, a, presets, adv=True):
    """The cells of a variant row of strength a on images x (numpy), by hand."""
    n = len(y)
    out_c = a * x + (1 - a) * C
    cells = [_wilson_cell(int((_pred(out_c, p) == y).sum()), n) for p in presets]
    dist = lambda o: np.linalg.norm((o - x).reshape(n, -1), axis=1).mean()  # noqa: E731
    if adv:
        out_a = a * (1 - x) + (1 - a) * C
        cells += [_wilson_cell(int((_pred(out_a, presets[0]) == y).sum()), n), f"{dist(out_c):.2f}"]
        cells += [f"{dist(out_a):.2f}"]  # the purified adversarial's distance to the CLEAN image
    else:
        cells += ["—", f"{dist(out_c):.2f}", "—"]
    return cells


def test_rows_by_hand_with_pgd_and_two_classifiers(rr, tmp_path):
    out = tmp_path / "t.md"
    rr.log.clock = iter([100.0, 103.0, 200.0, 201.2])  # 3 s, then 1.2 s, for the 2 × 6 purified images
    args = ["--n", "6", "--seed", "3", "--presets", "quick", "paper", "--eps", "0.2", "--steps", "7"]
    assert rr.mod.main(args + ["--variants", "ride", "ride[alpha=0.5]", "--out", str(out)]) == 0
    xt, yt = rr.set.get(rr.set.eval_indices(6, 3))
    ((name, dataset, eps, params, attacked, ax, ay, draw),) = rr.log.attacks
    # one PGD on the seeded images, against the first classifier, with the global RNG seeded by --seed
    assert (name, dataset, eps, params, attacked) == ("pgd", "mnist", 0.2, {"steps": 7}, "quick")
    assert torch.equal(ax, xt) and torch.equal(ay, yt)
    assert draw == float(torch.rand((), generator=torch.Generator().manual_seed(3)))
    assert rr.log.clfs == [("mnist", "quick"), ("mnist", "paper")]
    assert rr.log.built == [("ride", "mnist"), ("ride[alpha=0.5]", "mnist")]
    assert rr.log.purify == [(12, 3), (12, 3)]  # clean and PGD images in one batch, seeded by --seed
    x, y = xt.numpy(), yt.numpy()
    text = out.read_text()
    header = md_rows(text)[0]
    assert header == [
        "variant",
        "clean acc %",
        "clean acc % (paper classifier)",
        "PGD acc %",
        "ℓ2 to clean (clean in)",
        "ℓ2 to clean (PGD in)",
        "s / image",
    ]
    alone = md_row(text, "classifier alone")
    d_adv = np.linalg.norm((1 - 2 * x).reshape(6, -1), axis=1).mean()
    assert alone[1:] == [
        _wilson_cell(int((_pred(x, "quick") == y).sum()), 6),
        _wilson_cell(int((_pred(x, "paper") == y).sum()), 6),
        _wilson_cell(int((_pred(1 - x, "quick") == y).sum()), 6),
        "0.00",
        f"{d_adv:.2f}",
        "0.00",
    ]
    assert md_row(text, "`ride`")[1:] == _expected(x, y, 1.0, ["quick", "paper"]) + ["0.25"]
    assert md_row(text, "`ride[alpha=0.5]`")[1:] == _expected(x, y, 0.5, ["quick", "paper"]) + ["0.10"]
    # the fake's numbers tell the cells apart (the test would see columns or rows swapped)
    cells = md_row(text, "`ride[alpha=0.5]`")
    assert cells[1] != cells[2] and cells[1] != cells[3] and cells[4] != cells[5]
    assert "6 mnist test images (seed 3)" in text and "gray-box PGD ε = 0.2 (7 steps" in text


def test_clean_only_only_and_save(rr, tmp_path):
    out, save = tmp_path / "t.md", tmp_path / "saved"
    rr.log.clock = iter([0.0, 1.2])
    args = ["--n", "8", "--only", "1,3,6", "--clean-only", "--variants", "ride[alpha=0.3, x]", "--dataset", "cifar10"]
    assert rr.mod.main(args + ["--save", str(save), "--out", str(out)]) == 0
    assert rr.log.attacks == [] and rr.log.purify == [(3, 0)]  # no PGD: the 3 clean images alone
    assert rr.log.built == [("ride[alpha=0.3, x]", "cifar10")] and rr.log.clfs == [("cifar10", "quick")]
    xt, yt = rr.set.get(rr.set.eval_indices(8, 0)[[1, 3, 6]])
    x, y = xt.numpy(), yt.numpy()
    text = out.read_text()
    assert md_row(text, "classifier alone")[1:] == [
        _wilson_cell(int((_pred(x, "quick") == y).sum()), 3),
        "—",
        "0.00",
        "—",
        "0.00",
    ]
    assert md_row(text, "`ride[alpha=0.3, x]`")[1:] == _expected(x, y, 0.3, ["quick"], adv=False) + ["0.40"]
    assert "3 cifar10 test images (seed 0, positions 1,3,6 of its 8)" in text and "clean images only" in text
    saved = torch.load(save / "ride_alpha=0.3_x_.pt")
    assert torch.equal(saved["x"], xt) and torch.equal(saved["y"], yt)
    assert saved["x_adv"] is None and saved["adv"] is None
    assert torch.allclose(saved["clean"], 0.3 * xt + 0.7 * 0.6)


def test_saved_pgd_purifications_are_the_adversarials(rr, tmp_path):
    rr.log.clock = iter([0.0, 1.0])
    save = tmp_path / "s"
    args = ["--n", "4", "--variants", "ride[alpha=0.5]", "--save", str(save), "--out", str(tmp_path / "t.md")]
    assert rr.mod.main(args) == 0
    saved = torch.load(save / "ride_alpha=0.5_.pt")
    xt, _ = rr.set.get(rr.set.eval_indices(4, 0))
    assert torch.equal(saved["x_adv"], 1 - xt)
    assert torch.allclose(saved["clean"], 0.5 * xt + 0.3) and torch.allclose(saved["adv"], 0.5 * (1 - xt) + 0.3)
    assert rr.log.attacks[0][2:4] == (0.3, {"steps": 40})  # the defaults: ε = 0.3, 40 steps


def test_a_cell_counts_the_images_back_from_the_accuracy(rr):
    """15 right of 22: the accuracy 15 / 22 times 22 is 14.999…, the cell still counts 15 images."""
    p = float(np.array([True] * 15 + [False] * 7).mean())  # as defbench.metrics.accuracy computes it
    assert p * 22 < 15
    assert rr.mod._cell(p, 22) == _wilson_cell(15, 22) == "68 (47–84)"


def test_save_refuses_two_variants_that_share_a_file_before_purifying(rr, tmp_path):
    # "ride[alpha=0.5,x]" and "ride[alpha=0.5;x]" both sanitise to ride_alpha=0.5_x_.pt: the second would
    # overwrite the first's hours of purifications without a word
    args = ["--n", "4", "--clean-only", "--variants", "ride[alpha=0.5,x]", "ride[alpha=0.5;x]"]
    with pytest.raises(SystemExit, match=r"would both be saved as ride_alpha=0\.5_x_\.pt"):
        rr.mod.main(args + ["--save", str(tmp_path / "s"), "--out", str(tmp_path / "t.md")])
    assert rr.log.purify == [] and not (tmp_path / "s").exists()


def test_save_keeps_distinct_variants_apart_and_names_them(rr, tmp_path):
    rr.log.clock = iter([0.0, 1.0, 1.0, 2.0])
    save = tmp_path / "s"
    args = ["--n", "4", "--clean-only", "--variants", "ride[alpha=0.5]", "ride[alpha=0.25]", "--save", str(save)]
    assert rr.mod.main(args + ["--out", str(tmp_path / "t.md")]) == 0
    xt, _ = rr.set.get(rr.set.eval_indices(4, 0))
    for label, a in (("ride[alpha=0.5]", 0.5), ("ride[alpha=0.25]", 0.25)):
        saved = torch.load(save / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', label)}.pt")
        assert saved["variant"] == label and torch.allclose(saved["clean"], a * xt + (1 - a) * C)
    # with no --save, the same labels are no error (nothing is written)
    rr.log.clock = iter([0.0, 1.0, 1.0, 2.0])
    args = ["--n", "4", "--clean-only", "--variants", "ride[alpha=0.5,x]", "ride[alpha=0.5;x]"]
    assert rr.mod.main(args + ["--out", str(tmp_path / "u.md")]) == 0
