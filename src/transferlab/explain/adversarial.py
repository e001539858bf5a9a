"""Adversarial examples: the practical's iterative method, FGSM and PGD, in [0, 1] pixel space.

* :class:`IterativeAttack`: the practical's method (Szegedy et al. 2014 in spirit; cs231n's
  ``make_fooling_image``): repeated gradient steps on the image, each of L2 length ``step_size``, toward
  the target class score, or (untargeted) raising the best other class's score over the true class's, until every image is
  misclassified (or reaches the target) or ``max_steps`` is spent; optional L-inf budget ``eps``.
* :class:`FGSM` (Goodfellow et al. 2015) and :class:`PGD` (Madry et al. 2018) with an L-inf budget:
  captum's ``captum.robust.FGSM`` / ``PGD``, plus a final exact projection onto the budget.

Attacks run on :attr:`ExplainModel.pixel_module` (normalisation inside the model), so the adversarial
image is always a valid image: every step is clamped to [0, 1].
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from captum.robust import FGSM as _CaptumFGSM
from captum.robust import PGD as _CaptumPGD
from torch import nn

from ..errors import ConfigError
from .model import ExplainModel
from .target import Target

METHODS = ("iterative", "fgsm", "pgd")


@dataclass
class AttackResult:
    """Original and adversarial images ``(N, 3, H, W)`` in [0, 1] with the model's view of both.

    ``labels`` are the classes the attack moves away from (untargeted) and ``goal`` the class it moves
    toward (targeted; None otherwise). ``steps`` counts gradient steps actually taken per image.
    """

    original: torch.Tensor
    adversarial: torch.Tensor
    labels: torch.Tensor
    goal: torch.Tensor | None
    original_pred: torch.Tensor
    original_conf: torch.Tensor
    adversarial_pred: torch.Tensor
    adversarial_conf: torch.Tensor
    steps: torch.Tensor

    @property
    def perturbation(self) -> torch.Tensor:
        return self.adversarial - self.original

    @property
    def linf(self) -> torch.Tensor:
        return self.perturbation.flatten(1).abs().amax(dim=1)

    @property
    def l2(self) -> torch.Tensor:
        return self.perturbation.flatten(1).norm(dim=1)

    @property
    def success(self) -> torch.Tensor:
        if self.goal is not None:
            return self.adversarial_pred == self.goal
        return self.adversarial_pred != self.labels

    def rows(self, classes: list[str], names: list[str] | None = None) -> list[dict]:
        """Per image: both predictions with confidence, steps, L2/L-inf norms (pixel units in [0, 1])."""
        linf, l2, ok = self.linf, self.l2, self.success
        rows = []
        for i in range(self.original.shape[0]):
            rows.append({
                "image": names[i] if names else i,
                "original_class": classes[int(self.original_pred[i])],
                "original_confidence": float(self.original_conf[i]),
                "adversarial_class": classes[int(self.adversarial_pred[i])],
                "adversarial_confidence": float(self.adversarial_conf[i]),
                "goal_class": None if self.goal is None else classes[int(self.goal[i])],
                "success": bool(ok[i]), "steps": int(self.steps[i]),
                "linf": float(linf[i]), "linf_255": float(linf[i]) * 255.0, "l2": float(l2[i]),
            })
        return rows


class _Attack(ABC):
    """Shared set-up: which class to move toward/away from, and the result bookkeeping."""

    def __init__(self, model: ExplainModel, eps: float | None) -> None:
        if eps is not None and not 0 < eps <= 1:
            raise ConfigError(f"eps is an L-inf budget in (0, 1] pixel units (8/255 = 0.031 is usual); got {eps}")
        self.model, self.eps = model, eps

    def attack(self, pixels: torch.Tensor, target: Target | str | int | None = None,
               labels: torch.Tensor | None = None) -> AttackResult:
        """Attack pixel images in [0, 1].

        target : class to reach (targeted attack); None = untargeted, away from ``labels``.
        labels : true classes; default the model's own predictions on the clean images.
        """
        x = pixels.to(self.model.device).detach().clamp(0, 1)
        pred, conf = self.model.predict(x)
        labels = pred.clone() if labels is None else labels.to(x.device)
        target = Target.of(target)
        goal = None if target.is_predicted else target.indices(self.model.classes).expand(x.shape[0]).to(x.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
            adv, steps = self._run(x, labels, goal)
        adv = self._project(x, adv)
        adv_pred, adv_conf = self.model.predict(adv)
        return AttackResult(original=x, adversarial=adv, labels=labels, goal=goal, original_pred=pred,
                            original_conf=conf, adversarial_pred=adv_pred, adversarial_conf=adv_conf, steps=steps)

    def _project(self, x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """Into the L-inf ball of radius eps around x, then into [0, 1]."""
        adv = adv.detach()
        if self.eps is not None:
            adv = (x + (adv - x).clamp(-self.eps, self.eps)).clamp(0, 1)
            for _ in range(4):  # float rounding of x + delta can overshoot eps by an ulp: step back toward x
                over = (adv - x).abs() > self.eps
                if not bool(over.any()):
                    break
                adv = torch.where(over, torch.nextafter(adv, x), adv)
        return adv.clamp(0, 1)

    @abstractmethod
    def _run(self, x, labels, goal):
        """Return (adversarial images, steps taken)."""


class IterativeAttack(_Attack):
    """The practical's iterative method (see the module docstring).

    Parameters
    ----------
    step_size : L2 length of each step in [0, 1] pixel units (the gradient is L2-normalised per image).
    max_steps : step budget.
    eps : optional L-inf budget; every step is projected back into it.
    """

    def __init__(self, model: ExplainModel, *, step_size: float = 0.5, max_steps: int = 100,
                 eps: float | None = None) -> None:
        super().__init__(model, eps)
        if step_size <= 0 or max_steps < 1:
            raise ConfigError(f"step_size must be > 0 and max_steps >= 1; got {step_size}, {max_steps}")
        self.step_size, self.max_steps = step_size, max_steps

    def _run(self, x, labels, goal):
        net = self.model.pixel_module
        adv = x.clone()
        steps = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        for _ in range(self.max_steps):
            adv.requires_grad_(True)
            scores = net(adv)
            pred = scores.argmax(1)
            active = (pred != goal) if goal is not None else (pred == labels)
            if not bool(active.any()):
                break
            if goal is not None:
                objective = scores.gather(1, goal[:, None]).sum()
            else:  # margin of the best other class over the true one: no softmax saturation
                true = scores.gather(1, labels[:, None])[:, 0]
                other = scores.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
                objective = (other - true).sum()
            (grad,) = torch.autograd.grad(objective, adv)
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            step = self.step_size * grad / norm * active.view(-1, 1, 1, 1)
            adv = self._project(x, adv.detach() + step)
            steps += active.long()
        return adv.detach(), steps


def _cross_entropy() -> nn.Module:
    return nn.CrossEntropyLoss(reduction="none")


class FGSM(_Attack):
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015): one step of size ``eps``."""

    def __init__(self, model: ExplainModel, *, eps: float = 8 / 255) -> None:
        super().__init__(model, eps)

    def _run(self, x, labels, goal):
        fgsm = _CaptumFGSM(self.model.pixel_module, loss_func=_cross_entropy(), lower_bound=0.0, upper_bound=1.0)
        fgsm.zero_thresh = 0.0  # captum zeroes gradients below 1e-6; tiny gradients still carry a sign
        adv = fgsm.perturb(x, epsilon=self.eps, target=goal if goal is not None else labels,
                           targeted=goal is not None)
        return adv.detach(), torch.ones(x.shape[0], dtype=torch.long, device=x.device)


class PGD(_Attack):
    """Projected gradient descent with an L-inf budget (Madry et al. 2018), captum's implementation.

    Parameters
    ----------
    eps : L-inf budget in [0, 1] pixel units.
    step_size : sign-gradient step (default ``2.5 * eps / steps``, Madry et al.).
    steps : number of steps.
    random_start : start from a uniform random point of the eps-ball (seeded by ``seed``).
    """

    def __init__(self, model: ExplainModel, *, eps: float = 8 / 255, step_size: float | None = None,
                 steps: int = 10, random_start: bool = True, seed: int = 0) -> None:
        super().__init__(model, eps)
        if steps < 1:
            raise ConfigError(f"PGD needs steps >= 1, got {steps}")
        self.step_size = 2.5 * eps / steps if step_size is None else step_size
        self.steps, self.random_start, self.seed = steps, random_start, seed

    def _run(self, x, labels, goal):
        pgd = _CaptumPGD(self.model.pixel_module, loss_func=_cross_entropy(), lower_bound=0.0, upper_bound=1.0)
        pgd.fgsm.zero_thresh = 0.0
        with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]):
            torch.manual_seed(self.seed)
            adv = pgd.perturb(x, radius=self.eps, step_size=self.step_size, step_num=self.steps,
                              target=goal if goal is not None else labels, targeted=goal is not None,
                              random_start=self.random_start)
        return adv.detach(), torch.full((x.shape[0],), self.steps, dtype=torch.long, device=x.device)


def make_attack(method: str, model: ExplainModel, *, eps: float | None = None, step_size: float | None = None,
                steps: int | None = None, seed: int = 0) -> _Attack:
    """Build an attack by name (``iterative``, ``fgsm``, ``pgd``) with the CLI's options."""
    if method == "iterative":
        return IterativeAttack(model, step_size=step_size or 0.5, max_steps=steps or 100, eps=eps)
    if method == "fgsm":
        return FGSM(model, eps=eps if eps is not None else 8 / 255)
    if method == "pgd":
        return PGD(model, eps=eps if eps is not None else 8 / 255, step_size=step_size, steps=steps or 10, seed=seed)
    raise ConfigError(f"unknown attack {method!r}; expected one of {', '.join(METHODS)}")
