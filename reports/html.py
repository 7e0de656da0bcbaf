"""One self-contained HTML report of a run's store (``defbench report OUT --html``).

The file holds everything inline: CSS in a ``<style>`` element, every image (plots drawn by
:mod:`defbench.reports.plots`, example thumbnails) as a base64 ``data:image/png`` URI. It loads no external
resource and runs no JavaScript, so it can be mailed, archived or opened offline.

Sections, each from the code that makes the same numbers for the Markdown report:

* robust accuracy per threat and detection AUC (:mod:`defbench.reports.tables`); every number cell carries
  ``data-mean`` / ``data-std`` (fractions for accuracy, AUC units) so the HTML can be checked against the store;
* paper vs ours, with deltas, 95% intervals and the match verdict of :mod:`defbench.reports.paper`, for each
  ``<table id>.csv`` that ``defbench paper run`` wrote beside the store (and its ``<table id>.png``);
* the sanity flags (:func:`defbench.reports.sanity.sanity_flags`);
* accuracy vs ε and vs α (:mod:`defbench.reports.plots`), leaving out every line of a single point, and the
  whole plot when no line has two;
* image grids (clean / adversarial / purified, with label and predictions) from the example files the runner
  saves (:mod:`defbench.harness.examples`); a store made before those existed gets a sentence saying so.
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from defbench.harness.examples import load_examples
from defbench.harness.paper_tables import TABLES

from .common import (
    Row,
    attack_key,
    attack_names,
    base_key,
    base_names_of,
    cfg,
    how_tagger,
    is_clean,
    threat_sort_key,
)
from .paper import NO_CI, _fmt, _verdict, delta_note, match_rule, n_note, preset_warning
from .plots import plot_alpha_sweep, plot_eps_sweep
from .render import _header, failed_cells
from .sanity import sanity_flags
from .tables import detection_auc_table, robust_accuracy_table

#: at most this many example grids (the first seed of each defense, threat and attack)
MAX_GRIDS = 200
#: example thumbnails: small images are enlarged (nearest neighbour) to at least MIN_SIDE pixels, large ones
#: shrunk to at most MAX_SIDE
MIN_SIDE, MAX_SIDE = 84, 128

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.5em; }
table.num { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
table.num th, table.num td { border: 1px solid #d0d0d0; padding: .25em .6em; text-align: right; }
table.num th { background: #f2f2f2; } table.num tbody th { text-align: left; font-weight: normal; }
table.num tr.worst th, table.num tr.worst td { font-weight: bold; background: #fafafa; }
table.paper th:last-child { text-align: left; }
td.missing { color: #999; } td.yes { color: #1a7f37; } td.no { color: #b42318; } td.inci { color: #9a6700; }
ul.notes { font-size: .85em; color: #444; } ul.flags li { margin: .2em 0; }
p.meta { color: #444; } figure { margin: 1em 0; } figcaption { font-size: .9em; color: #333; }
img.plot { max-width: 100%; border: 1px solid #eee; }
p.warn { color: #9a6700; font-weight: bold; }
table.grid { border-collapse: collapse; } table.grid td, table.grid th { padding: 2px 6px; text-align: center;
  font-size: .8em; vertical-align: top; } table.grid th.rowname { text-align: right; font-weight: normal; }
table.grid img { image-rendering: pixelated; display: block; margin: 0 auto; border: 1px solid #ddd; }
span.ok { color: #1a7f37; } span.bad { color: #b42318; font-weight: bold; }
div.grids { display: flex; flex-wrap: wrap; gap: 1.5em; }
"""


# ------------------------------------------------------------------------------------------- helpers
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str, cls: str = "") -> str:
    return f'<img src="{png_data_uri(png)}" alt="{_e(alt)}"' + (f' class="{cls}"' if cls else "") + ">"


def _num_attr(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "nan"
    return "nan" if math.isnan(f) else repr(f)


def _notes(notes: Iterable[str]) -> str:
    items = [f"<li>{_e(n)}</li>" for n in notes]
    return f'<ul class="notes">{"".join(items)}</ul>' if items else ""


def frame_html(df: pd.DataFrame, caption: str = "", title: str = "") -> str:
    """A display table of :mod:`defbench.reports.tables` as HTML: its strings as shown in the Markdown report,
    each number cell with ``data-mean`` and ``data-std`` from ``df.attrs`` (NaN where missing), then its notes."""
    mean, std = df.attrs.get("mean"), df.attrs.get("std")
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in [df.index.name or ""] + list(df.columns))
    body = []
    for i, idx in enumerate(df.index):
        cls = ' class="worst"' if str(idx).startswith("worst case") else ""
        cells = [f'<th scope="row">{_e(idx)}</th>']
        for j, _ in enumerate(df.columns):
            text = str(df.iat[i, j])
            m = mean.iat[i, j] if mean is not None else math.nan
            s = std.iat[i, j] if std is not None else math.nan
            miss = ' class="missing"' if text in ("—", "n/a") else ""
            cells.append(f'<td data-mean="{_num_attr(m)}" data-std="{_num_attr(s)}"{miss}>{_e(text)}</td>')
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    table = (
        f'<table class="num" data-title="{_e(title or caption)}">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        if len(df.columns)
        else "<p>(no results)</p>"
    )
    return table + _notes(df.attrs.get("notes") or [])


def _figure(png: bytes | None, caption: str) -> str:
    if not png:
        return ""
    return f"<figure>{_img(png, caption, 'plot')}<figcaption>{_e(caption)}</figcaption></figure>"


# ------------------------------------------------------------------------------------------- tables
def result_tables(rows: list[Row]) -> list[tuple[str, pd.DataFrame]]:
    """(title, table) of the matrix report: robust accuracy per threat (clean only when no attack ran), then
    detection AUC when it has cells; the same tables and titles as :func:`defbench.reports.render.write_reports`."""
    out = []
    threats = sorted({r["threat"] for r in rows if not is_clean(r)}, key=threat_sort_key)
    for t in threats or [None]:
        out.append(
            (f"Robust accuracy (%), threat: {t}" if t else "Clean accuracy (%)", robust_accuracy_table(rows, threat=t))
        )
    auc = detection_auc_table(rows)
    if len(auc.columns) and len(auc.index):
        out.append(("Detection ROC AUC (InvGAN score)", auc))
    return out


# ------------------------------------------------------------------------------------------- paper vs ours
_PAPER_COLUMNS = {"table", "row", "column", "paper", "ours", "ci_low", "ci_high", "delta", "n", "metric"}


def paper_outcomes(out_dir: str | Path) -> list[tuple[str, pd.DataFrame]]:
    """(table id, outcomes) of every ``<id>.csv`` in ``out_dir`` written by ``defbench paper run``."""
    found = []
    for p in sorted(Path(out_dir).glob("*.csv")):
        try:
            head = pd.read_csv(p, nrows=0)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
            continue
        if not _PAPER_COLUMNS <= set(head.columns):
            continue
        df = pd.read_csv(p, keep_default_na=True)
        if len(df) and str(df["table"].iloc[0]) == p.stem:
            found.append((p.stem, df))
    return found


def _none(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def paper_html(table_id: str, df: pd.DataFrame, out_dir: str | Path) -> str:
    """The paper-vs-ours table of one paper run: the columns and formatting of its Markdown report."""
    spec = TABLES.get(table_id)
    parts = [f"<h3>{_e(table_id)}" + (f": {_e(spec.title)}" if spec else "") + "</h3>"]
    first = df.iloc[0]
    meta = [
        f"preset {first.get('preset', '?')}",
        f"n = {first.get('images_per_cell', '?')} images per cell",
        f"seeds {first.get('seeds', '?')}",
    ]
    if spec is not None:
        meta.insert(0, f"source: {spec.source}")
    rule = (
        match_rule(spec)
        if spec is not None
        else "delta = ours − paper; 95% CI of ours; match: |delta| within tolerance (yes), else the paper's value "
        "inside our CI (in CI) or not (no)."
    )
    parts.append(f'<p class="meta">{_e("; ".join(str(m) for m in meta))}; {_e(rule)}</p>')
    warning = preset_warning(str(first.get("preset", "paper")))
    if warning:
        parts.append(f'<p class="warn">{_e(warning)}</p>')
    head = "".join(
        f'<th scope="col">{h}</th>' for h in ("row", "column", "paper", "ours", "95% CI", "delta", "match", "n", "note")
    )
    body = []
    for r in df.itertuples(index=False):
        metric = "auc" if "auc" in str(r.metric) else "accuracy"
        paper, paper_std = _none(r.paper), _none(getattr(r, "paper_std", None))
        measured = _none(r.n) is not None
        ours = (math.nan if _none(r.ours) is None else float(r.ours)) if measured else None
        ours_std = _none(getattr(r, "ours_std", None))
        delta, lo, hi = _none(r.delta), _none(r.ci_low), _none(r.ci_high)
        ptxt = _fmt(paper, metric) + (
            f" ± {_fmt(paper_std, metric)}" if paper is not None and paper_std is not None else ""
        )
        otxt = _fmt(ours, metric)  # "n/a" where measured but undefined, "—" where not measured
        if ours_std is not None:
            otxt += f" ± {_fmt(ours_std, metric)}"
        cd = 3 if metric == "auc" else 1
        ci = "—" if lo is None or hi is None else f"{lo:.{cd}f}–{hi:.{cd}f}"
        verdict = _verdict(paper, delta, lo, hi, metric)
        vcls = {"yes": "yes", "no": "no", NO_CI: "no", "in CI": "inci"}.get(verdict, "missing")
        note = "" if _none(getattr(r, "note", None)) is None else str(r.note)
        cells = [
            f'<th scope="row">{_e(r.row)}</th>',
            f"<td>{_e(r.column)}</td>",
            f'<td data-value="{_num_attr(paper)}">{_e(ptxt)}</td>',
            f'<td data-value="{_num_attr(ours)}">{_e(otxt)}</td>',
            f'<td data-low="{_num_attr(lo)}" data-high="{_num_attr(hi)}">{_e(ci)}</td>',
            f'<td data-value="{_num_attr(delta)}">{_e(_fmt(delta, metric, sign=True))}</td>',
            f'<td class="{vcls}">{_e(verdict)}</td>',
            f"<td>{_e(int(r.n)) if measured else '—'}</td>",
            f'<td style="text-align:left">{_e(note)}</td>',
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    parts.append(
        f'<table class="num paper" data-title="paper: {_e(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    notes = []
    if spec is not None:  # the Markdown report's notes: what our n means, mean |delta|, the spec's notes
        n_max = df["n"].dropna().max() if df["n"].notna().any() else None
        subset = []  # the threats whose cells hold fewer images; a paper CSV may lack the column (none named)
        if "threat" in df:
            subset = sorted(
                {str(t) for t, n in zip(df["threat"], df["n"], strict=True) if _none(n) is not None and n < n_max}
            )
        images = first.get("images_per_cell")
        note = n_note(spec, int(images), df, subset) if _none(images) is not None else ""
        notes += [note] if note else []
    summary = delta_note([d for d in df["delta"] if _none(d) is not None], spec.metric if spec is not None else "")
    notes += [summary] if summary else []
    parts.append(_notes(notes + (list(spec.notes) if spec is not None else [])))
    png = Path(out_dir) / f"{table_id}.png"
    if png.is_file():
        parts.append(_figure(png.read_bytes(), f"{table_id}: ours vs the paper"))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- plots
def _sweep_rows(rows: list[Row], var: str) -> list[Row]:
    """The rows of the ``var`` ("eps" or "alpha") sweep plot, less every line of a single point: a line is one
    (attack family, defended model, threat); an ε line also has its defense's clean accuracy at ε = 0."""
    if var == "eps":
        pts = [
            r
            for r in rows
            if not is_clean(r) and cfg(r, "bounded") and cfg(r, "eps") is not None and cfg(r, "alpha") is None
        ]
    else:
        pts = [r for r in rows if not is_clean(r) and cfg(r, "alpha") is not None]
    clean = {(base_key(r), int(r["seed"])) for r in rows if is_clean(r)}
    xs: dict[tuple, set[float]] = defaultdict(set)
    line = lambda r: (str(cfg(r, "family", r["attack"])), base_key(r), r["threat"])  # noqa: E731
    for r in pts:
        xs[line(r)].add(round(float(cfg(r, var)), 9))
        if var == "eps" and (base_key(r), int(r["seed"])) in clean:
            xs[line(r)].add(0.0)
    keep = [r for r in pts if len(xs[line(r)]) > 1]
    if not keep:
        return []
    if var == "eps":  # the ε = 0 points come from the clean rows of the defenses still plotted
        bases = {base_key(r) for r in keep}
        keep += [r for r in rows if is_clean(r) and base_key(r) in bases]
    return keep


def sweep_plots(rows: list[Row]) -> list[tuple[str, bytes]]:
    """(caption, PNG bytes) of the accuracy-vs-ε and accuracy-vs-α plots that have a line of two points."""
    out = []
    with tempfile.TemporaryDirectory(prefix="defbench-html-") as tmp:
        for var, fn, caption in (
            ("eps", plot_eps_sweep, "Robust accuracy vs ε (mean ± std over seeds)"),
            ("alpha", plot_alpha_sweep, "Accuracy vs α, universal perturbations"),
        ):
            sel = _sweep_rows(rows, var)
            path = fn(sel, Path(tmp) / f"{var}.png") if sel else None
            if path:
                out.append((caption, Path(path).read_bytes()))
    return out


# ------------------------------------------------------------------------------------------- image grids
def thumbnail_png(img: Any) -> bytes:
    """One image (C, H, W) in [0, 1] as PNG bytes, enlarged or shrunk for display (see MIN_SIDE, MAX_SIDE)."""
    from PIL import Image

    a = np.asarray(img.float().numpy() if hasattr(img, "numpy") else img, dtype=np.float32)
    a = np.clip(np.nan_to_num(a), 0.0, 1.0)
    u8 = np.round(a * 255).astype(np.uint8)
    # uint8 H x W gives mode "L", H x W x 3 mode "RGB"
    pil = Image.fromarray(u8[0] if u8.shape[0] == 1 else np.ascontiguousarray(np.transpose(u8[:3], (1, 2, 0))))
    side = max(pil.size)
    if side < MIN_SIDE:
        f = -(-MIN_SIDE // side)
        pil = pil.resize((pil.width * f, pil.height * f), Image.NEAREST)
    elif side > MAX_SIDE:
        s = MAX_SIDE / side
        pil = pil.resize((max(1, round(pil.width * s)), max(1, round(pil.height * s))), Image.BOX)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _pred(p: int, y: int) -> str:
    cls = "ok" if p == y else "bad"
    return f'<span class="{cls}">pred {int(p)}</span>'


def grid_html(blob: dict, title: str, clean_cell: bool) -> str:
    """One cell's examples as a table: a column per image, rows clean / adversarial / purified (a clean cell has
    no adversarial row), each image with its prediction (red where wrong)."""
    labels = [int(v) for v in blob["labels"]]
    idx = [int(v) for v in blob["indices"]]
    head = "<tr><th></th>" + "".join(f"<th>#{i}<br>label {y}</th>" for i, y in zip(idx, labels, strict=True)) + "</tr>"
    rows = [("clean", "x", "pred_clean", "bare classifier")]
    if not clean_cell:
        rows.append(("adversarial", "x_in", "pred_in", "bare classifier"))
    rows.append(("purified", "x_hat", "pred_hat", "defended"))
    body = []
    for name, img_key, pred_key, who in rows:
        cells = []
        for j, y in enumerate(labels):
            alt = f"{title}: {name} image #{idx[j]} (label {y}, {who} prediction {int(blob[pred_key][j])})"
            cells.append(f"<td>{_img(thumbnail_png(blob[img_key][j]), alt)}{_pred(int(blob[pred_key][j]), y)}</td>")
        body.append(f'<tr><th class="rowname">{name}</th>{"".join(cells)}</tr>')
    return f'<figure><table class="grid"><caption>{_e(title)}</caption>{head}{"".join(body)}</table></figure>'


def grids_html(rows: list[Row], out_dir: str | Path) -> str:
    """Example grids per defense (first seed of each threat and attack), or a sentence saying why there are
    none."""
    bnames = base_names_of(rows)
    anames = attack_names(rows)
    seed0 = min(int(r["seed"]) for r in rows)
    how = how_tagger(rows)  # an attack run two ways (EOT, G·I) gets a grid per way, as it gets a table column
    first: dict[tuple, Row] = {}
    for r in sorted(rows, key=lambda r: int(r["seed"])):
        akey = ("clean",) if is_clean(r) else attack_key(r)
        first.setdefault((base_key(r), r["threat"], akey, how(r)), r)
    order = sorted(
        first.items(),
        key=lambda kv: (list(bnames).index(kv[0][0]), not is_clean(kv[1]), threat_sort_key(kv[1]["threat"])),
    )
    sections: dict[Any, list[str]] = {}
    missing = 0
    shown = 0
    for (base, threat, _, tag), r in order:
        blob = load_examples(out_dir, r["key"]) if "key" in r else None
        if blob is None:
            missing += 1
            continue
        if shown >= MAX_GRIDS:
            continue
        label = "clean" if is_clean(r) else f"{anames[attack_key(r)]}, threat {threat}" + (f", {tag}" if tag else "")
        title = f"{bnames[base]}: {label}" + (f" (seed {r['seed']})" if int(r["seed"]) != seed0 else "")
        sections.setdefault(base, []).append(grid_html(blob, title, is_clean(r)))
        shown += 1
    if not sections:
        return (
            "<p>No example images: this store has no example files in <code>examples/</code> (stores made "
            "before defbench saved the first images of each cell have none; rerun the cells to get them).</p>"
        )
    parts = [
        "<p>The first images of each cell (first seed): clean, attacked input and purification, with the "
        "bare classifier's prediction on the first two and the defended model's on the purification "
        "(red: wrong).</p>"
    ]
    for base, grids in sections.items():
        parts.append(f'<h3>{_e(bnames[base])}</h3><div class="grids">{"".join(grids)}</div>')
    total = len(order)
    if missing:
        parts.append(
            f'<p class="meta">{missing} of {total} cells have no example file (computed before '
            "defbench saved examples, or the file could not be read).</p>"
        )
    if shown < total - missing:
        parts.append(f'<p class="meta">Only the first {MAX_GRIDS} grids are shown.</p>')
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- the page
def _rows_of(store_or_rows: Any) -> list[Row]:
    rows_method = getattr(store_or_rows, "rows", None)
    return list(rows_method() if callable(rows_method) else store_or_rows)


def build_html(store_or_rows: Any, out_dir: str | Path, title: str | None = None) -> str:
    """The report page of a store (or its rows) whose output dir (example files, paper CSVs) is ``out_dir``."""
    rows = _rows_of(store_or_rows)
    title = title or f"defbench report: {Path(out_dir).resolve().name}"
    parts = [f"<h1>{_e(title)}</h1>"]
    papers = paper_outcomes(out_dir)
    if not rows:
        parts.append("<p>The store holds no results yet.</p>")
    else:
        parts.append(f'<p class="meta">{_e(_header(rows).replace("**", ""))}</p>')
        parts.append("<h2>Tables</h2>")
        for caption, df in result_tables(rows):
            parts.append(f"<h3>{_e(caption)}</h3>" + frame_html(df, title=caption))
    if papers:
        parts.append("<h2>Paper vs ours</h2>")
        parts += [paper_html(tid, df, out_dir) for tid, df in papers]
    failed = failed_cells(store_or_rows)
    if failed:
        parts.append("<h2>Failed cells</h2>")
        parts.append(
            f"<p>{len(failed)} cell(s) failed and hold no number (their — in the tables is a failure, not a cell "
            "never run); rerun the command that ran them to retry:</p>"
            '<ul class="flags">' + "".join(f"<li>{_e(f)}</li>" for f in failed) + "</ul>"
        )
    if rows:
        flags = sanity_flags(rows)
        parts.append("<h2>Sanity checks</h2>")
        parts.append(
            '<ul class="flags">' + "".join(f"<li>⚠ {_e(f)}</li>" for f in flags) + "</ul>"
            if flags
            else "<p>None fired.</p>"
        )
        plots = sweep_plots(rows)
        parts.append("<h2>Sweeps</h2>")
        parts += (
            [_figure(png, cap) for cap, png in plots]
            if plots
            else ["<p>No sweep to plot: no attack ran at two ε (or α) values on one defense.</p>"]
        )
        parts.append("<h2>Examples</h2>")
        parts.append(grids_html(rows, out_dir))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_html_report(store_or_rows: Any, out_dir: str | Path, path: str | Path | None = None) -> Path:
    """Write the page (default ``<out_dir>/report.html``) atomically and return its path."""
    import os
    import uuid

    path = Path(path) if path else Path(out_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = build_html(store_or_rows, out_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
