"""Square, the built-in score-based attack, and the report check it exists for: a gradient-free attack on the
defended model must not beat the gradient-based ones (sanity check (d))."""

import pytest
import torch

from defbench import DefbenchError
from defbench.attacks import get_attack
from defbench.reports.sanity import sanity_flags


def test_square_options_are_checked_and_keyed():
    atk = get_attack("square", "mnist", eps=0.1, n_queries=200.0)
    assert atk.params["n_queries"] == 200 and isinstance(atk.params["n_queries"], int)
    cfg = atk.config()
    assert cfg["family"] == "square" and cfg["iterative"] and cfg["bounded"] and cfg["eps"] == 0.1
    assert cfg["params"] == {"n_queries": 200, "n_restarts": 1, "p_init": 0.8, "seed": None}
    assert get_attack("square", "cifar10").eps == pytest.approx(8 / 255)  # the dataset's default budget
    assert get_attack("square", "mnist", seed=3.0).params["seed"] == 3
    bad_options = ({"n_queries": 0}, {"n_restarts": 1.5}, {"p_init": 0.0}, {"p_init": 1.2}, {"seed": -1}, {"seed": "1"})
    for bad in bad_options + ({"seed": True}, {"seed": 0.5}):
        with pytest.raises(DefbenchError, match="square"):
            get_attack("square", "mnist", **bad)


def test_square_is_seeded_and_reads_no_gradient(tiny_classifier, fmnist_images):
    """One seed, one output (torchattacks reseeds from it on each call), another seed another search; without a
    seed, the global generator's state decides (the harness seeds it per cell and batch); the model
    is only queried: a forward whose backward would raise does not stop it, and it still flips images."""
    model, _ = tiny_classifier
    x, y = fmnist_images

    class NoBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            return v.clone()

        @staticmethod
        def backward(ctx, g):
            raise AssertionError("Square asked for a gradient")

    class Queried(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, v):
            return self.model(NoBackward.apply(v))

    run = lambda seed: get_attack("square", "fmnist", eps=0.3, n_queries=50, seed=seed)(Queried(), x, y)  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    draws = []
    for global_seed in (5, 5, 6):  # no seed: one drawn from the global generator, which the harness seeds per batch
        torch.manual_seed(global_seed)
        draws.append(run(None))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    with torch.no_grad():
        assert (model(a).argmax(1) == y).sum() < (model(x).argmax(1) == y).sum()


def mirror(x):
    """A purification whose identity stand-in is wrong: the gradient BPDA hands back is the mirrored image's."""
    return x.flip(-1)


def keep(x):
    """A purification the identity stand-in matches exactly."""
    return x.clone()


def test_square_beating_bpda_fires_check_d_and_stays_silent_where_bpda_is_exact(tiny_classifier):
    """End to end through the runner (32 seeded test images, ε 0.2): behind ``mirror`` BPDA-PGD follows the wrong
    gradient and Square, querying f ∘ mirror itself, leaves fewer images right (measured 3 against 10 of 32), so the
    report says the white-box attack is masked; behind ``keep`` PGD is the stronger (4 against 9) and nothing is
    said."""
    import defbench

    df = defbench.evaluate(
        tiny_classifier[0].eval(),
        [mirror, keep],
        dataset="fmnist",
        attacks=["pgd", "square"],
        threats=["bpda"],
        eps=0.2,
        n=32,
        batch_size=32,
        attack_params={"pgd": {"steps": 10}, "square": {"n_queries": 300}},
    )
    acc = {(r.defense, r.attack): r.accuracy for r in df.itertuples()}
    assert acc[("user:mirror", "square")] < acc[("user:mirror", "pgd")]
    assert acc[("user:keep", "pgd")] < acc[("user:keep", "square")]
    flags = [f for f in sanity_flags(df.to_dict("records")) if "white-box" in f]
    assert len(flags) == 1, flags
    assert flags[0].startswith("Suspicious white-box results on user:mirror: the score-based attack Square (bpda)")
    assert "PGD under bpda" in flags[0] and flags[0].endswith("far from what the defense computes.")
