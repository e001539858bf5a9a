"""What to explain: which class score a method looks at (captum's ``target`` argument, made friendly).

A :class:`Target` holds a class name, a class index, or nothing (= each image's predicted class). It is
resolved against the model's class names and its scores for a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, did_you_mean

_SHOWN = 25  # class names listed in an error message before "... (+N more)"


def resolve_class(value: str | int, classes: list[str]) -> int:
    """Class name (exact, then case-insensitive) or index -> index; unknown -> :class:`ConfigError`."""
    if isinstance(value, bool):
        raise ConfigError(f"target class must be a name or an index, got {value!r}")
    if isinstance(value, str):
        if value in classes:
            return classes.index(value)
        lowered = [c.lower() for c in classes]
        if value.strip().lower() in lowered:
            return lowered.index(value.strip().lower())
        if value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            shown = ", ".join(classes[:_SHOWN]) + (f" ... (+{len(classes) - _SHOWN} more)"
                                                   if len(classes) > _SHOWN else "")
            raise ConfigError(
                f"unknown class {value!r}; expected one of the model's {len(classes)} class names ({shown}) "
                f"or an index 0..{len(classes) - 1}.{did_you_mean(value, list(classes))}"
            )
    if not 0 <= value < len(classes):
        raise ConfigError(f"class index {value} is out of range; the model has {len(classes)} classes "
                          f"(0..{len(classes) - 1})")
    return int(value)


@dataclass(frozen=True)
class Target:
    """The class to explain: ``Target("tabby")``, ``Target(281)`` or ``Target()`` (predicted class).

    ``Target.of(value)`` accepts a Target, a name, an index or None.
    """

    value: str | int | None = None

    @classmethod
    def of(cls, value: "Target | str | int | None") -> "Target":
        return value if isinstance(value, Target) else cls(value)

    @property
    def is_predicted(self) -> bool:
        return self.value is None

    def indices(self, classes: list[str], scores: torch.Tensor | None = None) -> torch.Tensor:
        """One class index per image: the fixed class, or ``scores.argmax(1)`` when none was given."""
        if self.value is None:
            if scores is None:
                raise ValueError("Target() (predicted class) needs the batch's scores to resolve")
            return scores.detach().argmax(dim=1)
        index = resolve_class(self.value, classes)
        n = 1 if scores is None else scores.shape[0]
        device = None if scores is None else scores.device
        return torch.full((n,), index, dtype=torch.long, device=device)

    def describe(self, classes: list[str]) -> str:
        return "predicted class" if self.value is None else classes[resolve_class(self.value, classes)]


@dataclass
class Explanation:
    """A batch of attribution maps with what they explain.

    ``maps`` is ``(N, H, W)`` at the input resolution (non-negative); ``targets`` the class index each map
    explains; ``scores``/``probs`` that class's raw score and softmax probability; ``predicted`` the
    model's own prediction per image.
    """

    maps: torch.Tensor
    targets: torch.Tensor
    scores: torch.Tensor
    probs: torch.Tensor
    predicted: torch.Tensor

    def rows(self, classes: list[str], names: list[str] | None = None) -> list[dict]:
        """One JSON-friendly dict per image."""
        out = []
        for i in range(self.maps.shape[0]):
            t, p = int(self.targets[i]), int(self.predicted[i])
            out.append({"image": names[i] if names else i, "target": classes[t], "target_index": t,
                        "target_score": float(self.scores[i]), "target_probability": float(self.probs[i]),
                        "predicted": classes[p], "predicted_index": p,
                        "map_max": float(self.maps[i].max()), "map_mean": float(self.maps[i].mean())})
        return out


def score_targets(module, x: torch.Tensor, target: Target, classes: list[str]):
    """Forward once without gradients: (target indices, their scores, their probabilities, predictions)."""
    with torch.no_grad():
        scores = module(x)
    idx = target.indices(classes, scores)
    picked = scores.gather(1, idx[:, None])[:, 0]
    probs = scores.softmax(1).gather(1, idx[:, None])[:, 0]
    return idx, picked, probs, scores.argmax(1)
