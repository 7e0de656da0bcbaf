"""DeepFool — Moosavi-Dezfooli, Fawzi, Frossard, "DeepFool: a simple and accurate method to fool deep
neural networks" (CVPR 2016).

Minimal ℓ2 perturbation by iterated linearisation of the decision boundaries, via foolbox 3's
``L2DeepFoolAttack`` with cleverhans' defaults (50 steps, 10 candidate classes, overshoot 0.02).
Unbounded (``bounded = False``).

Where DeepFool fails (its last iterate is not misclassified by the attacked model, by foolbox's own verdict,
e.g. when the step budget runs out before a boundary is crossed), the output is the *clean image*, not that
non-adversarial iterate: an unfinished iterate is not an adversarial example and its partial perturbation
would be scored as one. ``last_failed`` holds the per-image failure mask of the last call.

Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_adv = get_attack("deepfool", "fmnist")(classifier, x, y)
"""

import foolbox as fb

from defbench.attacks.base import Attack, check_positive, keep_adversarial, model_device


class DeepFool(Attack):
    name = "deepfool"
    label_name = "DeepFool"
    iterative = True
    bounded = False
    defaults = {"steps": 50, "candidates": 10, "overshoot": 0.02}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        check_positive(self, "steps", whole=True)
        check_positive(self, "candidates", whole=True)
        check_positive(self, "overshoot", zero=True)

    def run(self, model, x, y):
        p = self.params
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=model_device(model))
        atk = fb.attacks.L2DeepFoolAttack(steps=p["steps"], candidates=p["candidates"], overshoot=p["overshoot"])
        _, clipped, success = atk(fmodel, x, y, epsilons=None)
        x_adv, self.last_failed = keep_adversarial(x, clipped, success)
        return x_adv
