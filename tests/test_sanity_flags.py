"""Sanity flags that can fire (issue 13, item 5): for every flag a deliberately broken setup where it fires and
a sound one where it stays silent. Most use hand-built store rows; the gradient check and the output-check
record are produced by the runner itself."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from defbench.defenses.base import Defense, NoDefense
from defbench.defenses.baselines import MedianFilter
from defbench.reports.sanity import sanity_flags
from test_reports import attack_cfg, frac, make_row

N = 100
FGSM = attack_cfg("FGSM", "fgsm", iterative=False)
PGD = attack_cfg("PGD", "pgd")


def _base(defense: str = "invgan") -> list[dict]:
    """A sound run: the undefended classifier broken by every attack, the defense's BPDA stronger than gray-box."""
    return [
        make_row(frac(N, N), defense="none"),
        make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(90, N), defense=defense),
        make_row(frac(50, N), defense=defense, attack="pgd", cfg=PGD),
        make_row(frac(30, N), defense=defense, attack="pgd", cfg={**PGD, "eot": 10}, threat="bpda"),
    ]


def test_sound_base_is_silent():
    assert sanity_flags(_base()) == []


# --------------------------------------------------------------------------------------------- shattered gradients


class _Quantize(Defense):
    """A broken setup: rounding to 4 levels has a zero gradient almost everywhere (shattered gradients)."""

    name = "quantize"

    def _purify(self, x, seed):
        return torch.round(x * 4) / 4


class _Blur(Defense):
    """A sound, differentiable purification."""

    name = "blur"

    def _purify(self, x, seed):
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _gradient_check(defense, seed=0):
    from defbench.harness.matrix import MatrixRunner

    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    x[:, :, :10] = 0  # a black background, as Fashion-MNIST has
    return MatrixRunner.gradient_check(SimpleNamespace(classifier=clf), defense, x, y, seed=seed)


def _with_check(gc: dict, defense: str = "invgan") -> list[dict]:
    rows = _base(defense)
    rows[2]["extra"] = {"gradient_check": gc}
    return rows


@pytest.mark.parametrize(
    "make",
    [
        lambda G: _Quantize((1, 28, 28)),
        lambda G: __import__("defbench.defenses.baselines", fromlist=["x"]).MedianFilter(3, shape=(1, 28, 28)),
        lambda G: __import__("defbench.defenses.gan_prior", fromlist=["x"]).GANPriorDefense(
            "defensegan",
            *G,
            cfg=__import__("defbench.defenses.gan_prior", fromlist=["x"])
            .PAPER_CONFIGS["defensegan"]
            .with_(latent_steps=2, restarts=1),
            shape=(1, 28, 28),
        ),
    ],
    ids=["quantize", "median", "defensegan"],
)
def test_shattered_gradients_fire_on_the_real_autograd_gradient(make, random_gan):
    """BPDA's straight-through always passes a gradient; f ∘ purify's own graph does not, and the flag fires."""
    gc = _gradient_check(make(random_gan))
    assert gc["threat"] == "autograd" and gc["zero_grad_fraction"] > 0.9
    flags = sanity_flags(_with_check(gc))
    assert len(flags) == 1 and "Shattered gradients on invgan" in flags[0] and "autograd" in flags[0]


def test_shattered_gradients_name_the_exception_purify_raised():
    """A purify that raises under autograd (a bug, or numpy by design) leaves no gradient: the flag says which
    exception, so a defense's bug is not read as gradient masking; a purify that runs says none."""

    class Broken(_Blur):
        def _purify(self, x, seed):
            if x.requires_grad:
                raise TypeError("unsupported operand type(s) for *: 'Tensor' and 'NoneType'")
            return super()._purify(x, seed)

    gc = _gradient_check(Broken((1, 28, 28)))
    assert gc["zero_grad_fraction"] == 1.0 and not gc["differentiable"]
    (flag,) = sanity_flags(_with_check(gc))
    assert "purify raised under autograd (TypeError: unsupported operand type(s) for *" in flag
    gc = _gradient_check(MedianFilter(3, shape=(1, 28, 28)))  # numpy: leaves autograd by design
    (flag,) = sanity_flags(_with_check(gc, "median"))
    assert flag.startswith("Shattered gradients on median") and "raised under autograd (RuntimeError:" in flag
    gc = {"threat": "autograd", "zero_grad_fraction": 1.0, "differentiable": False}  # left autograd, no raise
    (flag,) = sanity_flags(_with_check(gc))
    assert "Shattered gradients on invgan" in flag and "raised" not in flag


@pytest.mark.parametrize(
    "keep, tail",
    [
        (slice(None), None),  # a BPDA cell measured it: the flag adds nothing about the run
        (slice(0, 4), "only as graybox, where no attack differentiates the defense"),
        (slice(0, 3), "only its clean cell"),
    ],
    ids=["bpda", "graybox-only", "clean-only"],
)
def test_shattered_gradients_say_what_the_run_measured(keep, tail):
    """The flag's last sentence follows the run's own cells for that defense; a gray-box-only run is not told
    that its attacks "got no useful gradient" (none of them differentiates the defense)."""
    rows = _base()
    rows[2]["extra"] = {"gradient_check": {"threat": "autograd", "zero_grad_fraction": 1.0}}
    (flag,) = sanity_flags(rows[keep])
    assert flag.startswith("Shattered gradients on invgan") and "got a useful gradient" not in flag
    if tail is None:
        assert flag.endswith("gradient-free results for it.")
    else:
        assert tail in flag


@pytest.mark.parametrize("defense", [NoDefense((1, 28, 28)), _Blur((1, 28, 28))], ids=["none", "blur"])
def test_shattered_gradients_silent_for_a_differentiable_defense(defense):
    gc = _gradient_check(defense)
    assert gc["zero_grad_fraction"] == 0.0  # black pixels (x = 0) included: the range clamp is straight-through
    assert gc["zero_grad_fraction"] < 0.1 and gc["differentiable"]
    assert not gc["nondeterministic"] and not gc["seed_dependent"]
    assert sanity_flags(_with_check(gc)) == []


def test_undeclared_randomness_fires():
    class Liar(_Blur):  # output depends on the seed but the defense says it is deterministic
        def _purify(self, x, seed):
            g = torch.Generator().manual_seed(seed)
            return (super()._purify(x, seed) + 0.01 * torch.rand(x.shape, generator=g)).clamp(0, 1)

    gc = _gradient_check(Liar((1, 28, 28)))
    assert gc["seed_dependent"] and not gc["randomized_defense"]
    flags = sanity_flags(_with_check(gc))
    assert len(flags) == 1 and "declares itself deterministic" in flags[0]
    Liar.randomized = True
    assert sanity_flags(_with_check(_gradient_check(Liar((1, 28, 28))))) == []


def test_undeclared_randomness_is_not_claimed_on_nondeterministic_cuda_kernels():
    """On CUDA's nondeterministic kernels two seeds give different outputs whatever the defense draws, so a
    deterministic defense (InvGAN on an H200) is not told to declare itself randomized; the nondeterminism flag
    speaks for those kernels instead."""
    gc = {**_gradient_check(_Blur((1, 28, 28))), "seed_dependent": True, "nondeterministic": True}
    flags = sanity_flags(_with_check({**gc, "cuda_nondeterministic_kernels": True}))
    assert len(flags) == 1 and "nondeterministic kernels" in flags[0]
    flags = sanity_flags(_with_check({**gc, "cuda_nondeterministic_kernels": False}))
    assert len(flags) == 2 and any("declares itself deterministic" in f for f in flags)


# --------------------------------------------------------------------------------------------- white vs gray


def test_white_box_weaker_than_gray_box_on_the_same_images_fires_for_a_subset_cell():
    rows = _base()
    # gray-box over 100 images: 50%, but on images 0-19 only 10% (images 0, 1); BPDA on those 20 images: 40%
    gray = [i < 2 or i >= 52 for i in range(N)]
    rows[3] = make_row(gray, attack="pgd", cfg=PGD)
    sub = {**PGD, "n_images": 20, "label": "PGD (n=20)"}
    rows[4] = make_row(frac(8, 20), attack="pgd", cfg=sub, threat="bpda", indices=list(range(20)))
    flags = sanity_flags(rows)
    assert any("Suspicious white-box result on invgan" in f and "same 20 images" in f for f in flags), flags


def test_white_box_stronger_on_the_same_images_is_silent():
    rows = _base()
    # gray-box 20% overall, but 60% on images 0-19; BPDA on those 20 images: 30% (stronger on the same images)
    gray = [i < 12 or 60 <= i < 68 for i in range(N)]
    rows[3] = make_row(gray, attack="pgd", cfg=PGD)
    sub = {**PGD, "n_images": 20, "label": "PGD (n=20)"}
    rows[4] = make_row(frac(6, 20), attack="pgd", cfg=sub, threat="bpda", indices=list(range(20)))
    assert not [f for f in sanity_flags(rows) if "white-box" in f]


#: a reparameterisation cell's attack config as the runner stores it: the sha256 of the G and I it differentiates
REPARAM = {**PGD, "model_sha256": {"G": "9f2c", "I": "41ab"}}


def test_no_white_vs_gray_flag_for_none_with_reparam():
    rows = _base()
    # f ∘ G ∘ I attacked, f evaluated: weaker than gray-box by design
    rows.append(make_row(frac(60, N), defense="none", attack="pgd", cfg=REPARAM, threat="reparam"))
    assert sanity_flags(rows) == []
    rows.append(make_row(frac(80, N), attack="pgd", cfg=REPARAM, threat="reparam"))  # on a defense it fires
    assert any("PGD under reparam leaves 80.0%" in f and "gray-box twin (50.0%)" in f for f in sanity_flags(rows))


def test_gray_box_attack_with_a_reparam_twin_is_left_to_the_twin_check():
    """A gray-box FGSM whose white-box twin is a reparameterisation cell (runner-shaped, with model_sha256) is check
    (b)'s business: the twin is flagged as weaker, and check (d) does not flag the gray-box attack again."""
    fgsm_reparam = {**FGSM, "model_sha256": {"G": "9f2c", "I": "41ab"}}
    rows = _base() + [
        make_row(frac(10, N), attack="fgsm", cfg=FGSM),
        make_row(frac(80, N), attack="fgsm", cfg=fgsm_reparam, threat="reparam"),
    ]
    flags = sanity_flags(rows)
    assert any("FGSM under reparam leaves 80.0%" in f for f in flags), flags
    assert not any("every white-box attack" in f for f in flags), flags


def test_reparam_stronger_than_gray_box_is_silent():
    rows = _base() + [make_row(frac(20, N), attack="pgd", cfg=REPARAM, threat="reparam")]
    assert sanity_flags(rows) == []


# --------------------------------------------------------------------------------------------- unbounded on none

CW = attack_cfg("CW", "cw", eps=None, bounded=False)


def test_unbounded_attack_not_breaking_the_classifier_fires():
    rows = _base() + [make_row(frac(40, N), defense="none", attack="cw", cfg=CW)]
    flags = sanity_flags(rows)
    assert len(flags) == 1 and "unbounded attack CW" in flags[0] and "40.0%" in flags[0]


def test_unbounded_attack_breaking_the_classifier_is_silent():
    assert sanity_flags(_base() + [make_row(frac(1, N), defense="none", attack="cw", cfg=CW)]) == []


UNIVERSAL = attack_cfg("Universal (ART)", "universal-art", iterative=True)  # ε-bounded, one ν for every image


def test_weak_bounded_attack_on_no_defense_fires():
    rows = _base()
    rows[1] = make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD)
    flags = sanity_flags(rows)
    assert any("the strongest bounded attack, PGD (graybox), still leaves 40.0%" in f for f in flags), flags


def test_a_small_eps_on_no_defense_is_not_held_to_zero():
    """An undefended classifier keeps 95% at ε 0.05 on (Fashion-)MNIST: a run below the dataset's standard ε (0.3)
    is not told its attack is too weak (it was, found by the reports audit); at 0.3 the same number fires."""
    small = attack_cfg("PGD ε=0.05", "pgd", eps=0.05)
    rows = _base()
    rows[1] = make_row(frac(95, N), defense="none", attack="pgd", cfg=small)
    assert not [f for f in sanity_flags(rows) if "strongest bounded attack" in f]
    rows[1] = make_row(frac(95, N), defense="none", attack="pgd", cfg=PGD)
    assert any("strongest bounded attack, PGD (graybox), still leaves 95.0%" in f for f in sanity_flags(rows))


def test_a_tie_names_the_iterative_attack():
    """FGSM and PGD leaving the same accuracy: the flag names PGD (it named whichever came first)."""
    rows = _base()
    rows[1] = make_row(frac(40, N), defense="none", attack="fgsm", cfg=FGSM)
    rows.append(make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD))
    assert any("the strongest bounded attack, PGD (graybox), still leaves 40.0%" in f for f in sanity_flags(rows))


def test_single_step_only_run_is_held_to_half_not_to_zero():
    """A run whose only bounded attack is FGSM (InvGAN Table 2's No Defense row: 18% in the paper, 17% measured
    here on MNIST at ε 0.3) is not told its attack is too weak; an FGSM that leaves more than half is (a wrong ε
    scale or labels); a PGD beside the same FGSM is still held to ≈0%."""
    rows = _base()
    rows[1] = make_row(frac(17, N), defense="none", attack="fgsm", cfg=FGSM)
    assert not [f for f in sanity_flags(rows) if "no defense" in f]
    rows[1] = make_row(frac(60, N), defense="none", attack="fgsm", cfg=FGSM)
    flags = [f for f in sanity_flags(rows) if "no defense" in f]
    assert len(flags) == 1 and "single-step" in flags[0] and "FGSM (graybox), still leaves 60.0%" in flags[0]
    rows[1] = make_row(frac(17, N), defense="none", attack="fgsm", cfg=FGSM)
    rows.append(make_row(frac(30, N), defense="none", attack="pgd", cfg=PGD))
    flags = [f for f in sanity_flags(rows) if "no defense" in f]
    assert len(flags) == 1 and "the strongest bounded attack, FGSM (graybox), still leaves 17.0%" in flags[0]


def test_universal_perturbation_on_no_defense_is_not_the_strongest_bounded_attack():
    """A universal ν is ε-bounded but one vector for all images: it is not expected to reach ≈0% (MimicGAN Fig.
    5(a) runs it alone), so a run whose only bounded attack on the classifier is universal is not told its
    attack is too weak; a per-image PGD beside it is still held to ≈0%."""
    rows = _base()
    rows[1] = make_row(frac(40, N), defense="none", attack="universal-art", cfg=UNIVERSAL)
    assert not [f for f in sanity_flags(rows) if "strongest bounded attack" in f]
    rows.append(make_row(frac(30, N), defense="none", attack="pgd", cfg=PGD))
    assert any("strongest bounded attack, PGD" in f for f in sanity_flags(rows))


def test_reparam_on_no_defense_is_not_held_to_zero():
    """none + reparam attacks f ∘ G ∘ I and scores f (InvGAN's RP column: 72% on MNIST in the paper): the check
    of the strongest bounded attack stays silent for it, and still fires for a gray-box PGD of the same run."""
    rows = _base()
    rows[1] = make_row(frac(80, N), defense="none", attack="fgsm", cfg=FGSM, threat="reparam")  # its only attack
    assert not [f for f in sanity_flags(rows) if "strongest bounded attack" in f]
    rows.append(make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD))
    assert any("strongest bounded attack, PGD (graybox)" in f for f in sanity_flags(rows))


def test_iterative_vs_fgsm_leaves_no_defense_s_reparam_cells_out():
    """none + reparam attacks f ∘ G ∘ I and scores f, a transfer setting: an iterative attack transferring worse
    than FGSM there (60 vs 40%) is no sign of masked gradients, so check (a) stays silent for it; the same gap on
    the undefended model's own gray-box cells still fires."""
    rows = _base()
    rows[1] = make_row(frac(60, N), defense="none", attack="pgd", cfg=PGD, threat="reparam")
    rows.append(make_row(frac(40, N), defense="none", attack="fgsm", cfg=FGSM, threat="reparam"))
    assert not [f for f in sanity_flags(rows) if "Possible gradient masking" in f]
    rows += [
        make_row(frac(6, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(2, N), defense="none", attack="fgsm", cfg=FGSM),
    ]
    flags = [f for f in sanity_flags(rows) if "Possible gradient masking" in f]
    assert flags == [f for f in flags if "none (graybox)" in f] and len(flags) == 1


# --------------------------------------------------------------------------------------------- weak beats white-box


@pytest.mark.parametrize(
    "attack,cfg,threat,kind",
    [
        ("fgsm", FGSM, "graybox", "transfer"),
        ("universal-art", attack_cfg("Universal (ART)", "universal-art", iterative=True), "graybox", "universal"),
        ("square", attack_cfg("Square", "square"), "graybox", "score-based"),
        # under bpda a score-based attack queries f ∘ purify itself: no gradient, so not one of the white-box
        # attacks it is held against (it was, and its own zero gap kept the check silent)
        ("square", attack_cfg("Square", "square"), "bpda", "score-based"),
        # a plugin of a family defbench does not know declares itself score-based in its config
        ("my-query", {**attack_cfg("My query", "my-query"), "score_based": True}, "graybox", "score-based"),
        ("my-query", {**attack_cfg("My query", "my-query"), "score_based": True}, "bpda", "score-based"),
    ],
)
def test_weaker_knowledge_attack_beating_white_box_fires(attack, cfg, threat, kind):
    rows = _base() + [make_row(frac(10, N), attack=attack, cfg=cfg, threat=threat)]
    flags = sanity_flags(rows)
    assert len(flags) == 1 and kind in flags[0] and "every white-box attack" in flags[0], flags


@pytest.mark.parametrize(
    "attack,cfg",
    [
        ("fgsm", FGSM),
        ("square", attack_cfg("Square", "square")),
        ("universal-art", attack_cfg("Universal (ART)", "universal-art", iterative=True)),  # one ν, 60% > BPDA's 30%
        ("my-query", {**attack_cfg("My query", "my-query"), "score_based": True}),
    ],
)
def test_weaker_knowledge_attack_not_beating_white_box_is_silent(attack, cfg):
    assert sanity_flags(_base() + [make_row(frac(60, N), attack=attack, cfg=cfg)]) == []


def test_check_d_names_bpda_s_stand_in_only_when_the_strongest_white_box_attack_is_bpda():
    """The base's strongest white-box attack is BPDA-PGD: the flag names the stand-in as a cause; with a stronger
    reparameterisation attack in the run the strongest is that one, and the stand-in is not named."""
    square = make_row(frac(10, N), attack="square", cfg=attack_cfg("Square", "square"), threat="bpda")
    (flag,) = sanity_flags(_base() + [square])
    assert "strongest, PGD under bpda" in flag and flag.endswith("far from what the defense computes.")
    rp = make_row(frac(20, N), attack="fgsm", cfg={**FGSM, "eot": 10}, threat="reparam")
    (flag,) = sanity_flags(_base() + [square, rp])
    assert "strongest, FGSM under reparam" in flag and flag.endswith("the attacks too weak.")


def test_score_based_attack_under_bpda_is_not_judged_as_a_gradient_attack():
    """Square under bpda reads no gradient: weaker than its own gray-box transfer (b) or than FGSM under bpda
    (a) says nothing about masked gradients, and both stay silent; a PGD cell in its place still fires both."""
    square = attack_cfg("Square", "square")
    fgsm_bpda = make_row(frac(50, N), attack="fgsm", cfg={**FGSM, "eot": 10}, threat="bpda")  # the base's PGD: 30
    for name, cfg in (("square", square), ("pgd", {**PGD, "steps": 7})):
        rows = _base() + [
            make_row(frac(10, N), attack=name, cfg=cfg),  # gray-box
            make_row(frac(60, N), attack=name, cfg={**cfg, "eot": 10}, threat="bpda"),
            fgsm_bpda,
        ]
        flags = [f for f in sanity_flags(rows) if f.startswith(("Suspicious white-box result on", "Possible grad"))]
        assert (flags == []) == (name == "square"), flags
        if name == "pgd":
            assert len(flags) == 2


# --------------------------------------------------------------------------------------------- EOT 1


def _bpda_rows(eot: int, randomized: bool):
    rows = _base("defensegan")
    rows[4] = make_row(
        frac(30, N),
        defense="defensegan",
        attack="pgd",
        cfg={**PGD, "eot": eot},
        threat="bpda",
        extra={"randomized": randomized},
    )
    return rows


def test_randomized_defense_with_eot_one_fires():
    flags = sanity_flags(_bpda_rows(1, True))
    assert len(flags) == 1 and "randomized" in flags[0] and "EOT 1" in flags[0] and "defensegan" in flags[0]


def test_eot_flag_says_what_the_attacks_read():
    """EOT 1 makes each gradient of PGD noise, and each queried score of Square: the flag names what its attacks
    read, both where both ran."""
    (flag,) = sanity_flags(_bpda_rows(1, True))
    assert "each gradient sees one random draw" in flag
    square = make_row(frac(30, N), defense="defensegan", attack="square", cfg=attack_cfg("Square", "square"))
    square["threat"] = "bpda"
    (flag,) = [f for f in sanity_flags(_bpda_rows(1, True) + [square]) if "EOT 1" in f]
    assert "(PGD, Square)" in flag and "each gradient and each queried score sees one random draw" in flag
    (flag,) = [f for f in sanity_flags(_bpda_rows(10, True) + [square]) if "EOT 1" in f]  # PGD at EOT 10
    assert "(Square)" in flag and "each queried score sees one random draw" in flag


@pytest.mark.parametrize("eot,randomized", [(10, True), (1, False)])
def test_eot_flag_silent_with_eot_or_for_a_deterministic_defense(eot, randomized):
    assert sanity_flags(_bpda_rows(eot, randomized)) == []


# --------------------------------------------------------------------------------------------- worse than none

UFGSM = attack_cfg("Universal-FGSM α=2", "universal-fgsm", eps=None, iterative=False, bounded=False, alpha=2.0)


def test_defense_worse_than_no_defense_fires():
    """The quickstart's case: MimicGAN 16% against 84% undefended under Universal-FGSM."""
    rows = _base("mimicgan") + [
        make_row(frac(84, N), defense="none", attack="universal-fgsm", cfg=UFGSM),
        make_row(frac(16, N), defense="mimicgan", attack="universal-fgsm", cfg=UFGSM),
    ]
    flags = sanity_flags(rows)
    assert len(flags) == 1 and "fewer images correct than no defense" in flags[0] and "16.0%" in flags[0]


def test_defense_within_the_interval_of_no_defense_is_silent():
    rows = _base("mimicgan") + [
        make_row(frac(84, N), defense="none", attack="universal-fgsm", cfg=UFGSM),
        make_row(frac(80, N), defense="mimicgan", attack="universal-fgsm", cfg=UFGSM),
    ]
    assert sanity_flags(rows) == []


def test_reparam_cell_is_not_compared_with_no_defense_s_reparam_transfer_cell():
    """No defense's reparam cell attacks f∘G∘I and scores f (a transfer attack that leaves f mostly right): a
    defense's reparam cell under it is no defense doing harm; set against the undefended gray-box cell, it fires
    only where the defense is below that."""
    transfer = make_row(frac(80, N), defense="none", attack="pgd", cfg=PGD, threat="reparam")
    reparam = make_row(frac(20, N), attack="pgd", cfg=PGD, threat="reparam")
    assert sanity_flags(_base() + [transfer, reparam]) == []
    rows = _base() + [transfer, reparam]
    rows[1] = make_row(frac(80, N), defense="none", attack="pgd", cfg=PGD)  # (also trips the 'none' check)
    assert any("fewer images correct than no defense" in f and "PGD (reparam): 20.0%" in f for f in sanity_flags(rows))


def test_bpda_cell_is_compared_with_the_undefended_gray_box_cell():
    rows = _base()
    rows[1] = make_row(frac(50, N), defense="none", attack="pgd", cfg=PGD)  # (also trips the 'none' check)
    rows[4] = make_row(frac(20, N), attack="pgd", cfg={**PGD, "eot": 1}, threat="bpda")
    assert any("fewer images correct than no defense" in f and "PGD (bpda): 20.0%" in f for f in sanity_flags(rows))


# --------------------------------------------------------------------------------------------- output checks


def test_output_violations_fire_from_synthetic_rows():
    rows = _base()
    rows[3]["extra"] = {
        "output_violations": [
            {
                "check": "linf",
                "images": 3,
                "batch": 10,
                "worst": 0.6,
                "message": "moved 3 of 10 images beyond ε=0.3 (worst 0.6)",
            }
        ]
    }
    flags = sanity_flags(rows)
    assert len(flags) == 1 and "output checks" in flags[0] and "beyond ε=0.3" in flags[0]
    rows[3]["extra"] = {"output_violations": []}
    assert sanity_flags(rows) == []


def test_runner_records_output_violations_and_the_flag_fires(tiny_zoo, tmp_path):
    """A plugin allowed to continue (output_check='warn') that leaves the ε-ball: run_cell stores the
    violations with the cell and the report flags it; an attack that stays inside stores none."""
    from defbench.attacks.fgsm import FGSM as FGSMAttack
    from defbench.harness.matrix import AttackSpec, MatrixRunner, MatrixSpec

    class Sloppy(FGSMAttack):
        output_check = "warn"

        def run(self, model, x, y):
            return (x + 2 * self.eps * torch.sign(super().run(model, x, y) - x)).clamp(0, 1)

    spec = MatrixSpec(
        dataset="fmnist",
        defenses=("none",),
        attacks=(AttackSpec("fgsm", 0.1),),
        n=4,
        batch_size=4,
        preset="quick",
        out=str(tmp_path / "o"),
        progress=False,
    )
    runner = MatrixRunner(spec)
    runner.attack = lambda s: Sloppy("fmnist", s.eps)
    runner.run()
    rows = list(runner.store.rows())
    bad = [r for r in rows if r["attack"] == "fgsm"]
    assert bad and bad[0]["extra"].get("output_violations")
    assert any("output checks" in f for f in sanity_flags(rows))
    runner2 = MatrixRunner(
        MatrixSpec(
            dataset="fmnist",
            defenses=("none",),
            attacks=(AttackSpec("fgsm", 0.1),),
            n=4,
            batch_size=4,
            preset="quick",
            out=str(tmp_path / "p"),
            progress=False,
        )
    )
    runner2.run()
    assert not any("output checks" in f for f in sanity_flags(runner2.store.rows()))


# --------------------------------------------------------------------------------------------- collapsed surrogate


def test_surrogate_collapse_fires_from_synthetic_rows():
    """A cell whose learned surrogate output nothing in one batch (f̂ scale 0.02) is flagged; scales of a
    working surrogate (0.8-0.9) and a cell without the record stay silent."""
    rows = _base("mimicgan")
    rows[3]["extra"] = {"surrogate_scale": [0.9, 0.02]}
    flags = sanity_flags(rows)
    assert len(flags) == 1 and "surrogate collapsed in 1 of 2 batch(es) of PGD (graybox)" in flags[0]
    assert "2-2%" in flags[0]
    rows[3]["extra"] = {"surrogate_scale": [0.9, 0.8]}
    assert sanity_flags(rows) == []
    rows[2]["extra"] = {"surrogate_scale": [0.05]}
    assert any("batch(es) of the clean images" in f for f in sanity_flags(rows))


def test_surrogate_scale_reads_the_last_projection(random_gan, fmnist_images):
    """GANPriorDefense.surrogate_scale: about 1 for an f̂ that passes its input through, 0 for one whose shortcut
    and conv path are both off; None without a learned surrogate."""
    from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
    from defbench.defenses.priors import MimicSurrogate
    from defbench.defenses.projection import Projection

    G, D = random_gan
    x, _ = fmnist_images
    d = GANPriorDefense("mimicgan", G, D, shape=(1, 28, 28))
    assert d.surrogate_scale(x[:4]) is None  # nothing projected yet
    f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0)).make_identity()
    d.last = Projection(x[:4], torch.zeros(4, 100), torch.zeros(4), f)
    assert d.surrogate_scale(x[:4]) == pytest.approx(1.0)
    with torch.no_grad():
        f.w.zero_()
    assert d.surrogate_scale(x[:4]) == 0.0
    dgan = GANPriorDefense("defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=1, restarts=1))
    dgan.purify(x[:2])
    assert dgan.surrogate_scale(x[:2]) is None


def test_runner_records_the_surrogate_scale_per_batch(tiny_zoo, tmp_path):
    """run_cell stores one f̂ scale per batch for a learned-surrogate defense and none for the others."""
    from defbench.harness.matrix import MatrixRunner, MatrixSpec

    spec = MatrixSpec(
        dataset="fmnist",
        defenses=("none", "mimicgan[latent_steps=1,outer_iters=1,surrogate_steps=1]"),
        attacks=(),
        n=4,
        batch_size=2,
        preset="quick",
        out=str(tmp_path / "o"),
        progress=False,
        eval_repeats=1,
    )
    runner = MatrixRunner(spec)
    runner.run()
    by_defense = {r["defense"]: r["extra"] for r in runner.store.rows()}
    scales = by_defense["mimicgan[latent_steps=1,outer_iters=1,surrogate_steps=1]"]["surrogate_scale"]
    assert len(scales) == 2 and all(0 < s < 10 for s in scales)
    assert "surrogate_scale" not in by_defense["none"]
    # the batch coupling is recorded for the reports' per-batch spread note
    assert by_defense["mimicgan[latent_steps=1,outer_iters=1,surrogate_steps=1]"]["batch_coupled"] is True
    assert "batch_coupled" not in by_defense["none"]


# --------------------------------------------------------------------------------------------- code versions


def _versioned(rows: list[dict], results_version: int | None, torchattacks: str | None) -> list[dict]:
    out = []
    for r in rows:
        dc = dict(r["defense_config"])
        if results_version is not None:
            dc["results_version"] = results_version
        if torchattacks is not None:
            dc["libraries"] = {"torch": "2.14.1", "torchattacks": torchattacks}
        out.append({**r, "defense_config": dc})
    return out


def test_cells_of_two_code_versions_fire_naming_them():
    """A store resumed by newer code holds the old cells beside the recomputed ones: the flag names the results
    versions (1 for rows stored before the field) and the libraries whose versions differ, with their counts."""
    old = _versioned(_base(), None, None)  # stored before either was recorded
    new = _versioned(_base(), 2, "3.5.1")
    (flag,) = [f for f in sanity_flags(old + new) if "different code" in f]
    assert "results version 1 (stored before it was recorded) on 5 cell(s), 2 on 5 cell(s)" in flag
    assert "torchattacks 3.5.1 on 5 cell(s), not recorded on 5 cell(s)" in flag and "torch " in flag
    upgraded = _versioned(_base(), 2, "3.6.0")
    (flag,) = [f for f in sanity_flags(new + upgraded) if "different code" in f]
    assert "results version" not in flag and "torchattacks 3.5.1 on 5 cell(s), 3.6.0 on 5 cell(s)" in flag
    assert "torch " not in flag  # the same torch everywhere: not named


def test_cells_of_one_code_version_are_silent():
    assert not [f for f in sanity_flags(_versioned(_base(), 2, "3.5.1")) if "different code" in f]
    assert sanity_flags(_versioned(_base(), 2, "3.5.1")) == []


@pytest.mark.parametrize("right, fires", [(12, True), (19, True), (20, False), (90, False)])
def test_a_classifier_near_chance_on_clean_images_fires(right, fires):
    """(k): an untrained quick classifier left in the zoo (14% on clean Fashion-MNIST) ran the README's main job to
    its end with every flag silent. Under twice chance (20% of 10 classes) the flag names it; at 20% and above
    (the sound base: 100%) it stays silent."""
    rows = _base()
    for r in rows:
        if r["attack"] == "clean":
            r["preds_undefended"] = [y if i < right else (y + 1) % 10 for i, y in enumerate(r["labels"])]
    said = [f for f in sanity_flags(rows) if "under twice chance" in f]
    assert bool(said) == fires, said
    if fires:
        assert said == [
            f"fmnist/cnn: the undefended classifier gets {right:.1f}% of 100 clean images right, under twice chance "
            "(1/10 = 10.0%): it is untrained or reads images it was not trained on (another dataset, pixel range or "
            "normalisation), and every accuracy in these tables is meaningless until it is fixed (a zoo model: "
            "retrain it with --force)."
        ]
