"""``transferlab rerun RUN_DIR``: run again what produced a run folder, from its ``config.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as opt


def rerun(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by a transferlab command.")],
    out: opt.Out = None,
) -> None:
    """Re-run a run from its config.json (same options, same data, same seeds) into a new folder."""
    from ..runs import rerun as rerun_folder

    rerun_folder(run_dir, out)
    typer.echo(f"re-ran {run_dir}" + (f" into {out}" if out else ""))


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command()(rerun)
