"""Fold inference-mode batch normalisation into the convolution before it.

In eval mode a BatchNorm layer is a fixed per-channel affine map (Ioffe & Szegedy, 2015), so a
convolution followed by it equals one convolution with rescaled weights and a shifted bias; the
folded network skips a full read and write of every normalised activation (measured 1.25x faster
for ResNet-50 in bfloat16 on the development CPU, see benchmarks/RESULTS.md). The same rewrite is
the first step of integer-only inference in Jacob et al., 2018. Uses PyTorch's FX ``fuse`` pass.
"""

from __future__ import annotations

import logging

from torch import nn
from torch.fx.experimental.optimization import fuse

log = logging.getLogger(__name__)


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """A copy of eval-mode ``module`` with every conv -> BatchNorm pair folded into one convolution.

    Only the folded convolutions are new; every other layer is shared with ``module``, which is left
    unchanged (FX rebuilds the containers around the shared layers). A BatchNorm whose convolution
    output is also used elsewhere (a tapped ``conv`` layer) is kept. Returns ``module`` itself when it
    has no BatchNorm, is in training mode, or cannot be traced by FX (the result is then just slower).
    """
    if module.training or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    try:
        return fuse(module, inplace=True)  # "inplace" skips a deep copy; the traced copy is new either way
    except Exception as error:  # tracing arbitrary model code can fail in many ways; folding is optional
        log.debug("batch-norm folding skipped: %s: %s", type(error).__name__, error)
        return module
