"""``defbench train --recipe-opt KEY=VALUE``: one field of the preset's recipe, overridden from the command line (the
GAN readings of docs/MODELS.md, e.g. class feedback, as a command). What reaches the trainer, and every refusal,
one line before any data is loaded. Nothing here trains: test_reliability_cli's stand-ins stop each command."""

from __future__ import annotations

import pytest
from test_reliability_cli import Reached, refused, run

COMMON = ["--dataset", "fmnist", "--preset", "quick", "--device", "cpu", "--no-progress"]


@pytest.fixture
def calls(monkeypatch, tmp_path):
    from defbench.harness import models

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    seen: list = []

    def record(name):
        def stop(*a, **k):
            seen.append((name, k))
            raise Reached()

        return stop

    for f in ("build_classifier_model", "build_gan_model", "build_encoder_model"):
        monkeypatch.setattr(models, f, record(f))
    return seen


def test_recipe_opts_reach_the_trainer_typed_as_the_recipe_field(calls):
    """class_feedback=0.5 arrives as 0.5, feedback_classifier=quick as the string, spectral_norm=true as True,
    feedback_every=20.0 as the int 20 (the field's type); without the flag the trainer gets no override."""
    argv = ["train", "gan", *COMMON, "--recipe-opt", "class_feedback=0.5", "--recipe-opt", "feedback_classifier=quick"]
    assert run([*argv, "--recipe-opt", "spectral_norm=true", "--recipe-opt", "feedback_every=20.0"])[0] is None
    name, k = calls[-1]
    assert name == "build_gan_model"
    assert (k["class_feedback"], k["feedback_classifier"], k["spectral_norm"]) == (0.5, "quick", True)
    assert k["feedback_every"] == 20 and type(k["feedback_every"]) is int
    assert run(["train", "classifier", *COMMON, "--recipe-opt", "lr=0.002"])[0] is None
    assert calls[-1][0] == "build_classifier_model" and calls[-1][1]["lr"] == 0.002
    known = ["--recipe-opt", "optimizer=sgd", "--recipe-opt", "arch=cnn-cleverhans", "--recipe-opt", "train_fraction=1"]
    assert run(["train", "classifier", *COMMON, *known])[0] is None  # a known optimizer, architecture and fraction pass
    k = calls[-1][1]
    assert (k["optimizer"], k["arch"], k["train_fraction"]) == ("sgd", "cnn-cleverhans", 1.0)
    assert run(["train", "encoder", *COMMON, "--recipe-opt", "batch_size=32"])[0] is None
    assert calls[-1][0] == "build_encoder_model" and calls[-1][1]["batch_size"] == 32
    assert (
        run(["train", "gan", *COMMON, "--recipe-opt", "mode_seeking=0", "--recipe-opt", "oversample_class=3"])[0]
        is None
    )
    assert (calls[-1][1]["mode_seeking"], calls[-1][1]["oversample_class"]) == (0.0, 3)  # 0 where the preset's is 0
    assert run(["train", "gan", *COMMON])[0] is None
    assert not {"class_feedback", "feedback_classifier"} & set(calls[-1][1])


@pytest.mark.parametrize(
    "kind, opt, expect",
    [
        ("gan", "class_feedback", "must look like KEY=VALUE"),
        ("gan", "=0.5", "has an empty KEY"),
        ("gan", "feedback=0.5", "the gan recipe has no field 'feedback'; its fields: batch_size"),
        ("gan", "epochs=3", "set epochs with --epochs"),
        ("gan", "subset_fraction=0.8", "set subset_fraction with --subset-fraction"),
        ("encoder", "iterations=9", "set iterations with --iterations"),
        ("gan", "class_feedback=high", "--recipe-opt class_feedback must be a number"),
        ("gan", "spectral_norm=1", "--recipe-opt spectral_norm must be true or false"),
        ("gan", "feedback_classifier=quick", "steers nothing: class_feedback is 0"),  # the recipe's own refusal
        ("gan", "class_feedback=9", "class_feedback must be a number in [0, 4]"),
        ("classifier", "class_feedback=0.5", "the classifier recipe has no field 'class_feedback'"),
        ("classifier", "optimizer=adamw", "unknown optimizer 'adamw'; choose adam or sgd"),  # was read as SGD
        ("classifier", "arch=resnet", "unknown classifier architecture 'resnet'; choose one of:"),
        ("classifier", "train_fraction=1.5", "train_fraction must be in (0, 1]"),
        ("gan", "batch_size=0", "batch_size must be a whole number in [1, 1,000,000], got 0"),
        ("gan", "eval_steps=10000000", "eval_steps must be a whole number in [1, 1,000,000]"),
        ("gan", "lr_g=-0.001", "--recipe-opt lr_g must be > 0, got -0.001"),
        ("gan", "lr_d=0", "--recipe-opt lr_d must be > 0, got 0.0"),
        ("gan", "mode_seeking=-1", "--recipe-opt mode_seeking must be >= 0, got -1.0"),
        ("encoder", "lambda_adv=-1", "--recipe-opt lambda_adv must be > 0"),
    ],
)
def test_bad_recipe_opts_are_refused_in_one_line_before_any_training(kind, opt, expect, calls):
    refused(["train", kind, *COMMON, "--recipe-opt", opt], expect)
    assert calls == []


def test_a_recipe_field_set_twice_is_refused(calls):
    argv = ["train", "gan", *COMMON, "--recipe-opt", "class_feedback=0.5", "--recipe-opt", "class_feedback=1"]
    refused(argv, "sets class_feedback twice")
    assert calls == []


def test_an_option_the_preset_turns_on_can_be_turned_off(calls):
    """The Fashion-MNIST paper preset trains with class feedback (0.5, steered by the quick classifier) and a
    mode-seeking term (1.0): class_feedback=0 with feedback_classifier= turns feedback off (0 is the field's 'off',
    allowed though the preset's value is positive), as mode_seeking=0 turns the term off; class_feedback=0 alone is
    the recipe's refusal, which says what else to set; a negative value is refused as ever."""
    paper = ["--dataset", "fmnist", "--preset", "paper", "--device", "cpu", "--no-progress"]
    off = ["--recipe-opt", "class_feedback=0", "--recipe-opt", "feedback_classifier="]
    assert run(["train", "gan", *paper, *off])[0] is None
    assert (calls[-1][1]["class_feedback"], calls[-1][1]["feedback_classifier"]) == (0.0, "")
    refused(["train", "gan", *paper, "--recipe-opt", "class_feedback=0"], "'--recipe-opt feedback_classifier=' on the")
    refused(["train", "gan", *paper, "--recipe-opt", "class_feedback=-0.5"], "class_feedback must be >= 0, got -0.5")
    refused(["train", "gan", *paper, "--recipe-opt", "lr_g=0"], "--recipe-opt lr_g must be > 0, got 0.0")
    assert run(["train", "gan", *paper, "--recipe-opt", "mode_seeking=0"])[0] is None  # the preset's 1.0, off
    assert calls[-1][1]["mode_seeking"] == 0.0 and len(calls) == 2
