"""The one runner every study shares: conditions -> (cached) features -> fit/evaluate -> rows.

A :class:`Study` lists its *conditions* (a layer, a backbone, a value of C, a PCA size, a head) and
evaluates one at a time. :func:`run_study` appends each finished condition's row to
``OUT/results.jsonl`` as soon as it is done (flushed and fsynced), so an interrupted study run again
with the same ``--out`` skips the finished rows; it shows a progress bar, measures memory per
condition, and at the end writes the table (``OUT/<name>.csv`` + ``.md``), the figures (PNG),
``config.json`` and ``summary.json``. Choices inside a study are made by cross-validation on the
training split only; the test split is only ever scored.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import tracemalloc
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._progress import progress_bar
from .._utils import seed_everything, text_digest, write_json
from ..errors import ConfigError
from ..report import write_table
from ..runs import make_run_dir, write_config

RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True)
class Condition:
    """One cell of a study: ``key`` is unique in the study, ``params`` are its identifying columns."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


class Study(ABC):
    """Base class: subclasses set ``name`` and implement :meth:`conditions` and :meth:`evaluate`."""

    name = "study"
    seed = 0

    @abstractmethod
    def conditions(self) -> list[Condition]:
        """The cells of the study, in order."""

    @abstractmethod
    def evaluate(self, condition: Condition) -> dict[str, Any]:
        """Metrics of one condition (fit on train, score test once)."""

    def config(self) -> dict[str, Any]:
        """Everything that determines the results (JSON-able); its digest guards resuming."""
        return {}

    def inputs(self) -> tuple[Path | str, ...]:
        """Data folders the output folder must not lie inside."""
        return ()

    def figures(self, rows: list[dict[str, Any]], out: Path) -> list[Path]:
        return []

    def summary(self, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        return {}


@dataclass
class StudyResult:
    out: Path
    rows: list[dict[str, Any]]
    table: tuple[Path, Path]
    figures: list[Path]
    summary: dict[str, Any]
    n_evaluated: int  # conditions evaluated by this call (the others were resumed from results.jsonl)


def fingerprint(config: dict[str, Any]) -> str:
    return text_digest(json.dumps(config, sort_keys=True, default=str))


def run_study(study: Study, out: Path | str | None, *, progress: bool = True, restart: bool = False) -> StudyResult:
    """Run (or resume) ``study`` into ``out``; return its rows, table, figures and summary."""
    out = make_run_dir(out, f"study-{study.name}", inputs=study.inputs())
    config = study.config()
    digest = fingerprint(config)
    results_path = out / RESULTS_FILE
    done = {} if restart else _read_results(results_path, digest)
    conditions = study.conditions()
    keys = [c.key for c in conditions]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"study {study.name} has repeated conditions ({', '.join(keys)}); list each once")
    write_config(out, {"command": f"study {study.name}", **config, "fingerprint": digest})
    if restart or not results_path.exists():
        _write_line(results_path, {"fingerprint": digest, "study": study.name}, mode="w")
    todo = [c for c in conditions if c.key not in done]
    evaluated = 0
    with progress_bar(len(todo), f"study {study.name}", enabled=progress and bool(todo), unit="cond") as advance:
        for condition in todo:
            row = _evaluate_measured(study, condition)
            _write_line(results_path, row)
            done[condition.key] = row
            evaluated += 1
            advance(1)
    rows = [done[key] for key in keys]
    table = write_table(rows, out, study.name)
    figures = study.figures(rows, out)
    summary = study.summary(rows, out)
    write_json(out / "summary.json", {"study": study.name, "conditions": len(rows), **summary,
                                      "table": table[0].name, "figures": [p.name for p in figures]})
    return StudyResult(out, rows, table, figures, summary, evaluated)


def _evaluate_measured(study: Study, condition: Condition) -> dict[str, Any]:
    """Evaluate one condition under a fixed global seed, with its time and memory."""
    seed_everything(study.seed)  # LinearSVC draws its liblinear seed from NumPy's global RNG
    tracing = not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        metrics = study.evaluate(condition)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        if tracing:
            tracemalloc.stop()
    return {"key": condition.key, **condition.params, **metrics,
            "seconds": round(time.perf_counter() - start, 4),
            "peak_traced_mb": round(peak / 1e6, 2), "max_rss_mb": round(max_rss_mb(), 1)}


def max_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e6 if sys.platform == "darwin" else rss * 1024 / 1e6


def _read_results(path: Path, digest: str) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    rows: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that condition is simply run again
        if number == 0:
            if record.get("fingerprint") != digest:
                raise ConfigError(
                    f"{path.parent} holds results of a study run with different settings (fingerprint "
                    f"{record.get('fingerprint')} != {digest}); use another --out, or --restart to discard them")
            continue
        rows[record["key"]] = record
    return rows


def _write_line(path: Path, record: dict[str, Any], mode: str = "a") -> None:
    with open(path, mode) as handle:
        handle.write(json.dumps(record, default=_jsonable) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to results.jsonl")
