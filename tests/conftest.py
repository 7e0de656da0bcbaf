"""Shared fixtures. Tests point the data root at ../shared/data when it exists and keep every model they
train in a temporary DEFBENCH_HOME, so the user's zoo is never touched."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

from defbench.defenses.base import Defense
from defbench.seeding import NONDETERMINISTIC_ENV

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BENCHMARKS = REPO / "benchmarks"

if SHARED_DATA.is_dir() and "DEFBENCH_DATA" not in os.environ:
    os.environ["DEFBENCH_DATA"] = str(SHARED_DATA)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def have_data(name: str) -> bool:
    from defbench import DefbenchError
    from defbench.harness.data import load_dataset

    try:
        load_dataset(name, "test", download=False)
        return True
    except DefbenchError:
        return False


def import_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module. Scripts import their sibling ``_common``, so the folder
    is on ``sys.path`` while they load, and only then."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("defbench-home")
    old = os.environ.get("DEFBENCH_HOME")
    os.environ["DEFBENCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("DEFBENCH_HOME", None)
    else:
        os.environ["DEFBENCH_HOME"] = old


@contextlib.contextmanager
def restored_signal_handlers():
    """The SIGINT / SIGTERM handlers on entry are the ones on exit: a handler installed inside and left behind is
    replaced by the one before it; a handler Python cannot reinstall (None: set outside Python) is left alone."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            if signal.getsignal(s) is not handler and handler is not None:
                signal.signal(s, handler)


@pytest.fixture(autouse=True)
def signal_handlers_restored():
    """Every test starts with the SIGINT / SIGTERM handlers the previous one started with: a library that installs
    its own (Ray's driver does for some calls) and leaves it behind must not change what a later test sees
    (defbench's main installs its Ctrl-C handler only over Python's default one)."""
    with restored_signal_handlers():
        yield


@pytest.fixture(scope="session")
def fmnist():
    from defbench.harness.data import load_dataset

    if not have_data("fmnist"):
        pytest.skip("Fashion-MNIST not available offline (set DEFBENCH_DATA)")
    return load_dataset("fmnist", "train"), load_dataset("fmnist", "test")


@pytest.fixture
def batch_orders(fmnist, monkeypatch):
    """The index tensors the Fashion-MNIST splits' ``batches`` is called with while the test runs (train_gan's
    epoch orders, and any validation batches), in call order."""
    train, _ = fmnist
    seen, orig = [], type(train).batches

    def batches(self, batch_size, indices=None):
        seen.append(indices.clone())
        return orig(self, batch_size, indices=indices)

    monkeypatch.setattr(type(train), "batches", batches)
    return seen


@pytest.fixture(scope="session")
def fmnist_images(fmnist):
    _, test = fmnist
    x, y = test.get(range(16))
    return x, y


def stand_in_gan(dataset: str = "fmnist", seed: int = 0):
    """An untrained DCGAN of the paper family (eval mode) with non-trivial BatchNorm statistics: still a
    generator whose range the tests can project onto."""
    from defbench.defenses.priors import build_gan

    torch.manual_seed(seed)
    G, D = build_gan(dataset)
    G.train()
    with torch.no_grad():  # one forward pass in train mode gives BatchNorm running statistics
        G(torch.rand(256, G.latent_dim) * 2 - 1)
    return G.eval(), D.eval()


def save_gan(G, D, dataset: str = "fmnist", tag: str = "", preset: str = "quick") -> str:
    """Store (G, D) in the zoo as gan-<dataset>-<preset>[-tag], the way ``defbench train gan`` does: its manifest
    names the preset's recipe and the tag's seed, subset and left-out class, so loading it warns of no drift."""
    import dataclasses

    from defbench.defenses.train_prior import gan_recipe
    from defbench.harness import zoo

    mid = zoo.model_id("gan", dataset, preset, tag)
    kw = zoo.parse_gan_tag(tag) if tag else {}
    recipe = gan_recipe(dataset, preset, subset_fraction=kw.get("subset_fraction"))
    config = {**dataclasses.asdict(recipe), "seed": kw.get("seed", 0), "holdout_class": kw.get("holdout_class")}
    state = {**{f"G.{k}": v for k, v in G.state_dict().items()}, **{f"D.{k}": v for k, v in D.state_dict().items()}}
    zoo.save(
        mid,
        state,
        {
            "kind": "gan",
            "dataset": dataset,
            "preset": preset,
            "arch": "dcgan32" if dataset == "cifar10" else "dcgan28",
            "config": config,
            "metrics": {},
        },
    )
    return mid


def save_classifier(model, metrics: dict, dataset: str = "fmnist", preset: str = "quick") -> None:
    """Store a trained classifier in the zoo (of the current DEFBENCH_HOME) as classifier-<dataset>-<preset>; its
    manifest names the preset's recipe, so loading it warns of no drift (the test models are not trained by it)."""
    import dataclasses

    from defbench.classifiers.train import recipe_for
    from defbench.harness import zoo

    config = {**dataclasses.asdict(recipe_for(dataset, preset)), "seed": 0}
    meta = {"kind": "classifier", "dataset": dataset, "preset": preset, "arch": model.arch, "config": config}
    zoo.save(zoo.model_id("classifier", dataset, preset, ""), model.state_dict(), {**meta, "metrics": metrics})


def save_encoder(seed: int = 0, dataset: str = "fmnist", preset: str = "quick", tag: str = "") -> None:
    """A random InvGAN encoder (its weights drawn with torch seed ``seed``) in the zoo as
    encoder-<dataset>-<preset>[-tag] (the mechanics do not need a trained one); its manifest names the preset's
    recipe and the tag's seed, so loading it warns of no drift."""
    import dataclasses

    from defbench.datasets import SHAPES
    from defbench.defenses.priors import Encoder
    from defbench.defenses.train_prior import encoder_recipe
    from defbench.harness import zoo

    torch.manual_seed(seed)
    c, h, _ = SHAPES[dataset]
    enc = Encoder(c, h)
    trained_seed = (zoo.parse_gan_tag(tag) if tag else {}).get("seed", 0)
    zoo.save(
        zoo.model_id("encoder", dataset, preset, tag),
        {f"E.{k}": v for k, v in enc.state_dict().items()},
        {
            "kind": "encoder",
            "dataset": dataset,
            "preset": preset,
            "arch": "invgan-encoder",
            "config": {**dataclasses.asdict(encoder_recipe(preset)), "seed": trained_seed},
            "metrics": {},
        },
    )


class SeededNoise(Defense):
    """x + σ·N(0, 1), clamped to [0, 1], drawn from the seed each call is handed: a randomized defense (declared
    so) whose every draw a test can recompute with ``purify(x, seed=...)``."""

    name = "noise"
    randomized = True

    def __init__(self, sigma: float, shape: tuple[int, int, int] | None = None, name: str = "noise"):
        super().__init__(shape)
        self.sigma, self.name = sigma, name

    def _purify(self, x, seed):
        g = torch.Generator().manual_seed(int(seed) % 2**63)
        return (x + self.sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


@pytest.fixture(scope="session")
def random_gan():
    return stand_in_gan("fmnist", 0)


@pytest.fixture(scope="session")
def tiny_classifier(fmnist):
    """The paper CNN trained for a fraction of an epoch on real Fashion-MNIST."""
    from defbench.classifiers.train import ClassifierRecipe, train_classifier

    train, test = fmnist
    model, metrics = train_classifier(
        "fmnist",
        train,
        test,
        ClassifierRecipe(epochs=1, train_fraction=0.15),
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    return model, metrics


@pytest.fixture(scope="session")
def tiny_zoo(tiny_classifier, random_gan, isolated_home):
    """Quick-preset zoo entries made from the tiny test models (the mechanics do not need good models)."""
    save_classifier(*tiny_classifier)
    save_gan(*random_gan)
    return isolated_home


def write_distribution(
    root, dist: str, version: str, group: str, entries: dict[str, str], modules: dict[str, str] | None = None
):
    """An installed-looking distribution ``dist`` ``version`` under ``root`` (a ``sys.path`` entry): its
    ``modules`` ({module name: source}) and entry points ``{name: "module:Class"}`` in ``group``. Returns ``root``."""
    from pathlib import Path

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for mod, src in (modules or {}).items():
        (root / f"{mod}.py").write_text(src)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    return root


def md_rows(text: str) -> list[list[str]]:
    """The cells (stripped, ``\\|`` unescaped) of every Markdown table line in ``text``; separator lines left
    out. Column widths do not matter, so tests read tables as cells, not as padded text."""
    import re

    out = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line[1:-1])]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        out.append(cells)
    return out


def md_row(text: str, *first: str) -> list[str]:
    """The cells of the first Markdown table line of ``text`` whose leading cells are ``first``."""
    for cells in md_rows(text):
        if tuple(cells[: len(first)]) == first:
            return cells
    raise AssertionError(f"no table line starts with {' | '.join(first)}")


@pytest.fixture
def torch_switches(monkeypatch):
    """PyTorch's process-wide determinism switches off and the environment without defbench's settings for the
    test, then restored as they were: tests that switch CUDA to deterministic kernels leave the others' as found."""
    old = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    monkeypatch.delenv(NONDETERMINISTIC_ENV, raising=False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    yield
    torch.use_deterministic_algorithms(old[0], warn_only=old[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
