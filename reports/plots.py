"""Figures: robust accuracy vs ε, accuracy vs α for universal attacks, and clean/adversarial/purified grids.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas, never through pyplot, so no global
backend is switched and nothing needs a display. Each function returns the written path, or None when there is
nothing to plot.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .common import (
    Row,
    accuracy,
    base_key,
    base_names,
    cfg,
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
    names = base_names(base_key(r) for r in rows)
    mixed = len({r["threat"] for r in rows if not is_clean(r)}) > 1
    return lambda r: f"{names[base_key(r)]} ({r['threat']})" if mixed else names[base_key(r)]


def _panels(fig: Figure, panels: dict[str, Series], xlabel: str, log_x: bool = False) -> None:
    """One axes per panel, one error-bar line per series (mean ± std over seeds, in %)."""
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, series) in zip(axes, panels.items()):
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
    """Record a point; several configs at the same x keep the strongest (lowest accuracy)."""
    cur = series[name][x].get(seed)
    series[name][x][seed] = acc if cur is None or math.isnan(cur) else min(cur, acc)


def plot_eps_sweep(rows: Iterable[Row], path: str | Path) -> str | None:
    """Robust accuracy vs ε per defense, one panel per bounded attack family run at more than one ε.

    Each line starts at ε = 0 with the clean accuracy; alpha sweeps of universal attacks are left out.
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
    if not families:
        return None
    line = _line_names(attacks)
    clean = {(base_key(r), int(r["seed"])): accuracy(r) for r in rows if is_clean(r)}
    panels: dict[str, Series] = {}
    for fam in families:
        series: Series = defaultdict(lambda: defaultdict(dict))
        for r in sorted(
            (r for r in attacks if family(r) == fam),
            key=lambda r: threat_sort_key(r["threat"]),
        ):
            _add(series, line(r), float(cfg(r, "eps")), int(r["seed"]), accuracy(r))
            if (base_key(r), int(r["seed"])) in clean:
                series[line(r)][0.0][int(r["seed"])] = clean[(base_key(r), int(r["seed"]))]
        panels[fam] = series
    fig = Figure(figsize=(4.5 * len(panels), 3.8))
    _panels(fig, panels, "ε")
    return _save(fig, path)


def plot_alpha_sweep(rows: Iterable[Row], path: str | Path) -> str | None:
    """Accuracy vs α for universal attacks (attack_config alpha not null), one line per defense, one panel per
    attack family."""
    attacks = [r for r in rows if not is_clean(r) and cfg(r, "alpha") is not None]
    if not attacks:
        return None
    line = _line_names(attacks)
    panels: dict[str, Series] = {}
    for r in sorted(attacks, key=lambda r: threat_sort_key(r["threat"])):
        series = panels.setdefault(str(cfg(r, "family", r["attack"])), defaultdict(lambda: defaultdict(dict)))
        _add(series, line(r), float(cfg(r, "alpha")), int(r["seed"]), accuracy(r))
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
