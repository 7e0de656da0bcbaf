"""benchmarks/classifier_swap.py: Fig. 5(b)'s values by cell, and the cells' wiring on stand-in models."""

from __future__ import annotations

from argparse import Namespace

import numpy as np
import pytest
import torch
from conftest import import_benchmark, md_row


@pytest.fixture(scope="module")
def cs():
    return import_benchmark("classifier_swap")


def test_paper_values_are_fig5b_cells(cs):
    assert cs.paper_value(None, "none") == 91.5
    assert cs.paper_value("fgsm", "defensegan") == 46.6
    assert cs.paper_value("bim", "mimicgan") == 68.0
    assert cs.paper_value("pgd", "none") == 5.4
    assert cs.paper_value(None, "defensegan") is None  # the paper prints no defended clean accuracy


class _Threshold(torch.nn.Module):
    """Class 1 when the mean pixel exceeds 0.5, else 0 (its gradient points the attacks at the threshold); Φ is
    the mean pixel itself, so a detection score is how far the defense moved it."""

    def features(self, x):
        return x.flatten(1).mean(1, keepdim=True)

    def head(self, m):
        return torch.cat([0.5 - m, m - 0.5], 1) * 100

    def forward(self, x):
        return self.head(self.features(x))


class _Purify:
    def __init__(self, fn):
        self.fn = fn

    def purify(self, x, seed):
        return self.fn(x)


def test_cells_score_each_defense_on_the_attacked_images(cs):
    """The undefended cell scores the attack's images; a defense that restores mid-grey images scores its own
    output; the clean row takes the clean purification handed in, not a new one."""
    x = torch.cat([torch.full((4, 1, 28, 28), 0.3), torch.full((4, 1, 28, 28), 0.7)])
    y = torch.tensor([0] * 4 + [1] * 4)
    clf = _Threshold()
    defenses = {"keep": _Purify(lambda z: z), "restore": _Purify(lambda z: x.clone())}
    clean_purified = {"keep": x, "restore": torch.full_like(x, 0.7)}  # every image read as class 1
    got = cs.cells(clf, x, y, defenses, ["fgsm"], 0.3, 0, clean_purified)
    right = {k: v[0] for k, v in got.items()}
    assert right[(None, "none")].all() and right[(None, "keep")].all()
    assert np.array_equal(right[(None, "restore")], (y == 1).numpy())  # the handed-in clean purification
    assert not right[("fgsm", "none")].any() and not right[("fgsm", "keep")].any()  # ε 0.3 crosses the threshold
    assert right[("fgsm", "restore")].all()
    assert got[("fgsm", "none")][1] is None
    # scores: |Φ(x_in) − Φ(x̂)| = how far the defense moved the mean pixel; 'restore' undoes FGSM's 0.3 exactly
    assert np.allclose(got[("fgsm", "keep")][1], 0) and np.allclose(got[("fgsm", "restore")][1], 0.3, atol=1e-5)
    assert np.allclose(got[(None, "restore")][1], [0.4] * 4 + [0.0] * 4, atol=1e-5)
    # detection by InvGAN's protocol: every clean image right, every FGSM image a success; 'restore' scores the
    # attacked images 0.3 against clean scores of 0.4 (the dark half) and 0 (the bright half): AUC 0.5
    assert cs.detection_cell(got, "fgsm", "restore", y.numpy()).startswith("0.500 ")
    assert cs.detection_cell(got, "fgsm", "keep", y.numpy()) == "—"  # every score 0: no AUC (roc_auc: NaN)


def test_a_stopped_run_keeps_the_seeds_it_finished(cs, monkeypatch, tmp_path):
    """The table is written after every image seed: a run stopped during seed 1 leaves seed 0's cells, and says
    the run is not finished; a finished run pools both seeds' images."""
    from _common import GrayBoxSetup

    x = torch.cat([torch.full((4, 1, 28, 28), 0.3), torch.full((4, 1, 28, 28), 0.7)])
    y = torch.tensor([0] * 4 + [1] * 4)

    def setup(n, seed, defenses):
        if seed == 9:
            raise KeyboardInterrupt  # the run stopped during this seed
        return GrayBoxSetup(x, y, _Threshold(), {"defensegan": _Purify(lambda z: x.clone())}, 8)

    monkeypatch.setattr(cs, "gray_box_setup", setup)
    monkeypatch.setattr(cs, "cleverhans_cnn", lambda seed, progress: (_Threshold(), {"history": []}))
    out = tmp_path / "t.md"
    args = ["--n", "8", "--defenses", "defensegan", "--attacks", "fgsm", "--eps", "0.3", "--out", str(out)]
    with pytest.raises(KeyboardInterrupt):
        cs.main([*args, "--seeds", "3", "9"])
    text = out.read_text()
    assert "seeds 3 of 2: the run is not finished" in text
    assert md_row(text, "ours (2 conv + FC 256, 15 epochs)", "FGSM")[2:] == ["0 (0–32)", "100 (68–100)"]
    assert cs.main([*args, "--seeds", "3", "4"]) == 0
    text = out.read_text()
    assert "seeds 3, 4)" in text and "not finished" not in text
    assert md_row(text, "ours (2 conv + FC 256, 15 epochs)", "FGSM")[2:] == ["0 (0–19)", "100 (81–100)"]


def test_scratch_classifier_is_cached_per_dataset(cs, tmp_path, monkeypatch):
    """The same recipe and seed trained on MNIST and on Fashion-MNIST are two files: each dataset loads its own
    weights (here saved by hand, so nothing trains) and never the other one's."""
    from defbench.classifiers.models import build_classifier

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path))
    monkeypatch.setattr(cs, "train_classifier", lambda *a, **k: pytest.fail("trained though the file was there"))
    recipe = cs.MODEL_A_RECIPE
    saved = {}
    for k, dataset in enumerate(("fmnist", "mnist")):
        torch.manual_seed(k)
        net = build_classifier(dataset, recipe.arch)
        path = tmp_path / "scratch" / f"classifier-{dataset}-{recipe.arch}-s0.pt"
        path.parent.mkdir(exist_ok=True)
        torch.save(net.state_dict(), path)
        path.with_suffix(".json").write_text(f'{{"dataset": "{dataset}"}}')
        saved[dataset] = net.state_dict()
    for dataset in ("mnist", "fmnist"):
        model, metrics = cs.scratch_classifier(recipe, 0, False, dataset=dataset)
        assert metrics == {"dataset": dataset}
        for name, w in model.state_dict().items():
            assert torch.equal(w, saved[dataset][name]), (dataset, name)


def test_recipes_are_the_cited_codes(cs):
    """The tutorial's recipe (cleverhans 2.x mnist_tutorial_tf: NB_EPOCHS 6, BATCH_SIZE 128, Adam at a constant
    LEARNING_RATE 1e-3) and InvGAN whitebox.py's (Model A, Adam at 1e-3, batch 128, 10 epochs), each on its own
    architecture; --other names them, the tables title them."""
    t, a = cs.CLEVERHANS_RECIPE, cs.MODEL_A_RECIPE
    assert (t.epochs, t.batch_size, t.optimizer, t.lr, t.schedule, t.arch) == (
        6,
        128,
        "adam",
        1e-3,
        "constant",
        "cnn-cleverhans",
    )
    assert (a.epochs, a.batch_size, a.optimizer, a.lr, a.schedule, a.arch) == (
        10,
        128,
        "adam",
        1e-3,
        "constant",
        "cnn-defensegan-a",
    )
    assert not t.augment and not a.augment and t.train_fraction == a.train_fraction == 1.0
    assert cs.OTHERS == {"tutorial": t, "model-a": a}
    assert cs.OTHER_TITLES == {"tutorial": "tutorial CNN", "model-a": "Model A"}


def test_chosen_classifiers_and_epoch_accuracies(cs):
    assert cs.chosen(Namespace(only=None, other="model-a")) == ["zoo", "model-a"]
    assert cs.chosen(Namespace(only="zoo", other="model-a")) == ["zoo"]
    assert cs.chosen(Namespace(only="other", other="tutorial")) == ["tutorial"]
    history = [{"test_accuracy": 0.9012}, {"test_accuracy": 0.915}]
    assert cs.epoch_accuracies({"history": history}) == "90.12, 91.50" and cs.epoch_accuracies({}) == ""


def test_scratch_classifier_trains_on_the_train_split_with_its_seed_and_returns_eval_models(cs, tmp_path, monkeypatch):
    """A missing classifier trains on the train split (scored on the test split) with the seed asked for, is saved
    under that seed, and comes back in eval mode (Model A's dropout off), trained now or loaded from the file."""
    from defbench.classifiers.models import build_classifier

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path))
    monkeypatch.setattr(cs, "data_root", lambda: tmp_path / "data")
    monkeypatch.setattr(cs, "load_dataset", lambda dataset, split, root: (dataset, split, root))
    calls = []

    def fake_train(dataset, train, test, recipe, seed, device, progress):
        calls.append((dataset, train, test, recipe, seed, str(device), progress))
        torch.manual_seed(seed)
        return build_classifier(dataset, recipe.arch).train(), {"clean_test_accuracy": 0.9}

    monkeypatch.setattr(cs, "train_classifier", fake_train)
    recipe = cs.MODEL_A_RECIPE
    model, metrics = cs.scratch_classifier(recipe, 3, False, dataset="mnist")
    data = tmp_path / "data"
    assert calls == [("mnist", ("mnist", "train", data), ("mnist", "test", data), recipe, 3, "cpu", False)]
    assert not model.training and not any(m.training for m in model.modules())
    path = tmp_path / "scratch" / "classifier-mnist-cnn-defensegan-a-s3.pt"
    assert path.is_file() and metrics == {"clean_test_accuracy": 0.9}
    loaded, metrics = cs.scratch_classifier(recipe, 3, False, dataset="mnist")  # from the file: no training
    assert len(calls) == 1 and metrics == {"clean_test_accuracy": 0.9} and not loaded.training
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded(x), model(x)) and torch.equal(loaded(x), loaded(x))  # eval: dropout off
    cs.scratch_classifier(recipe, 4, False, dataset="mnist")  # another seed: another file, trained anew
    assert [c[4] for c in calls] == [3, 4]


def test_fmnist_classifier_by_name(cs, monkeypatch):
    """``zoo``: the paper preset's Fashion-MNIST classifier; the others: their recipe's seed-0 model, titled with its
    test accuracy."""
    import defbench.harness.models as hm

    got = []
    monkeypatch.setattr(
        hm,
        "get_classifier",
        lambda d, p, data_root: got.append((d, p, data_root)) or ("c", {"id": "i", "sha256": "f" * 64}),
    )
    monkeypatch.setattr(
        cs, "scratch_classifier", lambda r, s, prog: got.append((r, s)) or ("m", {"clean_test_accuracy": 0.91234})
    )
    assert cs.fmnist_classifier("zoo", "R") == ("c", "the paper preset's classifier from the zoo (i@ffffffffff)")
    assert cs.fmnist_classifier("model-a") == ("m", "Model A (91.23% on the test set; seed 0)")
    assert got == [("fmnist", "paper", "R"), (cs.MODEL_A_RECIPE, 0)]


def test_cells_attack_the_predicted_labels_unless_told(cs):
    """Image 0 is a 1 (mean 0.45) the threshold reads as 0: FGSM on the predicted label pushes it away from 0,
    to 0.55, where it reads right; on the true label it pushes it to 0.35, still wrong. Image 1 (0.7, a 1) is
    right and FGSM at ε 0.1 leaves it at 0.6 either way (the true and predicted labels agree)."""
    x = torch.cat([torch.full((1, 1, 28, 28), 0.45), torch.full((1, 1, 28, 28), 0.7)])
    y = torch.tensor([1, 1])
    pred = cs.cells(_Threshold(), x, y, {}, ["fgsm"], 0.1, 0, {})[("fgsm", "none")][0]
    true = cs.cells(_Threshold(), x, y, {}, ["fgsm"], 0.1, 0, {}, labels="true")[("fgsm", "none")][0]
    assert pred.tolist() == [True, True] and true.tolist() == [False, True]


def test_cells_seed_the_attack_with_the_image_seed(cs, monkeypatch):
    """Each attack runs right after torch.manual_seed(seed) (PGD's random start): a stand-in attack that adds
    torch.rand noise gives the noise of that seed, whatever the global generator's state before."""
    x = torch.full((3, 1, 28, 28), 0.2)
    y = torch.tensor([0, 0, 0])
    monkeypatch.setattr(cs, "get_attack", lambda name, ds, eps, labels: lambda clf, x, y: x + eps * torch.rand_like(x))
    torch.manual_seed(123)
    got = cs.cells(_Threshold(), x, y, {"keep": _Purify(lambda z: x)}, ["pgd"], 0.1, 7, {"keep": x})
    noise = 0.1 * torch.rand(x.shape, generator=torch.Generator().manual_seed(7))
    # the score is |mean(attacked) − mean(purified)| = the mean of each image's noise
    assert np.allclose(got[("pgd", "keep")][1], noise.flatten(1).mean(1).numpy(), atol=1e-6)


def test_detection_cell_by_hand(cs):
    """Negatives: clean scores of the images the bare classifier gets right; positives: the defended scores of
    the attacked images whose attack succeeded among those. Hand-made rows: clean right on 0-4 (5 wrong); the
    attack succeeds on 1, 2, 3, 5 (5 excluded: its clean image was wrong)."""
    y = np.zeros(6, int)
    res = {
        (None, "none"): (np.array([1, 1, 1, 1, 1, 0], bool), None),
        ("fgsm", "none"): (np.array([1, 0, 0, 0, 1, 0], bool), None),
        (None, "d"): (None, np.array([0.1, 0.2, 0.3, 0.4, 0.5, 9.0])),
        ("fgsm", "d"): (None, np.array([9.0, 0.35, 0.45, 0.6, 0.0, 0.0])),
    }
    # negatives 0.1..0.5 (5), positives 0.35, 0.45, 0.6 (3): pairs ranked right 3 + 4 + 5 = 12 of 15 -> 0.8
    assert cs.detection_cell(res, "fgsm", "d", y).startswith("0.800 (")
    from defbench.metrics import auc_interval

    lo, hi = auc_interval(0.8, 5, 3)
    assert cs.detection_cell(res, "fgsm", "d", y) == f"0.800 ({lo:.2f}–{hi:.2f})"


def _z_wilson(k, n, z=1.959963984540054):
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return f"{100 * k / n:.0f} ({100 * (c - h):.0f}–{100 * (c + h):.0f})"


def test_report_pools_the_seeds_and_pairs_the_classifiers_by_image(cs):
    """Two image seeds of 4 images each, by hand: the PGD / Defense-GAN cell is right on 3 of 8 images with our
    classifier and 7 of 8 with the tutorial CNN (images 2, 3, 5, 6 only the tutorial's; none only ours)."""
    from conftest import md_row

    def seed(pgd_dg):
        ones, s = np.ones(4, bool), np.linspace(0.1, 0.4, 4)
        return {
            (None, "none"): (ones, None),
            (None, "defensegan"): (ones, s),
            ("pgd", "none"): (~ones, None),
            ("pgd", "defensegan"): (np.array(pgd_dg, bool), s + 1),
        }

    runs = {
        "ours": [seed([1, 1, 0, 0]), seed([1, 0, 0, 0])],
        "tutorial": [seed([1, 1, 1, 1]), seed([1, 1, 1, 0])],
    }
    args = Namespace(
        n=4, seeds=[0, 1], attacks=["pgd"], defenses=["defensegan"], eps=0.15, labels="predicted", train_seed=0
    )
    truth = [np.zeros(4, int), np.zeros(4, int)]
    text = "\n".join(cs.report(args, ["x"], runs, truth, {"history": []}, 1.0, [0, 1]))
    assert md_row(text, "paper (Fig. 5(b))", "PGDM")[2] == "5.4"  # Fig. 5(b)'s PGDM, No Defense
    assert md_row(text, "ours", "PGDM")[2:] == [_z_wilson(0, 8), _z_wilson(3, 8)]
    assert md_row(text, "tutorial", "PGDM")[2:] == [_z_wilson(0, 8), _z_wilson(7, 8)]
    # tutorial minus ours: 100 * (7 - 3) / 8 = +50 points; 4 only the tutorial's against 0: p = 2 * 0.5**4
    assert md_row(text, "PGDM")[1:] == ["+0 (0 / 0, p = 1)", f"+50 (4 / 0, p = {2 * 0.5**4:.2g})"]
    assert md_row(text, "clean")[1:] == ["+0 (0 / 0, p = 1)", "+0 (0 / 0, p = 1)"]


def test_main_hands_each_seed_and_the_defaults_on(cs, monkeypatch, tmp_path):
    """The defaults are the spec's reading (ε 0.15, predicted labels); the tutorial CNN trains with --train-seed;
    every purification and attack of an image seed is seeded by that seed."""
    from _common import GrayBoxSetup

    x = torch.full((2, 1, 28, 28), 0.7)
    y = torch.tensor([1, 1])
    seen = {"purify": [], "attack": [], "train": []}

    class Defense:
        def purify(self, z, seed):
            seen["purify"].append(seed)
            return z

    def attack(name, ds, eps, labels):
        seen["attack"].append((name, eps, labels, torch.initial_seed()))
        return lambda clf, z, t: z

    monkeypatch.setattr(
        cs, "gray_box_setup", lambda n, s, d: GrayBoxSetup(x, y, _Threshold(), {"defensegan": Defense()}, 2)
    )
    monkeypatch.setattr(cs, "cleverhans_cnn", lambda s, p: seen["train"].append(s) or (_Threshold(), {"history": []}))
    monkeypatch.setattr(cs, "get_attack", attack)
    args = ["--n", "2", "--defenses", "defensegan", "--attacks", "fgsm", "--seeds", "5", "--train-seed", "2"]
    assert cs.main([*args, "--out", str(tmp_path / "t.md")]) == 0
    assert seen["train"] == [2]
    assert seen["attack"] == [("fgsm", 0.15, "predicted", 5)] * 2  # one attack per classifier
    assert seen["purify"] == [5] * 3  # the clean purification, then the attacked images under each classifier
