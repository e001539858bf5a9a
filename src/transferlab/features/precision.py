"""Numeric modes for extraction: ``fp32`` (reference) and the fast modes ``bf16`` / ``fp16``.

Every mode uses channels-last tensors for convolutions (oneDNN's preferred layout on CPU: the same
arithmetic, measured 1.4x faster for VGG16 here) and folds batch norm into the convolutions before it
(``folding.py``). A fast mode runs a half-precision *copy* of the network (so the weights are not re-cast
at every batch, and the caller's fp32 model is untouched) under ``torch.autocast``, which keeps
precision-sensitive ops (layer norm, softmax) in float32. On CPU only bfloat16 is offered, and only when
the CPU has bf16 instructions (oneDNN reports support); otherwise the request is refused rather than
silently running an emulated, slower path. Features are returned in float32. See benchmarks/RESULTS.md
for the measured speed-up and the cosine similarity to fp32 features.
"""

from __future__ import annotations

import contextlib
import copy

import torch

from ..errors import ConfigError
from .folding import fold_batch_norm

PRECISIONS = ("fp32", "bf16", "fp16")


def cpu_supports_bf16() -> bool:
    """True when oneDNN can run bfloat16 kernels natively on this CPU (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision == "fp16":
        raise ConfigError("--precision fp16 is for GPUs; on CPU use bf16 (if the CPU supports it) or fp32")
    if device.type == "cpu" and precision == "bf16" and not cpu_supports_bf16():
        raise ConfigError("--precision bf16 was asked for but this CPU has no native bfloat16 support "
                          "(it would be slower, not faster); use --precision fp32")


def autocast(precision: str, device: torch.device):
    """The autocast context for ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _dtype(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def prepare_input(x: torch.Tensor, precision: str, device: torch.device) -> torch.Tensor:
    x = x.to(_dtype(precision))
    return x.contiguous(memory_format=torch.channels_last) if device.type in ("cpu", "cuda") else x


def prepare_model(model: torch.nn.Module, precision: str, device: torch.device) -> torch.nn.Module:
    """The eval-mode module to run: batch norm folded into convolutions, channels-last (cpu/cuda), and
    for bf16/fp16 a half-precision copy. ``model``'s own parameters are never changed: a module whose
    weights would change dtype or memory format is a copy (the folded convolutions are new already)."""
    folded = fold_batch_norm(model)
    channels_last = device.type in ("cpu", "cuda")
    if precision != "fp32" or channels_last:
        folded = copy.deepcopy(folded).to(_dtype(precision))
    folded.eval()  # a deep-copied FX GraphModule comes back in training mode: dropout would be live
    return folded.to(memory_format=torch.channels_last) if channels_last else folded
