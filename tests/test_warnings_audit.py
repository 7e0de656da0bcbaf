"""Warnings and flags that had no test where they fire or none where they stay silent (found by an audit of
every warning, report note and sanity flag against the tests). Every test drives the real code path: the
runner's gradient check, the report's tables, the gray-box cache reader; each "fires" test has a paired sound
case that stays silent."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from defbench.defenses.base import Defense
from defbench.reports.sanity import sanity_flags
from defbench.reports.tables import detection_auc_table, robust_accuracy_table
from test_reports import attack_cfg, frac, make_row

N = 100
PGD = attack_cfg("PGD", "pgd")


def _notes(df) -> str:
    return " | ".join(df.attrs["notes"])


# ------------------------------------------------------------- sanity (g): hidden randomness under the seed


class _Blur(Defense):
    name = "blur"

    def _purify(self, x, seed):
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _HiddenNoise(_Blur):
    """Declared randomized, but its noise comes from the global RNG, not from the call's seed."""

    randomized = True

    def _purify(self, x, seed):
        return (super()._purify(x, seed) + 0.01 * torch.rand(x.shape)).clamp(0, 1)


class _SeededNoise(_Blur):
    """Declared randomized, every draw from the call's seed: a sound randomized defense."""

    randomized = True

    def _purify(self, x, seed):
        g = torch.Generator().manual_seed(seed)
        return (super()._purify(x, seed) + 0.01 * torch.rand(x.shape, generator=g)).clamp(0, 1)


def _gradient_check(defense) -> dict:
    from defbench.harness.matrix import MatrixRunner

    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    return MatrixRunner.gradient_check(SimpleNamespace(classifier=clf), defense, x, y, seed=0)


def _sound_run(gc: dict) -> list[dict]:
    """The undefended classifier broken, the defense's BPDA (EOT 10) stronger than gray-box; the defense's
    clean row carries the gradient check."""
    return [
        make_row(frac(N, N), defense="none"),
        make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(90, N), extra={"gradient_check": gc, "randomized": True}),
        make_row(frac(50, N), attack="pgd", cfg=PGD, extra={"randomized": True}),
        make_row(frac(30, N), attack="pgd", cfg={**PGD, "eot": 10}, threat="bpda", extra={"randomized": True}),
    ]


def test_hidden_randomness_of_the_defended_model_fires():
    """The runner's own gradient check (threat 'autograd') sees two purifications with one seed differ, and the
    report says the defense's results cannot be reproduced."""
    gc = _gradient_check(_HiddenNoise((1, 28, 28)))
    assert gc["threat"] == "autograd" and gc["nondeterministic"] and gc["randomized_defense"]
    flags = sanity_flags(_sound_run(gc))
    assert len(flags) == 1, flags
    assert flags[0].startswith("Gradient check on invgan (autograd): the defended model is nondeterministic")
    assert "not derived from its seed" in flags[0]


def test_seeded_randomness_of_the_defended_model_is_silent():
    gc = _gradient_check(_SeededNoise((1, 28, 28)))
    assert gc["threat"] == "autograd" and not gc["nondeterministic"] and gc["seed_dependent"]
    assert sanity_flags(_sound_run(gc)) == []


# ------------------------------------------------------------- robust accuracy: no clean row


def test_worst_case_without_a_clean_row_is_noted():
    """A seed whose clean row is missing: its worst case counts attack rows only, and the table says so."""
    rows = [make_row(frac(6), attack="pgd"), make_row(frac(8), attack="fgsm")]
    df = robust_accuracy_table(rows)
    assert df.attrs["mean"].loc["worst case", "invgan"] == pytest.approx(0.6)
    assert "invgan seed 0: no clean row, worst case ignores clean accuracy." in df.attrs["notes"]


def test_worst_case_with_its_clean_row_on_the_same_images_is_silent():
    rows = [make_row(frac(9)), make_row(frac(6), attack="pgd"), make_row(frac(8), attack="fgsm")]
    notes = _notes(robust_accuracy_table(rows))
    assert "no clean row" not in notes
    assert "different images" not in notes  # every row covers the clean row's images


# ------------------------------------------------------------- robust accuracy: cells not run


def _grid() -> list[dict]:
    """Clean and PGD on both invgan and no defense: every cell of the table run."""
    return [
        make_row(frac(9)),
        make_row(frac(6), attack="pgd"),
        make_row(frac(10), defense="none"),
        make_row(frac(0), defense="none", attack="pgd"),
    ]


def test_cell_not_run_is_marked_and_noted():
    fgsm_on_none_only = make_row(frac(1), defense="none", attack="fgsm")  # the invgan FGSM cell was not run
    df = robust_accuracy_table(_grid() + [fgsm_on_none_only])
    assert df.loc["FGSM", "invgan"] == "—"
    assert "—: not run." in df.attrs["notes"]


def test_full_grid_has_no_not_run_note():
    df = robust_accuracy_table(_grid())
    assert not (df == "—").to_numpy().any()
    assert "not run" not in _notes(df)


# ------------------------------------------------------------- detection AUC notes


def _auc_pair(n: int, fooled: int, clean: bool = True) -> list[dict]:
    """A clean row (bare classifier right on all n images) and a gray-box PGD row that fools the bare
    classifier on its first ``fooled`` images; detection scores separate the two."""
    att = make_row(frac(0, n), attack="pgd", cfg=PGD, scores=[0.9] * n)
    att["preds_undefended"] = [(y + 1) % 10 if i < fooled else y for i, y in enumerate(att["labels"])]
    return ([make_row(frac(n, n), scores=[0.1] * n)] if clean else []) + [att]


def test_auc_on_few_positives_is_noted():
    df = detection_auc_table(_auc_pair(20, 4))
    assert df.attrs["mean"].loc["PGD", "invgan"] == pytest.approx(1.0)
    assert "1 of 1 cell(s) have fewer than 10 positives" in _notes(df) and "PGD on invgan seed 0: 4" in _notes(df)


def test_auc_without_a_clean_row_or_positives_is_noted():
    no_clean = detection_auc_table(_auc_pair(20, 12, clean=False))
    assert no_clean.loc["PGD", "invgan"] == "n/a"
    assert "1 attack cell(s) had no clean row of the same defense and seed." in no_clean.attrs["notes"]
    assert "n/a: AUC undefined" in _notes(no_clean)
    none_fooled = detection_auc_table(_auc_pair(20, 0))
    assert none_fooled.loc["PGD", "invgan"] == "n/a" and "n/a: AUC undefined" in _notes(none_fooled)
    assert "had no clean row" not in _notes(none_fooled)
    # no positive at all is n/a, not "a wide interval"; with nothing scored anywhere no mean "over 0 seeds"
    assert "fewer than 10 positives" not in _notes(none_fooled)
    assert "no cell could be scored" not in _notes(none_fooled)  # its all-images AUC is defined
    flat = [{**r, "scores": [0.5] * 20} for r in _auc_pair(20, 0)]  # and here it is not (all scores equal)
    assert "over 0 seeds" not in _notes(detection_auc_table(flat))
    assert "no cell could be scored" in _notes(detection_auc_table(flat))


def test_few_positives_note_names_cells_in_a_fixed_order():
    """The note names at most three cells; which ones may not depend on the order the store returns rows (the
    order cells finished, which differs between a local and a Ray run)."""
    rows = []
    for seed in (2, 0, 3, 1):
        for r in _auc_pair(20, 4):
            rows.append({**r, "seed": seed})
    forward, backward = detection_auc_table(rows), detection_auc_table(rows[::-1])
    assert _notes(forward) == _notes(backward)
    assert "PGD on invgan seed 0: 4; PGD on invgan seed 1: 4; PGD on invgan seed 2: 4; …" in _notes(forward)


def test_auc_on_enough_matched_positives_is_silent():
    df = detection_auc_table(_auc_pair(20, 12))
    assert df.attrs["mean"].loc["PGD", "invgan"] == pytest.approx(1.0)
    notes = _notes(df)
    assert "fewer than 10 positives" not in notes and "n/a" not in notes and "no clean row" not in notes


# ------------------------------------------------------------- gray-box cache reader


def test_graybox_cache_warns_for_a_batch_out_of_range_or_of_another_shape(tmp_path, capsys):
    """Files whose sha256 matches but whose contents cannot be the batch: each is refused with one line."""
    from defbench.harness.matrix import _read_adv_cache, _write_adv_cache

    x = torch.rand(4, 1, 28, 28)
    p = tmp_path / "abc-s0-b0.pt"
    _write_adv_cache(p, "abc-s0-b0", x * 2, "[]")  # hashed as written: only the range check can refuse it
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    err = capsys.readouterr().err
    assert err.startswith(f"defbench: warning: gray-box cache {p} ") and err.count("\n") == 1
    assert f"cache {p} holds values outside [0, 1]; recomputing that batch\n" in err  # one readable sentence
    _write_adv_cache(p, "abc-s0-b0", x[:2], "[]")
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    assert f"cache {p} holds a batch of shape (2, 1, 28, 28), not (4, 1, 28, 28);" in capsys.readouterr().err
    torch.save({"x_adv": x, "violations": None}, p)
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    assert f"cache {p} is not a gray-box cache file;" in capsys.readouterr().err
    _write_adv_cache(p, "abc-s0-b0", x.double(), "[]")  # right shape, another dtype: says so, not "shape"
    assert _read_adv_cache(p, "abc-s0-b0", x) is None
    assert f"cache {p} holds a batch of dtype float64, not float32;" in capsys.readouterr().err


def test_graybox_cache_warns_for_an_unreadable_file(tmp_path, capsys):
    """A file that does not load (cut short, or not a torch file at all) is refused with one line that says so."""
    from defbench.harness.matrix import _read_adv_cache, _write_adv_cache

    x = torch.rand(4, 1, 28, 28)
    p = tmp_path / "abc-s0-b0.pt"
    _write_adv_cache(p, "abc-s0-b0", x, "[]")
    raw = p.read_bytes()
    for damaged in (raw[: len(raw) // 2], b"garbage"):
        p.write_bytes(damaged)
        assert _read_adv_cache(p, "abc-s0-b0", x) is None
        err = capsys.readouterr().err
        assert err.startswith(f"defbench: warning: gray-box cache {p} is unreadable (") and err.count("\n") == 1
        assert err.endswith("); recomputing that batch\n")


def test_graybox_cache_intact_file_is_read_silently(tmp_path, capsys):
    from defbench.harness.matrix import _read_adv_cache, _write_adv_cache

    x = torch.rand(4, 1, 28, 28)
    p = tmp_path / "abc-s0-b0.pt"
    _write_adv_cache(p, "abc-s0-b0", x, '[{"check": "linf"}]')
    capsys.readouterr()
    blob = _read_adv_cache(p, "abc-s0-b0", x)
    assert blob is not None and torch.equal(blob["x_adv"], x) and blob["violations"] == '[{"check": "linf"}]'
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------- the Markdown report's sanity section


def test_report_lists_each_fired_flag_with_a_warning_sign(tmp_path):
    from defbench.reports.render import write_reports

    weak = [make_row(frac(N, N), defense="none"), make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD)]
    (flag,) = sanity_flags(weak)
    text = write_reports(weak, tmp_path)
    section = text.split("### Sanity checks", 1)[1]
    assert f"- ⚠ {flag}" in section and "none fired" not in section


def test_report_says_none_fired_for_a_sound_run(tmp_path):
    from defbench.reports.render import write_reports

    sound = [make_row(frac(N, N), defense="none"), make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD)]
    assert sanity_flags(sound) == []
    section = write_reports(sound, tmp_path).split("### Sanity checks", 1)[1]
    assert "- none fired." in section and "⚠" not in section


def test_nondeterministic_cuda_kernels_name_their_cause():
    """On CUDA with PyTorch's nondeterministic kernels (DEFBENCH_NONDETERMINISTIC=1) two purifications with one
    seed differ without any hidden randomness (seen on an H200: docs/RESULTS.md); the flag names the kernels
    instead of blaming the defense, and only when the check ran on them."""
    gc = {**_gradient_check(_HiddenNoise((1, 28, 28))), "cuda_nondeterministic_kernels": True}
    (flag,) = sanity_flags(_sound_run(gc))
    assert "PyTorch's nondeterministic kernels" in flag and "not derived from its seed" in flag
    assert "draws randomness" not in flag
    gc["cuda_nondeterministic_kernels"] = False
    (flag,) = sanity_flags(_sound_run(gc))
    assert "draws randomness that is not derived from its seed" in flag and "kernels" not in flag
    assert "CUDA" not in flag  # the check ran on the CPU
    (flag,) = sanity_flags(_sound_run({**gc, "device": "cuda"}))  # deterministic kernels, yet it varied
    assert "draws randomness" in flag and "a CUDA operation that has no deterministic form" in flag


def test_gradient_check_records_the_kernels_it_ran_on():
    gc = _gradient_check(_SeededNoise((1, 28, 28)))
    assert gc["cuda_nondeterministic_kernels"] is False and gc["device"] == "cpu"  # the CPU's kernels
