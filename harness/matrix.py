"""The attack matrix: every (seed, defense, threat, attack) cell, run end to end and stored.

Data flow per cell: seeded test images -> attack (under the cell's threat model) -> defense -> classifier ->
metrics -> store. Cells are independent units of work behind :class:`Executor`; the local executor runs
them in order, skipping cells the store already holds, so a killed run resumes where it stopped. Gray-box
adversarial examples do not depend on the defense: they are computed once per (attack, seed) and cached in
``<out>/adv-cache``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import defbench
from defbench import DefbenchError, metrics, progress
from defbench.attacks.base import Attack, perturb
from defbench.attacks.registry import available as available_attacks
from defbench.attacks.registry import distribution_of as attack_distribution
from defbench.attacks.registry import get_attack
from defbench.attacks.threats import BPDAModel, attack_model, check_threat, gan_aware
from defbench.attacks.universal import _Universal
from defbench.classifiers.base import with_features
from defbench.classifiers.registry import ZOO, load_plugin, probe_classifier
from defbench.classifiers.registry import check_name as check_classifier
from defbench.datasets import canonical_name
from defbench.defenses.registry import DEFENSES, GAN_DEFENSES, base_name, check_name
from defbench.defenses.registry import distribution_of as defense_distribution
from defbench.harness.data import load_dataset
from defbench.harness.examples import cell_examples, save_examples_blob
from defbench.harness.models import (
    methods_sha256,
    user_model_sha256,
    attribute_values,
    attribute_models,
    build_defense,
    defense_models,
    get_classifier,
    get_encoder,
    get_gan,
    model_sha256,
    weights_sha256,
)
from defbench.harness.store import RESULTS_VERSION, CellKey, CellResult, Store, config_hash
from defbench.seeding import cuda_kernels_deterministic, derive_seed, deterministic_kernels, seed_everything

#: attack parameters of the quick preset: smoke-test budgets, not the papers'
QUICK_ATTACK_PARAMS = {
    "pgd": {"steps": 10, "step": None},
    "bim": {"steps": 5},
    "cw": {"steps": 20, "binary_search_steps": 3},
    "deepfool": {"steps": 20},
    "universal-art": {"max_iter": 1, "fit_images": 50},
}
#: defense settings of the quick preset (paper defaults otherwise)
QUICK_DEFENSE_OVERRIDES = {
    "defensegan": {"latent_steps": 50, "restarts": 4},
    "cowboy": {"latent_steps": 50, "restarts": 4},
    "invgan": {"latent_steps": 100},
    "ride": {"iterations": 100},
}
DEFAULT_ATTACKS = ("fgsm", "bim", "pgd", "cw", "deepfool", "autoattack", "universal-fgsm", "universal-art")


@dataclass(frozen=True)
class AttackSpec:
    name: str
    eps: float | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def build(self, dataset: str):
        return get_attack(self.name, dataset, self.eps, **dict(self.params))


#: EOT samples per BPDA gradient on a randomized defense, per preset (``--eot`` overrides): on by default, as
#: Athalye et al. (2018) require for randomized defenses; the quick preset's smaller count keeps it a smoke test
DEFAULT_EOT = {"paper": 10, "quick": 4}


@dataclass
class MatrixSpec:
    dataset: str = "fmnist"
    defenses: tuple[str, ...] = ("mimicgan",)
    attacks: tuple[AttackSpec, ...] = tuple(AttackSpec(a) for a in DEFAULT_ATTACKS)
    threats: tuple[str, ...] = ("graybox",)
    n: int = 500
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 100
    preset: str = "paper"
    device: str = "cpu"
    eot: int | None = None  # None: DEFAULT_EOT of the preset
    eval_repeats: int = 1
    stratified: bool = False  # evaluation images spread evenly over the classes
    #: fewer images for an expensive threat, e.g. {"bpda": 25}: its cells use the k seeded evaluation images of
    #: ``eval_indices(k, seed)``, a subset of the n clean cells' images (the report gives each cell's n)
    threat_n: dict[str, int] = field(default_factory=dict)
    defense_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_root: str | None = None
    out: str = "runs/matrix"
    progress: bool = True
    #: labels of defenses handed to the runner as objects (the API), not built from the registry
    external_defenses: tuple[str, ...] = ()
    #: ``zoo`` (the zoo's classifier of the dataset and preset) or the name of a classifier plugin
    classifier: str = "zoo"

    def validate(self) -> "MatrixSpec":
        self.dataset = canonical_name(self.dataset)
        self.classifier = check_classifier(self.classifier)
        self.defenses = tuple(d if d in self.external_defenses else check_name(d) for d in self.defenses)
        self.threats = tuple(check_threat(t) for t in self.threats)
        if self.batch_size < 1:
            raise DefbenchError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.eot is None:
            self.eot = DEFAULT_EOT.get(self.preset, DEFAULT_EOT["paper"])
        if self.eot < 1 or self.eval_repeats < 1:
            raise DefbenchError("--eot and --eval-repeats must be >= 1")
        self.threat_n = {check_threat(t): int(k) for t, k in self.threat_n.items()}
        for t, k in self.threat_n.items():
            if k < 1:
                raise DefbenchError(f"--n-threat {t}={k}: the number of images must be >= 1")
        for a in self.attacks:
            a.build(self.dataset)  # unknown names / bad eps fail now, before any work
        return self


def _deterministic_on(device: torch.device) -> bool:
    """Whether kernels on ``device`` give the same output for the same input twice (the CPU's do; CUDA's unless
    $DEFBENCH_NONDETERMINISTIC switched deterministic algorithms off)."""
    return device.type != "cuda" or cuda_kernels_deterministic()


def threat_applies(base: str, threat: str, own_reparam: Callable[[], bool] = lambda: False) -> bool:
    """Whether a defense (its base name) gets cells under ``threat``: gan-aware attacks a GAN prior's latent;
    bpda on the undefended classifier would be the gray-box attack again; reparam needs the GAN defenses' G and I,
    gives the undefended classifier's reference, or a user's or plugin's defense's own ``reparameterize()``
    (``own_reparam``, asked only then: it may build the defense)."""
    if threat == "gan-aware":
        return base in GAN_DEFENSES
    if threat == "bpda":
        return base != "none"
    if threat == "reparam":
        return base in GAN_DEFENSES or base == "none" or own_reparam()
    return True


#: why a threat gives a defense no cells (:func:`threat_applies`), for :func:`check_threats_apply`
WHY_NO_CELLS = {
    "gan-aware": "it attacks the latent of a GAN-prior defense: defensegan, cowboy, invgan or mimicgan",
    "bpda": "on the undefended classifier it is the gray-box attack",
    "reparam": "it needs a GAN-prior defense's G and I or a defense's own reparameterize(); the undefended "
    "classifier's reference cell alone is measured only when 'none' is the run's one defense",
}


def check_threats_apply(
    threats: Sequence[str],
    defenses: Sequence[str],
    own_reparam: Callable[[str], bool],
    external: Collection[str] = (),
    api: bool = False,
) -> None:
    """Refuse a threat no defense of the run gets cells under (it would be dropped from the tables without a
    word); ``own_reparam(label)``: whether that defense may have its own ``reparameterize()``; ``external``: the
    labels of a caller's defense objects (no registered base name). The undefended column beside defenses is a
    reference: it does not carry a threat on its own (median under reparam would otherwise train a GAN for the
    reference cell alone and leave median's column without a word); asked for alone, it is the measurement."""
    bases = [(d, d if d in external else base_name(d)) for d in defenses]
    defended = [(d, b) for d, b in bases if b != "none"] or bases
    for t in threats:
        if not any(threat_applies(b, t, lambda d=d: own_reparam(d)) for d, b in defended):
            flag, names = ("threats=" if api else "--threat "), ", ".join(d for d, _ in defended)
            raise DefbenchError(
                f"{flag}{t}: no defense of this run ({names}) gets {t} cells ({WHY_NO_CELLS[t]}); "
                f"add such a defense or drop {t}"
            )


def check_used(
    threats: list[str], attacks: list[str], eot: Any, eps: Any, api: bool = False, table: dict | None = None
) -> None:
    """Refuse what a run would ignore: an EOT count without the bpda threat (EOT averages BPDA gradients), an ε
    when none of the attacks takes one. ``eot`` / ``eps`` as given (None: not given); ``api`` names them as
    :func:`defbench.evaluate`'s arguments instead of the command line's flags; ``table`` the attack registry where
    the caller holds it already."""
    eot_flag, eps_flag = ("eot=", "eps=") if api else ("--eot ", "--eps ")
    if eot is not None and "bpda" not in threats:
        fix = "add 'bpda' to threats or drop eot" if api else "add --threat bpda or drop --eot"
        raise DefbenchError(
            f"{eot_flag}{eot}: EOT averages BPDA gradients and this run has no bpda threat ({', '.join(threats)}); "
            + fix
        )
    table = available_attacks() if table is None else table
    if eps is not None and not any(getattr(table.get(a), "bounded", False) for a in attacks):
        raise DefbenchError(
            f"{eps_flag}{eps}: none of this run's attacks ({', '.join(attacks) or 'none'}) takes an ε budget; "
            f"add a bounded attack (fgsm, bim, pgd, ...) or drop {eps_flag.strip(' =')}"
        )


def _adv_digest(name: str, x_adv: torch.Tensor, violations: str) -> str:
    """sha256 over what a gray-box cache file holds and the name it is stored under (a file copied over
    another batch's fails too)."""

    t = x_adv.detach().cpu().contiguous()
    h = hashlib.sha256(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(violations.encode())
    return h.hexdigest()


def _read_adv_cache(path: Path, name: str, x: torch.Tensor) -> dict | None:
    """The cached batch at ``path`` if it is intact (loads with weights_only, right shape and dtype, finite, in
    [0, 1], its sha256 matches), else None with a one-line warning: the batch is then recomputed and the file
    rewritten; a damaged or tampered file is never used (its budget is checked by the caller, which knows the
    attack)."""
    why = ""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- truncated, garbage, or a pickle with code in it
        blob, why = None, f"is unreadable ({type(exc).__name__})"
    if blob is not None:
        xa, viol = (blob.get("x_adv"), blob.get("violations")) if isinstance(blob, dict) else (None, None)
        if not isinstance(xa, torch.Tensor) or not isinstance(viol, str):
            why = "is not a gray-box cache file"
        elif xa.shape != x.shape:
            why = f"holds a batch of shape {tuple(xa.shape)}, not {tuple(x.shape)}"
        elif xa.dtype != x.dtype:
            got, want = (str(t.dtype).removeprefix("torch.") for t in (xa, x))
            why = f"holds a batch of dtype {got}, not {want}"
        elif blob.get("sha256") != _adv_digest(name, xa, viol):
            why = "has a sha256 that does not match its contents (altered or damaged)"
        elif not bool(torch.isfinite(xa).all()) or float(xa.min()) < 0 or float(xa.max()) > 1:
            why = "holds values outside [0, 1]"
        else:
            return blob
    print(f"defbench: warning: gray-box cache {path} {why}; recomputing that batch", file=sys.stderr)
    return None


def _write_adv_cache(path: Path, name: str, x_adv: torch.Tensor, violations: str) -> None:
    """Write a gray-box cache file atomically under a unique temporary name (concurrent runs on one --out
    never share a temporary file; the last rename wins, and both write the same batch)."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    xa = x_adv.detach().cpu()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"x_adv": xa, "violations": violations, "sha256": _adv_digest(name, xa, violations)}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class Cell:
    """One independent unit of work."""

    seed: int
    defense: str
    threat: str  # 'none' for the clean cell
    attack: AttackSpec | None  # None for the clean cell


@dataclass
class CellOutcome:
    """What computing a cell gives back to whoever writes the store: the result, or the message of a plugin
    that crashed, and the example images for the HTML report. Workers of a distributed executor return it;
    only the driver writes (:meth:`MatrixRunner.record`)."""

    cell: Cell
    key: CellKey
    label: str
    result: CellResult | None = None
    failure: str | None = None
    examples: dict[str, Any] | None = None


class Executor:
    """Runs cells: computes each (:meth:`MatrixRunner.compute_cell_guarded`) wherever it likes and hands every
    outcome to :meth:`MatrixRunner.record` in this process, the only writer of the store."""

    def run(self, runner: "MatrixRunner", cells: list[Cell]) -> None:
        raise NotImplementedError


class LocalExecutor(Executor):
    """One cell after another in this process."""

    def run(self, runner, cells):
        for c in cells:
            runner.record(runner.compute_cell_guarded(c))


#: the libraries whose code computes a cell's numbers (the attacks, the baselines' filters, the networks): their
#: versions are part of every cell's key, so that an upgraded torchattacks recomputes instead of mixing versions
#: in one table, and a Ray worker with other versions than its driver is refused (its keys differ)
NUMERIC_LIBRARIES = (
    "torch",
    "torchvision",
    "torchattacks",
    "foolbox",
    "adversarial-robustness-toolbox",
    "numpy",
    "scipy",
    "scikit-image",
)


def library_versions() -> dict[str, str]:
    """The installed version of each of :data:`NUMERIC_LIBRARIES` ("absent" where it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in NUMERIC_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


#: fields of a cell's defense config that say which code computed it, left out of the name of its random stream:
#: adding, bumping or upgrading them recomputes a cell without moving its draws
_NOT_IN_STREAM = ("results_version", "libraries")
#: fields of a cell's defense config that no draw of its attack depends on, named in its random stream at one fixed
#: value: how many times the cell purifies each image after the attack (``eval_repeats``) is read as 1, so a
#: k-purification cell attacks with the draws of the one-purification cell (under BPDA, reparam and gan-aware as
#: under gray-box) and its first purification is that cell, whatever k
_STREAM_AS = {"eval_repeats": 1}


def _object_state(d) -> dict[str, dict[str, Any]]:
    """What a user's defense object holds: its ``config`` and plain ``attributes`` (both in its cells' key) and, for
    a callable object :func:`defbench.evaluate` wrapped, that object's plain attributes (``fn``)."""
    fn = getattr(d, "fn", None)
    own = fn is not None and not inspect.isroutine(fn) and hasattr(fn, "__dict__")  # an object, not a function
    return {"config": d.config(), "attributes": attribute_values(d), "fn": attribute_values(fn) if own else {}}


def _changed(before: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> list[str]:
    """The names of what differs between two :func:`_object_state` results (``config.KEY``, ``NAME``, ``fn.NAME``)."""
    return sorted(
        ("" if part == "attributes" else f"{part}.") + k
        for part, was in before.items()
        for k in was.keys() | now[part].keys()
        if was.get(k) != now[part].get(k)
    )


def defense_options(name: str, preset: str, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The options defense ``name`` (a label or variant) is built with, before its variant's own: the quick
    preset's budgets < the overrides of its base name < those of its label."""
    base = base_name(name)
    over = dict(QUICK_DEFENSE_OVERRIDES.get(base, {})) if preset == "quick" else {}
    over.update(overrides.get(base, {}))
    if name != base:
        over.update(overrides.get(name, {}))
    return over


def batch_seed(cell_seed: int, batch: int) -> int:
    """The seed of a cell's batch ``batch`` (its purifications, GAN-aware attack and gradient check derive theirs)."""
    return cell_seed * 100_003 + batch


def purify_seed(cell_seed: int, batch: int, repeat: int = 0) -> int:
    """The seed a cell hands to purification ``repeat`` of its batch ``batch``; a benchmark that reproduces a
    cell's purification calls it. Repeats 0-6 keep the seeds every stored cell was computed with (``batch_seed *
    7 + repeat``); from the eighth repeat on that formula would reuse the next batch's seeds (batch 0's repeat 7
    is batch 1's repeat 0), so ``--eval-repeats`` 8 and up draw the further repeats' seeds from a hash."""
    if not 0 <= repeat:
        raise ValueError(f"repeat must be >= 0, not {repeat}")
    if repeat < 7:
        return batch_seed(cell_seed, batch) * 7 + repeat
    return derive_seed("purify", cell_seed, batch, repeat)


def projection_error(x_in: torch.Tensor, x_hat: torch.Tensor) -> list[float]:
    """Per image: MimicGAN-2's projection error d_proj = ‖X − G(z*)‖₂ (Eq. 5), the anomaly score of its §5.3,
    with the purified image standing for G(z*) and no surrogate in between (for MimicGAN the distance to the
    image itself, not to the surrogate's corrupted copy); for any defense, the ℓ2 distance of its output."""
    return (x_in - x_hat).flatten(1).norm(dim=1).cpu().tolist()


class MatrixRunner:
    def __init__(
        self,
        spec: MatrixSpec,
        store: Store | None = None,
        classifier: torch.nn.Module | None = None,
        defenses: dict[str, Any] | None = None,
    ):
        """``classifier``: a model of the caller's to evaluate instead of the zoo's (:mod:`defbench.api`, a paper
        table's :func:`~defbench.harness.papers.run_table`), wrapped by :func:`with_features` when it has no
        ``features``/``head``;
        ``defenses``: defense objects by label (their labels in ``spec.external_defenses``)."""
        self.spec = spec.validate()
        self.device = torch.device(spec.device)
        deterministic_kernels(self.device)  # also in a Ray worker, which never resolved the device itself
        self.test = load_dataset(spec.dataset, "test", spec.data_root)
        if spec.n > len(self.test):
            raise DefbenchError(f"--n {spec.n} is larger than the {spec.dataset} test set ({len(self.test)} images)")
        #: name, distribution, version and config() of a plugin classifier (part of every cell's key); None else
        self.classifier_plugin: dict[str, Any] | None = None
        if classifier is not None:  # the caller's module, with features/head, on the run's device, in eval mode
            self.classifier = classifier = with_features(classifier).to(self.device).eval()
            cman = {"id": f"user-{type(getattr(classifier, 'model', classifier)).__name__}"}
            probe_classifier(classifier, spec.dataset, f"the classifier handed in ({cman['id']})")
            cman["sha256"] = user_model_sha256(classifier)  # weights, plain attributes and its classes' code
        elif spec.classifier != ZOO:  # a plugin that refuses the dataset or fails to load does so before the store
            self.classifier, self.classifier_plugin = load_plugin(spec.classifier, spec.dataset, self.device)
            cman = {"id": spec.classifier, "sha256": weights_sha256(self.classifier)}
        # created once the input is known good (nothing half-written), and before a zoo model trains (minutes)
        self.store = store or Store(spec.out)
        if classifier is None and spec.classifier == ZOO:
            self.classifier, cman = get_classifier(
                spec.dataset, spec.preset, self.device, spec.data_root, progress=spec.progress
            )
        self.classifier_id = f"{cman.get('id', 'classifier')}@{str(cman.get('sha256', ''))[:10]}"
        # what a cell's number depends on beyond its configs (see key()): the data itself, not its path, and
        # the weights of every model the cell uses
        self.data_sha256 = self.test.sha256()
        self.classifier_sha256 = model_sha256(self.classifier)
        self._model_sha256: dict[str, dict[str, str]] = {}  # defense label -> {classifier, G, D, encoder}
        #: a user's defense object -> :func:`_object_state` when its first key was taken (before it ran): every cell
        #: of the run is keyed by it, whatever the object writes into itself while it purifies
        #: (:meth:`warn_changed_state` names what it wrote)
        self._user_state: dict[str, dict[str, dict[str, Any]]] = {}
        self._defenses: dict[str, Any] = dict(defenses or {})
        self._options: dict[str, dict[str, Any]] = {}  # defense label -> the options it was built with
        self._randomness_checked: set[str] = set()  # user and plugin defenses whose declared randomness held
        self.libraries = library_versions()  # part of every cell's key
        self._reparam = None
        self._reparam_sha256: dict[str, str] = {}
        self.computed: list[str] = []
        self.skipped = 0
        self.failed: list[tuple[str, str]] = []  # (cell label, message) of cells a plugin crash failed
        #: called as ``batch_hook(cell, batch, x, x_in, x_hat)`` after each batch's first purification, in the
        #: process that computes the cell (not for cells the store already holds): a benchmark that scores the
        #: cell's own inputs and projections otherwise (another Φ, say) reads them here
        self.batch_hook: Callable[[Cell, int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None

    # ---------------------------------------------------------------------------------- plumbing
    def defense(self, name: str):
        """The defense (or variant ``name[k=v,...]``): quick-preset budgets < overrides of the base name <
        overrides of the label < the variant's own options."""
        if name not in self._defenses:
            over = defense_options(name, self.spec.preset, self.spec.defense_overrides)
            # build_defense applies the variant's own options last
            self._options[name] = over
            self._defenses[name] = build_defense(
                name,
                self.spec.dataset,
                self.spec.preset,
                self.device,
                over,
                seed=0,
                data_root=self.spec.data_root,
                progress=self.spec.progress,
            )
        return self._defenses[name]

    def reparam_parts(self):
        if self._reparam is None:
            G, _, _ = get_gan(
                self.spec.dataset, self.spec.preset, self.device, self.spec.data_root, progress=self.spec.progress
            )
            enc, _ = get_encoder(
                self.spec.dataset, self.spec.preset, self.device, self.spec.data_root, progress=self.spec.progress
            )
            self._reparam = (G, enc)
            self._reparam_sha256 = {"G": model_sha256(G), "I": model_sha256(enc)}
        return self._reparam

    def attack(self, spec: AttackSpec):
        params = dict(spec.params)
        if self.spec.preset == "quick":
            params = {**QUICK_ATTACK_PARAMS.get(spec.name, {}), **params}
        return get_attack(spec.name, self.spec.dataset, spec.eps, **params)

    def code_versions(self) -> dict[str, Any]:
        """The versions of the code behind a number: defbench's, :data:`RESULTS_VERSION` and the numeric
        libraries' (part of every cell's key and of the gray-box cache's name)."""
        return {
            "defbench_version": defbench.__version__,
            "results_version": RESULTS_VERSION,
            "libraries": self.libraries,
        }

    def cells(self) -> list[Cell]:
        out = []
        for seed in self.spec.seeds:
            for d in self.spec.defenses:
                out.append(Cell(seed, d, "none", None))
                b = d if d in self.spec.external_defenses else base_name(d)
                for t in self.spec.threats:
                    if not threat_applies(b, t, lambda d=d: self._own_reparam(d)):
                        continue
                    for a in self.spec.attacks:
                        out.append(Cell(seed, d, t, a))
        return out

    def _own_reparam(self, name: str) -> bool:
        """Whether defense ``name`` is a user's or a plugin's with its own ``reparameterize`` (the built-ins
        without a GAN prior have none)."""
        if name not in self.spec.external_defenses and base_name(name) in DEFENSES:
            return False
        return bool(getattr(self.defense(name), "has_reparameterization", False))

    def cell_n(self, cell: Cell) -> int:
        """Images of the cell: n, or fewer for a threat given in ``threat_n`` (never for the clean cell)."""
        return min(self.spec.n, self.spec.threat_n.get(cell.threat, self.spec.n)) if cell.attack else self.spec.n

    def key(self, cell: Cell) -> tuple[CellKey, dict, dict]:
        """The cell's store key and its defense and attack configs. The key covers everything that changes
        the cell's number: the configs, n and batch size, and (issue 13) ``data_sha256`` (the test set's own
        sha256, so a copy elsewhere reuses cells and a changed image recomputes them), ``model_sha256`` (the
        classifier and the defense's G, D and encoder; a reparameterisation cell on a defense without an
        encoder adds the G and I it differentiates, in the attack config), ``defbench_version``,
        ``results_version`` (:data:`~defbench.harness.store.RESULTS_VERSION`), ``libraries`` (the versions of
        :data:`NUMERIC_LIBRARIES`), and for a
        plugin attack its distribution name and version (``attack_config["plugin"]``); likewise for a plugin
        defense (``defense_config["plugin"]``) and a plugin classifier (``defense_config["classifier_plugin"]``:
        name, distribution, version and config; its weights' sha256 is ``model_sha256["classifier"]``)."""
        d = self.defense(cell.defense)
        if cell.defense not in self._model_sha256:
            models = {"classifier": self.classifier_sha256, **defense_models(d)}
            if cell.defense in self.spec.external_defenses:  # a user's object: every module it holds, and its code
                models.update(attribute_models(d))
                models["code"] = methods_sha256(d)
            self._model_sha256[cell.defense] = models
        # n and batch size define the evaluated images and (for batch-coupled defenses) the purification
        # batches, so they are part of the cell's identity: a store never mixes runs of different n
        user = cell.defense in self.spec.external_defenses
        if user and cell.defense not in self._user_state:
            self._user_state[cell.defense] = _object_state(d)
        dcfg = {
            "name": cell.defense,
            **(self._user_state[cell.defense]["config"] if user else d.config()),
            "eval_repeats": self._repeats(d),
            "preset": self.spec.preset,
            "n": self.spec.n,
            "batch_size": self.spec.batch_size,
            **({"stratified": True} if self.spec.stratified else {}),
            "data_sha256": self.data_sha256,
            "model_sha256": self._model_sha256[cell.defense],
            **self.code_versions(),
        }
        if self.classifier_plugin is not None:  # its distribution, version and config; the weights are above
            dcfg["classifier_plugin"] = self.classifier_plugin
        dist = defense_distribution(d)
        if dist is not None:  # a new release of a plugin never reuses the old one's cells
            dcfg["plugin"] = {"distribution": dist[0], "version": dist[1]}
            if self._options.get(cell.defense):  # --defense-opt values its config() may not name
                dcfg["options"] = self._options[cell.defense]
        if user:  # a user's object: the plain values it holds
            dcfg["attributes"] = self._user_state[cell.defense]["attributes"]
        if cell.attack is None:
            acfg = {"name": "clean", "label": "clean"}
        else:
            atk = self.attack(cell.attack)
            acfg = {**atk.config(), "eot": self.spec.eot if (cell.threat == "bpda" and d.randomized) else 1}
            if self.cell_n(cell) != self.spec.n:  # a subset of the run's images (defense config unchanged)
                acfg["n_images"] = self.cell_n(cell)
                acfg["label"] = f"{acfg.get('label', acfg['name'])} (n={acfg['n_images']})"
            if cell.threat == "reparam" and not getattr(d, "has_reparameterization", False):
                self.reparam_parts()  # the dataset's G and I, differentiated in place of the defense's own
                acfg["model_sha256"] = dict(self._reparam_sha256)
            elif cell.threat == "reparam":  # the defense's own G and encoder, hashed once above
                own = self._model_sha256[cell.defense]
                parts = {"G": own.get("G"), "I": own.get("encoder")}
                if any(parts.values()):  # (a plugin's reparameterize() on other models: in its own identity)
                    acfg["model_sha256"] = {k: v for k, v in parts.items() if v}
        key = CellKey(
            self.spec.dataset,
            self.classifier_id,
            cell.defense,
            config_hash(dcfg),
            acfg["name"],
            config_hash(acfg),
            cell.threat,
            cell.seed,
        )
        return key, dcfg, acfg

    def _repeats(self, d) -> int:
        return self.spec.eval_repeats if d.randomized else 1

    # ---------------------------------------------------------------------------------- running
    def run(self, executor: Executor | None = None, cells: list[Cell] | None = None) -> None:
        """Compute the cells (default: every cell of the spec; a paper table passes the ones it reads) that the
        store does not hold yet, with ``executor`` (default :class:`LocalExecutor`); :attr:`skipped` counts the
        others."""
        cells = self.cells() if cells is None else list(cells)
        todo = [c for c in cells if not self.store.has(self.key(c)[0])]
        self.skipped = len(cells) - len(todo)
        if self.spec.progress and self.skipped:
            tqdm.write(
                f"{self.skipped} of {len(cells)} cells already in {self.store.path}; skipping them", file=sys.stderr
            )
        (executor or LocalExecutor()).run(self, todo)
        self.warn_changed_state()

    def warn_changed_state(self) -> None:
        """One warning line (stderr) per user's defense that changed its plain attributes or its config() while it
        ran (a call counter, a cache of its last input): its cells are keyed by what it held before, and a defense
        whose output reads that state gives numbers that depend on what ran before each cell."""
        for name, before in self._user_state.items():
            changed = _changed(before, _object_state(self.defense(name)))
            if changed:
                print(
                    f"defbench: warning: defense {name!r} changed {', '.join(changed)} while it ran; its cells are "
                    "keyed by the values before the run, and if its output reads them its numbers depend on what "
                    "ran before each cell",
                    file=sys.stderr,
                )

    def run_cell(self, cell: Cell) -> None:
        """Compute one cell here and store it."""
        self.record(self.compute_cell(cell))

    def run_cell_guarded(self, cell: Cell) -> None:
        """:meth:`run_cell` with the plugin-crash guard of :meth:`compute_cell_guarded`."""
        self.record(self.compute_cell_guarded(cell))

    def compute_cell_guarded(self, cell: Cell) -> CellOutcome:
        """:meth:`compute_cell`, except that a plugin attack that crashes (any exception but a DefbenchError,
        which is a refusal meant for the user) fails only its own cell: the outcome carries the message, which
        :meth:`record` puts in the store (``Store.failures()``) and in :attr:`failed`; the run goes on and the
        next run tries the cell again."""
        try:
            return self.compute_cell(cell)
        except (DefbenchError, KeyboardInterrupt):
            raise
        except Exception as exc:
            plugin = self._plugin_of(cell)
            if plugin is None:  # defbench's own code: a bug to report, not to hide
                raise
            label = f"s{cell.seed} {cell.defense} {cell.threat} {cell.attack.name if cell.attack else 'clean'}"
            msg = f"{plugin} crashed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            return CellOutcome(cell, self.key(cell)[0], label, failure=msg)

    def _plugin_of(self, cell: Cell) -> str | None:
        """The plugin a crash of this cell is blamed on, worded for the user: the attack's when it is a plugin,
        else the defense's, else the classifier's; None when all are defbench's own (or a user's object handed
        to the API)."""
        cls = available_attacks().get(cell.attack.name) if cell.attack is not None else None
        dist = attack_distribution(cls) if cls is not None else None
        if dist is not None:
            return f"attack plugin {cell.attack.name!r} of distribution {dist[0]} {dist[1]}"
        dist = defense_distribution(self.defense(cell.defense))
        if dist is not None:
            return f"defense plugin {cell.defense!r} of distribution {dist[0]} {dist[1]}"
        p = self.classifier_plugin
        if p is not None:
            return f"classifier plugin {p['name']!r} of distribution {p['distribution']} {p['version']}"
        return None

    def record(self, out: CellOutcome) -> None:
        """Write an outcome (computed here or by a worker) to the store; the only place a run writes cells."""
        if out.failure is not None:
            self.store.put_failure(out.key, out.label, out.failure)
            self.failed.append((out.label, out.failure))
            msg = f"defbench: cell {out.label} failed: {out.failure}; the other cells go on"
            print(msg, file=sys.stderr, flush=True)
            return
        if out.examples is not None:
            save_examples_blob(self.spec.out, out.key, out.examples)
        self.store.put(out.key, out.result)
        self.computed.append(out.key.key)
        if self.spec.progress:
            res = out.result
            acc = metrics.accuracy(res.preds, res.labels)
            tqdm.write(
                f"{out.label}: accuracy {acc:.3f} ({len(res.labels)} images, {res.wall_seconds:.1f}s)", file=sys.stderr
            )

    def _adv_graybox(self, atk, n: int, seed: int, bidx: int, x, y) -> torch.Tensor:
        """Gray-box adversarials of one batch, cached across defenses under the identity of everything they
        depend on (attack, classifier weights, data, n, batch size, defbench and results version). A cached batch
        brings back the output-check violations of the call that made it (``atk.last_violations``)."""
        ident = {
            **atk.config(),
            "clf": self.classifier_id,
            "clf_sha256": self.classifier_sha256,
            **({"clf_plugin": self.classifier_plugin} if self.classifier_plugin else {}),
            "data_sha256": self.data_sha256,
            **self.code_versions(),
            "n": n,
            "bs": self.spec.batch_size,
            "strat": self.spec.stratified,
        }
        name = f"{config_hash(ident)}-s{seed}-b{bidx}"
        cache = Path(self.spec.out) / "adv-cache" / f"{name}.pt"
        if cache.is_file():
            blob = _read_adv_cache(cache, name, x)
            # its sha256 is no signature (anyone can recompute it): the budget is checked again, by Attack's checks
            over = [] if blob is None else Attack.check_output(atk, x, blob["x_adv"].to(x.device))
            if over:
                print(
                    f"defbench: warning: gray-box cache {cache} holds images the attack's checks refuse "
                    f"({'; '.join(v['message'] for v in over)}); recomputing that batch",
                    file=sys.stderr,
                )
                blob = None
            if blob is not None:
                atk.last_violations = json.loads(blob["violations"])
                atk.violations += atk.last_violations
                return blob["x_adv"].to(x.device)
        x_adv = perturb(atk, self.classifier, x, y)
        _write_adv_cache(cache, name, x_adv, json.dumps(atk.last_violations, default=str))
        return x_adv

    def compute_cell(self, cell: Cell) -> CellOutcome:
        """Compute one cell; writes nothing but the gray-box adversarial cache (see :meth:`record`). With
        progress on, a second bar counts the defense's optimiser steps (:mod:`defbench.progress`): a cell is
        often one batch, and one batch of RIDE or a projection with BPDA is thousands of steps."""
        key, dcfg, acfg = self.key(cell)
        desc = f"s{cell.seed} {cell.defense} {cell.threat} {acfg.get('label')}"
        if not self.spec.progress:
            return self._compute_cell(cell, key, dcfg, acfg, desc)
        with progress.bar(desc=f"{desc}: defense steps", unit="step", leave=False) as steps:
            with progress.reporting(steps.update):
                return self._compute_cell(cell, key, dcfg, acfg, desc)

    def check_declared_randomness(self, name: str, d) -> None:
        """A user's or a plugin's defense is what it declares, checked once per runner on two test images: a
        function of (x, seed), whose output depends on the seed when ``randomized`` and on nothing else. One that
        depends on the seed while declaring ``randomized = False`` was attacked without EOT and evaluated once
        per image, so its robust accuracy read too high; one that draws from a state other than its seed (the
        global generators, a generator of its own) is random without saying so, and its draws depend on what ran
        before it in the process (the attack's own draws, earlier batches). Both are one-line errors. The
        built-ins' declarations are tested (tests/test_randomness.py)."""
        if name in self._randomness_checked or name not in self.spec.external_defenses and base_name(name) in DEFENSES:
            return
        self._randomness_checked.add(name)
        x, _ = self.test.get(self.test.eval_indices(2, 0))
        x = x.to(self.device)
        s1, s2 = derive_seed("declared randomness", 1), derive_seed("declared randomness", 2)
        first = d.purify(x, seed=s1).detach()
        noise = (d.purify(x, seed=s1).detach() - first).abs().max().item()  # one seed twice: the kernels' own noise
        deterministic = _deterministic_on(self.device)
        if deterministic and noise > 1e-6:
            raise DefbenchError(
                f"defense {name}: two purifications of the same images with the same seed differ (by up to "
                f"{noise:.3g}): it draws from a random state other than the seed it is handed (the global "
                "generators, a generator of its own), so its output depends on what ran before it; draw every "
                "random number from that seed (and declare randomized = True)"
            )
        if not d.randomized:
            gap = (d.purify(x, seed=s2).detach() - first).abs().max().item()
            # with nondeterministic kernels, two seeds must differ by more than one seed does from itself
            if gap > max(1e-6, 0.0 if deterministic else 10 * noise):
                raise DefbenchError(
                    f"defense {name} declares randomized = False, but its output depends on the seed (two seeds "
                    f"give outputs up to {gap:.3g} apart): set randomized = True, so that BPDA averages EOT draws "
                    "and each image counts as robust only when every purification of it is right"
                )

    def _compute_cell(self, cell: Cell, key, dcfg: dict, acfg: dict, desc: str) -> CellOutcome:
        d = self.defense(cell.defense)
        atk = self.attack(cell.attack) if cell.attack is not None else None
        idx = self.test.eval_indices(self.cell_n(cell), cell.seed, self.spec.stratified)  # a subset of n's
        # Every draw of the cell (attack starts, EOT, universal fits) comes from a stream named by the cell and
        # batch, never from the RNG state earlier cells left: fresh, resumed and reordered runs agree. Gray-box
        # adversarials do not involve the defense (and are cached across defenses), so their stream is named
        # without it. The stream is named by the key without the fields that say which code computed the cell
        # (``results_version``, the libraries' versions): a bump or an upgrade recomputes but moves no draw; and
        # with ``eval_repeats`` read as 1 (:data:`_STREAM_AS`): more purifications move no draw of the attack.
        named = {k: _STREAM_AS.get(k, v) for k, v in dcfg.items() if k not in _NOT_IN_STREAM}
        stream = replace(key, defense_hash=config_hash(named)).key
        if atk is not None and cell.threat == "graybox":
            stream = config_hash(
                {
                    **atk.config(),
                    "clf": self.classifier_id,
                    "n": len(idx),
                    "bs": self.spec.batch_size,
                    "strat": self.spec.stratified,
                    "seed": cell.seed,
                }
            )
        self.check_declared_randomness(cell.defense, d)  # before the cell's seeding: it moves no draw of the cell
        seed_everything(derive_seed(stream, "cell"))
        repeats = self._repeats(d)
        labels, preds_u, scores, errors, rep_preds = [], [], [], [], [[] for _ in range(repeats)]
        surrogate_scales: list[float] = []
        t0 = time.time()
        batches = list(range(0, len(idx), self.spec.batch_size))
        extra: dict[str, Any] = {"randomized": bool(d.randomized)}
        if getattr(d, "batch_coupled", False):  # the report's per-batch spread note reads it
            extra["batch_coupled"] = True
        examples = None
        model = self._attack_model(cell, d)
        if atk is not None and model is not None:
            # attacks fitted once per cell (universal perturbations) see the cell's first images, as many as they
            # fit on (the first batch where they do not say), whatever the batch size and whatever resumes
            x0, y0 = self.test.get(idx[: atk.prepare_images or self.spec.batch_size])
            self._seed_stream(model, atk, derive_seed(stream, "prepare"))
            x0, y0 = x0.to(self.device), y0.to(self.device)
            model.eval()
            atk.prepare(model, x0, atk.attack_labels(model, x0, y0))  # labels=predicted: the fit's labels too
        for bidx, start in enumerate(progress.bar(batches, desc=desc, enabled=self.spec.progress, leave=False)):
            x, y = self.test.get(idx[start : start + self.spec.batch_size])
            x, y = x.to(self.device), y.to(self.device)
            pseed = batch_seed(cell.seed, bidx)
            if atk is not None:
                self._seed_stream(model, atk, derive_seed(stream, "batch", bidx))
            if atk is None:
                x_in = x
            elif cell.threat == "graybox":
                x_in = self._adv_graybox(atk, len(idx), cell.seed, bidx, x, y)
            elif cell.threat == "gan-aware":
                x_in = gan_aware(atk, self.classifier, d, x, y, seed=pseed)
            else:
                x_in = perturb(atk, model, x, y)
            with torch.no_grad():  # f = head ∘ Φ: one feature pass gives both the score and the prediction
                phi_in = self.classifier.features(x_in)
                preds_u += self.classifier.head(phi_in).argmax(1).tolist()
            for r in range(repeats):
                x_hat = d.purify(x_in, seed=purify_seed(cell.seed, bidx, r))
                with torch.no_grad():
                    phi_hat = self.classifier.features(x_hat)
                    rep_preds[r] += self.classifier.head(phi_hat).argmax(1).tolist()
                    if r == 0:
                        scores += (phi_in - phi_hat).norm(dim=1).tolist()
                        errors += projection_error(x_in, x_hat)
                        scale = getattr(d, "surrogate_scale", lambda _: None)(x_in)  # a learned f̂'s output
                        if scale is not None:
                            surrogate_scales.append(round(scale, 4))
                        if self.batch_hook is not None:
                            self.batch_hook(cell, bidx, x, x_in, x_hat)
            labels += y.tolist()
            if bidx == 0:  # the cell's first images (x, x_in, x_hat) for the HTML report's grids
                examples = cell_examples(self, idx, x, x_in, x_hat, y)
            if bidx == 0 and atk is None:
                extra["gradient_check"] = self.gradient_check(d, x[:8], y[:8], seed=derive_seed(pseed, "gradient"))
        preds = rep_preds[0]
        if repeats > 1:
            extra["repeat_preds"] = rep_preds
        extra["batch_size"] = self.spec.batch_size
        # not part of the key, but a learned surrogate's optimisation can end on another image at another thread
        # count (docs/CLUSTER.md), so a cell says what it ran with
        extra["cpu_threads"] = torch.get_num_threads()
        if atk is not None and getattr(atk, "violations", None):  # a plugin allowed to continue (output_check='warn')
            extra["output_violations"] = list(atk.violations)
        extra["projection_error"] = [round(float(e), 7) for e in errors]
        if surrogate_scales:  # one per batch: a collapsed surrogate is flagged by the report
            extra["surrogate_scale"] = surrogate_scales
        res = CellResult(
            labels,
            preds,
            preds_u,
            scores,
            idx.tolist(),
            round(time.time() - t0, 3),
            str(self.device),
            dcfg,
            acfg,
            extra,
        )
        return CellOutcome(cell, key, desc, result=res, examples=examples)

    @staticmethod
    def _seed_stream(model, atk, seed: int) -> None:
        """Seed every RNG a library attack may draw from (torch, numpy, Python: random starts), the BPDA model's
        purification seeds and a universal attack's fit from ``seed``."""
        seed_everything(seed)
        if isinstance(model, BPDAModel):
            model.reseed(seed)
        if isinstance(atk, _Universal):
            atk.seed = seed

    def _attack_model(self, cell: Cell, d):
        """The model the cell's library attack is handed (one per cell); None for clean and gan-aware."""
        if cell.attack is None or cell.threat == "gan-aware":
            return None
        if cell.threat == "reparam" and not getattr(d, "has_reparameterization", False):
            G, enc = self.reparam_parts()
            return attack_model("reparam", self.classifier, d, G=G, encoder=enc)
        return attack_model(cell.threat, self.classifier, d, eot=self.spec.eot)

    def gradient_check(self, d, x, y, seed: int = 0) -> dict[str, Any]:
        """Probe of the defended model f ∘ purify (AutoAttack's checks are the model), on the defense's *real*
        autograd graph, not on BPDA's straight-through (whose backward is the stand-in and can never be zero):

        * ``zero_grad_fraction``: share of input-gradient entries of the cross-entropy that are exactly zero,
          1.0 when purify leaves autograd (no gradient reaches the input: shattered gradients);
        * ``nondeterministic``: two purifications with the same seed differ (hidden randomness);
        * ``seed_dependent``: purifications with two seeds differ, i.e. the defense is randomized, whatever it
          declares (``randomized_defense``);
        * ``cuda_nondeterministic_kernels``: the check ran on CUDA with PyTorch's nondeterministic kernels
          (``$DEFBENCH_NONDETERMINISTIC``), which alone make two purifications differ."""
        grad, error = None, ""
        xr = x.detach().clone().requires_grad_(True)
        try:
            out = d.purify_autograd(xr, seed)
            if out.requires_grad:
                loss = torch.nn.functional.cross_entropy(self.classifier(out), y)
                (grad,) = torch.autograd.grad(loss, xr, allow_unused=True)
        except (RuntimeError, TypeError, ValueError) as exc:  # purify cannot run under autograd: no gradient
            error = f"{type(exc).__name__}: {str(exc)[:160]}"
        zero = 1.0 if grad is None else float(((grad == 0) | ~torch.isfinite(grad)).float().mean())
        with torch.no_grad():
            a, b, c = d.purify(x, seed), d.purify(x, seed), d.purify(x, seed + 1)
        return {
            "zero_grad_fraction": zero,
            "differentiable": grad is not None,
            "nondeterministic": bool(not torch.allclose(a, b, atol=1e-6)),
            "seed_dependent": bool(not torch.allclose(a, c, atol=1e-6)),
            "randomized_defense": bool(d.randomized),
            "device": x.device.type,
            "cuda_nondeterministic_kernels": x.device.type == "cuda" and not cuda_kernels_deterministic(),
            "threat": "autograd",
            **({"error": error} if error else {}),
        }
