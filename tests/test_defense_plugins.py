"""Defense plugins (entry-point group ``defbench.defenses``): found, run in a matrix like a built-in, part of the
cell key with their distribution and version, refused by the same rules as attack plugins, and a crashing one
fails only its own cells."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
import torch

from conftest import write_distribution
from defbench import DefbenchError
from defbench.cli import main

SOURCE = """
import torch
from defbench.defenses import Defense


class Blur(Defense):
    '''3x3 box blur mixed with the input: deterministic.'''

    name = "boxblur"

    def __init__(self, shape=None, seed=0, mix=1.0, device="cpu"):
        super().__init__(shape, seed)
        self.mix = float(mix)

    def config(self):
        return {"mix": self.mix}

    def _purify(self, x, seed):
        k = torch.ones(x.shape[1], 1, 3, 3, device=x.device) / 9
        y = torch.nn.functional.conv2d(x, k, padding=1, groups=x.shape[1])
        return self.mix * y + (1 - self.mix) * x


class QuietBlur(Defense):
    '''A k x k box blur whose config() does not name k (Defense's default config()).'''

    name = "quietblur"

    def __init__(self, shape=None, seed=0, k=1, device="cpu"):
        super().__init__(shape, seed)
        self.k = int(k)

    def _purify(self, x, seed):
        return torch.nn.functional.avg_pool2d(x, self.k, stride=1, padding=self.k // 2)


class Jitter(Defense):
    '''Uniform noise from the call's seed: randomized.'''

    name = "jitter"
    randomized = True

    def _purify(self, x, seed):
        g = torch.Generator().manual_seed(seed)
        return x + 0.05 * (torch.rand(x.shape, generator=g) - 0.5).to(x.device)


class Crash(Defense):
    name = "crash"

    def _purify(self, x, seed):
        raise RuntimeError("kernel size larger than the image")


class Nameless(Defense):
    def _purify(self, x, seed):
        return x


class ShadowsMedian(Defense):
    name = "median"

    def _purify(self, x, seed):
        return x


class ShadowsMedianCase(Defense):
    name = "Median"

    def _purify(self, x, seed):
        return x


class ShadowsTvm(Defense):
    name = "tv"

    def _purify(self, x, seed):
        return x


class NotADefense:
    name = "notadefense"
"""


def install(monkeypatch, tmp_path, entries: dict[str, str], dist="my-defenses", version="0.1", sub="site"):
    root = write_distribution(tmp_path / sub, dist, version, "defbench.defenses", entries, {"my_defenses": SOURCE})
    monkeypatch.syspath_prepend(str(root))
    return root


def test_plugin_defense_is_listed_built_and_keyed(monkeypatch, tmp_path, capsys):
    from defbench.defenses import registry

    install(monkeypatch, tmp_path, {"boxblur": "my_defenses:Blur", "jitter": "my_defenses:Jitter"})
    assert registry.available()[-2:] == ("boxblur", "jitter")
    d = registry.build_defense("boxblur", "fmnist", overrides={"mix": 0.5})
    assert d.config() == {"mix": 0.5} and registry.distribution_of(d) == ("my-defenses", "0.1")
    x = torch.rand(2, 1, 28, 28)
    assert not torch.equal(d.purify(x), x)
    assert registry.check_name("boxblur[mix=0.25]") == "boxblur[mix=0.25]"
    with pytest.raises(DefbenchError, match=r"unknown option\(s\) sigma for defense plugin 'boxblur' "):
        registry.build_defense("boxblur", "fmnist", overrides={"sigma": 1})
    assert main(["defense", "list"]) == 0
    out = capsys.readouterr().out
    assert "mimicgan\tbuilt-in" in out and "boxblur\tplugin: my-defenses 0.1" in out


def test_plugin_defense_runs_in_a_matrix_like_a_builtin(tiny_zoo, monkeypatch, tmp_path, capsys):
    """In --defense, the tables and the store; a new plugin version is a new cell; randomness is declared."""
    install(monkeypatch, tmp_path, {"boxblur": "my_defenses:Blur", "jitter": "my_defenses:Jitter"})
    out = tmp_path / "o"
    args = ["matrix", "--defense", "boxblur,jitter", "--attacks", "fgsm", "--n", "8", "--batch-size", "8"]
    args += ["--preset", "quick", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "boxblur" in text.split("threat: graybox")[1] and "jitter" in text
    with sqlite3.connect(out / "defbench.sqlite") as c:
        rows = c.execute("SELECT defense, defense_config FROM cells WHERE defense IN ('boxblur','jitter')").fetchall()
    assert len(rows) == 4
    assert all('"distribution": "my-defenses"' in cfg and '"version": "0.1"' in cfg for _, cfg in rows)
    # the same plugin, released as 0.2: its cells are computed again, the built-in 'none' cells are reused
    install(monkeypatch, tmp_path, {"boxblur": "my_defenses:Blur"}, version="0.2", sub="site2")
    monkeypatch.syspath_prepend(str(tmp_path / "site2"))
    assert main(args[:2] + ["boxblur"] + args[3:]) == 0
    assert "2 cells computed, 2 reused" in capsys.readouterr().out


def test_defense_opt_values_of_a_plugin_are_in_its_cells_key(tiny_zoo, monkeypatch, tmp_path, capsys):
    """A plugin whose config() does not name an option set by --defense-opt: k=1 then k=3 into one store reused
    k=1's cells (computed 0), now computes them anew; the same k again reuses them."""
    install(monkeypatch, tmp_path, {"quietblur": "my_defenses:QuietBlur"})
    out = tmp_path / "o"
    args = ["matrix", "--defense", "quietblur", "--attacks", "fgsm", "--n", "4", "--batch-size", "4"]
    args += ["--preset", "quick", "--no-progress", "--out", str(out)]
    assert main([*args, "--defense-opt", "k=1"]) == 0
    capsys.readouterr()
    assert main([*args, "--defense-opt", "k=3"]) == 0
    assert "2 cells computed, 2 reused" in capsys.readouterr().out  # quietblur's two cells; none's two reused
    assert main([*args, "--defense-opt", "k=3"]) == 0
    assert "0 cells computed, 4 reused" in capsys.readouterr().out
    with sqlite3.connect(out / "defbench.sqlite") as c:
        cfgs = [json.loads(r[0]) for r in c.execute("SELECT defense_config FROM cells WHERE defense='quietblur'")]
    assert sorted(cfg["options"]["k"] for cfg in cfgs) == [1, 1, 3, 3]


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"nameless": "my_defenses:Nameless"}, "class Nameless sets no name of its own"),
        ({"median": "my_defenses:ShadowsMedian"}, "takes the name of the built-in defense 'median'"),
        # names a lookup resolves to a built-in (case, aliases): the built-in ran, silently
        ({"Median": "my_defenses:ShadowsMedianCase"}, "a lookup of 'Median' finds the built-in"),
        ({"tv": "my_defenses:ShadowsTvm"}, "built-in defense 'tvm' of distribution defbench .a lookup of 'tv' finds"),
        ({"notadefense": "my_defenses:NotADefense"}, "is not a defbench.defenses.Defense subclass"),
        ({"blur": "my_defenses:Blur"}, "is named 'boxblur', the entry point 'blur'; they must match"),
    ],
)
def test_broken_defense_plugins_are_skipped(entries, message, monkeypatch, tmp_path, capsys):
    """A refused plugin made every listing and run fail, the built-ins' too; it is skipped with one warning
    line giving the reason, the built-ins list and build as before, and its name (where no built-in answers to
    it) is an error with the same reason."""
    from defbench import plugins
    from defbench.defenses import registry

    install(monkeypatch, tmp_path, entries)
    monkeypatch.setattr(plugins, "WARNED", set())
    capsys.readouterr()
    assert registry.available() == tuple(registry.DEFENSES)
    warning = capsys.readouterr().err
    assert re.search(message, warning) and "distribution my-defenses 0.1" in warning and warning.count("\n") == 1
    assert warning.startswith("defbench: warning: skipped defense plugin")
    assert main(["defense", "list"]) == 0
    (name,) = entries
    if registry._alias_key(name) in registry.DEFENSES:  # the built-in answers to that name
        assert registry.check_name(name) == registry._alias_key(name)
    else:
        with pytest.raises(
            DefbenchError, match=f"unknown defense {name!r}; a plugin of that name was skipped: .*" + message
        ) as err:
            registry.check_name(name)
        assert "\n" not in str(err.value)


def test_two_defense_plugins_with_one_name_are_both_skipped(monkeypatch, tmp_path, capsys):
    from defbench import plugins
    from defbench.defenses import registry

    install(monkeypatch, tmp_path, {"boxblur": "my_defenses:Blur"})
    install(monkeypatch, tmp_path, {"boxblur": "my_defenses:Blur"}, dist="other-defenses", sub="site2")
    monkeypatch.setattr(plugins, "WARNED", set())
    assert registry.available() == tuple(registry.DEFENSES)
    with pytest.raises(DefbenchError, match="both take the name 'boxblur'") as err:
        registry.check_name("boxblur")
    assert "my-defenses 0.1" in str(err.value) and "other-defenses 0.1" in str(err.value)


def test_defense_plugin_that_fails_to_import_is_skipped(monkeypatch, tmp_path, capsys):
    from defbench import plugins
    from defbench.defenses import registry

    monkeypatch.setattr(plugins, "WARNED", set())
    root = write_distribution(
        tmp_path / "site", "broken-defenses", "0.3", "defbench.defenses", {"brk": "brk_mod:X"}, {"brk_mod": "1/0\n"}
    )
    monkeypatch.syspath_prepend(str(root))
    assert registry.check_name("median") == "median" and "brk" not in registry.available()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped defense plugin 'brk'" in err and "ZeroDivisionError" in err


def test_defense_plugin_that_imports_is_loaded_silently(monkeypatch, tmp_path, capsys):
    """The import warning's sound case: a plugin that imports is listed and nothing is said on stderr."""
    from defbench import plugins
    from defbench.defenses import registry

    monkeypatch.setattr(plugins, "WARNED", set())
    install(monkeypatch, tmp_path, {"boxblur": "my_defenses:Blur"})
    capsys.readouterr()
    assert "boxblur" in registry.available() and registry.check_name("median") == "median"
    assert capsys.readouterr().err == "" and plugins.WARNED == set()


def test_crashing_defense_plugin_fails_only_its_cells(tiny_zoo, monkeypatch, tmp_path, capsys):
    install(monkeypatch, tmp_path, {"crash": "my_defenses:Crash"})
    out = tmp_path / "o"
    args = ["matrix", "--defense", "crash", "--attacks", "fgsm", "--n", "8", "--batch-size", "8", "--preset"]
    rc = main(args + ["quick", "--no-progress", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 1, cap.err
    assert "defense plugin 'crash' of distribution my-defenses 0.1 crashed: RuntimeError: kernel size" in cap.err
    with sqlite3.connect(out / "defbench.sqlite") as c:
        assert c.execute("SELECT COUNT(*) FROM cells WHERE defense='none'").fetchone()[0] == 2  # the others go on
        assert c.execute("SELECT COUNT(*) FROM cells WHERE defense='crash'").fetchone()[0] == 0


def test_a_plugin_whose_constructor_fails_is_a_one_line_error_naming_its_distribution(monkeypatch, tmp_path):
    """The registry hands a plugin the dataset's shape and the seed; an option its constructor chokes on is a
    DefbenchError naming the plugin and its distribution, not the constructor's ValueError."""
    from defbench.defenses import registry

    install(monkeypatch, tmp_path, {"boxblur": "my_defenses:Blur"})
    d = registry.build_defense("boxblur", "cifar10", overrides={"mix": 0.5}, seed=4)
    assert (d.shape, d.seed, d.mix) == ((3, 32, 32), 4, 0.5)
    with pytest.raises(DefbenchError) as err:
        registry.build_defense("boxblur", "fmnist", overrides={"mix": "abc"})
    msg = str(err.value)
    assert msg.startswith("defense plugin 'boxblur' (distribution my-defenses 0.1) failed to build: ValueError: "), msg
    assert "'abc'" in msg and "\n" not in msg
