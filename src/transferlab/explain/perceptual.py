"""Perceptual loss: distances between images measured in pixels and in a network's feature space.

Johnson, Alahi & Fei-Fei (2016) compare images by the distance of their VGG features instead of their
pixels. Report ``004`` asks how the two react to a 1-pixel translation and to Gaussian noise:
:func:`perceptual_experiment` reproduces that table for any registry backbone and any named layers.

Distances are means over elements: ``l1 = mean |a - b|`` (MAE) and ``l2 = mean (a - b)^2`` (MSE), on
pixels in [0, 1] or on a layer's activations (computed on the normalised images, the weights' own
preprocessing). Features come from the one tap service (:meth:`ExplainModel.taps`: the registry's FX taps for a
backbone, hooks on a saved model's modules), so any layer name the registry resolves works.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .model import ExplainModel

DEFAULT_LAYER_COUNT = 4


def pixel_distances(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Mean absolute (L1) and mean squared (L2) difference of two equal-shape tensors."""
    if a.shape != b.shape:
        raise ConfigError(f"images to compare must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a - b).double()
    return {"l1": float(diff.abs().mean()), "l2": float(diff.pow(2).mean())}


def default_layers(model: ExplainModel, count: int = DEFAULT_LAYER_COUNT) -> list[str]:
    """``count`` cut points spread evenly from the first to the last before the logits."""
    names, seen = [], set()
    spec = model.spec
    for name in model.layer_names:
        node = spec.cut_points[name] if spec is not None else name
        if name in ("logits", "pre_logits") or node in seen:
            continue
        seen.add(node)
        names.append(name)
    if not names:
        raise ConfigError(f"{model.name} has no named layers to compare; pass --layer")
    picks = np.unique(np.linspace(0, len(names) - 1, min(count, len(names))).round().astype(int))
    return [names[i] for i in picks]


class PerceptualDistance:
    """Pixel and feature distances between image pairs.

    Parameters
    ----------
    model : the network whose features measure the distance (VGG16 in Johnson et al. and report 004).
    layers : cut-point names (``relu1_2``, ``relu5_3``...); default :func:`default_layers`.
    """

    def __init__(self, model: ExplainModel, layers: list[str] | None = None) -> None:
        self.model = model
        self.layers = list(layers) if layers else default_layers(model)
        self._taps = model.taps(self.layers)

    def features(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self._taps(self.model.normalize(pixels.to(self.model.device)))

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        """Distances between pixel images ``a`` and ``b`` (``(3, H, W)`` or ``(1, 3, H, W)``, in [0, 1]).

        Keys: ``pixel_l1``, ``pixel_l2``, then ``<layer>_l1`` and ``<layer>_l2`` for every layer.
        """
        a = a if a.ndim == 4 else a[None]
        b = b if b.ndim == 4 else b[None]
        out = {f"pixel_{k}": v for k, v in pixel_distances(a, b).items()}
        fa, fb = self.features(a), self.features(b)
        for layer in self.layers:
            for k, v in pixel_distances(fa[layer], fb[layer]).items():
                out[f"{layer}_{k}"] = v
        return out


def translate(pixels: torch.Tensor, shift: int = 1) -> torch.Tensor:
    """Move the image ``shift`` pixels to the left (positive) or right; the uncovered edge is replicated."""
    if shift == 0:
        return pixels.clone()
    out = torch.roll(pixels, shifts=-shift, dims=-1)
    if shift > 0:
        out[..., -shift:] = pixels[..., -1:].expand_as(out[..., -shift:])
    else:
        out[..., :-shift] = pixels[..., :1].expand_as(out[..., :-shift])
    return out


def add_noise(pixels: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``sigma`` (pixel units in [0, 1]); clamp to [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(pixels.shape, generator=gen).to(pixels.device)
    return (pixels + sigma * noise).clamp(0, 1)


def _experiment_rows(metric: PerceptualDistance, x: torch.Tensor, shift: int, sigma: float, seed: int,
                     pixel_scale: float = 1.0, suffix: str = "") -> tuple[list[dict], dict[str, torch.Tensor]]:
    moved = translate(x, shift)
    noisy = add_noise(x, sigma, seed)
    moved_noisy = add_noise(moved, sigma, seed)
    pairs = {"original vs translated": (x, moved), "original vs noisy": (x, noisy),
             "translated vs translated+noise": (moved, moved_noisy)}
    results = {name: metric.compare(a, b) for name, (a, b) in pairs.items()}
    rows = []
    for key in results["original vs translated"]:
        layer, _, kind = key.rpartition("_")
        scale = (pixel_scale if kind == "l1" else pixel_scale ** 2) if layer == "pixel" else 1.0
        space = ("pixels" + (" 0-255" if pixel_scale == 255 else "")) if layer == "pixel" else layer
        row = {"measure": kind.upper(), "space": space + suffix}
        row.update({name: values[key] * scale for name, values in results.items()})
        noise = row["original vs noisy"]
        row["translation/noise"] = row["original vs translated"] / noise if noise > 0 else float("nan")
        rows.append(row)
    images = {"original": x[0].cpu(), "translated": moved[0].cpu(), "noisy": noisy[0].cpu(),
              "translated+noise": moved_noisy[0].cpu()}
    return rows, images


def perceptual_experiment(model: ExplainModel, pixels: torch.Tensor, layers: list[str] | None = None, *,
                          shift: int = 1, sigma: float = 0.1, seed: int = 0, full: torch.Tensor | None = None
                          ) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Report 004's experiment: an image vs its translation and vs a noisy copy, per measure.

    Returns table rows (one per measure: pixel L1/L2, then L1/L2 at each layer) with one column per
    pair and the ratio ``translation / noise``, and the images compared (the network's crop).

    full : the same photo at its own resolution (pixels in [0, 1], no resize or crop): the experiment is
        repeated on it, as report 004 ran it on its 1920x2880 photo, with pixel distances in 0-255 units
        (L1 x 255, L2 x 255^2; the noise is ``sigma`` x 255 grey levels) and the layers' distances on the
        full-size image; those rows' ``space`` ends with ``(full WxH)``.
    """
    if sigma < 0:
        raise ConfigError(f"noise sigma must be >= 0, got {sigma}")
    x = pixels if pixels.ndim == 4 else pixels[None]
    metric = PerceptualDistance(model, layers)
    rows, images = _experiment_rows(metric, x[:1].to(model.device), shift, sigma, seed)
    if full is not None:
        f = (full if full.ndim == 4 else full[None])[:1].to(model.device)
        size = f"{f.shape[-1]}x{f.shape[-2]}"
        full_rows, _ = _experiment_rows(metric, f, shift, sigma, seed, pixel_scale=255, suffix=f" (full {size})")
        rows += full_rows
    return rows, images
