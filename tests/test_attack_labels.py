"""``labels='predicted'`` (cleverhans' default when no y is given, MimicGAN issue 15 item 1): the attack is handed
the model's own predictions on the clean input; accuracy stays measured against the true labels."""

from __future__ import annotations

from argparse import Namespace

import pytest
import torch
from torch import nn

from defbench import DefbenchError
from defbench.attacks import get_attack


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = (pred + 1) % 10  # every image misclassified: true and predicted labels differ everywhere
    return model, x, y, pred


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_predicted_labels_attack_the_model_prediction(setup, name):
    model, x, y, pred = setup
    torch.manual_seed(1)
    got = get_attack(name, "fmnist", 0.1, labels="predicted")(model, x, y)
    torch.manual_seed(1)
    want = get_attack(name, "fmnist", 0.1)(model, x, pred)  # the same attack handed the predictions
    torch.manual_seed(1)
    true = get_attack(name, "fmnist", 0.1)(model, x, y)
    assert torch.equal(got, want)
    assert not torch.equal(got, true)


@pytest.mark.parametrize("name", ["fgsm", "bim"])
def test_predicted_labels_change_only_the_misclassified_images(setup, name):
    """The bound behind RESULTS' Fig. 5(b) finding: where the model is right on the clean image, the predicted
    label is the true one, so a deterministic attack makes the same image either way; the labels reading can
    move a cell by at most the share of images the model gets wrong when clean."""
    model, x, _, pred = setup
    y = pred.clone()
    y[::2] = (pred[::2] + 1) % 10  # half the images misclassified, half right
    got = get_attack(name, "fmnist", 0.1, labels="predicted")(model, x, y)
    true = get_attack(name, "fmnist", 0.1)(model, x, y)
    right = pred == y
    assert torch.equal(got[right], true[right])
    assert all(not torch.equal(got[i], true[i]) for i in (~right).nonzero().flatten().tolist())


def test_predicted_labels_are_part_of_the_identity():
    plain, pred = get_attack("fgsm", "fmnist", 0.1), get_attack("fgsm", "fmnist", 0.1, labels="predicted")
    assert "labels" not in plain.config() and pred.config()["labels"] == "predicted"
    assert pred.label == "FGSM (predicted labels)" and plain.label == "FGSM"
    with pytest.raises(DefbenchError, match="labels 'guessed' for attack fgsm must be one of: true, predicted"):
        get_attack("fgsm", "fmnist", 0.1, labels="guessed")


def test_attack_opt_takes_the_common_options():
    """``--attack-opt fgsm:labels=predicted`` and the README's ``NAME:output_check=warn`` reach the attack;
    an unknown key is still refused."""
    from defbench.cli.matrix import attack_specs

    args = Namespace(attacks="fgsm,pgd", attack_opt=["fgsm:labels=predicted", "pgd:output_check=warn"], eps=None)
    specs = {s.name: dict(s.params) for s in attack_specs(args, "fmnist")}
    assert specs == {"fgsm": {"labels": "predicted"}, "pgd": {"output_check": "warn"}}
    args.attack_opt = ["fgsm:label=predicted"]
    with pytest.raises(DefbenchError, match="unknown parameter label for attack fgsm"):
        attack_specs(args, "fmnist")


@pytest.mark.parametrize("labels", ["predicted", "true"])
def test_a_cells_universal_fit_reads_the_attacks_labels(monkeypatch, tmp_path, labels):
    """The matrix fits a universal perturbation once per cell (prepare, on the cell's first N images), outside the
    attack's __call__: with labels=predicted that fit took the true labels while the store said predicted."""
    import defbench
    from defbench.attacks.universal import UniversalFGSM

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()  # untrained: most predictions are wrong
    seen = []
    fit = UniversalFGSM.fit

    def spy(self, m, x, y):
        seen.append((x.clone(), y.clone()))
        return fit(self, m, x, y)

    monkeypatch.setattr(UniversalFGSM, "fit", spy)
    df = defbench.evaluate(
        model,
        None,
        dataset="fmnist",
        attacks=["universal-fgsm"],
        attack_params={"universal-fgsm": {"labels": labels}},
        n=20,
        batch_size=20,
        store=str(tmp_path / "store"),
        device="cpu",
    )
    assert len(seen) == 1
    x0, y0 = seen[0]
    with torch.no_grad():
        pred = model(x0).argmax(1)
    row = df[df["attack"] == "universal-fgsm"].iloc[0]
    true = torch.tensor(row["labels"])[:15]  # the cell's first 15 images (universal-fgsm's N): true labels, in order
    assert len(x0) == 15
    assert (pred != true).sum() > len(true) // 2  # the untrained model gets most of them wrong
    assert torch.equal(y0, pred if labels == "predicted" else true)
    assert row["attack_label"].endswith("(predicted labels)") == (labels == "predicted")
