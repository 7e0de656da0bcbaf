"""A callable defense's identity (``CallableDefense.config()``, part of every cell's key): what the function
computes with changes it (captured values, partial arguments, globals read, attributes, weights, the BPDA
stand-in), the same function gives the same one in every process, and what it does not read leaves it alone."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from defbench.api import CallableDefense

THRESHOLD = 0.5  # read by by_global
UNRELATED = 1  # read by nothing


def cfg(fn, **kw) -> dict:
    return CallableDefense(fn, **kw).config()


def make(t):
    def quantize(x):
        return (x > t).float()

    return quantize


def thresh(x, t):
    return (x > t).float()


def by_global(x):
    return (x > THRESHOLD).float()


def sq(x):
    return (x * 4).round() / 4


def test_closure_values_differ():
    assert cfg(make(0.2)) != cfg(make(0.8))


def test_partial_arguments_differ():
    assert cfg(functools.partial(thresh, t=0.2)) != cfg(functools.partial(thresh, t=0.8))


def test_a_global_value_read_differs(monkeypatch):
    before = cfg(by_global)
    monkeypatch.setattr(sys.modules[__name__], "THRESHOLD", 0.8)
    assert cfg(by_global) != before


def test_numpy_arrays_and_scalars_count_by_value():
    """A numpy array or scalar the function captures counted by its type's name: another array, the same key."""
    import numpy as np

    assert cfg(make(np.array([0.2, 0.3]))) != cfg(make(np.array([0.2, 0.4])))
    assert cfg(make(np.float32(0.2))) != cfg(make(np.float32(0.8)))
    assert cfg(make(np.array([0.2, 0.3]))) == cfg(make(np.array([0.2, 0.3])))  # the same values: the same key


def test_stand_in_given_or_not_differs():
    plain, zero_grad = cfg(sq), cfg(sq, stand_in=lambda x: x * 0.0 + x.detach())
    assert plain != zero_grad and set(plain) == {"callable", "code_sha256"}
    assert cfg(sq, stand_in=lambda x: x * 0.5) != zero_grad


def test_callable_objects_and_bound_methods_by_attributes_and_weights():
    class Scaled(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale, self.conv = scale, nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x) * self.scale

        def purify(self, x):
            return self.conv(x) * self.scale

    def built(scale, seed=0):
        torch.manual_seed(seed)
        return Scaled(scale)

    assert cfg(built(1.0)) == cfg(built(1.0)) and cfg(built(1.0).purify) == cfg(built(1.0).purify)
    assert cfg(built(1.0)) != cfg(built(3.0)) and cfg(built(1.0).purify) != cfg(built(3.0).purify)
    assert cfg(built(1.0).purify) != cfg(built(1.0, seed=1).purify)  # other weights


def test_silent_twins_keep_their_identity(monkeypatch):
    """The same captured value, or a changed global the function does not read: the same config."""
    assert cfg(make(0.2)) == cfg(make(0.2))
    assert cfg(functools.partial(thresh, t=0.2)) == cfg(functools.partial(thresh, t=0.2))
    before = cfg(by_global)
    monkeypatch.setattr(sys.modules[__name__], "UNRELATED", 2)
    assert cfg(by_global) == before


def test_the_same_function_in_two_processes_has_the_same_identity():
    """No memory address (a comprehension's or a lambda's code object) or set order (string hashes) in it."""
    script = textwrap.dedent(
        """
        import functools
        from defbench.api import CallableDefense

        def comp(x):
            return sum([v for v in x]) + len({"a", "b", "c"})

        def outer(x):
            f = lambda v: v + 1
            return f(x)

        def make(t):
            return lambda x: (x > t).float()

        for fn in (comp, outer, make(0.2), functools.partial(make, 0.3)):
            print(CallableDefense(fn).config()["code_sha256"])
        """
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"},
        ).stdout.split()
        for seed in ("1", "2")
    ]  # fmt: skip
    assert len(runs[0]) == 4 and runs[0] == runs[1]


class _Counted:
    """A user's defense object that writes into itself while it purifies (a call counter)."""

    def __init__(self, count: bool):
        self.count, self.calls = count, 0

    def __call__(self, x):
        if self.count:
            self.calls += 1
        return x


def _counted_defense(count: bool):
    from defbench.defenses import Defense

    class CountedDefense(Defense):
        name = "counted"

        def __init__(self):
            super().__init__((1, 28, 28))
            self.count, self.calls = count, 0

        def _purify(self, x, seed):
            if self.count:
                self.calls += 1
            return x

    return CountedDefense()


@pytest.mark.parametrize("kind, named", [("callable", "fn.calls"), ("Defense", "changed calls")])
def test_a_defense_that_changes_its_attributes_keeps_its_rows_and_is_named(capsys, kind, named):
    """Its cells are keyed by what it held before the run: evaluate() read the rows back by keys taken after it
    (calls had moved) and returned none of its cells, silently. Now the rows come back and a warning names what it
    changed; a defense whose state does not move is not named."""
    import defbench

    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    for count in (True, False):
        defense = _Counted(count) if kind == "callable" else _counted_defense(count)
        df = defbench.evaluate(clf, defense, dataset="fmnist", attacks=["fgsm"], n=8, batch_size=8, device="cpu")
        err = capsys.readouterr().err
        assert len(df[df["defense"] != "none"]) == 2, sorted(df["defense"])  # its clean and FGSM cells
        assert (named in err and "while it ran" in err) == count, err
        assert (defense.calls > 0) == count
