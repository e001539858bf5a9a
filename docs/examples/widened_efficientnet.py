"""Report 004's widened EfficientNetV2-S as a registry backbone (docs/explain.md, "A custom backbone").

Neither torchvision nor timm takes a width multiplier for a named model (``timm.create_model("efficientnet_lite0",
channel_multiplier=1.1)`` raises ``TypeError: got multiple values for keyword argument 'channel_multiplier'``),
so the widened network is built from torchvision's public EfficientNet building blocks, every stage's channels
x ``width`` (rounded to a multiple of 8 as EfficientNet does), and registered under its own name. Importing this
file registers it; then every library verb and CLI command takes ``--backbone efficientnet_v2_s_w1.1``::

    python -c 'import sys; sys.path.insert(0, "docs/examples"); import widened_efficientnet; \
               from transferlab.cli.main import main; main()' \
        finetune DATA --backbone efficientnet_v2_s_w1.1 --weights none ...

(Setting ``conv.out_channels = int(conv.out_channels * 1.1)`` on a built network, as report 004 did, changes an
attribute and no weight: the network keeps its 21,458,488 parameters, those of the plain EfficientNetV2-S.)
"""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig

from transferlab.backbones import BackboneSpec, Preprocessing, register

NAME = "efficientnet_v2_s_w1.1"


def efficientnet_v2_s_wide(width: float = 1.1, num_classes: int | None = None) -> EfficientNet:
    """torchvision's EfficientNetV2-S stage table (``_efficientnet_conf``) with every channel count x ``width``."""
    w = partial(MBConvConfig.adjust_channels, width_mult=width)
    setting = [
        FusedMBConvConfig(1, 3, 1, w(24), w(24), 2),
        FusedMBConvConfig(4, 3, 2, w(24), w(48), 4),
        FusedMBConvConfig(4, 3, 2, w(48), w(64), 4),
        MBConvConfig(4, 3, 2, w(64), w(128), 6),
        MBConvConfig(6, 3, 1, w(128), w(160), 9),
        MBConvConfig(6, 3, 2, w(160), w(256), 15),
    ]
    return EfficientNet(setting, dropout=0.2, num_classes=num_classes or 1000, last_channel=w(1280),
                        norm_layer=partial(nn.BatchNorm2d, eps=1e-3))


def spec(name: str = NAME, width: float = 1.1, size: int = 384) -> BackboneSpec:
    """The registry entry: cut points (FX node names), head, Grad-CAM layer, ImageNet normalisation."""
    return BackboneSpec(
        name=name, build=lambda num_classes=None: efficientnet_v2_s_wide(width, num_classes),
        cut_points={**{f"stage{i}": f"features.{i}" for i in range(1, 8)}, "pre_logits": "flatten",
                    "logits": "classifier.1"},
        default_layer="pre_logits", head="classifier.1", gradcam_layer="features.7",
        input_preprocessing=Preprocessing(resize_size=size, crop_size=size, mean=(0.485, 0.456, 0.406),
                                          std=(0.229, 0.224, 0.225)),
        description=f"EfficientNetV2-S, channels x{width} (report 004), random initialisation")


register(spec())
