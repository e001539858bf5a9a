"""Small seeded networks and generated data for the explanation tests (import as ``explain_helpers``)."""

from __future__ import annotations

import torch
from torch import nn

from transferlab.backbones import Preprocessing
from transferlab.explain import ExplainModel

SIZE = 16
PRE = Preprocessing(resize_size=SIZE, crop_size=SIZE, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3))
CLASSES = ["red", "green", "blue"]


def tiny_cnn(seed: int = 0, classes: int = 3) -> nn.Module:
    """conv-relu-conv-relu-avgpool-linear; no in-place ops, so reference hooks are simple."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes),
    ).eval()


def wrap(module: nn.Module, classes=CLASSES, pre=PRE, gradcam_layer: str | None = "3") -> ExplainModel:
    modules = dict(module.named_modules())
    return ExplainModel(module=module.eval(), preprocessing=pre, classes=list(classes),
                        layer_module=lambda name: modules[name], name="tiny", gradcam_layer=gradcam_layer)


def color_batch(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel images in [0, 1] tinted by class (red / green / blue dominant) with noise."""
    gen = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for c in range(3):
        base = torch.full((n_per_class, 3, SIZE, SIZE), 0.4)
        base[:, c] = 0.55
        images.append((base + 0.1 * torch.randn(base.shape, generator=gen)).clamp(0, 1))
        labels.append(torch.full((n_per_class,), c))
    return torch.cat(images), torch.cat(labels)


