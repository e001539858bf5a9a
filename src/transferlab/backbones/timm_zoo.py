"""``timm/<name>``: any timm model, resolved on demand when timm is installed.

Preprocessing comes from the model's ``pretrained_cfg`` (input size, crop_pct, mean, std,
interpolation). Cut points: ``features`` (``forward_features``), ``pre_logits`` and ``logits``
(``forward_head``).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from ..errors import ConfigError, did_you_mean
from .registry import register_prefix
from .spec import BackboneSpec, Preprocessing

TIMM_POINTS = {"features": "features", "pre_logits": "pre_logits", "logits": "logits"}


class TimmTaps(nn.Module):
    """Return the requested timm outputs; ``logits`` runs the head, the others stop before it."""

    def __init__(self, model: nn.Module, return_nodes: dict[str, str]) -> None:
        super().__init__()
        self.model = model
        self.return_nodes = return_nodes

    def forward(self, x):
        out, feats = {}, self.model.forward_features(x)
        if "features" in self.return_nodes:
            out[self.return_nodes["features"]] = feats
        if {"pre_logits", "logits"} & set(self.return_nodes):
            pre = self.model.forward_head(feats, pre_logits=True)
            if "pre_logits" in self.return_nodes:
                out[self.return_nodes["pre_logits"]] = pre
            if "logits" in self.return_nodes:
                out[self.return_nodes["logits"]] = self.model.forward_head(feats)
        return out


def _make_taps(model: nn.Module, return_nodes: dict[str, str]) -> nn.Module:
    unknown = set(return_nodes) - set(TIMM_POINTS)
    if unknown:
        raise ConfigError(f"timm backbones expose the layers {', '.join(TIMM_POINTS)}; got {', '.join(unknown)}")
    return TimmTaps(model, return_nodes)


def _build(name: str, num_classes: int | None = None) -> nn.Module:
    import timm

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return timm.create_model(name, pretrained=False, **kwargs)


def resolve_timm(name: str) -> BackboneSpec:
    """Build the spec of ``timm/<name>`` from timm's pretrained configuration."""
    try:
        import timm
    except ImportError as exc:
        raise ConfigError(f"timm/{name} needs timm: pip install 'transferlab[timm]'") from exc
    base = name.split(".")[0]
    if base not in timm.list_models():
        raise ConfigError(f"timm has no model {name!r}.{did_you_mean(base, timm.list_models())} "
                          "See timm.list_models() for the names")
    cfg = timm.models.get_pretrained_cfg(name) or timm.models.get_pretrained_cfg(base)
    crop = int(cfg.input_size[-1])
    preprocessing = Preprocessing(
        resize_size=int(round(crop / cfg.crop_pct)), crop_size=crop,
        mean=tuple(float(v) for v in cfg.mean), std=tuple(float(v) for v in cfg.std),
        interpolation=cfg.interpolation or "bilinear",
    )
    return BackboneSpec(
        name=f"timm/{name}", build=partial(_build, name), preprocessing=preprocessing,
        cut_points=TIMM_POINTS, default_layer="pre_logits", head=cfg.classifier or "head",
        gradcam_layer=None, weights=f"timm:{name}", categories=(), family="timm",
        description=f"timm model {name}", make_taps=_make_taps,
    )


register_prefix("timm", resolve_timm)
