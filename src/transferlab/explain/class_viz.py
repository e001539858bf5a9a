"""Class visualisation by gradient ascent (Simonyan et al. 2014; Yosinski et al. 2015 regularisers).

Starting from random noise (or a given image), repeat: jitter the image by a random roll, take the
gradient of ``score_c(I) - l2_reg * ||I||^2``, step by ``lr`` along the L2-normalised gradient, undo the
jitter, clamp to valid pixel values, and every ``blur_every`` iterations blur with a Gaussian of
``blur_sigma``. This is the practical's algorithm (cs231n ``create_class_visualization``), run in the
normalised space the network sees. Written by hand: captum has no feature-visualisation optimiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torchvision.transforms.v2 import functional as TF

from ..errors import ConfigError
from .model import ExplainModel
from .target import Target, resolve_class


@dataclass
class ClassVisualization:
    """Result: the final image (pixels in [0, 1]), snapshots along the way and the score history."""

    image: torch.Tensor
    target: int
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    final_score: float = float("nan")
    final_probability: float = float("nan")
    checkpoints: dict[int, tuple[torch.Tensor, float, float]] = field(default_factory=dict)


class ClassVisualizer:
    """Gradient ascent on a class score.

    Parameters
    ----------
    model : the network.
    l2_reg : weight of the L2 penalty on the (normalised) image.
    lr : step length along the L2-normalised gradient.
    iterations : number of ascent steps.
    max_jitter : largest random roll in pixels (default: 16 at 224 px, scaled with the input size).
    blur_every : blur every this many iterations (0 = never).
    blur_sigma : standard deviation of the Gaussian blur in pixels.
    show_every : keep a snapshot every this many iterations (for the strip figure).
    seed : seed of the noise image and of the jitter.
    checkpoints : iterations after which the image and its (un-jittered) target score and probability are kept
        in ``result.checkpoints``. The same seed gives the same trajectory, so the checkpoint at ``t`` is exactly
        the final image of a run of ``t`` iterations (the class-visualisation study runs each setting once).
    """

    def __init__(self, model: ExplainModel, *, l2_reg: float = 1e-3, lr: float = 5.0, iterations: int = 200,
                 max_jitter: int | None = None, blur_every: int = 10, blur_sigma: float = 0.5,
                 show_every: int | None = None, seed: int = 0, checkpoints: tuple[int, ...] = ()) -> None:
        if iterations < 1 or lr <= 0 or l2_reg < 0 or blur_sigma < 0 or blur_every < 0:
            raise ConfigError(f"class visualisation needs iterations >= 1, lr > 0, l2_reg >= 0, blur_every >= 0, "
                              f"blur_sigma >= 0; got {iterations}, {lr}, {l2_reg}, {blur_every}, {blur_sigma}")
        self.model, self.l2_reg, self.lr, self.iterations = model, l2_reg, lr, iterations
        size = model.preprocessing.crop_size
        self.max_jitter = round(16 * size / 224) if max_jitter is None else max_jitter
        self.blur_every, self.blur_sigma = blur_every, blur_sigma
        self.show_every = show_every or max(1, iterations // 5)
        self.seed = seed
        self.checkpoints = {int(t) for t in checkpoints if 1 <= int(t) <= iterations}

    def visualize(self, target: Target | str | int, init: torch.Tensor | None = None) -> ClassVisualization:
        """Maximise ``target``'s score; ``init`` is an optional pixel image ``(3, H, W)`` or ``(1, 3, H, W)``."""
        target = Target.of(target)
        if target.is_predicted and init is None:
            raise ConfigError("class visualisation from noise needs a target class (--target NAME or index)")
        model, device = self.model, self.model.device
        size = model.preprocessing.crop_size
        gen = torch.Generator().manual_seed(self.seed)
        if init is None:
            img = torch.randn(1, 3, size, size, generator=gen).to(device)
        else:
            pixels = (init if init.ndim == 4 else init[None]).to(device).clamp(0, 1)
            img = model.normalize(pixels).detach()
        if target.is_predicted:
            with torch.no_grad():
                index = int(model.module(img).argmax(1))
        else:
            index = resolve_class(target.value, model.classes)
        low, high = model.normalize(torch.zeros_like(img[:1])), model.normalize(torch.ones_like(img[:1]))
        result = ClassVisualization(image=torch.empty(0), target=index)
        result.snapshots.append((0, model.denormalize(img).clamp(0, 1)[0].detach().cpu()))
        for t in range(1, self.iterations + 1):
            ox, oy = (torch.randint(-self.max_jitter, self.max_jitter + 1, (2,), generator=gen).tolist()
                      if self.max_jitter > 0 else (0, 0))
            img = torch.roll(img.detach(), shifts=(ox, oy), dims=(2, 3)).requires_grad_(True)
            score = model.module(img)[0, index]
            objective = score - self.l2_reg * img.pow(2).sum()
            (grad,) = torch.autograd.grad(objective, img)
            result.scores.append(float(score.detach()))
            with torch.no_grad():
                img = img + self.lr * grad / grad.norm().clamp_min(1e-12)
                img = torch.roll(img, shifts=(-ox, -oy), dims=(2, 3))
                img = torch.max(torch.min(img, high), low)
                if self.blur_every and self.blur_sigma > 0 and t % self.blur_every == 0:
                    img = blur(img, self.blur_sigma)
            if t % self.show_every == 0 or t == self.iterations:
                result.snapshots.append((t, model.denormalize(img).clamp(0, 1)[0].detach().cpu()))
            if t in self.checkpoints:
                with torch.no_grad():
                    now = model.module(img)
                result.checkpoints[t] = (model.denormalize(img).clamp(0, 1)[0].detach().cpu(),
                                         float(now[0, index]), float(now.softmax(1)[0, index]))
        with torch.no_grad():
            scores = model.module(img)
        result.final_score = float(scores[0, index])
        result.final_probability = float(scores.softmax(1)[0, index])
        result.image = model.denormalize(img).clamp(0, 1)[0].detach().cpu()
        return result


def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (torchvision) with a kernel of ``2 * ceil(3 sigma) + 1`` pixels."""
    k = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(img, kernel_size=[k, k], sigma=[sigma, sigma])
