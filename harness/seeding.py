"""Seeds and devices live in the core (:mod:`defbench.seeding`); re-exported here, where they always were."""

from defbench.seeding import DEFAULT_SEED, derive_seed, resolve_device, seed_everything

__all__ = ["DEFAULT_SEED", "derive_seed", "resolve_device", "seed_everything"]
