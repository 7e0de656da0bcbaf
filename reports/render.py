"""Write a run's report files (CSV, LaTeX, PNG) and return its Markdown text for the CLI to print.

LaTeX is written by :func:`to_latex` (booktabs tabular) rather than ``DataFrame.to_latex``, which needs jinja2,
a package defbench does not depend on.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pandas as pd

from .common import Row, is_clean, ordered_unique, threat_sort_key
from .plots import plot_alpha_sweep, plot_eps_sweep
from .sanity import sanity_section
from .tables import detection_auc_table, robust_accuracy_table, to_markdown

#: LaTeX's specials in text mode
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
#: the non-ASCII symbols the tables and notes use: text-mode replacements, then math-mode ones
_LATEX_TEXT = {"—": "---", "–": "--", "−": "-", "§": r"\S{}", "…": r"\ldots{}", "⚠": "(!)", "†": r"\dag{}"}
_LATEX_MATH = {
    "±": r"\pm",
    "→": r"\to",
    "↦": r"\mapsto",
    "‖": r"\|",
    "ℓ": r"\ell",
    "∞": r"\infty",
    "∘": r"\circ",
    "·": r"\cdot",
    "≈": r"\approx",
    "×": r"\times",
    "√": r"\surd",
    "∈": r"\in",
    "∇": r"\nabla",
    "≤": r"\le",
    "≥": r"\ge",
    "≠": r"\neq",
    "≮": r"\not<",
    "≯": r"\not>",
    "∉": r"\notin",
    "²": "^{2}",
    "₁": "_{1}",
    "₂": "_{2}",
    "ᵢ": "_{i}",
    "ₓ": "_{x}",
}
_LATEX_ACCENTS = {"\u0302": r"\hat", "\u0303": r"\tilde"}  # combining: x̂, x̃
#: Greek capitals that LaTeX has a command for, and the others, which are Latin letters (Α is A)
_GREEK_AS_LATIN = {"Alpha": "A", "Beta": "B", "Epsilon": "E", "Zeta": "Z", "Eta": "H", "Iota": "I", "Kappa": "K"}
_GREEK_AS_LATIN |= {"Mu": "M", "Nu": "N", "Omicron": "O", "Rho": "P", "Tau": "T", "Chi": "X"}
_GREEK_CAPITALS = {"Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}


def _latex_math(ch: str) -> str | None:
    """The math-mode command of a non-ASCII symbol or Greek letter, or None."""
    if ch in _LATEX_MATH:
        return _LATEX_MATH[ch]
    name = unicodedata.name(ch, "")
    for case, prefix in (("small", "GREEK SMALL LETTER "), ("capital", "GREEK CAPITAL LETTER ")):
        if name.startswith(prefix) and " " not in name[len(prefix) :]:
            letter = name[len(prefix) :].capitalize().replace("Lamda", "Lambda")
            if case == "small":
                return {"Epsilon": r"\varepsilon", "Omicron": "o"}.get(letter, "\\" + letter.lower())
            return "\\" + letter if letter in _GREEK_CAPITALS else _GREEK_AS_LATIN.get(letter, "?")
    return None


def latex_escape(text: Any) -> str:
    """Text as pdflatex reads it: LaTeX's specials escaped, the symbols the tables use mapped (Greek letters and
    math symbols to math mode, dashes and § to text), and any other non-ASCII character spelled as its ASCII
    base letter or, where it has none, as ``[U+XXXX]``: the output is ASCII."""
    s = unicodedata.normalize("NFC", str(text))
    out = []
    for i, ch in enumerate(s):
        if ch in _LATEX_ACCENTS:
            continue  # taken with the character before it
        accent = _LATEX_ACCENTS.get(s[i + 1]) if i + 1 < len(s) else None
        inner = (ch if ch.isascii() and ch.isalnum() else _latex_math(ch)) if accent else None
        if inner is not None:
            out.append(f"${accent}{{{inner}}}$")
        elif ch.isascii():
            out.append(_LATEX_SPECIALS.get(ch, ch))
        elif ch in _LATEX_TEXT:
            out.append(_LATEX_TEXT[ch])
        elif (math := _latex_math(ch)) is not None:
            out.append(f"${math}$")
        else:  # its ASCII base letter (ï: i), unless the decomposition negates it (≠ is = with U+0338)
            parts = unicodedata.normalize("NFKD", ch)
            base = "" if "\u0338" in parts else parts.encode("ascii", "ignore").decode()
            out.append(latex_escape(base) if base else f"[U+{ord(ch):04X}]")
    return "".join(out)


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs ``table`` environment for a display table, with its notes as a footnote paragraph."""
    cols = "l" + "r" * len(df.columns)
    head = " & ".join([latex_escape(df.index.name or "")] + [latex_escape(c) for c in df.columns]) + r" \\"
    body = [
        " & ".join([latex_escape(i)] + [latex_escape(v) for v in row]) + r" \\"
        for i, row in zip(df.index, df.to_numpy(), strict=True)
    ]
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{cols}}}", r"\toprule", head, r"\midrule"]
    prev = None
    for i, b in zip(df.index, body, strict=True):
        if str(i).startswith("worst case") and not str(prev).startswith("worst case"):
            lines.append(r"\midrule")
        prev = i
        lines.append(b)
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = df.attrs.get("notes") or []
    if notes:
        lines.append(r"\par\smallskip\footnotesize " + " ".join(latex_escape(n) for n in notes))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _header(rows: list[Row]) -> str:
    """One line naming the datasets, classifiers, images per cell and seeds."""
    datasets = ", ".join(ordered_unique(r["dataset"] for r in rows))
    classifiers = ", ".join(ordered_unique(r["classifier"] for r in rows))
    ns = sorted({len(r["labels"]) for r in rows})
    images = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    seeds = sorted({int(r["seed"]) for r in rows})
    return (
        f"**defbench results** — dataset: {datasets}; classifier: {classifiers}; {images} images per cell; "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); {len(rows)} cells."
    )


def _rows_of(store_or_rows: Any) -> list[Row]:
    rows_method = getattr(store_or_rows, "rows", None)
    return list(rows_method() if callable(rows_method) else store_or_rows)


def failed_cells(store_or_rows: Any) -> list[str]:
    """'label: message' of each cell the store records as failed and holds no result for (a store's
    ``failures()``; rows alone carry none): a '—' of theirs in a table is a failure, not a cell never asked for."""
    failures = getattr(store_or_rows, "failures", None)
    return [f"{f['label']}: {f['message']}" for f in failures()] if callable(failures) else []


def failed_section(lines: list[str]) -> list[str]:
    if not lines:
        return []
    head = (
        f"### Failed cells\n\n{len(lines)} cell(s) failed and hold no number (their '—' in the tables above is a "
        "failure, not a cell never run); rerun the command that ran them to retry:"
    )
    return [head, ""] + ["- " + line for line in lines] + [""]


def write_reports(store_or_rows: Any, out_dir: str | Path) -> str:
    """Write the report files for a :class:`~defbench.harness.store.Store` (or an iterable of its rows).

    Files in ``out_dir``: ``robust_accuracy.csv`` (every threat, columns "defense (threat)" when several),
    ``robust_accuracy.tex`` (one table per threat), ``detection_auc.csv`` and ``.tex``, ``report.md``, and
    ``eps_sweep.png`` / ``alpha_sweep.png`` when there is a sweep to plot. Returns the Markdown text.
    """
    rows: list[Row] = _rows_of(store_or_rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not rows:
        failed = failed_section(failed_cells(store_or_rows))
        return "\n".join(["**defbench results** — the store holds no results yet.", ""] + failed) + "\n"

    parts = [_header(rows), ""]
    threats = sorted({r["threat"] for r in rows if not is_clean(r)}, key=threat_sort_key)
    tex = []
    for t in threats or [None]:
        df = robust_accuracy_table(rows, threat=t)
        title = f"Robust accuracy (%), threat: {t}" if t else "Clean accuracy (%)"
        parts.append(to_markdown(df, title))
        tex.append(to_latex(df, caption=title, label=f"tab:robust-{t or 'clean'}"))
    robust_accuracy_table(rows).to_csv(out / "robust_accuracy.csv")
    (out / "robust_accuracy.tex").write_text("\n".join(tex), encoding="utf-8")

    auc = detection_auc_table(rows)
    auc.to_csv(out / "detection_auc.csv")
    (out / "detection_auc.tex").write_text(
        to_latex(auc, caption="Detection ROC AUC", label="tab:detection-auc"), encoding="utf-8"
    )
    if len(auc.columns) and len(auc.index):
        parts.append(to_markdown(auc, "Detection ROC AUC (InvGAN score)"))

    figures = [
        (p, name)
        for p, name in (
            (plot_eps_sweep(rows, out / "eps_sweep.png"), "accuracy vs ε"),
            (plot_alpha_sweep(rows, out / "alpha_sweep.png"), "accuracy vs α"),
        )
        if p
    ]
    if figures:
        parts += ["### Figures", ""] + [f"- {name}: `{p}`" for p, name in figures] + [""]

    parts += failed_section(failed_cells(store_or_rows))
    parts += sanity_section(rows)
    text = "\n".join(parts)
    (out / "report.md").write_text(text, encoding="utf-8")
    return text
