"""Defenses: the projection engine's GAN-prior defenses, RIDE and the baselines behind one interface, plus every
installed plugin (entry-point group ``defbench.defenses``, docs/PLUGINS.md).

>>> from defbench.defenses import build_defense
>>> x_hat = build_defense("median", "fmnist").purify(x, seed=0)

GAN-prior defenses need trained models: ``defbench.harness.models.build_defense("defensegan", "fmnist")`` takes
them from the model zoo.
"""

from defbench.defenses.base import Defense
from defbench.defenses.registry import available, build_defense

__all__ = ["Defense", "available", "build_defense"]
