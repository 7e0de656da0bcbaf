"""The papers' classifiers, each wrapped so that inputs are images in [0, 1] and Φ(x) is exposed.

``Classifier.features(x)`` is Φ(x), the penultimate representation InvGAN's detection score (Eq. 7) uses;
``Classifier.head`` is the last layer C, so ``f(x) = C(Φ(x))``. Normalisation is the first step inside the
wrapper, so attacks and defenses always work in pixel units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defbench import DefbenchError


class Classifier(nn.Module):
    """f(x) = head(body(normalise(x))) with x in [0, 1]; ``features`` returns Φ(x) = body(normalise(x))."""

    def __init__(self, body: nn.Module, head: nn.Linear, mean: tuple[float, ...], std: tuple[float, ...], arch: str):
        super().__init__()
        self.body = body
        self.head = head
        self.arch = arch
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallCNNBody(nn.Module):
    """Two 5x5 conv layers (32, 64 filters, each followed by 2x2 max-pooling) and one FC layer of 256
    units; with the 256->10 head this is the 'two conv + two FC' CNN of RIDE's MNIST experiments, and we
    use the same network for Fashion-MNIST (MimicGAN only says 'a CNN classifier')."""

    def __init__(self, in_ch: int = 1, width: int = 256, dropout: float = 0.3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc = nn.Linear(64 * 7 * 7, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.dropout(F.relu(self.fc(x.flatten(1))))


class CleverhansCNNBody(nn.Module):
    """cleverhans' tutorial CNN (``make_basic_cnn`` / ``ModelBasicCNN`` of cleverhans 2.x, the toolbox MimicGAN's
    adversarial-defense experiments used): 8x8 conv, 64 filters, stride 2, 'same' padding; 6x6 conv, 128, stride 2,
    'valid'; 5x5 conv, 128, stride 1, 'valid'; ReLU after each. On 28x28 inputs this leaves 128 features (Φ), to
    which the head adds the 128->10 linear layer. Inputs are the [0, 1] pixels themselves, as in the tutorial."""

    def __init__(self, in_ch: int = 1, filters: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, filters, 8, stride=2)
        self.conv2 = nn.Conv2d(filters, 2 * filters, 6, stride=2)
        self.conv3 = nn.Conv2d(2 * filters, 2 * filters, 5, stride=1)
        self.out_dim = 2 * filters

    def forward(self, x):
        x = F.relu(self.conv1(F.pad(x, (3, 3, 3, 3))))  # TensorFlow's "same" on 28 pixels: 8x8 kernel, stride 2
        x = F.relu(self.conv2(x))
        return F.relu(self.conv3(x)).flatten(1)


class DefenseGANModelABody(nn.Module):
    """Defense-GAN's classifier "Model A", the network InvGAN's code trains for its (Fashion-)MNIST tables (the
    paper's repository, github.com/yogeshbalaji/InvGAN: ``--model A`` in its README's Table 2 and 3 commands):
    5x5 conv, 64 filters, stride 1, 'same' padding; 5x5 conv, 64, stride 2, 'valid'; ReLU after each; dropout,
    FC 128, ReLU, dropout. Its detection feature (``feature_layer='ReLU7'``) is that FC layer's ReLU output, Φ
    here; the head adds the 128->10 linear layer. Inputs are the [0, 1] pixels themselves. The code's
    ``Dropout(0.25)`` and ``Dropout(0.5)`` are cleverhans' *include* probabilities (``tf.nn.dropout(x,
    keep_prob)``), so training drops 75% and 50% of the units: PyTorch's ``nn.Dropout(0.75)`` and ``(0.5)``."""

    def __init__(self, in_ch: int = 1, filters: int = 64, width: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, filters, 5, padding=2)
        self.conv2 = nn.Conv2d(filters, filters, 5, stride=2)
        self.drop1 = nn.Dropout(0.75)
        self.fc = nn.Linear(filters * 12 * 12, width)
        self.drop2 = nn.Dropout(0.5)
        self.out_dim = width

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.drop2(F.relu(self.fc(self.drop1(x.flatten(1)))))


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.short(x))


class ResNet18CifarBody(nn.Module):
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool), as commonly used for CIFAR-10 (RIDE: 94.78%)."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FMNIST_MEAN, FMNIST_STD = (0.2860,), (0.3530,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

#: dataset -> architecture name of the paper's classifier
PAPER_ARCH = {"fmnist": "cnn-2conv2fc", "mnist": "cnn-2conv2fc", "cifar10": "resnet18-cifar", "imagenet": "resnet50"}
#: architectures beside the papers' ones, for experiments that change the classifier (``build_classifier(arch=)``)
OTHER_ARCHS = ("cnn-cleverhans", "cnn-defensegan-a")
#: every architecture name ``build_classifier`` knows, sorted
ARCHS = tuple(sorted(set(PAPER_ARCH.values()) | set(OTHER_ARCHS)))


def build_classifier(dataset: str, arch: str | None = None) -> Classifier:
    """A fresh (untrained) classifier for ``dataset``; ImageNet's ResNet-50 comes with no weights here,
    see :func:`load_imagenet_resnet50`."""
    arch = arch or PAPER_ARCH[dataset]
    if arch in ("cnn-2conv2fc", "cnn-cleverhans", "cnn-defensegan-a") and dataset not in ("fmnist", "mnist"):
        raise DefbenchError(f"architecture {arch} is for 28x28 greyscale data, not {dataset}")
    if arch == "cnn-2conv2fc":
        mean, std = (FMNIST_MEAN, FMNIST_STD) if dataset == "fmnist" else (MNIST_MEAN, MNIST_STD)
        return Classifier(SmallCNNBody(1), nn.Linear(256, 10), mean, std, arch)
    if arch in ("cnn-cleverhans", "cnn-defensegan-a"):
        body = CleverhansCNNBody(1) if arch == "cnn-cleverhans" else DefenseGANModelABody(1)
        return Classifier(body, nn.Linear(body.out_dim, 10), (0.0,), (1.0,), arch)
    if arch == "resnet18-cifar":
        body = ResNet18CifarBody()
        return Classifier(body, nn.Linear(body.out_dim, 10), CIFAR_MEAN, CIFAR_STD, arch)
    if arch == "resnet50":
        import torchvision

        net = torchvision.models.resnet50(weights=None)
        head = net.fc
        net.fc = nn.Identity()
        return Classifier(net, head, IMAGENET_MEAN, IMAGENET_STD, arch)
    raise DefbenchError(f"unknown classifier architecture {arch!r}; choose one of: {', '.join(ARCHS)}")


def load_imagenet_resnet50() -> Classifier:
    """torchvision's ResNet-50 with its IMAGENET1K_V1 weights (76.13% top-1 as torchvision lists it; RIDE
    reports 76.15%), from torchvision's cache or a download; offline without the cache -> clear error."""
    import torchvision

    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    try:
        net = torchvision.models.resnet50(weights=weights)
    except Exception as exc:
        raise DefbenchError(
            f"could not load torchvision's ResNet-50 {weights.name} weights ({type(exc).__name__}); put "
            f"{weights.url.rsplit('/', 1)[-1]} in $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)"
        ) from None
    head = net.fc
    net.fc = nn.Identity()
    return Classifier(net, head, IMAGENET_MEAN, IMAGENET_STD, "resnet50")
