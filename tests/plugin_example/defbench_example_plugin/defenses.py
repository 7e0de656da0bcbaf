"""A defense plugin: Gaussian noise, then a 3x3 box blur. The noise makes it randomized: every draw comes from
the seed of the call, so the same (x, seed) always gives the same output."""

import torch
import torch.nn.functional as F

from defbench.defenses import Defense


class NoisyBlur(Defense):
    name = "noisyblur"
    randomized = True

    def __init__(self, shape=None, seed=0, sigma=0.1):
        super().__init__(shape, seed)
        self.sigma = float(sigma)

    def config(self):
        return {"sigma": self.sigma}

    def _purify(self, x, seed):
        g = torch.Generator().manual_seed(seed)
        noisy = x + self.sigma * torch.randn(x.shape, generator=g).to(x.device)
        box = torch.ones(x.shape[1], 1, 3, 3, device=x.device) / 9
        return F.conv2d(noisy, box, padding=1, groups=x.shape[1])

    def stand_in(self, x):
        box = torch.ones(x.shape[1], 1, 3, 3, device=x.device) / 9
        return F.conv2d(x, box, padding=1, groups=x.shape[1])  # BPDA's backward: the blur without the noise
