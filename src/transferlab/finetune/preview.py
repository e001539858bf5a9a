"""``transferlab data augment-preview``: one image and N augmented versions in a grid (report 001, Figure 1.9).

The versions are drawn by exactly the training transform of ``finetune --augment PRESET`` (the backbone's
preprocessing, ``--input-size``, ``+noise``/``+cutout`` blocks, ``--grayscale``), stopped before the
normalisation so they show as pixels; the first panel is the evaluation view (resize + centre crop) that
validation and test images get. Seeded: the same call draws the same versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runs import Run


def augmented_versions(image: Path | str, *, backbone: str = "resnet18", augment: str = "seed", n: int = 8,
                       seed: int = 0, input_size: int | None = None, grayscale: str = "duplicate",
                       preprocess: str = "weights"):
    """``(evaluation view, [n augmented versions])`` as ``[0, 1]`` tensors (C, crop, crop), and the preprocessing.

    Only the backbone's preprocessing is needed: no network is built."""
    import torch

    from ..backbones import get_spec
    from ..backbones.grayscale import check_mode, gray_preprocessing
    from ..data import load_rgb
    from ..data.transforms import pil_to_tensor, resize_and_crop, to_channels
    from ..errors import ConfigError
    from ..training import seeded
    from .augment import parse_augment, pixel_transform
    from .trainer import at_input_size

    if int(n) < 1:
        raise ConfigError(f"--n must be at least 1 augmented version; got {n}")
    parse_augment(augment)
    pre = at_input_size(get_spec(backbone).preprocessing.with_mode(preprocess), input_size)
    if check_mode(grayscale) != "duplicate":
        pre = gray_preprocessing(pre)
    img = load_rgb(image)
    transform = pixel_transform(pre, augment)
    with seeded(seed):
        versions = [transform(img) for _ in range(int(n))]
    view = pil_to_tensor(to_channels(resize_and_crop(pre)(img), pre))
    return view, versions, pre


def plot_versions(view, versions, path: Path | str, title: str, cols: int | None = None) -> Path:
    """The evaluation view then the augmented versions, ``cols`` per row (default: up to 5)."""
    import math

    import matplotlib.pyplot as plt

    from ..report.plots import save_figure

    panels = [("original (evaluation view)", view)] + [(f"augmented {i + 1}", v) for i, v in enumerate(versions)]
    cols = cols or min(5, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.5 * rows + 0.4), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (label, x) in zip(axes.flat, panels):
        array = x.clamp(0, 1).permute(1, 2, 0).numpy()
        ax.imshow(array[..., 0] if array.shape[2] == 1 else array, cmap="gray" if array.shape[2] == 1 else None,
                  vmin=0, vmax=1)
        ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def augment_preview(image: Path | str, *, backbone: str = "resnet18", augment: str = "seed", n: int = 8,
                    seed: int = 0, input_size: int | None = None, grayscale: str = "duplicate",
                    preprocess: str = "weights", out: Path | str | None = None) -> dict[str, Any]:
    """Write ``augment_preview.png`` (the image and ``n`` augmented versions) into a run folder.

    Returns ``{"figure", "out", "crop_size", "n"}``; ``transferlab rerun`` replays it."""
    call = {"image": str(image), "backbone": backbone, "augment": augment, "n": n, "seed": seed,
            "input_size": input_size, "grayscale": grayscale, "preprocess": preprocess}
    with Run("data augment-preview", "transferlab.finetune.preview:augment_preview", call, out) as run:
        view, versions, pre = augmented_versions(image, backbone=backbone, augment=augment, n=n, seed=seed,
                                                 input_size=input_size, grayscale=grayscale, preprocess=preprocess)
        run.record(**call, preprocessing=pre.as_dict(), resolved_device="cpu")
        figure = plot_versions(view, versions, run.out / "augment_preview.png",
                               title=f"{Path(image).name}: --augment {augment} ({backbone}, {pre.crop_size} px, "
                                     f"seed {seed})")
        run.log.info("%d versions of %s with --augment %s -> %s", n, image, augment, figure)
    return {"figure": figure, "out": run.out, "crop_size": pre.crop_size, "n": int(n)}
