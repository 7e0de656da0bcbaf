"""Square Attack (ℓ∞) — Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search" (ECCV 2020).

Score-based: a random search over square-shaped updates at the corners of the ε-ball that reads only the model's
outputs (its margin loss) and never a gradient, via ``torchattacks.Square``. Handed ``f ∘ defense`` (threat
``bpda``, whose forward purifies) it attacks the defended model itself, with no stand-in for the defense's
gradient: Athalye et al.'s (ICML 2018) check that a gradient-free attack must not beat the gradient-based ones
(sanity check (d) of the report flags it when it does). Each query is one forward pass, so under ``bpda`` one
purification: ``n_queries`` purifications per image at most (images are dropped once misclassified).

Arguments: eps (default 0.3 / 8/255), n_queries (a whole number >= 1, default 5000: AutoAttack's), n_restarts
(default 1), p_init (the initial share of the image a square covers, in (0, 1]; default 0.8, the paper's ℓ∞
value), seed (torchattacks reseeds PyTorch's global generator with it on each call; default None: drawn from that
generator, which the harness seeds per cell and batch, so each run seed and batch searches differently and a rerun
repeats it).
Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_adv = get_attack("square", "fmnist", eps=0.1, n_queries=1000)(classifier, x, y)
"""

import torch
import torchattacks

from defbench.attacks.base import Attack, check_positive


class Square(Attack):
    name = "square"
    label_name = "Square"
    iterative = True
    defaults = {"n_queries": 5000, "n_restarts": 1, "p_init": 0.8, "seed": None}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        check_positive(self, "n_queries", whole=True)
        check_positive(self, "n_restarts", whole=True)
        check_positive(self, "p_init", most=1.0)
        check_positive(self, "seed", whole=True, zero=True)  # None passes: drawn per call

    def run(self, model, x, y):
        p = self.params
        seed = int(torch.randint(2**31 - 1, ()).item()) if p["seed"] is None else p["seed"]
        atk = torchattacks.Square(
            model,
            norm="Linf",
            eps=self.eps,
            n_queries=p["n_queries"],
            n_restarts=p["n_restarts"],
            p_init=p["p_init"],
            loss="margin",
            seed=seed,
        )
        return atk(x, y)
