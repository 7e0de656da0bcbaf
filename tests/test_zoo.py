import dataclasses
import json

import pytest
import torch

from defbench import DefbenchError
from defbench.cli import main
from defbench.harness import zoo


@pytest.fixture(autouse=True)
def own_zoo(tmp_path, monkeypatch):
    """These tests save dummy and broken models (arch "x", flipped bytes) under real ids such as
    classifier-fmnist-quick; each gets a zoo of its own, so no later test of the session loads one of them."""
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "own-home"))


def _save_tiny(mid="classifier-fmnist-quick"):
    kind, dataset, preset = mid.split("-")[:3]
    return zoo.save(
        mid,
        {"w": torch.arange(10.0)},
        {"kind": kind, "dataset": dataset, "preset": preset, "arch": "x", "config": {"seed": 0}, "metrics": {}},
    )


def test_roundtrip_and_manifest():
    e = _save_tiny()
    state, m = zoo.load(e.id)
    assert torch.equal(state["w"], torch.arange(10.0))
    assert m["sha256"] == zoo.sha256_file(e.path) and m["config"]["seed"] == 0


def test_flipped_byte_is_caught_and_not_overwritten(capsys):
    e = _save_tiny("classifier-fmnist-flip")
    raw = bytearray(e.path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    e.path.write_bytes(bytes(raw))
    with pytest.raises(DefbenchError, match="sha256"):
        zoo.load(e.id)
    assert e.path.read_bytes() == bytes(raw)  # nothing overwritten


def test_not_a_checkpoint(tmp_path):
    e = _save_tiny("classifier-fmnist-junk")
    e.path.write_bytes(b"this is not a checkpoint")
    m = json.loads(e.path.with_suffix(".json").read_text())
    m["sha256"] = zoo.sha256_file(e.path)
    e.path.with_suffix(".json").write_text(json.dumps(m))
    with pytest.raises(DefbenchError, match="not a defbench checkpoint"):
        zoo.load(e.id)


def test_cli_corrupt_checkpoint_one_line_exit_2(capsys):
    e = _save_tiny("gan-fmnist-paper")
    e.path.write_bytes(b"\x00" * 10)
    from defbench.harness.models import get_gan

    with pytest.raises(DefbenchError) as err:
        get_gan("fmnist", "paper", train_missing=False)
    assert "defbench train gan --dataset fmnist --preset paper" in str(err.value)
    e.path.unlink()


def test_cli_unknown_dataset(capsys):
    rc = main(["train", "classifier", "--dataset", "svhn"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "choose one of" in err and "Traceback" not in err


def test_missing_model_names_command():
    assert not zoo.exists("encoder-cifar10-quick")
    with pytest.raises(DefbenchError, match="defbench train encoder --dataset cifar10 --preset quick"):
        zoo.load("encoder-cifar10-quick")


def test_zoo_list(capsys):
    _save_tiny("classifier-fmnist-listed")
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "classifier-fmnist-listed" in out and "unfinished" not in out
    partial = {"epochs_done": 3, "epochs_planned": 8, "best_epoch": 3}
    zoo.save("gan-fmnist-listed", {"w": torch.zeros(1)}, {"kind": "gan", "complete": False, "metrics": partial})
    assert main(["zoo", "list"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("gan-fmnist-listed")]
    assert line.endswith("(unfinished: 3 of 8 epochs done, epoch 3 kept)")


def test_zoo_list_says_which_models_are_not_their_presets(capsys):
    """`zoo list` marks a model trained otherwise than its id says (the warning its loading gives), and only it."""
    from defbench.classifiers.train import recipe_for

    def save(mid, **config):
        dataset, preset = mid.split("-")[1:3]
        preset_config = {**dataclasses.asdict(recipe_for(dataset, preset)), "seed": 0}
        meta = {"kind": "classifier", "dataset": dataset, "preset": preset, "arch": "x", "metrics": {}}
        zoo.save(mid, {"w": torch.zeros(1)}, {**meta, "config": {**preset_config, **config}})

    save("classifier-fmnist-quick")
    save("classifier-mnist-quick", epochs=9)
    save("classifier-mnist-paper", seed=4)
    assert main(["zoo", "list"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert "preset" not in lines["classifier-fmnist-quick"]
    assert lines["classifier-mnist-quick"].endswith("(not its preset's recipe: epochs: trained 9, preset 1)")
    assert lines["classifier-mnist-paper"].endswith("(not its preset's recipe: seed: trained 4, id 0)")


def test_cli_flipped_byte_in_classifier_one_line_nothing_overwritten(tmp_path, monkeypatch, capsys):
    from defbench.classifiers.models import build_classifier

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    model = build_classifier("fmnist")
    e = zoo.save(
        "classifier-fmnist-quick",
        model.state_dict(),
        {
            "kind": "classifier",
            "dataset": "fmnist",
            "preset": "quick",
            "arch": model.arch,
            "config": {"seed": 0},
            "metrics": {},
        },
    )
    raw = bytearray(e.path.read_bytes())
    raw[100] ^= 0x01
    e.path.write_bytes(bytes(raw))
    rc = main(
        [
            "matrix",
            "--preset",
            "quick",
            "--attacks",
            "none",
            "--defense",
            "none",
            "--n",
            "5",
            "--no-progress",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "sha256" in err and "defbench train classifier --dataset fmnist --preset quick --force" in err
    assert e.path.read_bytes() == bytes(raw)


def test_cli_zero_epochs_is_a_clear_error(capsys):
    assert main(["train", "classifier", "--dataset", "fmnist", "--preset", "quick", "--epochs", "0", "--force"]) == 2
    assert main(["train", "gan", "--dataset", "fmnist", "--preset", "quick", "--epochs", "0", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("defbench: error:") == 2 and "Traceback" not in err


def test_gan_tags_and_their_build_commands():
    from defbench.harness.models import gan_tag, parse_gan_tag

    for kw in (
        {"subset_fraction": 0.8, "seed": 2},
        {"holdout_class": 7},
        {"subset_fraction": 0.8, "seed": 1, "holdout_class": 0},
        {"seed": 3},
        {"seed": 2, "holdout_class": 4},
    ):
        tag = gan_tag(kw.get("subset_fraction", 1.0), kw.get("seed", 0), kw.get("holdout_class"))
        assert parse_gan_tag(tag) == kw
    assert zoo.build_hint("gan-fmnist-paper-sub80-s3") == (
        "defbench train gan --dataset fmnist --preset paper --subset-fraction 0.8 --seed 3 --force"
    )
    assert zoo.build_hint("encoder-mnist-quick-no5").endswith("--preset quick --holdout-class 5 --force")
    assert zoo.build_hint("gan-mnist-paper-s2-no4").endswith("--preset paper --seed 2 --holdout-class 4 --force")
    assert zoo.parse_id("gan-mnist-paper-s2-no4") == ("gan", "mnist", "paper", "s2-no4")
    assert zoo.parse_id("classifier-cifar10-quick") == ("classifier", "cifar10", "quick", "")
    # the manifest's names come first (a hyphenated dataset), the id fills in what it lacks or leaves empty
    hyphen = {"kind": "gan", "dataset": "my-data", "preset": "paper"}
    assert zoo.parse_id("gan-my-data-paper-no3", hyphen) == ("gan", "my-data", "paper", "no3")
    assert zoo.parse_id("gan-other-paper-no3", hyphen) == ("gan", "my-data", "paper", "")
    assert zoo.parse_id("gan-mnist-paper-no3", {"kind": None, "dataset": "mnist"}) == ("gan", "mnist", "paper", "no3")
    for bad in ("sub80", "s1no3", "no3-s1", "s1-"):
        with pytest.raises(DefbenchError, match="must look like sub80-s1"):
            parse_gan_tag(bad)
    with pytest.raises(DefbenchError, match="seed 0 is the default"):
        parse_gan_tag("s0-no3")


def test_a_gan_of_another_seed_gets_its_own_id_and_the_classifier_refuses_one(tmp_path, capsys):
    """Seen: `defbench train gan --seed 1 --holdout-class 4` was saved as gan-mnist-paper-no4, the seed-0 model's
    id (the tag held a seed only beside a subset), so the zoo said the seed-0 model was 'already there' or, with
    --force, replaced it by another model under the same name."""
    from defbench.harness.models import gan_tag

    assert gan_tag(1.0, 1, 4) == "s1-no4" and gan_tag(1.0, 0, 4) == "no4" and gan_tag(1.0, 1, None) == "s1"
    assert main(["train", "classifier", "--dataset", "mnist", "--seed", "1", "--data-root", str(tmp_path)]) == 2
    assert "--seed is for gan and encoder" in capsys.readouterr().err


def _gan_manifest(**config):
    from defbench.defenses.train_prior import gan_recipe

    return {"config": {**dataclasses.asdict(gan_recipe("fmnist", "paper")), "seed": 0, **config}}


def test_recipe_drift_names_the_fields_that_differ():
    from defbench.defenses.train_prior import gan_recipe
    from defbench.harness.models import recipe_drift

    recipe = gan_recipe("fmnist", "paper")
    assert recipe_drift(_gan_manifest(), recipe) == []  # trained as the preset says: silent
    assert recipe_drift(_gan_manifest(epochs=2, lr_d=2e-4), recipe) == [
        "epochs: trained 2, preset 8",
        "lr_d: trained 0.0002, preset 0.0001",
    ]


def test_recipe_drift_reads_a_missing_option_as_its_default():
    """A manifest written before an option existed was trained without it; when the preset turns it on, that
    is drift, not silence."""
    from defbench.defenses.train_prior import gan_recipe
    from defbench.harness.models import recipe_drift

    off = gan_recipe("fmnist", "paper", spectral_norm=False)
    old = {"config": {**dataclasses.asdict(off), "seed": 0}}
    del old["config"]["spectral_norm"]
    assert recipe_drift(old, off) == []
    on = gan_recipe("fmnist", "paper", spectral_norm=True)
    assert recipe_drift(old, on) == ["spectral_norm: trained False, preset True"]


def test_get_gan_warns_on_a_model_of_another_recipe_and_not_on_the_presets(recwarn):
    from defbench.defenses.priors import build_gan
    from defbench.defenses.train_prior import gan_recipe
    from defbench.harness.models import get_gan

    G, D = build_gan("fmnist", spectral_norm=gan_recipe("fmnist", "paper").spectral_norm)
    state = {f"G.{k}": v for k, v in G.state_dict().items()} | {f"D.{k}": v for k, v in D.state_dict().items()}
    meta = {"kind": "gan", "dataset": "fmnist", "preset": "paper", "arch": "dcgan28", "metrics": {}}
    zoo.save("gan-fmnist-paper", state, {**meta, **_gan_manifest()})
    get_gan("fmnist", "paper", train_missing=False)
    assert not [w for w in recwarn if "another recipe" in str(w.message)]
    zoo.save("gan-fmnist-paper", state, {**meta, **_gan_manifest(epochs=3)})
    with pytest.warns(UserWarning, match=r"another recipe .*epochs: trained 3, preset 8.*--force"):
        get_gan("fmnist", "paper", train_missing=False)
    # a model of seed 1 saved under the seed-0 id (as training did before the seed was part of the id)
    zoo.save("gan-fmnist-paper", state, {**meta, **_gan_manifest(seed=1)})
    with pytest.warns(UserWarning, match=r"another recipe .*seed: trained 1, id 0"):
        get_gan("fmnist", "paper", train_missing=False)
    zoo.save("gan-fmnist-paper-s1", state, {**meta, **_gan_manifest(seed=1)})
    recwarn.clear()
    get_gan("fmnist", "paper", train_missing=False, tag="s1")
    assert not [w for w in recwarn if "another recipe" in str(w.message)]


def test_get_classifier_warns_on_a_model_of_another_recipe_and_not_on_the_presets(recwarn):
    """`defbench train classifier --epochs 1` saves under the preset's id: loading it says so (as for a GAN)."""
    from defbench.classifiers.models import build_classifier
    from defbench.classifiers.train import recipe_for
    from defbench.harness.models import get_classifier

    clf = build_classifier("fmnist")
    preset = dataclasses.asdict(recipe_for("fmnist", "paper"))
    meta = {"kind": "classifier", "dataset": "fmnist", "preset": "paper", "arch": clf.arch, "metrics": {}}
    zoo.save("classifier-fmnist-paper", clf.state_dict(), {**meta, "config": {**preset, "seed": 0}})
    get_classifier("fmnist", "paper", train_missing=False)
    assert not [w for w in recwarn if "another recipe" in str(w.message)]
    zoo.save("classifier-fmnist-paper", clf.state_dict(), {**meta, "config": {**preset, "seed": 0, "epochs": 1}})
    wanted = rf"classifier-fmnist-paper .*another recipe .*epochs: trained 1, preset {preset['epochs']}"
    with pytest.warns(UserWarning, match=wanted):
        get_classifier("fmnist", "paper", train_missing=False)
    zoo.save("classifier-fmnist-paper", clf.state_dict(), {**meta, "config": {**preset, "seed": 3}})
    with pytest.warns(UserWarning, match=r"another recipe .*seed: trained 3, id 0.*--force"):
        get_classifier("fmnist", "paper", train_missing=False)


def test_zoo_models_are_handed_back_in_eval_mode(monkeypatch):
    """Every number is measured on the classifier get_classifier returns: it must be in eval mode (dropout off,
    BatchNorm on its running statistics), every submodule included, whether it comes from the zoo or is
    torchvision's ImageNet ResNet-50 (here a stand-in built in training mode), so one input gives one output. The
    same for G, D and the encoder: the matrix puts its models in eval mode again, but a benchmark or a user calling
    get_gan directly would sample G with its batch's statistics. (Each .eval() of the loaders removed alone fails
    this test.)"""
    from conftest import save_classifier

    from defbench.classifiers.models import build_classifier
    from defbench.harness import models

    _gan_and_encoder()  # saved from modules in training mode
    G, D, _ = models.get_gan("fmnist", "paper", train_missing=False)
    enc, _ = models.get_encoder("fmnist", "paper", train_missing=False)
    for name, m in {"G": G, "D": D, "encoder": enc}.items():
        assert not [k for k, sub in m.named_modules() if sub.training], name

    torch.manual_seed(0)
    save_classifier(build_classifier("fmnist").train(), {})
    monkeypatch.setattr(models, "load_imagenet_resnet50", lambda: build_classifier("fmnist").train())
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for dataset in ("fmnist", "imagenet"):
        model, _ = models.get_classifier(dataset, "quick", train_missing=False)
        assert not model.training and not [n for n, m in model.named_modules() if m.training], dataset
        with torch.no_grad():
            assert torch.equal(model(x), model(x)), dataset  # the body's dropout draws nothing


def _gan_and_encoder(tag: str = "", **encoder_config):
    """A stand-in GAN and an encoder trained (as its manifest says) for it, under the paper preset's ids."""
    from defbench.defenses.priors import Encoder, build_gan
    from defbench.defenses.train_prior import encoder_recipe, gan_recipe

    G, D = build_gan("fmnist", spectral_norm=gan_recipe("fmnist", "paper").spectral_norm)
    state = {f"G.{k}": v for k, v in G.state_dict().items()} | {f"D.{k}": v for k, v in D.state_dict().items()}
    seed = zoo.parse_gan_tag(tag).get("seed", 0) if tag else 0
    meta = {"kind": "gan", "dataset": "fmnist", "preset": "paper", "arch": "dcgan28", "metrics": {}}
    gan = zoo.save(zoo.model_id("gan", "fmnist", "paper", tag), state, {**meta, **_gan_manifest(seed=seed)})
    config = {**dataclasses.asdict(encoder_recipe("paper")), "seed": seed, **encoder_config}
    manifest = {"kind": "encoder", "dataset": "fmnist", "preset": "paper", "arch": "invgan-encoder", "metrics": {}}
    manifest |= {"config": config, "gan": gan.id, "gan_sha256": zoo.load(gan.id)[1]["sha256"]}
    enc = {f"E.{k}": v for k, v in Encoder(1, 28).state_dict().items()}
    zoo.save(zoo.model_id("encoder", "fmnist", "paper", tag), enc, manifest)
    return state, meta


def test_get_encoder_warns_on_a_model_of_another_recipe_and_not_on_the_presets(recwarn):
    from defbench.harness.models import get_encoder

    _gan_and_encoder()
    get_encoder("fmnist", "paper", train_missing=False)
    _gan_and_encoder(tag="s2")
    get_encoder("fmnist", "paper", train_missing=False, tag="s2")
    assert not [w for w in recwarn if "another recipe" in str(w.message)]
    _gan_and_encoder(iterations=10000)
    with pytest.warns(UserWarning, match=r"encoder-fmnist-paper .*iterations: trained 10000, preset 3000"):
        get_encoder("fmnist", "paper", train_missing=False)
    _gan_and_encoder(tag="s2", seed=0)  # an encoder of seed 0 under seed 2's id
    with pytest.warns(UserWarning, match=r"encoder-fmnist-paper-s2 .*seed: trained 0, id 2"):
        get_encoder("fmnist", "paper", train_missing=False, tag="s2")


def test_encoder_of_another_gan_is_refused_and_its_own_loads():
    """An encoder inverts the G it was trained on; after the GAN is retrained (`--force`) it no longer does."""
    from defbench.harness.models import get_encoder

    state, meta = _gan_and_encoder()
    _, manifest = get_encoder("fmnist", "paper", train_missing=False)
    assert manifest["gan_sha256"] == zoo.load("gan-fmnist-paper")[1]["sha256"]
    retrained = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    zoo.save("gan-fmnist-paper", retrained, {**meta, **_gan_manifest()})
    with pytest.raises(DefbenchError, match=r"encoder-fmnist-paper was trained for another GAN .*--force"):
        get_encoder("fmnist", "paper", train_missing=False)


def test_cli_prints_a_warning_as_one_line_and_debug_keeps_pythons_format(monkeypatch, capsys):
    import warnings as w

    from defbench.cli import paper

    def warn_and_list(args):
        w.warn("gan-x was trained with another recipe\n  than today's", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(paper, "list_tables", warn_and_list)
    before = w.showwarning
    with w.catch_warnings():
        w.simplefilter("always")
        assert main(["paper", "list"]) == 0
        assert capsys.readouterr().err == "defbench: warning: gan-x was trained with another recipe than today's\n"
    assert w.showwarning is before  # restored after the command
    with w.catch_warnings(record=True) as seen:  # --debug: Python's own warning machinery, untouched
        w.simplefilter("always")
        assert main(["paper", "list", "--debug"]) == 0
    assert "defbench: warning" not in capsys.readouterr().err
    assert [str(x.message) for x in seen] == ["gan-x was trained with another recipe\n  than today's"]


def test_unfinished_reads_the_flag_and_the_epoch_counts():
    from defbench.harness.models import unfinished

    assert unfinished({"complete": True, "metrics": {"epochs_done": 8, "epochs_planned": 8}}) is None
    assert unfinished({"metrics": {}}) is None  # a manifest that records neither is not judged
    assert unfinished({"complete": False, "metrics": {"epochs_done": 3, "epochs_planned": 8, "best_epoch": 1}}) == (
        "3 of 8 epochs done, epoch 1 kept"
    )
    # written before the flag existed: the counts say it
    assert unfinished({"metrics": {"epochs_done": 4, "epochs_planned": 8}}) == "4 of 8 epochs done"


def test_get_gan_warns_on_a_checkpoint_of_a_stopped_run_and_not_on_a_finished_one(recwarn):
    from defbench.defenses.priors import build_gan
    from defbench.defenses.train_prior import gan_recipe
    from defbench.harness.models import get_gan

    G, D = build_gan("fmnist", spectral_norm=gan_recipe("fmnist", "paper").spectral_norm)
    state = {f"G.{k}": v for k, v in G.state_dict().items()} | {f"D.{k}": v for k, v in D.state_dict().items()}
    meta = {"kind": "gan", "dataset": "fmnist", "preset": "paper", "arch": "dcgan28", **_gan_manifest()}
    zoo.save("gan-fmnist-paper", state, {**meta, "complete": True, "metrics": {"epochs_done": 8, "epochs_planned": 8}})
    get_gan("fmnist", "paper", train_missing=False)
    assert not [w for w in recwarn if "unfinished" in str(w.message)]
    partial = {"epochs_done": 2, "epochs_planned": 8, "best_epoch": 2}
    zoo.save("gan-fmnist-paper", state, {**meta, "complete": False, "metrics": partial})
    with pytest.warns(UserWarning, match=r"unfinished training run \(2 of 8 epochs done, epoch 2 kept\)"):
        get_gan("fmnist", "paper", train_missing=False)


def test_the_same_weights_saved_twice_get_the_same_sha256(tmp_path, monkeypatch):
    """The zoo's sha256 is part of every cell's key. torch.save named the archive inside the checkpoint after the
    temporary file it wrote, whose name is random, so one state dict saved twice got two sha256s (two keys, other
    random draws for the same weights); other weights still get another."""
    from defbench.harness import zoo

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    state = torch.nn.Linear(3, 2).state_dict()
    meta = {"kind": "classifier", "dataset": "fmnist", "preset": "quick", "config": {}, "metrics": {}}
    first = zoo.save("classifier-fmnist-quick", state, meta).manifest["sha256"]
    again = zoo.save("classifier-fmnist-quick", state, meta).manifest["sha256"]
    assert first == again
    other = {k: v + 1 for k, v in state.items()}
    assert zoo.save("classifier-fmnist-quick", other, meta).manifest["sha256"] != first
