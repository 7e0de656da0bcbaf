"""CW-L2 — Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks" (S&P 2017).

Minimal-perturbation ℓ2 attack with a binary search over the trade-off constant, via foolbox 3's
``L2CarliniWagnerAttack`` (torchattacks' CW has no binary search). Defaults are InvGAN's: 6 binary-search
steps, learning rate 0.2, 100 iterations (§4.2), initial constant 10 (its code; the paper states none),
confidence 0. Unbounded: it reports whatever
perturbation it needs (``bounded = False``).

Where CW fails, the output is the *clean image*: foolbox starts its best adversarial at an all-zero image and
returns that placeholder for every input it did not break (a black image the defense would then be scored on);
here an input counts as broken when foolbox's own verdict says the output is misclassified by the attacked
model and the output is not that all-zero placeholder. foolbox does not expose a best non-adversarial
iterate. ``last_failed`` holds the per-image failure mask of the last call.

Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_adv = get_attack("cw", "fmnist", steps=50)(classifier, x, y)
"""

import foolbox as fb

from defbench.attacks.base import Attack, check_positive, keep_adversarial, model_device


class CW(Attack):
    name = "cw"
    label_name = "CW-L2"
    iterative = True
    bounded = False
    defaults = {"binary_search_steps": 6, "initial_const": 10.0, "lr": 0.2, "steps": 100, "confidence": 0.0}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        for key in ("binary_search_steps", "steps"):
            check_positive(self, key, whole=True)
        check_positive(self, "lr")
        check_positive(self, "initial_const")
        check_positive(self, "confidence", zero=True)

    def run(self, model, x, y):
        p = self.params
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=model_device(model))
        atk = fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=p["binary_search_steps"],
            steps=p["steps"],
            stepsize=p["lr"],
            confidence=p["confidence"],
            initial_const=p["initial_const"],
            abort_early=True,
        )
        _, clipped, success = atk(fmodel, x, y, epsilons=None)
        x_adv, self.last_failed = keep_adversarial(x, clipped, success, zero_placeholder=True)
        return x_adv
