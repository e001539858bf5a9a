"""Conditional DCGAN (report 001 section 4.6.2; Mirza & Osindero 2014, arXiv:1411.1784).

Both networks take a one-hot label. As in the report, each modality gets its own branch and the
branches are concatenated along channels:

* generator: z -> ConvT(ngf*2, k4, s1, p0) + BN + ReLU (4x4) and one-hot y -> ConvT(ngf*2, ...) + BN +
  ReLU (4x4); concatenated (ngf*4 channels, 4x4), then the DCGAN generator's 8 -> 16 -> 32 blocks;
* discriminator: image -> Conv(ndf/2, k4, s2, p1) + LReLU (16x16) and the one-hot y broadcast to
  ``classes`` constant 32x32 maps -> Conv(ndf/2, ...) + LReLU (16x16); concatenated (ndf channels,
  16x16), then the DCGAN discriminator's 8 -> 4 -> 1 blocks.

So the trunk after the concatenation has the unconditional model's widths; ``ndf`` must be even.

``ignore_labels=True`` is the ablation of report 002's question 7 (cD(x) instead of cD(x, y)): the same
discriminator with its label maps replaced by zeros, so its output is the same whatever the label and the
generator gets no signal to respect y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .dcgan import IMAGE_SIZE, check_sizes, down_block, up_block


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``(N,)`` integer labels -> ``(N, classes)`` float one-hot, with a clear error for out-of-range labels."""
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ConfigError(f"class labels must lie in 0..{classes - 1}; got {int(labels.min())}..{int(labels.max())}")
    return F.one_hot(labels, classes).float()


class ConditionalGenerator(nn.Module):
    """G(z, y): ``(N, nz)`` noise and ``(N,)`` labels -> ``(N, channels, 32, 32)`` in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 32, channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        check_sizes(nz=nz, ngf=ngf, channels=channels, classes=classes)
        self.nz, self.ngf, self.channels, self.classes = nz, ngf, channels, classes
        self.z_branch = nn.Sequential(*up_block(nz, ngf * 2, first=True))
        self.y_branch = nn.Sequential(*up_block(classes, ngf * 2, first=True))
        self.trunk = nn.Sequential(
            *up_block(ngf * 4, ngf * 2),  # 8x8
            *up_block(ngf * 2, ngf),  # 16x16
            nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh(),  # 32x32
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = one_hot(labels, self.classes).to(z.dtype)
        h = torch.cat([self.z_branch(z.reshape(z.shape[0], self.nz, 1, 1)),
                       self.y_branch(y.reshape(y.shape[0], self.classes, 1, 1))], dim=1)
        return self.trunk(h)


class ConditionalDiscriminator(nn.Module):
    """D(x, y): ``(N, channels, 32, 32)`` images and ``(N,)`` labels -> probability ``(N,)``."""

    def __init__(self, ndf: int = 32, channels: int = 1, classes: int = 10, ignore_labels: bool = False) -> None:
        super().__init__()
        check_sizes(ndf=ndf, channels=channels, classes=classes)
        self.ignore_labels = bool(ignore_labels)
        if ndf % 2:
            raise ConfigError(f"the conditional discriminator splits ndf between its image and label branches: "
                              f"ndf must be even; got {ndf}")
        self.ndf, self.channels, self.classes = ndf, channels, classes
        half = ndf // 2
        self.x_branch = nn.Sequential(nn.Conv2d(channels, half, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True))
        self.y_branch = nn.Sequential(nn.Conv2d(classes, half, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True))
        self.trunk = nn.Sequential(
            *down_block(ndf, ndf * 2),  # 8x8
            *down_block(ndf * 2, ndf * 4),  # 4x4
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),  # 1x1
        )

    def logits(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = one_hot(labels, self.classes).to(x.dtype)
        if self.ignore_labels:  # cD(x): the label branch sees zeros whatever y is (report 002, question 7)
            y = torch.zeros_like(y)
        maps = y[:, :, None, None].expand(-1, -1, IMAGE_SIZE, IMAGE_SIZE)
        h = torch.cat([self.x_branch(x), self.y_branch(maps)], dim=1)
        return self.trunk(h).reshape(-1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x, labels))
