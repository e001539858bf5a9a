"""The Markdown report of a run: summary table, figures and configuration in one ``report.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._utils import atomic_write_bytes
from .tables import markdown_table


def write_run_report(out: Path, metrics: dict[str, Any], title: str = "transferlab run") -> Path:
    """Gather ``metrics.json`` numbers, every PNG of ``out`` and ``config.json`` into ``out/report.md``."""
    out = Path(out)
    summary = {k: metrics.get(k) for k in ("backbone", "layer", "classifier", "chosen_C", "C_mode", "pca",
                                           "feature_size", "n_train", "n_test", "accuracy", "balanced_accuracy",
                                           "extraction_seconds", "fit_seconds") if k in metrics}
    lines = [f"# {title}", "", markdown_table([summary])]
    if metrics.get("repeats"):
        r = metrics["repeats"]
        lines += [f"Accuracy over {len(r['accuracies'])} seeded splits: **{r['mean']:.4f} ± {r['std']:.4f}**", ""]
    if metrics.get("per_class"):
        lines += ["## Per class", "", markdown_table([{"class": c, **v} for c, v in metrics["per_class"].items()])]
    for png in sorted(out.glob("*.png")):
        lines += [f"## {png.stem.replace('_', ' ')}", "", f"![{png.stem}]({png.name})", ""]
    config = out / "config.json"
    if config.exists():
        lines += ["## Configuration", "", "```json", json.dumps(json.loads(config.read_text()), indent=2), "```", ""]
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode(errors="backslashreplace"))
    return path
