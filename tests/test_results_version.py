"""The numbers a few small cells give are those recorded for the current RESULTS_VERSION.

Every cell's key holds ``RESULTS_VERSION`` (harness/store.py), so that a store resumed by newer code recomputes
cells whose numbers that code computes differently. The number is only worth what its bumps are: this test runs a
small matrix (a seeded untrained classifier and a stand-in GAN; undefended, median, DefenseGAN, MimicGAN and RIDE
at tiny budgets; FGSM and PGD, gray-box and BPDA with EOT 2 and two evaluation repeats, two batches) and compares
every cell's predictions, detection scores and projection errors with ``results_fingerprint.json``. When they
differ and the version did not move, a change altered what cells compute without saying so: bump RESULTS_VERSION
and record the new numbers with ``python tests/test_results_version.py`` (which refuses to overwrite the numbers
of the same version). It covers the paths these cells take, not every defense option or attack.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import have_data, save_classifier, save_gan, stand_in_gan  # noqa: E402

from defbench.harness.store import RESULTS_VERSION  # noqa: E402

FINGERPRINT = Path(__file__).resolve().parent / "results_fingerprint.json"
DEFENSES = (
    "none",
    "median",
    "defensegan[latent_steps=2,restarts=2]",
    "mimicgan[outer_iters=1,latent_steps=2,surrogate_steps=2,mean_samples=20]",
    "ride[iterations=2,checkpoints=1,estimate_samples=1,noise_block=1]",
)


def cells_numbers(out: Path) -> dict[str, dict]:
    """Run the small matrix into ``out`` (in the zoo of the current DEFBENCH_HOME) and return its cells' numbers,
    by (defense, threat, attack)."""
    from defbench.classifiers.models import build_classifier
    from defbench.harness.matrix import AttackSpec, MatrixRunner, MatrixSpec

    torch.manual_seed(0)
    save_classifier(build_classifier("fmnist").eval(), {})
    save_gan(*stand_in_gan("fmnist", 0))
    spec = MatrixSpec(
        dataset="fmnist",
        defenses=DEFENSES,
        attacks=(AttackSpec("fgsm", 0.1), AttackSpec("pgd", 0.1, (("steps", 2),))),
        threats=("graybox", "bpda"),
        n=8,
        batch_size=4,
        preset="quick",
        eot=2,
        eval_repeats=2,
        out=str(out),
        progress=False,
    )
    runner = MatrixRunner(spec)
    runner.run()
    numbers = {}
    for r in runner.store.rows():
        extra = r["extra"] or {}
        numbers[f"{r['defense']} | {r['threat']} | {r['attack']}"] = {
            "preds": r["preds"],
            "preds_undefended": r["preds_undefended"],
            "repeat_preds": extra.get("repeat_preds"),
            "scores": r["scores"],
            "projection_error": extra.get("projection_error"),
        }
    runner.store.close()
    return dict(sorted(numbers.items()))


def differences(want: dict, got: dict) -> list[str]:
    """Where ``got`` differs from ``want``: predictions exactly, scores and errors to 1e-4 relative."""
    out = [f"{k}: missing" for k in want if k not in got] + [f"{k}: not recorded" for k in got if k not in want]
    for k in (k for k in want if k in got):
        for field, a in want[k].items():
            b = got[k][field]
            if field in ("scores", "projection_error") and a is not None and b is not None:
                same = len(a) == len(b) and all(
                    math.isclose(u, v, rel_tol=1e-4, abs_tol=1e-6) for u, v in zip(a, b, strict=True)
                )
            else:
                same = a == b
            if not same:
                out.append(f"{k}: {field} {a} -> {b}")
    return out


@pytest.mark.skipif(not have_data("fmnist"), reason="needs Fashion-MNIST")
def test_small_cells_give_the_numbers_recorded_for_this_results_version(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    recorded = json.loads(FINGERPRINT.read_text())
    got = cells_numbers(tmp_path / "run")
    assert len(got) == 5 + 2 + 4 * 2 * 2  # a clean cell each; FGSM and PGD gray-box (and BPDA but undefended)
    diff = differences(recorded["cells"], got)
    if recorded["results_version"] == RESULTS_VERSION:
        assert not diff, (
            f"cells compute other numbers while RESULTS_VERSION stayed {RESULTS_VERSION}: bump it in "
            f"harness/store.py and record them with `python tests/test_results_version.py`:\n" + "\n".join(diff[:10])
        )
    else:
        pytest.fail(
            f"RESULTS_VERSION is {RESULTS_VERSION} but results_fingerprint.json holds version "
            f"{recorded['results_version']}'s numbers: record them with `python tests/test_results_version.py`"
        )


def test_the_comparison_fires_on_a_changed_prediction_or_score_and_not_on_rounding():
    cell = {"preds": [1, 2], "preds_undefended": [1, 2], "repeat_preds": None, "scores": [0.5, 1.0]}
    want = {"a": cell}
    assert differences(want, {"a": dict(cell)}) == []
    assert differences(want, {"a": {**cell, "scores": [0.5, 1.0 + 1e-8]}}) == []
    assert differences(want, {"a": {**cell, "scores": [0.5, 1.01]}}) == ["a: scores [0.5, 1.0] -> [0.5, 1.01]"]
    assert differences(want, {"a": {**cell, "preds": [1, 3]}}) == ["a: preds [1, 2] -> [1, 3]"]
    assert differences(want, {"b": cell}) == ["a: missing", "b: not recorded"]


def record() -> int:
    """Write results_fingerprint.json for the current RESULTS_VERSION (refused where the file holds other
    numbers of the same version)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DEFBENCH_HOME"] = str(Path(tmp) / "home")
        got = cells_numbers(Path(tmp) / "run")
    if FINGERPRINT.is_file():
        old = json.loads(FINGERPRINT.read_text())
        diff = differences(old["cells"], got)
        if old["results_version"] == RESULTS_VERSION and diff:
            print(f"refused: the numbers changed but RESULTS_VERSION is still {RESULTS_VERSION}; bump it first")
            print("\n".join(diff[:10]))
            return 1
    FINGERPRINT.write_text(json.dumps({"results_version": RESULTS_VERSION, "cells": got}, indent=1) + "\n")
    print(f"recorded {len(got)} cells for RESULTS_VERSION {RESULTS_VERSION} in {FINGERPRINT}")
    return 0


if __name__ == "__main__":  # conftest (imported above) set the data root and thread count, as under pytest
    sys.exit(record())


@pytest.mark.skipif(not have_data("fmnist"), reason="needs Fashion-MNIST")
@pytest.mark.parametrize("change", ["results version", "library version"])
def test_a_bump_or_an_upgrade_recomputes_cells_but_moves_no_draw(change, tmp_path, monkeypatch):
    """RESULTS_VERSION and the numeric libraries' versions are in every key (a bumped or upgraded store
    recomputes), yet the attack's and EOT's draws are named without them: a BPDA cell on a randomized defense
    recomputed after a bump or an upgrade of torchattacks gives the same numbers."""
    from defbench.harness import matrix
    from defbench.harness.matrix import AttackSpec, MatrixRunner, MatrixSpec

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    from defbench.classifiers.models import build_classifier

    save_classifier(build_classifier("fmnist").eval(), {})
    save_gan(*stand_in_gan("fmnist", 0))

    def run(version: int):
        if change == "results version":
            monkeypatch.setattr(matrix, "RESULTS_VERSION", version)
        else:
            versions = {**matrix.library_versions(), "torchattacks": f"3.5.{version}"}
            monkeypatch.setattr(matrix, "library_versions", lambda: versions)
        spec = MatrixSpec(
            dataset="fmnist",
            defenses=("defensegan[latent_steps=2,restarts=2]",),
            attacks=(AttackSpec("pgd", 0.1, (("steps", 2),)),),
            threats=("bpda",),
            n=4,
            batch_size=4,
            preset="quick",
            eot=2,
            out=str(tmp_path / "run"),
            progress=False,
        )
        runner = MatrixRunner(spec)
        runner.run()
        rows = [r for r in runner.store.rows() if r["threat"] == "bpda" and r["key"] in runner.computed]
        runner.store.close()
        assert len(runner.computed) == 2 and len(rows) == 1  # the clean and the BPDA cell, computed anew
        return rows[0]

    a, b = run(RESULTS_VERSION), run(RESULTS_VERSION + 1)
    assert a["key"] != b["key"]
    assert (a["preds_undefended"], a["scores"]) == (b["preds_undefended"], b["scores"])
