"""Corruptions of MimicGAN Fig. 4(b) — Anirudh et al., "MimicGAN: Corruption-Mimicking for Blind Image
Recovery & Adversarial Defense" (2019), §4.2 "Robust classification under corruptions".

Not attacks: model-independent transformations of the test images, registered as attacks so that the
matrix runs them like any other input perturbation (threat ``graybox``: the model is ignored).

* ``binarize`` — each image thresholded at its own 50th percentile: "a threshold set at the 50th percentile
  value" (per image is our reading; ``scope=batch`` takes one percentile over every pixel of the call, as the
  appendix's stylize code takes ``np.percentile`` of the whole array). ``ties`` says where pixels equal to the
  median go: ``white`` (default, x ≥ median becomes 1) or ``black`` (only x > median becomes 1). About half of
  Fashion-MNIST's images have median 0 (background: 48.2% of mimicgan-fig4b's 500), so the choice decides
  whether the background turns white; ``white`` leaves our paper classifier 43.8% on those 500 images against
  the paper's observed 37.0%, ``black`` 83.2% (docs/RESULTS.md).
* ``drop-pixels`` — a random ``fraction`` (0.7) of the pixels set to 0, drawn from torch's seeded RNG. ``mask``:
  ``image`` (default, a fresh mask per image) or ``batch`` (one mask for every image of a call, i.e. of a
  matrix batch): the paper's appendix code applies one mask to all images (``x*mask for x in imgs``) and
  MimicGAN-2 §5.1 "the same corruption on all of them"; Fig. 4(b)'s text does not say which.
* ``blur-negative`` — Gaussian blur with a 25×25 kernel, σ = 0.3·((25 − 1)/2 − 1) + 0.8 = 4.1 (OpenCV's
  ``GaussianBlur(img, (25, 25), 0)`` of the paper's appendix code), then the negative (1 − x in [0, 1],
  the paper's ``0 − x`` in [-1, 1]).

``range`` (every corruption): ``unit`` (default) computes on the [0, 1] images defbench feeds its models;
``signed`` computes on the same images in [-1, 1], as the paper's code does (its Fashion-MNIST generator ends in
TanH, and its corruption code writes into [-1, 1] arrays), then maps the result back to [0, 1]. The literal values
of the text then land elsewhere: a dropped pixel "set to 0" becomes mid-grey (0.5 on [0, 1]), and a binary image
of 0s and 1s becomes 0.5 and 1; the negative is the same image under either range (1 − x on [0, 1] is 0 − x on
[-1, 1]).

Arguments: no ε (unbounded); ``ties`` and ``scope`` for binarize, ``fraction`` and ``mask`` for drop-pixels,
``kernel`` for blur-negative, ``range`` for all three.
Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_bin = get_attack("binarize", "fmnist")(classifier, x, y)
"""

from __future__ import annotations

import torch
from torchvision.transforms.functional import gaussian_blur

from defbench import DefbenchError
from defbench.attacks.base import Attack


RANGES = ("unit", "signed")


class _Corruption(Attack):
    family = "corruption"
    bounded = False
    defaults = {"range": "unit"}
    key_stable = {"range": "unit"}

    def __init__(self, dataset: str = "fmnist", eps: float | None = None, **params):
        super().__init__(dataset, eps, **params)
        if self.params["range"] not in RANGES:
            raise DefbenchError(f"{self.name} range must be 'unit' or 'signed', got {self.params['range']!r}")
        self.check_params()  # when the matrix is built, before any image is touched

    def check_params(self) -> None:
        """Raise DefbenchError for a parameter value the corruption cannot use (default: nothing to check)."""

    def run(self, model, x, y):
        return self.corrupt(x)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The corrupted images, in [0, 1] like ``x``; computed on [-1, 1] pixels under ``range=signed``."""
        if self.params["range"] == "unit":
            return self._corrupt(x)
        return (self._corrupt(x * 2 - 1) + 1) / 2

    def _corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The corruption's arithmetic on images in the range of ``range`` (0 is black, or mid-grey if signed)."""
        raise NotImplementedError


class Binarize(_Corruption):
    name = "binarize"
    label_name = "Binary"
    defaults = {**_Corruption.defaults, "ties": "white", "scope": "image"}
    key_stable = {**_Corruption.key_stable, "scope": "image"}

    def check_params(self):
        if self.params["ties"] not in ("white", "black"):
            raise DefbenchError(f"binarize ties must be 'white' or 'black', got {self.params['ties']!r}")
        if self.params["scope"] not in ("image", "batch"):
            raise DefbenchError(f"binarize scope must be 'image' or 'batch', got {self.params['scope']!r}")

    def _corrupt(self, x):
        if self.params["scope"] == "batch":  # one percentile over every pixel of the call, as the appendix's code
            t = x.flatten().quantile(0.5)
        else:
            t = x.flatten(1).quantile(0.5, dim=1).view(-1, 1, 1, 1)
        return (x >= t if self.params["ties"] == "white" else x > t).to(x.dtype)


class DropPixels(_Corruption):
    name = "drop-pixels"
    label_name = "Dropped Pixels"
    defaults = {**_Corruption.defaults, "fraction": 0.7, "mask": "image"}

    def check_params(self):
        f = float(self.params["fraction"])
        if not 0 <= f <= 1:
            raise DefbenchError(f"drop-pixels fraction must be in [0, 1], got {f}")
        if self.params["mask"] not in ("image", "batch"):
            raise DefbenchError(f"drop-pixels mask must be 'image' or 'batch', got {self.params['mask']!r}")

    def _corrupt(self, x):
        f = float(self.params["fraction"])
        n = x.shape[0] if self.params["mask"] == "image" else 1
        keep = torch.rand(n, 1, *x.shape[2:], device=x.device) >= f  # same pixels in every channel
        return x * keep


class BlurNegative(_Corruption):
    name = "blur-negative"
    label_name = "Negative Blur"
    defaults = {**_Corruption.defaults, "kernel": 25}

    def check_params(self):
        k = int(self.params["kernel"])
        if k < 1 or k % 2 == 0:
            raise DefbenchError(f"blur-negative kernel must be an odd positive size, got {k}")

    def _corrupt(self, x):
        k = int(self.params["kernel"])
        sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
        blurred = gaussian_blur(x, [k, k], [sigma, sigma])
        return 0 - blurred if self.params["range"] == "signed" else 1 - blurred  # the paper's 0 − x on [-1, 1]
