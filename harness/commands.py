"""Sub-commands beyond training and the zoo (defend, matrix, paper) are registered here."""

from __future__ import annotations


def add_subcommands(sub, common) -> None:
    return None
