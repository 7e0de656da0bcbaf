"""Paper table specs and their runner (the ``defbench paper`` sub-command is in :mod:`defbench.harness.commands`).

A :class:`PaperTable` is data: one published table or figure (or one dataset's part of it) with the setting
it was measured in (dataset, defenses and their overrides, attacks with ε and parameters, threat models,
images per cell, batch size, seeds or GAN replicas) and the paper's numbers, keyed by the paper's own
(row label, column label) and copied from the texts in ``../shared/papers`` (source given per spec).

``defbench paper run TABLE`` builds a :class:`~defbench.harness.matrix.MatrixSpec` from the spec, runs the
cells the table needs through :class:`~defbench.harness.matrix.MatrixRunner` into its SQLite store (so a
long table resumes), and reports, per cell, the paper's value, ours (computed from the store rows, see
:mod:`defbench.reports.paper`) and the difference. Specs whose setting the runner cannot express yet carry
an ``unsupported`` reason; ``paper run`` refuses them with a one-line error instead of faking a result.

Values are kept as printed: ``paper_scale`` turns them into our unit (accuracy in %, AUC as is), e.g. the
InvGAN and RIDE Table 1 fractions 0.99 become 99 %.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defbench import DefbenchError
from defbench.defenses.registry import check_name, split_variant
from defbench.harness.matrix import (
    QUICK_ATTACK_PARAMS,
    QUICK_DEFENSE_OVERRIDES,
    AttackSpec,
    Cell,
    LocalExecutor,
    MatrixRunner,
    MatrixSpec,
)
from defbench.harness.models import PRESETS

PAPERS_DIR = "../shared/papers"
#: MimicGAN-1 / MimicGAN-2 in the short references
MIMICGAN1 = "MimicGAN: Corruption-Mimicking for Blind Image Recovery & Adversarial Defense (000_a66b5bde2de02657.txt)"
MIMICGAN2 = "MimicGAN: Robust Projection onto Image Manifolds with Corruption Mimicking (001_f298b7be0e28f4c4.txt)"
INVGAN = "Invert and Defend: InvGAN (002_e2406bdffe744cb5.txt)"
RIDE = "White-Box Adversarial Defense via Self-Supervised Data Estimation: RIDE (003_973fd5cade1a46de.txt)"

METRICS = ("accuracy", "auc", "anomaly-auc")
#: images per cell when the paper does not state its n
DEFAULT_N = 500
#: images per cell of the quick preset (at most)
QUICK_N = 100


@dataclass(frozen=True)
class Measure:
    """Where "ours" comes from for one cell: the store row of (defense, threat, attack), every seed.

    ``metric`` "accuracy": % of the row's images classified correctly after the defense (``correct_mask``);
    with ``undefended`` the bare classifier on the same inputs (``preds_undefended``). "auc": ROC AUC of the
    InvGAN detection score, the defense's clean row (label 0) against this row (label 1). "anomaly-auc": ROC
    AUC of the row's per-image projection error with the images of class ``holdout`` as positives (MimicGAN-2
    §5.3). ``threat`` "none" with ``attack`` None is the clean row. ``defense`` may be a variant label.
    """

    defense: str
    threat: str = "none"
    attack: AttackSpec | None = None
    metric: str = "accuracy"
    undefended: bool = False
    holdout: int | None = None

    @property
    def members(self) -> tuple["Measure", ...]:
        return (self,)

    def cell(self, seed: int, attack: AttackSpec | None) -> Cell:
        return Cell(seed, self.defense, self.threat if attack is not None else "none", attack)


@dataclass(frozen=True)
class Pool:
    """Several measures reduced to one cell value: ``how`` = "mean" (reported with the std over the members:
    GAN replicas, left-out classes) or "max" (the best of a sweep of one defense's settings, as RIDE Table 1
    reports the best median kernel and TVM setting per attack)."""

    measures: tuple[Measure, ...]
    how: str = "mean"

    @property
    def members(self) -> tuple[Measure, ...]:
        return self.measures

    # the members share threat, attack and metric; the pool reads as its first member
    @property
    def defense(self) -> str:
        return self.measures[0].defense

    @property
    def threat(self) -> str:
        return self.measures[0].threat

    @property
    def attack(self) -> AttackSpec | None:
        return self.measures[0].attack

    @property
    def metric(self) -> str:
        return self.measures[0].metric

    @property
    def undefended(self) -> bool:
        return self.measures[0].undefended


@dataclass(frozen=True)
class PaperCell:
    """One cell of the paper's table: its labels, the printed value (None: not given), our measure (None:
    nothing of ours to compare, ``note`` says why)."""

    row: str
    col: str
    paper: float | None
    measure: Measure | Pool | None = None
    paper_std: float | None = None
    note: str = ""
    x: float | None = None  # position on the figure's x axis for sweeps (e.g. α)


@dataclass(frozen=True)
class PaperTable:
    id: str
    title: str
    source: str  # paper (file) and table / figure
    ref: str  # short reference, e.g. "MimicGAN (2019) Fig. 5(b)"
    dataset: str
    defenses: tuple[str, ...]
    attacks: tuple[AttackSpec, ...]
    threats: tuple[str, ...]
    n: int | None  # images per cell in the paper (None: not stated)
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    cells: tuple[PaperCell, ...]
    batch_size: int = 100
    seeds: int = 1  # seeds run: --seed, --seed + 1, ...
    defense_overrides: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    metric: str = "accuracy"
    paper_scale: float = 1.0  # printed value x scale = our unit (% / AUC)
    figure: str | None = None  # "bars" | "lines": the paper shows this as a figure
    x_label: str = ""  # x axis of a "lines" figure
    eval_repeats: int = 1  # purifications per image (the papers classify one)
    eot: int | None = None  # EOT under BPDA for randomized defenses (None: the preset's default)
    stratified: bool = False  # n images spread evenly over the classes (RIDE's ImageNet subset)
    unsupported: str = ""  # why `paper run` refuses (empty: runnable)
    notes: tuple[str, ...] = field(default=())

    @property
    def runnable(self) -> bool:
        return not self.unsupported

    @property
    def gan_replicas(self) -> tuple[str, ...]:
        """The GAN tags (``gan=TAG`` of the defense variants) the table averages over, e.g. sub80-s1."""
        tags = (split_variant(d)[1].get("gan") for d in self.defenses)
        return tuple(dict.fromkeys(t for t in tags if t))

    @property
    def unit(self) -> str:
        return "%" if self.metric == "accuracy" else "AUC"

    def paper_value(self, cell: PaperCell) -> float | None:
        return None if cell.paper is None else cell.paper * self.paper_scale

    def paper_std_value(self, cell: PaperCell) -> float | None:
        return None if cell.paper_std is None else cell.paper_std * self.paper_scale

    def overrides(self, preset: str = "paper") -> dict[str, dict[str, Any]]:
        """Per-defense overrides; under the quick preset the keys the quick preset shrinks are left to it."""
        out = {}
        for name, kv in self.defense_overrides:
            quick = QUICK_DEFENSE_OVERRIDES.get(name, {}) if preset == "quick" else {}
            d = {k: v for k, v in kv if k not in quick}
            if d:
                out[name] = d
        return out

    def default_n(self, preset: str) -> int:
        n = self.n or DEFAULT_N
        return min(n, QUICK_N) if preset == "quick" else n

    def seed_list(self, seed: int) -> tuple[int, ...]:
        return tuple(seed + i for i in range(self.seeds))

    def matrix_spec(
        self,
        n: int | None = None,
        preset: str = "paper",
        device: str = "cpu",
        seed: int = 0,
        out: str | None = None,
        data_root: str | None = None,
        progress: bool = True,
        threat_n: dict[str, int] | None = None,
    ) -> MatrixSpec:
        """The matrix this table runs in (its cells are a subset of the full attack x threat product)."""
        n = n if n is not None else self.default_n(preset)
        return MatrixSpec(
            dataset=self.dataset,
            defenses=self.defenses,
            attacks=tuple(preset_attack(a, preset) for a in self.attacks),
            threats=self.threats,
            n=n,
            seeds=self.seed_list(seed),
            batch_size=self.batch_size,
            preset=preset,
            device=device,
            eot=self.eot,
            eval_repeats=self.eval_repeats,
            defense_overrides=self.overrides(preset),
            stratified=self.stratified,
            threat_n=dict(threat_n or {}),
            data_root=data_root,
            out=out or default_out(self, n, preset),
            progress=progress,
        )

    def needed_cells(self, seeds: tuple[int, ...], preset: str = "paper") -> list[Cell]:
        """Clean cell of every defense plus the attack cells the table's measures read, per seed."""
        out: list[Cell] = []
        for s in seeds:
            for d in self.defenses:
                out.append(Cell(s, d, "none", None))
            for c in self.cells:
                for m in c.measure.members if c.measure is not None else ():
                    a = preset_attack(m.attack, preset) if m.attack is not None else None
                    out.append(m.cell(s, a))
        return list(dict.fromkeys(out))


def preset_attack(a: AttackSpec, preset: str) -> AttackSpec:
    """Under the quick preset the quick budgets replace the spec's own for the keys the quick preset sets."""
    if preset != "quick":
        return a
    quick = QUICK_ATTACK_PARAMS.get(a.name, {})
    return AttackSpec(a.name, a.eps, tuple((k, v) for k, v in a.params if k not in quick))


def default_out(table: PaperTable, n: int, preset: str) -> str:
    """One store per (dataset, preset, n, batch size): tables of the same setting share their cells; the
    store's cell key does not hold n or the batch size, so different ones never share a store."""
    return str(Path("runs") / "paper" / f"{table.dataset}-{preset}-n{n}-b{table.batch_size}")


# ======================================================================================= the specs
def _grid(rows, cols, values, measures=None, stds=None, notes=None, xs=None) -> tuple[PaperCell, ...]:
    """Cells from row-major ``values[i][j]`` (None: not printed) and optional parallel grids."""
    out = []
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out.append(
                PaperCell(
                    r,
                    c,
                    values[i][j],
                    (measures or {}).get((r, c)),
                    None if stds is None else stds[i][j],
                    (notes or {}).get((r, c), ""),
                    None if xs is None else xs[i],
                )
            )
    return tuple(out)


FGSM_03 = AttackSpec("fgsm", 0.3)
BIM_03 = AttackSpec("bim", 0.3)
PGD_03 = AttackSpec("pgd", 0.3)
CW_L2 = AttackSpec("cw")
DEEPFOOL = AttackSpec("deepfool")
#: InvGAN §4.2: CW with 6 binary-search steps, learning rate 0.2, 100 iterations
CW_INVGAN = AttackSpec("cw", None, (("binary_search_steps", 6), ("lr", 0.2), ("steps", 100)))


def _mimicgan_fig5b() -> PaperTable:
    rows = ("Clean", "DeepFool", "CWL", "BIM", "PGDM", "FGSM", "Obfuscated")
    cols = ("No Defense", "Cowboy", "Defense GAN", "MimicGAN")
    defense = dict(zip(cols, ("none", "cowboy", "defensegan", "mimicgan")))
    attack = {"DeepFool": DEEPFOOL, "CWL": CW_L2, "BIM": BIM_03, "PGDM": PGD_03, "FGSM": FGSM_03}
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
        attacks=(DEEPFOOL, CW_L2, BIM_03, PGD_03, FGSM_03),
        threats=("graybox", "gan-aware"),
        n=500,
        batch_size=100,
        rows=rows,
        cols=cols,
        cells=_grid(rows, cols, values, m, notes=notes),
        figure="bars",
        notes=(
            "Attacks run gray-box (on the classifier alone, cleverhans in the paper); 'Obfuscated' [Athalye et "
            "al.] is our gan-aware threat with PGD (it attacks f ∘ G through the latent of the defense's own "
            "projection).",
            "The paper does not state ε; we use ε = 0.3 (cleverhans' default, as on Fashion-MNIST in InvGAN) "
            "for FGSM, BIM, PGD and the Obfuscated attack; CW-L2 and DeepFool are unbounded.",
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
    defense = dict(zip(cols, ("none", "cowboy", "defensegan", "mimicgan")))
    attack = {"BIM": BIM_03, "DF": DEEPFOOL, "FGSM": FGSM_03, "CWL": CW_L2, "PGDM": PGD_03}
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
        attacks=(BIM_03, DEEPFOOL, FGSM_03, CW_L2, PGD_03),
        threats=("graybox", "gan-aware"),
        n=500,
        batch_size=100,
        rows=rows,
        cols=cols,
        cells=_grid(rows, cols, values, m, stds),
        figure="bars",
        notes=(
            "Each defense runs once per GAN replica (variant NAME[gan=sub80-sK]: GAN gan-fmnist-<preset>-sub80-sK "
            "trained on a random 80% of the training set with seed K, built on demand by "
            "defbench train gan --dataset fmnist --subset-fraction 0.8 --seed K); ours is the mean ± std over "
            "the 3 replicas. The gray-box inputs do not depend on the GAN, so 'No Defense' has no spread.",
            "The text says the 3 GANs were trained on 45000 images, '~80% of the MNIST training set', for a "
            "Fashion-MNIST classifier; we read it as 80% subsets of Fashion-MNIST.",
            "Hyper-parameters T1 = T2 = 10, γs = 1e-2, γg = 8e-2; 500 test images cleaned in batches of 100.",
        ),
    )


def _mimicgan_fig5a() -> PaperTable:
    alphas = (0.5, 1.0, 2.0, 4.0, 8.0)
    rows = tuple(f"α={a:g}" for a in alphas)
    cols = ("No Defense", "Defense GAN", "MimicGAN")
    defense = dict(zip(cols, ("none", "defensegan", "mimicgan")))
    attacks = tuple(AttackSpec("universal-fgsm", 0.3, (("alpha", a), ("images", 15))) for a in alphas)
    m = {(r, c): Measure(defense[c], "graybox", a) for r, a in zip(rows, attacks) for c in cols}
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
        cells=_grid(rows, cols, [[None] * len(cols)] * len(rows), m, xs=alphas),
        figure="lines",
        x_label="α",
        notes=(
            "The figure's curves are not in the text: paper values are None, ours are plotted.",
            "ν = mean FGSM perturbation (ε = 0.3) over N = 15 test images, x̃ = clip(x + α ν); the α grid "
            "(0.5, 1, 2, 4, 8) is ours, the paper's axis is not in the text.",
        ),
    )


def _mimicgan_fig4b() -> PaperTable:
    rows = ("Binary", "Dropped Pixels", "Negative Blur")
    cols = ("Observed", "PGD", "MimicGAN")
    values = [[37.00, 25.50, 50.40], [25.50, 15.60, 46.40], [7.20, 8.40, 45.80]]
    corr = dict(zip(rows, (AttackSpec("binarize"), AttackSpec("drop-pixels"), AttackSpec("blur-negative"))))
    defense = dict(zip(cols, ("none", PGD_PROJECTION, "mimicgan")))
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
        cells=_grid(rows, cols, values, m),
        figure="bars",
        notes=(
            "The corruptions are model-independent 'attacks' (defbench.attacks.corruptions): binarise each "
            "image at its own 50th percentile (pixels at the median turn white: the reading that leaves "
            "our classifier near the paper's observed 37%), drop 70% of the pixels to 0, Gaussian blur 25×25 "
            "(σ 4.1, as the appendix's cv2 call) then the negative.",
            f"'PGD' is the projection with f̂ = I, MimicGAN's special case (§3): {PGD_PROJECTION}, the same "
            "schedule and optimiser as MimicGAN with the surrogate frozen at identity.",
            "Clean test accuracy of the paper's classifier: 91.50%.",
        ),
    )


def _mimicgan_table2() -> PaperTable:
    rows = ("VAE", "AnoGAN", "GANomaly (BIGAN)", "EGBAD (PGD baseline)", "MimicGAN")
    cols = ("Area under ROC",)
    tags = tuple(f"no{k}" for k in range(10))
    m = {
        ("EGBAD (PGD baseline)", cols[0]): Pool(
            tuple(
                Measure(f"mimicgan[gan={t},surrogate=identity]", metric="anomaly-auc", holdout=k)
                for k, t in enumerate(tags)
            )
        ),
        ("MimicGAN", cols[0]): Pool(
            tuple(Measure(f"mimicgan[gan={t}]", metric="anomaly-auc", holdout=k) for k, t in enumerate(tags))
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
        rows=rows,
        cols=cols,
        cells=_grid(
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
            "projection error (Eq. 5: the fidelity term with the learned surrogate for MimicGAN, with f̂ = I "
            "for the PGD baseline) and the AUC separates class K (positive) from the rest; ours is the "
            "mean ± std over the 10 classes.",
            "Deviation: the paper trains each GAN on 80% of the normal training data and tests on the other "
            "20% plus the whole left-out class; we train on every training image of the 9 classes and test on "
            "n random MNIST test images (about 10% of them from the left-out class).",
            "Projections run in the matrix's batches (MimicGAN's surrogate is shared by a batch of 100).",
        ),
    )


def _invgan_parts(dataset: str) -> tuple[PaperTable, PaperTable]:
    cols2 = ("Clean", "FGSM", "CW", "RP", "BPDA")
    rows2 = ("No Defense", "DefenseGAN", "InvGAN")
    defense = dict(zip(rows2, ("none", "defensegan", "invgan")))
    cellm = {
        "FGSM": ("graybox", FGSM_03),
        "CW": ("graybox", CW_INVGAN),
        "RP": ("reparam", FGSM_03),
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
        attacks=(FGSM_03, CW_INVGAN, PGD_03),
        threats=("graybox", "reparam", "bpda"),
        n=None,
        batch_size=100,
        paper_scale=100.0,
    )
    notes = (
        "FGSM ε = 0.3 and CW (6 binary-search steps, lr 0.2, 100 iterations) attack the classifier alone "
        "(gray-box), as in §4.2.",
        "RP: the reparameterisation attack of §3.4 takes the gradient ∇x f(G(I(x))); the paper names no "
        "attack for it, so we read it as one FGSM step (ε = 0.3, the paper's FGSM budget) on f ∘ G ∘ I "
        "(threat reparam); for No Defense the same inputs go to the bare classifier.",
        "BPDA: PGD (ε = 0.3, 40 steps; budget not stated in the paper) through the defense with its BPDA "
        "backward (identity for DefenseGAN, G(I(x)) for InvGAN). '-' cells are not run.",
        "The paper does not state how many test images; we default to 500. Cowboy (†, numbers quoted from its "
        "authors) and the CIFAR-10 / CelebA parts of the table are not included.",
    )
    t2 = PaperTable(
        id=f"invgan-table2-{dataset}",
        ref=f"InvGAN Table 2 ({label})",
        title=f"Classification accuracy under white-box attacks, {label}",
        source=f"{INVGAN}, Table 2 ({label} block)",
        rows=rows2,
        cols=cols2,
        cells=_grid(rows2, cols2, acc, m2),
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
        cells=_grid(rows3, cols3, auc, m3),
        metric="auc",
        notes=notes
        + (
            "AUC of the detection score ‖Φ(x) − Φ(x̂)‖ (Eq. 7, penultimate classifier features): "
            "the defense's clean images (0) against the attacked ones (1).",
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
        cells=_grid(
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


def _ride_table2(dataset: str) -> PaperTable:
    if dataset == "mnist":
        pgd = AttackSpec("pgd", 0.1, (("step", 0.02), ("steps", 10)))
        label, clean = "MNIST", 98.98
        cited = (("Samangouei et al. (2018)", "ℓ2 0.005", 55.0),)
        ride, dist = 98.0, "ℓ∞ 0.1"
    elif dataset == "cifar10":
        pgd = AttackSpec("pgd", 0.05, (("step", 0.01), ("steps", 10)))
        label, clean = "CIFAR", 94.78
        cited = (
            ("Buckman et al. (2018)", "ℓ∞ 0.031", 0.0),
            ("Dhillon et al. (2018)", "ℓ∞ 0.031", 0.0),
            ("Ma et al. (2018)", "ℓ∞ 0.031", 5.0),
            ("Song et al. (2018)", "ℓ∞ 0.031", 9.0),
            ("Na et al. (2018)", "ℓ∞ 0.015", 15.0),
            ("Madry et al. (2018)", "ℓ∞ 0.031", 47.0),
        )
        ride, dist = 76.0, "ℓ∞ 0.05"
    else:
        pgd = AttackSpec("pgd", 0.05, (("step", 0.01), ("steps", 10)))
        label, clean = "ImageNet", 77.5
        cited = (("Xie et al. (2018)", "ℓ∞ 0.031", 0.0), ("Guo et al. (2018)", "ℓ2 0.005", 0.0))
        ride, dist = 43.0, "ℓ∞ 0.05"
    ours = ("No defense", "Median filter", "TVM", "RIDE (Ours)")
    defense = dict(zip(ours, ("none", "median", "tvm", "ride")))
    rows = tuple(r for r, _, _ in cited) + ours
    cols = ("Clean", f"BPDA {dist}")
    cells = []
    for r, d, v in cited:
        cells.append(PaperCell(r, cols[1], v, None, note=f"cited by RIDE (from Athalye et al.) at {d}; not run"))
    for r in ours:
        threat = "graybox" if defense[r] == "none" else "bpda"
        cells.append(
            PaperCell(
                r,
                "Clean",
                clean if r == "No defense" else None,
                Measure(defense[r]),
                note="paper: the classifier's clean test accuracy" if r == "No defense" else "",
            )
        )
        cells.append(
            PaperCell(
                r,
                cols[1],
                ride if r == "RIDE (Ours)" else None,
                Measure(defense[r], threat, pgd),
                note="BPDA through no defense = gray-box" if r == "No defense" else "",
            )
        )
    return PaperTable(
        id=f"ride-table2-{dataset}",
        ref=f"RIDE Table 2 ({label})",
        title=f"BPDA (PGD, 10 iterations) against RIDE, median filter and TVM, {label}",
        source=f"{RIDE}, Table 2 ({label} rows) and §'Defense Against White-Box Attack'",
        dataset=dataset,
        defenses=("none", "median", "tvm", "ride"),
        attacks=(pgd,),
        threats=("graybox", "bpda"),
        n=2000 if dataset == "imagenet" else None,
        rows=rows,
        cols=cols,
        cells=tuple(cells),
        paper_scale=1.0,
        stratified=dataset == "imagenet",
        notes=(
            (
                "ImageNet: n images spread evenly over the classes (the paper: 2 validation images per class, "
                "2000 in all); needs the validation set and torchvision's ResNet-50 weights.",
            )
            if dataset == "imagenet"
            else ()
        )
        + (
            f"Inner attack: ℓ∞ PGD, 10 iterations, ε = {pgd.eps:g}, step {dict(pgd.params)['step']:g}, through "
            "each defense with its BPDA backward (identity for median and TVM and RIDE).",
            "The paper reports BPDA accuracy only for RIDE; median filter (kernel 3) and TVM (Chambolle, weight "
            "0.1) are measured beside it with paper value None. Other rows are cited numbers, not run.",
            "The paper does not state how many test images; we default to 500.",
        ),
    )


#: RIDE supplementary Tables 4-6: the settings whose best result Table 1 reports
RIDE_MEDIAN_KERNELS = (3, 5, 7, 9, 11)
RIDE_TVM = tuple(("bregman", w) for w in (0.075, 0.125, 0.25, 0.5, 0.75)) + tuple(
    ("chambolle", w) for w in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
)


def _ride_table1() -> PaperTable:
    rows = ("FGSM", "PGD")
    cols = ("No Attack", "No Defender", "Median", "TVM", "RIDE (Ours)")
    fgsm = AttackSpec("fgsm", 0.015)
    pgd = AttackSpec("pgd", 0.015)
    values = [[0.775, 0.075, 0.306, 0.359, 0.517], [None, 0.000, 0.251, 0.301, 0.476]]
    variants = {
        "No Defender": ("none",),
        "Median": tuple(f"median[kernel_size={k}]" for k in RIDE_MEDIAN_KERNELS),
        "TVM": tuple(f"tvm[method={m},weight={w}]" for m, w in RIDE_TVM),
        "RIDE (Ours)": ("ride",),
    }
    m: dict = {("FGSM", "No Attack"): Measure("none")}
    for r, a in (("FGSM", fgsm), ("PGD", pgd)):
        for c, vs in variants.items():
            ms = tuple(Measure(v, "graybox", a) for v in vs)
            m[(r, c)] = ms[0] if len(ms) == 1 else Pool(ms, "max")
    return PaperTable(
        id="ride-table1",
        ref="RIDE Table 1",
        title="Gray-box FGSM and PGD on ImageNet (top-1 accuracy)",
        source=f"{RIDE}, Table 1 (§'Defense Against Gray-Box Attack') and supplementary Tables 4-6",
        dataset="imagenet",
        defenses=tuple(v for vs in variants.values() for v in vs),
        attacks=(fgsm, pgd),
        threats=("graybox",),
        n=2000,
        rows=rows,
        cols=cols,
        cells=_grid(rows, cols, values, m),
        paper_scale=100.0,
        stratified=True,
        notes=(
            "Needs the ImageNet validation set (ImageFolder) and torchvision's ResNet-50 weights; n images "
            "spread evenly over the classes (the paper: 2 per class, 2000 in all).",
            "Median and TVM cells are the best over the settings of the paper's supplementary Tables 4-6 "
            f"(median kernels {', '.join(map(str, RIDE_MEDIAN_KERNELS))}; split-Bregman weights 0.075-0.75 and "
            "Chambolle weights 0.25-1.75), as Table 1 reports them; our median filter pads by reflection "
            "(ART), the paper's by zeros.",
            "FGSM with step size 0.015 (§Attacker); the PGD settings come from Guo et al.'s code and are not in "
            "the text (ε = 0.015 here is a placeholder).",
            "The paper prints fractions; shown in % (x100).",
        ),
    )


#: RIDE Fig. 5(a)'s defenders as RIDE variants (docs/DEFENSES.md): DIP fits a fixed random input to the image,
#: I-DIP adds the iterative estimate, DAE the noisy input and target, RIDE all three
RIDE_ABLATION = {
    "DIP": "input=fixed,target_noise=false,alpha=1,nms=false",
    "I-DIP": "input=fixed,target_noise=false",
    "DAE": "alpha=1,nms=false",
    "RIDE": "",
}


def _ride_fig5a() -> PaperTable:
    rows = tuple(RIDE_ABLATION)
    cols = ("with dropout", "without dropout")
    fgsm = AttackSpec("fgsm", 0.015)
    label = lambda opts, extra: check_name(f"ride[{','.join(filter(None, (opts, extra)))}]")  # canonical order
    m = {
        (r, c): Measure(label(o, "" if c == "with dropout" else "dropout=0"), "graybox", fgsm)
        for r, o in RIDE_ABLATION.items()
        for c in cols
    }
    return PaperTable(
        id="ride-fig5a",
        ref="RIDE Fig. 5(a)",
        title="Ablation: DIP, I-DIP, DAE and RIDE, with and without dropout, gray-box FGSM on ImageNet (top-1 %)",
        source=f"{RIDE}, Figure 5(a) and supplementary Figure 8 (§'Ablation Study')",
        dataset="imagenet",
        defenses=tuple(dict.fromkeys(mm.defense for mm in m.values())),
        attacks=(fgsm,),
        threats=("graybox",),
        n=2000,
        rows=rows,
        cols=cols,
        cells=_grid(rows, cols, [[None] * len(cols)] * len(rows), m),
        stratified=True,
        notes=(
            "The figure's curves are not in the text: paper values are None; the paper reports RIDE (all three "
            "techniques) highest, DAE the most important of the three and iterative optimisation second.",
            "Defenders as RIDE options (docs/DEFENSES.md): DIP = input=fixed, target_noise=false, alpha=1, "
            "nms=false; I-DIP = DIP with the iterative estimate (alpha 0.9, NMS); DAE = alpha=1, nms=false; "
            "RIDE = the defaults; 'without dropout' adds dropout=0. Attack: one-step FGSM, step 0.015 "
            "(§Attacker), on the ImageNet validation subset of 2 images per class.",
            "Needs the ImageNet validation set (ImageFolder) and torchvision's ResNet-50 weights.",
        ),
    )


def _all_tables() -> dict[str, PaperTable]:
    tables = [_mimicgan_fig5b(), _mimicgan_fig5a(), _mimicgan_fig4b(), _mimicgan_fig9b(), _mimicgan_table2()]
    for ds in ("mnist", "fmnist"):
        tables += list(_invgan_parts(ds))
    tables.append(_invgan_fig4())
    tables += [_ride_table2("mnist"), _ride_table2("cifar10"), _ride_table2("imagenet"), _ride_table1(), _ride_fig5a()]
    order = sorted(tables, key=lambda t: t.id)
    return {t.id: t for t in order}


TABLES: dict[str, PaperTable] = _all_tables()


def resolve(name: str) -> list[PaperTable]:
    """A table by id, or a group by prefix (``invgan-table2`` = its MNIST and Fashion-MNIST parts)."""
    key = name.strip().lower()
    if key in TABLES:
        return [TABLES[key]]
    group = [t for tid, t in TABLES.items() if tid.startswith(key + "-")]
    if group:
        return group
    raise DefbenchError(f"unknown paper table {name!r}; choose one of: {', '.join(TABLES)} (see 'defbench paper list')")


# ======================================================================================= running
@dataclass
class PaperRun:
    table: PaperTable
    preset: str
    n: int
    seeds: tuple[int, ...]
    device: str
    out: str
    rows: dict[Cell, dict]  # store row per needed cell
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    threat_n: dict[str, int] = field(default_factory=dict)  # fewer images for these threats' cells


def run_table(
    table: PaperTable,
    n: int | None = None,
    preset: str = "paper",
    device: str = "cpu",
    seed: int = 0,
    out: str | None = None,
    data_root: str | None = None,
    progress: bool = True,
    threat_n: dict[str, int] | None = None,
    executor=None,
) -> PaperRun:
    """Run the cells ``table`` needs through the matrix runner (resuming from its store) and return the rows;
    ``executor`` computes them (default :class:`LocalExecutor`; :class:`RayExecutor` for a Ray cluster)."""
    if not table.runnable:
        raise DefbenchError(f"paper table {table.id} is not yet supported: {table.unsupported}")
    if preset not in PRESETS:
        raise DefbenchError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    n = n if n is not None else table.default_n(preset)
    if n < 1:
        raise DefbenchError(f"--n must be positive, got {n}")
    spec = table.matrix_spec(n, preset, device, seed, out, data_root, progress, threat_n)
    t0 = time.time()
    runner = MatrixRunner(spec)
    cells = table.needed_cells(spec.seeds, preset)
    keys = {c: runner.key(c)[0] for c in cells}  # n and batch size are part of every key
    todo = [c for c in cells if not runner.store.has(keys[c])]
    (executor or LocalExecutor()).run(runner, todo)
    rows = {}
    failed = {f["key"]: f["message"] for f in runner.store.failures()}
    for c, k in keys.items():
        found = list(runner.store.rows(key=k.key))
        if not found and k.key in failed:
            raise DefbenchError(
                f"cell s{c.seed} {c.defense} {c.threat} {c.attack.name if c.attack else 'clean'} "
                f"failed: {failed[k.key]}; the other cells are stored, rerun to retry it"
            )
        if not found:
            raise DefbenchError(f"cell {c} missing from {runner.store.path} after the run")
        rows[c] = found[0]
    return PaperRun(
        table,
        preset,
        n,
        spec.seeds,
        spec.device,
        spec.out,
        rows,
        len(todo),
        len(cells) - len(todo),
        time.time() - t0,
        {t: k for t, k in spec.threat_n.items() if k < n},
    )
