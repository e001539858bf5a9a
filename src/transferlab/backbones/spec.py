"""What a backbone is: :class:`BackboneSpec` (architecture, weights, preprocessing, named cut points)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from torch import nn

PREPROCESSING_MODES = ("weights", "squash")


@dataclass(frozen=True)
class Preprocessing:
    """How images become tensors for a backbone, as its weights define it.

    ``mode="weights"`` resizes the shorter side to ``resize_size`` then centre-crops ``crop_size``
    (torchvision's ``ImageClassification`` transform). ``mode="squash"`` resizes the whole image to
    ``crop_size`` x ``crop_size`` with PIL bilinear, as the assignment does (no crop, aspect ratio lost).
    """

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    mode: str = "weights"

    def with_mode(self, mode: str) -> "Preprocessing":
        from dataclasses import replace

        return replace(self, mode=mode)

    def as_dict(self) -> dict:
        return {"resize_size": self.resize_size, "crop_size": self.crop_size, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation, "mode": self.mode}


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    Parameters
    ----------
    name : registry key (``vgg16``, ``timm/resnet18``...).
    build : ``build(num_classes=None) -> nn.Module`` with random initialisation (the architecture).
    preprocessing : the preprocessing that belongs to the weights.
    cut_points : friendly layer name -> graph node name (torchvision FX), in network order.
    default_layer : the natural feature layer (``relu7`` for VGG, ``pre_logits`` elsewhere).
    head : dotted module path of the final classification layer (replaced by fine-tuning).
    gradcam_layer : dotted module path of the last spatial block (Grad-CAM's default), or None.
    weights : torchvision weights enum name (``"VGG16_Weights.IMAGENET1K_V1"``) or None.
    categories : output class names of the pretrained head (ImageNet's 1000 for torchvision).
    make_taps : optional ``make_taps(model, {node: name}) -> nn.Module`` returning a dict; by default
        torchvision's ``create_feature_extractor``.
    """

    name: str
    build: Callable[..., nn.Module]
    preprocessing: Preprocessing
    cut_points: Mapping[str, str]
    default_layer: str
    head: str
    gradcam_layer: str | None
    weights: str | None = None
    categories: tuple[str, ...] = ()
    family: str = "torchvision"
    description: str = ""
    make_taps: Callable[[nn.Module, dict[str, str]], nn.Module] | None = None
    extra: Mapping[str, object] = field(default_factory=dict)
