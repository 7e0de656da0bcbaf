"""The package reads top-down (issue 17, item 3): a small core (errors, plugin rules, dataset names and image
types, seeds and devices, metrics) imports nothing above it; classifiers, defenses and attacks import only the core
(and their own package); the harness (data, zoo, runner, store) orchestrates them; reports read stores; the Python
API uses them all, and the CLI sits on top, imported by nothing but ``python -m defbench``. No import cycle exists
among defbench's modules, counting the imports inside functions too, and no defbench import hides inside a function
(they were there only to break cycles).

The graph is read from the source with ``ast`` (every ``import`` / ``from ... import``, module level or not;
importing ``a.b.c`` also runs the packages ``a.b`` and ``a`` unless the importer is inside them). The checks run on
a synthetic graph too, so a cycle or an upward import is shown to fail them."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]

#: the layers, lowest first; a module belongs to the first layer one of whose prefixes it starts with
LAYERS = (
    ("core", ("defbench", "defbench.plugins", "defbench.datasets", "defbench.seeding", "defbench.metrics")),
    ("components", ("defbench.classifiers", "defbench.defenses", "defbench.attacks")),
    ("harness", ("defbench.harness",)),
    ("reports", ("defbench.reports",)),
    ("api", ("defbench.api",)),
    ("cli", ("defbench.cli", "defbench.__main__")),
)
#: function-level defbench imports that stay, each with its reason
ALLOWED_LATE = {
    ("defbench", "defbench.api"): "the root's PEP 562 __getattr__: defbench.evaluate without importing torch on "
    "'import defbench'",
    **{
        ("defbench.cli", f"defbench.cli.{m}"): "the commands, imported when the parser is built: `defbench --version` "
        "answers without torch"
        for m in ("listing", "matrix", "paper", "results", "train")
    },
    **{
        ("defbench.cli", m): "the store's OS-error wording, imported on that error's path only (see above)"
        for m in ("defbench.harness", "defbench.harness.store")
    },
}


def modules() -> dict[str, Path]:
    """Every defbench module, by name, from pyproject's package-dir mapping and packages list (a package such as
    ``defbench.cli`` lives in its parent's folder)."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = dict(cfg["package-dir"])
    for pkg in cfg["packages"]:
        if pkg not in dirs:
            parent, _, name = pkg.rpartition(".")
            dirs[pkg] = f"{dirs[parent]}/{name}"
    out = {}
    for pkg, d in dirs.items():
        for f in sorted((REPO / d).glob("*.py")):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


def _targets(module: str, node: ast.AST, known: set[str], is_pkg: bool) -> set[str]:
    """The defbench modules an import statement in ``module`` loads (a name imported from a package counts as
    its submodule when there is one)."""
    if isinstance(node, ast.Import):
        names = [(a.name, []) for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importer's package
            parts = module.split(".") if is_pkg else module.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        names = [(base, [a.name for a in node.names])]
    out = set()
    for mod, attrs in names:
        if mod in known:
            out.add(mod)
        out.update(f"{mod}.{a}" for a in attrs if f"{mod}.{a}" in known)
    return out


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level edges, function-level edges) among defbench modules."""
    mods = modules()
    known = set(mods)
    top: dict[str, set[str]] = {m: set() for m in mods}
    late: dict[str, set[str]] = {m: set() for m in mods}

    def visit(name: str, node: ast.AST, in_function: bool, is_pkg: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (late if in_function else top)[name].update(_targets(name, child, known, is_pkg))
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(name, child, inner, is_pkg)

    for name, path in mods.items():
        visit(name, ast.parse(path.read_text()), False, path.stem == "__init__")
    for graph in (top, late):
        for name in graph:
            graph[name] = with_packages(name, graph[name], known)
    return top, late


def with_packages(importer: str, targets: set[str], known: set[str]) -> set[str]:
    """Importing ``a.b.c`` runs ``a.b/__init__`` and ``a/__init__`` first, unless the importer is inside them."""
    out = set()
    for t in targets:
        parts = t.split(".")
        for i in range(1, len(parts) + 1):
            p = ".".join(parts[:i])
            if p in known and not (importer == p or importer.startswith(p + ".")):
                out.add(p)
    out.discard(importer)
    return out


def layer_of(module: str) -> tuple[int, str]:
    """(rank, prefix) of the most specific layer prefix ``module`` falls under."""
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (rank, p)
    assert best is not None, f"{module} is in no layer; add it to LAYERS"
    return best


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = dfs(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = dfs(n)
            if found:
                return found
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Edges that go up a layer, or from one component package (classifiers, defenses, attacks) into another."""
    bad = []
    for a, targets in sorted(graph.items()):
        ra, pa = layer_of(a)
        for b in sorted(targets):
            rb, pb = layer_of(b)
            if rb > ra:
                bad.append(f"{a} ({LAYERS[ra][0]}) imports {b} ({LAYERS[rb][0]})")
            elif ra == rb and LAYERS[ra][0] == "components" and pa != pb:
                bad.append(f"{a} imports {b}: components depend on the core only")
    return bad


def merged(*graphs: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for g in graphs:
        for a, targets in g.items():
            out.setdefault(a, set()).update(targets)
    return out


# ------------------------------------------------------------------------------------------------ the package
def test_the_graph_is_read():
    """The reader sees the imports it must (a check that the checks below look at something)."""
    top, late = import_graph()
    assert len(top) > 40
    assert "defbench.harness.store" in top["defbench.harness.matrix"]
    assert "defbench.classifiers" in top["defbench.harness.matrix"]  # the package of classifiers.registry
    assert "defbench.reports.common" in top["defbench.reports.tables"]  # a relative import
    assert "defbench.api" in late["defbench"]
    assert {"defbench.cli.matrix", "defbench.cli.paper"} <= late["defbench.cli"]  # the CLI's, when it parses


def test_the_cli_is_the_top_layer():
    """Nothing outside the CLI imports it (not the API, not the harness), and the harness holds no CLI code:
    no module below the CLI imports argparse."""
    top, late = import_graph()
    graph = merged(top, late)
    cli = {m for m in graph if m == "defbench.cli" or m.startswith("defbench.cli.")}
    users = {a for a, bs in graph.items() if bs & cli and a not in cli}
    assert users <= {"defbench.__main__"}, sorted(users)
    for name, path in modules().items():
        if layer_of(name)[0] < len(LAYERS) - 1:
            tree = ast.parse(path.read_text())
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert "argparse" not in names, f"{name} imports argparse: command-line code belongs in defbench.cli"


def test_no_import_cycle():
    top, late = import_graph()
    allowed = {a: {b for b in bs if (a, b) not in ALLOWED_LATE} for a, bs in late.items()}
    cycle = find_cycle(merged(top, allowed))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_import_downwards_only():
    top, late = import_graph()
    allowed = {a: {b for b in bs if (a, b) not in ALLOWED_LATE} for a, bs in late.items()}
    assert layer_violations(merged(top, allowed)) == []


def test_no_defbench_import_inside_functions():
    """Imports inside functions were there to break cycles; only the listed ones (with a reason) remain.
    Optional heavy dependencies (ray, foolbox, ART, playwright) are not defbench modules and are not counted."""
    _, late = import_graph()
    found = {(a, b) for a, bs in late.items() for b in bs}
    assert found == set(ALLOWED_LATE), sorted(found - set(ALLOWED_LATE))


def test_reports_read_specs_not_the_runner():
    """Reports read stores and the paper specs (schema and data), not the paper runner."""
    top, late = import_graph()
    for name in top:
        if name.startswith("defbench.reports"):
            assert "defbench.harness.papers" not in top[name] | late[name], name
    assert "defbench.harness.paper_spec" in top["defbench.reports.paper"]


# ------------------------------------------------------------------------------------------------ the checks fail
def test_checks_fail_on_a_synthetic_graph():
    cyclic = {"defbench.harness.a": {"defbench.harness.b"}, "defbench.harness.b": {"defbench.harness.a"}}
    assert find_cycle(cyclic) == ["defbench.harness.a", "defbench.harness.b", "defbench.harness.a"]
    assert find_cycle({"defbench.harness.a": {"defbench.harness.b"}, "defbench.harness.b": set()}) is None
    upward = {
        "defbench.defenses.registry": {"defbench.harness.models", "defbench.datasets"},
        "defbench.attacks.threats": {"defbench.defenses.base"},
        "defbench.harness.store": {"defbench.reports.tables"},
        "defbench.reports.html": {"defbench.harness.papers"},  # downwards: fine
        "defbench.datasets": {"defbench.cli"},
    }
    assert layer_violations(upward) == [
        "defbench.attacks.threats imports defbench.defenses.base: components depend on the core only",
        "defbench.datasets (core) imports defbench.cli (cli)",
        "defbench.defenses.registry (components) imports defbench.harness.models (harness)",
        "defbench.harness.store (harness) imports defbench.reports.tables (reports)",
    ]
    assert layer_of("defbench.cli.matrix")[0] == 5 and layer_of("defbench.harness.zoo")[0] == 2
    assert layer_violations({"defbench.api": {"defbench.cli.options"}}) == [
        "defbench.api (api) imports defbench.cli.options (cli)"
    ]


def test_the_reader_sees_late_and_relative_imports(tmp_path):
    src = "from .common import x\n\ndef f():\n    from defbench.harness import zoo\n    import defbench.cli\n"
    tree = ast.parse(src)
    known = {"defbench.reports.common", "defbench.harness", "defbench.harness.zoo", "defbench.cli", "defbench"}
    stmts = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    got = [_targets("defbench.reports.html", n, known, False) for n in stmts]
    assert got == [{"defbench.reports.common"}, {"defbench.harness", "defbench.harness.zoo"}, {"defbench.cli"}]
    assert with_packages("defbench.reports.html", {"defbench.harness.zoo"}, known) == {
        "defbench.harness",
        "defbench.harness.zoo",
    }
