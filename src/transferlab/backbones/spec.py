"""What a backbone is: :class:`BackboneSpec` (architecture, weights, preprocessing, named cut points)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:  # annotations only: the catalog and the CLI read specs' data without importing torch
    from torch import nn

PREPROCESSING_MODES = ("weights", "squash")


@dataclass(frozen=True)
class Preprocessing:
    """How images become tensors for a backbone, as its weights define it.

    ``mode="weights"`` resizes the shorter side to ``resize_size`` then centre-crops ``crop_size``
    (torchvision's ``ImageClassification`` transform); weights with ``crop_mode="squash"`` (some timm
    weights) resize to ``resize_size`` x ``resize_size`` first. ``mode="squash"`` resizes the whole image to
    ``crop_size`` x ``crop_size`` with PIL bilinear, as the assignment does (no crop, aspect ratio lost).
    """

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    mode: str = "weights"
    crop_mode: str = "center"

    def with_mode(self, mode: str) -> "Preprocessing":
        from dataclasses import replace

        return replace(self, mode=mode)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """The inverse of :meth:`as_dict` (older files without ``interpolation``/``mode``/``crop_mode`` load
        with the defaults)."""
        return cls(resize_size=int(data["resize_size"]), crop_size=int(data["crop_size"]),
                   mean=tuple(float(v) for v in data["mean"]), std=tuple(float(v) for v in data["std"]),
                   interpolation=data.get("interpolation", "bilinear"), mode=data.get("mode", "weights"),
                   crop_mode=data.get("crop_mode", "center"))

    def as_dict(self) -> dict:
        return {"resize_size": self.resize_size, "crop_size": self.crop_size, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation, "mode": self.mode,
                "crop_mode": self.crop_mode}


@dataclass(frozen=True)
class WeightsEntry:
    """One set of pretrained weights of a backbone; it owns its preprocessing and class names
    (as torchvision's ``Weights`` enum values and timm's pretrained tags do).

    Parameters
    ----------
    tag : the name ``--weights`` takes (``IMAGENET1K_V1``, ``in1k``...); the spec's first entry is also
        ``--weights imagenet``.
    preprocessing : resize, crop, mean and std these weights were trained and evaluated with.
    categories : the pretrained head's output class names (empty for a headless entry).
    load : ``load() -> nn.Module``, the network with these weights (may download; raises WeightsError).
    source : where the weights come from, for logs and docs.
    trained_on : the dataset they were trained on.
    key : the stable identity recorded in weights ids, feature-cache keys and saved models
        (torchvision's ``VGG16_Weights.IMAGENET1K_V1``, timm's ``timm:resnet18.a1_in1k``).
    """

    tag: str
    preprocessing: Preprocessing
    categories: tuple[str, ...]
    load: Callable[[], nn.Module] = field(repr=False, compare=False)
    source: str = ""
    trained_on: str = "ImageNet-1k"
    key: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    Parameters
    ----------
    name : registry key (``vgg16``, ``timm/resnet18``...).
    build : ``build(num_classes=None) -> nn.Module`` with random initialisation (the architecture).
    weights : the pretrained weights entries, the default (``--weights imagenet``) first.
    cut_points : friendly layer name -> graph node name (torchvision FX), in network order.
    default_layer : the natural feature layer (``relu7`` for VGG, ``pre_logits`` elsewhere).
    head : dotted module path of the final classification layer (replaced by fine-tuning).
    gradcam_layer : dotted module path of the last spatial block (Grad-CAM's default), or None.
    input_preprocessing, input_categories : preprocessing and output class names of a backbone with no
        weights entry (random or file weights).
    make_taps : optional ``make_taps(model, {node: name}) -> nn.Module`` returning a dict; by default
        torchvision's ``create_feature_extractor``.
    node_names : optional ``node_names(model) -> [graph node names]``; by default torchvision's.
    """

    name: str
    build: Callable[..., nn.Module]
    cut_points: Mapping[str, str]
    default_layer: str
    head: str
    gradcam_layer: str | None
    weights: tuple[WeightsEntry, ...] = ()
    input_preprocessing: Preprocessing | None = None
    input_categories: tuple[str, ...] = ()
    family: str = "torchvision"
    description: str = ""
    make_taps: Callable[[nn.Module, dict[str, str]], nn.Module] | None = None
    node_names: Callable[[nn.Module], list[str]] | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def default_weights(self) -> WeightsEntry | None:
        """The entry ``--weights imagenet`` loads, or None for a backbone without pretrained weights."""
        return self.weights[0] if self.weights else None

    @property
    def preprocessing(self) -> Preprocessing:
        """The default weights' preprocessing (also used for random weights and weights files)."""
        if self.weights:
            return self.weights[0].preprocessing
        if self.input_preprocessing is None:
            raise ValueError(f"backbone {self.name} has neither weights entries nor input_preprocessing")
        return self.input_preprocessing

    @property
    def categories(self) -> tuple[str, ...]:
        """The default weights' class names."""
        return self.weights[0].categories if self.weights else self.input_categories

    def weights_entry(self, tag: str) -> WeightsEntry | None:
        """The entry called ``tag`` (``imagenet`` is the default one; case does not matter), or None."""
        if tag == "imagenet":
            return self.default_weights
        return next((w for w in self.weights if w.tag.lower() == tag.lower()), None)
