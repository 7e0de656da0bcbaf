"""tvm's ``iterations`` option: 0 (the default) leaves scikit-image's stopping rule and every existing cell key as
they were; N > 0 runs each solver for exactly N iterations and, at a large N, reaches the minimiser of the stated
objective E_w(u) = w·TV(u) + ½‖u − f‖² (Chambolle) where the default stops short."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.baselines import TVMinimization
from defbench.defenses.registry import build_defense


def _noisy_blocks() -> np.ndarray:
    """A greyscale 28 x 28 image of 4 x 4 flat blocks plus noise, in [0, 1], float64."""
    rng = np.random.RandomState(0)
    return np.clip(np.kron(rng.rand(4, 4), np.ones((7, 7))) + 0.2 * rng.randn(28, 28), 0, 1)


def _energy(u: np.ndarray, f: np.ndarray, w: float) -> float:
    """E_w(u) = w·TV(u) + ½‖u − f‖², TV isotropic with forward differences (zero past the last row and column)."""
    gx, gy = np.diff(u, axis=0, append=u[-1:]), np.diff(u, axis=1, append=u[:, -1:])
    return w * np.sqrt(gx**2 + gy**2).sum() + 0.5 * ((u - f) ** 2).sum()


def _purify(f: np.ndarray, **kw) -> np.ndarray:
    return TVMinimization(shape=(1, 28, 28), **kw).purify(torch.from_numpy(f)[None, None])[0, 0].numpy()


def test_the_default_records_no_iterations_so_existing_keys_stay():
    """iterations=0 is the default and is left out of the config (the cell key); a set value is recorded."""
    assert build_defense("tvm", "mnist").config() == {"weight": 0.1, "method": "chambolle"}
    assert build_defense("tvm[iterations=0]", "mnist").config_hash() == build_defense("tvm", "mnist").config_hash()
    d = build_defense("tvm[iterations=500]", "mnist")
    assert d.config() == {"weight": 0.1, "method": "chambolle", "iterations": 500}
    assert d.config_hash() != build_defense("tvm", "mnist").config_hash()


@pytest.mark.parametrize("method", ["chambolle", "bregman"])
def test_n_iterations_run_exactly_n(method):
    """No early stop: 300 and 301 iterations give different outputs (each solver's own rule would have stopped
    by then: Chambolle at 200 or sooner, split-Bregman at 100 or sooner), and 300 is not the default's output."""
    f = _noisy_blocks()
    a, b = _purify(f, method=method, iterations=300), _purify(f, method=method, iterations=301)
    assert np.abs(a - b).max() > 0
    assert np.abs(a - _purify(f, method=method)).max() > 1e-3


def test_many_chambolle_iterations_reach_the_minimiser_where_the_default_stops_short():
    """At RIDE's Chambolle weight w = 1.75 the default's output scores a higher E_w than its own output at 2w (it
    stops short); with 5000 iterations the output at w has the lowest E_w of the outputs at w/2, w and 2w, and a
    lower E_w than the default's."""
    f, w = _noisy_blocks(), 1.75
    short = {v: _energy(_purify(f, weight=v), f, w) for v in (w / 2, w, 2 * w)}
    assert short[w] > short[2 * w]
    long = {v: _energy(_purify(f, weight=v, iterations=5000), f, w) for v in (w / 2, w, 2 * w)}
    assert long[w] < min(long[w / 2], long[2 * w])
    assert long[w] < short[w] - 1.0


def test_converged_split_bregman_does_not_minimise_the_chambolle_objective():
    """scikit-image's split-Bregman (isotropic) solves another problem: run to 3000 iterations, its output at
    weight w = 0.1 (scikit-image's weight 1/w) scores a higher E_w than its output at 1.4w, so Chambolle's and
    Bregman's weights are not one scale (docs/DEFENSES.md)."""
    f, w = _noisy_blocks(), 0.1
    at = {v: _energy(_purify(f, weight=v, method="bregman", iterations=3000), f, w) for v in (w, 1.4 * w)}
    assert at[w] > at[1.4 * w]


@pytest.mark.parametrize("bad", [-1, 2.5, True, "5"])
def test_iterations_other_than_a_whole_number_from_0_are_refused(bad):
    with pytest.raises(DefbenchError, match="tvm iterations must be a whole number >= 0"):
        TVMinimization(iterations=bad)


def test_the_registry_and_the_cli_take_iterations_as_an_int():
    from defbench.cli.matrix import defense_fields

    assert defense_fields("tvm", "mnist") == {"weight": 0.1, "method": "chambolle", "iterations": 0}
    with pytest.raises(DefbenchError, match="option iterations=2.5 \\(float\\) must be an int"):
        build_defense("tvm", "mnist", overrides={"iterations": 2.5})
    assert build_defense("tvm", "mnist", overrides={"iterations": 7}).iterations == 7
