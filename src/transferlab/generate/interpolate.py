"""Latent interpolation strips: images of ``alpha * z1 + (1 - alpha) * z2`` for alpha from 0 to 1.

Report 001 section 4.5.6 (after Radford et al. 2015, section 6.1): a smooth strip shows a continuous,
structured latent space. One row per pair of noise vectors; conditional generators keep one class
per row (``labels``), so only the noise moves.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from .grids import save_grid
from .models import generate, is_conditional


def interpolate(generator: nn.Module, z1: torch.Tensor, z2: torch.Tensor, steps: int = 10,
                label: int | None = None) -> torch.Tensor:
    """``steps`` images along ``alpha * z1 + (1 - alpha) * z2``, alpha = 0 .. 1 (so ``z2`` first, ``z1`` last)."""
    if steps < 2:
        raise ConfigError(f"--steps must be at least 2 (both ends); got {steps}")
    alphas = torch.linspace(0, 1, steps)[:, None]
    z = alphas * z1.reshape(1, -1) + (1 - alphas) * z2.reshape(1, -1)
    labels = None
    if is_conditional(generator):
        if label is None:
            raise ConfigError("a conditional generator interpolates within one class: pass --label")
        if not 0 <= label < generator.classes:
            raise ConfigError(f"--label must be in 0..{generator.classes - 1}; got {label}")
        labels = torch.full((steps,), int(label), dtype=torch.long)
    return generate(generator, z, labels)


def interpolation_strips(generator: nn.Module, pairs: int = 4, steps: int = 10, seed: int = 0,
                         labels: list[int] | None = None) -> torch.Tensor:
    """``pairs`` strips stacked (``pairs * steps`` images, row-major); conditional: row ``i`` uses ``labels[i]``."""
    if pairs < 1:
        raise ConfigError(f"--pairs must be at least 1; got {pairs}")
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(pairs):
        z1, z2 = torch.randn(2, generator.nz, generator=g)
        label = None
        if is_conditional(generator):
            label = labels[i % len(labels)] if labels else i % generator.classes
        rows.append(interpolate(generator, z1, z2, steps, label))
    return torch.cat(rows)


def save_interpolation(generator: nn.Module, path: Path | str, pairs: int = 4, steps: int = 10, seed: int = 0,
                       labels: list[int] | None = None) -> Path:
    """Write the strips as one PNG (rows = pairs, columns = alpha from 0 to 1)."""
    return save_grid(interpolation_strips(generator, pairs, steps, seed, labels), path, columns=steps)
