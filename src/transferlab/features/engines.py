"""Feature engines: what runs the forward pass of extraction (``--engine torch|openvino``).

An engine maps a batch of preprocessed images ``(B, 3, H, W)`` float32 to ``{layer: (B, D) float32}``
vectors, already pooled and (optionally) L2-normalised. Everything else in extraction (decoding,
skipping unreadable images, shards, the cache) is shared: ``extract.py`` has one path, and the engine
only replaces its forward pass.

- ``torch``: the tap service's network prepared by ``precision.py`` (batch norm folded, channels-last,
  a bf16/fp16 copy under autocast for the fast modes); pooling and L2 in float32 after it.
- ``openvino``: the same network with its pooling and L2, converted once by ``openvino.convert_model``
  and compiled for the CPU (``openvino_engine.py``), fp32 or bf16 (``INFERENCE_PRECISION_HINT``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .pooling import l2_normalize, pool
from .precision import autocast, prepare_input, prepare_model

ENGINES = ("torch", "openvino")


class Engine(Protocol):
    """The forward pass of extraction: preprocessed images -> pooled (L2) float32 vectors per layer."""

    name: str

    def __call__(self, x: torch.Tensor) -> dict[str, np.ndarray]: ...


def check_engine(engine: str, device: str) -> None:
    """Refuse an unknown engine, or the OpenVINO engine on anything but the CPU, before any work."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if engine == "openvino" and device not in ("auto", "cpu"):
        raise ConfigError(f"--engine openvino runs on the CPU; got --device {device}. Pass --device cpu (or auto), "
                          "or use --engine torch on this device")
    if engine == "openvino":
        from .openvino_engine import import_openvino

        import_openvino()  # not installed: one line now, before any work


def engine_device(engine: str, device: str) -> str:
    """The device extraction runs on: OpenVINO always computes on the CPU (``auto`` means the CPU for it)."""
    return "cpu" if engine == "openvino" else device


class TorchEngine:
    """The network in PyTorch at ``precision``; pooling and L2 in float32 on its outputs."""

    name = "torch"

    def __init__(self, taps: torch.nn.Module, precision: str, device: torch.device, pooling: str, l2: bool) -> None:
        self.model = prepare_model(taps, precision, device)
        self.precision, self.device, self.pooling, self.l2 = precision, device, pooling, l2

    def __call__(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            with autocast(self.precision, self.device):
                outputs = self.model(prepare_input(x.to(self.device, non_blocking=True), self.precision, self.device))
            vectors = {}
            for layer, output in outputs.items():
                v = pool(output, self.pooling)
                vectors[layer] = (l2_normalize(v) if self.l2 else v).cpu().numpy()
        return vectors


class VectorModule(torch.nn.Module):
    """``taps`` followed by pooling and L2, returning one tensor per layer (in ``layers`` order): the whole
    computation of an engine as one module, for converters that need a single graph."""

    def __init__(self, taps: torch.nn.Module, layers: Sequence[str], pooling: str, l2: bool) -> None:
        super().__init__()
        self.taps, self.layers, self.pooling, self.l2 = taps, list(layers), pooling, l2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.taps(x)
        vectors = [pool(outputs[layer], self.pooling) for layer in self.layers]
        return tuple(l2_normalize(v) if self.l2 else v for v in vectors)


def make_engine(engine: str, taps: torch.nn.Module, layers: Sequence[str], *, backbone, pooling: str, l2: bool,
                precision: str, device: torch.device, model_cache: Path | None) -> Engine:
    """The engine named ``engine`` for ``taps`` (the backbone cut at ``layers``, eval mode, fp32).

    ``model_cache`` is where the OpenVINO engine keeps its converted and compiled models (None: nowhere,
    convert again); the torch engine needs none."""
    if engine == "torch":
        return TorchEngine(taps, precision, device, pooling, l2)
    from .openvino_engine import OpenVinoEngine

    return OpenVinoEngine(VectorModule(taps, layers, pooling, l2).eval(), layers, backbone=backbone,
                          pooling=pooling, l2=l2, precision=precision, model_cache=model_cache)
