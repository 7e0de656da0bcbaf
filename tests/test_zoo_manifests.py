"""What the zoo records and where (mutation audit of harness/zoo.py and harness/models.py): the manifest each
``build_*_model`` writes (trainers stubbed: the bookkeeping, not the training, is under test), the zoo's location,
and every refusal or flag of the zoo with a case where it fires and one where it stays silent."""

from __future__ import annotations

import dataclasses
import errno
import json
import warnings
from pathlib import Path

import pytest
import torch

from defbench import DefbenchError
from defbench.harness import models, zoo


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A zoo of its own per test: these tests save models under real ids such as gan-fmnist-quick."""
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _save(mid: str = "classifier-fmnist-quick", **manifest) -> zoo.Entry:
    kind, dataset, preset = mid.split("-")[:3]
    meta = {"kind": kind, "dataset": dataset, "preset": preset, "arch": "x", "config": {}, "metrics": {}}
    return zoo.save(mid, {"w": torch.arange(4.0)}, {**meta, **manifest})


# ------------------------------------------------------------------------------------------ where, what id
def test_the_zoo_is_the_zoo_folder_of_defbench_home(home, tmp_path):
    """Checkpoints live in $DEFBENCH_HOME/zoo (the documented place; bpda_causes reads <home>/zoo itself)."""
    e = _save()
    assert e.path == home / "zoo" / "classifier-fmnist-quick.pt" and e.path.is_file()
    assert (home / "zoo" / "classifier-fmnist-quick.json").is_file()
    assert not (home / "classifier-fmnist-quick.pt").exists()
    # manifest_or_none(root=...) reads the zoo folder it is given, not the current one
    other = tmp_path / "other-zoo"
    other.mkdir()
    assert zoo.manifest_or_none("classifier-fmnist-quick", root=other) is None
    (other / "classifier-fmnist-quick.json").write_text(json.dumps({"id": "elsewhere"}))
    assert zoo.manifest_or_none("classifier-fmnist-quick", root=other) == {"id": "elsewhere"}
    assert zoo.manifest_or_none("classifier-fmnist-quick")["sha256"] == zoo.sha256_file(e.path)


def test_save_records_the_files_own_sha256_id_and_version():
    """A manifest handed back to save (a manifest re-saved with new weights, as scripts and tests do) gets the new
    file's sha256 and the id it is saved under, not the values it carried; and the defbench version that saved it."""
    import hashlib

    import defbench

    old = _save("classifier-fmnist-old").manifest
    e = zoo.save("classifier-fmnist-quick", {"w": torch.ones(3)}, old)
    assert e.manifest["sha256"] == hashlib.sha256(e.path.read_bytes()).hexdigest() != old["sha256"]
    assert e.manifest["id"] == "classifier-fmnist-quick" and e.manifest["defbench_version"] == defbench.__version__
    assert json.loads(e.path.with_suffix(".json").read_text()) == e.manifest
    assert torch.equal(zoo.load(e.id)[0]["w"], torch.ones(3))


def test_gan_tag_rounds_the_subset_percentage():
    """0.29 * 100 is 28.999999999999996 in floating point: the tag is sub29, the share the user asked for."""
    assert zoo.gan_tag(0.29, 1) == "sub29-s1" and zoo.gan_tag(0.57, 2) == "sub57-s2"
    assert zoo.parse_gan_tag("sub29-s1") == {"subset_fraction": 0.29, "seed": 1}


def test_build_hint_names_the_dataset_its_manifest_names():
    """A dataset name with a hyphen: the id alone would read dataset 'my' and preset 'data'."""
    _save("gan-my-data-paper-no3", dataset="my-data", preset="paper")
    assert zoo.build_hint("gan-my-data-paper-no3") == (
        "defbench train gan --dataset my-data --preset paper --holdout-class 3 --force"
    )


def test_exists_needs_both_the_checkpoint_and_its_manifest():
    e = _save()
    assert zoo.exists(e.id) and zoo.status(e.id) == "complete"
    e.path.with_suffix(".json").unlink()
    assert not zoo.exists(e.id) and zoo.status(e.id) == "no-manifest"
    _save()
    e.path.unlink()
    assert not zoo.exists(e.id) and zoo.status(e.id) == "no-checkpoint"


# --------------------------------------------------------------------------- refusals: fires / stays silent
def test_a_save_that_cannot_write_says_why_and_leaves_no_temporary_files(home):
    e = _save()  # silent: a writable zoo saves
    e.path.unlink()
    e.path.mkdir()  # a folder (not empty) where the checkpoint goes: the rename onto it fails
    (e.path / "x").write_text("x")
    with pytest.raises(DefbenchError, match=r"cannot save model classifier-fmnist-quick in .*zoo: "):
        _save()
    assert sorted(p.name for p in (home / "zoo").iterdir() if not p.name.endswith(".lock")) == [
        "classifier-fmnist-quick.json",
        "classifier-fmnist-quick.pt",
    ]


def test_a_manifest_sha256_of_the_wrong_length_is_no_sha256():
    e = _save()
    js = e.path.with_suffix(".json")
    m = json.loads(js.read_text())
    zoo.load(e.id)  # silent: 64 hex digits that match
    js.write_text(json.dumps({**m, "sha256": m["sha256"][:12]}))
    with pytest.raises(DefbenchError, match="holds no sha256"):
        zoo.load(e.id)


def test_unreadable_files_are_refused_with_the_os_reason(monkeypatch):
    """Permission denied on the manifest or on the checkpoint (the tests run as root, so the error is raised by
    a stand-in for the read): one line naming the file and the reason."""
    e = _save()
    zoo.load(e.id)  # silent
    real = Path.read_text

    def denied_text(self, *a, **k):
        if self.name.endswith(".json"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", denied_text)
    with pytest.raises(DefbenchError, match=r"manifest .*classifier-fmnist-quick.json is unreadable \(permission"):
        zoo.load(e.id)
    monkeypatch.setattr(Path, "read_text", real)

    def denied_hash(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(zoo, "sha256_file", denied_hash)
    with pytest.raises(DefbenchError, match=r"checkpoint .*classifier-fmnist-quick.pt is unreadable \(permission"):
        zoo.load(e.id)


class _OpensAFile:
    """Unpickled, it calls open(path, "w"): the file's existence says whether the pickle's code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_code_in_a_checkpoint_is_refused_without_running_it(tmp_path, fmt):
    """A checkpoint whose pickle names code to call (sealed with a matching sha256) is refused, and the code is
    never run: the refusal alone does not show that (a full unpickling runs it, then fails on what it returned)."""
    import pickle

    e = _save()
    zoo.load(e.id)  # silent: a plain state dict
    marker = tmp_path / "ran"
    if fmt == "torch":
        torch.save({"w": _OpensAFile(marker)}, e.path)
    else:
        e.path.write_bytes(pickle.dumps({"w": _OpensAFile(marker)}))
    js = e.path.with_suffix(".json")
    js.write_text(json.dumps({**json.loads(js.read_text()), "sha256": zoo.sha256_file(e.path)}))
    with pytest.raises(DefbenchError, match=r"code in the pickle: it names io\.open"):
        zoo.load(e.id)
    assert not marker.exists()


def test_zoo_entries_flag_each_damaged_model_and_no_complete_one():
    _save("classifier-fmnist-quick")
    _save("classifier-mnist-quick").path.unlink()  # manifest only
    _save("gan-mnist-quick").path.with_suffix(".json").unlink()  # checkpoint only
    _save("gan-fmnist-quick").path.with_suffix(".json").write_text("[1, 2]")  # JSON, not a manifest
    _save("encoder-fmnist-quick").path.with_suffix(".json").write_text("{trunc")  # not JSON
    got = {e.id: e.manifest.get("error") for e in zoo.entries()}
    assert got == {
        "classifier-fmnist-quick": None,
        "classifier-mnist-quick": "checkpoint missing (manifest only)",
        "gan-mnist-quick": "manifest missing (checkpoint only)",
        "gan-fmnist-quick": "unreadable manifest",
        "encoder-fmnist-quick": "unreadable manifest",
    }


def test_a_checkpoint_that_does_not_fit_its_architecture_is_refused():
    """A state dict with a layer missing is refused (strict load), never loaded half: the missing layer would keep
    its random initialisation."""
    from conftest import save_classifier

    from defbench.classifiers.models import build_classifier

    torch.manual_seed(0)
    clf = build_classifier("fmnist")
    save_classifier(clf, {})
    got, _ = models.get_classifier("fmnist", "quick", train_missing=False)  # silent: the whole state dict
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), clf.state_dict().values(), strict=True))
    state = clf.state_dict()
    state.pop(next(iter(state)))
    meta = zoo.manifest_or_none("classifier-fmnist-quick")
    zoo.save("classifier-fmnist-quick", state, {k: v for k, v in meta.items() if k != "sha256"})
    with pytest.raises(DefbenchError, match=r"classifier-fmnist-quick does not fit its architecture .*--force"):
        models.get_classifier("fmnist", "quick", train_missing=False)


def test_get_classifier_builds_the_architecture_its_manifest_names():
    from conftest import save_classifier

    from defbench.classifiers.models import build_classifier

    save_classifier(build_classifier("fmnist", "cnn-cleverhans"), {})
    model, manifest = models.get_classifier("fmnist", "quick", train_missing=False)
    assert manifest["arch"] == model.arch == "cnn-cleverhans"


@pytest.mark.parametrize("getter", ["get_classifier", "get_gan", "get_encoder"])
def test_an_unknown_preset_is_refused_by_name(getter):
    with pytest.raises(DefbenchError, match="unknown preset 'fast'; choose one of: quick, paper"):
        getattr(models, getter)("fmnist", "fast", train_missing=False)
    with pytest.raises(DefbenchError, match="is not in the zoo"):  # silent: a known preset gets to the zoo
        getattr(models, getter)("fmnist", "quick", train_missing=False)


# ------------------------------------------------------------------------------------------- drift checks
def test_drift_compares_no_field_the_manifest_lacks_without_a_default():
    """recipe_changes: a field without a default (epochs) that the manifest does not record is not compared; one
    it records otherwise is."""
    from defbench.defenses.train_prior import gan_recipe

    recipe = gan_recipe("fmnist", "quick")
    config = {**dataclasses.asdict(recipe), "seed": 0}
    del config["epochs"]
    assert models.recipe_changes({"config": config}, recipe) == {}
    assert models.recipe_changes({"config": {**config, "epochs": 5}}, recipe) == {"epochs": (5, recipe.epochs)}


# ------------------------------------------------------------------------------- what build_* records
def _images(n_per_class: int = 3):
    from defbench.datasets import ImageData

    labels = torch.arange(10).repeat_interleave(n_per_class)
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 28, 28).contiguous()
    return ImageData("fmnist", "train", labels, "test-source", images, note="test-note")


def test_build_gan_model_records_the_replica_it_trained(monkeypatch):
    """A GAN replica (30% subset, seed 3, class 4 left out) is trained on the training set less class 4, with the
    subset in its recipe, saved after every epoch under gan-fmnist-quick-sub30-s3-no4 and marked complete only
    after the last planned epoch; its manifest names its recipe, seed and class, so it shows no drift."""
    from conftest import stand_in_gan

    from defbench.defenses.train_prior import gan_recipe

    data = _images()
    monkeypatch.setattr(models, "get_classifier", lambda dataset, preset, *a, **k: (f"clf-{preset}", {}))
    monkeypatch.setattr(models, "load_dataset", lambda *a, **k: data)
    G, D = stand_in_gan("fmnist", 0)
    seen, after_first = {}, {}

    def fake_train_gan(dataset, train, classifier, recipe, seed, device, progress, on_epoch, steering=None):
        seen.update(train=train, recipe=recipe, seed=seed, classifier=classifier, steering=steering)
        state = {"G": G.state_dict(), "D": D.state_dict()}
        on_epoch(state, {"epochs_done": 1, "epochs_planned": 2, "best_epoch": 1})
        after_first.update(zoo.manifest_or_none("gan-fmnist-quick-sub30-s3-no4"))
        on_epoch(state, {"epochs_done": 2, "epochs_planned": 2, "best_epoch": 2})

    monkeypatch.setattr(models, "train_gan", fake_train_gan)
    entry = models.build_gan_model(
        "fmnist", "quick", seed=3, progress=False, subset_fraction=0.3, holdout_class=4, epochs=2
    )
    assert entry.id == "gan-fmnist-quick-sub30-s3-no4"
    assert 4 not in seen["train"].labels.tolist() and len(seen["train"]) == 27  # 9 classes of 3 images
    assert seen["train"].images[:, 0, 0, 0].tolist() == [i for i in range(30) if i // 3 != 4]
    assert seen["recipe"] == gan_recipe("fmnist", "quick", subset_fraction=0.3, epochs=2) and seen["seed"] == 3
    assert seen["classifier"] == seen["steering"] == "clf-quick"  # no feedback_classifier: the preset's steers
    m = entry.manifest
    assert (m["kind"], m["dataset"], m["preset"], m["arch"]) == ("gan", "fmnist", "quick", "dcgan28")
    assert m["config"] == {**dataclasses.asdict(seen["recipe"]), "seed": 3, "holdout_class": 4}
    assert m["classifier"] == "classifier-fmnist-quick" and m["metrics"]["epochs_done"] == 2
    assert after_first["complete"] is False and m["complete"] is True
    assert zoo.manifest_or_none(entry.id) == m
    # its 2 epochs (the preset trains 1) are its one difference: the subset and seed are the id's
    assert models.model_drift(entry.id, m) == ["epochs: trained 2, preset 1"] and models.unfinished(m) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models.get_gan("fmnist", "quick", train_missing=False, tag="sub30-s3-no4")
    (drift,) = [str(w.message) for w in caught]  # one warning: no unfinished run, no other difference
    assert "another recipe than its preset's today (epochs: trained 2, preset 1)" in drift


def test_build_gan_model_names_the_architecture_of_the_image_size(monkeypatch):
    from conftest import stand_in_gan

    monkeypatch.setattr(models, "get_classifier", lambda *a, **k: (None, {}))
    monkeypatch.setattr(models, "load_dataset", lambda *a, **k: None)
    monkeypatch.setattr(models, "_save_grid", lambda *a, **k: None)
    G, D = stand_in_gan("cifar10", 0)

    def fake_train_gan(dataset, train, classifier, recipe, seed, device, progress, on_epoch, steering=None):
        on_epoch({"G": G.state_dict(), "D": D.state_dict()}, {"epochs_done": 1, "epochs_planned": 1})

    monkeypatch.setattr(models, "train_gan", fake_train_gan)
    assert models.build_gan_model("cifar10", "quick", progress=False).manifest["arch"] == "dcgan32"


def test_build_gan_model_hands_the_recipes_steering_classifier_to_the_trainer(monkeypatch):
    """feedback_classifier='paper' on the quick preset: the paper classifier is loaded and steers, the quick one
    selects; naming the preset's own classifier loads nothing more."""
    from conftest import stand_in_gan

    asked, seen = [], {}

    def get_classifier(dataset, preset, *a, **k):
        asked.append(preset)
        return f"clf-{preset}", {}

    monkeypatch.setattr(models, "get_classifier", get_classifier)
    monkeypatch.setattr(models, "load_dataset", lambda *a, **k: None)
    monkeypatch.setattr(models, "_save_grid", lambda *a, **k: None)
    G, D = stand_in_gan("fmnist", 0)

    def fake_train_gan(dataset, train, classifier, recipe, seed, device, progress, on_epoch, steering=None):
        seen.update(classifier=classifier, steering=steering)
        on_epoch({"G": G.state_dict(), "D": D.state_dict()}, {"epochs_done": 1, "epochs_planned": 1})

    monkeypatch.setattr(models, "train_gan", fake_train_gan)
    m = models.build_gan_model("fmnist", "quick", progress=False, class_feedback=0.5, feedback_classifier="paper")
    assert asked == ["quick", "paper"] and seen == {"classifier": "clf-quick", "steering": "clf-paper"}
    assert m.manifest["config"]["feedback_classifier"] == "paper"
    asked.clear()
    models.build_gan_model("fmnist", "quick", progress=False, class_feedback=0.5, feedback_classifier="quick")
    assert asked == ["quick"] and seen == {"classifier": "clf-quick", "steering": "clf-quick"}


def test_build_classifier_model_records_its_recipe_seed_and_data(monkeypatch):
    from defbench.classifiers.models import build_classifier
    from defbench.classifiers.train import recipe_for

    data = _images()
    monkeypatch.setattr(models, "load_dataset", lambda *a, **k: data)
    seen = {}

    def fake_train(dataset, train, test, recipe, seed, device, progress):
        seen.update(recipe=recipe, seed=seed)
        return build_classifier(dataset), {"clean_test_accuracy": 0.5}

    monkeypatch.setattr(models, "train_classifier", fake_train)
    entry = models.build_classifier_model("fmnist", "quick", seed=7, progress=False, epochs=1)
    assert seen == {"recipe": recipe_for("fmnist", "quick", epochs=1), "seed": 7}
    m = entry.manifest
    assert entry.id == "classifier-fmnist-quick" and m["config"] == {**dataclasses.asdict(seen["recipe"]), "seed": 7}
    assert (m["kind"], m["arch"], m["data_source"], m["data_note"]) == (
        "classifier",
        "cnn-2conv2fc",
        "test-source",
        "test-note",
    )
    # trained for 1 epoch at seed 7 under the preset's id (2 epochs, seed 0): both differences are named
    assert models.model_drift(entry.id, m) == ["epochs: trained 1, preset 2", "seed: trained 7, id 0"]


def test_build_encoder_model_records_the_gan_it_inverts(monkeypatch):
    """The encoder of replica s2 is trained on G of gan-fmnist-quick-s2 and records that GAN's id and sha256."""
    from conftest import save_gan, stand_in_gan

    from defbench.defenses.priors import Encoder
    from defbench.defenses.train_prior import encoder_recipe

    save_gan(*stand_in_gan("fmnist", 1), tag="s2")
    save_gan(*stand_in_gan("fmnist", 2))  # the main GAN: another model
    seen = {}

    def fake_train_encoder(dataset, G, recipe, seed, device, progress):
        seen.update(G=G, recipe=recipe, seed=seed)
        return {"E": Encoder(1, 28).state_dict()}, {"latent_error": 0.1}

    monkeypatch.setattr(models, "train_encoder", fake_train_encoder)
    entry = models.build_encoder_model("fmnist", "quick", seed=2, progress=False, tag="s2", iterations=5)
    gan = zoo.manifest_or_none("gan-fmnist-quick-s2")
    assert models.model_sha256(seen["G"]) == gan["sha256"] != zoo.manifest_or_none("gan-fmnist-quick")["sha256"]
    m = entry.manifest
    assert entry.id == "encoder-fmnist-quick-s2" and (m["gan"], m["gan_sha256"]) == (gan["id"], gan["sha256"])
    assert seen["recipe"] == encoder_recipe("quick", iterations=5) and seen["seed"] == 2
    assert m["config"] == {**dataclasses.asdict(seen["recipe"]), "seed": 2}
    assert models.model_drift(entry.id, m) == ["iterations: trained 5, preset 400"]


def test_get_gan_reads_a_manifest_written_before_spectral_norm_and_pack_as_their_defaults():
    """A GAN trained before the recipe had spectral_norm and pack records neither: it was a plain, unpacked D,
    and loads into one (and warns of no drift under a preset that does not turn them on)."""
    from conftest import stand_in_gan

    from defbench.defenses.train_prior import gan_recipe

    G, D = stand_in_gan("fmnist", 0)
    config = {**dataclasses.asdict(gan_recipe("fmnist", "quick")), "seed": 0}
    del config["spectral_norm"], config["pack"]
    state = {f"G.{k}": v for k, v in G.state_dict().items()} | {f"D.{k}": v for k, v in D.state_dict().items()}
    meta = {"kind": "gan", "dataset": "fmnist", "preset": "quick", "arch": "dcgan28", "metrics": {}}
    zoo.save("gan-fmnist-quick", state, {**meta, "config": config})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, loaded, _ = models.get_gan("fmnist", "quick", train_missing=False)
    assert loaded.state_dict().keys() == D.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in D.state_dict().items())


def test_drift_names_a_gan_whose_left_out_class_is_not_its_id_s():
    """A GAN trained without class 3 stored as gan-mnist-quick (a renamed file), or one trained on every class
    stored as ...-no3, is another model than its id says: drift names the class either way, and stays silent
    where the manifest and the id agree (a manifest written before the field: no class left out)."""
    from defbench.defenses.train_prior import gan_recipe

    base = {**dataclasses.asdict(gan_recipe("mnist", "quick")), "seed": 0}

    def manifest(**config):
        return {"kind": "gan", "dataset": "mnist", "preset": "quick", "config": {**base, **config}}

    assert models.model_drift("gan-mnist-quick", manifest(holdout_class=None)) == []
    assert models.model_drift("gan-mnist-quick", manifest()) == []
    assert models.model_drift("gan-mnist-quick-no3", manifest(holdout_class=3)) == []
    assert models.model_drift("gan-mnist-quick", manifest(holdout_class=3)) == ["holdout_class: trained 3, id None"]
    assert models.model_drift("gan-mnist-quick-no3", manifest()) == ["holdout_class: trained None, id 3"]
    assert models.model_drift("gan-mnist-quick-no3", manifest(holdout_class=5)) == ["holdout_class: trained 5, id 3"]
