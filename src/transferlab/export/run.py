"""``transferlab export`` as a library verb inside one :class:`~transferlab.runs.Run`."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..runs import Run

FORMATS = ("onnx",)


def export_model(model: Path | str, *, format: str = "onnx", file: Path | str | None = None,
                 out: Path | str | None = None):
    """``transferlab export MODEL --format onnx [--out FILE]``: the saved model folder ``model`` as one ONNX
    graph (see :func:`~transferlab.export.export_onnx`) at ``file`` (default ``<run folder>/model.onnx``);
    the run folder ``out`` holds the log, ``config.json`` and ``export.json``. Returns the
    :class:`~transferlab.export.ExportedScores`."""
    from .._utils import write_json
    from ..classify import load_model
    from .onnx import _check_out, export_onnx

    if format not in FORMATS:
        raise ConfigError(f"--format takes {', '.join(FORMATS)}; got {format!r}; pass --format onnx")
    if file is not None:
        _check_out(Path(file))  # before a run folder is made
    call = {"model": str(model), "format": format, "file": None if file is None else str(file)}
    with Run("export", "transferlab.export.run:export_model", call, out) as run:
        loaded = load_model(model)
        target = Path(file) if file is not None else run.out / "model.onnx"
        run.record(resolved_device="cpu", kind=loaded.kind, backbone=loaded.backbone_name, file=str(target))
        result = export_onnx(loaded, target)
        info = {"file": str(result.path), "kind": loaded.kind, "backbone": loaded.backbone_name,
                "classes": result.classes, "preprocessing": result.preprocessing,
                "input": ["N", *result.input_shape], "output": result.output,
                "max_abs_difference_onnxruntime_vs_torch": result.max_abs_difference}
        write_json(run.out / "export.json", info)
        run.log.info("%s model on %s -> %s (%s; onnxruntime vs torch max |diff| %.2g)", loaded.kind,
                     loaded.backbone_name, result.path, result.output, result.max_abs_difference)
    return result
