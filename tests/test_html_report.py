"""``defbench report OUT --html``: one self-contained page that holds the store's numbers, draws only plots of
more than one point, shows the example images the runner saved (and says so where a store has none), and
loads in a real headless browser (Debian's chromium + chromedriver through selenium) without console errors."""

from __future__ import annotations

import base64
import html
import io
import math
import random
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from defbench.cli import main
from defbench.harness.store import CellKey, CellResult, Store
from defbench.reports.common import accuracy, attack_key, attack_names, base_key, base_names_of, is_clean
from test_reports import attack_cfg, frac, make_row, stored

# --------------------------------------------------------------------------------------------- parsing


class Page(HTMLParser):
    """The parts of the page the tests read: number tables (by data-title), images, scripts, external refs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict[tuple[str, str], dict]] = {}  # title -> (row, column) -> cell
        self.lines: dict[str, list[dict[str, dict]]] = {}  # title -> one dict per body row
        self.imgs: list[dict[str, str]] = []
        self.scripts = 0
        self.refs: list[str] = []  # every href / src that is not a data: URI
        self.text: list[str] = []
        self._table = None  # (title, header cells, current row header, current row cells)
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for k in ("href", "src"):
            if k in a and not str(a[k]).startswith("data:"):
                self.refs.append(a[k])
        if tag == "img":
            self.imgs.append(a)
        if tag == "table" and "data-title" in a:
            self._table = {"title": a["data-title"], "head": [], "row": None, "cells": [], "in_head": False}
            self.tables[a["data-title"]] = {}
        elif self._table is not None:
            if tag == "thead":
                self._table["in_head"] = True
            elif tag == "tbody":
                self._table["in_head"] = False
            elif tag in ("th", "td"):
                self._cell = {"tag": tag, "attrs": a, "text": ""}

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        t = self._table
        if t is None:
            return
        if tag in ("th", "td") and self._cell is not None:
            c, self._cell = self._cell, None
            if t["in_head"]:
                t["head"].append(c["text"].strip())
            elif c["tag"] == "th":
                t["row"] = c["text"].strip()
            else:
                t["cells"].append(c)
        elif tag == "tr" and not t["in_head"] and t["row"] is not None:
            line = {t["head"][0] or "": {"text": t["row"]}}
            for col, c in zip(t["head"][1:], t["cells"], strict=True):
                self.tables[t["title"]][(t["row"], col)] = line[col] = {"text": c["text"].strip(), **c["attrs"]}
            self.lines.setdefault(t["title"], []).append(line)
            t["row"], t["cells"] = None, []
        elif tag == "table":
            self._table = None


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def decode_png(src: str):
    from PIL import Image

    assert src.startswith("data:image/png;base64,"), src[:40]
    im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
    im.load()
    return im


# --------------------------------------------------------------------------------------------- stores
@pytest.fixture(scope="module")
def matrix_out(tiny_zoo, tmp_path_factory):
    """A real matrix run: no defense and median, FGSM at two ε (an ε sweep), 8 images, one seed."""
    out = tmp_path_factory.mktemp("html") / "run"
    rc = main(
        [
            "matrix",
            "--defense",
            "median",
            "--attacks",
            "fgsm",
            "--eps",
            "0.1,0.3",
            "--n",
            "8",
            "--batch-size",
            "8",
            "--preset",
            "quick",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    return out


def _rows(out: Path) -> list[dict]:
    s = Store(out)
    try:
        return list(s.rows())
    finally:
        s.close()


def synthetic_store(out: Path, points: list[tuple[str, str, dict | None, float]], n: int = 40, seed: int = 0):
    """Store rows written with Store.put: (defense, threat, attack_config or None for clean, accuracy)."""
    rng = random.Random(seed)
    store = Store(out)
    for defense, threat, acfg, acc in points:
        labels = [rng.randrange(10) for _ in range(n)]
        k = round(acc * n)
        preds = [y if i < k else (y + 1) % 10 for i, y in enumerate(labels)]
        acfg = acfg or {"name": "clean", "label": "clean"}
        key = CellKey(
            "fmnist",
            "clf@0",
            defense,
            "d" + defense[:5],
            acfg["name"],
            str(sorted(acfg.items()))[:40],
            threat if acfg["name"] != "clean" else "none",
            0,
        )
        store.put(
            key,
            CellResult(
                labels,
                preds,
                [(y + 1) % 10 for y in labels],
                [rng.random() for _ in labels],
                list(range(n)),
                0.1,
                "cpu",
                {"name": defense},
                acfg,
                {},
            ),
        )
    store.close()
    return out


def fgsm(eps):
    return {"name": "fgsm", "label": "FGSM", "family": "fgsm", "bounded": True, "iterative": False, "eps": eps}


def ufgsm(alpha):
    return {
        "name": "universal-fgsm",
        "label": f"U-FGSM α={alpha}",
        "family": "universal-fgsm",
        "bounded": True,
        "eps": 0.3,
        "alpha": alpha,
    }


# --------------------------------------------------------------------------------------------- tests
def test_runner_saves_the_first_images_of_each_cell(matrix_out):
    from defbench.harness.examples import examples_path, load_examples

    rows = _rows(matrix_out)
    assert len(rows) == 6  # (none, median) x (clean, FGSM 0.1, FGSM 0.3)
    for r in rows:
        path = examples_path(matrix_out, r["key"])
        assert path.is_file()
        blob = torch.load(path, weights_only=True)  # plain tensors only
        assert set(blob) >= {"x", "x_in", "x_hat", "labels", "indices", "pred_clean", "pred_in", "pred_hat"}
        assert blob["x"].shape == blob["x_in"].shape == blob["x_hat"].shape == (4, 1, 28, 28)
        assert all(t.device.type == "cpu" for t in blob.values())
        # the saved images are the cell's first images, with the predictions the store counted
        assert blob["labels"].tolist() == r["labels"][:4]
        assert blob["indices"].tolist() == r["indices"][:4]
        assert blob["pred_in"].tolist() == r["preds_undefended"][:4]
        assert blob["pred_hat"].tolist() == r["preds"][:4]  # no defense and median are deterministic
        if is_clean(r):
            assert torch.equal(blob["x"], blob["x_in"])
        else:
            eps = r["attack_config"]["eps"]
            assert 0 < (blob["x_in"].float() - blob["x"].float()).abs().max() <= eps + 2e-3
        assert load_examples(matrix_out, r["key"]) is not None
    assert not [p for p in (matrix_out / "examples").iterdir() if p.suffix != ".pt"]  # no temp file left


def test_report_cli_prints_tables_and_writes_one_self_contained_page(matrix_out, capsys):
    rc = main(["report", str(matrix_out), "--html"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Robust accuracy (%), threat: graybox" in out and "Sanity checks" in out
    page_path = matrix_out / "report.html"
    assert page_path.is_file() and f"HTML report: {page_path}" in out
    page = parse(page_path)
    assert page.scripts == 0 and page.refs == []  # no JavaScript, nothing loaded from elsewhere
    text = page_path.read_text(encoding="utf-8")
    assert "<link" not in text and "url(" not in text and "@import" not in text

    # the robust-accuracy table holds every cell's accuracy as the store counts it
    rows = _rows(matrix_out)
    table = page.tables["Robust accuracy (%), threat: graybox"]
    anames, bnames = attack_names(rows), base_names_of(rows)
    for r in rows:
        rowname = "clean" if is_clean(r) else anames[attack_key(r)]
        cell = table[(rowname, bnames[base_key(r)])]
        assert cell["text"] == f"{100 * accuracy(r):.1f}"
        assert math.isclose(float(cell["data-mean"]), accuracy(r), abs_tol=1e-12)
    assert {k[0] for k in table} >= {"clean", "FGSM ε=0.1", "FGSM ε=0.3"}
    # ... and the detection table every defended cell's AUC (success protocol and all images)
    from defbench.reports.common import detection_auc, detection_auc_protocol

    auc = page.tables["Detection ROC AUC (InvGAN score)"]
    clean = {r["defense"]: r for r in rows if is_clean(r)}
    for r in rows:
        if is_clean(r) or r["defense"] == "none":
            continue
        for col, want in (
            (bnames[base_key(r)], detection_auc_protocol(clean[r["defense"]], r)[0]),
            (f"{bnames[base_key(r)]} (all images)", detection_auc(clean[r["defense"]], r)),
        ):
            cell = auc[(anames[attack_key(r)], col)]
            if math.isnan(want):
                assert cell["text"] == "n/a" and cell["data-mean"] == "nan"
            else:
                assert cell["text"] == f"{want:.4f}" and math.isclose(float(cell["data-mean"]), want, abs_tol=1e-12)

    # every image decodes; there is the ε plot (two ε values) and one grid per cell
    imgs = page.imgs
    assert imgs
    for im in imgs:
        w, h = decode_png(im["src"]).size
        assert w > 0 and h > 0
    alts = [im.get("alt", "") for im in imgs]
    assert any(a.startswith("Robust accuracy vs ε") for a in alts)
    assert not any(a.startswith("Accuracy vs α") for a in alts)  # no universal attack ran
    grids = [a for a in alts if ": purified image #" in a]
    assert len(grids) == 6 * 4
    assert len([a for a in alts if ": adversarial image #" in a]) == 4 * 4  # clean cells have no adversarial row


def test_report_custom_path_and_missing_store(matrix_out, tmp_path, capsys):
    dest = tmp_path / "elsewhere" / "r.html"
    assert main(["report", str(matrix_out), "--html", str(dest)]) == 0
    assert dest.is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no store" in capsys.readouterr().err
    assert not (tmp_path / "nothing" / "defbench.sqlite").exists()  # reporting never creates a store


def test_old_store_without_examples_and_no_single_point_plot(tmp_path):
    """A store of synthetic rows (as a store made before example files existed): tables yes, no grids (said
    so), and no plot where every line would be one point: FGSM at one ε without clean rows, U-FGSM at one α."""
    from defbench.reports.html import write_html_report

    out = synthetic_store(
        tmp_path / "old", [("median", "graybox", fgsm(0.3), 0.25), ("median", "graybox", ufgsm(1.0), 0.5)]
    )
    store = Store(out)
    path = write_html_report(store, out)
    store.close()
    page = parse(path)
    text = " ".join(page.text)
    assert "No example images" in text
    assert "No sweep to plot" in text
    assert not page.imgs
    cell = page.tables["Robust accuracy (%), threat: graybox"][("FGSM", "median")]
    assert cell["text"] == "25.0"


def test_grid_notes_fire_on_missing_files_and_the_grid_cap_and_stay_silent_otherwise(tmp_path, monkeypatch):
    """The example section says how many cells have no example file and when MAX_GRIDS cut the grids short."""
    from defbench.harness.examples import examples_blob, save_examples_blob
    from defbench.reports import html

    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 10))
    x = torch.rand(2, 1, 2, 2)
    rows = [make_row(frac(10)), make_row(frac(5), attack="pgd"), make_row(frac(3), attack="fgsm")]
    for i, r in enumerate(rows):
        r["key"] = f"cell{i}"
        save_examples_blob(tmp_path, r["key"], examples_blob(clf, x, x, x, [0, 1]))
    sound = html.grids_html(rows, tmp_path)
    assert sound.count("<figure>") == 3 and "have no example file" not in sound and "Only the first" not in sound
    (tmp_path / "examples" / "cell2.pt").unlink()
    monkeypatch.setattr(html, "MAX_GRIDS", 1)
    cut = html.grids_html(rows, tmp_path)
    assert cut.count("<figure>") == 1
    assert "1 of 3 cells have no example file" in cut and "Only the first 1 grids are shown." in cut


def test_an_attack_run_at_two_eot_counts_gets_a_grid_each_and_one_run_a_single_untagged_grid(tmp_path):
    """A store holding a BPDA cell at EOT 1 and its rerun at EOT 10 showed the example grid of whichever came
    first; each now has its grid, titled with its EOT as its table column is. One way of running: no tag."""
    from defbench.attacks import get_attack
    from defbench.harness.examples import examples_blob, save_examples_blob
    from defbench.harness.store import config_hash
    from defbench.reports import html

    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 10))
    x = torch.rand(2, 1, 2, 2)
    pgd = get_attack("pgd", "fmnist", 0.3).config()
    rows = [make_row(frac(10), defense="defensegan")]
    for k, eot in ((8, 1), (2, 10)):
        cfg = {**pgd, "eot": eot}
        r = make_row(frac(k), attack="pgd", cfg=cfg, defense="defensegan", threat="bpda")
        r["attack_hash"] = config_hash(cfg)
        rows.append(r)
    for i, r in enumerate(rows):
        r["key"] = f"cell{i}"
        save_examples_blob(tmp_path, r["key"], examples_blob(clf, x, x, x, [0, 1]))
    both = html.grids_html(rows, tmp_path)
    assert both.count("<figure>") == 3
    assert "PGD, threat bpda, EOT=1<" in both and "PGD, threat bpda, EOT=10<" in both
    one = html.grids_html(rows[:2], tmp_path)
    assert one.count("<figure>") == 2 and "EOT=" not in one and "PGD, threat bpda<" in one


def test_sweep_lines_of_one_point_are_left_out(tmp_path):
    from defbench.reports.html import _sweep_rows, build_html

    out = synthetic_store(
        tmp_path / "sweep",
        [
            ("median", "none", None, 0.9),
            ("median", "graybox", fgsm(0.1), 0.6),
            ("median", "graybox", fgsm(0.3), 0.2),
            ("tvm", "graybox", ufgsm(0.5), 0.7),
            ("tvm", "graybox", ufgsm(1.0), 0.4),
            ("median", "graybox", ufgsm(1.0), 0.5),
        ],
    )  # median has one α: its α line is not drawn
    rows = _rows(out)
    alpha = _sweep_rows(rows, "alpha")
    assert {r["defense"] for r in alpha} == {"tvm"}
    eps = _sweep_rows(rows, "eps")
    assert {(r["defense"], r["attack"]) for r in eps} == {("median", "fgsm"), ("median", "clean")}
    page_text = build_html(rows, out)
    assert 'alt="Robust accuracy vs ε' in page_text and 'alt="Accuracy vs α' in page_text


def test_thumbnails_of_gray_and_color_images():
    from PIL import Image

    from defbench.reports.html import MAX_SIDE, MIN_SIDE, thumbnail_png

    gray = Image.open(io.BytesIO(thumbnail_png(torch.rand(1, 28, 28))))
    assert gray.mode == "L" and gray.size == (3 * 28, 3 * 28) and 3 * 28 >= MIN_SIDE
    small = Image.open(io.BytesIO(thumbnail_png(torch.rand(3, 32, 32).half())))
    assert small.mode == "RGB" and small.size == (96, 96)
    big = Image.open(io.BytesIO(thumbnail_png(torch.rand(3, 224, 160))))
    assert big.mode == "RGB" and max(big.size) == MAX_SIDE and big.size == (round(160 * MAX_SIDE / 224), MAX_SIDE)


def test_example_save_warns_on_a_failed_write_and_is_silent_otherwise(tmp_path):
    """A failed write costs the report its grid, never the cell: a warning where it fails, none where it works."""
    import warnings

    from defbench.harness.examples import examples_blob, load_examples, save_examples_blob

    class Const(torch.nn.Module):
        def forward(self, x):
            return torch.eye(10)[torch.zeros(len(x), dtype=torch.long)]

    x = torch.rand(3, 1, 28, 28)
    blob = examples_blob(Const(), x, x, x, [1, 2, 3], [7, 8, 9], k=2)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the examples folder would go")
    with pytest.warns(UserWarning, match="could not save the example images of cell abc"):
        assert save_examples_blob(blocked, "abc", blob) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = save_examples_blob(tmp_path / "ok", "abc", blob)
    assert path is not None and path.is_file()
    back = load_examples(tmp_path / "ok", "abc")
    assert back["indices"].tolist() == [7, 8] and torch.allclose(back["x"].float(), x[:2], atol=1e-3)


def _sanity_section(rows, out: Path) -> str:
    from defbench.reports.html import build_html

    return build_html(rows, out).split("<h2>Sanity checks</h2>", 1)[1].split("<h2>", 1)[0]


def _none_under_pgd(correct: int) -> list[dict]:
    """No defense, clean and gray-box PGD on 100 images, ``correct`` of them right under PGD."""
    pgd = attack_cfg("PGD", "pgd")
    clean = make_row(frac(100, 100), defense="none")
    return [clean, make_row(frac(correct, 100), defense="none", attack="pgd", cfg=pgd)]


def test_page_lists_each_fired_sanity_flag_with_a_warning_sign(tmp_path):
    import html

    from defbench.reports.sanity import sanity_flags

    rows = _none_under_pgd(40)  # PGD leaves 40% on the undefended classifier: check (c) fires
    (flag,) = sanity_flags(rows)
    section = _sanity_section(rows, tmp_path)
    assert f"<li>⚠ {html.escape(flag)}</li>" in section and "None fired" not in section


def test_page_says_none_fired_for_a_sound_run(tmp_path):
    from defbench.reports.sanity import sanity_flags

    rows = _none_under_pgd(0)
    assert sanity_flags(rows) == []
    section = _sanity_section(rows, tmp_path)
    assert "<p>None fired.</p>" in section and "⚠" not in section and "<li>" not in section


def _paper_run(tmp_path, preset="quick"):
    """A synthetic run of a paper table (the rows of every cell it needs), reported as `paper run` does."""
    from defbench.harness.papers import TABLES, PaperRun
    from defbench.reports.paper import write_paper_report

    table = TABLES["mimicgan-fig5b"]
    rng = random.Random(1)
    rows = {}
    for c in table.needed_cells((0,), preset):
        labels = [rng.randrange(10) for _ in range(20)]
        rows[c] = stored(
            c,
            table.dataset,
            {
                "labels": labels,
                "preds": [y if rng.random() < 0.6 else (y + 1) % 10 for y in labels],
                "preds_undefended": [(y + 1) % 10 for y in labels],
                "scores": [rng.random() for _ in labels],
                "extra": {"projection_error": [rng.random() for _ in labels]},
            },
        )
    run = PaperRun(table, preset, 20, (0,), "cpu", str(tmp_path), rows)
    write_paper_report(run, tmp_path)
    return table


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_paper_section_carries_the_markdown_reports_caveats(tmp_path, preset):
    """The page's paper-vs-ours section dropped what the Markdown report says beside the same table: the quick
    preset's warning (a smoke test compared with the paper), the interval's method, the match tolerance, what n =
    20 against the paper's n means, and mean |delta|. Each line of the Markdown's setting and notes is on the page
    now; a paper-preset run has no warning on either."""
    from defbench.reports.html import write_html_report

    out = tmp_path / "paper"
    synthetic_store(out, [("mimicgan", "none", None, 0.8)])
    table = _paper_run(out, preset)
    md = (out / f"{table.id}.md").read_text(encoding="utf-8")
    store = Store(out)
    page = html.unescape(write_html_report(store, out).read_text(encoding="utf-8"))
    store.close()
    section = page[page.index(f"<h3>{table.id}") :]
    for piece in (
        "Wilson interval of our accuracy over its n",
        "|delta| <= 5 (yes)",
        "n = 20 images per cell",
        "half-width up to ±21.9 at n = 20 points",
        "mean |delta|",
    ):
        assert piece in md and piece in section, piece
    warned = "⚠ Preset quick: smoke-test budgets"
    assert (warned in md, warned in section) == ((True, True) if preset == "quick" else (False, False))


def test_paper_vs_ours_with_deltas_and_intervals(tmp_path):
    """The paper-vs-ours section holds every line of the CSV `paper run` wrote: paper, ours, delta, interval."""
    import pandas as pd

    from defbench.reports.html import write_html_report

    out = tmp_path / "paper"
    synthetic_store(out, [("mimicgan", "none", None, 0.8)])
    table = _paper_run(out)
    store = Store(out)
    path = write_html_report(store, out)
    store.close()
    lines = parse(path).lines[f"paper: {table.id}"]
    df = pd.read_csv(out / f"{table.id}.csv")
    assert len(lines) == len(df)
    html_by = {(ln["row"]["text"], ln["column"]["text"]): ln for ln in lines}
    assert len(html_by) == len(df)

    def same(attr: str, want) -> bool:
        return math.isnan(float(attr)) if pd.isna(want) else math.isclose(float(attr), float(want), abs_tol=1e-9)

    measured = 0
    for r in df.itertuples(index=False):
        ln = html_by[(str(r.row), str(r.column))]
        assert same(ln["paper"]["data-value"], r.paper)
        assert same(ln["delta"]["data-value"], r.delta)
        assert same(ln["95% CI"]["data-low"], r.ci_low) and same(ln["95% CI"]["data-high"], r.ci_high)
        if not pd.isna(r.n):
            assert same(ln["ours"]["data-value"], r.ours)
            assert ln["ours"]["text"].startswith(f"{r.ours:.2f}")
            measured += not pd.isna(r.delta)
        if not pd.isna(r.delta):
            assert ln["delta"]["text"] == f"{r.delta:+.2f}"
            assert ln["match"]["text"] in ("yes", "no", "in CI", "no (no CI)")
        # the verdict's style: a miss (with or without an interval) is styled as one; no verdict is 'missing'
        styles = {"yes": "yes", "no": "no", "no (no CI)": "no", "in CI": "inci"}
        assert ln["match"]["class"] == styles.get(ln["match"]["text"], "missing"), ln["match"]
    assert measured  # the synthetic run measured cells that have a paper value
    text = path.read_text(encoding="utf-8")
    assert "Paper vs ours" in text and f'alt="{table.id}: ours vs the paper"' in text


# --------------------------------------------------------------------------------------------- browser
def _browser():
    """(chromium binary, chromedriver) or a skip with the reason."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(
            "no headless browser: install Debian's chromium and chromium-driver packages "
            "(apt-get install chromium chromium-driver)"
        )
    return binary, driver


def test_page_in_a_headless_browser(request):
    binary, driver_path = _browser()  # skips before the matrix run where no browser is installed
    matrix_out = request.getfixturevalue("matrix_out")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    page_path = matrix_out / "report.html"
    if not page_path.is_file():
        assert main(["report", str(matrix_out), "--html"]) == 0
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        drv.set_page_load_timeout(30)
        drv.get(page_path.resolve().as_uri())
        assert drv.execute_script("return document.readyState") == "complete"
        errors = [e for e in drv.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
        assert errors == []
        widths = drv.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert widths and all(done and w > 0 for done, w in widths)
        rows = _rows(matrix_out)
        table = drv.find_element(By.CSS_SELECTOR, 'table[data-title="Robust accuracy (%), threat: graybox"]')
        cells = {td.text.strip() for td in table.find_elements(By.TAG_NAME, "td")}
        assert {f"{100 * accuracy(r):.1f}" for r in rows} <= cells
    finally:
        drv.quit()


def test_a_paper_csv_without_the_threat_column_still_renders(tmp_path):
    """paper_outcomes accepts a paper CSV without the threat column (it is not among the required ones); the
    section renders from it, naming no threat as a subset, as with the column it renders every line."""
    import pandas as pd

    from defbench.reports.html import paper_html

    out = tmp_path / "paper"
    synthetic_store(out, [("mimicgan", "none", None, 0.8)])
    table = _paper_run(out)
    df = pd.read_csv(out / f"{table.id}.csv")
    df.loc[df.index[0], "n"] = 1  # one cell with fewer images than the rest: the subset note's case
    with_threat = paper_html(table.id, df, out)
    without = paper_html(table.id, df.drop(columns="threat"), out)
    assert without.count("<tr>") == with_threat.count("<tr>") == len(df) + 1


def test_a_display_cell_without_a_value_is_styled_missing_and_a_value_is_not():
    """frame_html: a cell showing "—" (not measured) or "n/a" (measured, undefined) carries class="missing"; a cell
    with a number carries no class."""
    import pandas as pd

    from defbench.reports.html import frame_html

    df = pd.DataFrame([["50.0", "—", "n/a"]], index=pd.Index(["PGD"], name="attack"), columns=["a", "b", "c"])
    page = frame_html(df, title="t")
    p = Page()
    p.feed(page)
    cells = p.tables["t"]
    assert "class" not in cells[("PGD", "a")] and cells[("PGD", "a")]["text"] == "50.0"
    assert cells[("PGD", "b")]["class"] == "missing" and cells[("PGD", "c")]["class"] == "missing", page


def test_verdict_styles_of_the_paper_table(tmp_path):
    """paper_html: each verdict's cell is styled by what it says: yes, in CI, no, and a miss with no interval to
    test ("no (no CI)") styled as a miss, not as a missing verdict; a cell without a paper value is 'missing'."""
    from defbench.harness.papers import TABLES, PaperRun
    from defbench.reports.html import paper_html
    from defbench.reports.paper import outcomes

    t = TABLES["mimicgan-fig5b"]
    rows = {c: {"labels": [1] * 4, "preds": [1, 1, 0, 0], "preds_undefended": [1, 0, 0, 0], "scores": [0.0] * 4,
                "extra": {"projection_error": [0.0] * 4}} for c in t.needed_cells((0,))}  # fmt: skip
    df = outcomes(PaperRun(t, "paper", 4, (0,), "cpu", "x", rows)).reset_index(drop=True)
    df["preset"], df["images_per_cell"], df["seeds"] = "paper", 4, "0"
    measured = df.index[df["paper"].notna() & df["delta"].notna()]
    i_yes, i_in, i_no, i_noci = measured[:4]
    df.loc[i_yes, ["paper", "ours", "delta"]] = [50.0, 50.0, 0.0]
    df.loc[i_in, ["paper", "delta", "ci_low", "ci_high"]] = [60.0, -10.0, 10.0, 90.0]
    df.loc[i_no, ["paper", "delta", "ci_low", "ci_high"]] = [95.0, -45.0, 10.0, 90.0]
    df.loc[i_noci, ["paper", "delta", "ci_low", "ci_high"]] = [95.0, -45.0, None, None]
    p = Page()
    p.feed(paper_html(t.id, df, tmp_path))
    cells = {(ln["row"]["text"], ln["column"]["text"]): ln["match"] for ln in p.lines[f"paper: {t.id}"]}
    want = {i_yes: ("yes", "yes"), i_in: ("in CI", "inci"), i_no: ("no", "no"), i_noci: ("no (no CI)", "no")}
    for i, (text, cls) in want.items():
        got = cells[(df.loc[i, "row"], df.loc[i, "column"])]
        assert (got["text"], got["class"]) == (text, cls), (i, got)
    unpapered = df.index[df["paper"].isna()][0]
    assert cells[(df.loc[unpapered, "row"], df.loc[unpapered, "column"])]["class"] == "missing"
