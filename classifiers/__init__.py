"""Classifiers: the papers' architectures and their training, plus every installed plugin (entry-point group
``defbench.classifiers``: a user's architecture with a loader for their weights, see
:mod:`defbench.classifiers.registry`)."""

from defbench.classifiers.base import ClassifierPlugin
from defbench.classifiers.registry import available, load_plugin

__all__ = ["ClassifierPlugin", "available", "load_plugin"]
