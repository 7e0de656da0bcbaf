"""Bad input that still gets past the checks (audit of issue 16's rule: one line naming what is wrong and what is
allowed, never a traceback, a silent wrong result, or hours of work before failing). Nothing here runs real work:
the runners are replaced by stand-ins that stop once the input has passed validation, as in
test_reliability_cli.py."""

from __future__ import annotations

import pytest
from test_reliability_cli import M, no_work, refused, seen

FIXTURES = (no_work, seen)  # test_reliability_cli's stand-ins for the runners, taken by name below


# ---------------------------------------------------------------------------------- matrix: defense variants
@pytest.mark.parametrize(
    "defense",
    ["ride[alpha=0.5,alpha=0.2]", "median[kernel_size=3,kernel_size=5]", "tvm[weight=0.1, weight=0.3]"],
)
def test_a_variant_that_sets_one_option_twice_is_refused(defense, no_work, tmp_path):
    """'ride[alpha=0.5,alpha=0.2]' ran as ride[alpha=0.2], the first value silently dropped, while the same
    conflict given as two --defense-opt is refused ('set median's kernel_size twice')."""
    refused(M + ["--out", str(tmp_path / "o"), "--defense", defense], "twice")


@pytest.mark.parametrize(
    "opt",
    ["median[kernel_size=5]:kernel_size=3", "median:kernel_size=3"],
)
def test_a_defense_opt_the_variant_overrides_is_refused(opt, no_work, tmp_path):
    """--defense 'median[kernel_size=5]' --defense-opt ...kernel_size=3: the variant's own option wins, so the
    run purifies with kernel_size 5 and the flag is silently ignored (a flag the run would ignore)."""
    out = ["--out", str(tmp_path / "o"), "--no-baseline"]
    refused(M + out + ["--defense", "median[kernel_size=5]", "--defense-opt", opt])


# ---------------------------------------------------------------------------------- matrix: values that mean hours
def test_a_median_window_larger_than_the_image_is_refused_before_any_work(no_work, tmp_path):
    """median[kernel_size=99999] on MNIST passed every check, created the store, then failed in the first purify
    with 'internal error: MemoryError: Unable to allocate 74.5 GiB' (exit 1); kernel_size=60 (> 28) ran silently."""
    for k in (60, 99999):
        refused(
            M + ["--out", str(tmp_path / "o"), "--dataset", "mnist", "--defense", f"median[kernel_size={k}]"],
            "kernel_size",
        )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--defense", "median", "--attacks", "pgd", "--attack-opt", "pgd:steps=1000000000"],
        ["--defense", "median", "--attacks", "pgd", "--attack-opt", "pgd:steps=1e12"],
        ["--defense", "tvm[iterations=1000000000]", "--attacks", "fgsm"],
    ],
)
def test_absurd_iteration_counts_of_attacks_and_defenses_are_refused(args, no_work, tmp_path):
    """The command-line counts have caps (LIMITS: 'a typo is refused at once instead of running for days'), but
    an attack's or defense's own step count has none: pgd:steps=1e9 or tvm[iterations=1000000000] start a
    run that never ends."""
    refused(M + ["--out", str(tmp_path / "o")] + args)


# ---------------------------------------------------------------------------------- matrix / paper: threats
def test_a_threat_that_applies_to_no_defense_of_the_run_is_refused(no_work, tmp_path):
    """--defense median --threat gan-aware: gan-aware needs a GAN-prior defense, so the run computes only the
    clean cells and exits 0, the asked-for threat silently gone from the tables."""
    refused(M + ["--out", str(tmp_path / "o"), "--defense", "median", "--attacks", "fgsm", "--threat", "gan-aware"])


def test_n_threat_set_twice_is_refused(no_work, tmp_path):
    """--n-threat bpda=5 --n-threat bpda=7: the last silently wins (other options set twice are refused)."""
    refused(
        M
        + ["--out", str(tmp_path / "o"), "--defense", "median", "--threat", "graybox,bpda"]
        + ["--n-threat", "bpda=5", "--n-threat", "bpda=7"],
        "bpda",
    )


def test_paper_run_n_threat_for_a_threat_the_table_lacks_is_refused(no_work, tmp_path):
    """mimicgan-fig5b has no bpda cells: 'paper run mimicgan-fig5b --n-threat bpda=5' is silently ignored and
    the run goes on to train the zoo's models (matrix refuses the same: 'threat bpda is not in this run')."""
    refused(["paper", "run", "mimicgan-fig5b", "--out", str(tmp_path / "o"), "--n-threat", "bpda=5"], "bpda")
    refused(
        ["paper", "run", "mimicgan-fig5b", "--out", str(tmp_path / "o"), "--threats", "graybox"]
        + ["--n-threat", "gan-aware=5"],
        "gan-aware",
    )


def test_preset_and_device_read_as_the_other_names(seen, tmp_path):
    """Dataset, defense, attack and threat names ignore case and surrounding spaces; --preset and --device did
    not ('Quick', ' CPU ' were refused)."""
    from test_reliability_cli import run

    argv = ["matrix", "--no-progress", "--out", str(tmp_path / "o"), "--defense", "median", "--attacks", "fgsm"]
    assert run(argv + ["--preset", " Quick ", "--device", " CPU "])[0] is None
    assert (seen["spec"].preset, seen["spec"].device) == ("quick", "cpu")
    refused(argv + ["--preset", "quickly"], "unknown preset 'quickly'")


def test_zoo_list_refuses_an_id_it_would_ignore(tmp_path, monkeypatch):
    """'zoo list ID' listed the whole zoo as if the id were not there; 'zoo show ID' is the command for one."""
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    refused(["zoo", "list", "classifier-fmnist-quick"], "zoo list takes no model id")
    from test_reliability_cli import run

    assert run(["zoo", "list"])[0] == 0


def test_the_new_refusals_stay_silent_at_their_bounds(seen, tmp_path):
    """Each refusal above has its accepted twin: the largest median window (the image side, 28 on MNIST), a step
    count of exactly 1,000,000 (attack and defense), a --defense-opt that still reaches one defense (plain median
    beside a variant that fixes the window), and the same --n-threat given twice with one value."""
    from defbench.attacks import get_attack
    from defbench.defenses.registry import check_options
    from test_reliability_cli import run

    out = ["--out", str(tmp_path / "o"), "--dataset", "mnist"]
    assert run(M + out + ["--defense", "median[kernel_size=28]"])[0] is None
    argv = M + out + ["--defense", "median,median[kernel_size=5]", "--defense-opt", "median:kernel_size=3"]
    assert run(argv)[0] is None
    assert seen["spec"].defense_overrides == {"median": {"kernel_size": 3}}
    argv = M + out + ["--defense", "median", "--threat", "graybox,bpda", "--n-threat", "bpda=5", "--n-threat", "bpda=5"]
    assert run(argv)[0] is None and seen["spec"].threat_n == {"bpda": 5}
    assert get_attack("pgd", "mnist", steps=1_000_000).params["steps"] == 1_000_000
    check_options("tvm[iterations=1000000]", "mnist")  # no error
    refused(M + out + ["--defense", "tvm[iterations=1000001]"], "at most 1,000,000")
    # a seed (whole, zero allowed) is bounded by 2**32 - 1, not by the step cap
    assert get_attack("square", "mnist", seed=2**32 - 1).params["seed"] == 2**32 - 1
    with pytest.raises(Exception, match="at most 4,294,967,295"):
        get_attack("square", "mnist", seed=2**32)
