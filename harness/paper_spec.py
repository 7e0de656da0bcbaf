"""Paper table specs, the schema: a :class:`PaperTable` is data, one published table or figure (or one dataset's
part of it) with the setting it was measured in (dataset, defenses and their overrides, attacks with ε and
parameters, threat models, images per cell, batch size, seeds or GAN replicas) and the paper's numbers, keyed by
the paper's own (row label, column label) and copied from the texts in ``../shared/papers`` (source given per
spec). The specs themselves are data modules, one per paper (:mod:`~defbench.harness.paper_mimicgan`,
:mod:`~defbench.harness.paper_invgan`, :mod:`~defbench.harness.paper_ride`), collected in
:mod:`~defbench.harness.paper_tables`; :mod:`~defbench.harness.papers` runs them and :mod:`defbench.reports.paper`
compares a :class:`PaperRun` with the paper.

Values are kept as printed: ``paper_scale`` turns them into our unit (accuracy in %, AUC as is), e.g. the
InvGAN and RIDE Table 1 fractions 0.99 become 99 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from defbench import DefbenchError
from defbench.defenses.registry import split_variant
from defbench.harness.matrix import QUICK_ATTACK_PARAMS, QUICK_DEFENSE_OVERRIDES, AttackSpec, Cell, MatrixSpec

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

    def only_threats(self, threats: list[str] | tuple[str, ...] | None) -> PaperTable:
        """This table with the cells of other threat models left unmeasured (printed "—" with a note saying so),
        so that a run computes none of them; the whole table when ``threats`` is empty. Clean cells always stay.
        A threat the table does not use is an error (a typo would otherwise leave every attack cell out)."""
        if not threats:
            return self
        threats = [t.strip().lower() for t in threats]
        unknown = [t for t in threats if t not in self.threats]
        if unknown:
            raise DefbenchError(
                f"{self.id} has no threat {', '.join(map(repr, unknown))}; its threats: {', '.join(self.threats)}"
            )
        keep = {*threats, "none"}  # a clean cell's threat is "none"
        note = f"not run here (--threats {' '.join(threats)})"
        cells = tuple(
            c
            if c.measure is None or all(m.threat in keep for m in c.measure.members)
            else replace(c, measure=None, note=note)
            for c in self.cells
        )
        return replace(self, cells=cells)

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
    """One store per (dataset, preset, n, batch size): tables of the same setting share their cells, and
    ``defbench report`` on the directory shows one setting (the cell key holds n and the batch size as well, so
    cells of two settings never mix even in one store)."""
    return str(Path("runs") / "paper" / f"{table.dataset}-{preset}-n{n}-b{table.batch_size}")


# ======================================================================================= what the specs share
def grid(rows, cols, values, measures=None, stds=None, notes=None, xs=None) -> tuple[PaperCell, ...]:
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


# ======================================================================================= a run of a spec
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
