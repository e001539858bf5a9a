"""GAN losses on discriminator logits (Goodfellow et al. 2014, arXiv:1406.2661, eqs. 5-7 of the seeds).

* discriminator: ``-[log D(x) + log(1 - D(G(z)))]`` (binary cross-entropy, real = 1, fake = 0);
* generator, ``non_saturating`` (default, the seeds' eq. 6): ``-log D(G(z))``;
* generator, ``minimax`` (the "true" eq. 6' of seed question 3): ``log(1 - D(G(z)))``, minimised.

Written with log-sigmoid on logits: ``log D = -softplus(-l)`` and ``log(1 - D) = -softplus(l)``. This
is the same function as BCE on the sigmoid output but does not overflow when D is confident. With
``D = sigmoid(l)`` the gradient with respect to ``l`` is ``-(1 - D)`` for the non-saturating loss and
``-D`` for the minimax loss: when D rejects the fakes (D(G(z)) -> 0, early training) the minimax
gradient vanishes, which is the seeds' argument (report 001 section 4.4.3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

GENERATOR_LOSSES = ("non_saturating", "minimax")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Mean BCE of D on real (target 1) and fake (target 0) samples, summed as in the seeds."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator's loss on D's logits for fakes: ``non_saturating`` or ``minimax``."""
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()  # -log D(G(z))
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 - D(G(z)))
    raise ConfigError(f"unknown generator loss {kind!r}; expected one of {', '.join(GENERATOR_LOSSES)}")


def check_loss(kind: str) -> str:
    if kind not in GENERATOR_LOSSES:
        raise ConfigError(f"unknown generator loss {kind!r}; expected one of {', '.join(GENERATOR_LOSSES)}")
    return kind
