"""Every paper spec runs end to end through ``defbench paper run`` on real test images (a fake ImageNet folder for
the ImageNet tables), with tiny models in a temporary zoo and every budget shrunk: the printed table holds paper,
ours and delta for every measured cell, and "ours" is a number. The numbers mean nothing here; the plumbing is
what is tested (variants, GAN replicas, corruptions, anomaly AUC, pooled cells, stratified sampling)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from defbench.cli import main
from defbench.harness.papers import TABLES

from conftest import have_data, save_gan, stand_in_gan

TINY_DEFENSE = {
    "defensegan": {"latent_steps": 3, "restarts": 1},
    "cowboy": {"latent_steps": 3, "restarts": 1},
    "mimicgan": {"outer_iters": 1, "surrogate_steps": 2, "latent_steps": 2},
    "invgan": {"latent_steps": 3},
    "ride": {"iterations": 3, "checkpoints": 1},
}
TINY_ATTACK = {
    "cw": {"steps": 2, "binary_search_steps": 1},
    "deepfool": {"steps": 2},
    "pgd": {"steps": 2, "step": None},
    "bim": {"steps": 2},
}
#: images per cell: at least one image of most classes where a table needs them (anomaly AUC)
N = {"mimicgan-table2": 40, "ride-table1": 4, "ride-table2-imagenet": 4, "ride-fig5a": 4}


def _save_gan(dataset: str, tag: str, seed: int) -> None:
    save_gan(*stand_in_gan(dataset, seed), dataset, tag)


def _save_encoder(dataset: str, tag: str = "") -> None:
    from defbench.defenses.priors import Encoder
    from defbench.harness import zoo
    from defbench.harness.data import SHAPES

    torch.manual_seed(1)
    c, h, _ = SHAPES[dataset]
    enc = Encoder(c, h)
    zoo.save(
        zoo.model_id("encoder", dataset, "quick", tag),
        {f"E.{k}": v for k, v in enc.state_dict().items()},
        {
            "kind": "encoder",
            "dataset": dataset,
            "preset": "quick",
            "arch": "invgan-encoder",
            "config": {},
            "metrics": {},
        },
    )


def _save_classifier(dataset: str) -> None:
    from defbench.classifiers.models import build_classifier
    from defbench.harness import zoo

    torch.manual_seed(2)
    model = build_classifier(dataset)
    zoo.save(
        zoo.model_id("classifier", dataset, "quick"),
        model.state_dict(),
        {
            "kind": "classifier",
            "dataset": dataset,
            "preset": "quick",
            "arch": model.arch,
            "config": {"seed": 2},
            "metrics": {},
        },
    )


@pytest.fixture(scope="module")
def paper_zoo(tiny_zoo):
    """tiny_zoo (Fashion-MNIST) plus untrained stand-ins for every other model a spec asks for."""
    from defbench.harness import zoo

    for t in ("sub80-s1", "sub80-s2", "sub80-s3"):
        _save_gan("fmnist", t, seed=int(t[-1]))
    _save_encoder("fmnist")
    if have_data("mnist"):
        _save_classifier("mnist")
        for k in range(10):
            _save_gan("mnist", f"no{k}", seed=10 + k)
        _save_gan("mnist", "", seed=20)
        _save_encoder("mnist")
    if have_data("cifar10"):
        _save_classifier("cifar10")
    assert zoo.exists("gan-fmnist-quick-sub80-s2")
    return tiny_zoo


class TinyImageNet(nn.Module):
    """Stands in for torchvision's ResNet-50 (no weights offline): Φ = pooled conv features, 1000 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(32, 1000)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture
def fake_imagenet(tmp_path, monkeypatch):
    from PIL import Image

    from defbench.harness import models

    wnids = [f"n{i:08d}" for i in range(1000)]
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for w in (wnids[1], wnids[500], wnids[999]):
        (root / "imagenet" / "val" / w).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(rng.integers(0, 256, (240, 250, 3), dtype=np.uint8)).save(
                root / "imagenet" / "val" / w / f"{j}.JPEG"
            )
    (root / "imagenet" / "LOC_synset_mapping.txt").write_text("".join(f"{w} name\n" for w in wnids))
    monkeypatch.setattr(models, "load_imagenet_resnet50", lambda: TinyImageNet().eval())
    return root


@pytest.fixture
def tiny_budgets(monkeypatch):
    from defbench.harness import matrix

    for name, over in TINY_DEFENSE.items():
        monkeypatch.setitem(matrix.QUICK_DEFENSE_OVERRIDES, name, over)
    for name, params in TINY_ATTACK.items():
        monkeypatch.setitem(matrix.QUICK_ATTACK_PARAMS, name, params)


def _check_printed(table, text: str, n: int, threat_n: dict[str, int]) -> None:
    assert "| row | column | paper | ours | 95% CI | delta | match | n | note |" in text
    for c in table.cells:
        line = next(l for l in text.splitlines() if l.startswith(f"| {c.row} | {c.col} |"))
        cols = [s.strip() for s in line.strip("|").split("|")]
        paper, ours, delta, got_n = cols[2], cols[3], cols[5], cols[7]
        if c.paper is None:
            assert paper == "—" and delta == "—", line
        else:
            assert float(paper.split(" ± ")[0]) == pytest.approx(table.paper_value(c)), line
        if c.measure is None:
            assert ours == "—", line
            continue
        value = float(ours.split(" ± ")[0])
        assert not math.isnan(value) and 0 <= value <= (100 if table.metric == "accuracy" else 1), line
        assert got_n == str(threat_n.get(c.measure.threat, n)), line
        if c.paper is not None:
            assert float(delta) == pytest.approx(value - table.paper_value(c), abs=0.011), line
        if len(c.measure.members) > 1 and c.measure.how == "mean":
            assert " ± " in ours, line  # spread over GAN replicas / classes


def _dataset_ok(table) -> None:
    if table.dataset != "imagenet" and not have_data(table.dataset):
        pytest.skip(f"{table.dataset} not available offline")


SLOW = {
    "ride-table1",
    "ride-table2-imagenet",
    "ride-table2-cifar10",
    "ride-fig5a",
    "mimicgan-fig9b",
    "mimicgan-table2",
    "invgan-fig4",
}


@pytest.mark.parametrize("tid", [pytest.param(t, marks=pytest.mark.slow) if t in SLOW else t for t in TABLES])
def test_paper_spec_end_to_end(tid, paper_zoo, tiny_budgets, tmp_path, capsys, request):
    table = TABLES[tid]
    _dataset_ok(table)
    n = N.get(tid, 8)
    args = [
        "paper",
        "run",
        tid,
        "--n",
        str(n),
        "--preset",
        "quick",
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    if table.dataset == "imagenet":
        args += ["--data-root", str(request.getfixturevalue("fake_imagenet"))]
    threat_n = {"bpda": max(2, n // 2)} if "bpda" in table.threats else {}  # BPDA cells on a subset
    args += [f"--n-threat={t}={k}" for t, k in threat_n.items()]
    assert main(args) == 0
    text = capsys.readouterr().out
    _check_printed(table, text, n, threat_n)
    assert (tmp_path / "o" / f"{tid}.csv").is_file()
    assert (tmp_path / "o" / f"{tid}.png").is_file() == bool(table.figure)
