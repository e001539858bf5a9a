"""User-facing errors.

Every mistake a user can make (a missing folder, an unknown backbone, a bad weights file...) raises a
subclass of :class:`TransferlabError` whose message says what was expected, what was got and how to
fix it. The command line prints that message on one line and exits with code 2.
"""

from __future__ import annotations


class TransferlabError(Exception):
    """Base class of every error caused by user input or environment, not by a bug."""


class DataError(TransferlabError):
    """An image folder, an image or a dataset is missing, empty or unusable."""


class WeightsError(TransferlabError):
    """Weights cannot be found, downloaded or loaded for the requested architecture."""


class ConfigError(TransferlabError):
    """An option is invalid: unknown backbone, layer, class, value out of range..."""


class CacheError(TransferlabError):
    """The feature cache holds something that does not match what was asked for."""


class ModelFileError(TransferlabError):
    """A saved transferlab model is missing, tampered with or not a transferlab model."""


class TrainingError(TransferlabError):
    """Training cannot continue (non-finite loss, incompatible checkpoint...)."""


def did_you_mean(name: str, choices: list[str], limit: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the closest names in ``choices`` (or '')."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=limit, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def check_finite_fields(options: object) -> None:
    """Refuse a dataclass of options holding a NaN or infinite number, in one line naming the option."""
    import math
    from dataclasses import fields

    for field in fields(options):  # type: ignore[arg-type]
        value = getattr(options, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"--{field.name.replace('_', '-')} must be a finite number; got {value}")
