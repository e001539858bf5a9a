"""DANN networks: a feature extractor, a label classifier and a domain classifier behind a GRL.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015 (and Ganin et al.,
JMLR 2016, section 5.2.2 for the MNIST -> MNIST-M architecture). The features can come from

* :class:`GaninCNN`, the paper's small digit CNN (``backbone="ganin"``): conv5x5-32, ReLU, max-pool,
  conv5x5-48, ReLU, max-pool; label head fc100-ReLU-fc100-ReLU-fc10; domain head fc100-ReLU-fc1;
* any registry backbone cut at its ``default_layer`` (or another named layer) through
  :func:`~transferlab.backbones.make_taps`, so users can adapt their own image folders.
"""

from __future__ import annotations

import torch
from torch import nn

from ..backbones import Preprocessing, load_backbone, make_taps
from ..errors import ConfigError
from ..training import seeded
from .grl import GradientReversal

GANIN = "ganin"
#: The paper's CNN has no pretrained weights; it sees 28x28 RGB (MNIST size) scaled to [-1, 1].
GANIN_PREPROCESSING = Preprocessing(resize_size=28, crop_size=28, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                                    mode="squash")
METHODS = ("source-only", "dann", "dann-no-grl", "pseudo-label")


class GaninCNN(nn.Module):
    """Feature extractor of the MNIST -> MNIST-M network of Ganin & Lempitsky (2015).

    ``batch_norm=True`` adds BatchNorm after each convolution (what reimplementations reaching ~90 %
    on MNIST-M do); the default is the paper's network.
    """

    def __init__(self, input_size: int = 28, batch_norm: bool = False) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 5)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return layers + [nn.ReLU(inplace=True), nn.MaxPool2d(2)]

        self.net = nn.Sequential(*conv(3, 32), *conv(32, 48), nn.Flatten())
        side = ((input_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ConfigError(f"the paper's CNN needs images of at least 16 px; got {input_size}")
        self.out_features = 48 * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TapFeatures(nn.Module):
    """A registry backbone cut at one named layer; spatial maps are average-pooled to a vector."""

    def __init__(self, taps: nn.Module, layer: str, out_features: int) -> None:
        super().__init__()
        self.taps, self.layer, self.out_features = taps, layer, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.taps(x)[self.layer]
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out.flatten(1)


class DANN(nn.Module):
    """Features -> label head, and features -> GRL -> domain head.

    ``forward(x)`` returns ``(class_logits, domain_logits)``; ``domain_logits`` has shape ``(N,)`` and
    is the logit of "this image comes from the target domain". ``grl`` is a
    :class:`~transferlab.adapt.grl.GradientReversal` for DANN (and, with ``lambda_=0``, for the
    source-only baseline, whose domain head is then a probe that cannot change the features) or an
    identity for the no-GRL ablation (the features then *help* the domain classifier, report 001 Q1).
    """

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int, hidden: int = 100,
                 label_layers: int = 2, reverse: bool = True) -> None:
        super().__init__()
        self.features = features
        layers: list[nn.Module] = []
        width = feature_dim
        for _ in range(label_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.label_head = nn.Sequential(*layers, nn.Linear(width, num_classes))
        self.grl = GradientReversal(0.0) if reverse else nn.Identity()
        self.domain_head = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def set_lambda(self, value: float) -> None:
        if isinstance(self.grl, GradientReversal):
            self.grl.lambda_ = float(value)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.features(x)
        return self.label_head(z), self.domain_head(self.grl(z)).squeeze(1)


def build_dann(backbone: str, num_classes: int, *, weights: str = "none", layer: str | None = None,
               input_size: int = 28, batch_norm: bool = False, reverse: bool = True, seed: int = 0,
               preprocessing_mode: str = "weights") -> tuple[DANN, Preprocessing, dict]:
    """Build a DANN on ``backbone`` (``"ganin"`` or a registry name); return it, its preprocessing and a description.

    For a registry backbone the features are its ``layer`` output (default: the spec's ``default_layer``),
    with the backbone's own weights (``imagenet``, ``none`` or a file) and preprocessing; the label and
    domain heads are new (fc100 as in the paper, one hidden layer for the label head).
    """
    if backbone == GANIN:
        if weights != "none":
            raise ConfigError(f"the paper's CNN ({GANIN}) has no pretrained weights; got --weights {weights}: "
                              "use --weights none, or a registry backbone (e.g. digits_cnn) for weights from a file")
        with seeded(seed):  # seeded in a fork: the caller's random state is left as it was
            features = GaninCNN(input_size, batch_norm)
            model = DANN(features, features.out_features, num_classes, reverse=reverse)
        pre = GANIN_PREPROCESSING if input_size == 28 else \
            Preprocessing(input_size, input_size, GANIN_PREPROCESSING.mean, GANIN_PREPROCESSING.std, mode="squash")
        return model, pre, {"backbone": GANIN, "weights": "none", "layer": None, "batch_norm": batch_norm,
                            "input_size": input_size, "feature_dim": features.out_features}
    with seeded(seed):
        loaded = load_backbone(backbone, weights, seed=seed, preprocessing_mode=preprocessing_mode)
    layer = layer or loaded.spec.default_layer
    taps = make_taps(loaded.spec, loaded.model, [layer])
    size = loaded.preprocessing.crop_size
    probe = TapFeatures(taps, layer, 0)
    probe.eval()
    with torch.no_grad():
        dim = int(probe(torch.zeros(1, 3, size, size)).shape[1])
    features = TapFeatures(taps, layer, dim)
    with seeded(seed + 1):
        model = DANN(features, dim, num_classes, label_layers=1, reverse=reverse)
    return model, loaded.preprocessing, {"backbone": backbone, "weights": loaded.weights_id, "layer": layer,
                                         "input_size": size, "feature_dim": dim}
