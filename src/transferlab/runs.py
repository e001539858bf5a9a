"""Run folders: every command leaves one behind (config, metrics, figures, log).

Nothing is ever written into the user's data folder: :func:`make_run_dir` refuses an output folder
inside the input folder.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path
from typing import Any

from . import __version__
from ._utils import atomic_write_bytes, escaped_text, write_json
from .errors import ConfigError, TransferlabError


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
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose a folder for the run's outputs")
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _CREATED.extend(p for p in reversed(missing) if p.is_dir())
        raise ConfigError(f"--out {out} cannot be created ({_os_reason(exc)}); choose a folder you can "
                          "write to") from None
    _CREATED.extend(reversed(missing))
    _check_writable(out)
    return out


def _check_writable(folder: Path) -> None:
    """Create and remove a probe file in ``folder``: an unwritable --out stops before any work."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".transferlab-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"--out {folder} is not writable ({_os_reason(exc)}); choose a folder you can write "
                          "to") from None


def _os_reason(exc: OSError) -> str:
    """``permission denied``, ``read-only file system``... : the OS's words for an error, on one line."""
    import errno

    if exc.errno is not None and exc.strerror:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror.lower()}"
    return " ".join(str(exc).split()) or type(exc).__name__


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
    logger = logging.getLogger(_logger_name(name, log_path.parent))
    logger.setLevel(logging.INFO)
    if not any(isinstance(f, _EscapedText) for f in logger.filters):
        logger.addFilter(_EscapedText())
    if not any(getattr(h, "baseFilename", None) == str(log_path) for h in logger.handlers):
        handler = logging.FileHandler(log_path, errors="backslashreplace")  # any file name the OS gives
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


def _logger_name(name: str, folder: Path) -> str:
    return f"{name}.run.{escaped_text(str(folder))}"


class _EscapedText(logging.Filter):
    """Every record of a run's logger as valid text (a message may quote a non-UTF-8 path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escaped_text(message)
        if escaped != message:
            record.msg, record.args = escaped, ()
        return True


def detach_log(out: Path, name: str = "transferlab") -> None:
    """Close the ``log.txt`` handler of the run in ``out`` (safe to call when none is attached)."""
    log_path = (Path(out) / "log.txt").resolve()
    logger = logging.getLogger(_logger_name(name, log_path.parent))
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def library_versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that decide a run's numbers (None when not installed)."""
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version(), "transferlab": __version__}
    for package in ("torch", "torchvision", "timm", "numpy", "scikit-learn", "pillow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class Run:
    """One command's run folder, from its first line to its last (``with Run(...) as run:``).

    On entry: the folder (refused inside an input folder), ``log.txt`` attached before any work, and
    ``config.json`` with the command, the call that reproduces it (``verb`` = ``"module:function"`` and its
    JSON keyword arguments, replayed by :func:`rerun`), the library versions and ``status.json`` =
    ``running``. :meth:`record` adds resolved values (device, weights identity, split...) to
    ``config.json``. On exit ``status.json`` says ``done``, ``failed`` (with the one-line error) or
    ``interrupted``, with the wall time; the log is closed. ``resume=True`` continues a run in an
    existing folder: its ``config.json`` is kept as it is (the checkpoint checks the options), the log
    goes on.
    """

    def __init__(self, command: str, verb: str, args: dict[str, Any], out: Path | str | None = None,
                 inputs: tuple[Path | str, ...] = (), resume: bool = False) -> None:
        self.command, self.verb, self.args = command, verb, _jsonable(args)
        self._out, self._inputs, self.resume = out, inputs, resume
        self.config: dict[str, Any] = {}

    def __enter__(self) -> "Run":
        import time

        existed = self._out is not None and Path(self._out).expanduser().exists()
        self.out = make_run_dir(self._out, self.command.replace(" ", "-"), inputs=self._inputs)
        self._created = not existed
        # what a run already in this folder said of itself, put back if this call stops on a user error
        # before changing anything else there
        self._previous = {name: (self.out / name).read_bytes() for name in ("config.json", "status.json")
                          if (self.out / name).is_file()}
        self._contents = self._snapshot()
        self.log = attach_log(self.out)
        self.log.info("transferlab %s: %s%s", __version__, self.command, " (resumed)" if self.resume else "")
        self._start, self._started = time.perf_counter(), _dt.datetime.now().isoformat(timespec="seconds")
        self.config = {"command": self.command, "call": {"verb": self.verb, "args": self.args,
                                                          "cwd": str(Path.cwd())},
                       "versions": library_versions()}
        if not self.resume:
            write_config(self.out, self.config)
        self._status("running")
        return self

    def record(self, **resolved: Any) -> None:
        """Add resolved values to ``config.json`` (written at once: a crash later keeps them); a resumed run
        keeps the file of the run it continues."""
        self.config.update(_jsonable(resolved))
        if not self.resume:
            write_config(self.out, self.config)

    def __exit__(self, exc_type, exc, tb) -> bool:
        import time

        seconds = round(time.perf_counter() - self._start, 3)
        if exc is None:
            self._status("done", seconds=seconds)
            self.log.info("done in %.1f s", seconds)
            _write_report(self.out, self.log)
        else:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            message = " ".join(str(exc).split()) or type(exc).__name__
            self._status(status, seconds=seconds, error=f"{type(exc).__name__}: {message}")
            self.log.error("%s after %.1f s: %s", status, seconds, message)
        detach_log(self.out)
        if exc is not None and isinstance(exc, TransferlabError):
            if self._created:
                self._remove_if_only_ours()  # a user error (a typo) leaves no folder behind
            elif self._snapshot() == self._contents:  # refused before any work: the run there is as it was
                for name, data in self._previous.items():
                    atomic_write_bytes(self.out / name, data)
        return False

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        """Size and modification time of every file in the folder but the three this class writes."""
        ours = {"config.json", "status.json", "log.txt"}
        return {str(p.relative_to(self.out)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in self.out.rglob("*") if p.is_file() and p.relative_to(self.out).as_posix() not in ours}

    def _remove_if_only_ours(self) -> None:
        ours = {"config.json", "status.json", "log.txt"}
        if {p.name for p in self.out.iterdir()} <= ours:
            for name in ours:
                (self.out / name).unlink(missing_ok=True)
            try:
                self.out.rmdir()
            except OSError:
                pass

    def _status(self, status: str, **extra: Any) -> None:
        write_json(self.out / "status.json", {"status": status, "started": self._started, **extra})


def _write_report(out: Path, log: logging.Logger) -> None:
    """``report.html`` of a finished run; a report that fails never fails the run (a warning in its log)."""
    from .training.distributed import is_main_process

    if not is_main_process():  # under torchrun only rank 0 writes it
        return
    try:
        from .report.run_page import write_html_report

        write_html_report(out)
    except Exception as exc:  # noqa: BLE001 - the run's results are already written
        log.warning("report.html not written: %s: %s", type(exc).__name__, " ".join(str(exc).split()))


def _jsonable(value: Any) -> Any:
    """Paths as strings, tuples as lists, dataclasses as dicts: what ``config.json`` can hold."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def rerun(run_dir: Path | str, out: Path | str | None = None) -> Any:
    """Run again what produced ``run_dir``, from its ``config.json``, into ``out`` (default a new
    ``runs/<command>-<time>``); returns what the library verb returns. The same inputs give the same results:
    every random choice of a run is seeded by its recorded options."""
    import importlib
    import inspect
    import json

    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder: it has no config.json; pass a folder written by a "
                          "transferlab command")
    try:
        call = json.loads(path.read_text()).get("call")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise ConfigError(f"{path} cannot be read as a run configuration ({type(exc).__name__})") from None
    if not isinstance(call, dict) or ":" not in str(call.get("verb", "")):
        raise ConfigError(f"{path} records no reproducible call (written by an older transferlab or a command "
                          "without rerun support); run the command again instead")
    if out is not None and Path(out).expanduser().resolve() == run_dir.resolve():
        raise ConfigError(f"--out {out} is the run being replayed; choose another folder")
    module, _, name = call["verb"].partition(":")
    if not module.startswith("transferlab."):
        raise ConfigError(f"{path} names the verb {call['verb']!r}, which is not transferlab's; refusing to run it")
    try:
        verb = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"{path} names the verb {call['verb']!r}, which this transferlab does not have; run the "
                          "command again instead") from None
    args = dict(call.get("args") or {})
    # relative paths in the call meant the folder it was started from; the new --out means this one
    out = Path(out).expanduser().resolve() if out is not None else \
        Path.cwd() / "runs" / f"{run_dir.resolve().name}-rerun-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    try:
        inspect.signature(verb).bind(**args, out=out)
    except TypeError as exc:
        raise ConfigError(f"{path} records arguments {call['verb']} does not take ({exc}); run the command "
                          "again instead") from None
    cwd, previous = call.get("cwd"), Path.cwd()
    try:
        if cwd and Path(cwd).is_dir():
            os.chdir(cwd)
        return verb(**args, out=out)
    finally:
        os.chdir(previous)
