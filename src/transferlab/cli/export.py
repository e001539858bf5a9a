"""Command ``export``: a saved model as a deployable file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def export(
    model: Annotated[Path, typer.Argument(help="A saved linear or fine-tuned model folder (OUT/model of `run` or "
                                                "`finetune`).")],
    format: Annotated[str, typer.Option("--format", help="onnx: one graph, RGB pixels in [0, 1] -> class "
                                                         "scores (one channel for a --grayscale model).")
                      ] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", help="The .onnx file to write (default: model.onnx in "
                                                              "the run folder).")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="The run folder (log, config.json, "
                                                                      "export.json); default runs/export-<time>.")
                       ] = None,
) -> None:
    """Export a saved model as one ONNX graph (runs with onnxruntime alone; see docs/export.md)."""
    from ..export.run import export_model

    result = export_model(model, format=format, file=out, out=run_dir)
    typer.echo(f"wrote {result.path}: input pixels float32 (N, {', '.join(map(str, result.input_shape))}) in "
               f"[0, 1], output scores ({result.output}) over {len(result.classes)} classes")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command()(export)
