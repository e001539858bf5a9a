"""Per-epoch training history: rows of numbers, written as CSV and plotted as curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from .._utils import atomic_write_bytes


class History:
    """A list of per-epoch records (dicts) with CSV persistence and resumption."""

    def __init__(self, rows: Iterable[dict[str, Any]] = ()) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]

    def append(self, **row: Any) -> None:
        self.rows.append(row)

    def column(self, key: str) -> list[Any]:
        return [r.get(key) for r in self.rows]

    def to_csv(self, path: Path | str) -> None:
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row if k not in keys)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(Path(path), buffer.getvalue().encode())

    @classmethod
    def from_csv(cls, path: Path | str) -> "History":
        with open(path, newline="") as handle:
            rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]
        return cls(rows)

    def plot(self, path: Path | str, groups: dict[str, list[str]], x: str = "epoch", title: str = "") -> None:
        """One panel per group, e.g. ``{"loss": ["train_loss", "val_loss"], "accuracy": [...]}``."""
        from ..report.plots import plot_curves

        plot_curves(self.rows, groups, Path(path), x=x, title=title)


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
