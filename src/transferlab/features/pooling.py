"""Turning a layer's output into one vector per image: spatial pooling and L2 normalisation.

Convolutional maps (B, C, H, W) can be flattened (``none``, the assignment's choice: 64x224x224 values at
conv1_1, the 38 GB wall of report 002), averaged or max-pooled over space (C values), or pooled on a
small spatial pyramid (``spp``: 1x1 + 2x2 average grids, 5C values; Lazebnik et al. 2006, He et al. 2014).
Token sequences (B, N, C) from vision transformers are flattened, averaged or max-pooled over tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

POOLINGS = ("none", "avg", "max", "spp")
SPP_LEVELS = (1, 2)


def pooled_size(shape: tuple[int, ...], pooling: str) -> int:
    """Length of the feature vector for one image whose layer output has ``shape`` (without batch)."""
    check_pooling(pooling)
    if len(shape) <= 1 or pooling == "none":
        return int(torch.tensor(shape).prod()) if shape else 1
    channels = shape[0] if len(shape) == 3 else shape[-1]
    if pooling == "spp":
        if len(shape) != 3:
            raise ConfigError("--pooling spp needs a convolutional layer (C, H, W); use avg or max for tokens")
        return channels * sum(level * level for level in SPP_LEVELS)
    return channels


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")


def pool(output: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, ...) layer output -> (B, D) float32 vectors."""
    check_pooling(pooling)
    output = output.float()
    if output.ndim == 2 or pooling == "none":
        return output.flatten(1)
    if output.ndim == 4:
        if pooling == "avg":
            return output.mean(dim=(2, 3))
        if pooling == "max":
            return output.amax(dim=(2, 3))
        return torch.cat([F.adaptive_avg_pool2d(output, level).flatten(1) for level in SPP_LEVELS], dim=1)
    if output.ndim == 3:
        if pooling == "avg":
            return output.mean(dim=1)
        if pooling == "max":
            return output.amax(dim=1)
        raise ConfigError("--pooling spp needs a convolutional layer (C, H, W); use avg or max for tokens")
    return output.flatten(1)


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide each row by its L2 norm (rows of zeros stay zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)
