"""Figures of the explanation methods (matplotlib, Agg): overlays, per-image grids, strips."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..report import save_figure
from ..report.plots import plt


def to_image(pixels: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` tensor in [0, 1] -> ``(H, W, 3)`` float array for imshow."""
    return pixels.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def normalize_map(heat: torch.Tensor) -> np.ndarray:
    """Scale a non-negative map to [0, 1] (all-zero maps stay zero)."""
    h = heat.detach().float().cpu().numpy()
    top = float(h.max()) if h.size else 0.0
    return h / top if top > 0 else np.zeros_like(h)


def overlay(pixels: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a heat map (coloured with ``cmap``) over an image: ``(H, W, 3)`` in [0, 1]."""
    colored = plt.get_cmap(cmap)(normalize_map(heat))[..., :3]
    return np.clip((1 - alpha) * to_image(pixels) + alpha * colored, 0, 1)


def heatmap_grid(pixels: torch.Tensor, maps: torch.Tensor, titles: Sequence[str], path: Path | str,
                 map_name: str = "saliency", cmap: str = "hot") -> Path:
    """One column per image; rows: image, map, overlay (report 001 Figure 2.2)."""
    n = pixels.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(2.6 * n, 7.8), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(to_image(pixels[i]))
        axes[0, i].set_title(titles[i], fontsize=8)
        axes[1, i].imshow(normalize_map(maps[i]), cmap=cmap, vmin=0, vmax=1)
        axes[2, i].imshow(overlay(pixels[i], maps[i], cmap="jet"))
    for ax in axes.flat:
        ax.axis("off")
    axes[1, 0].text(-0.05, 0.5, map_name, transform=axes[1, 0].transAxes, rotation=90, ha="right", va="center")
    axes[2, 0].text(-0.05, 0.5, "overlay", transform=axes[2, 0].transAxes, rotation=90, ha="right", va="center")
    return save_figure(fig, path)


def signed_difference(diff: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` difference -> ``(H, W)``: per pixel, the signed value of its largest-magnitude channel."""
    d = diff.detach().float().cpu()
    return d.gather(0, d.abs().argmax(0, keepdim=True))[0].numpy()


def adversarial_grid(original: torch.Tensor, adversarial: torch.Tensor, titles: Sequence[tuple[str, str]],
                     path: Path | str) -> Path:
    """One row per image: original, adversarial, difference, magnified difference (report 001 Fig. 2.4).

    The difference is drawn with a symmetric colormap scaled to its own largest magnitude (blue negative,
    red positive, white unchanged; per pixel the channel that moved most), with a colorbar in 1/255 units and
    its L-inf / L2 norms in the title; the magnified difference is the RGB difference around mid-grey, scaled so
    its largest entry fills the range, with the factor in the title.
    """
    n = original.shape[0]
    fig, axes = plt.subplots(n, 4, figsize=(12.8, 3.0 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.25, 1], "wspace": 0.25})
    for i in range(n):
        diff = (adversarial[i] - original[i]).detach().cpu()
        top = float(diff.abs().max())
        l2 = float(diff.flatten().norm())
        factor = 0.5 / top if top > 0 else 1.0
        for ax, (img, title) in zip(axes[i], [(original[i], titles[i][0]), (adversarial[i], titles[i][1])]):
            ax.imshow(to_image(img))
            ax.set_title(title, fontsize=8)
        scale = top * 255 if top > 0 else 1.0
        shown = axes[i, 2].imshow(signed_difference(diff) * 255, cmap="RdBu_r", vmin=-scale, vmax=scale)
        axes[i, 2].set_title(f"difference: L-inf {top * 255:.3g}/255, L2 {l2:.3g}", fontsize=8)
        bar = fig.colorbar(shown, ax=axes[i, 2], fraction=0.046, pad=0.03)
        bar.ax.tick_params(labelsize=7)
        bar.ax.set_title("/255", fontsize=7)
        axes[i, 3].imshow(to_image(0.5 + factor * diff))
        axes[i, 3].set_title(f"difference x{factor:.0f} around grey", fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    return save_figure(fig, path)


def perturbation_saliency_grid(original: torch.Tensor, perturbation: torch.Tensor, saliency: torch.Tensor,
                               titles: Sequence[str], stats: Sequence[dict[str, float]], path: Path | str) -> Path:
    """One row per image: the image, ``|perturbation|``, the saliency map, both overlaid (report 002, Q5).

    Each map is scaled to its own maximum; the row's Pearson / Spearman correlations are in the last title.
    """
    n = original.shape[0]
    fig, axes = plt.subplots(n, 4, figsize=(11.2, 3.1 * n), squeeze=False)
    for i in range(n):
        pert, sal = normalize_map(perturbation[i]), normalize_map(saliency[i])
        axes[i, 0].imshow(to_image(original[i]))
        axes[i, 0].set_title(titles[i], fontsize=8)
        axes[i, 1].imshow(pert, cmap="magma", vmin=0, vmax=1)
        axes[i, 1].set_title(f"|perturbation| (max {float(perturbation[i].max()) * 255:.3g}/255)", fontsize=8)
        axes[i, 2].imshow(sal, cmap="hot", vmin=0, vmax=1)
        axes[i, 2].set_title("saliency of the original class", fontsize=8)
        both = np.stack([pert, sal, np.zeros_like(pert)], axis=-1)
        axes[i, 3].imshow(np.clip(both, 0, 1))
        axes[i, 3].set_title(f"red: perturbation, green: saliency\nPearson {stats[i]['pearson']:.2f}, "
                             f"Spearman {stats[i]['spearman']:.2f}", fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    return save_figure(fig, path)


def localization_grid(pixels: torch.Tensor, locations: Sequence, titles: Sequence[str], path: Path | str,
                      map_name: str = "saliency") -> Path:
    """One panel per image: the mask (tinted, outlined) and its bounding box drawn on the image."""
    from matplotlib.patches import Rectangle

    n = pixels.shape[0]
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.4), squeeze=False)
    for ax, img, loc, title in zip(axes[0], pixels, locations, titles):
        picture = to_image(img)
        tint = picture.copy()
        tint[loc.mask] = 0.55 * tint[loc.mask] + 0.45 * np.array([0.0, 1.0, 0.3])
        ax.imshow(tint)
        ax.contour(loc.mask.astype(float), levels=[0.5], colors=["lime"], linewidths=0.8)
        x0, y0, x1, y1 = loc.box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="red", linewidth=1.6))
        ax.set_title(f"{title}\n{map_name} box ({x0},{y0})-({x1},{y1}), mask {100 * loc.mask_area:.1f} %",
                     fontsize=8)
        ax.axis("off")
    return save_figure(fig, path)


def image_strip(images: Sequence[torch.Tensor], titles: Sequence[str], path: Path | str,
                suptitle: str = "") -> Path:
    """Images side by side (class-visualisation steps, perceptual-experiment inputs)."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.8), squeeze=False)
    for ax, img, title in zip(axes[0], images, titles):
        ax.imshow(to_image(img))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return save_figure(fig, path)


def pair_figure(a: torch.Tensor, b: torch.Tensor, names: Sequence[str], distances: dict[str, float],
                path: Path | str) -> Path:
    """The two images compared and, beside them, their distances (pixel and per-layer L1 / L2) as a table."""
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    for ax, img, name in zip(axes[:2], (a, b), names):
        ax.imshow(to_image(img))
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    spaces = list(dict.fromkeys(k.rpartition("_")[0] for k in distances))
    cells = [[s if s != "pixel" else "pixels [0,1]", f"{distances[s + '_l1']:.4g}", f"{distances[s + '_l2']:.4g}"]
             for s in spaces]
    axes[2].axis("off")
    table = axes[2].table(cellText=cells, colLabels=["space", "L1 (MAE)", "L2 (MSE)"], loc="center",
                          cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.3)
    axes[2].set_title("distance between the two", fontsize=8)
    return save_figure(fig, path)


def save_image(pixels: torch.Tensor, path: Path | str) -> Path:
    """Save a ``(3, H, W)`` tensor in [0, 1] as an 8-bit PNG."""
    from PIL import Image

    from .._utils import atomic_save

    array = (to_image(pixels) * 255).round().astype(np.uint8)
    path = Path(path)
    atomic_save(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
    return path


def score_curve(scores: Sequence[float], path: Path | str, title: str = "") -> Path:
    """Target score per iteration (class visualisation)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(scores) + 1), scores)
    ax.set_xlabel("iteration")
    ax.set_ylabel("target score")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
