"""Tables: a list of dict rows written as CSV and as a Markdown table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

from .._utils import atomic_write_bytes


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Render rows (dicts sharing keys) as a GitHub-flavoured Markdown table."""
    if not rows:
        return "(no rows)\n"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[dict[str, Any]], out: Path | str, name: str) -> tuple[Path, Path]:
    """Write ``OUT/name.csv`` and ``OUT/name.md``; return both paths."""
    out = Path(out)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
    atomic_write_bytes(csv_path, buffer.getvalue().encode(errors="surrogateescape"))
    atomic_write_bytes(md_path, markdown_table(rows).encode(errors="backslashreplace"))
    return csv_path, md_path
