"""Run folders: every command leaves one behind (config, metrics, figures, log).

Nothing is ever written into the user's data folder: :func:`make_run_dir` refuses an output folder
inside the input folder.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

from . import __version__
from ._utils import write_json
from .errors import ConfigError


_CREATED: list[Path] = []  # run folders (and parents) this process created, newest last


def make_run_dir(out: Path | str | None, command: str, inputs: tuple[Path | str, ...] = ()) -> Path:
    """Create (or reuse) the output folder of a run.

    ``out=None`` gives ``runs/<command>-<timestamp>`` in the current directory. The folder must not
    lie inside any of ``inputs`` (data folders are read-only for transferlab).
    """
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        out = Path("runs") / f"{command}-{stamp}"
    out = Path(out).expanduser()
    resolved = out.resolve()
    for source in inputs:
        src = Path(source).expanduser().resolve()
        if src.is_dir() and (resolved == src or src in resolved.parents):
            raise ConfigError(
                f"output folder {out} is inside the input folder {source}; transferlab never writes "
                "into data folders: choose --out elsewhere"
            )
    missing = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    _CREATED.extend(reversed(missing))
    return out


def remove_unused_run_dirs() -> None:
    """Remove the run folders this process created that hold nothing but an empty log or nothing at all.

    The command line calls this when a command stops on a user error, so a typo leaves no folder behind.
    """
    for folder in reversed(_CREATED):
        log = folder / "log.txt"
        if log.is_file() and not log.stat().st_size:
            log.unlink()
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            pass
    _CREATED.clear()


def write_config(out: Path, config: dict[str, Any]) -> Path:
    """Write the resolved configuration of a run as ``config.json`` (with the package version)."""
    path = Path(out) / "config.json"
    write_json(path, {"transferlab_version": __version__, **config})
    return path


def attach_log(out: Path, name: str = "transferlab") -> logging.Logger:
    """Return the logger of this run, writing to ``OUT/log.txt``.

    Each run folder gets its own child logger (``transferlab.run.<folder>``), so several runs in one
    process (a study) never write into each other's logs; close it with :func:`detach_log`.
    """
    log_path = (Path(out) / "log.txt").resolve()
    logger = logging.getLogger(f"{name}.run.{log_path.parent}")
    logger.setLevel(logging.INFO)
    if not any(getattr(h, "baseFilename", None) == str(log_path) for h in logger.handlers):
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


def detach_log(out: Path, name: str = "transferlab") -> None:
    """Close the ``log.txt`` handler of the run in ``out`` (safe to call when none is attached)."""
    log_path = (Path(out) / "log.txt").resolve()
    logger = logging.getLogger(f"{name}.run.{log_path.parent}")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
