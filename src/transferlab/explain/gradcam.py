"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks").

The class score's gradient with respect to a convolutional layer's activations ``A`` is averaged over
space into one weight per channel; the map is ``ReLU(sum_k w_k A_k)``, upsampled (bilinear) to the input
size. captum's ``LayerGradCam`` does the hooking; it removes its hooks in ``finally`` blocks, and this
class checks after every call that none are left on the model (a leak is a bug, raised as RuntimeError).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import nn

from ..errors import ConfigError
from .model import ExplainModel
from .target import Explanation, Target, score_targets


def hook_count(module: nn.Module) -> int:
    """Number of forward/backward hooks registered on ``module`` and all its submodules."""
    total = 0
    for m in module.modules():
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(m, name, {}) or {})
    return total


class GradCAM:
    """Grad-CAM at a named layer (default: the backbone's ``spec.gradcam_layer``, its last spatial block).

    Parameters
    ----------
    model : the network to explain.
    layer : a cut-point name (``relu5``) or dotted module path (``layer4``, ``features.29``).
    """

    def __init__(self, model: ExplainModel, layer: str | None = None) -> None:
        layer = layer or model.gradcam_layer
        if layer is None:
            raise ConfigError(f"{model.name} declares no default Grad-CAM layer (no spatial block, e.g. a "
                              "vision transformer); pass --layer with a convolutional layer name")
        self.model, self.layer = model, layer
        self.layer_module = model.layer_module(layer)

    def attribute(self, pixels: torch.Tensor, target: Target | str | int | None = None) -> Explanation:
        """Grad-CAM maps ``(N, H, W)`` (upsampled to the input size) for pixel images in [0, 1].

        ``self.last_low_res_`` holds the maps at the layer's own resolution.
        """
        target = Target.of(target)
        x = self.model.normalize(pixels.to(self.model.device)).detach()
        idx, scores, probs, predicted = score_targets(self.model.module, x, target, self.model.classes)
        x.requires_grad_(True)  # captum would set it (and warn)
        before = hook_count(self.model.module)
        try:
            cam = LayerGradCam(self.model.module, self.layer_module).attribute(x, target=idx, relu_attributions=True)
        except AssertionError as exc:  # captum asserts when the hooked layer never ran
            if "did not obtain any outputs" not in str(exc):
                raise
            raise ConfigError(_not_computed(self.layer, self.model.name)) from None
        finally:
            leaked = hook_count(self.model.module) - before
        if leaked:
            raise RuntimeError(f"Grad-CAM left {leaked} hook(s) on the model (bug)")
        if isinstance(cam, tuple):
            cam = cam[0]
        if cam.ndim != 4 or cam.shape[-1] * cam.shape[-2] <= 1:
            raise ConfigError(
                f"layer {self.layer!r} has no spatial extent (its Grad-CAM map has shape {tuple(cam.shape[1:])}); "
                f"Grad-CAM needs a convolutional layer with a height and width, such as "
                f"{self.model.gradcam_layer or 'the last convolutional block'}"
            )
        low = cam.detach()[:, 0]
        self.last_low_res_ = low
        maps = F.interpolate(low[:, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
        return Explanation(maps=maps, targets=idx, scores=scores, probs=probs, predicted=predicted)


def _not_computed(layer: str, name: str) -> str:
    return (f"layer {layer!r} is not computed by {name} (a saved linear model stops at the layer its features come "
            "from); pass --layer with an earlier convolutional layer")
