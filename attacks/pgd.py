"""PGD (ℓ∞) — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks" (ICLR 2018).

Projected gradient ascent on the cross-entropy from a random start in the ε-ball, via ``torchattacks.PGD``.

Arguments: eps (default 0.3 / 8/255), step (the size of each step in pixel units, a positive number;
default (4/3)·ε/steps: cleverhans' MadryEtAl total travel, i.e. 0.01 at ε = 0.3 with its 40 steps, rescaled
when steps change), steps (a whole number >= 1, default 40), random_start (default True).
RIDE's BPDA protocol uses steps = 10 with ε = 0.1, step 0.02 on MNIST and
ε = 0.05, step 0.01 on CIFAR-10/ImageNet (``defbench paper`` specs set these).
Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_adv = get_attack("pgd", "mnist", eps=0.1, step=0.02, steps=10)(classifier, x, y)
"""

import torchattacks

from defbench.attacks.base import Attack, check_positive


class PGD(Attack):
    name = "pgd"
    label_name = "PGD"
    iterative = True
    defaults = {"step": None, "steps": 40, "random_start": True}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        check_positive(self, "step")
        check_positive(self, "steps", whole=True)

    def run(self, model, x, y):
        step = self.params["step"]
        if step is None:
            step = (4 / 3) * self.eps / self.params["steps"]
        atk = torchattacks.PGD(
            model, eps=self.eps, alpha=step, steps=self.params["steps"], random_start=self.params["random_start"]
        )
        return atk(x, y)
