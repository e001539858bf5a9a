"""The ``gan`` saved-model kind: a trained generator (DCGAN, Radford et al. 2016; conditional GAN, Mirza &
Osindero 2014). It makes images rather than classifying them, so the classifier verbs of the saved-model
protocol (``predict_scores``, ``as_torch_module``, ``layer_module``) refuse with one line naming the
commands that use it (``transferlab gan sample`` / ``interpolate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .models import KIND, generate, load_generator, save_generator


class GanModel:
    """A generator and its description; ``classes`` are the conditional labels (empty for a DCGAN)."""

    kind = KIND
    preprocessing = None
    backbone_name = "generator"

    def __init__(self, generator: nn.Module, meta: dict[str, Any]) -> None:
        self.generator, self.meta = generator.eval(), meta
        labels = meta.get("class_names") or [str(i) for i in range(int(meta.get("classes_count", 1)))]
        self.classes: list[str] = list(labels) if meta.get("model") == "conditional" else []

    @classmethod
    def load(cls, folder: Path | str) -> "GanModel":
        generator, meta = load_generator(folder)
        return cls(generator, meta)

    def save(self, folder: Path | str) -> Path:
        keep = {k: v for k, v in self.meta.items() if k not in ("format", "format_version", "kind", "model", "nz",
                                                                 "ngf", "channels", "classes_count")}
        return save_generator(folder, self.generator, keep)

    def sample(self, n: int, *, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` images in [-1, 1] from seeded noise (conditional generators need ``labels``)."""
        z = torch.randn(n, self.generator.nz, generator=torch.Generator().manual_seed(seed))
        return generate(self.generator, z, labels)

    def _refuse(self, *_: Any, **__: Any):
        raise ConfigError("this is a GAN generator: it makes images and classifies none; use `transferlab gan "
                          "sample` or `transferlab gan interpolate` with it")

    as_torch_module = layer_module = _refuse

    def predict_scores(self, paths: Sequence[Path | str], batch_size: int | None = None, device: str = "auto",
                       cache_dir: Path | str | None = None, use_cache: bool = True):
        self._refuse()
