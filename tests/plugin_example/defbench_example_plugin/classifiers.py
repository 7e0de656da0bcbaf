"""A classifier plugin: a linear classifier of 28x28 grey images whose weights (a state dict) are read from the
file $DEFBENCH_EXAMPLE_WEIGHTS."""

import os

import torch
from torch import nn

from defbench.classifiers import ClassifierPlugin


class Linear(ClassifierPlugin):
    name = "linear"
    datasets = ("fmnist", "mnist")

    def load(self, dataset, device):
        net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
        weights = os.environ.get("DEFBENCH_EXAMPLE_WEIGHTS", "weights.pt")
        net.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        return net

    def config(self):
        return {"architecture": "linear 784 -> 10"}
