"""What each command-line option hands to the runner (mutation audit of defbench/cli, session 48): the edges of
every count and seed are accepted (and reach the spec as given), the defaults are the ones --help states, and
every flag of 'matrix', 'paper run' and 'train' reaches the runner, the paper runner or the trainer it is for.
Nothing here runs real work: the stand-ins of test_reliability_cli stop each command once its input passed."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
from test_reliability_cli import M, Reached, no_work, refused, run, seen

from defbench.cli import build_parser
from defbench.cli.options import LIMITS, MAX_SEED

FIXTURES = (no_work, seen)  # test_reliability_cli's stand-ins for the runners, taken by name below


def spec_of(seen: dict, argv: list[str], tmp_path):
    rc, err = run(M + ["--out", str(tmp_path / "o"), *argv])
    assert rc is None, (argv, err)
    return seen["spec"]


# ----------------------------------------------------------------------------------------- edges of the counts
@pytest.mark.parametrize(
    "flag, field, extra",
    [
        ("--n", "n", []),
        ("--batch-size", "batch_size", []),
        ("--eval-repeats", "eval_repeats", []),
        ("--eot", "eot", ["--threat", "graybox,bpda"]),
    ],
)
def test_counts_accept_both_ends_of_their_range(flag, field, extra, seen, tmp_path):
    """A count is an integer in [1, LIMITS[flag]]: 1 (--eot 1 is the documented way to turn EOT off) and the
    limit itself reach the spec unchanged; one past the limit is refused."""
    hi = LIMITS[flag[2:]]
    assert getattr(spec_of(seen, [flag, "1", *extra], tmp_path), field) == 1
    assert getattr(spec_of(seen, [flag, str(hi), *extra], tmp_path), field) == hi
    refused(M + ["--out", str(tmp_path / "o"), flag, str(hi + 1), *extra], f"argument {flag}: must be between 1")


def test_seed_accepts_0_and_the_largest_seed_and_seeds_count_up_from_it(seen, tmp_path):
    """--seed in [0, 2**31 - 1]; --seeds K runs seed, seed+1, ..., seed+K-1 (the help's 'seed, seed+1, ...')."""
    assert spec_of(seen, ["--seed", "0"], tmp_path).seeds == (0,)
    assert spec_of(seen, ["--seed", str(2**31 - 1)], tmp_path).seeds == (2147483647,)
    assert MAX_SEED == 2147483647
    refused(M + ["--out", str(tmp_path / "o"), "--seed", str(2**31)], "argument --seed: must be between 0 and")
    assert spec_of(seen, ["--seed", "7", "--seeds", "3"], tmp_path).seeds == (7, 8, 9)
    assert spec_of(seen, ["--seeds", "1"], tmp_path).seeds == (0,)


def test_subset_fraction_1_is_accepted_and_every_train_flag_reaches_the_trainer(no_work, monkeypatch, tmp_path):
    """--subset-fraction is in (0, 1]: 1 (the whole training set) is accepted; the GAN trainer gets the fraction,
    class, epochs and seed as given, the classifier its epochs, the encoder its iterations and the GAN replica's
    tag; --subset-fraction on a classifier is refused (its silent twin: the same flag on a GAN)."""
    from defbench.harness import models

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    calls: list = []

    def record(name):
        def stop(*a, **k):
            calls.append((name, a, k))
            raise Reached()

        return stop

    for f in ("build_classifier_model", "build_gan_model", "build_encoder_model"):
        monkeypatch.setattr(models, f, record(f))
    common = ["--dataset", "mnist", "--preset", "quick", "--device", "cpu", "--no-progress"]
    assert run(["train", "gan", *common, "--subset-fraction", "1"])[0] is None
    assert calls[-1][2]["subset_fraction"] == 1.0
    argv = ["train", "gan", *common, "--subset-fraction", "0.8", "--holdout-class", "4", "--epochs", "2"]
    assert run([*argv, "--seed", "3"])[0] is None
    name, a, k = calls[-1]
    assert name == "build_gan_model" and a == ("mnist",)
    assert (k["subset_fraction"], k["holdout_class"], k["epochs"], k["seed"]) == (0.8, 4, 2, 3)
    assert (k["preset"], str(k["device"]), k["progress"]) == ("quick", "cpu", False)
    assert run(["train", "classifier", *common, "--epochs", "5"])[0] is None
    assert calls[-1][0] == "build_classifier_model" and calls[-1][2]["epochs"] == 5
    assert run(["train", "encoder", *common, "--iterations", "9", "--subset-fraction", "0.8", "--seed", "3"])[0] is None
    name, a, k = calls[-1]
    assert name == "build_encoder_model" and k["iterations"] == 9 and k["seed"] == 3
    assert k["tag"] == models.gan_tag(0.8, 3, None) != models.gan_tag(0.8, 0, None)  # the replica's own encoder
    refused(["train", "classifier", *common, "--subset-fraction", "0.8"], "--subset-fraction and --holdout-class")
    refused(["train", "classifier", *common, "--holdout-class", "3"], "--subset-fraction and --holdout-class")


# ----------------------------------------------------------------------------------------- defaults = --help
def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return " ".join(out.getvalue().split())


def test_matrix_defaults_are_the_ones_its_help_states(seen, tmp_path):
    """--n, --eval-repeats, --batch-size, --seed and the 'none' reference column: the numbers --help gives (read
    from the help text itself) are the ones the spec gets when the flag is left out."""
    text = _help(["matrix"])
    n_paper, n_quick = map(int, re.search(r"default (\d+); quick preset (\d+)", text).groups())
    r_paper, r_quick = map(
        int, re.search(r"correct in all\); default (\d+) \(paper\) / (\d+) \(quick\)", text).groups()
    )
    eot_paper, eot_quick = map(int, re.search(r"al. 2018\); default (\d+) \(paper\) / (\d+) \(quick\)", text).groups())
    batch = int(re.search(r"purified together \(default (\d+)\)", text).group(1))
    seed = int(re.search(r"explicit seed \(default (\d+)\)", text).group(1))
    assert (n_paper, n_quick, r_paper, r_quick, batch, seed) == (500, 100, 3, 1, 100, 0)
    from defbench.harness.matrix import DEFAULT_EOT

    assert DEFAULT_EOT == {"paper": eot_paper, "quick": eot_quick} == {"paper": 10, "quick": 4}
    out = ["--out", str(tmp_path / "o")]
    assert run(["matrix", "--no-progress", "--preset", "paper", *out])[0] is None
    spec = seen["spec"]
    assert (spec.n, spec.eval_repeats, spec.batch_size, spec.seeds) == (n_paper, r_paper, batch, (seed,))
    assert spec.eot in (None, eot_paper) and spec.progress is False  # None: the runner takes the preset's
    assert spec.defenses == ("none", "mimicgan")  # the undefended reference column first, as the help says
    assert run(["matrix", "--no-progress", "--preset", "quick", *out])[0] is None
    assert (seen["spec"].n, seen["spec"].eval_repeats) == (n_quick, r_quick) and seen["spec"].eot in (None, eot_quick)
    assert spec_of(seen, ["--no-baseline"], tmp_path).defenses == ("mimicgan",)


def test_every_matrix_flag_reaches_the_spec(seen, monkeypatch, tmp_path):
    """Each flag's value arrives in the MatrixSpec as given (none silently dropped or replaced by a default)."""
    import torch

    from defbench.cli import matrix as cli_matrix

    asked = []

    def resolve(device):  # the --device text as the command hands it on (this machine may have no CUDA)
        asked.append(device)
        return torch.device("cpu")

    monkeypatch.setattr(cli_matrix, "resolve_device", resolve)
    argv = ["--threat", "graybox,bpda", "--n", "12", "--batch-size", "5", "--eot", "2", "--eval-repeats", "4"]
    argv += ["--n-threat", "BPDA=3", "--data-root", str(tmp_path / "data"), "--device", "cuda:1", "--dataset", "mnist"]
    rc, err = run(["matrix", "--preset", "quick", "--out", str(tmp_path / "o"), *argv])
    assert rc is None, err
    spec = seen["spec"]
    assert (spec.n, spec.batch_size, spec.eot, spec.eval_repeats) == (12, 5, 2, 4)
    assert spec.threats == ("graybox", "bpda") and spec.threat_n == {"bpda": 3} and spec.dataset == "mnist"
    assert spec.data_root == str(tmp_path / "data") and spec.progress is True and spec.preset == "quick"
    assert asked == ["cuda:1"] and spec.classifier == "zoo"


def test_default_device_is_auto_as_help_says_and_lets_ray_use_the_cluster_gpus(no_work, monkeypatch, tmp_path):
    """--help says 'default auto'; with it (and only with it) the Ray executor may give cells the cluster's GPUs:
    an explicit --device cpu keeps them on CPUs. The --address reaches the executor."""
    from defbench.cli import options

    assert "(default auto: cuda when present)" in _help(["matrix"])
    made = []

    class Recorder:
        def __init__(self, **kw):
            made.append(kw)
            raise Reached()

    monkeypatch.setattr(options, "RayExecutor", Recorder)
    base = ["matrix", "--no-progress", "--defense", "none", "--attacks", "none", "--executor", "ray"]
    assert run([*base, "--out", str(tmp_path / "o")])[0] is None
    assert made[-1] == {"address": None, "use_cluster_gpus": True}
    assert run([*base, "--device", "cpu", "--address", "10.0.0.5:6379", "--out", str(tmp_path / "o")])[0] is None
    assert made[-1] == {"address": "10.0.0.5:6379", "use_cluster_gpus": False}


# ----------------------------------------------------------------------------------------- options' precedence
def test_defense_opt_wins_over_defense_config_for_the_same_key(seen, tmp_path):
    """The command line overrides the config file (the order the docs give), key by key."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"tvm": {"weight": 0.2, "method": "bregman"}}))
    spec = spec_of(
        seen, ["--defense", "tvm", "--defense-config", str(cfg), "--defense-opt", "tvm:weight=0.5"], tmp_path
    )
    assert spec.defense_overrides == {"tvm": {"weight": 0.5, "method": "bregman"}}


def test_attack_opt_order_does_not_change_the_attack(seen, tmp_path):
    """The same --attack-opt values in another order are the same attack spec (the same cells and keys)."""
    a = ["--attacks", "pgd", "--attack-opt", "pgd:steps=3", "--attack-opt", "pgd:step=0.01"]
    b = ["--attacks", "pgd", "--attack-opt", "pgd:step=0.01", "--attack-opt", "pgd:steps=3"]
    first, second = spec_of(seen, a, tmp_path).attacks, spec_of(seen, b, tmp_path).attacks
    assert first == second and dict(first[0].params) == {"steps": 3, "step": 0.01}


def test_repeated_names_and_eps_give_each_cell_once(seen, tmp_path):
    """'--attacks fgsm,FGSM --eps 0.1,0.10' is one attack at one ε, not two identical cells."""
    spec = spec_of(seen, ["--attacks", "fgsm,FGSM", "--eps", "0.1,0.10"], tmp_path)
    assert [(a.name, a.eps) for a in spec.attacks] == [("fgsm", 0.1)]
    assert spec_of(seen, ["--defense", "median,median,none"], tmp_path).defenses == ("median", "none")


def test_a_defense_without_options_refuses_one(no_work, tmp_path):
    """'none' has no options: one given to it is refused (its silent twin: the same run without the option)."""
    out = ["--out", str(tmp_path / "o")]
    refused(M + out + ["--defense", "none", "--defense-config", _config(tmp_path, {"none": {"x": 1}})], "takes no")
    assert run(M + out + ["--defense", "none"])[0] is None


def _config(tmp_path, obj) -> str:
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(obj))
    return str(p)


# ----------------------------------------------------------------------------------------- paper run
def test_every_paper_run_flag_reaches_the_paper_runner(no_work, monkeypatch, tmp_path):
    """n, preset, seed, out, data root, progress, --n-threat, --threats and the classifier arrive as given."""
    from defbench.harness import papers

    got = {}

    def capture(table, *a, **k):
        got.update(table=table, a=a, k=k)
        raise Reached()

    monkeypatch.setattr(papers, "run_table", capture)
    out, root = str(tmp_path / "o"), str(tmp_path / "d")
    argv = ["paper", "run", "invgan-table2-fmnist", "--n", "7", "--preset", "quick", "--seed", "3", "--out", out]
    argv += ["--data-root", root, "--no-progress", "--n-threat", "BPDA=2", "--threats", "graybox", "bpda"]
    argv += ["--device", "cpu"]
    rc, err = run(argv)
    assert rc is None, err
    assert got["a"] == (7, "quick", "cpu", 3, out, root, False, {"bpda": 2})
    assert got["k"]["classifier"] == "zoo"
    measured = {c.threat for c in got["table"].needed_cells((3,), "quick")}
    assert measured == {"graybox", "bpda", "none"}  # --threats left the reparam cells out
    assert run(["paper", "run", "invgan-table2-fmnist", "--out", out, "--device", "cpu"])[0] is None  # no flags
    assert got["a"] == (None, "paper", "cpu", 0, out, None, True, {})  # the defaults --help gives
    assert {c.threat for c in got["table"].needed_cells((0,), "quick")} >= {"graybox", "bpda"}


def test_eps_1_is_the_top_of_the_range_and_reaches_the_bounded_attacks(seen, tmp_path):
    """--eps is in (0, 1]: 1 is accepted (pixel units, the whole range); a sweep keeps its order."""
    spec = spec_of(seen, ["--attacks", "fgsm", "--eps", "1"], tmp_path)
    assert [(a.name, a.eps) for a in spec.attacks] == [("fgsm", 1.0)]
    spec = spec_of(seen, ["--attacks", "fgsm,deepfool", "--eps", "0.3,0.1"], tmp_path)
    assert [(a.name, a.eps) for a in spec.attacks] == [("fgsm", 0.3), ("fgsm", 0.1), ("deepfool", None)]


def test_a_colon_in_a_defense_opt_value_is_not_a_target(no_work, tmp_path):
    """'--defense-opt KEY=VALUE' with a ':' in VALUE sets KEY of the run's one defense: the target ends at the first
    ':' before the first '=' (the value reaches tvm's own check of its method, not the defense-name lookup)."""
    out = ["--out", str(tmp_path / "o"), "--defense", "tvm"]
    refused(M + out + ["--defense-opt", 'method="a:b"'], "tvm method must be chambolle or bregman, got 'a:b'")
    refused(M + out + ["--defense-opt", 'tvm:method="a:b"'], "tvm method must be chambolle or bregman, got 'a:b'")


def test_an_equals_sign_in_a_value_stays_in_the_value(no_work, tmp_path):
    """KEY=VALUE splits at the first '=': 'method="a=b"' sets method to 'a=b' (refused by tvm's own check)."""
    out = ["--out", str(tmp_path / "o"), "--defense", "tvm"]
    refused(M + out + ["--defense-opt", 'tvm:method="a=b"'], "tvm method must be chambolle or bregman, got 'a=b'")


def test_a_variant_with_options_in_its_name_can_be_the_target(seen, tmp_path):
    """'defensegan[restarts=1]:latent_steps=7': the target's own '=' and ':' inside brackets do not end it."""
    argv = ["--defense", "defensegan[restarts=1],defensegan", "--defense-opt", "defensegan[restarts=1]:latent_steps=7"]
    assert spec_of(seen, argv, tmp_path).defense_overrides == {"defensegan[restarts=1]": {"latent_steps": 7}}


def test_a_whole_float_for_a_whole_number_option_reaches_the_defense_as_an_int(seen, tmp_path):
    """median's kernel_size is an int: 'kernel_size=5.0' reaches it as 5 (the value the type check returns), so
    '5' and '5.0' are one configuration and one cell key."""
    (k,) = (
        spec_of(seen, ["--defense", "median", "--defense-opt", "kernel_size=5.0"], tmp_path)
        .defense_overrides["median"]
        .values()
    )
    assert k == 5 and type(k) is int


def test_a_whole_number_for_a_float_option_reaches_the_defense_as_a_float(seen, tmp_path):
    """tvm's weight is a float: 'weight=1' reaches it as 1.0, so '1' and '1.0' are one configuration and one cell
    key (the type check returned the int unchanged, and TVM's config_hash differed between the two)."""
    from defbench.defenses.registry import build_defense

    got = [
        spec_of(seen, ["--defense", "tvm", "--defense-opt", f"weight={w}"], tmp_path).defense_overrides["tvm"]
        for w in ("1", "1.0")
    ]
    assert got[0] == got[1] and type(got[0]["weight"]) is float
    assert build_defense("tvm", overrides={"weight": 1}).config() == build_defense("tvm", overrides=got[1]).config()


def test_train_force_retrains_a_model_the_zoo_has_or_half_has(no_work, monkeypatch, tmp_path):
    """Without --force a model in the zoo is kept (exit 0, nothing trained) and a half-there one (its manifest
    gone) refused; --force trains both anew, as --help says."""
    from conftest import save_classifier

    from defbench.classifiers.models import build_classifier
    from defbench.harness import models, zoo

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    save_classifier(build_classifier("fmnist"), {})
    calls = []

    def stop(*a, **k):
        calls.append(k)
        raise Reached()

    monkeypatch.setattr(models, "build_classifier_model", stop)
    argv = ["train", "classifier", "--dataset", "fmnist", "--preset", "quick", "--device", "cpu", "--no-progress"]
    assert run(argv)[0] == 0 and calls == []
    assert run([*argv, "--force"])[0] is None and len(calls) == 1
    (zoo.zoo_dir() / "classifier-fmnist-quick.json").unlink()
    refused(argv, "but its manifest classifier-fmnist-quick.json is gone")
    assert run([*argv, "--force"])[0] is None and len(calls) == 2


def test_tables_that_cannot_run_are_refused_or_skipped_with_their_reason(no_work, monkeypatch, tmp_path):
    """Every shipped table runs, so these lines were never said: one unsupported table is refused, a group of only
    unsupported ones too, and a group with one runnable table runs that one."""
    from dataclasses import replace

    from defbench.harness import papers

    table = papers.TABLES["mimicgan-fig5b"]
    off = replace(table, id="t-off", unsupported="needs a sampler we do not have")
    ran = []
    monkeypatch.setattr(papers, "run_table", lambda t, *a, **k: ran.append(t.id) or (_ for _ in ()).throw(Reached()))
    argv = ["paper", "run", "grp", "--out", str(tmp_path / "o"), "--device", "cpu"]
    monkeypatch.setattr(papers, "resolve", lambda name: [off])
    refused(argv, "paper table t-off is not yet supported: needs a sampler we do not have")
    monkeypatch.setattr(papers, "resolve", lambda name: [off, replace(off, id="t-off2")])
    refused(argv, "no table of grp can run yet: t-off: needs a sampler")
    monkeypatch.setattr(papers, "resolve", lambda name: [off, table])
    assert run(argv)[0] is None and ran == ["mimicgan-fig5b"]
