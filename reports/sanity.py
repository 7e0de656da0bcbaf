"""Sanity flags: one sentence per symptom of gradient masking, of a misconfigured attack or of too little data.

Checks (accuracies use the repeat rule of randomized defenses; "on the same images" means pooled over the
seeds both cells ran, on the test-set indices both cover, so a ``--n-threat`` subset cell is compared with its
full twin on the subset):

(a) an iterative bounded attack beats single-step FGSM at the same ε by more than 2 points of accuracy on
    the model the attacks differentiated (gray-box cells count only for the undefended classifier: there the
    defense was not attacked, and a large single-step perturbation surviving purification better is no sign
    of masked gradients; nor ``none`` + reparam, which attacks f ∘ G ∘ I and is scored on f, a transfer);
(b) a white-box attack (bpda, reparam) is weaker than its gray-box twin on the same images by more than 2
    points (not for ``none`` + reparam, which attacks f ∘ G ∘ I and is evaluated on f; not for gan-aware, whose
    ε is a latent-space budget);
(c) with no defense, the strongest bounded per-image attack at the dataset's standard ε or above (0.3 on MNIST and
    Fashion-MNIST, 8/255 on CIFAR-10, 0.05 on ImageNet) leaves more than 10% accuracy (more than 50% when
    every bounded attack of the run is single-step: FGSM need not reach ≈0%), or an unbounded
    per-image attack (CW, DeepFool) does not bring the classifier near 0% (more than 10% left); universal
    perturbations and corruptions are not expected to reach 0% and are left out of both, as are reparam (f ∘ G ∘
    I attacked, f scored) and gan-aware (a latent budget) cells;
(d) a transfer (gray-box), universal or score-based attack at the same ε beats every white-box attack on the
    same defense by more than 2 points on the same images (the white-box attacks are masked or too weak); a
    score-based attack (Square, or a plugin whose config says ``score_based``) is never one of the white-box
    attacks, under any threat: under bpda it queries f ∘ purify's outputs and differentiates nothing, which is
    what makes it the check of BPDA's stand-in (nor is it judged by (a) or (b), which are about gradients);
(e) a randomized defense attacked through BPDA with EOT 1 (one draw per gradient, or per queried score of a
    score-based attack: either is noise);
(f) a defense leaves fewer images correct than no defense under the same attack, by more than the Wilson 95%
    interval of the defended cell (on the same images; a BPDA or reparameterisation cell against no defense's
    gray-box cell, the classifier attacked directly);
(g) the clean row's gradient check of f ∘ purify (its real autograd graph) found mostly zero or absent
    gradients (shattered gradients), hidden randomness (same seed, different outputs), or an output that
    depends on the seed of a defense declared deterministic (the last two are the net under the built-in
    defenses, which the runner's check of declared randomness skips; a user's or plugin's defense that does
    either is refused by that check before its first cell, so (g) sees them only in stores of older code);
(h) an attack's outputs violated the attack output checks (``extra["output_violations"]``);
(i) cells of fewer than 100 images, whose binomial 95% interval is wide;
(j) cells computed by different code: another results version (``defense_config["results_version"]``; 1 for
    rows stored before it was recorded) or other versions of the numeric libraries (``["libraries"]``), as in a
    store resumed by newer code, which recomputes under new keys and keeps the old cells beside the new ones;
(k) the undefended classifier gets under twice chance (1/classes) of the clean images right: an untrained model
    or images it was not trained on (another dataset, pixel range or normalisation), which makes every number
    of the tables meaningless.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

from defbench.attacks.base import DEFAULT_EPS
from defbench import metrics
from defbench.datasets import NUM_CLASSES
from defbench.metrics import binomial_half_width, wilson_interval

from .common import (
    Base,
    Row,
    accuracy,
    attack_key,
    how_key,
    attack_label,
    base_key,
    base_names_of,
    cfg,
    correct_mask,
    eps_equal,
    is_clean,
    is_corruption,
    is_universal,
    twin_key,
)

MARGIN = 0.02  # 2 points of accuracy


def _over_margin(gap: float) -> bool:
    """Whether an accuracy gap is more than :data:`MARGIN`, up to float rounding: 0.05 − 0.03 is
    0.020000000000000004, which is 2 points, not more."""
    return round(gap, 9) > MARGIN


NO_DEFENSE_MAX = 0.10  # accuracy an undefended model may keep under its strongest bounded attack
#: ... when every bounded attack of the run is single-step (FGSM): one linearised step need not reach ≈0% (the
#: papers' own undefended FGSM cells: 18% on MNIST at ε 0.3, InvGAN Table 2; 11.6% on Fashion-MNIST, MimicGAN
#: Fig. 5(b)); more than half left is the sign of a wrong ε scale, labels or model mode
SINGLE_STEP_MAX = 0.50
UNBOUNDED_MAX = 0.10  # ... and under an unbounded per-image attack (CW, DeepFool: ≈0% expected)
MIN_IMAGES = 100
ZERO_GRAD_MAX = 0.5
#: white-box threats whose attacks differentiate the defended model (gan-aware budgets the latent instead)
GRADIENT_THREATS = ("bpda", "reparam")
#: attack families that query scores only (a plugin may also set ``score_based: true`` in its config)
SCORE_BASED = ("square", "spsa", "nes", "simba", "zoo", "bandits", "score-based")

Cell = tuple[Base, str, tuple[str, str, str]]  # (defended model, threat, (attack key, how it ran))


def _cells(rows: list[Row]) -> dict[Cell, dict[int, Row]]:
    """Every attack cell's rows by seed."""
    out: dict[Cell, dict[int, Row]] = defaultdict(dict)
    for r in rows:
        if not is_clean(r):
            # how it ran (EOT, G·I) is part of the cell: a rerun at another --eot is a cell of its own
            out[(base_key(r), r["threat"], (*attack_key(r), how_key(r)))][int(r["seed"])] = r
    return out


def _mean(by_seed: dict[int, Row]) -> float:
    v = [accuracy(r) for r in by_seed.values()]
    return float(np.nanmean(v)) if v and not all(math.isnan(x) for x in v) else math.nan


def _first(by_seed: dict[int, Row]) -> Row:
    return by_seed[min(by_seed)]


def _paired(a: dict[int, Row], b: dict[int, Row]) -> tuple[int, int, int]:
    """(correct in a, correct in b, images) over the seeds both ran and the test-set indices both cover."""
    ka = kb = n = 0
    for s in set(a) & set(b):
        ma = dict(zip((int(i) for i in a[s]["indices"]), correct_mask(a[s]), strict=True))
        mb = dict(zip((int(i) for i in b[s]["indices"]), correct_mask(b[s]), strict=True))
        common = set(ma) & set(mb)
        ka += sum(bool(ma[i]) for i in common)
        kb += sum(bool(mb[i]) for i in common)
        n += len(common)
    return ka, kb, n


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _transfer_to_f(b: Base, t: str) -> bool:
    """``none`` + reparam: it attacks f ∘ G ∘ I and is scored on f, a transfer, not a white-box attack on the
    model it is scored on."""
    return b[2] == "none" and t == "reparam"


def _is_score_based(r: Row) -> bool:
    return bool(cfg(r, "score_based")) or str(cfg(r, "family", "")).lower() in SCORE_BASED


def _white_box(t: str, r: Row) -> bool:
    """An attack that differentiates the defended model: a gradient threat, and not a score-based attack (under
    bpda that one queries f ∘ purify and reads no gradient: check (d)'s)."""
    return t in GRADIENT_THREATS and not _is_score_based(r)


def _iterative_vs_fgsm(cells: dict[Cell, dict[int, Row]], names: dict[Base, str]) -> list[str]:
    out = []
    for (b, t, _), by_seed in cells.items():
        r, acc = _first(by_seed), _mean(by_seed)
        if (
            not (cfg(r, "iterative") and cfg(r, "bounded"))
            or cfg(r, "family") == "fgsm"
            or cfg(r, "eps") is None
            or is_universal(r)
            or _is_score_based(r)  # a random search weaker than FGSM is a weak search, not masked gradients
            or (t == "graybox" and r["defense"] != "none")
            or _transfer_to_f(b, t)
        ):
            continue
        fgsm = [
            a
            for (b2, t2, _), s2 in cells.items()
            if b2 == b and t2 == t
            for a in [_mean(s2)]
            if cfg(_first(s2), "family") == "fgsm"
            and eps_equal(cfg(_first(s2), "eps"), cfg(r, "eps"))
            and not math.isnan(a)
        ]
        if fgsm and _over_margin(acc - min(fgsm)):
            out.append(
                f"Possible gradient masking on {names[b]} ({t}): iterative {attack_label(r)} leaves "
                f"{_pct(acc)} accuracy, {100 * (acc - min(fgsm)):.1f} points more than single-step FGSM at "
                f"the same ε={cfg(r, 'eps')} ({_pct(min(fgsm))}); an iterative attack should be at least "
                "as strong."
            )
    return out


def _white_vs_gray(cells: dict[Cell, dict[int, Row]], names: dict[Base, str]) -> list[str]:
    gray = {(b, twin_key(_first(s))): s for (b, t, _), s in cells.items() if t == "graybox"}
    out = []
    for (b, t, _), by_seed in cells.items():
        r = _first(by_seed)
        if not _white_box(t, r) or _transfer_to_f(b, t):
            continue
        twin = gray.get((b, twin_key(r)))
        if twin is None:
            continue
        kw, kg, n = _paired(by_seed, twin)
        if n and _over_margin((kw - kg) / n):
            out.append(
                f"Suspicious white-box result on {names[b]}: {attack_label(r)} under {t} leaves "
                f"{_pct(kw / n)} accuracy, {100 * (kw - kg) / n:.1f} points more than its gray-box twin "
                f"({_pct(kg / n)}) on the same {n} images; a white-box attack should not be weaker, so its "
                "gradients are likely masked or the attack misconfigured."
            )
    return out


def _no_defense(cells: dict[Cell, dict[int, Row]], names: dict[Base, str]) -> list[str]:
    best: dict[Base, tuple[float, Row, str]] = {}
    iterative: set[Base] = set()  # undefended models that an iterative bounded per-image attack ran on
    out = []
    for (b, t, _), by_seed in cells.items():
        r, acc = _first(by_seed), _mean(by_seed)
        if b[2] != "none" or math.isnan(acc):
            continue
        per_image = not is_universal(r) and not is_corruption(r)  # one ν for all images need not reach ≈0%
        # reparam on no defense attacks f ∘ G ∘ I and is evaluated on f; gan-aware's ε is a latent budget:
        # neither differentiates the classifier it is scored on, so neither is expected to reach ≈0%
        on_f = t not in ("reparam", "gan-aware")
        # ≈0% is expected at the dataset's standard budget (0.3 on MNIST, 8/255 on CIFAR-10), not at a small ε of
        # a sweep (an undefended classifier keeps 95% at ε 0.05 on MNIST): smaller budgets are not judged here
        eps, standard = cfg(r, "eps"), DEFAULT_EPS.get(str(b[0]), 0.0)
        at_standard = isinstance(eps, (int, float)) and eps >= standard - 1e-9
        if cfg(r, "bounded") and per_image and on_f and at_standard:
            if cfg(r, "iterative"):
                iterative.add(b)
            stronger = b not in best or acc < best[b][0]
            tie_to_iterative = (
                b in best and acc == best[b][0] and cfg(r, "iterative") and not cfg(best[b][1], "iterative")
            )
            if stronger or tie_to_iterative:  # on a tie, name the iterative attack (PGD, not FGSM)
                best[b] = (acc, r, t)
        if t == "graybox" and not cfg(r, "bounded") and per_image and acc > UNBOUNDED_MAX:
            out.append(
                f"Sanity check failed on {names[b]} (no defense): the unbounded attack {attack_label(r)} "
                f"leaves {_pct(acc)} accuracy where ≈0% is expected (it may perturb as much as it needs); "
                "it is likely stopped too early or misconfigured, and its rows on the defenses overstate "
                "their robustness."
            )
    flags = []
    for b, (acc, r, t) in best.items():
        if b in iterative and acc > NO_DEFENSE_MAX:
            flags.append(
                f"Sanity check failed on {names[b]} (no defense): the strongest bounded attack, {attack_label(r)} "
                f"({t}), still leaves {_pct(acc)} accuracy where ≈0% is expected; the attack is likely too weak "
                "or misconfigured."
            )
        elif b not in iterative and acc > SINGLE_STEP_MAX:
            flags.append(
                f"Sanity check failed on {names[b]} (no defense): the run's bounded attacks are single-step and "
                f"the strongest, {attack_label(r)} ({t}), still leaves {_pct(acc)} accuracy; one step need not "
                f"reach ≈0%, but more than {_pct(SINGLE_STEP_MAX)} left points at a wrong ε scale, labels or "
                "model mode (an iterative attack such as PGD checks the classifier better)."
            )
    return flags + out


def _weak_beats_white(cells: dict[Cell, dict[int, Row]], names: dict[Base, str]) -> list[str]:
    out = []
    for (b, t, _), by_seed in cells.items():
        r = _first(by_seed)
        if b[2] == "none" or not cfg(r, "bounded") or cfg(r, "eps") is None:
            continue
        kind = (
            "universal"
            if is_universal(r)
            else "score-based"
            if _is_score_based(r)
            else "transfer (gray-box)"
            if t == "graybox"
            else None
        )
        if kind is None:
            continue
        white = [
            (s, _first(s))
            for (b2, t2, _), s in cells.items()
            if b2 == b
            and _white_box(t2, _first(s))
            and not is_universal(_first(s))
            and eps_equal(cfg(_first(s), "eps"), cfg(r, "eps"))
        ]
        # a gray-box attack with a white-box twin is check (b)'s business
        if not white or (kind.startswith("transfer") and any(twin_key(w) == twin_key(r) for _, w in white)):
            continue
        gaps = []
        for s, w in white:
            kc, kw, n = _paired(by_seed, s)
            if n:
                gaps.append(((kw - kc) / n, kc / n, kw / n, w, n))
        if gaps and _over_margin(min(g[0] for g in gaps)):
            g = min(gaps, key=lambda g: g[2])  # the strongest white-box attack
            out.append(
                f"Suspicious white-box results on {names[b]}: the {kind} attack {attack_label(r)} ({t}) "
                f"leaves {_pct(g[1])} accuracy, less than every white-box attack at ε={cfg(r, 'eps')} (the "
                f"strongest, {attack_label(g[3])} under {g[3]['threat']}, leaves {_pct(g[2])} on the same "
                f"{g[4]} images); an attack that knows less should not be stronger, so the white-box "
                "gradients are likely masked or the attacks too weak"
                + (
                    ", or BPDA's stand-in for the defense's gradient is far from what the defense computes."
                    if g[3]["threat"] == "bpda"
                    else "."
                )
            )
    return out


def _eot_one(rows: list[Row], names: dict[Base, str]) -> list[str]:
    randomized = {
        base_key(r)
        for r in rows
        if (r.get("extra") or {}).get("randomized")
        or ((r.get("extra") or {}).get("gradient_check") or {}).get("randomized_defense")
    }
    hits: dict[Base, list[Row]] = defaultdict(list)
    for r in rows:
        if not is_clean(r) and r["threat"] == "bpda" and base_key(r) in randomized and int(cfg(r, "eot") or 1) <= 1:
            hits[base_key(r)].append(r)
    return [
        f"{names[b]} is randomized but was attacked through BPDA with EOT 1 "
        f"({', '.join(dict.fromkeys(attack_label(r) for r in hit))}): each "
        f"{' and each '.join(sorted({'queried score' if _is_score_based(r) else 'gradient' for r in hit}))} sees "
        "one random draw, so the attack follows noise and its accuracy overstates the defense; rerun with --eot "
        "(e.g. 10)."
        for b, hit in hits.items()
    ]


def _worse_than_none(cells: dict[Cell, dict[int, Row]], names: dict[Base, str]) -> list[str]:
    none = {(b[0], b[1], t, twin_key(_first(s))): s for (b, t, _), s in cells.items() if b[2] == "none"}
    hits: dict[Base, list[str]] = defaultdict(list)
    for (b, t, _), by_seed in cells.items():
        if b[2] == "none":
            continue
        r = _first(by_seed)
        # the undefended reference is the classifier attacked directly: a BPDA or reparameterisation cell of
        # the defense is set against no defense's gray-box cell (none's own reparam cell attacks f∘G∘I and scores
        # f, a transfer attack, not the undefended white-box number)
        ref_t = "graybox" if t in ("bpda", "reparam") else t
        ref = none.get((b[0], b[1], ref_t, twin_key(r)))
        if ref is None:
            continue
        kd, kn, n = _paired(by_seed, ref)
        if not n:
            continue
        lo, hi = wilson_interval(kd, n)
        if kn / n > hi:
            hits[b].append(
                f"{attack_label(r)} ({t}): {_pct(kd / n)} (95% interval {_pct(lo)}–{_pct(hi)}) against "
                f"{_pct(kn / n)} undefended on the same {n} images"
            )
    return [
        f"{names[b]} leaves fewer images correct than no defense under {len(h)} attack(s), by more than the "
        f"defended cell's interval: {'; '.join(h)}. The defense hurts more than it helps against these "
        "perturbations."
        for b, h in hits.items()
    ]


def _adaptive_gap(threats: set[str], undefended: bool) -> str:
    """What a shattered-gradient flag adds about the run's own cells for that model: nothing when an adaptive
    attack (BPDA, reparameterized) measured it; otherwise which threats did, none of which differentiates the
    defense, so the flag does not touch those numbers but they are no white-box robustness."""
    if undefended or threats & set(GRADIENT_THREATS):
        return ""
    if not threats:
        return " This run has only its clean cell, so no attack was run against it."
    return (
        f" This run attacks it only as {', '.join(sorted(threats))}, where no attack differentiates the defense: "
        "those numbers are not masked by it, but none is an adaptive (BPDA or reparameterized) measurement."
    )


def _gradient_checks(rows: list[Row], names: dict[Base, str]) -> list[str]:
    attacked: dict[Base, set[str]] = defaultdict(set)  # each defended model's threats with an attacked cell
    for r in rows:
        if not is_clean(r):
            attacked[base_key(r)].add(str(r["threat"]))
    zero: dict[tuple[Base, str], float] = {}
    nondet: set[tuple[Base, str]] = set()
    kernels: set[Base] = set()  # checks that ran on CUDA's nondeterministic kernels
    on_cuda: set[Base] = set()  # checks that ran on CUDA (a kernel without a deterministic form can still vary)
    undeclared: set[Base] = set()
    raised: dict[tuple[Base, str], str] = {}  # the exception purify raised under autograd, where it did
    for r in rows:
        gc = (r.get("extra") or {}).get("gradient_check") if is_clean(r) else None
        if not gc:
            continue
        k = (base_key(r), str(gc.get("threat", "?")))
        f = gc.get("zero_grad_fraction")
        if f is not None and float(f) > ZERO_GRAD_MAX:
            zero[k] = max(zero.get(k, 0.0), float(f))
        if gc.get("error"):
            raised[k] = str(gc["error"])
        if gc.get("cuda_nondeterministic_kernels"):
            kernels.add(base_key(r))
        if gc.get("device") == "cuda":
            on_cuda.add(base_key(r))
        if gc.get("nondeterministic"):
            nondet.add(k)
        if gc.get("seed_dependent") and not gc.get("randomized_defense"):
            undeclared.add(base_key(r))
    undeclared -= kernels  # on those kernels two seeds differ whatever the defense draws: no evidence either way
    out = []
    # t is "autograd" for every check the runner writes now; stores of the same schema written before 75485bc
    # recorded "bpda" there, and their rows still read with the wording of the other branches
    for (b, t), f in zero.items():
        what = (
            "input gradients of f ∘ purify (the defense's own autograd graph)"
            if t == "autograd"
            else f"input gradients ({t})"
        )
        # where purify raised, say what: a purification that leaves autograd by design (numpy, as the median
        # filter) reads the same as a defense with a bug that only shows under autograd
        cause = (
            f" No gradient reached the input because purify raised under autograd ({raised[(b, t)]}): by design "
            "where the defense leaves autograd, otherwise a bug of the defense to fix before trusting its cells."
            if (b, t) in raised
            else ""
        )
        out.append(
            f"Shattered gradients on {names[b]}: {100 * f:.0f}% of the {what} are zero or absent, so "
            "attacks that differentiate the defense directly see no signal; trust only BPDA, "
            f"reparameterized or gradient-free results for it.{cause}{_adaptive_gap(attacked[b], b[2] == 'none')}"
        )
    out += [
        f"Gradient check on {names[b]} ({t}): the defended model is nondeterministic (same input and seed, "
        "different outputs) on CUDA with PyTorch's nondeterministic kernels ($DEFBENCH_NONDETERMINISTIC=1): its "
        "results cannot be reproduced bit for bit; rerun without that setting to tell the kernels from randomness "
        "that is not derived from its seed."
        if t == "autograd" and b in kernels
        else f"Gradient check on {names[b]} ({t}): the defended model is nondeterministic (same input and seed, "
        "different outputs): it draws randomness that is not derived from its seed"
        + (", or runs a CUDA operation that has no deterministic form (PyTorch warns which)" if b in on_cuda else "")
        + ", so its results cannot be reproduced or resumed."
        if t == "autograd"
        else f"Gradient check on {names[b]} ({t}): the defended model is nondeterministic (same input, different "
        "outputs); its gradients are stochastic, so attacks need EOT and accuracy the all-repeats rule."
        for (b, t) in sorted(nondet, key=str)
    ]
    out += [
        f"{names[b]} declares itself deterministic but its output changes with the seed: BPDA attacks one "
        "draw while evaluation uses others, which overstates its robustness; declare it randomized."
        for b in sorted(undeclared, key=str)
    ]
    return out


def _output_violations(rows: list[Row], names: dict[Base, str]) -> list[str]:
    out = []
    for r in rows:
        v = (r.get("extra") or {}).get("output_violations")
        if not v or is_clean(r):
            continue
        items = v if isinstance(v, list) else [v]
        first = items[0].get("message", items[0]) if isinstance(items[0], dict) else items[0]
        out.append(
            f"Attack {attack_label(r)} on {names[base_key(r)]} ({r['threat']}, seed {r['seed']}) failed the "
            f"attack output checks {len(items)} time(s) (finite, in [0, 1], within its ε), e.g. "
            f"{str(first)[:200]}; its numbers in these tables are not trustworthy."
        )
    return out


def _small_cells(rows: list[Row]) -> list[str]:
    by_n: dict[int, int] = defaultdict(int)
    for r in rows:
        n = len(r["labels"])
        if 0 < n < MIN_IMAGES:
            by_n[n] += 1
    return [
        f"{count} cell(s) have only {n} images: the binomial 95% interval of an accuracy is up to "
        f"±{binomial_half_width(n):.1f} points (1.96·√(p(1−p)/n) at p = 0.5), so smaller differences "
        "are noise."
        for n, count in sorted(by_n.items())
    ]


#: a learned surrogate whose output is under this share of its input's mean magnitude has collapsed: MimicGAN's
#: collapsed runs read 0.00-0.06 and every other learned-surrogate run 0.28-1.15 (docs/RESULTS.md,
#: mimicgan-fig4b, "the ℓ1 loss and a dying surrogate")
SURROGATE_COLLAPSE = 0.1


def _surrogate_collapse(rows: list[Row], names: dict[Base, str]) -> list[str]:
    out = []
    for r in rows:
        scales = (r.get("extra") or {}).get("surrogate_scale") or []
        low = [s for s in scales if s < SURROGATE_COLLAPSE]
        if not low:
            continue
        what = "the clean images" if is_clean(r) else f"{attack_label(r)} ({r['threat']})"
        out.append(
            f"{names[base_key(r)]}'s learned surrogate collapsed in {len(low)} of {len(scales)} batch(es) of {what}, "
            f"seed {r['seed']}: its output f̂(x̂) is {100 * min(low):.0f}-{100 * max(low):.0f}% of the input's mean "
            "magnitude, so the projection matches the input with near-black images and the cell measures that "
            "collapse, not the defense (docs/DEFENSES.md: under the ℓ1 loss on sparse inputs; loss=l2 does not "
            "collapse there)."
        )
    return out


def _near_chance(rows: list[Row]) -> list[str]:
    """(k): per dataset and classifier, the clean images the bare classifier gets right (``preds_undefended`` of
    the clean rows, pooled by test-set index) against chance."""
    right: dict[tuple[str, str], dict[int, bool]] = defaultdict(dict)
    for r in rows:
        if is_clean(r) and r.get("preds_undefended"):
            ok = metrics.correct(r["preds_undefended"], r["labels"])
            right[(r["dataset"], r["classifier"])].update(
                zip((int(i) for i in r["indices"]), map(bool, ok), strict=True)
            )
    out = []
    for (dataset, classifier), images in right.items():
        k = NUM_CLASSES.get(dataset) or len({int(y) for r in rows if r["dataset"] == dataset for y in r["labels"]})
        acc = float(np.mean(list(images.values())))
        if len(images) >= 10 and k > 1 and acc < 2 / k:
            out.append(
                f"{dataset}/{classifier}: the undefended classifier gets {100 * acc:.1f}% of {len(images)} clean "
                f"images right, under twice chance (1/{k} = {100 / k:.1f}%): it is untrained or reads images it was "
                "not trained on (another dataset, pixel range or normalisation), and every accuracy in these tables "
                "is meaningless until it is fixed (a zoo model: retrain it with --force)."
            )
    return out


def _code_versions(rows: list[Row]) -> list[str]:
    """(j): one flag when the rows were computed by more than one results version or library version."""
    configs = [r.get("defense_config") or {} for r in rows]
    results: dict[Any, int] = defaultdict(int)
    libraries: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    names = {lib for dc in configs for lib in dc.get("libraries") or {}}
    for dc in configs:
        results[dc.get("results_version", 1)] += 1
        for lib in names:
            libraries[lib][(dc.get("libraries") or {}).get(lib, "not recorded")] += 1
    parts = []
    if len(results) > 1:
        parts.append(
            "results version "
            + ", ".join(
                f"{v}{' (stored before it was recorded)' if v == 1 else ''} on {k} cell(s)"
                for v, k in sorted(results.items(), key=lambda vk: str(vk[0]))
            )
        )
    for lib, per in sorted(libraries.items()):
        if len(per) > 1:
            parts.append(f"{lib} " + ", ".join(f"{v} on {k} cell(s)" for v, k in sorted(per.items())))
    if not parts:
        return []
    return [
        f"These cells were computed by different code ({'; '.join(parts)}): a store resumed by newer code "
        "recomputes its cells under new keys and keeps the old ones beside them, so a defense can appear twice "
        "(its columns told apart by a #hash) and defenses computed by different code sit side by side. Compare "
        "cells of one version, or rerun into a fresh --out."
    ]


def sanity_flags(rows: Iterable[Row]) -> list[str]:
    """Human-readable warnings pointing at gradient masking, misconfigured attacks or underpowered cells
    (empty list: all clear)."""
    rows = list(rows)
    names = base_names_of(rows)
    cells = _cells(rows)
    return (
        _iterative_vs_fgsm(cells, names)
        + _white_vs_gray(cells, names)
        + _no_defense(cells, names)
        + _weak_beats_white(cells, names)
        + _eot_one(rows, names)
        + _worse_than_none(cells, names)
        + _gradient_checks(rows, names)
        + _output_violations(rows, names)
        + _surrogate_collapse(rows, names)
        + _small_cells(rows)
        + _code_versions(rows)
        + _near_chance(rows)
    )


def sanity_section(rows: Iterable[Row]) -> list[str]:
    """The reports' "Sanity checks" section (Markdown lines): each flag that fires, or that none did."""
    flags = sanity_flags(rows)
    return ["### Sanity checks", ""] + ([f"- ⚠ {f}" for f in flags] if flags else ["- none fired."]) + [""]
