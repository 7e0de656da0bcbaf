"""An attack plugin: momentum iterative FGSM from torchattacks.

MI-FGSM — Dong et al., "Boosting Adversarial Attacks with Momentum" (CVPR 2018).
"""

import torchattacks

from defbench.attacks import Attack


class MIFGSM(Attack):
    name = "mifgsm"
    label_name = "MI-FGSM"
    iterative = True
    defaults = {"steps": 10, "decay": 1.0}

    def run(self, model, x, y):
        p = self.params
        return torchattacks.MIFGSM(
            model, eps=self.eps, alpha=self.eps / p["steps"], steps=p["steps"], decay=p["decay"]
        )(x, y)
