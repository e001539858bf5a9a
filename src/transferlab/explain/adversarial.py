"""Adversarial examples: the practical's iterative method, FGSM, PGD and Carlini-Wagner L2, in [0, 1] pixels.

* :class:`IterativeAttack`: the practical's method (Szegedy et al. 2014 in spirit; cs231n's
  ``make_fooling_image``): repeated gradient steps on the image, each of L2 length ``step_size``, toward
  the target class score, or (untargeted) raising the best other class's score over the true class's, until every image is
  misclassified (or reaches the target) or ``max_steps`` is spent; optional L-inf budget ``eps``. The step
  that fools an image is bisected (``refine`` halvings), so the perturbation does not overshoot by a step.
* :class:`FGSM` (Goodfellow et al. 2015) and :class:`PGD` (Madry et al. 2018) with an L-inf budget:
  captum's ``captum.robust.FGSM`` / ``PGD``, plus a final exact projection onto the budget.
* :class:`CarliniWagnerL2` (Carlini & Wagner 2017, "Towards Evaluating the Robustness of Neural Networks"):
  the smallest-L2 attack, written by hand because captum (the maintained attribution library we use) has
  no C&W and no other maintained attack library is a dependency here.

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

METHODS = ("iterative", "fgsm", "pgd", "cw")


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
    refine : halvings of the step that fools an image: the perturbation is cut back to the smallest
        fraction of that last step that still fools (within ``step_size / 2**refine``); 0 keeps the full step.
    """

    def __init__(self, model: ExplainModel, *, step_size: float = 0.5, max_steps: int = 100,
                 eps: float | None = None, refine: int = 12) -> None:
        super().__init__(model, eps)
        if step_size <= 0 or max_steps < 1 or refine < 0:
            raise ConfigError(f"step_size must be > 0, max_steps >= 1 and refine >= 0; got {step_size}, "
                              f"{max_steps}, {refine}")
        self.step_size, self.max_steps, self.refine = step_size, max_steps, refine

    def _fooled(self, scores: torch.Tensor, labels: torch.Tensor, goal: torch.Tensor | None) -> torch.Tensor:
        pred = scores.argmax(1)
        return (pred == goal) if goal is not None else (pred != labels)

    def _run(self, x, labels, goal):
        net = self.model.pixel_module
        adv = x.clone()
        steps = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        previous, was_active = None, None
        for taken in range(self.max_steps + 1):
            adv.requires_grad_(True)
            scores = net(adv)
            active = ~self._fooled(scores, labels, goal)
            last = not bool(active.any()) or taken == self.max_steps
            if not last:
                if goal is not None:
                    objective = scores.gather(1, goal[:, None]).sum()
                else:  # margin of the best other class over the true one: no softmax saturation
                    true = scores.gather(1, labels[:, None])[:, 0]
                    other = scores.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
                    objective = (other - true).sum()
                (grad,) = torch.autograd.grad(objective, adv)
            adv = adv.detach()
            if previous is not None and self.refine:
                newly = was_active & ~active  # fooled by the last step: cut it back
                if bool(newly.any()):
                    adv = self._bisect(x, previous, adv, newly, labels, goal)
            if last:
                break
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            step = self.step_size * grad / norm * active.view(-1, 1, 1, 1)
            previous, was_active = adv, active
            adv = self._project(x, previous + step)
            steps += active.long()
        return adv.detach(), steps

    @torch.no_grad()
    def _bisect(self, x, before, after, which, labels, goal):
        """For the images in ``which``: the smallest fraction of the step ``before -> after`` that still fools."""
        net = self.model.pixel_module
        lo = torch.zeros(x.shape[0], device=x.device)
        hi = torch.ones(x.shape[0], device=x.device)
        delta = after - before

        def point(alpha):
            return self._project(x, before + alpha.view(-1, 1, 1, 1) * delta)

        for _ in range(self.refine):
            mid = (lo + hi) / 2
            fooled = self._fooled(net(point(mid)), labels, goal)
            hi = torch.where(fooled, mid, hi)
            lo = torch.where(fooled, lo, mid)
        return torch.where(which.view(-1, 1, 1, 1), point(hi), after)


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


class CarliniWagnerL2(_Attack):
    """Carlini & Wagner (2017) L2 attack: minimise ``||delta||_2^2 + c f(x + delta)`` in tanh space.

    ``x + delta = (tanh(w) + 1) / 2`` keeps every image valid; ``f`` is the margin loss
    ``max(Z_true - max_{i != true} Z_i, -kappa)`` (untargeted) or ``max(max_{i != t} Z_i - Z_t, -kappa)``
    (targeted) on the logits ``Z``; Adam on ``w``; a binary search over ``c`` per image (start ``c``, x10
    until it fools, then bisect) keeps the smallest-L2 fooling image found. Written by hand: captum, the
    maintained attack library this project uses, offers FGSM and PGD only (see the module docstring).

    Parameters
    ----------
    c : initial trade-off constant.
    kappa : confidence margin (0 = just across the boundary).
    steps : Adam steps per value of ``c``.
    lr : Adam learning rate on ``w``.
    search_steps : values of ``c`` tried (binary search).
    """

    def __init__(self, model: ExplainModel, *, c: float = 1.0, kappa: float = 0.0, steps: int = 100,
                 lr: float = 0.01, search_steps: int = 5) -> None:
        super().__init__(model, None)
        if c <= 0 or kappa < 0 or steps < 1 or lr <= 0 or search_steps < 1:
            raise ConfigError(f"Carlini-Wagner needs c > 0, kappa >= 0, steps >= 1, lr > 0, search_steps >= 1; "
                              f"got {c}, {kappa}, {steps}, {lr}, {search_steps}")
        self.c, self.kappa, self.steps, self.lr, self.search_steps = c, kappa, steps, lr, search_steps

    def _margin(self, logits, labels, goal):
        cls = goal if goal is not None else labels
        own = logits.gather(1, cls[:, None])[:, 0]
        other = logits.scatter(1, cls[:, None], float("-inf")).amax(dim=1)
        return (other - own if goal is not None else own - other).clamp_min(-self.kappa)

    def _run(self, x, labels, goal):
        net = self.model.pixel_module
        n = x.shape[0]
        w0 = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).detach()
        c = torch.full((n,), self.c, device=x.device)
        lo, hi = torch.zeros_like(c), torch.full_like(c, float("inf"))
        best, best_l2 = x.clone(), torch.full_like(c, float("inf"))
        steps = torch.zeros(n, dtype=torch.long, device=x.device)
        for _ in range(self.search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            fooled_now = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(self.steps):
                adv = (torch.tanh(w) + 1) / 2
                logits = net(adv)
                l2 = (adv - x).flatten(1).pow(2).sum(1)
                loss = (l2 + c * self._margin(logits, labels, goal)).sum()
                with torch.no_grad():
                    pred = logits.argmax(1)
                    fooled = (pred == goal) if goal is not None else (pred != labels)
                    better = fooled & (l2 < best_l2)
                    best = torch.where(better.view(-1, 1, 1, 1), adv.detach(), best)
                    best_l2 = torch.where(better, l2.detach(), best_l2)
                    fooled_now |= fooled
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
            with torch.no_grad():  # binary search on c: smaller where it fooled, larger where it did not
                hi = torch.where(fooled_now, torch.minimum(hi, c), hi)
                lo = torch.where(fooled_now, lo, torch.maximum(lo, c))
                c = torch.where(torch.isinf(hi), c * 10, (lo + hi) / 2)
        return best.detach(), steps


def make_attack(method: str, model: ExplainModel, *, eps: float | None = None, step_size: float | None = None,
                steps: int | None = None, seed: int = 0) -> _Attack:
    """Build an attack by name (``iterative``, ``fgsm``, ``pgd``, ``cw``) with the CLI's options.

    For ``cw``, ``steps`` are Adam steps per value of c (default 100) and ``step_size`` Adam's learning rate
    (0.01); it has no L-inf budget (``eps`` is refused).
    """
    if method == "iterative":
        return IterativeAttack(model, step_size=step_size or 0.5, max_steps=steps or 100, eps=eps)
    if method == "fgsm":
        return FGSM(model, eps=eps if eps is not None else 8 / 255)
    if method == "pgd":
        return PGD(model, eps=eps if eps is not None else 8 / 255, step_size=step_size, steps=steps or 10, seed=seed)
    if method == "cw":
        if eps is not None:
            raise ConfigError(f"the Carlini-Wagner attack minimises the L2 norm and takes no L-inf budget; got "
                              f"--eps {eps}: drop --eps, or use --method pgd for an L-inf budget")
        return CarliniWagnerL2(model, steps=steps or 100, lr=step_size or 0.01)
    raise ConfigError(f"unknown attack {method!r}; expected one of {', '.join(METHODS)}")
