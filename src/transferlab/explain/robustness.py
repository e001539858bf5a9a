"""How little it takes to fool the network, and where the attack moves the image.

* :func:`minimal_eps`: per image, the smallest L-inf budget ``eps`` at which FGSM or PGD flips the top-1 (or
  reaches the target class), by captum's ``MinParamPerturbation`` (binary search on a grid of step
  ``tol``); report 001's and 002's "how small can the perturbation be".
* :func:`perturbation_vs_saliency`: the perturbation's magnitude map (``|delta|``, max over the colour
  channels, as a saliency map) against the saliency map (Simonyan et al. 2014) of the original class, with
  their Pearson and Spearman correlations over pixels (report 002, Q5: "the main modified regions of
  adversarial examples" match "the most activated regions within saliency maps").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .adversarial import AttackResult, make_attack
from .model import ExplainModel
from .target import Target

SEARCH_METHODS = ("fgsm", "pgd")


@dataclass
class MinimalEps:
    """Per image: the smallest fooling budget (None where even ``max_eps`` does not fool) and the attack there."""

    eps: list[float | None]
    result: AttackResult
    max_eps: float
    tol: float


def minimal_eps(model: ExplainModel, pixels: torch.Tensor, target: Target | str | int | None = None, *,
                method: str = "pgd", max_eps: float = 16 / 255, tol: float = 0.05 / 255, steps: int | None = None,
                seed: int = 0) -> MinimalEps:
    """Smallest L-inf ``eps`` (within ``tol``) at which ``method`` fools each image; binary search in ``(0, max_eps]``.

    Success is assumed monotone in ``eps`` (true in practice for FGSM and seeded PGD; the search reports
    the smallest fooling value it visited). An image not fooled at ``max_eps`` gets ``None`` and its
    attack at ``max_eps``.
    """
    from captum.robust import MinParamPerturbation

    if method not in SEARCH_METHODS:
        raise ConfigError(f"the minimal-eps search takes an L-inf attack ({', '.join(SEARCH_METHODS)}); got "
                          f"{method!r}: use --method pgd or fgsm (the iterative and cw attacks report their own norms)")
    if not 0 < tol < max_eps <= 1:
        raise ConfigError(f"the minimal-eps search needs 0 < tol < max_eps <= 1 (pixel units); got tol={tol}, "
                          f"max_eps={max_eps}")
    x = pixels.to(model.device).detach().clamp(0, 1)
    pred, _ = model.predict(x)
    target = Target.of(target)
    goal = None if target.is_predicted else int(target.indices(model.classes)[0])

    def attack_at(inp: torch.Tensor, eps: float, label: torch.Tensor) -> torch.Tensor:
        if eps <= 0:  # the search's last midpoint may be its lower end
            return inp
        attack = make_attack(method, model, eps=float(eps), steps=steps, seed=seed)
        return attack.attack(inp, None if goal is None else goal, labels=label).adversarial

    def not_fooled(scores: torch.Tensor, label: torch.Tensor) -> bool:
        top = scores.argmax(1)
        return bool((top != goal).all()) if goal is not None else bool((top == label).all())

    eps_found: list[float | None] = []
    advs = []
    for i in range(x.shape[0]):
        label = pred[i:i + 1]
        search = MinParamPerturbation(model.pixel_module, attack_at, "eps", arg_min=0.0, arg_max=max_eps + tol,
                                      arg_step=tol, mode="binary", correct_fn=not_fooled)
        with torch.no_grad():
            adv, eps = search.evaluate(x[i:i + 1], attack_kwargs={"label": label},
                                       correct_fn_kwargs={"label": label})
        if adv is None:
            adv = attack_at(x[i:i + 1], max_eps, label)
        eps_found.append(None if eps is None else float(eps))
        advs.append(adv.detach())
    adv = torch.cat(advs)
    adv_pred, adv_conf = model.predict(adv)
    _, conf = model.predict(x)
    goal_t = None if goal is None else torch.full_like(pred, goal)
    counted = torch.ones(x.shape[0], dtype=torch.long, device=x.device) * (1 if method == "fgsm" else (steps or 10))
    result = AttackResult(original=x, adversarial=adv, labels=pred, goal=goal_t, original_pred=pred,
                          original_conf=conf, adversarial_pred=adv_pred, adversarial_conf=adv_conf, steps=counted)
    return MinimalEps(eps=eps_found, result=result, max_eps=max_eps, tol=tol)


def perturbation_map(result: AttackResult) -> torch.Tensor:
    """``(N, H, W)``: ``|adversarial - original|``, max over the colour channels (reduced like a saliency map)."""
    return result.perturbation.abs().amax(dim=1).detach().cpu()


def correlations(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Pearson and Spearman correlation of two equal-shape maps over their pixels (NaN for a constant map)."""
    from scipy.stats import pearsonr, spearmanr

    u = a.detach().double().cpu().flatten().numpy()
    v = b.detach().double().cpu().flatten().numpy()
    if u.shape != v.shape:
        raise ConfigError(f"maps to correlate must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    if np.ptp(u) == 0 or np.ptp(v) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(pearsonr(u, v)[0]), "spearman": float(spearmanr(u, v)[0])}


def perturbation_vs_saliency(model: ExplainModel, result: AttackResult) -> tuple[torch.Tensor, torch.Tensor,
                                                                                 list[dict[str, float]]]:
    """The perturbation maps, the saliency maps of the originally predicted classes, and their correlations."""
    from .saliency import SaliencyMap

    pert = perturbation_map(result)
    sal = SaliencyMap(model).attribute(result.original, Target(None)).maps.detach().cpu()
    if sal.shape != pert.shape:  # a saved model may see another size: compare at the perturbation's size
        sal = torch.nn.functional.interpolate(sal[:, None], size=pert.shape[1:], mode="bilinear")[:, 0]
    return pert, sal, [correlations(p, s) for p, s in zip(pert, sal)]
