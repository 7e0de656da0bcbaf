"""FGSM — Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015).

x_adv = x + ε · sign(∇ₓ L(f(x), y)), via ``torchattacks.FGSM``.

Arguments: eps (ℓ∞, default 0.3 on MNIST/Fashion-MNIST and 8/255 on CIFAR-10, as InvGAN).
Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> from defbench.attacks import get_attack
    >>> x_adv = get_attack("fgsm", "fmnist")(classifier, x, y)
"""

import torchattacks

from defbench.attacks.base import Attack


class FGSM(Attack):
    name = "fgsm"
    label_name = "FGSM"

    def run(self, model, x, y):
        return torchattacks.FGSM(model, eps=self.eps)(x, y)
