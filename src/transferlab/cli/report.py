"""``transferlab report [RUNS_DIR]``: the index page of every run in a folder, optionally served on localhost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    runs_dir: Annotated[Path, typer.Argument(help="A folder of run folders (default: runs/).")] = Path("runs"),
    serve: Annotated[bool, typer.Option("--serve", help="Serve the folder on http://127.0.0.1:PORT/ until "
                                                        "Ctrl-C (Python's http.server).")] = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port for --serve (0: any free one).")] = 8000,
) -> None:
    """Write RUNS_DIR/index.html: a sortable table of every run linking its report.html (missing ones written)."""
    from ..report.index import serve as serve_folder
    from ..report.index import write_index

    def warn(folder: Path, exc: Exception) -> None:
        typer.echo(f"warning: report.html of {folder} not written ({type(exc).__name__}: {exc})", err=True)

    path, rows = write_index(runs_dir, on_error=warn)
    typer.echo(f"{len(rows)} run(s) -> {path}")
    if serve:
        try:
            serve_folder(runs_dir, port, ready=lambda url: typer.echo(f"serving {runs_dir} at {url} (Ctrl-C stops)"))
        except KeyboardInterrupt:
            typer.echo("stopped")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command()(report)
