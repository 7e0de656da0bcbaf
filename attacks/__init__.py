"""Attacks: library attacks (torchattacks, foolbox, ART) behind one interface, plus threat models.

>>> from defbench.attacks import get_attack
>>> x_adv = get_attack("pgd", "fmnist", eps=0.1)(model, x, y)
"""

from defbench.attacks.base import Attack
from defbench.attacks.registry import available, get_attack

__all__ = ["Attack", "available", "get_attack"]
