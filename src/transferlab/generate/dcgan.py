"""The DCGAN generator and discriminator of the seeds (report 000 section 2.2; Radford et al. 2015).

Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks", ICLR 2016 (arXiv:1511.06434). Sized for 32x32 images with 1 or 3 channels:

* generator: z (nz x 1 x 1) -> ConvT(ngf*4, k4, s1, p0) + BN + ReLU (4x4) -> ConvT(ngf*2, k4, s2, p1)
  + BN + ReLU (8x8) -> ConvT(ngf, k4, s2, p1) + BN + ReLU (16x16) -> ConvT(channels, k4, s2, p1) + Tanh;
* discriminator: Conv(ndf, k4, s2, p1) + BN + LReLU(0.2) (16x16) -> Conv(ndf*2) + BN + LReLU (8x8)
  -> Conv(ndf*4) + BN + LReLU (4x4) -> Conv(1, k4, s1, p0) + Sigmoid (1x1).

The report's listing of the discriminator stops at 8x8 before the final 4x4 valid convolution, which
would give a 5x5 output, not the (N, 1, 1, 1) it states; the 8->4 step is what makes the stated shape
true (and mirrors the generator), so it is included. Every convolution has ``bias=False`` as in the
report (the batch norm that follows carries the bias). Batch norm on the discriminator's first layer
follows the report (Radford et al. leave it out there).

:meth:`Discriminator.logits` gives the pre-sigmoid score; the losses use it (log-sigmoid is stable
where ``log(sigmoid(x))`` underflows), ``forward`` returns the probability D(x) the report describes.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

IMAGE_SIZE = 32
INITS = ("dcgan", "default")


def check_sizes(**sizes: int) -> None:
    """Raise ConfigError unless every size (nz, ngf, ndf, channels, classes) is a positive integer."""
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def up_block(c_in: int, c_out: int, first: bool = False) -> list[nn.Module]:
    """ConvTranspose(k4) + BN + ReLU: 1x1 -> 4x4 when ``first`` (s1, p0), otherwise doubles the size."""
    stride, padding = (1, 0) if first else (2, 1)
    return [nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]


def down_block(c_in: int, c_out: int) -> list[nn.Module]:
    """Conv(k4, s2, p1) + BN + LeakyReLU(0.2): halves the size."""
    return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]


class Generator(nn.Module):
    """DCGAN generator: ``(N, nz)`` or ``(N, nz, 1, 1)`` noise -> ``(N, channels, 32, 32)`` in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 32, channels: int = 1) -> None:
        super().__init__()
        check_sizes(nz=nz, ngf=ngf, channels=channels)
        self.nz, self.ngf, self.channels = nz, ngf, channels
        self.main = nn.Sequential(
            *up_block(nz, ngf * 4, first=True),  # 4x4
            *up_block(ngf * 4, ngf * 2),  # 8x8
            *up_block(ngf * 2, ngf),  # 16x16
            nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh(),  # 32x32
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))


class Discriminator(nn.Module):
    """DCGAN discriminator: ``(N, channels, 32, 32)`` -> D(x) in (0, 1), shape ``(N,)``."""

    def __init__(self, ndf: int = 32, channels: int = 1) -> None:
        super().__init__()
        check_sizes(ndf=ndf, channels=channels)
        self.ndf, self.channels = ndf, channels
        self.main = nn.Sequential(
            *down_block(channels, ndf),  # 16x16
            *down_block(ndf, ndf * 2),  # 8x8
            *down_block(ndf * 2, ndf * 4),  # 4x4 (the step the report's listing omits)
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),  # 1x1
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).reshape(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def dcgan_init_(module: nn.Module) -> nn.Module:
    """Radford et al.'s initialisation, in place: conv weights ~ N(0, 0.02); BN weight ~ N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def initialise(module: nn.Module, init: str) -> nn.Module:
    """Apply ``init``: ``dcgan`` (N(0, 0.02)) or ``default`` (PyTorch's own Kaiming-uniform, left as built)."""
    if init not in INITS:
        raise ConfigError(f"unknown initialisation {init!r}; expected one of {', '.join(INITS)}")
    return dcgan_init_(module) if init == "dcgan" else module


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
