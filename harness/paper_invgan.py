"""InvGAN's tables and figures as specs: data (the setting each was measured in and the printed numbers), schema in
:mod:`defbench.harness.paper_spec`."""

from __future__ import annotations

from defbench.harness.matrix import AttackSpec
from defbench.harness.paper_spec import (
    CW_INVGAN,
    FGSM_03,
    INVGAN,
    PGD_03,
    Measure,
    PaperTable,
    grid,
)

#: InvGAN's code (whitebox.py) hands cleverhans' FGSM and CW no labels, so both attack the attacked model's
#: predictions on the clean input: the classifier's (gray-box), f(G(I(x)))'s for the RP FGSM
_PREDICTED = (("labels", "predicted"),)
FGSM_INVGAN = AttackSpec(FGSM_03.name, FGSM_03.eps, FGSM_03.params + _PREDICTED)
CW_INVGAN_CODE = AttackSpec(CW_INVGAN.name, CW_INVGAN.eps, CW_INVGAN.params + _PREDICTED)


def _invgan_parts(dataset: str) -> tuple[PaperTable, PaperTable]:
    cols2 = ("Clean", "FGSM", "CW", "RP", "BPDA")
    rows2 = ("No Defense", "DefenseGAN", "InvGAN")
    defense = dict(zip(rows2, ("none", "defensegan", "invgan"), strict=True))
    cellm = {
        "FGSM": ("graybox", FGSM_INVGAN),
        "CW": ("graybox", CW_INVGAN_CODE),
        "RP": ("reparam", FGSM_INVGAN),
        "BPDA": ("bpda", PGD_03),
    }
    if dataset == "mnist":
        acc = [[0.99, 0.18, 0.01, 0.72, None], [0.98, 0.83, 0.96, 0.92, 0.79], [0.99, 0.78, 0.99, 0.92, 0.87]]
        auc = [[0.9878, 0.9661, 0.9801, 0.8706], [0.9985, 0.9880, 0.9975, 0.9210]]
        label = "MNIST"
    else:
        acc = [[0.92, 0.06, 0.06, 0.41, None], [0.81, 0.34, 0.80, 0.54, 0.59], [0.88, 0.28, 0.87, 0.49, 0.71]]
        auc = [[0.9563, 0.7752, 0.9364, 0.8999], [0.9932, 0.8543, 0.9845, 0.9334]]
        label = "Fashion-MNIST"
    m2: dict = {}
    for r in rows2:
        m2[(r, "Clean")] = Measure(defense[r])
        for c, (t, a) in cellm.items():
            if not (r == "No Defense" and t == "bpda"):
                m2[(r, c)] = Measure(defense[r], t, a)
    common = dict(
        dataset=dataset,
        defenses=("none", "defensegan", "invgan"),
        attacks=(FGSM_INVGAN, CW_INVGAN_CODE, PGD_03),
        threats=("graybox", "reparam", "bpda"),
        n=None,
        batch_size=100,
        paper_scale=100.0,
        # the paper's protocol: BPDA (Athalye et al.) with one gradient per PGD step; the text never mentions EOT.
        # DefenseGAN's random restarts make the report's EOT-1 flag fire by design; InvGAN is deterministic.
        eot=1,
    )
    notes = (
        "FGSM ε = 0.3 and CW (6 binary-search steps, lr 0.2, 100 iterations) attack the classifier alone "
        "(gray-box), as in §4.2, against its predicted labels, as InvGAN's code does (whitebox.py hands "
        "cleverhans no labels; its RP FGSM likewise attacks f(G(I(x)))'s predictions). Until 2026-12-05 the spec "
        "handed them the true labels (Fashion-MNIST FGSM 2 / 21 / 23 of 100 where the predicted ones read 6 / 24 "
        "/ 28, RP 41 / 39 / 28 against 42 / 47 / 35; docs/RESULTS.md). BPDA's PGD, our reading of that column, "
        "keeps the true labels.",
        "RP: the reparameterisation attack of §3.4 takes the gradient ∇x f(G(I(x))); the paper names no "
        "attack for it, so we read it as one FGSM step (ε = 0.3, the paper's FGSM budget) on f ∘ G ∘ I "
        "(threat reparam); for No Defense the same inputs go to the bare classifier.",
        "BPDA: PGD (ε = 0.3, 40 steps; budget not stated in the paper) through the defense with its BPDA "
        "backward, the identity (the paper's example surrogate; InvGAN's until 2026-12-04 was G(I(x)), which "
        "left it 26% of 100 Fashion-MNIST images where the identity leaves 3%, and 86% of 100 MNIST images where "
        "it leaves 63%: docs/RESULTS.md). '-' cells are not run.",
        "EOT 1, as the paper: its BPDA never mentions EOT. DefenseGAN is randomized (random restarts), so the "
        "report flags its cell; `defbench matrix --defense defensegan --threat bpda --eot 10` is the stronger "
        "rerun (InvGAN starts from its encoder and is deterministic).",
        "InvGAN runs T = 1000 inference steps, as §4.2 (the defense section) states; §4.1's list calls T = 200 "
        "'the inference used at defense time'. On MNIST's gray-box FGSM cell T = 200 keeps 63 of 100 against "
        "T = 1000's 69 (docs/RESULTS.md).",
        "The paper does not state how many test images; we default to 500. Cowboy (†, numbers quoted from its "
        "authors) and the CIFAR-10 / CelebA parts of the table are not included.",
        "The encoder (InvGAN's start and the RP attack's path) trains 3000 iterations in the paper preset, the paper's "
        "100K on a GPU with `defbench train encoder --dataset D --preset paper --iterations 100000 --force`; the "
        "budget moves the RP cells (Fashion-MNIST, 10000 iterations: InvGAN's RP 32 -> 45 of 100, p = 0.019; "
        "docs/RESULTS.md).",
    )
    t2 = PaperTable(
        id=f"invgan-table2-{dataset}",
        ref=f"InvGAN Table 2 ({label})",
        title=f"Classification accuracy under white-box attacks, {label}",
        source=f"{INVGAN}, Table 2 ({label} block)",
        rows=rows2,
        cols=cols2,
        cells=grid(rows2, cols2, acc, m2),
        notes=notes + ("The paper prints fractions; shown here in % (x100).",),
        **common,
    )
    rows3 = ("DefenseGAN", "InvGAN")
    cols3 = ("FGSM", "CW", "RP", "BPDA")
    m3 = {(r, c): Measure(defense[r], t, a, metric="auc") for r in rows3 for c, (t, a) in cellm.items()}
    t3 = PaperTable(
        id=f"invgan-table3-{dataset}",
        ref=f"InvGAN Table 3 ({label})",
        title=f"Attack detection AUC of the InvGAN score, {label}",
        source=f"{INVGAN}, Table 3 ({label} block)",
        rows=rows3,
        cols=cols3,
        cells=grid(rows3, cols3, auc, m3),
        metric="auc",
        notes=notes
        + (
            "AUC of the detection score ‖Φ(x) − Φ(x̂)‖ (Eq. 7, penultimate classifier features): every "
            "clean image (0) against every attacked image (1), as InvGAN's code computes this table "
            "(plots/plot_ROC.py); each cell's note gives the success protocol beside it (the clean images "
            "the classifier gets right against the successful adversarial examples made from them); the "
            "intervals are Hanley-McNeil's.",
        ),
        **{**common, "paper_scale": 1.0},
    )
    return t2, t3


#: (restarts, steps) of DefenseGAN and steps T of InvGAN per effective number of inference iterations
FIG4_DEFENSEGAN = {50: (1, 50), 100: (1, 100), 200: (1, 200), 400: (2, 200), 1000: (5, 200), 2000: (10, 200)}
FIG4_INVGAN = {0: 0, 50: 50, 100: 100, 200: 200, 1000: 1000, 2000: 2000}


def _invgan_fig4() -> PaperTable:
    xs = sorted(set(FIG4_DEFENSEGAN) | set(FIG4_INVGAN))
    rows = tuple(str(x) for x in xs)
    cols = ("DefenseGAN", "InvGAN")
    m = {}
    for x, (r, l) in FIG4_DEFENSEGAN.items():
        m[(str(x), "DefenseGAN")] = Measure(f"defensegan[latent_steps={l},restarts={r}]")
    for x, t in FIG4_INVGAN.items():
        m[(str(x), "InvGAN")] = Measure(f"invgan[latent_steps={t}]")
    return PaperTable(
        id="invgan-fig4",
        ref="InvGAN Fig. 4",
        title="Speed–accuracy trade-off: clean accuracy (%) vs effective inference iterations",
        source=f"{INVGAN}, Figure 4 (§4.3)",
        dataset="fmnist",
        defenses=tuple(dict.fromkeys(v.defense for v in m.values())),
        attacks=(),
        threats=(),
        n=None,
        rows=rows,
        cols=cols,
        cells=grid(
            rows,
            cols,
            [[None, None]] * len(rows),
            m,
            xs=[float(x) for x in xs],
            notes={(r, c): "not in our grid" for r in rows for c in cols if (r, c) not in m},
        ),
        figure="lines",
        x_label="effective inference iterations (restarts × steps)",
        notes=(
            "Effective iterations = restarts × steps per restart (§4.3); InvGAN always has one restart "
            "(encoder init), T = 0 is the encoder alone. Our grid: DefenseGAN (R, L) = "
            + ", ".join(f"({r}, {l})" for r, l in FIG4_DEFENSEGAN.values())
            + "; InvGAN T = "
            + ", ".join(map(str, FIG4_INVGAN.values()))
            + " (the paper's grid is not in the text).",
            "The curves are not in the text: paper values are None, ours are plotted.",
            "The paper does not state how many test images; we default to 500.",
        ),
    )


def tables() -> list[PaperTable]:
    """Every spec of this paper."""
    return [*_invgan_parts("mnist"), *_invgan_parts("fmnist"), _invgan_fig4()]
