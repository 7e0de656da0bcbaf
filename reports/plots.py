"""Figures: robust accuracy vs ε, accuracy vs α for universal attacks, and clean/adversarial/purified grids.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas, never through pyplot, so no global
backend is switched and nothing needs a display. Each function returns the written path, or None when there is
nothing to plot.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from defbench.metrics import worst_case

from .common import (
    Row,
    accuracy,
    attack_key,
    attack_names,
    base_key,
    base_names_of,
    cfg,
    correct_mask,
    how_tagger,
    is_clean,
    is_latent,
    mean_std,
    ordered_unique,
    threat_sort_key,
)

Series = dict[str, dict[float, dict[int, float]]]  # line name -> x -> seed -> accuracy


def _save(fig: Figure, path: str | Path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return str(path)


def _line_names(rows: list[Row]) -> Callable[[Row], str]:
    """Line label of a row: its defense, with "(threat)" when the plotted rows span several threats."""
    names = base_names_of(rows)
    mixed = len({r["threat"] for r in rows if not is_clean(r)}) > 1
    return lambda r: f"{names[base_key(r)]} ({r['threat']})" if mixed else names[base_key(r)]


def _panels(fig: Figure, panels: dict[str, Series], xlabel: str, log_x: bool = False) -> None:
    """One axes per panel, one error-bar line per series (mean ± std over seeds, in %)."""
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, series) in zip(axes, panels.items(), strict=True):
        for name, points in series.items():
            xs = sorted(points)
            stats = [mean_std([points[x][s] for s in sorted(points[x])]) for x in xs]
            ax.errorbar(
                xs, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], marker="o", capsize=3, label=name
            )
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-2, 102)
        if log_x:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")


def _add(series: Series, name: str, x: float, seed: int, acc: float) -> None:
    """Record a point. Each line is one attack configuration (:func:`_variant_names`), so a second value at the
    same x and seed is a duplicate cell (a rerun of the same configuration): the lower accuracy is kept."""
    cur = series[name][x].get(seed)
    series[name][x][seed] = acc if cur is None or math.isnan(cur) else min(cur, acc)


def _without(config: dict[str, Any], x: str) -> dict[str, Any]:
    """An attack config with its swept value ``x`` ("eps" or "alpha") taken out, label and params included."""
    out = {k: v for k, v in config.items() if k != x}
    if isinstance(out.get("params"), dict):
        out["params"] = {k: v for k, v in out["params"].items() if k != x}
    if x == "alpha" and isinstance(out.get("label"), str):
        out["label"] = re.sub(r" α=\S+", "", out["label"])
    return out


def _family(r: Row) -> str:
    return str(cfg(r, "family", r["attack"]))


def _variant_names(rows: list[Row], x: str, family: Callable[[Row], str] = _family) -> Callable[[Row], str]:
    """What tells a row's line apart besides its defense, its swept value ``x`` aside: "" where each family ran
    one configuration one way, else the attack's name among the family's configurations ("PGD steps=10" and
    "PGD steps=100", "PGD (n=100)" for a subset, "Universal-FGSM ε=0.1") and how it ran ("EOT=10", a G·I),
    which a line never mixes. ``family`` names a row's panel."""
    x_free = {id(r): {**r, "attack_config": _without(dict(r.get("attack_config") or {}), x)} for r in rows}
    names = attack_names(x_free.values())
    how = how_tagger(x_free.values())
    configs: dict[str, set[tuple[str, str]]] = defaultdict(set)  # family -> its attack configurations
    for r in rows:
        configs[family(r)].add(attack_key(x_free[id(r)]))

    def name(r: Row) -> str:
        x = x_free[id(r)]
        several = len(configs[family(r)]) > 1
        return ", ".join(p for p in ((names[attack_key(x)] if several else ""), how(x)) if p)

    return name


def _line(defense: Callable[[Row], str], variant: Callable[[Row], str], r: Row) -> str:
    return defense(r) + (f" — {variant(r)}" if variant(r) else "")


def eps_sweep_panels(rows: Iterable[Row]) -> dict[str, Series]:
    """The points of :func:`plot_eps_sweep`: panel (attack family) -> line -> ε -> seed -> accuracy.

    A line is one defense under one attack configuration: a family run in several configurations (PGD at 10 and
    100 steps, BPDA at EOT 1 and 10, a subset of the images) gets a line per configuration, named by what
    differs. Each line starts at ε = 0 with the clean accuracy over the images its attack cells ran on.
    """
    rows = list(rows)
    attacks = [
        r
        for r in rows
        if not is_clean(r) and cfg(r, "bounded") and cfg(r, "eps") is not None and cfg(r, "alpha") is None
    ]

    def family(r: Row) -> str:  # a gan-aware ε budgets the latent, not the pixels: a panel of its own
        fam = str(cfg(r, "family", r["attack"]))
        return f"{fam} (gan-aware: latent-space ε)" if is_latent(r) else fam

    eps_of: dict[str, set[float]] = defaultdict(set)
    for r in attacks:
        eps_of[family(r)].add(float(cfg(r, "eps")))
    families = [f for f in ordered_unique(family(r) for r in attacks) if len(eps_of[f]) > 1]
    defense, variant = _line_names(attacks), _variant_names(attacks, "eps", family)
    clean = {(base_key(r), int(r["seed"])): r for r in rows if is_clean(r)}
    panels: dict[str, Series] = {}
    for fam in families:
        series: Series = defaultdict(lambda: defaultdict(dict))
        for r in sorted((r for r in attacks if family(r) == fam), key=lambda r: threat_sort_key(r["threat"])):
            line = _line(defense, variant, r)
            _add(series, line, float(cfg(r, "eps")), int(r["seed"]), accuracy(r))
            c = clean.get((base_key(r), int(r["seed"])))
            if c is not None:  # over the attack's images: a subset's line starts at the subset's clean accuracy
                on_its_images = [(r["indices"], [True] * len(r["indices"])), (c["indices"], correct_mask(c))]
                series[line][0.0][int(r["seed"])] = worst_case(on_its_images)[0]
        panels[fam] = series
    return panels


def plot_eps_sweep(rows: Iterable[Row], path: str | Path) -> str | None:
    """Robust accuracy vs ε per defense and attack configuration (:func:`eps_sweep_panels`), one panel per
    bounded attack family run at more than one ε; alpha sweeps of universal attacks are left out."""
    panels = eps_sweep_panels(rows)
    if not panels:
        return None
    fig = Figure(figsize=(4.5 * len(panels), 3.8))
    _panels(fig, panels, "ε")
    return _save(fig, path)


def alpha_sweep_panels(rows: Iterable[Row]) -> dict[str, Series]:
    """The points of :func:`plot_alpha_sweep`: panel (universal attack family) -> line -> α -> seed -> accuracy,
    a line per defense and attack configuration (two universal ε's, two image subsets: two lines)."""
    attacks = [r for r in rows if not is_clean(r) and cfg(r, "alpha") is not None]
    defense, variant = _line_names(attacks), _variant_names(attacks, "alpha")
    panels: dict[str, Series] = {}
    for r in sorted(attacks, key=lambda r: threat_sort_key(r["threat"])):
        series = panels.setdefault(_family(r), defaultdict(lambda: defaultdict(dict)))
        _add(series, _line(defense, variant, r), float(cfg(r, "alpha")), int(r["seed"]), accuracy(r))
    return panels


def plot_alpha_sweep(rows: Iterable[Row], path: str | Path) -> str | None:
    """Accuracy vs α for universal attacks (attack_config alpha not null), one line per defense and attack
    configuration (:func:`alpha_sweep_panels`), one panel per attack family."""
    panels = alpha_sweep_panels(rows)
    if not panels:
        return None
    fig = Figure(figsize=(4.5 * len(panels), 3.8))
    _panels(fig, panels, "α")
    return _save(fig, path)


def _to_numpy(x: Any) -> np.ndarray:
    """(N, C, H, W) tensor or array -> float numpy array clipped to [0, 1]."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {a.shape}")
    return np.clip(a, 0.0, 1.0)


def image_grid(
    clean: Any, adv: Any, purified: Any, path: str | Path, labels: Sequence[Any] | None = None
) -> str | None:
    """Save a 3-row PNG grid: clean images, adversarial images, purified adversarial images.

    Inputs are float tensors or arrays (N, C, H, W) in [0, 1] with C = 1 (grayscale) or 3; ``labels`` (one per
    column, e.g. "7→1") titles the columns. Returns None for N = 0.
    """
    grids = [(_to_numpy(clean), "clean"), (_to_numpy(adv), "adversarial"), (_to_numpy(purified), "purified")]
    n = grids[0][0].shape[0]
    if any(g.shape != grids[0][0].shape for g, _ in grids):
        raise ValueError("clean, adversarial and purified images must have the same shape")
    if n == 0:
        return None
    fig = Figure(figsize=(1.2 * n + 0.8, 3.9))
    axes = fig.subplots(3, n, squeeze=False)
    for i, (imgs, name) in enumerate(grids):
        for j in range(n):
            ax, img = axes[i, j], imgs[j]
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(np.transpose(img[:3], (1, 2, 0)))
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize="small")
            if i == 0 and labels is not None and j < len(labels):
                ax.set_title(str(labels[j]), fontsize="small")
    return _save(fig, path)
