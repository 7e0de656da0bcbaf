"""Run options of defbench.evaluate that change a randomized defense's cells (eval_repeats: purifications per image;
eot: draws per BPDA gradient) are in their key: a second call into the same store with another value computes its
own cells and returns them, never the first call's."""

from __future__ import annotations

import pytest
import torch
from conftest import SeededNoise
from torch import nn

import defbench
from defbench import DefbenchError
from defbench.defenses import Defense
from defbench.harness.matrix import MatrixRunner
from defbench.reports.common import repeat_count


def test_eval_repeats_and_eot_key_a_randomized_defense_s_cells(tmp_path, monkeypatch):
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    calls = []
    real = MatrixRunner.compute_cell
    monkeypatch.setattr(MatrixRunner, "compute_cell", lambda self, c: calls.append(c) or real(self, c))
    kw = dict(
        dataset="fmnist", attacks=["fgsm"], threats=["bpda"], n=8, batch_size=8, device="cpu",
        store=str(tmp_path / "s"), baseline=False, preset="quick",
    )  # fmt: skip

    def run(repeats, eot):
        calls.clear()
        df = defbench.evaluate(clf, SeededNoise(0.05), eval_repeats=repeats, eot=eot, **kw)
        assert len(df) == 2  # the clean and the BPDA FGSM cell
        return df

    two = run(2, 2)
    assert len(calls) == 2 and {repeat_count(r) for r in two.to_dict("records")} == {2}
    three = run(3, 2)  # three purifications per image: both cells anew, with three prediction lists each
    assert len(calls) == 2 and {repeat_count(r) for r in three.to_dict("records")} == {3}
    eot3 = run(3, 3)  # EOT 3: the BPDA cell anew, the clean cell (no gradient) reused
    assert [c.threat for c in calls] == ["bpda"]
    assert eot3.set_index("threat").loc["bpda", "attack_config"]["eot"] == 3
    run(3, 3)
    assert calls == []  # nothing changed: every cell reused


def _counting(monkeypatch) -> list:
    calls = []
    real = MatrixRunner.compute_cell
    monkeypatch.setattr(MatrixRunner, "compute_cell", lambda self, c: calls.append(c) or real(self, c))
    return calls


def _linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()


def test_a_randomized_defense_gets_three_repeats_by_default_under_the_paper_preset():
    """eval_repeats=None means what ``defbench matrix`` uses: 3 purifications per image (paper), 1 (quick)."""
    kw = dict(dataset="fmnist", attacks=["fgsm"], n=8, batch_size=8, device="cpu", baseline=False)
    paper = defbench.evaluate(_linear(), SeededNoise(0.05), **kw)
    assert {repeat_count(r) for r in paper.to_dict("records")} == {3}
    assert set(paper["defense_config"].map(lambda c: c["eval_repeats"])) == {3}


def test_attack_params_reach_the_attack_and_its_key(tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    kw = dict(dataset="fmnist", attacks=["pgd"], n=8, batch_size=8, device="cpu", baseline=False, preset="quick")
    kw["store"] = str(tmp_path / "s")
    two = defbench.evaluate(_linear(), lambda x: x, attack_params={"pgd": {"steps": 2}}, **kw)
    row = two.set_index("threat").loc["graybox"]
    assert row["attack_config"]["params"]["steps"] == 2
    calls.clear()
    three = defbench.evaluate(_linear(), lambda x: x, attack_params={"PGD": {"steps": 3}}, **kw)
    assert [c.threat for c in calls] == ["graybox"]  # the PGD cell anew, the clean one reused
    assert three.set_index("threat").loc["graybox", "attack_config"]["params"]["steps"] == 3


class Smooth(Defense):
    """A user's Defense whose only state is a module's weights (config() names nothing)."""

    name = "smooth"

    def __init__(self, seed):
        super().__init__(None, 0)
        torch.manual_seed(seed)
        self.net = nn.Conv2d(1, 1, 3, padding=1)

    def _purify(self, x, seed):
        return self.net(x).clamp(0, 1)


def test_a_defense_s_module_weights_key_its_cells(tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    x = torch.rand(1, 1, 28, 28)
    assert not torch.equal(Smooth(0).purify(x), Smooth(1).purify(x))  # other weights, other images
    kw = dict(dataset="fmnist", attacks=["fgsm"], n=8, batch_size=8, device="cpu", baseline=False, preset="quick")
    kw["store"] = str(tmp_path / "s")
    for seed, computed in ((0, 2), (1, 2), (0, 0), (1, 0)):
        calls.clear()
        defbench.evaluate(_linear(), Smooth(seed), **kw)
        assert len(calls) == computed, (seed, calls)


def _quantize(t):
    def quantize(x):
        return (x > t).float()

    return quantize


def test_two_different_defenses_under_one_name_are_refused():
    """Else the second replaced the first under their shared label: one defense's cells, reported twice."""
    kw = dict(dataset="fmnist", attacks=["fgsm"], n=8, batch_size=8, device="cpu", baseline=False, preset="quick")
    with pytest.raises(DefbenchError, match="two defenses are both named 'quantize'"):
        defbench.evaluate(_linear(), [_quantize(0.2), _quantize(0.8)], **kw)


def test_a_deterministic_purify_that_takes_a_seed_gets_the_seed():
    """purify(x, seed) without randomized=True is a deterministic defense that is still handed the seed."""
    from defbench.api import CallableDefense

    got = []

    def purify(x, seed):
        got.append(seed)
        return x.clamp(0.25, 0.75)

    x = torch.linspace(0, 1, 9).reshape(1, 1, 3, 3)
    out = CallableDefense(purify).purify(x, seed=7)
    assert torch.equal(out, x.clamp(0.25, 0.75)) and got == [7]
