"""The model zoo under faults (issue 16): every damaged, tampered or half-there model is refused with its
reason and never silently retrained over; two processes that need one model train it once."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from defbench import DefbenchError
from defbench.cli import main
from defbench.harness import models, zoo

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def save(mid: str = "classifier-fmnist-quick") -> zoo.Entry:
    kind, dataset, preset = mid.split("-")[:3]
    return zoo.save(
        mid,
        {"w": torch.arange(6.0)},
        {"kind": kind, "dataset": dataset, "preset": preset, "arch": "x", "config": {}, "metrics": {}},
    )


def reseal(e: zoo.Entry) -> None:
    """Make the manifest's sha256 match the file again (a tamperer who knows the format)."""
    js = e.path.with_suffix(".json")
    m = json.loads(js.read_text())
    m["sha256"] = zoo.sha256_file(e.path)
    js.write_text(json.dumps(m))


def refused(mid: str, *words: str) -> str:
    with pytest.raises(DefbenchError) as err:
        zoo.load(mid)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_reasons(home):
    e = save()
    raw = e.path.read_bytes()
    e.path.write_bytes(raw[: len(raw) // 2])
    refused(e.id, "sha256", "hash mismatch", "truncated")
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0x10
    e.path.write_bytes(bytes(flipped))
    refused(e.id, "hash mismatch", "bit-flipped")
    e.path.write_bytes(pickle.dumps({"w": Payload()}))  # code in the pickle, sealed with a matching hash
    reseal(e)
    refused(e.id, "code in the pickle")
    torch.save([torch.zeros(2)], e.path)
    reseal(e)
    refused(e.id, "not a state dict", "list")
    torch.save({"w": "text"}, e.path)
    reseal(e)
    refused(e.id, "not a state dict", "not a named tensor")
    e.path.write_bytes(b"garbage")
    reseal(e)
    refused(e.id, "not a defbench checkpoint", "not a torch state dict file")


def test_manifest_reasons(home):
    e = save()
    js = e.path.with_suffix(".json")
    text = js.read_text()
    js.write_text(text[: len(text) // 2])
    refused(e.id, "not JSON", "line")
    js.write_text(json.dumps({"kind": "classifier"}))
    refused(e.id, "holds no sha256")
    js.write_bytes(b"\xff\xfe\x00")
    refused(e.id, "not UTF-8")


@pytest.mark.parametrize("gone", ["pt", "json"])
def test_half_there_is_reported_not_retrained(home, gone, capsys, monkeypatch):
    e = save("classifier-fmnist-quick")
    (e.path if gone == "pt" else e.path.with_suffix(".json")).unlink()
    expect = (
        "checkpoint classifier-fmnist-quick.pt is gone"
        if gone == "pt"
        else "manifest classifier-fmnist-quick.json is gone"
    )
    refused(e.id, expect, "--force")

    def no_training(*a, **k):
        raise AssertionError("retrained over a half-there model")

    monkeypatch.setattr(models, "build_classifier_model", no_training)
    with pytest.raises(DefbenchError, match="is gone"):
        models.get_classifier("fmnist", "quick")  # train_missing=True: still refused
    assert main(["train", "classifier", "--dataset", "fmnist", "--preset", "quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is gone" in err and "--force" in err
    assert main(["zoo", "list"]) == 0
    assert "missing" in capsys.readouterr().out
    assert main(["zoo", "show", e.id]) == 2
    assert "is gone" in capsys.readouterr().err


def test_zoo_show_names_an_unreadable_manifest_and_shows_a_sound_one(home, capsys):
    """zoo show prints a model's manifest; a manifest that is there but not JSON is named as unreadable with the
    command that rebuilds the model (not 'no model'), in one line."""
    e = save("classifier-fmnist-quick")
    assert main(["zoo", "show", e.id]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == e.id
    e.path.with_suffix(".json").write_text("{not json")
    assert main(["zoo", "show", e.id]) == 2
    err = capsys.readouterr().err
    assert f"manifest of {e.id} in " in err and "is unreadable; rebuild with: defbench train classifier" in err
    assert err.count("\n") == 1


LOADER = textwrap.dedent("""
    import os, sys, time
    import torch
    from defbench.harness import models, zoo
    mid, log, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def build():
        with open(log, "a") as fh:
            fh.write(f"train {os.getpid()}\\n")
        time.sleep(1.5)  # training takes a while; the other process must wait, not train too
        zoo.save(mid, {"w": torch.arange(3.0)}, {"kind": "classifier", "dataset": "fmnist", "preset": "quick",
                                                "arch": "x", "config": {}, "metrics": {}})

    while time.time() < t0:
        time.sleep(0.005)
    state, m = models._fetch(mid, build, True)
    print("loaded", state["w"].tolist(), m["sha256"][:8])
""")


def test_two_processes_train_one_model_once(home, tmp_path):
    log = tmp_path / "trainings.log"
    t0 = time.time() + 4
    env = {**os.environ, "DEFBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOADER, "classifier-fmnist-lock", str(log), str(t0)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=90) for p in procs]
    for p, (o, e) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and "loaded [0.0, 1.0, 2.0]" in o, e[-2000:]
    assert log.read_text().count("train") == 1
    assert outs[0][0].split()[-1] == outs[1][0].split()[-1]  # the same checkpoint
    # the process that waited says so; the one that held the lock first does not
    assert (outs[0][1] + outs[1][1]).count("waiting for another process") == 1


def test_lock_is_reentrant(home, capsys):
    with zoo.lock("m"), zoo.lock("m"):
        pass
    with zoo.lock("m"):
        pass
    assert capsys.readouterr().err == ""  # an uncontended lock (or one this process holds) waits for no one


def test_a_read_only_zoo_loads_without_a_lock_file(home, monkeypatch):
    """Every load took the zoo's lock, whose file needs write access: the workers of a cluster mounting the zoo
    read-only were refused each model (found by the Ray audit). A zoo this process cannot write loads without a
    lock (the checkpoint's sha256 check stands; a damaged file is still refused); a writable one keeps its lock."""
    e = save()
    for f in zoo.zoo_dir().glob(".*.lock"):
        f.unlink()
    real_access = os.access
    monkeypatch.setattr(zoo.os, "access", lambda p, mode: False if Path(p) == zoo.zoo_dir() else real_access(p, mode))
    state, manifest = models._fetch(e.id, build=None, train_missing=False)
    assert manifest["sha256"] == zoo.sha256_file(e.path) and not list(zoo.zoo_dir().glob(".*.lock"))
    data = bytearray(e.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    e.path.write_bytes(bytes(data))
    with pytest.raises(DefbenchError, match="sha256"):
        models._fetch(e.id, build=None, train_missing=False)
    trained = []  # a model missing from it is refused before training, whose result could not be saved
    with pytest.raises(DefbenchError, match="which this process cannot write"):
        models._fetch("gan-fmnist-quick", build=lambda: trained.append(1), train_missing=True)
    assert trained == []
    monkeypatch.setattr(zoo.os, "access", real_access)  # the silent twin: a writable zoo takes the lock
    save()
    models._fetch(e.id, build=None, train_missing=False)
    assert [f.name for f in zoo.zoo_dir().glob(".*.lock")] == [f".{e.id}.lock"]


def test_save_leaves_no_temporary_files(home):
    save()
    save()
    assert sorted(p.name for p in zoo.zoo_dir().iterdir() if not p.name.endswith(".lock")) == [
        "classifier-fmnist-quick.json",
        "classifier-fmnist-quick.pt",
    ]


def test_training_on_demand_is_said_and_loading_is_quiet(home, capsys):
    """A run that must train a missing model says so on stderr before the (possibly hours-long, otherwise silent
    under --no-progress) training starts; a model already in the zoo loads without a word."""
    built = []

    def build():
        built.append(1)
        save()

    models._fetch("classifier-fmnist-quick", build, train_missing=True)
    err = capsys.readouterr().err
    assert built == [1] and err.count("\n") == 1
    assert "classifier-fmnist-quick is not in the zoo" in err and "training it now" in err
    assert "defbench train classifier --dataset fmnist --preset quick'" in err
    models._fetch("classifier-fmnist-quick", build, train_missing=True)
    assert built == [1] and capsys.readouterr().err == ""
