"""defbench.evaluate: a user's classifier and defense through the matrix runner, checked against independent
computations; resumable stores; identities from weights and code; clear errors; the docs' example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import defbench
from defbench import DefbenchError
from defbench.defenses import Defense


class Plain(nn.Module):
    """A user's model without features/head: wraps the tiny test classifier's forward only."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


@pytest.fixture(scope="module")
def clf(tiny_classifier):
    return tiny_classifier[0].eval()


def box_blur(x):
    k = torch.ones(1, 1, 3, 3) / 9
    return nn.functional.conv2d(x, k, padding=1)


def test_rows_match_an_independent_computation(clf, fmnist, tmp_path):
    """Gray-box FGSM: the API's accuracy equals FGSM (torchattacks, through get_attack) + the user's purify +
    the user's model run by hand on the same seeded images; an identity callable equals no defense."""
    from defbench.attacks import get_attack

    model = Plain(clf)
    df = defbench.evaluate(
        model, [box_blur, lambda x: x], dataset="fmnist", attacks=["fgsm"], eps=[0.05, 0.1], n=40,
        batch_size=20, device="cpu", store=str(tmp_path / "s"),
    )  # fmt: skip
    assert set(df["defense"]) == {"none", "user:box_blur", "user:<lambda>"}
    assert len(df) == 3 * 3  # clean + 2 eps per defense
    _, test = fmnist
    idx = test.eval_indices(40, 0)
    x, y = test.get(idx)
    for eps in (0.05, 0.1):
        atk = get_attack("fgsm", "fmnist", eps)
        x_adv = torch.cat([atk(model, x[i : i + 20], y[i : i + 20]) for i in (0, 20)])
        with torch.no_grad():
            want_blur = (model(box_blur(x_adv)).argmax(1) == y).float().mean().item()
            want_none = (model(x_adv).argmax(1) == y).float().mean().item()
        got = df[(df["eps"] == eps) & (df["threat"] == "graybox")].set_index("defense")["accuracy"]
        assert got["user:box_blur"] == pytest.approx(want_blur)
        assert got["none"] == pytest.approx(want_none) and got["user:<lambda>"] == pytest.approx(want_none)
    assert df["attack_label"].str.contains("FGSM").sum() == 6
    assert list(df[df["attack"] == "clean"]["labels"].iloc[0]) == y.tolist()


def test_store_resumes_and_identities_differ(clf, tmp_path, monkeypatch):
    from defbench.harness.matrix import MatrixRunner

    model = Plain(clf)
    kw = dict(dataset="fmnist", attacks=["fgsm"], n=20, batch_size=20, device="cpu", store=str(tmp_path / "s"))
    first = defbench.evaluate(model, box_blur, **kw)
    calls = []
    real = MatrixRunner.compute_cell
    monkeypatch.setattr(MatrixRunner, "compute_cell", lambda self, c: calls.append(c) or real(self, c))
    again = defbench.evaluate(model, box_blur, **kw)
    assert calls == [] and sorted(again["key"]) == sorted(first["key"])  # every cell reused
    # other weights: new cells for every defense; another function body under the same name: new defense cells
    other = Plain(_perturbed(clf))
    defbench.evaluate(other, box_blur, **kw)
    assert len(calls) == 4

    def box_blur_2(x):  # noqa: E306
        return box_blur(x).clamp(0.1, 0.9)

    box_blur_2.__name__ = "box_blur"
    calls.clear()
    res = defbench.evaluate(model, box_blur_2, **kw)
    assert len(calls) == 2 and {c.defense for c in calls} == {"user:box_blur"}
    assert set(res["key"]) != set(first["key"])


def _perturbed(model):
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        next(m.parameters()).add_(1e-3)
    return m


def test_defense_object_and_registered_name(clf, tmp_path):
    """A Defense subclass instance declared randomized gets EOT under BPDA; a registered name builds as usual."""
    from defbench.defenses import Defense

    class Noise(Defense):
        name = "noise"
        randomized = True

        def __init__(self):
            super().__init__(None, 0)
            self.scale = nn.Parameter(torch.tensor(0.02), requires_grad=False)

        def _purify(self, x, seed):
            g = torch.Generator().manual_seed(seed)
            return x + self.scale * torch.randn(x.shape, generator=g)

    df = defbench.evaluate(
        clf, [Noise(), "median"], dataset="fmnist", attacks=["fgsm"], threats=["bpda"],
        n=10, batch_size=10, eot=3, device="cpu", baseline=False, preset="quick",
    )  # fmt: skip
    bpda = df[df["threat"] == "bpda"].set_index("defense")
    assert bpda.loc["user:noise", "attack_config"]["eot"] == 3 and bpda.loc["median", "attack_config"]["eot"] == 1
    assert "attr:scale" not in str(bpda.loc["user:noise", "defense_config"])  # a Parameter, not a Module
    assert df["accuracy"].between(0, 1).all() and set(df["defense"]) == {"user:noise", "median"}


def _fgsm():
    from defbench.attacks import get_attack

    return get_attack("fgsm", "fmnist", 0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(classifier=lambda x: x), "classifier must be a torch.nn.Module"),
        (dict(defense=3), "defense must be a name, a Defense or a callable"),
        (dict(defense="magnet"), "unknown defense 'magnet'"),
        (dict(attacks=["jsma"]), "unknown attack 'jsma'"),
        (dict(dataset="svhn"), "unknown dataset 'svhn'"),
        (dict(defense=None, baseline=False), "no defense to evaluate"),
        # a str is one name (it was iterated: "unknown attack 'j'"); attack names in any case; preset and seeds
        (dict(attacks="jsma"), "unknown attack 'jsma'"),
        (dict(threats="blackbox"), "unknown threat model 'blackbox'"),
        (dict(attacks=["PGD"], attack_params={"pgd": {"steps": -1}}), "steps must be a whole number >= 1"),
        (dict(preset="fast"), "unknown preset 'fast'"),
        (dict(seeds=0), "seeds must be a count >= 1 or distinct seeds"),
        (dict(seeds=[]), "seeds must be a count >= 1 or distinct seeds"),
        (dict(seeds=[0, 0]), "seeds must be a count >= 1 or distinct seeds"),
        # an attack object, an ε of the wrong kind (a raw TypeError before), values the run would ignore
        (dict(attacks=[_fgsm()]), "attacks takes attack names, got a FGSM"),
        (dict(eps="0.1"), "eps must be a number or a sequence of numbers, got str"),
        (dict(eps=[0.1, "x"]), "got 'x' in it"),
        (dict(eps=[]), "eps is empty"),
        (dict(eot=3), "eot=3: EOT averages BPDA gradients and this run has no bpda threat (graybox)"),
        (dict(attacks=["deepfool"], eps=0.1), "eps=0.1: none of this run's attacks (deepfool) takes an ε"),
        (dict(attacks=["myatk"], eps=0.1), "unknown attack 'myatk'"),  # the name first, not "no ε budget"
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message, clf):
    args = dict(classifier=clf, defense=box_blur, dataset="fmnist", attacks=["fgsm"], n=5, device="cpu")
    args.update(kwargs)
    with pytest.raises(DefbenchError, match=re.escape(message)):
        defbench.evaluate(args.pop("classifier"), args.pop("defense"), **args)


def test_eps_takes_numbers_arrays_and_tensors_of_any_rank():
    """0-d arrays and tensors were refused ('got array(0.1) in it') or raised a TypeError after the ε parsing
    was rewritten; every numeric form is one or more εs again, and a non-number is still refused."""
    import numpy as np

    from defbench.api import _eps_list

    for eps in (0.1, np.float32(0.1), np.array(0.1), torch.tensor(0.1), [np.array(0.1)], (torch.tensor(0.1),)):
        assert _eps_list(eps) == [pytest.approx(0.1)], eps
    assert _eps_list(torch.tensor([0.05, 0.1])) == [pytest.approx(0.05), pytest.approx(0.1)]
    assert _eps_list(np.array([0.05, 0.1])) == [0.05, 0.1] and _eps_list(None) == [None]
    # a float32 (or float16) budget is the decimal the caller wrote, not 0.10000000149011612: the same cell key and
    # table label as eps=0.1
    f32 = (np.float32(0.1), torch.tensor(0.1), np.array(0.1, dtype=np.float32), [torch.tensor(0.1)], np.float16(0.1))
    for eps in f32:
        assert _eps_list(eps) == [0.1], eps
    assert _eps_list(torch.tensor([0.05, 0.1])) == [0.05, 0.1] and _eps_list(np.float32([0.3])) == [0.3]
    assert _eps_list(torch.tensor([0.1], dtype=torch.float64)) == [0.1]
    with pytest.raises(DefbenchError, match="got True in it"):
        _eps_list([True])


def test_eps_as_numpy_and_the_caller_s_random_draws_go_on(clf):
    """The silent twins of the refusals above (an ε array, a numpy number, eot with bpda are accepted), and a
    caller's global generators: evaluate() seeded them per cell and left them there, so a script's draws after it
    depended on the run; Python's, numpy's and torch's now go on from where they were."""
    import random

    import numpy as np

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    want = [draws() for _ in range(2)]
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    got = [draws()]
    df = defbench.evaluate(
        clf, box_blur, dataset="fmnist", attacks=["fgsm", "deepfool"], eps=np.array([0.05, 0.1]), n=5,
        batch_size=5, device="cpu", baseline=False,
    )  # fmt: skip
    got.append(draws())
    assert got == want
    assert sorted(df["eps"].dropna()) == [0.05, 0.1] and (df["attack"] == "deepfool").sum() == 1
    one = defbench.evaluate(
        clf, box_blur, dataset="fmnist", attacks=["fgsm"], threats=["graybox", "BPDA"], eps=np.float64(0.1),
        eot=2, n=5, batch_size=5, device="cpu", baseline=False,
    )  # fmt: skip
    assert sorted(one["eps"].dropna()) == [0.1, 0.1]


def test_randomized_callable_must_take_a_seed():
    with pytest.raises(DefbenchError, match="randomized=True needs a purify"):
        defbench.CallableDefense(box_blur, randomized=True)


def test_the_docs_example_runs(tmp_path, monkeypatch):
    """The Python block of docs/API.md (also in the README) runs as written, with n shrunk to keep CI short."""
    doc = (Path(__file__).parents[1] / "docs" / "API.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert code.strip() in readme, "README's API example differs from docs/API.md's"
    monkeypatch.chdir(tmp_path)
    code = code.replace("n=100", "n=20")
    ns: dict = {}
    exec(compile(code, "docs/API.md", "exec"), ns)
    df = ns["df"]
    assert set(df["defense"]) == {"none", "user:binarize", "median"}
    assert len(df) == 3 + 2 * 2 * (3 + 2)  # clean per defense; 2 attacks x 2 eps x (3 gray-box + 2 BPDA)
    clean = df[df["attack"] == "clean"].set_index("defense")["accuracy"]
    assert clean["none"] > 0.5  # the example's model learned something
    assert (tmp_path / "runs" / "api-example" / "defbench.sqlite").is_file()


class Normalising(nn.Module):
    """features/head submodules, and a forward that normalises first: attacked as forward, but the harness would
    score head(features(x)) on unnormalised inputs."""

    def __init__(self, inner):
        super().__init__()
        self.features, self.head = inner.features, inner.head

    def forward(self, x):
        return self.head(self.features((x - 0.5) / 0.5))


class Broken(nn.Module):
    def __init__(self, inner, out):
        super().__init__()
        self.inner, self.out = inner, out

    def forward(self, x):
        return self.out(self.inner(x))


@pytest.mark.parametrize(
    "make, message",
    [
        (Normalising, "head(features(x)) is not forward(x)"),
        (lambda c: Broken(c, lambda z: z * torch.nan), "with non-finite values"),
        (lambda c: Broken(c, lambda z: (z, z)), "it returned tuple"),
        (lambda c: Broken(c, lambda z: z[:, :5]), "it returned (2, 5)"),
        (lambda c: Broken(c, lambda z: z.view(3, -1)), "fails on two fmnist images"),
    ],
)
def test_a_classifier_that_would_be_scored_wrongly_is_refused(make, message, clf, tmp_path):
    """A user's module is probed as a plugin classifier is: finite (N, 10) logits, and what the harness scores is
    what the attacks differentiate (found by the API audit: the normalising model's clean accuracy read 0.25 where
    its forward gives 0.75)."""
    import copy

    with pytest.raises(DefbenchError, match=re.escape(message)):
        defbench.evaluate(
            make(copy.deepcopy(clf)), box_blur, dataset="fmnist", attacks=["fgsm"], n=4, store=str(tmp_path)
        )


def test_a_defense_s_modules_run_in_eval_mode(clf, tmp_path):
    """A user's Defense holding a BatchNorm left in train mode normalised by batch statistics and rewrote its
    running statistics on every call, so its results depended on the batch and its key (its weights) changed
    between runs (found by the API audit); it runs in eval mode, as the classifier does, and a rerun reuses."""
    from defbench.harness.store import Store

    bn = nn.BatchNorm2d(1).train()
    with torch.no_grad():
        bn.running_mean.fill_(0.1)
    before = {k: v.clone() for k, v in bn.state_dict().items()}

    from defbench.defenses.base import Defense

    class Normed(Defense):
        name = "normed"

        def __init__(self):
            super().__init__((1, 28, 28), 0)
            self.bn = bn

        def _purify(self, x, seed):
            return self.bn(x)

    purify = Normed()

    kw = dict(dataset="fmnist", attacks=["fgsm"], n=4, batch_size=4, preset="quick", store=str(tmp_path))
    defbench.evaluate(clf, purify, **kw)
    assert not bn.training
    assert all(torch.equal(v, before[k]) for k, v in bn.state_dict().items())
    s = Store(tmp_path)
    n = s.count()
    s.close()
    defbench.evaluate(clf, purify, **kw)
    s = Store(tmp_path)
    assert s.count() == n  # the same weights, the same cells
    s.close()


def test_a_defense_s_own_reparameterize_gets_reparam_cells(clf, tmp_path):
    """A user's Defense declaring has_reparameterization with its own reparameterize() got no reparam cell at all,
    and the reparam attack model could only use a G and an encoder (found by the API audit; PLUGINS.md names the
    hook for this threat). The cell attacks f ∘ reparameterize: its adversarials move the images through it."""
    from defbench.defenses.base import Defense

    calls = []

    class Path(Defense):
        name = "path"

        def __init__(self):
            super().__init__((1, 28, 28), 0)

        @property
        def has_reparameterization(self):
            return True

        def reparameterize(self, x):
            calls.append(len(x))
            return nn.functional.avg_pool2d(x, 3, stride=1, padding=1)

        def _purify(self, x, seed):
            return self.reparameterize(x)

    df = defbench.evaluate(
        clf, Path(), dataset="fmnist", attacks=["fgsm"], threats=["reparam"], n=4, batch_size=4, preset="quick",
        baseline=False, store=str(tmp_path),
    )  # fmt: skip
    rep = df[df["threat"] == "reparam"]
    assert list(rep["defense"]) == ["user:path"] and len(rep) == 1
    assert len(calls) > 2  # the attack differentiated through it (purify alone calls it once per batch)
    assert "model_sha256" not in rep.iloc[0]["attack_config"]  # no G or encoder of its own to name


class _Jitter(Defense):
    """Adds noise: from the seed it is handed (``source="seed"``) or from torch's global generator."""

    name = "jitter"

    def __init__(self, randomized: bool, source: str = "seed"):
        super().__init__(None, 0)
        self.randomized, self.source = randomized, source

    def _purify(self, x, seed):
        g = torch.Generator().manual_seed(seed) if self.source == "seed" else None
        return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize(
    "defense, message",
    [
        (_Jitter(randomized=False), "declares randomized = False, but its output depends on the seed"),
        (_Jitter(randomized=True, source="global"), "draws from a random state other than the seed"),
        (lambda x: (x + 0.05 * torch.randn_like(x)).clamp(0, 1), "draws from a random state other than the seed"),
    ],
)
def test_a_defense_s_declared_randomness_is_checked(defense, message, clf):
    """A user's defense whose output depends on the seed while it declares randomized = False was attacked
    without EOT and purified once per image (its robust accuracy read too high); one drawing from the global
    generators was random without saying so, its draws depending on what ran before it. Both are refused before
    its first cell."""
    with pytest.raises(DefbenchError, match=re.escape(message)):
        defbench.evaluate(clf, defense, dataset="fmnist", attacks=["fgsm"], n=4, batch_size=4, device="cpu")


def test_a_defense_that_declares_its_randomness_runs(clf):
    """The silent twins: randomized and drawing from its seed, or deterministic and declaring so."""
    for d in (_Jitter(randomized=True), box_blur):
        df = defbench.evaluate(
            clf, d, dataset="fmnist", attacks=["fgsm"], n=4, batch_size=4, device="cpu", baseline=False
        )
        assert len(df) == 2 and df["accuracy"].between(0, 1).all()


def test_the_randomness_check_allows_for_nondeterministic_kernels(monkeypatch):
    """With nondeterministic CUDA kernels a defense's output wobbles from call to call: the two-seed check read
    that wobble as seed dependence and told a correct defense to declare randomized = True (whose EOT and
    all-repeats rule lower its robust accuracy). The seeds must differ by more than one seed from itself now; a
    real seed dependence above the wobble is still refused, and on deterministic kernels the wobble itself is."""
    from types import SimpleNamespace

    from defbench.harness import matrix

    class Wobble(Defense):
        name, calls = "wobble", 0

        def __init__(self, randomized: bool = False, by_seed: float = 0.0):
            super().__init__(None, 0)
            self.randomized, self.by_seed = randomized, by_seed

        def _purify(self, x, seed):
            self.calls += 1
            return (x + 1e-4 * self.calls + self.by_seed * (seed % 7)).clamp(0, 1) * 0.5

    x = torch.rand(2, 1, 28, 28)
    test = SimpleNamespace(eval_indices=lambda n, seed: list(range(n)), get=lambda idx: (x, None))

    def check(d):
        runner = SimpleNamespace(
            _randomness_checked=set(), spec=SimpleNamespace(external_defenses=("user:w",)), test=test,
            device=torch.device("cpu"),
        )  # fmt: skip
        matrix.MatrixRunner.check_declared_randomness(runner, "user:w", d)

    monkeypatch.setattr(matrix, "_deterministic_on", lambda device: False)
    check(Wobble())  # the kernels' wobble alone: accepted
    with pytest.raises(DefbenchError, match="declares randomized = False, but its output depends on the seed"):
        check(Wobble(by_seed=0.01))
    monkeypatch.setattr(matrix, "_deterministic_on", lambda device: True)
    with pytest.raises(DefbenchError, match="with the same seed differ"):
        check(Wobble())
