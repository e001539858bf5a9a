"""``index.html`` of a folder of runs (``transferlab report [RUNS_DIR]``): one sortable row per run or study,
linking its ``report.html`` (written first where it is missing), and a local server for it (``--serve``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from .._utils import atomic_write_bytes
from ..errors import ConfigError
from . import html as h
from .run_page import REPORT, describe, write_html_report

INDEX = "index.html"
_log = logging.getLogger("transferlab.report")


def find_runs(runs_dir: Path) -> list[Path]:
    """Every folder under ``runs_dir`` (itself included) that a transferlab run wrote (it has ``status.json``
    and ``config.json``), in path order."""
    runs_dir = Path(runs_dir)
    found = []
    for root, dirs, files in os.walk(runs_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("checkpoints", "model"))
        if "status.json" in files and "config.json" in files:
            found.append(Path(root))
    return sorted(found)


def write_index(runs_dir: Path | str = "runs", regenerate: bool = True,
                on_error: Callable[[Path, Exception], None] | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Write ``runs_dir/index.html`` and return its path and rows; missing reports are written first
    (``regenerate``). A report that cannot be written is listed without a link (``on_error`` is told)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ConfigError(f"{runs_dir} is not a folder of runs; pass the folder transferlab commands wrote into "
                          "(runs/ by default, or their --out's parent)")
    rows = []
    for folder in find_runs(runs_dir):
        report = folder / REPORT
        if regenerate and not report.is_file():
            try:
                write_html_report(folder)
            except Exception as exc:  # noqa: BLE001 - one broken folder never hides the others
                (on_error or _warn)(folder, exc)
        rel = folder.relative_to(runs_dir).as_posix()
        info = describe(folder)
        link = (f'<a href="{h.href(f"{rel}/{REPORT}" if rel != "." else REPORT)}">{h.text(rel)}</a>'
                if report.is_file() else h.text(rel))
        rows.append({"run": link, "command": info["command"], "backbone": info["backbone"], "layer": info["layer"],
                     "metric": info["metric"], "measure": info["metric_name"] if info["metric"] is not None else "",
                     "date": info["date"], "status": info["status"], "seconds": info["seconds"], "_folder": rel})
    rows.sort(key=lambda r: str(r["date"] or ""), reverse=True)
    columns = ["run", "command", "backbone", "layer", "metric", "measure", "date", "status", "seconds"]
    body = (f"<p>{len(rows)} run folder(s) under <code>{h.text(runs_dir.resolve())}</code>, newest first; click a "
            f"column to sort.</p>" + h.table(rows, columns, raw=("run",)))
    path = runs_dir / INDEX
    atomic_write_bytes(path, h.page("transferlab runs", body).encode("utf-8"))
    return path, rows


def _warn(folder: Path, exc: Exception) -> None:
    _log.warning("report.html of %s not written: %s: %s", folder, type(exc).__name__, exc)


def make_server(runs_dir: Path | str, port: int = 8000):
    """An ``http.server`` serving ``runs_dir`` on 127.0.0.1 (``port=0``: any free one), quiet per request."""
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # no line per request
            pass

    handler = functools.partial(Quiet, directory=os.fspath(runs_dir))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve on port {port} ({exc.strerror or exc}); choose another with --port "
                          "(0 picks a free one)") from None


def serve(runs_dir: Path | str, port: int = 8000, ready: Callable[[str], None] | None = None) -> None:
    """Serve ``runs_dir`` on ``http://127.0.0.1:PORT/`` (the standard library's ``http.server``) until
    interrupted; ``ready(url)`` is called once it listens."""
    with make_server(runs_dir, port) as server:
        if ready is not None:
            ready(index_url(server))
        server.serve_forever()


def index_url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{INDEX}"
