"""The "model to explain": a differentiable classifier with its preprocessing and class names.

Every explanation method works on an :class:`ExplainModel`, built either from a registry backbone
(:meth:`ExplainModel.from_backbone`) or from a saved transferlab model
(:meth:`ExplainModel.from_saved_model`, through ``transferlab.classify.load_model``). Two input spaces:

* **normalised** images (what the network was trained on): ``model.module(x_norm) -> scores``;
* **pixel** images in [0, 1]: ``model.pixel_module(x_pix) -> scores`` normalises inside, so attacks and
  class visualisation can clamp to valid images in pixel space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..backbones import BackboneSpec, Preprocessing, get_spec, load_backbone, make_taps, resolve_layer
from ..data import load_rgb, pil_to_tensor, resize_and_crop
from ..errors import ConfigError


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as a module (keeps normalisation inside the attacked model)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class PixelModel(nn.Module):
    """Pixel image in [0, 1] -> class scores: :class:`Normalize` followed by the network."""

    def __init__(self, network: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.normalize = Normalize(preprocessing.mean, preprocessing.std)
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.normalize(x))


@dataclass
class ExplainModel:
    """A network to explain.

    Parameters
    ----------
    module : normalised image batch ``(N, 3, H, W)`` -> class scores ``(N, C)``, differentiable, eval mode.
    preprocessing : the images' resize/crop/mean/std (the weights' own).
    classes : the ``C`` output class names.
    layer_module : ``layer_module(name) -> nn.Module``: the submodule to hook for a layer name.
    name : what it is (``resnet18 (none:seed=0)``, ``model:/path``), for reports.
    gradcam_layer : the default Grad-CAM layer (the last spatial block) or None.
    spec, backbone : the registry entry and raw network, when built from the registry (for feature taps).
    """

    module: nn.Module
    preprocessing: Preprocessing
    classes: list[str]
    layer_module: Callable[[str], nn.Module]
    name: str
    gradcam_layer: str | None = None
    spec: BackboneSpec | None = None
    backbone: nn.Module | None = None
    layer_names: list[str] = field(default_factory=list)
    _pixel: PixelModel | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_backbone(cls, name: str, weights: str | Path = "imagenet", *, seed: int = 0,
                      preprocessing_mode: str = "weights", device: torch.device | str = "cpu") -> "ExplainModel":
        """A registry backbone with its own head, preprocessing and output class names."""
        bb = load_backbone(name, weights, seed=seed, preprocessing_mode=preprocessing_mode)
        model = bb.model.to(device).eval()
        n_out = _output_size(model, bb.spec, bb.preprocessing, device)
        categories = list(bb.categories)
        classes = categories if len(categories) == n_out else [f"class_{i}" for i in range(n_out)]
        return cls(module=model, preprocessing=bb.preprocessing, classes=classes,
                   layer_module=_module_resolver(model, bb.spec), name=f"{name} ({bb.weights_id})",
                   gradcam_layer=bb.spec.gradcam_layer, spec=bb.spec, backbone=model,
                   layer_names=list(bb.spec.cut_points))

    @classmethod
    def from_saved_model(cls, folder: str | Path, device: torch.device | str = "cpu") -> "ExplainModel":
        """A saved transferlab model (``transferlab run`` / ``finetune`` output) with its own classes.

        Uses ``transferlab.classify.load_model(folder)``, which must return an object with ``.classes``,
        ``.preprocessing``, ``.backbone_name``, ``.as_torch_module()`` (normalised images -> class scores,
        differentiable, eval mode) and ``.layer_module(dotted_path)``.
        """
        from ..classify import load_model

        saved = load_model(folder)
        module = saved.as_torch_module().to(device).eval()
        try:
            spec = get_spec(saved.backbone_name)
            gradcam_layer = spec.gradcam_layer
        except ConfigError:
            spec, gradcam_layer = None, None

        def layer_module(layer: str) -> nn.Module:
            # one reference: a name resolves through the registry; a linear probe hooks any layer it computes
            # (function nodes too), other kinds take the module path
            target = layer
            if spec is not None:
                try:
                    target = resolve_layer(spec, layer, shape=False).module or layer
                except ConfigError:  # not a registry name (a module inside a traced leaf): the model decides
                    pass
            try:
                return saved.layer_module(target)
            except (AttributeError, KeyError) as exc:
                raise ConfigError(f"saved model {folder} has no layer {layer!r} ({exc}); use a cut point or a dotted "
                                  f"module path of {saved.backbone_name}, e.g. {gradcam_layer}") from None

        return cls(module=module, preprocessing=saved.preprocessing, classes=list(saved.classes),
                   layer_module=layer_module, name=f"model:{folder}", gradcam_layer=gradcam_layer,
                   layer_names=list(spec.cut_points) if spec is not None else [])

    # ---------------------------------------------------------------- use
    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def pixel_module(self) -> PixelModel:
        """Pixel images in [0, 1] -> class scores (normalisation inside)."""
        if self._pixel is None:
            self._pixel = PixelModel(self.module, self.preprocessing).to(self.device).eval()
        return self._pixel

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel_module.normalize(x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        n = self.pixel_module.normalize
        return x * n.std + n.mean

    def load_pixels(self, paths: list[str | Path]) -> torch.Tensor:
        """Decode images (robustly), resize/crop them like the weights do: ``(N, 3, H, W)`` in [0, 1]."""
        geometry = resize_and_crop(self.preprocessing)
        batch = [pil_to_tensor(geometry(load_rgb(p))) for p in paths]
        return torch.stack(batch).to(self.device)

    def predict(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted class index and its softmax confidence for pixel images."""
        with torch.no_grad():
            probs = self.pixel_module(pixels).softmax(dim=1)
        conf, index = probs.max(dim=1)
        return index, conf

    def taps(self, layers: list[str]) -> nn.Module:
        """A module mapping normalised images to ``{layer: activation}``: the registry's tap service (FX, the
        network untouched) for a registry backbone, hooks on the saved model's modules otherwise."""
        if self.spec is not None and self.backbone is not None:
            return make_taps(self.spec, self.backbone, layers)
        return HookTaps(self.module, {layer: self.layer_module(layer) for layer in layers})


class HookTaps(nn.Module):
    """Record named submodules' outputs during one forward pass; hooks are removed in ``finally``.

    Used for saved models, whose module is not a registry backbone (the names are resolved through the
    registry's layer references by ``ExplainModel.layer_module``; a linear probe hands out the hook points of
    its own tap service).
    """

    def __init__(self, network: nn.Module, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        self.network, self._modules_by_layer = network, modules

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        handles = []
        try:
            for layer, module in self._modules_by_layer.items():
                handles.append(module.register_forward_hook(
                    lambda _m, _i, o, layer=layer: out.__setitem__(layer, o)))
            self.network(x)
        finally:
            for handle in handles:
                handle.remove()
        missing = [layer for layer in self._modules_by_layer if layer not in out]
        if missing:
            raise ConfigError(f"layer(s) {', '.join(missing)} are not computed by this model (a saved linear model "
                              "stops at the layer its features come from); choose earlier layers")
        return out


def _output_size(model: nn.Module, spec: BackboneSpec, pre: Preprocessing, device) -> int:
    """Number of output classes: the head's ``out_features``, or one forward pass if it is not Linear."""
    head = dict(model.named_modules()).get(spec.head)
    if isinstance(head, nn.Linear):
        return int(head.out_features)
    with torch.no_grad():
        out = model(torch.zeros(1, 3, pre.crop_size, pre.crop_size, device=device))
    return int(out.shape[-1])


def _module_resolver(model: nn.Module, spec: BackboneSpec) -> Callable[[str], nn.Module]:
    """A layer name, resolved once through the registry (:func:`~transferlab.backbones.resolve_layer`),
    -> the submodule whose output it is (hooks need a module). Any dotted module path also works."""
    modules = dict(model.named_modules())

    def resolve(layer: str) -> nn.Module:
        try:
            ref = resolve_layer(spec, layer, model, shape=False)
        except ConfigError:
            if layer and layer in modules:  # a module inside a layer the tracer keeps whole
                return modules[layer]
            raise
        if ref.module is not None:
            return modules[ref.module]
        hookable = [name for name, node in spec.cut_points.items() if node in modules]
        what = "a composite cell" if ref.composite else "a function rather than a module"
        raise ConfigError(
            f"{'cut point' if layer in spec.cut_points else 'layer'} {layer!r} of {spec.name} is the graph node "
            f"{ref.node!r}, {what}, so it cannot be hooked; use a module layer such as "
            f"{', '.join(hookable[-3:]) or spec.gradcam_layer}")

    return resolve
