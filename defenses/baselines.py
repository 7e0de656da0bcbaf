"""Simple input-transformation baselines RIDE compares with: median filtering and TV minimisation.

median: ART's ``SpatialSmoothing`` (scipy median filter, window k). tvm: scikit-image's Chambolle TV
denoiser (``denoise_tv_chambolle``), the algorithm RIDE reports alongside split-Bregman
(``method='bregman'`` selects scikit-image's split-Bregman solver). By default each solver stops by
scikit-image's own rule, short of the TV minimiser (docs/DEFENSES.md); ``iterations=N`` runs exactly N.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from defbench import DefbenchError
from defbench.defenses.base import Defense


class MedianFilter(Defense):
    name = "median"

    def __init__(self, kernel_size: int = 3, shape=None, seed: int = 0):
        super().__init__(shape, seed)
        if kernel_size < 1:
            raise DefbenchError(f"median kernel_size must be >= 1, got {kernel_size}")
        if shape is not None and kernel_size > min(shape[-2:]):  # past the image (99999: 74 GiB, then a crash)
            raise DefbenchError(
                f"median kernel_size must be at most the image side, {min(shape[-2:])}, got {kernel_size}"
            )
        self.kernel_size = kernel_size

    def config(self):
        return {"kernel_size": self.kernel_size}

    def _purify(self, x, seed):
        from art.defences.preprocessor import SpatialSmoothing

        smoother = SpatialSmoothing(window_size=self.kernel_size, channels_first=True, clip_values=(0.0, 1.0))
        out, _ = smoother(x.cpu().numpy().astype(np.float32))
        return torch.from_numpy(out).to(x.device, x.dtype)


class TVMinimization(Defense):
    """Total-variation minimisation (Rudin, Osher and Fatemi's denoising) of each image, by scikit-image.

    Args:
        weight: the TV term's weight: Chambolle's ``weight``; split-Bregman gets 1/weight, so that a larger weight
            denoises more with either solver (their weights are not one scale: docs/DEFENSES.md).
        method: ``chambolle`` or ``bregman``.
        iterations: 0 (default) stops where scikit-image's solver stops (Chambolle: 200 iterations, or once
            the energy changes by less than 2e-4 of its first value; split-Bregman: 100, or an update under
            1e-3), short of the minimiser; N > 0 runs exactly N iterations (no early stop). Recorded in the
            config (the cell key) only when set, so the default's cells keep their keys.
    """

    name = "tvm"

    def __init__(self, weight: float = 0.1, method: str = "chambolle", iterations: int = 0, shape=None, seed: int = 0):
        super().__init__(shape, seed)
        if method not in ("chambolle", "bregman"):
            raise DefbenchError(f"tvm method must be chambolle or bregman, got {method!r}")
        if not (math.isfinite(weight) and weight > 0):
            raise DefbenchError(f"tvm weight must be a finite number > 0, got {weight}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise DefbenchError(
                f"tvm iterations must be a whole number >= 0 (0: scikit-image's stopping rule), got {iterations!r}"
            )
        self.weight, self.method, self.iterations = float(weight), method, iterations

    def config(self):
        return {
            "weight": self.weight,
            "method": self.method,
            **({"iterations": self.iterations} if self.iterations else {}),
        }

    def _purify(self, x, seed):
        from skimage.restoration import denoise_tv_bregman, denoise_tv_chambolle

        # eps 0: Chambolle stops on an energy change below eps·E0, never; split-Bregman on an update not above eps,
        # only at an exact fixed point (where more iterations change nothing): so N iterations
        stop = {"max_num_iter": self.iterations, "eps": 0.0} if self.iterations else {}
        arr = x.cpu().numpy().astype(np.float64)
        if self.method == "chambolle":
            out = [denoise_chw(denoise_tv_chambolle, img, weight=self.weight, **stop) for img in arr]
        else:  # scikit-image's weight is the inverse regularisation strength for Bregman
            out = [denoise_chw(denoise_tv_bregman, img, weight=1.0 / self.weight, **stop) for img in arr]
        return torch.from_numpy(np.stack(out)).to(x.device, x.dtype)


def denoise_chw(denoise, img: np.ndarray, **kw) -> np.ndarray:
    """A scikit-image denoiser ``denoise(image, **kw)`` applied to one (C, H, W) image: channels last where there
    are several (``channel_axis``), a 2-D image for one (scikit-image's Bregman solver given one channel with
    ``channel_axis`` returns a 2-D array)."""
    hwc = img.transpose(1, 2, 0)
    if hwc.shape[2] > 1:
        return denoise(hwc, channel_axis=-1, **kw).transpose(2, 0, 1)
    return denoise(hwc[..., 0], **kw)[None]
