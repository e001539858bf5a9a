"""The gradient reversal layer (GRL) and the schedules of its factor.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015, section 3.2: the
GRL is the identity in the forward pass and multiplies the gradient by ``-lambda`` in the backward
pass, so the feature extractor *maximises* the domain classifier's loss while the domain classifier
minimises it. The factor grows from 0 to its maximum over training (section 5.2.2):
``lambda_p = 2 / (1 + exp(-gamma * p)) - 1`` with ``gamma = 10`` and ``p`` the training progress in [0, 1].

There is no maintained implementation in torch/torchvision; the layer is a three-line autograd function.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

LAMBDA_SCHEDULES = ("paper", "constant")


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output.neg() * ctx.lambda_, None


def grad_reverse(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    """Identity forward; backward multiplies the incoming gradient by ``-lambda_`` (Ganin & Lempitsky 2015)."""
    return _GradReverse.apply(x, float(lambda_))


class GradientReversal(nn.Module):
    """Gradient reversal layer: ``y = x``; ``dL/dx = -lambda_ * dL/dy``.

    ``lambda_`` is a plain attribute (not a parameter): the training loop sets it at every step from
    :func:`grl_lambda`. ``lambda_ = 0`` stops the domain gradient from reaching the features (the
    domain head then only *probes* how separable the two domains are).
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}"


def grl_lambda(progress: float, schedule: str = "paper", maximum: float = 1.0, gamma: float = 10.0) -> float:
    """GRL factor at training progress ``progress`` in [0, 1].

    ``schedule="paper"``: ``maximum * (2 / (1 + exp(-gamma * p)) - 1)`` (0 at the start, ~``maximum``
    after a third of training with gamma=10); ``"constant"``: ``maximum`` throughout.
    """
    if schedule not in LAMBDA_SCHEDULES:
        raise ConfigError(f"unknown GRL factor schedule {schedule!r}; expected one of {', '.join(LAMBDA_SCHEDULES)}")
    if schedule == "constant":
        return float(maximum)
    p = min(max(float(progress), 0.0), 1.0)
    return float(maximum) * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


def paper_lr(progress: float, lr0: float = 0.01, alpha: float = 10.0, beta: float = 0.75) -> float:
    """Learning-rate annealing of Ganin & Lempitsky 2015: ``lr0 / (1 + alpha * p) ** beta``."""
    p = min(max(float(progress), 0.0), 1.0)
    return lr0 / (1.0 + alpha * p) ** beta
