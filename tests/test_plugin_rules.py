"""The plugin rules of defbench/plugins.py not covered elsewhere (mutation audit, session 48): a third distribution
taking a name two already clash on is refused too, a warning is said once per plugin per process, the reason a
plugin was skipped is given whatever the case of the name asked for, built-ins list first, a name of blanks is no
name, and a plugin's import that calls sys.exit is skipped while Ctrl-C during it still stops the command. Each
refusal has its silent twin (a sound plugin beside it loads without a word)."""

from __future__ import annotations

import pytest
from conftest import write_distribution

from defbench import DefbenchError

SOURCE = """
import sys

from defbench.attacks import Attack


class Good(Attack):
    name = "{name}"

    def run(self, model, x, y):
        return x


class Blank(Attack):
    name = "   "

    def run(self, model, x, y):
        return x
"""


@pytest.fixture
def install(tmp_path, monkeypatch, capsys):
    """``install(dist, entries, module_source=None)``: a distribution of attack entry points {name: "Class"} on
    sys.path, each in a module of its own name (imports are cached per module name); warnings start afresh."""
    from defbench import plugins

    monkeypatch.setattr(plugins, "WARNED", set())
    count = [0]

    def make(dist: str, entries: dict[str, str], source: str | None = None, name: str = "good") -> str:
        count[0] += 1
        module = f"defbench_rules_{tmp_path.name.replace('-', '_')}_{count[0]}"
        eps = {n: f"{module}:{c}" for n, c in entries.items()}
        root = write_distribution(
            tmp_path / f"site{count[0]}",
            dist,
            "0.1",
            "defbench.attacks",
            eps,
            {module: source or SOURCE.format(name=name)},
        )
        monkeypatch.syspath_prepend(str(root))
        return module

    capsys.readouterr()
    return make


def test_a_third_distribution_taking_a_clashing_name_is_refused_too(install, capsys):
    """Two distributions taking 'tri' are both refused; a third one is not 'the' plugin of it either."""
    from defbench.attacks import registry

    for dist in ("one-attacks", "two-attacks", "three-attacks"):
        install(dist, {"tri": "Good"}, name="tri")
    assert "tri" not in registry.available()
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.count("both take the name 'tri'") == 2, err  # the 2nd and the 3rd
    with pytest.raises(DefbenchError, match="a plugin of that name was skipped: .*both take the name 'tri'"):
        registry.get_attack("tri")


def test_a_single_plugin_of_a_name_loads_silently(install, capsys):
    from defbench.attacks import registry

    install("solo-attacks", {"solo": "Good"}, name="solo")
    assert registry.get_attack("solo").name == "solo" and capsys.readouterr().err == ""


def test_a_refused_plugin_is_said_once_per_process(install, capsys):
    from defbench.attacks import registry

    install("blank-attacks", {"blank": "Blank"})
    for _ in range(3):
        registry.available()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "class Blank sets no name of its own" in err, err  # blanks are no name


def test_the_reason_a_plugin_was_skipped_is_given_for_any_case_of_its_name(install, capsys):
    """Attack names are looked up in lower case: 'MYATK' asks for the refused plugin 'MyAtk', and the error says
    why it was skipped (not only 'unknown attack')."""
    from defbench.attacks import registry

    install("mixed-attacks", {"MyAtk": "Good"}, name="MyAtk")
    for asked in ("MyAtk", "MYATK", "myatk"):
        with pytest.raises(DefbenchError, match="a plugin of that name was skipped: .*looked up in lower case"):
            registry.get_attack(asked)
    with pytest.raises(DefbenchError) as err:  # the silent twin: another unknown name gets no plugin's reason
        registry.get_attack("otheratk")
    assert "skipped" not in str(err.value)


def test_built_ins_list_first_then_the_plugins(install):
    from defbench.attacks import registry

    install("zz-attacks", {"aaa": "Good"}, name="aaa")  # sorts before every built-in
    names = list(registry.available())
    assert names[: len(registry.BUILTIN)] == list(registry.BUILTIN) and names[-1] == "aaa"


def test_a_plugin_whose_import_calls_sys_exit_is_skipped(install, capsys):
    """SystemExit is no Exception: a plugin calling sys.exit at import ended every defbench command."""
    from defbench.attacks import registry

    install("exiting-attacks", {"bye": "Good"}, source="import sys\nsys.exit(3)\n")
    assert "bye" not in registry.available() and registry.get_attack("fgsm").name == "fgsm"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped attack plugin 'bye'" in err and "SystemExit" in err


def test_ctrl_c_during_a_plugin_s_import_stops_the_command(install):
    from defbench.attacks import registry

    install("slow-attacks", {"slow": "Good"}, source="raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        registry.available()


def test_distribution_of_a_plugin_class_and_of_a_built_in(install):
    """The module-level distribution_of (the attack base class asks it) names a plugin's distribution and version;
    None for a built-in."""
    import importlib

    from defbench import plugins
    from defbench.attacks import registry

    module = install("dist-attacks", {"distatk": "Good"}, name="distatk")
    cls = importlib.import_module(module).Good  # imported by the caller, before any registry lookup
    assert plugins.distribution_of(cls) == ("dist-attacks", "0.1")
    assert plugins.distribution_of(registry.BUILTIN["pgd"]) is None


def test_a_reason_is_forgotten_once_its_plugin_is_gone(install, monkeypatch):
    """A long-lived process (a notebook) whose refused plugin was uninstalled: the name is then plain unknown, not
    'skipped' for a reason that no longer holds."""
    import sys

    from defbench.attacks import registry

    install("blank-attacks", {"gone": "Blank"})
    with pytest.raises(DefbenchError, match="a plugin of that name was skipped"):
        registry.get_attack("gone")
    monkeypatch.setattr("sys.path", sys.path[1:])  # the distribution's folder (prepended last) is uninstalled
    with pytest.raises(DefbenchError) as err:
        registry.get_attack("gone")
    assert "unknown attack 'gone'; choose one of" in str(err.value) and "skipped" not in str(err.value)
