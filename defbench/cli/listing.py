"""``defbench defense list``, ``attack list`` and ``classifier list``: the built-ins and the installed plugins,
each plugin with the distribution that ships it."""

from __future__ import annotations

from defbench.attacks import registry as attack_registry
from defbench.classifiers import registry as classifier_registry
from defbench.defenses import registry as defense_registry

REGISTRIES = {"defense": defense_registry, "attack": attack_registry, "classifier": classifier_registry}


def add_parsers(sub) -> None:
    for kind, registry in REGISTRIES.items():
        lp = sub.add_parser(
            kind,
            help=f"list the {kind}s: built-ins and installed plugins (with their distribution)",
            description=f"One line per {kind}: its name, then 'built-in' or 'plugin: DISTRIBUTION VERSION'"
            + (" and the datasets it supports" if kind == "classifier" else "")
            + f". Plugins are the entry points of group '{registry.ENTRY_POINT_GROUP}' of any installed package "
            "(docs/PLUGINS.md).",
        )
        lp.add_argument("action", choices=("list",), help="list")
        lp.set_defaults(func=list_components, kind=kind)


def list_components(args) -> int:
    """One line per name, built-ins first: the name, 'built-in' or 'plugin: DISTRIBUTION VERSION' (a
    classifier's line ends with the datasets it supports)."""
    registry = REGISTRIES[args.kind]
    plugins = registry.plugins()
    datasets = {}
    if args.kind == "classifier":
        datasets = {n: classifier_registry.supported_datasets(c) for n, c in classifier_registry.available().items()}
    for name in registry.available():
        dist = registry.distribution_of(plugins[name]) if name in plugins else None
        line = f"{name}\t{'plugin: ' + ' '.join(dist) if dist else 'built-in'}"
        print(line + ("\t" + ",".join(datasets[name]) if name in datasets else ""))
    return 0
