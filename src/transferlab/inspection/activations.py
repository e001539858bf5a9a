"""Activation maps of one image at a named layer, and the first layer's filters as RGB tiles.

Bonus question 4 of the assignment (``003`` section 1: "visualise several activation maps obtained
after the first convolutional layer; how can we interpret them?"), drawn as in report ``001``
Figure 1.3 and report ``000`` Figure 3. First-layer filters of an ImageNet network are oriented
edges, colour blobs and gratings (Krizhevsky et al. 2012, Figure 3; Zeiler & Fergus, *Visualizing and
understanding convolutional networks*, ECCV 2014); their activation maps light up where the image
holds that pattern.

The layer is tapped with the registry's :func:`~transferlab.backbones.make_taps` (torchvision FX
feature extraction), so nothing after it is computed and no hook is left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..backbones import Backbone, layer_shapes, make_taps, resolve_layer
from ..data import denormalize, image_transform
from ..errors import ConfigError
from .imagenet import load_images


@dataclass
class ActivationResult:
    """The maps of the chosen channels and the statistics of every channel of one layer."""

    image: str
    layer: str
    shape: tuple[int, int, int]
    channels: list[int]
    maps: np.ndarray  # (len(channels), H, W)
    stats: list[dict]  # every channel, in channel order
    selection: str
    input_image: np.ndarray  # (h, w, 3) in [0, 1]: what the network saw

    def ranked_stats(self) -> list[dict]:
        """Per-channel statistics sorted by mean activation, highest first (rank 1 = top channel)."""
        ranked = sorted(self.stats, key=lambda s: (-s["mean"], s["channel"]))
        return [{"rank": r + 1, **s, "shown": s["channel"] in self.channels} for r, s in enumerate(ranked)]


def parse_channels(text: str | None) -> list[int] | None:
    """``"0,5,7"`` -> ``[0, 5, 7]``; ``None``/empty -> ``None``."""
    if text is None or not text.strip():
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--channels must be comma-separated channel numbers such as 0,5,7; got {text!r}") from None


def channel_stats(act: torch.Tensor) -> list[dict]:
    """Mean, max, std and fraction of positive values of each channel of a (C, H, W) map."""
    flat = act.flatten(1).double()
    mean, std = flat.mean(1), flat.std(1, unbiased=False)
    mx, mn = flat.max(1).values, flat.min(1).values
    positive = (flat > 0).double().mean(1)
    return [{"channel": c, "mean": float(mean[c]), "std": float(std[c]), "min": float(mn[c]), "max": float(mx[c]),
             "positive_fraction": float(positive[c])} for c in range(act.shape[0])]


def activation_maps(backbone: Backbone, image: Path | str, layer: str | None = None, *, top: int = 16,
                    channels: Sequence[int] | None = None,
                    device: torch.device | str = "cpu") -> ActivationResult:
    """Activation maps of ``image`` at ``layer``: the ``top`` channels by mean activation, or ``channels``.

    The layer must have a spatial output (C, H, W); a vector layer (``fc6``) raises
    :class:`~transferlab.errors.ConfigError` naming the spatial layers.
    """
    spec = backbone.spec
    layer = layer or next(iter(spec.cut_points))
    ref = resolve_layer(spec, layer, backbone.model)  # once, on the meta device; lists the names if unknown
    shape = ref.shape
    if len(shape) != 3:
        spatial = [name for name, s in layer_shapes(spec).items() if len(s) == 3]
        raise ConfigError(f"layer {layer!r} of {spec.name} has output shape {shape}, not a (C, H, W) map; "
                          f"choose a spatial layer such as {', '.join(spatial[:8])}")
    (pil,) = load_images([image])
    x = image_transform(backbone.preprocessing)(pil).unsqueeze(0)
    taps = make_taps(spec, backbone.model, [ref])
    with torch.no_grad():
        act = taps.to(device).eval()(x.to(device))[layer][0].float().cpu()
    n_channels = act.shape[0]
    stats = channel_stats(act)
    if channels is not None:
        bad = [c for c in channels if not 0 <= c < n_channels]
        if bad or not channels:
            raise ConfigError(f"--channels {','.join(map(str, channels))}: layer {layer!r} has channels 0.."
                              f"{n_channels - 1}; got {bad or 'none'}")
        chosen, selection = list(dict.fromkeys(channels)), "chosen"
    else:
        if top < 1:
            raise ConfigError(f"--top must be at least 1; got {top}")
        order = sorted(range(n_channels), key=lambda c: (-stats[c]["mean"], c))
        chosen, selection = order[:top], f"top {min(top, n_channels)} by mean activation"
    seen = denormalize(x[0], backbone.preprocessing).clamp(0, 1).permute(1, 2, 0).numpy()
    return ActivationResult(image=str(image), layer=layer, shape=tuple(act.shape), channels=chosen,
                            maps=act[chosen].numpy(), stats=stats, selection=selection, input_image=seen)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first 2-D convolution that reads the 3 input colour channels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return name, module
    raise ConfigError(f"{type(model).__name__} has no Conv2d reading 3 colour channels; no filters to show")


def filter_tiles(conv: nn.Conv2d) -> np.ndarray:
    """The filters of an RGB convolution as images (out, kh, kw, 3), each scaled to [0, 1] on its own."""
    weight = conv.weight.detach().float().cpu()
    low = weight.flatten(1).min(1).values.view(-1, 1, 1, 1)
    high = weight.flatten(1).max(1).values.view(-1, 1, 1, 1)
    tiles = (weight - low) / (high - low).clamp_min(1e-12)
    return tiles.permute(0, 2, 3, 1).numpy()


def plot_activations(result: ActivationResult, path: Path | str, title: str = "") -> Path:
    """The input as the network saw it, then one panel per chosen channel (viridis, own colour scale)."""
    import matplotlib.pyplot as plt

    from ..report import save_figure

    n = len(result.channels) + 1
    cols = min(n, 6)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    axes.flat[0].imshow(result.input_image)
    axes.flat[0].set_title("input", fontsize=8)
    for ax, channel, amap in zip(axes.flat[1:], result.channels, result.maps):
        ax.imshow(amap, cmap="viridis")
        ax.set_title(f"ch {channel}  mean {result.stats[channel]['mean']:.3g}", fontsize=7)
    fig.suptitle(title or f"{result.layer} {tuple(result.shape)}: {result.selection}", fontsize=9)
    return save_figure(fig, path)


def plot_filters(tiles: np.ndarray, path: Path | str, title: str = "") -> Path:
    """The first-layer filters as a grid of small RGB tiles (nearest-neighbour, no smoothing)."""
    import matplotlib.pyplot as plt

    from ..report import save_figure

    n = len(tiles)
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.6 * cols + 0.5, 0.6 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, tile in zip(axes.flat, tiles):
        ax.imshow(tile, interpolation="nearest")
    fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)
