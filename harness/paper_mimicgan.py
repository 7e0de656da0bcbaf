"""MimicGAN's tables and figures (MimicGAN-1 and MimicGAN-2) as specs: data (the setting each was measured in
and the printed numbers), schema in :mod:`defbench.harness.paper_spec`."""

from __future__ import annotations

from defbench.harness.matrix import AttackSpec
from defbench.harness.paper_spec import (
    CW_L2,
    MIMICGAN1,
    MIMICGAN2,
    PGD_03,
    Measure,
    PaperTable,
    Pool,
    grid,
)


#: Fig. 5(b)'s ε-bounded attacks as the measurements read them (docs/RESULTS.md, "Fig. 5(b)'s defended columns"):
#: cleverhans' default ε = 0.3 acts on the [-1, 1] pixels of the paper's tanh-GAN pipeline, i.e. 0.15 on ours,
#: and cleverhans attacks the model's own prediction when no y is given
FIG5B_BOUNDED = {name: AttackSpec(name, 0.15, (("labels", "predicted"),)) for name in ("bim", "pgd", "fgsm")}
#: cleverhans' DeepFool takes no labels at all: it pushes each image off the model's own top class; the
#: undefended sweep in docs/RESULTS.md ("Fig. 5(b)'s DeepFool and CW cells: labels") fits that reading (4.6 vs
#: 6.2%), while CW's 0.4% fits the true labels (0.0; predicted: 4.2), so CW keeps them
FIG5B_DEEPFOOL = AttackSpec("deepfool", None, (("labels", "predicted"),))


def _mimicgan_fig5b() -> PaperTable:
    rows = ("Clean", "DeepFool", "CWL", "BIM", "PGDM", "FGSM", "Obfuscated")
    cols = ("No Defense", "Cowboy", "Defense GAN", "MimicGAN")
    defense = dict(zip(cols, ("none", "cowboy", "defensegan", "mimicgan"), strict=True))
    bim, pgd, fgsm = (FIG5B_BOUNDED[a] for a in ("bim", "pgd", "fgsm"))
    attack = {"DeepFool": FIG5B_DEEPFOOL, "CWL": CW_L2, "BIM": bim, "PGDM": pgd, "FGSM": fgsm}
    values = [
        [91.50, None, None, None],
        [6.20, 80.20, 80.00, 85.40],
        [0.40, 67.00, 66.20, 69.20],
        [5.60, 60.00, 58.40, 68.00],
        [5.40, 60.80, 58.80, 66.40],
        [11.60, 48.20, 46.60, 60.00],
        [23.80, 23.80, 26.60, 33.60],
    ]
    m: dict = {}
    for c in cols:
        m[("Clean", c)] = Measure(defense[c])
        for r, a in attack.items():
            m[(r, c)] = Measure(defense[c], "graybox", a)
        if defense[c] != "none":
            m[("Obfuscated", c)] = Measure(defense[c], "gan-aware", PGD_03)
    m[("Obfuscated", "No Defense")] = Measure("defensegan", "gan-aware", PGD_03, undefended=True)
    notes = {
        ("Obfuscated", "No Defense"): "bare classifier on the Obfuscated inputs crafted against DefenseGAN's GAN",
        ("Clean", "No Defense"): "paper: caption, clean test accuracy 91.5%",
    }
    return PaperTable(
        id="mimicgan-fig5b",
        ref="MimicGAN-1 Fig. 5(b)",
        title="Adversarial defense: robust accuracy (%) under popular attacks",
        source=f"{MIMICGAN1}, Figure 5(b) 'Popular Adversarial Perturbations' (§4.3)",
        dataset="fmnist",
        defenses=("none", "cowboy", "defensegan", "mimicgan"),
        attacks=(FIG5B_DEEPFOOL, CW_L2, bim, pgd, fgsm, PGD_03),
        threats=("graybox", "gan-aware"),
        n=500,
        batch_size=100,
        rows=rows,
        cols=cols,
        cells=grid(rows, cols, values, m, notes=notes),
        figure="bars",
        notes=(
            "Attacks run gray-box (on the classifier alone, cleverhans in the paper); 'Obfuscated' [Athalye et "
            "al.] is our gan-aware threat with PGD (it attacks f ∘ G through the latent of the defense's own "
            "projection).",
            "The paper states no ε, only that the attacks come from the cleverhans toolbox (§4.3); we read its "
            "defaults. FGSM, BIM and PGD run at ε = 0.15 on [0, 1] pixels "
            "(cleverhans' 0.3 on the paper's [-1, 1] pixels) and attack the classifier's predicted labels, as "
            "cleverhans does without y: the reading the ε and labels sweeps in docs/RESULTS.md support. DeepFool "
            "attacks the predicted labels too (cleverhans' DeepFool takes none), CW-L2 the true ones (the "
            "undefended cells fit that). The Obfuscated attack keeps ε = 0.3: PGD's budget on the latent (mapped "
            "to [0, 1]), and the image G(u*) is then clipped to ℓ∞ 0.3 of x in pixels, twice the other attacks' "
            "0.15 (gan-aware's rule; the paper gives none); CW-L2 and DeepFool are unbounded.",
            "Paper setting: 500 random test images, purified in batches of 100 (MimicGAN is batch-coupled); one "
            "purification per image.",
            "The paper's 'No Defense' Obfuscated cell has no defense to attack through; ours is the bare "
            "classifier's accuracy on the Obfuscated inputs crafted against DefenseGAN's GAN.",
        ),
    )


#: the "PGD" projection of the MimicGAN papers: MimicGAN's own schedule with f̂ = I (its special case, §3)
PGD_PROJECTION = "mimicgan[surrogate=identity]"
REPLICAS = ("sub80-s1", "sub80-s2", "sub80-s3")


def _mimicgan_fig9b() -> PaperTable:
    rows = ("BIM", "DF", "FGSM", "CWL", "PGDM", "Obfuscated")
    cols = ("No Defense", "Cowboy", "Defense GAN", "MimicGAN")
    defense = dict(zip(cols, ("none", "cowboy", "defensegan", "mimicgan"), strict=True))
    # the same experiment as MimicGAN-1 Fig. 5(b) (its No Defense column, but for Obfuscated, and its 91.5%
    # classifier are printed again), so its ε-bounded attacks take the reading Fig. 5(b)'s sweeps support
    bim, pgd, fgsm = (FIG5B_BOUNDED[a] for a in ("bim", "pgd", "fgsm"))
    attack = {"BIM": bim, "DF": FIG5B_DEEPFOOL, "FGSM": fgsm, "CWL": CW_L2, "PGDM": pgd}
    values = [
        [5.60, 66.00, 68.46, 72.20],
        [6.20, 71.43, 78.86, 82.40],
        [11.60, 61.60, 65.93, 67.60],
        [0.40, 68.80, 71.67, 75.00],
        [5.40, 65.20, 69.90, 75.73],
        [26.93, 27.73, 27.26, 31.06],
    ]
    stds = [
        [None, 3.47, 3.12, 3.80],
        [None, 4.72, 1.36, 3.81],
        [None, 4.99, 2.44, 2.83],
        [None, 3.84, 3.16, 4.38],
        [None, 5.14, 2.17, 4.35],
        [4.29, 4.50, 2.49, 4.01],
    ]

    def rep(d: str) -> tuple[str, ...]:
        return (d,) if d == "none" else tuple(f"{d}[gan={t}]" for t in REPLICAS)

    m: dict = {}
    for c in cols:
        for r, a in attack.items():
            m[(r, c)] = Pool(tuple(Measure(v, "graybox", a) for v in rep(defense[c])))
        if defense[c] != "none":
            m[("Obfuscated", c)] = Pool(tuple(Measure(v, "gan-aware", PGD_03) for v in rep(defense[c])))
    m[("Obfuscated", "No Defense")] = Pool(
        tuple(Measure(v, "gan-aware", PGD_03, undefended=True) for v in rep("defensegan"))
    )
    return PaperTable(
        id="mimicgan-fig9b",
        ref="MimicGAN-2 Fig. 9(b)",
        title="Adversarial defense averaged over 3 GAN backends (mean ± std)",
        source=f"{MIMICGAN2}, Figure 9(b) 'Popular Adversarial Perturbations' (§5.2)",
        dataset="fmnist",
        defenses=("none",) + tuple(v for d in ("cowboy", "defensegan", "mimicgan") for v in rep(d)),
        attacks=(bim, FIG5B_DEEPFOOL, fgsm, CW_L2, pgd, PGD_03),
        threats=("graybox", "gan-aware"),
        n=500,
        batch_size=100,
        rows=rows,
        cols=cols,
        cells=grid(rows, cols, values, m, stds),
        figure="bars",
        notes=(
            "Each defense runs once per GAN replica (variant NAME[gan=sub80-sK]: GAN gan-fmnist-<preset>-sub80-sK "
            "trained on a random 80% of the training set with seed K, built on demand by "
            "defbench train gan --dataset fmnist --subset-fraction 0.8 --seed K); ours is the mean ± std over "
            "the 3 replicas. The gray-box inputs do not depend on the GAN, so 'No Defense' has no spread.",
            "The text says the 3 GANs were trained on 45000 images, '~80% of the MNIST training set', for a "
            "Fashion-MNIST classifier; we read it as 80% subsets of Fashion-MNIST.",
            "Hyper-parameters T1 = T2 = 10, γs = 1e-2, γg = 8e-2; 500 test images cleaned in batches of 100.",
            "The No Defense column (but for Obfuscated: 26.93 ± 4.29 here, 23.80 there) and the 91.5% clean accuracy "
            "are MimicGAN-1 Fig. 5(b)'s: FGSM, BIM and PGD run as "
            "there, at ε = 0.15 on [0, 1] pixels against the classifier's predicted labels (cleverhans' defaults on "
            "[-1, 1] pixels, docs/RESULTS.md), DeepFool against the predicted labels as there; the Obfuscated attack "
            "keeps ε = 0.3 in the latent.",
        ),
    )


def _mimicgan_fig5a() -> PaperTable:
    alphas = (0.5, 1.0, 2.0, 4.0, 8.0)
    rows = tuple(f"α={a:g}" for a in alphas)
    cols = ("No Defense", "Defense GAN", "MimicGAN")
    defense = dict(zip(cols, ("none", "defensegan", "mimicgan"), strict=True))
    # §4.3: "a targeted universal perturbation using FGSM"; the text names no target class: ours is class 0
    attacks = tuple(AttackSpec("universal-fgsm", 0.3, (("alpha", a), ("images", 15), ("target", 0))) for a in alphas)
    m = {(r, c): Measure(defense[c], "graybox", a) for r, a in zip(rows, attacks, strict=True) for c in cols}
    return PaperTable(
        id="mimicgan-fig5a",
        ref="MimicGAN-1 Fig. 5(a)",
        title="Universal FGSM perturbation scaled by α: accuracy (%) vs α",
        source=f"{MIMICGAN1}, Figure 5(a) 'Universal Perturbations' (§4.3)",
        dataset="fmnist",
        defenses=("none", "defensegan", "mimicgan"),
        attacks=attacks,
        threats=("graybox",),
        n=500,
        batch_size=100,
        rows=rows,
        cols=cols,
        cells=grid(rows, cols, [[None] * len(cols)] * len(rows), m, xs=alphas),
        figure="lines",
        x_label="α",
        notes=(
            "The figure's curves are not in the text: paper values are None, ours are plotted.",
            "ν = mean *targeted* FGSM step (ε = 0.3, towards one class) over N = 15 test images, "
            "x̃ = clip(x + α ν); the text names no target class, ours is class 0 (T-shirt/top); the α grid "
            "(0.5, 1, 2, 4, 8) is ours, the paper's axis is not in the text.",
            "ε = 0.3 is on [0, 1] pixels, where Fig. 5(b)'s cells read cleverhans' 0.3 as 0.15 (its sweep); ν is "
            "linear in ε, so the 0.15 reading at α is this figure's curve at α / 2.",
        ),
    )


def _mimicgan_fig4b() -> PaperTable:
    rows = ("Binary", "Dropped Pixels", "Negative Blur")
    cols = ("Observed", "PGD", "MimicGAN")
    values = [[37.00, 25.50, 50.40], [25.50, 15.60, 46.40], [7.20, 8.40, 45.80]]
    corr = dict(
        zip(rows, (AttackSpec("binarize"), AttackSpec("drop-pixels"), AttackSpec("blur-negative")), strict=True)
    )
    defense = dict(zip(cols, ("none", PGD_PROJECTION, "mimicgan"), strict=True))
    m = {(r, c): Measure(defense[c], "graybox", a) for r, a in corr.items() for c in cols}
    return PaperTable(
        id="mimicgan-fig4b",
        ref="MimicGAN-1 Fig. 4(b)",
        title="Robust classification under corruptions: accuracy (%)",
        source=f"{MIMICGAN1}, Figure 4(b) (§4.2)",
        dataset="fmnist",
        defenses=tuple(defense.values()),
        attacks=tuple(corr.values()),
        threats=("graybox",),
        n=500,
        batch_size=100,
        rows=rows,
        cols=cols,
        cells=grid(rows, cols, values, m),
        figure="bars",
        notes=(
            "The corruptions are model-independent 'attacks' (defbench.attacks.corruptions): binarise each "
            "image at its own 50th percentile (pixels at the median turn white: the reading that leaves "
            "our classifier near the paper's observed 37%), drop 70% of the pixels to 0, Gaussian blur 25×25 "
            "(σ 4.1, as the appendix's cv2 call) then the negative.",
            f"'PGD' is the projection with f̂ = I, MimicGAN's special case (§3): {PGD_PROJECTION}, the same "
            "schedule and optimiser as MimicGAN with the surrogate frozen at identity.",
            "MimicGAN runs the ℓ1 mimicking loss MimicGAN-1 §3 states. On Dropped Pixels its surrogate collapses "
            "to W·x in most runs and the projections turn near-black; mimicgan[loss=l2] (MimicGAN-2 §3: 'the ℓ2 "
            "norm works reasonably as well') is the reading that reaches the paper's cell (docs/RESULTS.md); "
            "mimicgan[surrogate_activation=tanh] (the TanH last layer MimicGAN-1 §4.1 uses for inpainting) keeps "
            "f̂ alive under ℓ1 and lifts it above PGD when one mask covers the batch, not with per-image masks.",
            "The corruptions compute on [0, 1] pixels (a dropped pixel is black); NAME[range=signed] computes them on "
            "[-1, 1] as the paper's code (a dropped pixel is then mid-grey; binarize[scope=batch] takes one median "
            "per batch, as its percentile code). Read by cleverhans' tutorial CNN instead of the zoo classifier, "
            "those readings reproduce the Observed column (38.4 / 25.8 / 9.2% of 500) and PGD on Dropped Pixels and "
            "Negative Blur (16.0 / 9.6); MimicGAN stays under (docs/RESULTS.md).",
            "Clean test accuracy of the paper's classifier: 91.50%.",
            "Batches of 100: §4.3's ('cleaned in batches of size 100'); §4.2, where this figure is, states none.",
        ),
    )


#: §5.3 "the same hyper-parameters used in the domain adaptation setting described in section 5.1.2":
#: U -> M, T1 = 25 surrogate and T2 = 75 latent steps (γs = 1e-2, γg = 8e-2 as the defense), "in batches of
#: size 1000"; the outer T is not given there, the defense's T = 10 is kept
ANOMALY_LATENT, ANOMALY_SURROGATE = "latent_steps=75", "surrogate_steps=25"  # (variant labels sort their keys)


def _mimicgan_table2() -> PaperTable:
    rows = ("VAE", "AnoGAN", "GANomaly (BIGAN)", "EGBAD (PGD baseline)", "MimicGAN")
    cols = ("Area under ROC",)
    tags = tuple(f"no{k}" for k in range(10))
    m = {
        ("EGBAD (PGD baseline)", cols[0]): Pool(
            tuple(
                Measure(
                    f"mimicgan[gan={t},{ANOMALY_LATENT},surrogate=identity,{ANOMALY_SURROGATE}]",
                    metric="anomaly-auc",
                    holdout=k,
                )
                for k, t in enumerate(tags)
            )
        ),
        ("MimicGAN", cols[0]): Pool(
            tuple(
                Measure(f"mimicgan[gan={t},{ANOMALY_LATENT},{ANOMALY_SURROGATE}]", metric="anomaly-auc", holdout=k)
                for k, t in enumerate(tags)
            )
        ),
    }
    cited = {(r, cols[0]): "cited by the paper, not run" for r in rows[:3]}
    return PaperTable(
        id="mimicgan-table2",
        ref="MimicGAN-2 Table 2",
        title="Anomaly detection on MNIST, leave one class out (mean ± std over 10 classes)",
        source=f"{MIMICGAN2}, Table 2 (§5.3)",
        dataset="mnist",
        defenses=tuple(c.defense for p in m.values() for c in p.measures),
        attacks=(),
        threats=(),
        n=None,
        batch_size=1000,
        rows=rows,
        cols=cols,
        cells=grid(
            rows,
            cols,
            [[0.34], [0.44], [0.78], [0.50], [0.78]],
            m,
            stds=[[0.18], [0.07], [0.11], [0.13], [0.14]],
            notes=cited,
        ),
        metric="auc",
        notes=(
            "For each class K a GAN is trained without it (variant NAME[gan=noK]: gan-mnist-<preset>-noK, "
            "built on demand by defbench train gan --dataset mnist --holdout-class K); the score is the final "
            "projection error d_proj = ‖X − G(z*)‖₂ (Eq. 5, no surrogate: the distance of the image to its "
            "projection, for MimicGAN and for the f̂ = I PGD baseline alike) and the AUC separates class K "
            "(positive) from the rest; ours is the mean ± std over the 10 classes.",
            "Schedule of §5.1.2 (U → M), which §5.3 says it uses: T1 = 25, T2 = 75, γs = 1e-2, γg = 8e-2, "
            "batches of 1000 (T = 10 outer iterations, the defense's; the text gives none); at n below 1000 the "
            "cell is one batch of n images, which the surrogate is fitted on (the Setting line gives the batch).",
            "Deviation: the paper trains each GAN on 80% of the normal training data and tests on the other "
            "20% plus the whole left-out class; we train on every training image of the 9 classes and test on "
            "n random MNIST test images (about 10% of them from the left-out class).",
            "The surrogate is MimicGAN-1's Table 5 network; MimicGAN-2's own (§3.1.1, Fig. 3: a spatial transformer "
            "in front), mimicgan[surrogate_arch=mimicgan2], lowers the MimicGAN row (docs/RESULTS.md).",
        ),
    )


def tables() -> list[PaperTable]:
    """Every spec of this paper."""
    return [_mimicgan_fig5b(), _mimicgan_fig5a(), _mimicgan_fig4b(), _mimicgan_fig9b(), _mimicgan_table2()]
