"""Simple input-transformation baselines RIDE compares with: median filtering and TV minimisation.

median: ART's ``SpatialSmoothing`` (scipy median filter, window k). tvm: scikit-image's Chambolle TV
denoiser (``denoise_tv_chambolle``), the algorithm RIDE reports alongside split-Bregman
(``method='bregman'`` selects scikit-image's split-Bregman solver).
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
        self.kernel_size = kernel_size

    def config(self):
        return {"kernel_size": self.kernel_size}

    def _purify(self, x, seed):
        from art.defences.preprocessor import SpatialSmoothing

        smoother = SpatialSmoothing(window_size=self.kernel_size, channels_first=True, clip_values=(0.0, 1.0))
        out, _ = smoother(x.cpu().numpy().astype(np.float32))
        return torch.from_numpy(out).to(x.device, x.dtype)


class TVMinimization(Defense):
    name = "tvm"

    def __init__(self, weight: float = 0.1, method: str = "chambolle", shape=None, seed: int = 0):
        super().__init__(shape, seed)
        if method not in ("chambolle", "bregman"):
            raise DefbenchError(f"tvm method must be chambolle or bregman, got {method!r}")
        if not (math.isfinite(weight) and weight > 0):
            raise DefbenchError(f"tvm weight must be a finite number > 0, got {weight}")
        self.weight, self.method = float(weight), method

    def config(self):
        return {"weight": self.weight, "method": self.method}

    def _purify(self, x, seed):
        from skimage.restoration import denoise_tv_bregman, denoise_tv_chambolle

        arr = x.cpu().numpy().astype(np.float64)
        if self.method == "chambolle":
            out = [denoise_chw(denoise_tv_chambolle, img, weight=self.weight) for img in arr]
        else:  # scikit-image's weight is the inverse regularisation strength for Bregman
            out = [denoise_chw(denoise_tv_bregman, img, weight=1.0 / self.weight) for img in arr]
        return torch.from_numpy(np.stack(out)).to(x.device, x.dtype)


def denoise_chw(denoise, img: np.ndarray, **kw) -> np.ndarray:
    """A scikit-image denoiser ``denoise(image, **kw)`` applied to one (C, H, W) image: channels last where there
    are several (``channel_axis``), a 2-D image for one (scikit-image's Bregman solver given one channel with
    ``channel_axis`` returns a 2-D array)."""
    hwc = img.transpose(1, 2, 0)
    if hwc.shape[2] > 1:
        return denoise(hwc, channel_axis=-1, **kw).transpose(2, 0, 1)
    return denoise(hwc[..., 0], **kw)[None]
