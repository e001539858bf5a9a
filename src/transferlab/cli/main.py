"""Entry point of the ``transferlab`` command.

User mistakes (:class:`~transferlab.errors.TransferlabError`) print one line on stderr and exit with
code 2; ``--debug`` shows the traceback instead. Each command group lives in its own module exposing
``register(app, groups)``; ``groups["study"]`` is the shared ``transferlab study ...`` sub-app.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer._click.exceptions import ClickException  # typer's own copy of click raises these

from ..errors import TransferlabError

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = ["core", "classify", "inspection", "studies", "finetune", "explain", "adapt", "gan", "runs", "report",
                   "export"]

app = typer.Typer(
    name="transferlab", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Transfer learning on image folders: pretrained CNN features + linear classifiers, and the studies, "
         "explanations, domain adaptation and GANs around them.",
)
study_app = typer.Typer(no_args_is_help=True, help="The seeds' experiments: each writes a table (CSV + Markdown) "
                                                    "and a figure.")
_STATE = {"debug": False}


@app.callback()
def _root(ctx: typer.Context,
          debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    from .validation import guard_numeric_options

    _STATE["debug"] = debug
    guard_numeric_options(ctx.command)  # before click parses the subcommand's options


def _register_all() -> None:
    groups = {"study": study_app}
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue  # command group not present in this build
            raise
        module.register(app, groups)
    app.add_typer(study_app, name="study")


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map user errors to exit code 2 with a one-line message."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    for stream in (sys.stdout, sys.stderr):  # a path with non-UTF-8 bytes prints its bytes, as `ls` does
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    try:
        code = app(args=args, prog_name="transferlab", standalone_mode=False)
    except ClickException as exc:  # a usage error: one line too, not click's framed box
        if type(exc).__name__ == "NoArgsIsHelpError":  # `transferlab study` alone: the help text
            exc.show()
            raise SystemExit(0) from None
        command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "transferlab"
        typer.echo(f"error: {' '.join(exc.format_message().split())} (see `{command} --help`)", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    except TransferlabError as exc:
        from ..runs import remove_unused_run_dirs

        remove_unused_run_dirs()
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)  # always one line
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: finished work is saved; run the same command again to resume", err=True)
        raise SystemExit(130) from None
    # as in click's standalone mode, which exits (0) after a command; `--help` returns its own exit code
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
