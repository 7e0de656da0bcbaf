"""What Defense.purify hands back is checked, whatever a defense's _purify does (found by the API audit): a
defense that writes into its input leaves the caller's batch as it was; NaN/inf, another shape or non-float
output is a one-line error naming the defense (NaN survived the clamp and an argmax of NaN logits read as class 0,
an accuracy number with no error); another float dtype comes back as the input's."""

from __future__ import annotations

import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.base import Defense


class Writes(Defense):
    name = "writes"

    def _purify(self, x, seed):
        return x.mul_(0.5).add_(0.25)  # in place, as a careless plugin might


class Returns(Defense):
    name = "returns"

    def __init__(self, fn, **kw):
        super().__init__(**kw)
        self.fn = fn

    def _purify(self, x, seed):
        return self.fn(x)


X = torch.rand(4, 1, 28, 28)


def test_a_defense_writing_into_its_input_leaves_the_caller_s_batch():
    x = X.clone()
    out = Writes(shape=(1, 28, 28)).purify(x)
    assert torch.equal(x, X) and torch.allclose(out, X * 0.5 + 0.25)


@pytest.mark.parametrize(
    "fn, expect",
    [
        (lambda x: torch.where(x > 0.5, torch.nan, x), "NaN or infinite values in"),
        (lambda x: x.clone().index_fill_(0, torch.tensor([1]), float("inf")), "NaN or infinite values in 1 of 4"),
        (lambda x: x[:, :, :14], "returned shape"),
        (lambda x: x > 0.5, "not floating-point"),
        (lambda x: x.numpy(), "not a torch.Tensor"),
    ],
)
def test_bad_outputs_are_one_line_errors(fn, expect):
    with pytest.raises(DefbenchError, match=expect):
        Returns(fn, shape=(1, 28, 28)).purify(X)


def test_a_good_output_passes_and_keeps_the_input_dtype():
    out = Returns(lambda x: x.double() * 0.9, shape=(1, 28, 28)).purify(X)
    assert out.dtype == X.dtype and torch.allclose(out, X * 0.9)


def test_an_output_past_the_pixel_range_is_clamped_and_its_gradient_passes_straight_through():
    """purify clamps to [0, 1] whatever _purify returns (RIDE's sigmoid and the GAN's tanh never leave it, so only a
    defense that does can show the clamp); purify_autograd clamps the same forward values but passes the gradient
    straight through, also at pixels it clamped (torch's clamp would give 0 there, and the shattered-gradient check
    would count every black background pixel)."""
    d = Returns(lambda x: 2 * x - 0.5, shape=(1, 28, 28))
    out = d.purify(X)
    assert torch.equal(out, (2 * X - 0.5).clamp(0, 1))
    assert (out == 0).any() and (out == 1).any()  # both ends clamped on this batch
    x = X.clone().requires_grad_(True)
    out = d.purify_autograd(x)
    assert torch.equal(out.detach(), (2 * X - 0.5).clamp(0, 1))
    out.sum().backward()
    assert torch.equal(x.grad, torch.full_like(X, 2.0))  # d(2x − 0.5)/dx everywhere, clamped pixels included
