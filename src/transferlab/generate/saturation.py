"""Seed question 3 measured: the generator's gradient under the minimax and non-saturating losses.

Goodfellow et al. (2014, section 3) replace ``min log(1 - D(G(z)))`` by ``max log D(G(z))`` because
"early in learning, when G is poor, D can reject samples with high confidence" and the minimax loss
saturates. :func:`generator_gradients` reproduces that moment: the generator is frozen at its
initialisation, the discriminator gets ``d_updates`` Adam steps on real images vs G(z), then the
norm of the generator's parameter gradient is measured under both losses on the same noise.
With ``d_updates = 0`` D(G(z)) is about 0.5 and the two gradients are about equal (``(1 - D) / D``
is their ratio at the logit); the gap opens as soon as D learns to reject the fakes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .losses import GENERATOR_LOSSES, discriminator_loss, generator_loss
from .models import is_conditional


def _grad_norm(module: nn.Module) -> float:
    return float(torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in module.parameters() if p.grad is not None)))


def generator_gradients(generator: nn.Module, discriminator: nn.Module, real: torch.Tensor,
                        labels: torch.Tensor | None = None, *, d_updates: int = 10, lr: float = 2e-4,
                        beta1: float = 0.5, seed: int = 0) -> dict[str, float]:
    """``{"d_fake", "grad_non_saturating", "grad_minimax", "ratio"}`` after ``d_updates`` D steps.

    ``real`` is one batch of real images (and ``labels`` for conditional models); the networks passed
    in are not modified (copies are used).
    """
    g, d = copy.deepcopy(generator).train(), copy.deepcopy(discriminator).train()
    cond = (labels,) if is_conditional(g) else ()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(d.parameters(), lr=lr, betas=(beta1, 0.999))
    for _ in range(d_updates):
        with torch.no_grad():
            fake = g(torch.randn(real.shape[0], g.nz, generator=gen), *cond)
        loss = discriminator_loss(d.logits(real, *cond), d.logits(fake, *cond))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    z = torch.randn(real.shape[0], g.nz, generator=gen)
    result: dict[str, float] = {"d_updates": d_updates}
    for kind in GENERATOR_LOSSES:
        g.zero_grad(set_to_none=True)
        logits = d.logits(g(z, *cond), *cond)
        generator_loss(logits, kind).backward()
        result[f"grad_{kind}"] = _grad_norm(g)
        result["d_fake"] = float(torch.sigmoid(logits.detach()).mean())
    result["ratio"] = result["grad_non_saturating"] / max(result["grad_minimax"], 1e-30)
    return result
