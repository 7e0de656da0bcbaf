"""Row helpers shared by the tables, the sanity checks and the plots, and the Markdown table every report prints.

A *row* is one dict as yielded by :meth:`defbench.harness.store.Store.rows`. The helpers here know the
runner's conventions: the clean row of a (dataset, classifier, defense, defense_hash, seed) has
attack == "clean" and threat == "none"; attack rows carry a display ``label`` and ``family``, ``iterative``,
``bounded``, ``eps`` and ``alpha`` in ``attack_config``; randomized defenses store ``extra["repeat_preds"]``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from defbench import metrics

Row = Mapping[str, Any]

CLEAN = "clean"
THREAT_NONE = "none"
THREAT_ORDER = ("graybox", "bpda", "reparam", "gan-aware")
WHITE_BOX = ("bpda", "reparam", "gan-aware")

#: (dataset, classifier, defense, defense_hash): one defended model.
Base = tuple[str, str, str, str]


def is_clean(row: Row) -> bool:
    """True for the clean (unattacked) row of a defense and seed."""
    return row["attack"] == CLEAN


def base_key(row: Row) -> Base:
    """The defended model a row belongs to."""
    return (row["dataset"], row["classifier"], row["defense"], row["defense_hash"])


#: attack_config fields that say how a cell ran an attack, not which attack it is: EOT follows the defense, and
#: the sha256 of the G and I a reparameterisation cell differentiates follows its threat (a row of the tables
#: holds the attack under every threat)
_NOT_ATTACK = ("eot", "model_sha256")
#: ... and, for matching a white-box cell with its gray-box twin, the image subset as well
_NOT_TWIN = (*_NOT_ATTACK, "n_images", "label")


def _cfg_hash(row: Row, drop: tuple[str, ...]) -> str:
    import hashlib

    c = {k: v for k, v in (row.get("attack_config") or {}).items() if k not in drop}
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:12]


def attack_key(row: Row) -> tuple[str, str]:
    """The attack and its configuration, independent of defense and seed (and of the EOT count, which belongs
    to the defense: one attack row of a table holds a randomized defense's EOT cell beside a deterministic
    one's). The gan-aware threat's ε is a latent-space budget, so its attacks are attacks of their own."""
    h = _cfg_hash(row, _NOT_ATTACK) if row.get("attack_config") else row["attack_hash"]
    return (row["attack"], h + (":latent" if is_latent(row) else ""))


def how_key(row: Row) -> str:
    """What :func:`attack_key` leaves out of a cell (its EOT count, the G and I a reparameterisation cell
    differentiates), as one string."""
    return json.dumps({f: cfg(row, f) for f in _NOT_ATTACK}, sort_keys=True, default=str)


def how_tagger(rows: Iterable[Row]) -> Callable[[Row], str]:
    """A column tag per row, so that two cells of one attack that differ only in how they ran (the fields
    :func:`attack_key` leaves out: EOT, the G and I a reparameterisation cell differentiates) do not share a table
    cell or a mean over seeds, as when a store holds a BPDA rerun at another ``--eot`` or a reparameterisation
    rerun after the encoder was retrained, on the same seed or on another one. In a (defended model, threat) group
    holding such a pair, each row's tag names the fields that differ there (``EOT=10``, ``G·I 1a2b3c/4d5e6f``: the
    first hex digits of the checkpoints' sha256); elsewhere the tag is ""."""
    seen: dict[tuple[Base, str, tuple[str, str]], Row] = {}
    differ: dict[tuple[Base, str], set[str]] = {}
    for r in rows:
        if is_clean(r):
            continue
        key = (base_key(r), r["threat"], attack_key(r))
        other = seen.setdefault(key, r)
        if other is not r:
            fields = {f for f in _NOT_ATTACK if cfg(r, f) != cfg(other, f)}
            if fields:
                differ.setdefault(key[:2], set()).update(fields)

    def tag(row: Row) -> str:
        parts = []
        for f in (f for f in _NOT_ATTACK if f in differ.get((base_key(row), row["threat"]), ())):
            if f == "eot":
                parts.append(f"EOT={int(cfg(row, 'eot') or 1)}")
            else:
                h = cfg(row, f) or {}
                parts.append("G·I " + "/".join(str(h.get(k, "?"))[:6] for k in ("G", "I")))
        return ", ".join(parts)

    return tag


def twin_key(row: Row) -> tuple[str, str]:
    """The attack independent of threat, EOT and image subset: a white-box cell and its gray-box twin share it."""
    return (row["attack"], _cfg_hash(row, _NOT_TWIN) if row.get("attack_config") else row["attack_hash"])


def is_latent(row: Row) -> bool:
    """Whether the row's ε budgets the generator's latent (the gan-aware threat), not the pixels."""
    return row.get("threat") == "gan-aware"


def attack_label(row: Row) -> str:
    """The attack's display name (``attack_config["label"]``, else the attack's name); under the gan-aware
    threat it says that its ε is a latent-space budget."""
    if is_clean(row):
        return CLEAN
    label = str((row.get("attack_config") or {}).get("label") or row["attack"])
    if is_latent(row):
        eps = cfg(row, "eps")
        label += f" (latent-space ε={float(eps):g})" if eps is not None else " (latent space)"
    return label


def cell_name(row: Row) -> str:
    """A cell's short name in notes and benchmark tables: ``clean``, or the attack's label and its threat in
    brackets (``PGD (bpda)``)."""
    return CLEAN if is_clean(row) else f"{cfg(row, 'label') or row['attack']} ({row['threat']})"


def is_universal(row: Row) -> bool:
    """Universal (image-agnostic) perturbations: α-scaled or of a universal family."""
    return cfg(row, "alpha") is not None or str(cfg(row, "family", "")).startswith("universal")


def is_corruption(row: Row) -> bool:
    return str(cfg(row, "family", "")) == "corruption"


def in_worst_case(row: Row) -> bool:
    """Whether an attack row enters the worst-case row: a bounded, per-image attack with a pixel ε (not CW or
    DeepFool, not a universal perturbation, not a corruption, not a gan-aware attack: its ε budgets the latent,
    and a latent ε 0.5 is no pixel ε 0.5)."""
    return (
        not is_clean(row)
        and not is_latent(row)
        and bool(cfg(row, "bounded"))
        and cfg(row, "eps") is not None
        and not is_universal(row)
        and not is_corruption(row)
    )


def cfg(row: Row, name: str, default: Any = None) -> Any:
    """One field of the row's attack_config."""
    return (row.get("attack_config") or {}).get(name, default)


def correct_mask(row: Row) -> np.ndarray:
    """Per-image correctness of a row as a bool array aligned with ``row["labels"]``.

    For a randomized defense (``extra["repeat_preds"]``: k prediction lists) an image counts as correct only if
    it is correct in every one of the k repeats (:func:`defbench.metrics.all_repeats_correct`); otherwise
    ``preds`` decides.
    """
    repeats = repeat_preds(row)
    if repeats:
        return metrics.all_repeats_correct(repeats, row["labels"])
    return metrics.correct(row["preds"], row["labels"])


def is_batch_coupled(row: Row) -> bool:
    """Whether the row's defense couples the images of a batch (one learned surrogate per purified batch, as
    MimicGAN): the runner says so in ``extra``; rows stored before it did show it by their per-batch f̂ scales."""
    extra = row.get("extra") or {}
    return bool(extra.get("batch_coupled") or extra.get("surrogate_scale"))


def batch_accuracies(row: Row, first: bool = False) -> list[float]:
    """Accuracy of each purified batch of a batch-coupled row, in the order the runner purified them (consecutive
    ``extra["batch_size"]`` images, repeat rule applied; ``first``: each image's first purification, as a paper
    report reads a cell); empty for any other row."""
    ok = metrics.correct(row["preds"], row["labels"]) if first else correct_mask(row)
    out, start = [], 0
    for k in batch_lengths(row):
        out.append(float(ok[start : start + k].mean()))
        start += k
    return out


def batch_lengths(row: Row) -> list[int]:
    """How many images each purified batch of a batch-coupled row held: ``extra["batch_size"]`` is the run's
    setting, and a cell of fewer images (``--n 20`` at batch 100, a BPDA subset) or the last batch of an uneven
    split holds fewer; empty for any other row."""
    size = (row.get("extra") or {}).get("batch_size")
    if not is_batch_coupled(row) or not size:
        return []
    n, size = len(row["labels"]), int(size)
    return [min(size, n - i) for i in range(0, n, size)]


def batch_spread_notes(named_rows: Iterable[tuple[str, Row]], first: bool = False) -> list[str]:
    """One note per batch-coupled defense (the name paired with each row): how far the accuracies of one cell's
    batches differ at most, which a binomial interval over the images does not show; or, when every cell of it
    is one batch, that this spread is not measured (another surrogate fit of the same batch is, where its cells
    were purified several times: :func:`repeat_spread_notes`). ``first``: batches read by each image's first
    purification (a paper report's reading) instead of the all-purifications rule."""
    widest: dict[str, tuple[float, int]] = {}
    sizes: dict[str, set[int]] = {}
    refitted: set[str] = set()
    for name, r in named_rows:
        if repeat_count(r) > 1:
            refitted.add(name)
        per_batch = batch_accuracies(r, first)
        if per_batch:
            spread = (max(per_batch) - min(per_batch), len(per_batch))
            widest[name] = max(widest.get(name, (0.0, 0)), spread, key=lambda t: (t[1] > 1, t[0]))
            sizes.setdefault(name, set()).update(batch_lengths(r))

    def head(d: str) -> str:
        # the batch size is part of the defense: the surrogate is fitted to the batch (the same images score
        # differently in a batch of 20 and of 100), so the note names it
        b = " or ".join(str(s) for s in sorted(sizes[d]))
        return (
            f"batch-coupled (one learned surrogate per purified batch, here of {b} images), so the images of a "
            "batch are not independent and a cell depends on the batch size"
        )

    return [
        f"{d}: {head(d)}: within one cell its {k} batches' accuracies differ by up to {100 * w:.0f} points; that "
        "spread, not a binomial interval over the images, says how far a cell can move."
        if k > 1
        else f"{d}: {head(d)}, and each of its cells is one batch: how far another batch"
        f"{'' if d in refitted else ' (another surrogate fit)'} would move a cell is not measured, and a binomial "
        "interval over the images understates it"
        + (
            "; another surrogate fit of the same batch is measured by its purifications (their spread is noted)."
            if d in refitted
            else "."
        )
        for d, (w, k) in widest.items()
    ]


def repeat_spread_notes(named_rows: Iterable[tuple[str, Row]]) -> list[str]:
    """One note per randomized defense whose cells were purified k > 1 times (the name paired with each row): how
    far the k purifications' accuracies, each counted alone, differ within one cell at most, and that cell's k
    accuracies. The table's all-k rule hides this spread; it is how far a one-purification cell (as the papers
    classify) can move with the purification's seed."""
    widest: dict[str, tuple[float, str, list[float]]] = {}
    for name, r in named_rows:
        reps = repeat_preds(r)
        if len(reps) < 2:
            continue
        accs = [metrics.accuracy(p, r["labels"]) for p in reps]
        spread = max(accs) - min(accs)
        if name not in widest or spread > widest[name][0]:
            widest[name] = (spread, cell_name(r), accs)
    return [
        f"{d}: its {len(accs)} purifications of one cell (fresh seeds, the same images and adversarial examples), "
        f"each counted alone, differ by up to {100 * w:.0f} points "
        f"({where}: {', '.join(f'{100 * a:.0f}' for a in accs)}%): how far one purification's cell can move with "
        "its seed, which a binomial interval over the images does not show."
        for d, (w, where, accs) in widest.items()
    ]


def accuracy(row: Row) -> float:
    """Fraction of the row's images counted correct (repeat rule applied); NaN for an empty row."""
    repeats = repeat_preds(row)
    if repeats:
        return metrics.all_repeats_accuracy(repeats, row["labels"])
    return metrics.accuracy(row["preds"], row["labels"])


def undefended_accuracy(row: Row) -> float:
    """Fraction of the row's images the bare classifier gets right (``preds_undefended``); NaN for none."""
    return metrics.accuracy(row["preds_undefended"], row["labels"])


def detection_auc(clean: Row, attacked: Row) -> float:
    """ROC AUC of the InvGAN detection score, every clean image (label 0) against every attacked one (label 1);
    NaN where undefined (no scores, non-finite or all equal). When the attacked row covers a subset of the clean
    row's images (fewer images for an expensive threat) the clean scores of that subset are used. This is how
    InvGAN's code computes the paper's Table 3 (its ``plots/plot_ROC.py`` sets the whole clean run against the
    whole attacked run, whether the classifier got an image right or the attack succeeded)."""
    return detection_auc_all(clean, attacked)[0]


def detection_auc_all(clean: Row, attacked: Row) -> tuple[float, int, int]:
    """:func:`detection_auc` with its (negatives, positives) counts: the clean scores it used and the attacked
    images."""
    s0 = list(clean["scores"])
    sub = {int(i) for i in attacked.get("indices") or ()}
    cidx = [int(i) for i in clean.get("indices") or ()]
    if cidx and len(cidx) != len(s0):  # no image's score can be told from another's
        raise ValueError(f"the clean row has {len(cidx)} indices but {len(s0)} detection scores")
    if sub and sub < set(cidx):
        s0 = [s for i, s in zip(cidx, s0, strict=True) if i in sub]
    s1 = list(attacked["scores"])
    return metrics.roc_auc(s0, s1), len(s0), len(s1)


def attack_succeeded(row: Row) -> np.ndarray:
    """Per image of an attack row: whether the attack fooled the model it attacked. Gray-box attacks attack the
    bare classifier (``preds_undefended``); white-box threats attack the defended model (``preds``)."""
    if row.get("threat") == "graybox":
        return ~metrics.correct(row["preds_undefended"], row["labels"])
    return ~correct_mask(row)


#: the detection protocol of :func:`protocol_scores`, as reports name it. Defbench's choice (set by the issue
#: "Numbers a reviewer can trust"), not InvGAN's: neither its text nor its code restricts the images this way.
SUCCESS_PROTOCOL = "success protocol"


def detection_auc_protocol(clean: Row, attacked: Row) -> tuple[float, int, int]:
    """ROC AUC of the InvGAN detection score under the success protocol, with its (negatives, positives) counts
    (:func:`protocol_scores`). NaN where either side is empty or the scores are undefined."""
    neg, pos = protocol_scores(clean, attacked)
    return metrics.roc_auc(neg, pos), len(neg), len(pos)


def protocol_scores(clean: Row, attacked: Row) -> tuple[list[float], list[float]]:
    """The detection scores the success protocol sets against each other: negatives are the clean images the bare
    classifier classifies correctly, positives the *successful* adversarial examples (:func:`attack_succeeded`)
    made from those same images, so that a detector is scored on the attacks that matter. Images are matched by
    test-set index; an attacked row on a subset of the clean images uses that subset. InvGAN's code does not
    restrict the images (:func:`detection_auc` is its reading)."""
    c_idx = [int(i) for i in clean.get("indices") or range(len(clean["labels"]))]
    ok = metrics.correct(clean["preds_undefended"], clean["labels"])
    clean_ok = {i: (bool(k), float(s)) for i, k, s in zip(c_idx, ok, clean["scores"], strict=True)}
    a_idx = [int(i) for i in attacked.get("indices") or range(len(attacked["labels"]))]
    won = attack_succeeded(attacked)
    neg = [clean_ok[i][1] for i in a_idx if i in clean_ok and clean_ok[i][0]]
    pos = [
        float(s) for i, s, w in zip(a_idx, attacked["scores"], won, strict=True) if w and clean_ok.get(i, (False,))[0]
    ]
    return neg, pos


def repeat_preds(row: Row) -> list[list[int]]:
    """A randomized defense's k prediction lists (one per purification); empty when the row has no repeats."""
    return (row.get("extra") or {}).get("repeat_preds") or []


def repeat_count(row: Row) -> int:
    """k for a randomized defense's row, 0 when the row has no repeats."""
    return len(repeat_preds(row))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) ignoring NaN; (nan, nan) if empty."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def ordered_unique(items: Iterable[Any]) -> list[Any]:
    """Items in order of first appearance, without repeats."""
    return list(dict.fromkeys(items))


def attack_names(rows: Iterable[Row]) -> dict[tuple[str, str], str]:
    """Display label per attack key, in order of first appearance.

    Configurations that share a label are told apart by what differs: their ε first (the rows of an ε sweep
    read "FGSM ε=0.1", "FGSM ε=0.15"), then the parameters that differ ("PGD steps=10"); only where nothing
    readable differs is the config hash appended, so cells never merge.
    """
    first: dict[tuple[str, str], Row] = {}
    for r in rows:
        if not is_clean(r):
            first.setdefault(attack_key(r), r)
    names = {k: attack_label(r) for k, r in first.items()}

    def groups() -> dict[str, list[tuple[str, str]]]:
        g: dict[str, list[tuple[str, str]]] = {}
        for k, v in names.items():
            g.setdefault(v, []).append(k)
        return {v: ks for v, ks in g.items() if len(ks) > 1}

    for label, ks in groups().items():
        eps = {k: cfg(first[k], "eps") for k in ks}
        if len({None if e is None else round(float(e), 9) for e in eps.values()}) > 1 and not is_latent(first[ks[0]]):
            for k in ks:
                names[k] = f"{label} ε={float(eps[k]):g}" if eps[k] is not None else label
    for label, ks in groups().items():
        params = {k: dict(cfg(first[k], "params") or {}) for k in ks}
        differ = sorted({p for k in ks for p in params[k] if len({json_str(params[j].get(p)) for j in ks}) > 1})
        if differ:
            for k in ks:
                names[k] = label + " " + ",".join(f"{p}={json_str(params[k].get(p))}" for p in differ)
    clashes = Counter(names.values())
    return {k: (f"{v} [{k[1][:6]}]" if clashes[v] > 1 else v) for k, v in names.items()}


def json_str(v: Any) -> str:
    """A parameter value as the tables print it (numbers with %g)."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _flat_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """A defense_config as dotted keys ("model_sha256.G") to plain values."""
    if not isinstance(config, Mapping):
        return {prefix.rstrip("."): config} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in config.items():
        out.update(_flat_config(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
    return out


def _short(v: Any) -> str:
    """A config value as a column name shows it: numbers with %g, a digest by its first 6 hex digits."""
    text = json_str(v)
    return text[:6] if isinstance(v, str) and len(v) >= 32 and all(c in "0123456789abcdef" for c in v) else text


#: at most this many differing options name a column; more, and the config hash does
_MAX_NAMED = 3


def base_names(bases: Iterable[Base], configs: Mapping[Base, Any] | None = None) -> dict[Base, str]:
    """Display name per defended model: the defense name, qualified only where needed.

    When one defense appears with several configs, each is named by the options in which they differ, read from
    ``configs`` (a base's ``defense_config``): "median (kernel_size=5)", "none (n=100)", "defensegan
    (model_sha256.G=1a2b3c)"; the config hash ("median#1a2b3c") where no config is given or more than
    :data:`_MAX_NAMED` options differ. "dataset/classifier: " is prefixed when the rows span several datasets or
    classifiers.
    """
    bases = ordered_unique(bases)
    models = {(b[0], b[1]) for b in bases}
    hashes: dict[tuple[str, str, str], list[Base]] = {}
    for b in bases:
        hashes.setdefault(b[:3], []).append(b)
    out = {}
    for b in bases:
        name = b[2]
        group = hashes[b[:3]]
        if len(group) > 1:
            flat = {g: _flat_config((configs or {}).get(g)) for g in group}
            keys = sorted({k for f in flat.values() for k in f})
            differ = [
                k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat.values()}) > 1
            ]
            if configs is None or not differ or len(differ) > _MAX_NAMED or not flat[b]:
                name = f"{b[2]}#{b[3][:6]}"
            else:
                name = f"{b[2]} (" + ", ".join(f"{k}={_short(flat[b].get(k))}" for k in differ) + ")"
        out[b] = f"{b[0]}/{b[1]}: {name}" if len(models) > 1 else name
    clashes = Counter(out.values())  # two configs that print alike (lr=10 and lr=10.0): told apart by hash
    return {b: (f"{n}#{b[3][:6]}" if clashes[n] > 1 else n) for b, n in out.items()}


def base_names_of(rows: Iterable[Row]) -> dict[Base, str]:
    """:func:`base_names` of the defended models of ``rows``, named by their configs where they differ."""
    configs: dict[Base, Any] = {}
    for r in rows:
        configs.setdefault(base_key(r), r.get("defense_config"))
    return base_names(configs, configs)


def threat_sort_key(threat: str) -> tuple[int, str]:
    """Sort threats in the canonical order (graybox first), unknown ones last."""
    return (THREAT_ORDER.index(threat) if threat in THREAT_ORDER else len(THREAT_ORDER), threat)


def eps_equal(a: Any, b: Any) -> bool:
    """Whether two eps values (float or None) are the same budget."""
    if a is None or b is None:
        return False
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)


def markdown_table(df: pd.DataFrame, index: bool = False, align: Sequence[str] | None = None) -> str:
    """``df`` as a Markdown pipe table by pandas' ``DataFrame.to_markdown`` (tabulate). Cells print as they are
    (as text: "25.0" stays "25.0", tabulate would print 25); a ``|`` in a cell is escaped and a line break made a
    space, so no cell splits the table. ``align``: "left" or "right" per column (the index first), else left."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    text = df.map(cell)
    text.columns = [cell(c) for c in df.columns]
    if index:
        text.index = pd.Index([cell(i) for i in df.index], name=df.index.name)
    return text.to_markdown(index=index, disable_numparse=True, colalign=align)
