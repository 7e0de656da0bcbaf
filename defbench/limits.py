"""The ranges of a run's counts, seeds and ε, and their checks: one rule for the command line (``defbench.cli``)
and the Python API (``defbench.evaluate``), each of which names the value its own way (``--n`` or ``n``)."""

from __future__ import annotations

import math
import numbers

from defbench import DefbenchError

#: the largest value each count accepts: far above any real run, low enough that a typo (an extra zero or
#: three) is refused at once instead of allocating or running for days
LIMITS = {
    "n": 1_000_000,
    "seeds": 1_000,
    "batch-size": 100_000,
    "eot": 10_000,
    "eval-repeats": 1_000,
    "epochs": 100_000,
    "iterations": 100_000_000,
    "n-threat": 1_000_000,
}
MAX_SEED = 2**31 - 1
#: the largest step, iteration, restart or query count an attack or defense option takes: pgd:steps=1e9 or
#: tvm[iterations=1000000000] is a typo that would run for weeks, refused at once like the counts above
MAX_STEPS = 1_000_000


def whole_number(value: object, lo: int, hi: int, text: bool = False) -> int:
    """``value`` as an int in [lo, hi], else a ValueError that says what is allowed (without the value's name:
    the caller puts it in front). ``text``: a command-line string ('12'); otherwise a Python (or NumPy) integer:
    a float (1.7, 2.0, NaN, inf), a bool or a str is refused."""
    try:
        if text:
            v = int(str(value).strip())
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            v = int(value)
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"must be a whole number, got {shown(value)}") from None
    if not lo <= v <= hi:
        raise ValueError(f"must be between {lo} and {hi}, got {v}")
    return v


def shown(value: object, width: int = 60) -> str:
    """``repr(value)`` on one line of at most ``width`` characters (an array's repr spans lines)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def check_eps(v: float, name: str) -> float:
    """A budget ``v`` (a float) if it is in (0, 1] (pixel units), else a DefbenchError naming ``name``."""
    if not (math.isfinite(v) and 0 <= v <= 1):
        raise DefbenchError(f"epsilon {v:g} is outside [0, 1] (pixel units); {name} must be in (0, 1]")
    if v == 0:
        raise DefbenchError(f"epsilon 0 leaves every image as it is; {name} must be in (0, 1]")
    return v
