"""Shapes, parameter counts and initialisation of the DCGAN and conditional GAN."""

from __future__ import annotations

import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.generate import (ConditionalDiscriminator, ConditionalGenerator, Discriminator, Generator,
                                  build_pair, count_parameters)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("nz,ngf,ndf", [(100, 32, 32), (2, 8, 16), (1000, 4, 8), (10, 64, 4)])
def test_dcgan_shapes(channels, nz, ngf, ndf):
    g, d = Generator(nz, ngf, channels), Discriminator(ndf, channels)
    z = torch.randn(3, nz)
    x = g(z)
    assert x.shape == (3, channels, 32, 32)
    assert x.min() >= -1 and x.max() <= 1  # Tanh output
    assert g(z.reshape(3, nz, 1, 1)).shape == x.shape  # the report's (N, nz, 1, 1) input works too
    p = d(x)
    assert p.shape == (3,) and ((p > 0) & (p < 1)).all()
    # The documented intermediate sizes: 4 -> 8 -> 16 -> 32 and 16 -> 8 -> 4 -> 1.
    h = z.reshape(3, nz, 1, 1)
    seen = []
    for layer in g.main:
        h = layer(h)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            seen.append(h.shape[-1])
    assert seen == [4, 8, 16, 32]
    h, seen = x, []
    for layer in d.main:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            seen.append(h.shape[-1])
    assert seen == [16, 8, 4, 1]  # includes the 8 -> 4 step the report's listing omits


@pytest.mark.parametrize("channels,classes", [(1, 10), (3, 2)])
def test_conditional_shapes(channels, classes):
    g, d = ConditionalGenerator(16, 8, channels, classes), ConditionalDiscriminator(8, channels, classes)
    labels = torch.arange(4) % classes
    x = g(torch.randn(4, 16), labels)
    assert x.shape == (4, channels, 32, 32)
    assert d(x, labels).shape == (4,)


def test_default_parameter_counts():
    # Hand count, nz=100, ngf=ndf=32, 1 channel, bias-free convolutions; BatchNorm has 2 parameters per channel.
    # Generator: ConvT 100->128 k4: 100*128*16 = 204,800 + BN 256
    #            ConvT 128->64: 131,072 + BN 128; ConvT 64->32: 32,768 + BN 64; ConvT 32->1: 512
    generator = 204_800 + 256 + 131_072 + 128 + 32_768 + 64 + 512
    assert generator == 369_600
    # Discriminator: Conv 1->32 k4: 512 + BN 64; 32->64: 32,768 + BN 128; 64->128: 131,072 + BN 256;
    #                final 128->1 k4: 2,048
    discriminator = 512 + 64 + 32_768 + 128 + 131_072 + 256 + 2_048
    assert discriminator == 166_848
    assert count_parameters(Generator()) == generator
    assert count_parameters(Discriminator()) == discriminator
    # 3 channels (CIFAR-10, CelebA): the last ConvT and the first Conv become 32*3*16 = 1,536 instead of 512.
    assert count_parameters(Generator(channels=3)) == generator - 512 + 1_536
    assert count_parameters(Discriminator(channels=3)) == discriminator - 512 + 1_536
    # Conditional (10 classes): z branch ConvT 100->64: 102,400 + BN 128; y branch ConvT 10->64: 10,240 + BN 128;
    # then the same 8 -> 16 -> 32 trunk (131,072 + 128 + 32,768 + 64 + 512).
    assert count_parameters(ConditionalGenerator()) == 102_400 + 128 + 10_240 + 128 + 131_072 + 128 + 32_768 + 64 + 512
    # D: image branch Conv 1->16: 256; label branch Conv 10->16: 2,560; then 32->64 ... as the DCGAN.
    assert count_parameters(ConditionalDiscriminator()) == 256 + 2_560 + 32_768 + 128 + 131_072 + 256 + 2_048


def test_dcgan_initialisation_statistics():
    g, d = build_pair("dcgan", nz=100, ngf=32, ndf=32, channels=1, classes=10, init="dcgan", seed=0)
    w = g.main[3].weight.detach()  # 128 x 64 x 4 x 4 = 131,072 draws
    assert abs(float(w.mean())) < 1e-3 and abs(float(w.std()) - 0.02) < 5e-4
    bn = g.main[1].requires_grad_(False)
    assert abs(float(bn.weight.mean()) - 1.0) < 0.01 and float(bn.bias.abs().max()) == 0.0
    g_default, d_default = build_pair("dcgan", nz=100, ngf=32, ndf=32, channels=1, classes=10, init="default",
                                      seed=0)
    # PyTorch's default is U(-b, b), b = 1/sqrt(fan_in), so std = 1/sqrt(3 fan_in). For this ConvT
    # fan_in = 64*4*4 = 1024: std 0.018, close to 0.02; for D's first Conv fan_in = 1*4*4 = 16: std 0.144,
    # seven times wider than the DCGAN init. The two schemes differ mostly at the input side of D.
    assert abs(float(g_default.main[3].weight.detach().std()) - 1 / (3 * 1024) ** 0.5) < 5e-4
    assert abs(float(d_default.main[0].weight.detach().std()) - 1 / (3 * 16) ** 0.5) < 0.02
    assert float(g_default.main[1].weight.detach().min()) == 1.0  # BN weight left at 1


def test_seeded_build_is_deterministic():
    a, _ = build_pair("dcgan", nz=10, ngf=8, ndf=8, channels=1, classes=10, seed=3)
    b, _ = build_pair("dcgan", nz=10, ngf=8, ndf=8, channels=1, classes=10, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_architecture_errors():
    with pytest.raises(ConfigError, match="nz must be a positive integer"):
        Generator(nz=0)
    with pytest.raises(ConfigError, match="ndf must be even"):
        ConditionalDiscriminator(ndf=7)
    with pytest.raises(ConfigError, match="unknown initialisation 'xavier'"):
        build_pair("dcgan", nz=4, ngf=4, ndf=4, channels=1, classes=2, init="xavier")
    with pytest.raises(ConfigError, match="unknown GAN model 'wgan'; expected one of dcgan, conditional"):
        build_pair("wgan", nz=4, ngf=4, ndf=4, channels=1, classes=2)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_pair("conditional", nz=4, ngf=4, ndf=4, channels=1, classes=1)
    with pytest.raises(ConfigError, match=r"class labels must lie in 0..9; got 0..10"):
        ConditionalGenerator(8, 4, 1, 10)(torch.randn(2, 8), torch.tensor([0, 10]))
