"""Registry entries for torchvision's ImageNet classifiers.

Every value of a network's weights enum is a weights entry (ResNet-50 has ``IMAGENET1K_V1`` and
``IMAGENET1K_V2``; the enum's ``DEFAULT`` comes first and is ``--weights imagenet``). Preprocessing and
class names are read from each value (``transforms()``, ``meta["categories"]``), never written here as
literals; cut points map the names used in the seeds (``conv1_1 ... relu7``) to torchvision graph nodes.
The assignment's ``vgg16(pretrained=True)`` is ``VGG16_Weights.IMAGENET1K_V1``, VGG16's default.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from torch import nn
from torchvision.models import get_model, get_model_weights
from torchvision.models.vgg import cfgs as VGG_CFGS

from .registry import register
from .spec import BackboneSpec, Preprocessing, WeightsEntry


def preprocessing_of(weights) -> Preprocessing:
    """Read resize/crop/mean/std/interpolation from a torchvision weights enum."""
    t = weights.transforms()
    return Preprocessing(
        resize_size=int(t.resize_size[0]), crop_size=int(t.crop_size[0]),
        mean=tuple(float(v) for v in t.mean), std=tuple(float(v) for v in t.std),
        interpolation=t.interpolation.value,
    )


def load_torchvision(name: str, weights_name: str) -> nn.Module:
    """torchvision's network ``name`` with weights ``weights_name`` (downloaded once into the torch cache)."""
    import urllib.error

    import torch
    from torchvision.models import get_weight

    from ..errors import WeightsError

    enum = get_weight(weights_name)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    try:
        return get_model(name, weights=enum)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise WeightsError(
            f"ImageNet weights for {name} are not cached (expected {cached}) and could not be downloaded "
            f"({exc.__class__.__name__}); connect once, copy {Path(enum.url).name} there, pass --weights PATH "
            "to a local file, or --weights none for random weights"
        ) from exc


def weights_entries(name: str) -> tuple[WeightsEntry, ...]:
    """One entry per value of the network's weights enum, ``DEFAULT`` first."""
    enum = get_model_weights(name)
    values = [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]
    entries = []
    for w in values:
        full = f"{enum.__name__}.{w.name}"
        categories = w.meta.get("categories") or ()
        trained_on = "ImageNet-1k" if len(categories) == 1000 else "ImageNet-1k, no head"
        if "SWAG" in w.name:  # Singh et al. 2022: weakly supervised on Instagram, then ImageNet-1k
            trained_on = "IG-3.6B, then ImageNet-1k" + (" (linear head)" if "LINEAR" in w.name else "")
        entries.append(WeightsEntry(tag=w.name, preprocessing=preprocessing_of(w), categories=tuple(categories),
                                    load=partial(load_torchvision, name, full), source=f"torchvision {full}",
                                    trained_on=trained_on, key=full))
    return tuple(entries)


def _build(name: str, num_classes: int | None = None, **kwargs) -> nn.Module:
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return get_model(name, weights=None, **kwargs)


def vgg_cut_points(cfg: list) -> dict[str, str]:
    """The seeds' VGG names: conv{b}_{i}, relu{b}_{i}, pool{b}, fc6, relu6, fc7, relu7, fc8."""
    points: dict[str, str] = {}
    index, block, conv = 0, 1, 1
    for item in cfg:
        if item == "M":
            points[f"pool{block}"] = f"features.{index}"
            index, block, conv = index + 1, block + 1, 1
        else:
            points[f"conv{block}_{conv}"] = f"features.{index}"
            points[f"relu{block}_{conv}"] = f"features.{index + 1}"
            index, conv = index + 2, conv + 1
    points.update({"fc6": "classifier.0", "relu6": "classifier.1", "fc7": "classifier.3",
                   "relu7": "classifier.4", "pre_logits": "classifier.4", "fc8": "classifier.6",
                   "logits": "classifier.6"})
    return points


ALEXNET_POINTS = {
    "conv1": "features.0", "relu1": "features.1", "pool1": "features.2",
    "conv2": "features.3", "relu2": "features.4", "pool2": "features.5",
    "conv3": "features.6", "relu3": "features.7", "conv4": "features.8", "relu4": "features.9",
    "conv5": "features.10", "relu5": "features.11", "pool5": "features.12",
    "fc6": "classifier.1", "relu6": "classifier.2", "fc7": "classifier.4", "relu7": "classifier.5",
    "pre_logits": "classifier.5", "fc8": "classifier.6", "logits": "classifier.6",
}
RESNET_POINTS = {"conv1": "relu", "pool1": "maxpool", "layer1": "layer1", "layer2": "layer2",
                 "layer3": "layer3", "layer4": "layer4", "avgpool": "avgpool", "pre_logits": "flatten",
                 "logits": "fc"}
INCEPTION_POINTS = {**{m: m for m in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1",
                                      "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c",
                                      "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                                      "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool")},
                    "pre_logits": "flatten", "logits": "fc"}


def squeezenet_cut_points(version: str) -> dict[str, str]:
    """SqueezeNet's own names (Iandola et al. 2016, Table 1): conv1, pool1, fire2 ... fire9, the two other
    max-pools, ``features`` (fire9's output, the classifier's input, also ``pre_logits``), conv10, relu10,
    ``avgpool`` (the global pool that gives the class scores) and ``logits``. Version 1.1 pools after fire3
    and fire5 instead of after fire4 and fire8."""
    layout = (["fire2", "fire3", "fire4", "pool4", "fire5", "fire6", "fire7", "fire8", "pool8", "fire9"]
              if version == "1_0" else
              ["fire2", "fire3", "pool3", "fire4", "fire5", "pool5", "fire6", "fire7", "fire8", "fire9"])
    points = {"conv1": "features.0", "relu1": "features.1", "pool1": "features.2"}
    points.update({name: f"features.{i}" for i, name in enumerate(layout, start=3)})
    points.update({"features": "features.12", "pre_logits": "features.12", "conv10": "classifier.1",
                   "relu10": "classifier.2", "avgpool": "classifier.3", "logits": "flatten"})
    return points


def _stages(count: int) -> dict[str, str]:
    return {f"stage{i}": f"features.{i}" for i in range(count)}


def _vit_points(depth: int) -> dict[str, str]:
    points = {f"block{i + 1}": f"encoder.layers.encoder_layer_{i}.add_1" for i in range(depth)}
    points.update({"encoder": "encoder.ln", "pre_logits": "getitem_5", "logits": "heads.head"})
    return points


def _entry(name: str, cut_points: dict[str, str], head: str, gradcam_layer: str | None,
           default_layer: str = "pre_logits", description: str = "", **build_kwargs) -> BackboneSpec:
    return register(BackboneSpec(
        name=name, build=partial(_build, name, **build_kwargs), weights=weights_entries(name),
        cut_points=cut_points, default_layer=default_layer, head=head, gradcam_layer=gradcam_layer,
        description=description,
    ))


def register_builtins() -> None:
    """Add torchvision's networks to the registry (called by the registry on its first use)."""
    _entry("vgg16", vgg_cut_points(VGG_CFGS["D"]), "classifier.6", "features.29", "relu7",
           "VGG16 (Simonyan & Zisserman 2015), 138M parameters; the assignment's network")
    _entry("vgg19", vgg_cut_points(VGG_CFGS["E"]), "classifier.6", "features.35", "relu7",
           "VGG19 (Simonyan & Zisserman 2015)")
    _entry("alexnet", ALEXNET_POINTS, "classifier.6", "features.11", "relu7", "AlexNet (Krizhevsky et al. 2012)")
    for version, size in (("1_0", "1.0"), ("1_1", "1.1")):  # the visualisation practical's network (report 002)
        _entry(f"squeezenet{version}", squeezenet_cut_points(version), "classifier.1", "features.12", "features",
               f"SqueezeNet {size} (Iandola et al. 2016), 1.2M parameters; 1x1-conv head; use --pooling avg")
    for depth in (18, 50, 152):
        _entry(f"resnet{depth}", RESNET_POINTS, "fc", "layer4", description=f"ResNet-{depth} (He et al. 2016)")
    _entry("inception_v3", INCEPTION_POINTS, "fc", "Mixed_7c", description="Inception v3 (Szegedy et al. 2016)",
           aux_logits=True, init_weights=True)
    _entry("efficientnet_b0", {**_stages(9), "avgpool": "avgpool", "pre_logits": "flatten",
                               "logits": "classifier.1"},
           "classifier.1", "features.8", description="EfficientNet-B0 (Tan & Le 2019)")
    _entry("efficientnet_v2_s", {**_stages(8), "avgpool": "avgpool", "pre_logits": "flatten",
                                 "logits": "classifier.1"},
           "classifier.1", "features.7", description="EfficientNetV2-S (Tan & Le 2021)")
    _entry("convnext_tiny", {**_stages(8), "avgpool": "avgpool", "pre_logits": "classifier.1",
                             "logits": "classifier.2"},
           "classifier.2", "features.7", description="ConvNeXt-Tiny (Liu et al. 2022)")
    _entry("vit_b_16", _vit_points(12), "heads.head", None, description="ViT-B/16 (Dosovitskiy et al. 2021)")
