"""benchmarks/classifier_swap.py: Fig. 5(b)'s values by cell, and the cells' wiring on stand-in models."""

from __future__ import annotations

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
