"""Numeric options are checked while the command line is parsed, before any work starts.

Every float option must be finite (``float("nan")`` parses, and would otherwise travel into a model), and the
options below must lie in their range, whichever command declares them: one table keyed by option name, so a
new command's ``--lr`` or ``--test-fraction`` is checked without a word in its module. typer's own ``min=``
bounds stay where a command declares them. A value out of range is a usage error: ``transferlab`` prints it on
one line and exits with code 2 (``main.py``).
"""

from __future__ import annotations

import math
from typing import Any

import typer

# option -> (low, high, low inclusive, high inclusive); None: unbounded on that side
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "--test-fraction": (0, 1, False, False),
    "--val-fraction": (0, 1, True, False),
    "--lr": (0, None, False, False),
    "--lr-g": (0, None, False, False),
    "--lr-d": (0, None, False, False),
    "--momentum": (0, 1, True, False),
    "--beta1": (0, 1, True, False),
    "--weight-decay": (0, None, True, False),
    "--alpha": (0, None, True, False),
    "--label-smoothing": (0, 1, True, False),
    "--grad-clip": (0, None, False, False),
    "--backbone-lr-factor": (0, None, True, False),
    "--patience": (0, None, True, False),
    "--pca": (1, None, True, False),
    "--pl-threshold": (0, 1, True, True),
    "--pl-threshold-end": (0, 1, True, True),
    "--eps": (0, 1, False, True),
    "--max-eps": (0, 1, False, True),
    "--tol": (0, None, False, False),
    "--localize": (0, 100, False, True),
    "--step-size": (0, None, False, False),
    "--max-feature-gb": (0, None, False, False),
}


def _describe(low, high, low_inclusive, high_inclusive) -> str:
    if low is not None and high is not None:
        return f"in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
    if low is not None:
        return f"{'>=' if low_inclusive else '>'} {low:g}"
    return f"{'<=' if high_inclusive else '<'} {high:g}"


def check_value(option: str, value: Any) -> None:
    """Raise ``typer.BadParameter`` when ``value`` of ``option`` is not finite or out of its range."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        if not math.isfinite(item):
            raise typer.BadParameter(f"must be a finite number; got {item}")
        if option in RANGES:
            low, high, low_inclusive, high_inclusive = RANGES[option]
            too_low = low is not None and (item < low if low_inclusive else item <= low)
            too_high = high is not None and (item > high if high_inclusive else item >= high)
            if too_low or too_high:
                raise typer.BadParameter(f"must be {_describe(*RANGES[option])}; got {item:g}")


def _checked(option: str, callback):
    def callback_with_check(ctx, param, value):
        check_value(option, value)
        return callback(ctx, param, value) if callback is not None else value

    callback_with_check.transferlab_checked = True
    return callback_with_check


def guard_numeric_options(command) -> None:
    """Wrap the callback of every numeric option of ``command`` and its subcommands with ``check_value``
    (once; called by the root callback, which click runs before it parses the subcommand's options)."""
    for sub in getattr(command, "commands", {}).values():
        guard_numeric_options(sub)
    for param in getattr(command, "params", []):
        annotation = str(getattr(getattr(param, "type_descriptor", None), "annotation", ""))
        if ("float" not in annotation and "int" not in annotation) or not param.opts:
            continue
        if getattr(param.callback, "transferlab_checked", False):
            continue
        option = max(param.opts, key=len)
        param.callback = _checked(option, param.callback)
