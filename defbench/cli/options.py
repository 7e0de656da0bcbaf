"""Argument types and the options several commands share: counts, seeds and budgets checked on the command line
(one line naming the flag for anything else), ``--data-root`` / ``--device`` / ``--seed`` / ``--no-progress``,
``--n-threat``, ``--executor`` / ``--address``, ``KEY=VALUE`` options and JSON config files."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from defbench import DefbenchError
from defbench.attacks.threats import check_threat
from defbench.harness.matrix import Executor, LocalExecutor
from defbench.harness.ray_executor import EXECUTORS, INSTALL_HINT, RayExecutor
from defbench.harness.store import os_error_line
from defbench.limits import LIMITS, MAX_SEED, check_eps, whole_number
from defbench.seeding import DEFAULT_SEED


def csv_list(text: str) -> list[str]:
    """The non-empty items of a comma list."""
    return [p.strip() for p in text.split(",") if p.strip()]


# ---------------------------------------------------------------------------------- argument types
def count_type(flag: str, minimum: int = 1):
    """An argparse type: an integer in [minimum, LIMITS[flag]]; anything else (text, 1.5, NaN, inf, 0, -3,
    10**12) is refused with one line naming the flag."""
    return _ranged(f"--{flag}", minimum, LIMITS[flag])


def _ranged(name: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            return whole_number(text, lo, hi, text=True)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


#: an argparse type: a seed in [0, MAX_SEED]
seed_type = _ranged("--seed", 0, MAX_SEED)


def finite_float(text: str, what: str) -> float:
    """``text`` as a finite float, or a DefbenchError naming ``what`` (NaN and inf are refused)."""
    try:
        v = float(str(text).strip())
    except ValueError:
        raise DefbenchError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise DefbenchError(f"{what} must be a finite number, got {text!r}")
    return v


def lowered(text: str) -> str:
    """An argparse type for a name read as dataset, defense and attack names are: case and surrounding spaces
    ignored (``--preset Quick`` is quick)."""
    return text.strip().lower()


def fraction_type(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        v = finite_float(text, "the value")
    except DefbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("the value ", "")) from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {v:g}")
    return v


def parse_eps(text: str) -> list[float]:
    """``--eps`` as a list of budgets, each in (0, 1] (pixel units): NaN, inf, 0, negatives, > 1 refused."""
    items = csv_list(text)
    if not items:
        raise DefbenchError(f"--eps {text!r} is empty; give a number in (0, 1] or a comma list of them")
    out = []
    for e in items:
        try:
            v = finite_float(e, "--eps")
        except DefbenchError:
            raise DefbenchError(f"--eps {text!r} must be a number or a comma list of numbers in (0, 1]") from None
        out.append(check_eps(v, "--eps"))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------- KEY=VALUE and JSON files
def split_target(opt: str) -> tuple[str, str]:
    """``'defensegan[gan=sub80-s1]:restarts=4'`` -> (target, 'restarts=4'); no target -> ('', opt). The ':'
    that separates the target is the first one outside brackets and before the first '='."""
    depth = 0
    for i, ch in enumerate(opt):
        depth += (ch == "[") - (ch == "]")
        if depth == 0 and ch == "=":
            break
        if depth == 0 and ch == ":":
            return opt[:i].strip(), opt[i + 1 :]
    return "", opt


def key_value(text: str, flag: str, opt: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``flag``'s option ``opt``, the value parsed as JSON where it parses."""
    if "=" not in text:
        form = "[DEFENSE:]" if "defense" in flag else "ATTACK:" if "attack" in flag else ""
        raise DefbenchError(f"{flag} {opt!r} must look like {form}KEY=VALUE")
    k, v = text.split("=", 1)
    k = k.strip()
    if not k:
        raise DefbenchError(f"{flag} {opt!r} has an empty KEY")
    try:
        return k, json.loads(v)
    except ValueError:
        return k, v.strip()


def load_config_file(path: str, flag: str = "--defense-config") -> dict:
    """A JSON file holding one object, or one line that says why not (a malformed file names its line)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DefbenchError(f"{flag} {path} is a directory, not a JSON file")
    if not p.is_file():
        raise DefbenchError(f"{flag} {path}: file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DefbenchError(f"{flag} {path} is not UTF-8 text (not a JSON file?)") from None
    except OSError as exc:
        raise DefbenchError(f"{flag} {os_error_line(exc, path)}") from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefbenchError(
            f"{flag} {path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(loaded, dict):
        raise DefbenchError(
            f"{flag} {path} must hold a JSON object {{defense: {{option: value}}}}, not a {type(loaded).__name__}"
        )
    return loaded


# ---------------------------------------------------------------------------------- shared options
def add_common(p: argparse.ArgumentParser) -> None:
    """``--data-root``, ``--device``, ``--seed`` and ``--no-progress``."""
    p.add_argument(
        "--data-root",
        default=None,
        help="dataset root (else $DEFBENCH_DATA, the user cache, Debian's dataset dir, a download)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto: cuda when present)")
    p.add_argument("--seed", type=seed_type, default=DEFAULT_SEED, help=f"explicit seed (default {DEFAULT_SEED})")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="hide progress bars (they draw on a terminal only; a log file or pipe gets the log lines)",
    )


def add_threat_n(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-threat",
        action="append",
        default=[],
        metavar="THREAT=N",
        help="fewer images for an expensive threat, e.g. bpda=25 (repeatable): its cells attack a "
        "seeded subset of the n images; every table gives each cell's n",
    )


def parse_threat_n(opts: list[str]) -> dict[str, int]:
    """``["BPDA=25"]`` -> ``{"bpda": 25}``: each threat a known one (its canonical name), given once."""
    out = {}
    for opt in opts:
        t, _, k = opt.partition("=")
        try:  # no '=' leaves k empty, which int() refuses too
            v = int(k)
        except ValueError:
            raise DefbenchError(f"--n-threat {opt!r} must look like THREAT=N, e.g. bpda=25") from None
        if not t.strip():
            raise DefbenchError(f"--n-threat {opt!r} must look like THREAT=N, e.g. bpda=25")
        if not 1 <= v <= LIMITS["n-threat"]:
            raise DefbenchError(
                f"--n-threat {t.strip()}={v}: the number of images must be >= 1"
                if v < 1
                else f"--n-threat {t.strip()}={v}: at most {LIMITS['n-threat']} images"
            )
        t = check_threat(t)
        if out.get(t, v) != v:  # the last would win silently
            raise DefbenchError(f"--n-threat sets {t} twice ({out[t]} and {v}); give it once")
        out[t] = v
    return out


def add_executor(parser: argparse.ArgumentParser) -> None:
    """``--executor local|ray`` and ``--address`` for ``defbench matrix`` and ``defbench paper run``."""
    parser.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS,
        help=f"where cells run: local (this process, default) or ray (a Ray cluster; {INSTALL_HINT})",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="with --executor ray: the cluster to join (auto: the one this machine is part of); default a Ray "
        "instance on this machine",
    )


def executor(args: argparse.Namespace) -> Executor:
    """The executor the command line asks for; fails (one line) before any work when Ray is missing."""
    if getattr(args, "executor", "local") != "ray":
        if getattr(args, "address", None):
            raise DefbenchError("--address is for --executor ray")
        return LocalExecutor()
    return RayExecutor(address=args.address, use_cluster_gpus=getattr(args, "device", "auto") == "auto")


def add_classifier(parser: argparse.ArgumentParser) -> None:
    """``--classifier zoo|NAME``: the zoo's classifier or an installed classifier plugin."""
    parser.add_argument(
        "--classifier",
        default="zoo",
        help="zoo (default: the zoo's classifier of the dataset and preset, trained on demand) or an installed "
        "classifier plugin ('defbench classifier list')",
    )
