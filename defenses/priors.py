"""GAN priors (generator G, discriminator D), the InvGAN encoder I and the MimicGAN surrogate f̂.

All networks speak images in [0, 1]: G maps z in [-1, 1]^d to (tanh + 1) / 2, D and I map [0, 1] inputs to
[-1, 1] internally. Latents are uniform in [-1, 1] and the defenses clip z to that box.
"""

from __future__ import annotations

import torch
from torch import nn

from defbench import DefbenchError

LATENT_DIM = 100


def sample_latent(
    n: int, dim: int = LATENT_DIM, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """z ~ U(-1, 1)^dim."""
    return torch.rand(n, dim, generator=generator).mul_(2).sub_(1).to(device)


class DCGANGenerator28(nn.Module):
    """MimicGAN appendix Table 3 (Fashion-MNIST; the same family for MNIST):
    FC(100,1024)+ReLU+BN, FC(1024,128*7*7)+ReLU+BN, reshape, strided transposed conv 4x4 128->64 + ReLU,
    strided transposed conv 4x4 64->1 + tanh."""

    def __init__(self, latent_dim: int = LATENT_DIM, channels: int = 1):
        super().__init__()
        self.latent_dim = latent_dim
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 1024),
            nn.ReLU(),
            nn.BatchNorm1d(1024),
            nn.Linear(1024, 128 * 7 * 7),
            nn.ReLU(),
            nn.BatchNorm1d(128 * 7 * 7),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, channels, 4, 2, 1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.deconv(self.fc(z).view(-1, 128, 7, 7)) + 1) / 2


class DCGANDiscriminator28(nn.Module):
    """MimicGAN appendix Table 4: conv 4x4 s2 64 + BN + LReLU, conv 4x4 s2 128 + BN + LReLU, FC 1024 +
    LReLU + BN, FC 1 (returns the logit; the sigmoid lives in the loss)."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 64, 4, 2, 1),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
        )
        self.fc = nn.Sequential(
            nn.Linear(128 * 7 * 7, 1024), nn.LeakyReLU(0.2), nn.BatchNorm1d(1024), nn.Linear(1024, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x * 2 - 1).flatten(1)).squeeze(1)


class DCGANGenerator32(nn.Module):
    """32x32 DCGAN generator for CIFAR-10: FC to 4x4x512, three strided transposed convs (256, 128, 3)."""

    def __init__(self, latent_dim: int = LATENT_DIM, channels: int = 3, width: int = 64):
        super().__init__()
        self.latent_dim = latent_dim
        w = width
        self.fc = nn.Sequential(nn.Linear(latent_dim, 8 * w * 4 * 4), nn.BatchNorm1d(8 * w * 4 * 4), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * w, channels, 4, 2, 1),
            nn.Tanh(),
        )
        self._w = w

    def forward(self, z):
        return (self.deconv(self.fc(z).view(-1, 8 * self._w, 4, 4)) + 1) / 2


class DCGANDiscriminator32(nn.Module):
    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1),
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2),
        )
        self.fc = nn.Linear(4 * w * 4 * 4, 1)

    def forward(self, x):
        return self.fc(self.conv(x * 2 - 1).flatten(1)).squeeze(1)


class Encoder(nn.Module):
    """InvGAN inverter I: strided convs 64/128/256 (stride 2, LReLU, BN after the first) then a linear layer
    to z (the InvGAN authors' encoder shape). The output is not squashed (a tanh saturates early and then
    cannot learn); users of I(x) clip it to the latent box [-1, 1]."""

    def __init__(self, channels: int, size: int, latent_dim: int = LATENT_DIM):
        super().__init__()
        self.latent_dim = latent_dim
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
            nn.Conv2d(128, 256, 3, 2, 1),
            nn.BatchNorm2d(256),
            nn.LeakyReLU(0.2),
        )
        s = size
        for _ in range(2):
            s = (s + 2 - 4) // 2 + 1
        s = (s + 2 - 3) // 2 + 1
        self.fc = nn.Linear(256 * s * s, latent_dim)

    def forward(self, x):
        return self.fc(self.conv(x * 2 - 1).flatten(1))


@torch.no_grad()
def seeded_conv_init_(generator: torch.Generator, *convs: nn.Conv2d) -> None:
    """Draw 5x5 convolutions' weights and biases uniformly in ±1/√(in_channels·25), PyTorch's default range, from
    ``generator`` instead of the global RNG."""
    for conv in convs:
        bound = 1 / (conv.in_channels * 25) ** 0.5
        conv.weight.copy_(torch.rand(conv.weight.shape, generator=generator) * 2 * bound - bound)
        conv.bias.copy_(torch.rand(conv.bias.shape, generator=generator) * 2 * bound - bound)


#: activations after the surrogate's second conv: Table 5's ReLU, or MimicGAN-1 §4.1's TanH
SURROGATE_ACTIVATIONS = ("relu", "tanh")


class MimicSurrogate(nn.Module):
    """MimicGAN's corruption-mimicking surrogate f̂, Fashion-MNIST appendix Table 5:
    conv 5x5 C->16 + ReLU, conv 5x5 16->C + ReLU, multiply by a learned (C, H, W) mask, add W * input.
    ``activation="tanh"`` puts TanH after the second conv instead of ReLU (MimicGAN-1 §4 does so for its
    Extreme Occlusion and Inpainting tasks); unlike the ReLU it never closes the conv path.

    ``W`` is a learned scalar initialised to 1 and the mask to small random values, so f̂ starts close to the
    identity (the paper says 'random initialisation'; the near-identity start is our choice, stated in the
    docs; :meth:`randomize_` draws W and the mask at random). ``make_identity()`` sets the exact identity
    (mask 0, W 1).
    """

    def __init__(self, channels: int, size: int, generator: torch.Generator | None = None, activation: str = "relu"):
        super().__init__()
        if activation not in SURROGATE_ACTIVATIONS:
            raise DefbenchError(
                f"surrogate activation {activation!r} unknown; choose {' or '.join(SURROGATE_ACTIVATIONS)}"
            )
        self.activation = activation
        self.conv1 = nn.Conv2d(channels, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, channels, 5, padding=2)
        self.mask = nn.Parameter(torch.randn(1, channels, size, size, generator=generator) * 1e-2)
        self.w = nn.Parameter(torch.ones(()))
        if generator is not None:  # reproducible init independent of the global RNG
            seeded_conv_init_(generator, self.conv1, self.conv2)

    #: what :meth:`shortcut_state` measures, as a table names it
    shortcut_name = "W"

    def _pre(self, x: torch.Tensor) -> torch.Tensor:
        """The conv path before its last activation: conv2(ReLU(conv1(x)))."""
        return self.conv2(torch.relu(self.conv1(x)))

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        """The conv path's last activation: ReLU, or TanH."""
        return torch.tanh(pre) if self.activation == "tanh" else torch.relu(pre)

    @property
    def last_conv(self) -> nn.Conv2d:
        """The convolution before the last activation."""
        return self.conv2

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The passthrough beside the masked conv path: W·x."""
        return self.w * x

    def shortcut_state(self) -> float:
        """The passthrough's one learned number: the gain W (1 at the near-identity start)."""
        return self.w.item()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._activate(self._pre(x)) * self.mask + self.shortcut(x)

    @torch.no_grad()
    def open_share(self, x: torch.Tensor) -> float:
        """Share of the conv path's outputs that pass a gradient on ``x`` (in the range f̂ sees): ReLU(conv2(·)) > 0,
        or for TanH |tanh(conv2(·))| < 0.999 (not saturated). 0 when the path is closed and leaves f̂ = W·x."""
        pre = self._pre(x)
        live = torch.tanh(pre).abs() < 0.999 if self.activation == "tanh" else pre > 0
        return live.float().mean().item()

    @torch.no_grad()
    def randomize_(self, generator: torch.Generator) -> "MimicSurrogate":
        """Draw the shortcut weight W and the mask at random instead of the near-identity start (the paper's
        "random initialisation of surrogate parameters"; its TensorFlow code is not published, so the draw is
        TF 1's default initialiser of a variable, Glorot uniform: U(±√(6 / (fan_in + fan_out))), which for
        the scalar W is U(±√3) and for the (H, W, C) mask U(±√(6 / (H·W + H·C))), ±0.086 on 28 x 28 x 1).
        The convolutions keep their random draw."""
        c, h, w = self.mask.shape[1:]
        self.w.copy_((torch.rand((), generator=generator) * 2 - 1) * 3**0.5)
        bound = (6 / (h * w + h * c)) ** 0.5
        self.mask.copy_((torch.rand(self.mask.shape, generator=generator) * 2 - 1) * bound)
        return self

    @torch.no_grad()
    def dcgan_convs_(self, generator: torch.Generator) -> "MimicSurrogate":
        """Redraw the two convolutions as the DCGAN TensorFlow code's ``conv2d`` initialises them (weights from a
        normal of std 0.02 truncated at two std, biases 0) instead of PyTorch's default (uniform in ±1/√fan_in,
        ±0.05 for conv2, with a random bias). W and the mask keep the near-identity start."""
        for conv in (self.conv1, self.conv2):
            w = torch.randn(conv.weight.shape, generator=generator)
            while (bad := w.abs() > 2).any():  # truncated normal: redraw what falls beyond two std
                w[bad] = torch.randn(int(bad.sum()), generator=generator)
            conv.weight.copy_(w * 0.02)
            conv.bias.zero_()
        return self

    @torch.no_grad()
    def make_identity(self) -> "MimicSurrogate":
        self.mask.zero_()
        self.w.fill_(1.0)
        return self


#: surrogate architectures: MimicGAN-1's appendix Table 5 (two convs, mask, W·x shortcut) or MimicGAN-2's Fig. 3
#: (a spatial transformer first, then four convs, the mask and a plain shortcut)
SURROGATE_ARCHS = ("mimicgan1", "mimicgan2")


class SpatialMimicSurrogate(MimicSurrogate):
    """MimicGAN-2's surrogate (§3.1.1, Fig. 3): a spatial transformer layer with the 6 parameters of one affine
    map A (scale, rotation, shear, shift), then 4 convolutional layers, then a masking layer, with a shortcut
    that is "just an addition": f̂(x) = mask · φ(convs(A(x))) + A(x).

    The text does not give the convolutions' widths or kernels, nor where the shortcut starts; ours: 5x5 convs
    C->16->16->16->C with ReLU between (Table 5's kernels and width), φ the last activation as in
    :class:`MimicSurrogate` (ReLU, or TanH), and the shortcut around the convs and mask, so that A acts on the
    whole output (the affine robustness §3.1.1 claims for the STL needs A on the passthrough). A is one map for
    the batch (the surrogate is shared), starts at the identity (as spatial transformers are initialised) and
    samples bilinearly with zeros outside the image (black on [0, 1] pixels). The mask starts as Table 5's.
    """

    def __init__(self, channels: int, size: int, generator: torch.Generator | None = None, activation: str = "relu"):
        super().__init__(channels, size, generator=generator, activation=activation)
        del self.w  # the passthrough is a plain addition
        self.conv3 = nn.Conv2d(16, 16, 5, padding=2)
        self.conv4 = nn.Conv2d(16, channels, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 16, 5, padding=2)
        if generator is not None:  # the same uniform draw as Table 5's convs, for the added layers
            seeded_conv_init_(generator, self.conv2, self.conv3, self.conv4)
        self.theta = nn.Parameter(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))

    shortcut_name = "max abs(A − I)"

    @property
    def last_conv(self) -> nn.Conv2d:
        return self.conv4

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The passthrough: A(x)."""
        return self.warp(x)

    @torch.no_grad()
    def shortcut_state(self) -> float:
        """max |A − I|: the passthrough has no gain, its learned part is the affine map; how far that map has moved
        from the identity (0 at the start)."""
        return (self.theta - torch.eye(2, 3, device=self.theta.device)).abs().max().item()

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """A(x): the spatial transformer's affine resampling of the batch."""
        grid = nn.functional.affine_grid(self.theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _convs(self, s: torch.Tensor) -> torch.Tensor:
        """The conv path on the warped batch ``s``, before its last activation."""
        for conv in (self.conv1, self.conv2, self.conv3):
            s = torch.relu(conv(s))
        return self.conv4(s)

    def _pre(self, x: torch.Tensor) -> torch.Tensor:
        return self._convs(self.warp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.warp(x)  # once: the conv path and the passthrough both start from A(x)
        return self._activate(self._convs(s)) * self.mask + s

    def randomize_(self, generator: torch.Generator) -> "SpatialMimicSurrogate":
        raise DefbenchError("the mimicgan2 surrogate starts near the identity only (surrogate_init=near-identity)")

    def dcgan_convs_(self, generator: torch.Generator) -> "SpatialMimicSurrogate":
        raise DefbenchError("the mimicgan2 surrogate starts near the identity only (surrogate_init=near-identity)")

    @torch.no_grad()
    def make_identity(self) -> "SpatialMimicSurrogate":
        self.mask.zero_()
        self.theta.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        return self


def spectral_normalized(D: nn.Module) -> nn.Module:
    """``D`` with spectral normalisation (Miyato et al., ICLR 2018, the architectures InvGAN §4 trains its GANs
    with): every convolution and linear layer's weight divided by its largest singular value (one power
    iteration per training step), and the batch normalisations of D removed, as SN-GAN's discriminators have
    none. Changes ``D`` in place and returns it."""
    for name, child in list(D.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(D, name, nn.Identity())
        elif isinstance(child, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(child)
        else:
            spectral_normalized(child)
    return D


def build_gan(
    dataset: str, latent_dim: int = LATENT_DIM, spectral_norm: bool = False, pack: int = 1
) -> tuple[nn.Module, nn.Module]:
    """(G, D) of the paper family for ``dataset``; ``spectral_norm``: D as :func:`spectral_normalized` makes it;
    ``pack``: D takes that many images stacked along channels (PacGAN; ``D.pack`` records it)."""
    if dataset in ("fmnist", "mnist"):
        G, D = DCGANGenerator28(latent_dim), DCGANDiscriminator28(channels=pack)
    elif dataset == "cifar10":
        G, D = DCGANGenerator32(latent_dim), DCGANDiscriminator32(channels=3 * pack)
    else:
        raise DefbenchError(f"no GAN prior for {dataset}; GAN priors exist for fmnist, mnist, cifar10")
    D.pack = pack
    return G, spectral_normalized(D) if spectral_norm else D
