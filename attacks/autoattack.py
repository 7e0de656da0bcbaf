"""AutoAttack — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks" (ICML 2020).

APGD-CE, APGD-T, FAB-T and Square, each run on the points the previous ones did not break (standard
version), via ``torchattacks.AutoAttack``. Not in the seed papers; included because it is the evaluation
the field trusts most today.

Arguments: eps (ℓ∞, default 0.3 / 8/255), version ('standard' | 'rand' for randomized defenses),
seed (default 0).
Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_adv = get_attack("autoattack", "cifar10")(classifier, x, y)
"""

import torchattacks

from defbench.attacks.base import Attack
from defbench.datasets import NUM_CLASSES


class AutoAttack(Attack):
    name = "autoattack"
    label_name = "AutoAttack"
    iterative = True
    defaults = {"version": "standard", "seed": 0}

    def run(self, model, x, y):
        atk = torchattacks.AutoAttack(
            model,
            norm="Linf",
            eps=self.eps,
            version=self.params["version"],
            n_classes=NUM_CLASSES.get(self.dataset, 10),
            seed=self.params["seed"],
        )
        return atk(x, y)
