"""Every bad command line gets one line on stderr, exit status 2, no traceback and nothing written (issue 16).
Nothing here runs real work: the runner, the paper runner and the trainers are replaced by a stand-in that
stops the command once its input has passed validation."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defbench.cli import main


class Reached(BaseException):
    """Raised where real work would start: the input was accepted. (BaseException: main never catches it.)"""


@pytest.fixture
def no_work(monkeypatch):
    """Stand-ins for the runner, the paper runner and the trainers; the matrix spec is still validated."""
    from defbench.harness import matrix, models, papers

    class FakeRunner:
        def __init__(self, spec, store=None):
            spec.validate()
            raise Reached(spec)

    def stop(*a, **k):
        raise Reached(a)

    monkeypatch.setattr(matrix, "MatrixRunner", FakeRunner)
    monkeypatch.setattr(papers, "run_table", stop)
    for f in ("build_classifier_model", "build_gan_model", "build_encoder_model"):
        monkeypatch.setattr(models, f, stop)


def run(argv: list[str]) -> tuple[int | None, str]:
    """(exit status or None when the input was accepted, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except Reached:
            rc = None
        except SystemExit as exc:  # --help / --version
            rc = exc.code or 0
    return rc, err.getvalue()


def refused(argv: list[str], expect: str = "") -> str:
    rc, err = run(argv)
    assert rc == 2, (argv, rc, err)
    assert err.count("\n") == 1 and err.startswith("defbench: error: ") and "Traceback" not in err, (argv, err)
    assert expect in err, (argv, err)
    return err


M = ["matrix", "--no-progress", "--preset", "quick"]


@pytest.mark.parametrize(
    "args, expect",
    [
        # numbers: not a number, NaN, inf, negative, zero, absurd
        (["--n", "x"], "argument --n: must be a whole number"),
        (["--n", "nan"], "argument --n: must be a whole number"),
        (["--n", "0"], "argument --n: must be between 1 and"),
        (["--n", "-5"], "argument --n: must be between 1 and"),
        (["--n", "99999999999"], "argument --n: must be between 1 and"),
        (["--n", "2.5"], "argument --n: must be a whole number"),
        (["--seeds", "0"], "argument --seeds"),
        (["--seeds", "inf"], "argument --seeds"),
        (["--batch-size", "0"], "argument --batch-size"),
        (["--batch-size", "-1"], "argument --batch-size"),
        (["--eot", "0"], "argument --eot"),
        (["--eot", "NaN"], "argument --eot"),
        (["--eval-repeats", "0"], "argument --eval-repeats"),
        (["--eval-repeats", "1e9"], "argument --eval-repeats"),
        (["--seed", "-1"], "argument --seed"),
        (["--seed", "abc"], "argument --seed"),
        (["--n-threat", "bpda=-1"], "must be >= 1"),
        (["--n-threat", "bpda=x"], "must look like THREAT=N"),
        (["--n-threat", "=5"], "must look like THREAT=N"),
        (["--threat", "graybox", "--n-threat", "bpda=5"], "threat bpda is not in this run"),
        # flags the run would ignore (said, not dropped)
        (["--threat", "graybox,reparam", "--eot", "10"], "this run has no bpda threat (graybox, reparam)"),
        (["--attacks", "deepfool,cw", "--eps", "0.1"], "none of this run's attacks (deepfool, cw) takes an ε"),
        (
            ["--defense", "median", "--defense-opt", "kernel_size=3", "--defense-opt", "median:kernel_size=5"],
            "set median's kernel_size twice",
        ),
        (
            ["--attacks", "pgd", "--attack-opt", "pgd:steps=3", "--attack-opt", "PGD:steps=7"],
            "sets pgd's steps twice (3 and 7)",
        ),
        # eps outside (0, 1]
        (["--eps", "0"], "--eps must be in (0, 1]"),
        (["--eps", "-0.1"], "outside [0, 1]"),
        (["--eps", "1.01"], "outside [0, 1]"),
        (["--eps", "nan"], "must be a number"),
        (["--eps", "inf"], "must be a number"),
        (["--eps", "0.1,abc"], "must be a number"),
        (["--eps", ""], "is empty"),
        # names: unknown, empty
        (["--defense", ""], "names no defense"),
        (["--defense", " , "], "names no defense"),
        (["--defense", "magnet"], "unknown defense 'magnet'"),
        (["--defense", "mimicgan[restarts"], "must look like NAME[key=value"),
        (["--defense", "mimicgan[gan=bogus]"], "must look like sub80-s1"),
        (["--attacks", ""], "names no attack"),
        (["--attacks", "jsma"], "unknown attack 'jsma'"),
        (["--threat", ""], "names no threat model"),
        (["--threat", "blackbox"], "unknown threat model"),
        # a threat no defense takes; the undefended reference column beside median does not carry reparam (it
        # would train a GAN for the reference cell alone and leave median's column out without a word)
        (["--defense", "median", "--threat", "gan-aware"], "--threat gan-aware: no defense of this run (median)"),
        (["--defense", "median,tvm", "--threat", "reparam"], "--threat reparam: no defense of this run (median, tvm)"),
        (["--defense", "none", "--threat", "bpda"], "--threat bpda: no defense of this run (none)"),
        (["--dataset", ""], "unknown dataset"),
        (["--dataset", "svhn"], "unknown dataset"),
        (["--preset", "fast"], "unknown preset"),
        (["--device", "tpu"], "unknown device"),
        # defense and attack options
        (["--defense", "median", "--defense-opt", "bogus=1"], "unknown option(s) bogus for defense median"),
        (["--defense", "median", "--defense-opt", "kernel_size=nan"], "must be a whole number"),
        (["--defense", "median", "--defense-opt", "kernel_size=NaN"], "must be a finite number"),
        (["--defense", "median", "--defense-opt", "kernel_size=2.5"], "must be a whole number"),
        (["--defense", "median", "--defense-opt", "kernel_size=true"], "must be a whole number"),
        (["--defense", "tvm", "--defense-opt", "weight=Infinity"], "must be a finite number"),
        (["--defense", "tvm", "--defense-opt", 'weight="x"'], "must be a number"),
        (["--defense", "tvm", "--defense-opt", "method=3"], "must be a string"),
        (["--defense", "median", "--defense-opt", "tvm:weight=0.2"], "defense tvm is not in this run"),
        (["--defense", "median", "--defense-opt", "medain:kernel_size=5"], "unknown defense 'medain'"),
        (["--defense", "median,tvm", "--defense-opt", "kernel_size=5"], "names no defense and the run has several"),
        (["--defense", "none", "--defense-opt", "kernel_size=5"], "the run has no defense with options"),
        (["--defense", "median", "--defense-opt", "kernel_size"], "must look like [DEFENSE:]KEY=VALUE"),
        (["--defense", "median", "--defense-opt", "=5"], "has an empty KEY"),
        (["--defense", "mimicgan", "--defense-opt", "restarts=nan"], "must be a whole number"),
        # ranges, choices and combinations the defense's own config checks: before any model loads (or trains)
        (["--defense", "median", "--defense-opt", "kernel_size=-3"], "median kernel_size must be >= 1, got -3"),
        (["--defense", "defensegan[restarts=0]"], "restarts must be >= 1, got 0"),
        (["--defense", "defensegan", "--defense-opt", "restarts=-2"], "restarts must be >= 1, got -2"),
        (["--defense", "mimicgan", "--defense-opt", "lr=-1"], "projection lr must be a finite number >= 0"),
        (["--defense", "mimicgan[loss=l3]"], "projection loss 'l3' unknown"),
        (["--defense", "mimicgan", "--defense-opt", 'surrogate="foo"'], "projection surrogate 'foo' unknown"),
        (["--defense", "ride", "--defense-opt", 'sigma_units="bogus"'], "sigma_units must be"),
        (["--defense", "tvm", "--defense-opt", "weight=-1"], "tvm weight must be a finite number > 0"),
        (["--defense", "tvm[method=foo]"], "tvm method must be chambolle or bregman"),
        (["--defense", "defensegan[init=mean,restarts=2]"], "init=mean starts every restart"),
        (["--defense", "defensegan[init=mean]"], "init=mean starts every restart"),  # quick's restarts=4 with it
        (["--attacks", "fgsm", "--attack-opt", "pgd:steps=3"], "attack pgd is not in this run"),
        (["--attacks", "pgd", "--attack-opt", "pgd:stepz=3"], "unknown parameter stepz for attack pgd"),
        (["--attacks", "pgd", "--attack-opt", "pgd:steps=NaN"], "must be a finite number"),
        (["--attacks", "pgd", "--attack-opt", 'pgd:steps="ten"'], "must be a whole number"),
        (["--attacks", "pgd", "--attack-opt", "pgd:random_start=1"], "must be true or false"),
        (["--attacks", "pgd", "--attack-opt", "steps=3"], "must look like ATTACK:KEY=VALUE"),
        # ranges and choices the attack's own checks refuse (ran silently with the wrong setting, or crashed late)
        (["--attacks", "cw", "--attack-opt", "cw:lr=-1"], "attack 'cw': lr must be a positive number"),
        (["--attacks", "cw", "--attack-opt", "cw:steps=0"], "attack 'cw': steps must be a whole number >= 1"),
        (["--attacks", "cw", "--attack-opt", "cw:confidence=-3"], "attack 'cw': confidence must be a number >= 0"),
        (["--attacks", "deepfool", "--attack-opt", "deepfool:steps=0"], "steps must be a whole number >= 1"),
        (["--attacks", "deepfool", "--attack-opt", "deepfool:overshoot=-1"], "overshoot must be a number >= 0"),
        (["--attacks", "universal-art", "--attack-opt", 'universal-art:attacker="foo"'], "attacker must be one of"),
        (["--attacks", "universal-fgsm", "--attack-opt", "universal-fgsm:images=0"], "images must be a whole"),
        (["--attacks", "pgd", "--attack-opt", "pdg:steps=3"], "unknown attack 'pdg'"),
        # argparse's own errors, one line too
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--n"], "argument --n: expected one argument"),
    ],
)
def test_matrix_bad_input(args, expect, no_work, tmp_path):
    out = tmp_path / "out"
    refused(M + ["--out", str(out)] + args, expect)
    assert not out.exists()  # nothing half-written


def test_out_that_is_a_file_or_below_one(no_work, tmp_path):
    f = tmp_path / "f"
    f.write_text("keep")
    refused(M + ["--out", str(f)], "is a file, not a directory")
    refused(M + ["--out", str(f / "sub")], "is below the file")
    refused(M + ["--out", ""], "--out is empty")
    refused(["paper", "run", "mimicgan-fig5b", "--out", str(f)], "is a file, not a directory")
    assert f.read_text() == "keep"


def test_defense_config_file_errors(no_work, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"median": {"kernel_size": 3},\n "tvm": {"weight": 1,}\n}')
    err = refused(M + ["--defense", "median,tvm", "--defense-config", str(bad)], "invalid JSON at line 2, column")
    assert str(bad) in err
    for text, expect in (
        ('{"median": {"kernel_size": NaN}}', "must be a finite number"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"median": 3}', "must map option names to values"),
        ('{"tvm": {"weight": 0.2}}', "defense tvm is not in this run"),
        ('{"median": {"kernel": 5}}', "unknown option(s) kernel for defense median"),
    ):
        bad.write_text(text)
        refused(M + ["--defense", "median", "--defense-config", str(bad)], expect)
    bad.write_bytes(b"\xff\xfe\x00")
    refused(M + ["--defense", "median", "--defense-config", str(bad)], "is not UTF-8 text")
    refused(M + ["--defense", "median", "--defense-config", str(tmp_path / "missing.json")], "file not found")
    refused(M + ["--defense", "median", "--defense-config", str(tmp_path)], "is a directory")


@pytest.fixture
def seen(no_work, monkeypatch) -> dict:
    """{"spec": the validated MatrixSpec of the last accepted matrix command line}."""
    from defbench.harness import matrix

    seen: dict = {}

    class Capture:
        def __init__(self, spec, store=None):
            seen["spec"] = spec.validate()
            raise Reached()

    monkeypatch.setattr(matrix, "MatrixRunner", Capture)
    return seen


def test_flags_the_run_uses_are_accepted_where_their_twins_are_refused(seen, tmp_path):
    """The silent twins of the refusals of flags a run would ignore: --eot with a bpda threat, --eps with one
    bounded attack among unbounded ones, an option repeated with the same value."""
    out = ["--out", str(tmp_path / "o")]
    assert run(M + out + ["--threat", "graybox,bpda", "--eot", "3"])[0] is None and seen["spec"].eot == 3
    assert run(M + out + ["--attacks", "deepfool,fgsm", "--eps", "0.1,0.2"])[0] is None
    assert [(a.name, a.eps) for a in seen["spec"].attacks] == [("deepfool", None), ("fgsm", 0.1), ("fgsm", 0.2)]
    twice = ["--defense", "median", "--defense-opt", "kernel_size=5", "--defense-opt", "median:kernel_size=5"]
    assert (
        run(M + out + twice + ["--attacks", "pgd", "--attack-opt", "pgd:steps=3", "--attack-opt", "pgd:steps=3"])[0]
        is None
    )
    assert seen["spec"].defense_overrides == {"median": {"kernel_size": 5}}
    # reparam: the undefended reference asked for alone, or beside a defense that takes the threat
    assert run(M + out + ["--defense", "none", "--threat", "reparam"])[0] is None
    assert seen["spec"].defenses == ("none",) and seen["spec"].threats == ("reparam",)
    assert run(M + out + ["--defense", "median,defensegan", "--threat", "graybox,reparam"])[0] is None
    assert seen["spec"].defenses == ("none", "median", "defensegan")


def test_accepted_forms_reach_the_runner(seen, tmp_path):
    """The help's own --defense-opt KEY=VALUE works for the run's one defense (and its variants)."""
    out = str(tmp_path / "o")
    assert run(M + ["--out", out, "--defense", "median", "--defense-opt", "kernel_size=5"])[0] is None
    assert seen["spec"].defense_overrides == {"median": {"kernel_size": 5}}
    assert (
        run(
            M
            + [
                "--out",
                out,
                "--defense",
                "defensegan[restarts=1],defensegan",
                "--defense-opt",
                "latent_steps=7",
                "--attacks",
                "pgd",
                "--attack-opt",
                "pgd:steps=3",
                "--eps",
                "0.1,0.2",
            ]
        )[0]
        is None
    )
    assert seen["spec"].defense_overrides == {"defensegan": {"latent_steps": 7}}
    assert [(a.eps, a.params) for a in seen["spec"].attacks] == [(0.1, (("steps", 3),)), (0.2, (("steps", 3),))]
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"tvm": {"weight": 0.2}}))
    assert (
        run(
            M
            + ["--out", out, "--defense", "tvm", "--defense-config", str(cfg), "--defense-opt", 'tvm:method="bregman"']
        )[0]
        is None
    )
    assert seen["spec"].defense_overrides == {"tvm": {"weight": 0.2, "method": "bregman"}}
    assert not Path(out).exists()


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["train"], "the following arguments are required"),
        (["train", "wizard", "--dataset", "fmnist"], "invalid choice: 'wizard'"),
        (["train", "classifier"], "--dataset"),
        (["train", "classifier", "--dataset", ""], "unknown dataset"),
        (["train", "classifier", "--dataset", "fmnist", "--epochs", "0"], "argument --epochs"),
        (["train", "classifier", "--dataset", "fmnist", "--epochs", "nan"], "argument --epochs"),
        (["train", "classifier", "--dataset", "fmnist", "--epochs", "10000000"], "argument --epochs"),
        (["train", "gan", "--dataset", "fmnist", "--subset-fraction", "0"], "must be in (0, 1]"),
        (["train", "gan", "--dataset", "fmnist", "--subset-fraction", "1.5"], "must be in (0, 1]"),
        (["train", "gan", "--dataset", "fmnist", "--subset-fraction", "nan"], "must be a finite number"),
        (["train", "gan", "--dataset", "fmnist", "--subset-fraction", "-inf"], "expected one argument"),
        (["train", "gan", "--dataset", "fmnist", "--subset-fraction", "inf"], "must be a finite number"),
        (["train", "gan", "--dataset", "fmnist", "--holdout-class", "10"], "--holdout-class must be a class"),
        (["train", "gan", "--dataset", "fmnist", "--holdout-class", "-1"], "--holdout-class must be a class"),
        (["train", "encoder", "--dataset", "fmnist", "--iterations", "0"], "argument --iterations"),
        (["train", "encoder", "--dataset", "fmnist", "--epochs", "3"], "the encoder takes --iterations"),
        (["train", "classifier", "--dataset", "fmnist", "--iterations", "3"], "--iterations is for the encoder"),
        (["train", "classifier", "--dataset", "fmnist", "--preset", "fast"], "unknown preset"),
        (["train", "classifier", "--dataset", "imagenet"], "does not train imagenet"),
        (["zoo"], "the following arguments are required"),
        (["zoo", "delete"], "invalid choice"),
        (["zoo", "show"], "needs a model id"),
        (["zoo", "show", "gan-nothing-here"], "no model 'gan-nothing-here'"),
        (["paper", "run"], "the following arguments are required: table"),
        (["paper", "run", ""], "needs a table id"),
        (["paper", "run", "nosuch-table"], "unknown paper table"),
        (["paper", "run", "mimicgan-fig5b", "--n", "0"], "argument --n"),
        (["paper", "run", "mimicgan-fig5b", "--eval-repeats", "0"], "argument --eval-repeats"),
        (["paper", "run", "mimicgan-fig5b", "--eval-repeats", "2.5"], "argument --eval-repeats: must be a whole"),
        (["paper", "run", "mimicgan-fig5b", "--n", "inf"], "argument --n"),
        (["paper", "run", "mimicgan-fig5b", "--preset", "fast"], "unknown preset"),
        (["paper", "run", "mimicgan-fig5b", "--n-threat", "bpda=0"], "must be >= 1"),
        (["paper", "run", "invgan-table2-fmnist", "--threats", "bpdaa"], "has no threat 'bpdaa'; its threats: "),
        (["paper", "bogus"], "invalid choice"),
        (["store", "check"], "required: OUT"),
        (["wizard"], "invalid choice: 'wizard'"),
    ],
)
def test_other_commands_bad_input(argv, expect, no_work):
    refused(argv, expect)


def test_debug_shows_the_traceback_and_keeps_the_exit_status(no_work, tmp_path):
    """--debug raised the error out of main: a user's bad input exited 1 (a fault's status) with it; the traceback
    is printed now, then the usual line and status."""
    rc, err = run(M + ["--out", str(tmp_path / "o"), "--defense", "magnet", "--debug"])
    assert rc == 2 and "Traceback (most recent call last)" in err and "DefbenchError: unknown defense" in err
    assert err.rstrip().splitlines()[-1].startswith("defbench: error: unknown defense 'magnet'")
    rc, err = run(M + ["--out", str(tmp_path / "o"), "--defense", "magnet"])
    assert rc == 2 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["matrix", "--bogus"], "see 'defbench matrix --help'"),
        (["paper", "run", "mimicgan-fig5b", "--bogus"], "see 'defbench paper run --help'"),
        (["store", "check", "x", "y"], "see 'defbench store --help'"),
        (["--bogus"], "see 'defbench --help'"),
    ],
)
def test_an_unrecognized_argument_points_to_its_command_s_help(argv, hint, no_work):
    """argparse reports leftovers from the top parser, so 'defbench matrix --bogus' said "see 'defbench --help'",
    whose page does not list matrix's options; the command the argument was given to is named now."""
    err = refused(argv, "unrecognized arguments:")
    assert err.rstrip().endswith(f"({hint})"), err


def test_version_answers_without_importing_torch():
    """`defbench --version` imported every command's modules, torch and the attack libraries (~11 s)."""
    import subprocess
    import sys

    code = (
        "import signal, sys, warnings; from defbench.cli import main; before = (signal.getsignal(signal.SIGTERM), "
        "warnings.showwarning); main(['--version']); print('torch' in sys.modules, before == "
        "(signal.getsignal(signal.SIGTERM), warnings.showwarning))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["defbench", __import__("defbench").__version__] and out[-2:] == ["False", "True"]  # no
    # torch imported, and no handler left behind by the early answer


# ----------------------------------------------------------------------------------------- fuzzing
FLAGS = [
    "--n",
    "--eps",
    "--seeds",
    "--batch-size",
    "--eot",
    "--eval-repeats",
    "--n-threat",
    "--seed",
    "--defense",
    "--attacks",
    "--threat",
    "--dataset",
    "--preset",
    "--defense-opt",
    "--attack-opt",
    "--defense-config",
    "--device",
    "--out",
    "--bogus",
]
NUMBERS = [
    "0",
    "-1",
    "1",
    "3",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "99999999999999",
    "0.5",
    "1.5",
    "",
    " ",
    "abc",
    "10,20",
    "0.1,0.3",
    "--",
    "١",
]
WORDS = [
    "none",
    "median",
    "tvm",
    "mimicgan",
    "all",
    "fgsm",
    "pgd",
    "graybox",
    "bpda",
    "fmnist",
    "quick",
    "",
    "median:kernel_size=5",
    "kernel_size=5",
    "pgd:steps=3",
    "bpda=5",
    "cpu",
    "x[",
    "median[kernel_size=2]",
    "kernel_size=nan",
    "pgd:steps=inf",
    ":=",
    "=",
    "weight=1",
    "tvm:weight=-1",
]


@st.composite
def command_lines(draw):
    argv = list(M)
    for _ in range(draw(st.integers(0, 5))):
        flag = draw(st.sampled_from(FLAGS))
        if flag == "--bogus":
            argv.append(flag)
            continue
        value = draw(
            st.one_of(
                st.sampled_from(NUMBERS),
                st.sampled_from(WORDS),
                # "--debug" anywhere in argv turns tracebacks on by design (main strips it from any position;
                # test_debug_shows_the_traceback), and Hypothesis draws string constants of the code under test
                st.text(
                    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8
                ).filter(lambda text: text != "--debug"),
            )
        )
        argv += [flag, value]
    return argv


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_fuzz_matrix_command_line(argv, no_work, tmp_path_factory):
    """Whatever the flags and values: either the run is accepted (the runner stand-in is reached) or the
    command says why in one line with exit status 2; never a traceback, never an internal error, and a
    refused run leaves no --out behind."""
    out = tmp_path_factory.mktemp("fz") / "out"
    if "--out" not in argv:
        argv = argv + ["--out", str(out)]
    if "--defense-config" in argv:  # the path the fuzzer drew is meant as a file name: keep it in tmp
        i = argv.index("--defense-config")
        argv[i + 1] = str(out.parent / (argv[i + 1].replace("/", "_") or "c"))
    rc, err = run(argv)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if rc is not None:
        assert rc == 2 and err.count("\n") == 1 and err.startswith("defbench: error: "), (argv, rc, err)
        assert not out.exists(), argv


#: recipe fields of the classifier, GAN and encoder (and none) for --recipe-opt
RECIPE_KEYS = ["lr", "optimizer", "arch", "batch_size", "class_feedback", "feedback_classifier", "pack", "loss",
               "spectral_norm", "oversample_weight", "lambda_adv", "epochs", "nope", ""]  # fmt: skip


@st.composite
def other_command_lines(draw):
    head = draw(
        st.sampled_from(
            [
                ["train", "classifier"],
                ["train", "gan"],
                ["train", "encoder"],
                ["train"],
                ["paper", "run", "mimicgan-fig5b"],
                ["paper", "run"],
                ["zoo", "show"],
                ["store", "check"],
                ["paper", "list"],
            ]
        )
    )
    flags = [
        "--dataset",
        "--preset",
        "--epochs",
        "--iterations",
        "--subset-fraction",
        "--holdout-class",
        "--seed",
        "--n",
        "--n-threat",
        "--device",
        "--out",
        "--force",
        "--no-progress",
        "--recipe-opt",
    ]
    argv = list(head)
    for _ in range(draw(st.integers(0, 4))):
        flag = draw(st.sampled_from(flags))
        argv.append(flag)
        if flag == "--recipe-opt":
            key = draw(st.sampled_from(RECIPE_KEYS))
            value = draw(st.one_of(st.sampled_from(NUMBERS), st.sampled_from(WORDS + ["true", "null", "quick"])))
            argv.append(f"{key}={value}")
        elif flag not in ("--force", "--no-progress"):
            argv.append(draw(st.one_of(st.sampled_from(NUMBERS), st.sampled_from(WORDS + ["mnist", "paper"]))))
    return argv


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=other_command_lines())
def test_fuzz_other_commands(argv, no_work, tmp_path_factory, monkeypatch):
    """train / paper / zoo / store: accepted (the stand-in trainer or paper runner is reached, or a listing
    prints) or one line with exit 2; never a traceback or an internal error."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DEFBENCH_HOME", str(home))
    if "--out" in argv:
        i = argv.index("--out")
        if i + 1 < len(argv):
            argv[i + 1] = str(home / (argv[i + 1].replace("/", "_") or "o"))
    rc, err = run(argv)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if rc not in (None, 0):
        assert rc == 2 and err.count("\n") == 1 and err.startswith("defbench: error: "), (argv, rc, err)


class _ClosedPipe(io.StringIO):
    """A stdout whose reader has gone (``defbench paper list | head``): every write and flush fails."""

    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_stops_quietly(monkeypatch, capsys):
    """The reader of stdout closing it early is no error of ours: exit 141 (SIGPIPE's status), nothing on stderr."""
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert main(["paper", "list"]) == 141
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_elsewhere_is_still_an_error(monkeypatch, capsys):
    """With stdout intact, a BrokenPipeError is a fault (a worker's socket, a subprocess) and is said as one."""

    def fails(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("defbench.cli.paper.list_tables", fails)
    rc = main(["paper", "list"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("defbench: error: ") and "Broken pipe" in err


def test_a_closed_stdout_pipe_of_a_real_process():
    """The same through a real pipe whose reader has closed it before the first write: exit 141, stderr empty."""
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-m", "defbench", "paper", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == b""


def test_failed_cells_exit_1_and_bad_input_2(monkeypatch, tmp_path, capsys):
    """'paper run' with cells that failed (a plugin's crash) exited 2, the status of bad input, where 'matrix'
    exits 1 (found by the CLI audit): failed cells are a fault, CellsFailed, exit 1 with its one line."""
    from defbench import CellsFailed, DefbenchError
    from defbench.harness import papers

    def fails(*a, **k):
        raise CellsFailed("cell s0 none none clean failed: RuntimeError: boom; the other cells are stored")

    monkeypatch.setattr(papers, "run_table", fails)
    argv = ["paper", "run", "ride-table2-mnist", "--n", "2", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "failed: RuntimeError: boom" in err
    monkeypatch.setattr(papers, "run_table", lambda *a, **k: (_ for _ in ()).throw(DefbenchError("bad input")))
    assert main(argv) == 2


def test_every_option_with_a_default_says_it_in_its_help():
    """`--help` explains: an option that takes a value when not given (a name, a number, a preset) says which,
    so a user reads `--preset` as paper, not as nothing. Flags (False), unset options (None) and repeatable ones
    (empty lists) have nothing to state."""
    import argparse

    from defbench.cli import build_parser

    def options(parser, path):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield from options(sub, [*path, name])
            elif a.option_strings and a.help not in (None, argparse.SUPPRESS):
                yield " ".join(path), a

    silent = [
        f"{cmd} {a.option_strings[-1]} (default {a.default!r})"
        for cmd, a in options(build_parser(), [])
        if a.default not in (None, False, [], argparse.SUPPRESS) and "default" not in a.help
    ]
    assert not silent, silent
    assert len(list(options(build_parser(), []))) > 40  # the walk reaches the subcommands' options
