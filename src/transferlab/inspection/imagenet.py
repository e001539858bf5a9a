"""Apply a pretrained classifier to any images and name its top-k ImageNet classes.

Question 3 of the assignment (``003`` section 1): "apply the network on several images of your
choice; what is the role of the ImageNet normalisation? why set the model to eval mode?". Besides
the normal prediction (the weights' own preprocessing, eval mode) :func:`predict_imagenet` can show

* ``normalize=False``: the same pixels fed in [0, 1] without subtracting the ImageNet mean and
  dividing by its standard deviation, i.e. inputs off the distribution the network was trained on;
* ``train_passes=N``: N forward passes in train mode (dropout active, BatchNorm on batch statistics),
  each seeded, so the top-1 class and its probability change from pass to pass.

Train mode never changes the network: its buffers (BatchNorm running statistics) are restored and
eval mode is set again in ``finally``. Class names come from the weights entry (``backbone.categories``: the
1000 names torchvision ships in its weights metadata, or timm's ``ImageNetInfo``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..backbones import Backbone
from ..data import image_transform, load_rgb, pil_to_tensor, resize_and_crop
from ..errors import ConfigError, DataError


@dataclass(frozen=True)
class TopK:
    """The k best classes of one forward pass, best first."""

    indices: tuple[int, ...]
    names: tuple[str, ...]
    probabilities: tuple[float, ...]

    def as_list(self) -> list[dict]:
        return [{"rank": r + 1, "class_index": i, "class_name": n, "probability": p}
                for r, (i, n, p) in enumerate(zip(self.indices, self.names, self.probabilities))]


@dataclass
class ImagePrediction:
    """Predictions for one image: normal, without normalisation, and per train-mode pass."""

    image: str
    eval: TopK
    no_normalize: TopK | None = None
    train_passes: list[TopK] = field(default_factory=list)
    crop: Any = field(default=None, repr=False, compare=False)  # the network's view (PIL image: resize + crop)

    def train_summary(self) -> dict | None:
        """How often train mode agrees with the eval top-1, and the spread of its probability."""
        if not self.train_passes:
            return None
        top = self.eval.indices[0]
        agree = [p.indices[0] == top for p in self.train_passes]
        return {"passes": len(self.train_passes), "top1_agreement": float(np.mean(agree)),
                "top1_classes": [p.names[0] for p in self.train_passes],
                "top1_probabilities": [p.probabilities[0] for p in self.train_passes]}

    def as_dict(self) -> dict:
        out = {"image": self.image, "eval": self.eval.as_list()}
        if self.no_normalize is not None:
            out["no_normalize"] = self.no_normalize.as_list()
        if self.train_passes:
            out["train_mode"] = {"passes": [p.as_list() for p in self.train_passes], **self.train_summary()}
        return out

    def rows(self) -> list[dict]:
        """Long-format table rows: one per (variant, pass, rank)."""
        rows = [{"image": self.image, "variant": "eval", "pass": "", **r} for r in self.eval.as_list()]
        if self.no_normalize is not None:
            rows += [{"image": self.image, "variant": "no_normalize", "pass": "", **r}
                     for r in self.no_normalize.as_list()]
        for i, p in enumerate(self.train_passes):
            rows += [{"image": self.image, "variant": "train_mode", "pass": i + 1, **r} for r in p.as_list()]
        return rows


def class_names(backbone: Backbone, n_outputs: int) -> list[str]:
    """Names of the network's outputs: the registry's categories, or ``class_<i>`` when they do not fit."""
    names = list(backbone.categories)
    return names if len(names) == n_outputs else [f"class_{i}" for i in range(n_outputs)]


def load_images(paths: Sequence[Path | str]) -> list:
    """Decode every image to RGB, refusing missing or unreadable files with a clear error."""
    if not paths:
        raise DataError("no image given; pass one or more image files")
    images = []
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_file():
            raise DataError(f"image {path} does not exist or is not a file; pass the path of an image file "
                            "(jpg, png, ...)")
        images.append(load_rgb(path))
    return images


def top_k(logits: torch.Tensor, names: Sequence[str], k: int) -> list[TopK]:
    """Softmax probabilities and the k best classes of each row of ``logits``."""
    if not torch.isfinite(logits).all():
        raise ConfigError("the network produced non-finite outputs (NaN/inf); check the weights file")
    probs = torch.softmax(logits.float(), dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [TopK(tuple(int(i) for i in idx), tuple(names[int(i)] for i in idx), tuple(float(v) for v in val))
            for idx, val in zip(indices.cpu(), values.cpu())]


def predict_imagenet(backbone: Backbone, images: Sequence[Path | str], *, k: int = 5, normalize_variant: bool = False,
                     train_passes: int = 0, seed: int = 0, device: torch.device | str = "cpu",
                     batch_size: int = 16) -> list[ImagePrediction]:
    """Top-k classes of each image under the backbone's own preprocessing in eval mode.

    Parameters
    ----------
    normalize_variant : also predict without the ImageNet normalisation (pixels in [0, 1]).
    train_passes : also run this many seeded forward passes in train mode (dropout on).
    """
    if k < 1:
        raise ConfigError(f"--top must be at least 1; got {k}")
    if train_passes < 0:
        raise ConfigError(f"--passes must be zero or more; got {train_passes}")
    pils = load_images(images)
    pre = backbone.preprocessing
    normal = image_transform(pre)
    geometry = resize_and_crop(pre)
    model = backbone.model.to(device).eval()
    x = torch.stack([normal(img) for img in pils])
    raw = torch.stack([pil_to_tensor(geometry(img)) for img in pils]) if normalize_variant else None

    def forward(batch: torch.Tensor) -> torch.Tensor:
        outs = [model(batch[i:i + batch_size].to(device)) for i in range(0, len(batch), batch_size)]
        return torch.cat([o.logits if hasattr(o, "logits") else o for o in outs])

    with torch.no_grad():
        logits = forward(x)
        names = class_names(backbone, logits.shape[1])
        results = [ImagePrediction(str(path), t, crop=geometry(img))
                   for path, t, img in zip(images, top_k(logits, names, k), pils)]
        if raw is not None:
            for result, t in zip(results, top_k(forward(raw), names, k)):
                result.no_normalize = t
        if train_passes:
            for passes in _train_mode_passes(model, forward, x, train_passes, seed):
                for result, t in zip(results, top_k(passes, names, k)):
                    result.train_passes.append(t)
    return results


def _train_mode_passes(model: torch.nn.Module, forward, x: torch.Tensor, passes: int, seed: int):
    """Logits of ``passes`` seeded train-mode forward passes; the model is left exactly as it was."""
    saved = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    param = next(model.parameters(), None)
    cuda = [param.device] if param is not None and param.device.type == "cuda" else []
    out = []
    try:
        model.train()
        with torch.random.fork_rng(devices=cuda):  # the caller's random state is left as it was
            for i in range(passes):
                torch.manual_seed(seed + i)
                try:
                    out.append(forward(x))
                except ValueError as exc:  # BatchNorm1d on a single image
                    raise ConfigError(f"{type(model).__name__} cannot run in train mode on {len(x)} image(s) "
                                      f"({exc}); pass at least two images") from exc
    finally:
        model.eval()
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(saved[name])
    return out


def plot_predictions(results: Sequence[ImagePrediction], images: Sequence | None, path: Path | str,
                     title: str = "") -> Path:
    """One row per image: what the network saw (its resize and crop), then a top-k bar chart per variant
    (eval, no normalisation, train mode). ``images`` is only used for results without their crop."""
    import textwrap

    import matplotlib.pyplot as plt

    from ..report import save_figure

    variants = ["eval"] + (["no_normalize"] if results[0].no_normalize is not None else []) \
        + (["train_mode"] if results[0].train_passes else [])
    images = list(images) if images is not None else [None] * len(results)
    fig, axes = plt.subplots(len(results), 1 + len(variants), figsize=(2.6 + 4.4 * len(variants),
                                                                       2.4 * len(results) + (0.5 if title else 0)),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1] + [1.7] * len(variants)})
    for row, (result, img) in zip(axes, zip(results, images)):
        shown = [result.eval] + ([result.no_normalize] if result.no_normalize is not None else []) \
            + result.train_passes[:1]
        scale = min(1.0, max(p for t in shown for p in t.probabilities))  # random weights: ~1/1000
        row[0].imshow(result.crop if result.crop is not None else img)
        row[0].set_axis_off()
        name = Path(result.image).name
        row[0].set_title(name if len(name) <= 30 else f"{name[:18]}...{name[-9:]}", fontsize=8)
        for ax, variant in zip(row[1:], variants):
            if variant == "train_mode":
                t = result.train_passes[0]
                summary = result.train_summary()
                label = f"train mode, pass 1 of {summary['passes']}\n(top-1 = eval in {summary['top1_agreement']:.0%})"
            else:
                t = result.eval if variant == "eval" else result.no_normalize
                label = "eval mode" if variant == "eval" else "no ImageNet normalisation"
            ax.barh(range(len(t.names)), t.probabilities, color="tab:blue" if variant == "eval" else "tab:orange")
            # whole names (wrapped, not cut); constrained layout makes room for them left of the bars
            ax.set_yticks(range(len(t.names)), [textwrap.fill(n, 22, max_lines=2, placeholder="...")
                                                for n in t.names], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, min(1.15, scale * 1.3))  # room for the numbers after the longest bar
            for y, p in enumerate(t.probabilities):
                ax.text(p, y, f" {p:.3g}", va="center", fontsize=6)
            ax.set_title(label, fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
    for ax in axes[-1, 1:]:
        ax.set_xlabel("softmax probability", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
