"""Saliency maps (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks").

The map is the gradient of the (unnormalised) class score with respect to the input image, absolute
value, maximum over the colour channels. As in the practical, the gradient is taken with respect to the
*normalised* image the network sees. SmoothGrad (Smilkov et al. 2017) averages the maps of noisy copies.
The gradient machinery is captum's ``Saliency`` / ``NoiseTunnel``.
"""

from __future__ import annotations

import torch
from captum.attr import NoiseTunnel
from captum.attr import Saliency as _CaptumSaliency

from ..errors import ConfigError
from .model import ExplainModel
from .target import Explanation, Target, score_targets


class SaliencyMap:
    """Vanilla gradient saliency, optionally SmoothGrad.

    Parameters
    ----------
    model : the network to explain.
    smoothgrad : average ``samples`` maps of copies with Gaussian noise (std = ``noise`` x the input's
        value range, Smilkov et al. 2017 recommend 10-20 %).
    seed : seed of the SmoothGrad noise.
    """

    def __init__(self, model: ExplainModel, *, smoothgrad: bool = False, samples: int = 25, noise: float = 0.15,
                 seed: int = 0) -> None:
        if samples < 1:
            raise ConfigError(f"SmoothGrad samples must be >= 1, got {samples}")
        if noise < 0:
            raise ConfigError(f"SmoothGrad noise must be >= 0, got {noise}")
        self.model, self.smoothgrad, self.samples, self.noise, self.seed = model, smoothgrad, samples, noise, seed

    def attribute(self, pixels: torch.Tensor, target: Target | str | int | None = None) -> Explanation:
        """Saliency maps ``(N, H, W)`` for pixel images ``(N, 3, H, W)`` in [0, 1]."""
        target = Target.of(target)
        x = self.model.normalize(pixels.to(self.model.device)).detach()
        idx, scores, probs, predicted = score_targets(self.model.module, x, target, self.model.classes)
        x.requires_grad_(True)  # captum would set it (and warn)
        saliency = _CaptumSaliency(self.model.module)
        if self.smoothgrad:
            stdev = float(self.noise * (x.detach().max() - x.detach().min()).clamp_min(1e-8))
            with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]):
                torch.manual_seed(self.seed)
                grads = NoiseTunnel(saliency).attribute(x, nt_type="smoothgrad", nt_samples=self.samples,
                                                        stdevs=stdev, target=idx, abs=True)
        else:
            grads = saliency.attribute(x, target=idx, abs=True)
        maps = grads.detach().amax(dim=1)
        return Explanation(maps=maps, targets=idx, scores=scores, probs=probs, predicted=predicted)
