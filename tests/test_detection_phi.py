"""benchmarks/detection_phi.py without training or running a table: the representations it scores by, the inputs
it keeps, the rescored cells (‖r(x_in) − r(x̂)‖ per image, by hand) and the runs main asks for."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from types import SimpleNamespace

import pytest
import torch
from conftest import import_benchmark

from defbench.harness.matrix import Cell
from defbench.harness.paper_spec import Measure

Attack = namedtuple("Attack", "name")


@pytest.fixture(scope="module")
def dp():
    return import_benchmark("detection_phi")


class Net(torch.nn.Module):
    """body.conv1 doubles, body.conv2 triples, Φ = ReLU of that, the head sums Φ."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            OrderedDict(conv1=torch.nn.Conv2d(1, 1, 1, bias=False), conv2=torch.nn.Conv2d(1, 1, 1, bias=False))
        )
        self.out = torch.nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.body.conv1.weight.fill_(2.0)
            self.body.conv2.weight.fill_(3.0)
            self.out.weight.fill_(1.0)

    def features(self, x):
        return torch.relu(self.body(x)).flatten(1)

    def head(self, z):
        return self.out(z)

    def forward(self, x):
        return self.head(self.features(x))


def test_representations_by_hand(dp):
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]]).reshape(2, 1, 1, 2)
    with torch.no_grad():
        r = {k: f(x).tolist() for k, f in dp.representations(Net()).items()}
    assert set(r) == {"Φ", "Φ/‖Φ‖", "logits", "body.conv1", "body.conv2"}
    assert r["body.conv1"] == [[2.0, -4.0], [6.0, 8.0]]  # its own output, before any ReLU
    assert r["body.conv2"] == [[6.0, -12.0], [18.0, 24.0]]
    assert r["Φ"] == [[6.0, 0.0], [18.0, 24.0]]
    assert sum(r["Φ/‖Φ‖"], []) == pytest.approx([1.0, 0.0, 0.6, 0.8])  # per image: 18, 24 over 30
    assert r["logits"] == [[6.0], [42.0]]


def _cell(threat="graybox", name="FGSM"):
    return Cell(0, "invgan", threat, Attack(name) if threat != "none" else None)


def test_kept_inputs_come_back_in_batch_order(dp, tmp_path):
    kept = dp.KeptInputs(tmp_path / "k")
    cell = _cell()
    for b in range(12):  # b10 and b11 sort between b1 and b2 as text
        kept(cell, b, None, torch.full((1, 1), float(b)), torch.full((1, 1), 100.0 + b))
    kept(_cell("none"), 0, None, torch.zeros(3, 1), torch.ones(3, 1))
    x_in, x_hat = kept.load(cell, 12)
    assert x_in.flatten().tolist() == list(range(12))
    assert x_hat.flatten().tolist() == [100.0 + b for b in range(12)]
    with pytest.raises(SystemExit, match="were not kept"):
        kept.load(cell, 11)  # the store's row has other images than those kept
    with pytest.raises(SystemExit, match="were not kept"):
        kept.load(_cell(name="CW"), 1)


def test_readings_are_the_protocol_and_all_images(dp):
    clean = {"threat": "none", "indices": [0, 1, 2], "labels": [0, 0, 0], "preds_undefended": [0, 0, 1]}
    clean["scores"] = [1.0, 3.0, 0.0]
    attacked = {"threat": "graybox", "indices": [0, 1, 2], "labels": [0, 0, 0], "preds_undefended": [5, 0, 5]}
    attacked["scores"] = [2.0, 9.0, 0.5]
    # protocol: negatives 1.0, 3.0 (image 2 wrong when clean), positive 2.0 (image 0; image 1 not fooled): 1 / 2
    assert dp.READINGS["protocol"](clean, attacked) == (0.5, 2, 1)
    # all images: 3 clean against 3 attacked, 6 of 9 pairs ordered (2.0 > 1, 0; 9.0 > all; 0.5 > 0)
    assert dp.READINGS["all images"](clean, attacked) == (pytest.approx(6 / 9), 3, 3)


def test_rescored_cells_by_hand(dp, tmp_path, monkeypatch):
    monkeypatch.setattr(dp, "preset_attack", lambda a, preset: Attack(f"{a.name}@{preset}"))
    auc = Measure("invgan", "graybox", Attack("FGSM"), metric="auc")
    acc = Measure("defensegan", "graybox", Attack("FGSM"))  # an accuracy cell: not scored (no rows here)
    table = SimpleNamespace(
        cells=[
            SimpleNamespace(row="InvGAN", col="FGSM", measure=auc),
            SimpleNamespace(row="DefenseGAN", col="FGSM", measure=acc),
            SimpleNamespace(row="X", col="Y", measure=None),
        ]
    )
    kc, ka = Cell(0, "invgan", "none", None), Cell(0, "invgan", "graybox", Attack("FGSM@quick"))
    rows = {kc: {"labels": [0] * 3, "scores": [0.1, 0.2, 0.3]}, ka: {"labels": [0] * 3, "scores": [0.4, 0.5, 0.6]}}
    run = SimpleNamespace(table=table, seeds=(0,), preset="quick", rows=rows)
    kept = dp.KeptInputs(tmp_path)
    img = lambda v: torch.tensor(v).reshape(3, 1, 1, 2)  # noqa: E731
    kept(kc, 0, None, img([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]), img([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]]))
    kept(ka, 0, None, img([[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]), img([[4.0, 5.0], [0.0, 2.0], [2.0, 2.5]]))
    scorers = {"id": lambda x: x.flatten(1), "square": lambda x: x.flatten(1) ** 2}
    cols, out = dp.rescored_cells(run, kept, scorers)
    assert cols == ["InvGAN · FGSM"]
    assert list(out) == ["id", "square", "pixels ‖x_in − x̂‖", "stored cell"]
    clean_l2, adv_l2 = [5.0, 1.0, 10.0], [5.0, 2.0, 0.5]  # ‖x_in − x̂‖ per image (3-4-5 and 6-8-10 triangles)
    for name in ("id", "pixels ‖x_in − x̂‖"):
        ((c, a),) = out[name]
        assert c["scores"] == pytest.approx(clean_l2) and a["scores"] == pytest.approx(adv_l2), name
        assert c["labels"] == [0] * 3
    ((c, a),) = out["square"]  # ‖(9, 16)‖ = 18.36, ‖(0, 1)‖, ‖(36, 64)‖; attacked: ‖(15, 24)‖, ‖(0, 4)‖, ‖(0, 2.25)‖
    assert c["scores"] == pytest.approx([337**0.5, 1.0, 5392**0.5])
    assert a["scores"] == pytest.approx([801**0.5, 4.0, 2.25])
    assert out["stored cell"] == [(rows[kc], rows[ka])]  # the stored scores, unchanged
    assert rows[kc]["scores"] == [0.1, 0.2, 0.3]


def test_main_runs_the_graybox_and_reparam_cells_per_source(dp, tmp_path, monkeypatch):
    zoo, other, runs, got = Net(), Net(), [], []
    monkeypatch.setattr(dp, "scratch_classifier", lambda recipe, seed, progress: (other, {"history": []}))
    monkeypatch.setattr(dp, "get_classifier", lambda *a, **k: got.append(a) or (zoo, None))
    monkeypatch.setattr(dp, "run_table", lambda table, **k: runs.append((table, k)))
    args = ["--n", "5", "--preset", "quick", "--store", str(tmp_path), "--no-progress"]
    assert dp.main([*args, "--only", "other"]) == 0
    assert dp.main([*args, "--only", "zoo"]) == 0
    assert [g[:3] for g in got] == [("fmnist", "quick", "cpu")] * 2
    (t1, k1), (t2, k2) = runs
    assert k1["classifier"] is other and k2["classifier"] == "zoo"
    assert k1["n"] == 5 and k1["preset"] == "quick"
    measured = {c.measure.threat for c in t1.cells if c.measure is not None}
    assert measured == {"graybox", "reparam"}  # BPDA left out
