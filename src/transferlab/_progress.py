"""A rich progress bar that shows items/s, or nothing when disabled (tests, --quiet)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True,
                 unit: str = "img") -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, **fields)``; the bar shows done/total, the rate in ``unit``/s and the ETA."""
    if not enabled:
        yield lambda n=1, **fields: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1, **fields) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:.1f} {unit}/s" if speed else "", **fields)

        yield advance
