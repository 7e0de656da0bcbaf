"""Defense options are checked when the defense is built: a value of the wrong type (a bool given as a string,
a fraction where a count is due), a non-finite number or a meaningless combination is a one-line DefbenchError
naming the defense and the option, never a truthy string recorded in the config, a NaN output or a TypeError at
purify time. Valid options build as before, with the config hashes stored cells are keyed by."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.defenses.projection import ProjectionConfig
from defbench.cli.options import key_value
from defbench.defenses.registry import base_name, build_defense
from defbench.defenses.ride import RIDE, RIDEConfig


class StubModels:
    """A ModelSource with fixed manifests (a config hash depends on them, not on the weights)."""

    def __init__(self, G, D):
        from defbench.defenses.priors import Encoder

        torch.manual_seed(1)
        self.G, self.D, self.E = G, D, Encoder(1, 28).eval()

    def get_gan(self, *a, **k):
        return self.G, self.D, {"id": "g", "sha256": "x"}

    def get_encoder(self, *a, **k):
        return self.E, {"id": "e", "sha256": "y"}


@pytest.fixture(scope="module")
def models(random_gan):
    return StubModels(*random_gan)


def build(label, models, **overrides):
    return build_defense(label, "fmnist", overrides=overrides, models=models)


# ------------------------------------------------------------------ D1: a bool must be a bool


@pytest.mark.parametrize(
    "label, option, shown",
    [
        ("ride[split_iterations=False]", "split_iterations", "'False'"),  # not JSON: kept as the string 'False'
        ('ride[nms="false"]', "nms", "'false'"),
        ("ride[nms=maybe]", "nms", "'maybe'"),
        ("ride[target_noise=0]", "target_noise", "0"),
        ("cowboy[adv_against_sum=1]", "adv_against_sum", "1"),
    ],
)
def test_a_bool_option_given_as_anything_but_true_or_false_is_refused(label, option, shown, models):
    with pytest.raises(DefbenchError) as err:
        build(label, models)
    msg = str(err.value)
    assert f"defense {base_name(label)}" in msg and f"option {option}={shown}" in msg and "bool" in msg, msg


def test_defense_opt_values_are_checked_like_variant_options():
    with pytest.raises(DefbenchError, match="option split_iterations='False' \\(str\\) must be a bool"):
        build_defense("ride", "fmnist", overrides=dict([key_value("split_iterations=False", "--defense-opt", "")]))
    # JSON's false is the bool: accepted, and really off
    assert (
        build_defense(
            "ride", "fmnist", overrides=dict([key_value("split_iterations=false", "--defense-opt", "")])
        ).cfg.split_iterations
        is False
    )


def test_a_bool_option_changes_the_output_it_names(fmnist_images):
    """nms=false built from a label is exactly RIDEConfig(nms=False), and differs from nms=true (with two
    checkpoints: NMS acts between them), so a string taken as true could not pass for false."""
    x, _ = fmnist_images
    small = dict(iterations=2, checkpoints=2, estimate_samples=1, noise_block=1)
    off = build_defense("ride[nms=false]", "fmnist", overrides=small)
    on = build_defense("ride[nms=true]", "fmnist", overrides=small)
    assert off.cfg.nms is False and on.cfg.nms is True
    direct = RIDE(RIDEConfig.for_dataset("fmnist", nms=False, **small), shape=(1, 28, 28))
    a = off.purify(x[:2], seed=0)
    assert torch.equal(a, direct.purify(x[:2], seed=0))
    assert not torch.equal(a, on.purify(x[:2], seed=0))


# ------------------------------------------------------------------ D3: wrong types fail at build time


@pytest.mark.parametrize(
    "label, option, shown, want",
    [
        ("median[kernel_size=abc]", "kernel_size", "'abc'", "an int"),
        ("median[kernel_size=2.5]", "kernel_size", "2.5", "an int"),
        ("median[kernel_size=true]", "kernel_size", "True", "an int"),
        ("tvm[weight=abc]", "weight", "'abc'", "a float"),
        ("tvm[weight=true]", "weight", "True", "a float"),
        ("defensegan[latent_steps=2.5]", "latent_steps", "2.5", "an int"),
        ("defensegan[restarts=1.5]", "restarts", "1.5", "an int"),
        ("defensegan[restarts=true]", "restarts", "True", "an int"),
        ('defensegan[lr="10"]', "lr", "'10'", "a float"),
        ("mimicgan[surrogate=3]", "surrogate", "3", "a str"),
        ("ride[iterations=2.5]", "iterations", "2.5", "an int"),
        ("ride[dropout=true]", "dropout", "True", "a float"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_at_build_time(label, option, shown, want, models):
    with pytest.raises(DefbenchError) as err:
        build(label, models)
    msg = str(err.value)
    assert f"defense {base_name(label)}: option {option}={shown}" in msg and f"must be {want}" in msg, msg


# ------------------------------------------------------------------ D2: non-finite and meaningless numbers


@pytest.mark.parametrize(
    "label, extra, msg",
    [
        ("defensegan[lr=NaN]", {}, "lr must be a finite number"),
        ("defensegan[lr=Infinity]", {}, "lr must be a finite number"),
        ("defensegan[lr=-1]", {}, "lr must be a finite number >= 0"),
        ("defensegan[lr=0]", {}, "lr must be > 0"),
        ("defensegan[momentum=NaN]", {}, "momentum must be a finite number"),
        ("cowboy[lambda_adv=-0.001]", {}, "lambda_adv must be a finite number >= 0"),
        ("mimicgan[lambda_identity=Infinity]", {}, "lambda_identity must be a finite number"),
        ("mimicgan[surrogate_lr=NaN]", {}, "surrogate_lr must be a finite number"),
        ("defensegan[init=mean,mean_samples=0,restarts=1]", {}, "mean_samples must be >= 1"),
        ("tvm[weight=NaN]", {}, "tvm weight must be a finite number > 0"),
        ("tvm[weight=Infinity]", {}, "tvm weight must be a finite number > 0"),
        ("ride[lr=Infinity]", {}, "lr must be finite"),
        ("ride[weight_decay=Infinity]", {}, "weight_decay finite"),
    ],
)
def test_non_finite_or_meaningless_numbers_are_refused(label, extra, msg, models):
    with pytest.raises(DefbenchError, match=msg):
        build(label, models, **extra)


def test_projection_config_refuses_non_finite_numbers_when_built_directly():
    for bad in ({"lr": float("nan")}, {"momentum": float("inf")}, {"lambda_adv": float("nan")}):
        with pytest.raises(DefbenchError, match="finite"):
            ProjectionConfig(**bad)
    with pytest.raises(DefbenchError, match="mean_samples must be >= 1"):
        ProjectionConfig(init="mean", restarts=1, mean_samples=0)
    # zero where zero means something stays valid: a frozen surrogate, no adversarial or identity term
    ProjectionConfig(surrogate_lr=0.0, lambda_adv=0.0, lambda_identity=0.0, momentum=0.0)
    ProjectionConfig(init="random", mean_samples=0)  # mean_samples is unused without init=mean


# ------------------------------------------------------------------ D6: init=mean has one start per image


def test_mean_init_with_several_restarts_is_refused(models):
    with pytest.raises(DefbenchError, match="same latent"):
        ProjectionConfig(init="mean", restarts=4)
    with pytest.raises(DefbenchError, match="same latent"):
        build("mimicgan[surrogate=identity,restarts=3]", models)
    assert PAPER_CONFIGS["mimicgan"].init == "mean" and PAPER_CONFIGS["mimicgan"].restarts == 1
    ProjectionConfig(init="mean", restarts=1)


def test_every_paper_spec_and_quick_preset_defense_still_builds(models):
    """No paper table or preset relies on anything now refused (init=mean with restarts, a string bool...)."""
    from defbench.harness.matrix import QUICK_DEFENSE_OVERRIDES
    from defbench.harness.papers import TABLES

    labels = {m.defense for t in TABLES.values() for c in t.cells if c.measure for m in c.measure.members}
    assert len(labels) > 20
    for label in sorted(labels):
        build(label, models)
        build(label, models, **QUICK_DEFENSE_OVERRIDES.get(base_name(label), {}))


# ------------------------------------------------------------------ silent twin: valid options, same hashes

#: config hashes of valid configurations as recorded before the option checks existed (stored cells are keyed
#: by them: they must never change by accident; session 48 changed those of an int given for a float option on
#: purpose, to the float's: one setting, one key)
STORED_HASHES = [
    ("none", {}, "2c48ce4d4395"),
    ("median[kernel_size=5]", {}, "2dc7bcbbd449"),
    ("tvm", {}, "ea6316232e25"),
    ("tvm[method=bregman,weight=0.075]", {}, "3fcba40cb913"),
    # an int where a float is due: that float, one key with weight=1.0 (recorded as given, 767dcb1a599c, until s48)
    ("tvm[weight=1]", {}, "9831c719ddb6"),
    ("tvm[weight=1.0]", {}, "9831c719ddb6"),
    ("ride", {}, "bf7178056ff3"),
    ("ride", {"iterations": 100}, "137e0e63965b"),
    ("ride[alpha=1,dropout=0,nms=false]", {}, "13b65ad7e4c4"),  # as given until s48: c8f4a6a2d3d9
    ("ride[alpha=1.0,dropout=0.0,nms=false]", {}, "13b65ad7e4c4"),
    ("ride[iterations=400,split_iterations=true]", {}, "62074a01db8c"),
    ("defensegan", {}, "e21c59fab09b"),
    ("defensegan", {"latent_steps": 50, "restarts": 4}, "947e30cd51ff"),
    ("defensegan[latent_steps=200,restarts=1]", {}, "856ee3486520"),
    ("defensegan[init=encoder,restarts=1]", {}, "f6f1df48664e"),
    ("cowboy", {}, "dc7a233f36b6"),
    ("invgan[latent_steps=0]", {}, "c5cb964a3ff4"),
    ("invgan[restarts=2]", {}, "b5c08bc0d73a"),
    ("mimicgan", {}, "5379c83b2ce7"),
    ("mimicgan[surrogate=identity]", {}, "06b12be8ad26"),
    ("mimicgan[surrogate_lr=0]", {}, "717beb7c7651"),  # as given until s48: 4216a9f3f822
    ("mimicgan[surrogate_lr=0.0]", {}, "717beb7c7651"),
    ("mimicgan[lambda_identity=0.1,lr=3e-3,surrogate_lr=4e-3,surrogate_range=signed]", {}, "3e2f3654e812"),
    ("mimicgan[gan=no3,latent_steps=75,surrogate_steps=25]", {}, "2f23c5a8504e"),
]


@pytest.mark.parametrize("label, overrides, want", STORED_HASHES)
def test_valid_options_keep_their_config_hash(label, overrides, want, models):
    d = build(label, models, **overrides)
    assert d.config_hash() == want


def test_valid_values_are_recorded_as_their_option_s_type(models):
    assert type(build("tvm[weight=1]", models).config()["weight"]) is float
    d = build("defensegan[lr=10,latent_steps=5]", models)
    assert d.cfg == dataclasses.replace(PAPER_CONFIGS["defensegan"], lr=10.0, latent_steps=5)
    assert type(d.cfg.lr) is float and type(d.cfg.latent_steps) is int


def test_an_int_for_a_float_option_is_that_float_on_every_path():
    """weight=1 and weight=1.0 are one setting: the CLI's type check (check_value) and the registry's (a Python
    caller's overrides) hand the float on, so the config, its hash and the cell key are one (they were two: the
    int was recorded as given). A whole float for an int option is that int; a bool is no number."""
    from defbench.attacks.registry import check_value
    from defbench.defenses.registry import _apply

    assert repr(check_value(1, 1.0, "tvm:weight")) == "1.0" and repr(check_value(5.0, 3, "k")) == "5"
    with pytest.raises(DefbenchError, match="must be a number"):
        check_value(True, 1.0, "tvm:weight")
    one, one_f = (build_defense("tvm", overrides={"weight": w}) for w in (1, 1.0))
    assert repr(one.weight) == "1.0" and one.config() == one_f.config()
    assert repr(_apply(PAPER_CONFIGS["defensegan"], {"lr": 10}, "defensegan").lr) == "10.0"
    assert repr(_apply(PAPER_CONFIGS["defensegan"], {"latent_steps": 10}, "defensegan").latent_steps) == "10"
