"""The one runner every study shares: conditions -> (cached) features -> fit/evaluate -> rows.

A :class:`Study` lists its *conditions* (a layer, a backbone, a value of C, a PCA size, a head) and
evaluates one at a time. :func:`run_study` appends each finished condition's row to
``OUT/results.jsonl`` as soon as it is done (flushed and fsynced), so an interrupted study run again
with the same ``--out`` skips the finished rows; it shows a progress bar, measures memory per
condition, and at the end writes the table (``OUT/<name>.csv`` + ``.md``), the figures (PNG),
``config.json`` and ``summary.json``. Choices inside a study are made by cross-validation on the
training split only; the test split is only ever scored.

:func:`study` is the library verb of ``transferlab study layers|backbones|C|pca|heads``: JSON-able arguments
(the study's kind, data, :class:`~transferlab.pipeline.ExtractionOptions`, :class:`LinearOptions` and the
study's own options), one :class:`~transferlab.runs.Run` (log, ``config.json`` with the call, versions and
resolved device, ``status.json``), so ``transferlab rerun`` replays a study.
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
from .._utils import text_digest, write_json
from ..errors import ConfigError
from ..features.distributed import ExtractionGroup
from ..report import write_table
from ..runs import Run
from ..training.distributed import broadcast_object

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


STUDY_VERB = "transferlab.studies.runner:study"


def _study_class(kind: str):
    from . import BackbonesStudy, CStudy, HeadsStudy, LayersStudy, PCAStudy

    kinds = {"layers": LayersStudy, "backbones": BackbonesStudy, "C": CStudy, "pca": PCAStudy, "heads": HeadsStudy}
    if kind not in kinds:
        raise ConfigError(f"unknown study {kind!r}; expected one of {', '.join(kinds)}")
    return kinds[kind]


def study(kind: str, data: Path | str, extraction: Any = None, linear: Any = None,
          options: dict[str, Any] | None = None, *, out: Path | str | None = None, restart: bool = False,
          progress: bool = True) -> StudyResult:
    """``transferlab study KIND``: build the study (``options`` are its own keyword arguments, e.g. ``layers``,
    ``heatmap``, ``cv`` for ``layers``) and run or resume it into ``out`` (see :func:`run_study`).

    ``extraction`` and ``linear`` may be given as dicts, as ``config.json`` records them.
    """
    from ..classify import DEFAULT_C_GRID, LinearOptions
    from ..classify.run import parse_C
    from ..pipeline import ExtractionOptions

    cls = _study_class(kind)
    if isinstance(extraction, dict):
        extraction = ExtractionOptions(**extraction)
    extraction = extraction or ExtractionOptions()
    if isinstance(linear, dict):
        linear = LinearOptions(**{**linear, "c_grid": tuple(linear.get("c_grid") or DEFAULT_C_GRID)})
    linear = linear or LinearOptions()
    if linear.C != "auto":
        linear.C = parse_C(linear.C)
    options = dict(options or {})
    call = {"kind": kind, "data": data, "extraction": extraction, "linear": linear, "options": options,
            "restart": restart, "progress": progress}
    group = ExtractionGroup(extraction.device, everywhere=True)
    if not group.is_main:  # under torchrun: help extract the features, rank 0 fits and writes
        return _help(cls(data, extraction, linear, **options), group)
    with _study_run(cls.name, STUDY_VERB, call, out, (data,), restart) as run:
        return _run_in(cls(data, extraction, linear, **options), run, progress=progress, restart=restart, group=group)


def run_study(study: Study, out: Path | str | None, *, progress: bool = True, restart: bool = False) -> StudyResult:
    """Run (or resume) ``study`` into ``out``; return its rows, table, figures and summary.

    A study object built in Python records no reproducible call (``transferlab rerun`` refuses it); the
    :func:`study` verb records one.
    """
    group = ExtractionGroup(getattr(getattr(study, "extraction", None), "device", "auto"), everywhere=True)
    if not group.is_main:
        return _help(study, group)
    with _study_run(study.name, None, {}, out, study.inputs(), restart) as run:
        return _run_in(study, run, progress=progress, restart=restart, group=group)


def _study_run(name: str, verb: str | None, call: dict[str, Any], out, inputs, restart: bool) -> Run:
    """The study's :class:`Run`; a folder with earlier results is entered as a resumed run, so its
    ``config.json`` is only rewritten once the settings are known to match (:func:`_run_in`)."""
    resuming = out is not None and not restart and (Path(out).expanduser() / RESULTS_FILE).is_file()
    return Run(f"study {name}", verb, call, out, inputs=inputs, resume=resuming)  # type: ignore[arg-type]


def _help(study: Study, group: ExtractionGroup) -> None:
    """A torchrun rank other than 0: extract with rank 0 the features of the conditions it will run."""
    _shared_conditions(study, group, {})


def _shared_conditions(study: Study, group: ExtractionGroup | None, done: dict[str, Any]) -> list[Condition]:
    """The study's conditions; under torchrun the ranks first extract together the features of those rank 0
    has not ``done`` (each condition evaluated up to its features, :meth:`FeatureSource.fetch_only`)."""
    if group is None or not group.enabled:
        return study.conditions()
    from .probe import FeaturesFetched

    with group:
        conditions = study.conditions()
        todo = broadcast_object([c.key for c in conditions if c.key not in done] if group.is_main else None, group.ctx)
        source = getattr(study, "source", None)
        if source is not None:
            with source.fetch_only():
                for condition in (c for c in conditions if c.key in set(todo)):
                    try:
                        study.evaluate(condition)
                    except FeaturesFetched:
                        pass
    return conditions


def _run_in(study: Study, run: Run, *, progress: bool, restart: bool, group: ExtractionGroup | None = None
            ) -> StudyResult:
    out = run.out
    config = study.config()
    digest = fingerprint(config)
    results_path = out / RESULTS_FILE
    done = {} if restart else _read_results(results_path, digest, config)
    conditions = _shared_conditions(study, group, done)
    keys = [c.key for c in conditions]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"study {study.name} has repeated conditions ({', '.join(keys)}); list each once")
    device = getattr(getattr(study, "extraction", None), "device", None)
    resolved = {}
    if device is not None:
        from .._utils import resolve_device

        resolved["resolved_device"] = str(resolve_device(device))
    run.resume = False  # the settings match the folder's results (or there are none): write config.json
    run.record(**config, fingerprint=digest, **resolved)
    if restart or not results_path.exists():
        _write_line(results_path, {"fingerprint": digest, "study": study.name, "config": config}, mode="w")
    todo = [c for c in conditions if c.key not in done]
    run.log.info("study %s: %d conditions, %d to run, %d resumed", study.name, len(keys), len(todo),
                 len(keys) - len(todo))
    evaluated = 0
    with progress_bar(len(todo), f"study {study.name}", enabled=progress and bool(todo), unit="cond") as advance:
        for condition in todo:
            row = _evaluate_measured(study, condition)
            _write_line(results_path, row)
            run.log.info("condition %s done in %.1f s", condition.key, row["seconds"])
            done[condition.key] = row
            evaluated += 1
            advance(1)
    rows = [done[key] for key in keys]
    table = write_table(rows, out, study.name)
    from ..training import seeded

    with seeded(study.seed):  # a summary may fit again (the C study's test rows): seeded, in a fork
        figures = study.figures(rows, out)
        summary = study.summary(rows, out)
    write_json(out / "summary.json", {"study": study.name, "conditions": len(rows), **summary,
                                      "table": table[0].name, "figures": [p.name for p in figures]})
    return StudyResult(out, rows, table, figures, summary, evaluated)


def _evaluate_measured(study: Study, condition: Condition) -> dict[str, Any]:
    """Evaluate one condition under a fixed seed (in a fork: the caller's random state is left as it was), with its
    time and memory."""
    from ..training import seeded

    with seeded(study.seed):  # LinearSVC draws its liblinear seed from NumPy's global RNG
        return _evaluate_timed(study, condition)


def _evaluate_timed(study: Study, condition: Condition) -> dict[str, Any]:
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


def _read_results(path: Path, digest: str, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
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
                from ..training.engine import key_changes

                if "config" not in record:  # written before results.jsonl kept the settings
                    what = "settings not recorded by the earlier transferlab that wrote them"
                else:
                    now = json.loads(json.dumps(config, default=str))  # as the header holds it (paths as strings)
                    changes = key_changes(record["config"], now, before="earlier")
                    what = "; ".join(changes) or f"fingerprint {record.get('fingerprint')} != {digest}"
                raise ConfigError(f"{path.parent} holds results of a study run with different settings ({what}); "
                                  "use the same options, another --out, or --restart to discard them")
            continue
        rows[record["key"]] = record
    return rows


def _write_line(path: Path, record: dict[str, Any], mode: str = "a") -> None:
    line = json.dumps(record, default=_jsonable) + "\n"
    if mode == "a" and path.exists() and path.stat().st_size:
        with open(path, "rb") as handle:  # a line cut short by a kill: start on a line of our own
            handle.seek(-1, os.SEEK_END)
            line = line if handle.read(1) == b"\n" else "\n" + line
    with open(path, mode) as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to results.jsonl")
