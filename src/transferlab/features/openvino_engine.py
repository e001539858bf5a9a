"""The OpenVINO feature engine: the cut network with its pooling and L2, compiled for the CPU.

The torch module (``engines.VectorModule``) is converted once with ``openvino.convert_model`` and saved as
OpenVINO IR (``model.xml`` + ``model.bin``, float32 weights) under ``<cache>/openvino/<key>/``, keyed by
a hash of everything that determines the graph (backbone, weights, layers, pooling, L2, input size,
transferlab and OpenVINO versions; ``description.json`` says which). Compiling the IR for the CPU at
fp32 or bf16 (``INFERENCE_PRECISION_HINT``) goes through OpenVINO's own model cache (``CACHE_DIR``,
``<cache>/openvino/compiled/``), so a second run neither converts nor compiles again. The batch
dimension is dynamic (the last batch of a run is smaller); channels, height and width are the preprocessing's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import __version__
from .._utils import text_digest
from ..errors import ConfigError

log = logging.getLogger(__name__)

OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def import_openvino():
    """The ``openvino`` module, or one ConfigError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ConfigError("--engine openvino needs the openvino package, which is not installed; "
                          "pip install 'transferlab[openvino]' (or use --engine torch)") from None
    return openvino


def model_description(backbone, layers: Sequence[str], pooling: str, l2: bool) -> dict:
    """What determines the converted graph (its cache key is a hash of this)."""
    ov = import_openvino()
    return {"backbone": backbone.name, "weights": backbone.weights_id, "layers": list(layers), "pooling": pooling,
            "l2": l2, "input": [len(backbone.preprocessing.mean), backbone.preprocessing.crop_size,
                                backbone.preprocessing.crop_size],
            "transferlab_version": __version__, "openvino_version": ov.get_version(),
            "torch_version": torch.__version__}


class OpenVinoEngine:
    """Preprocessed images -> ``{layer: pooled (L2) vectors}`` computed by OpenVINO on the CPU."""

    name = "openvino"

    def __init__(self, module: torch.nn.Module, layers: Sequence[str], *, backbone, pooling: str, l2: bool,
                 precision: str, model_cache: Path | None) -> None:
        ov = import_openvino()
        if precision not in OV_PRECISIONS:
            raise ConfigError(f"--engine openvino runs at fp32 or bf16; got --precision {precision}")
        self.layers = list(layers)
        description = model_description(backbone, layers, pooling, l2)
        size = backbone.preprocessing.crop_size
        channels = len(backbone.preprocessing.mean)  # 1 for a --grayscale sum-filters network
        core = ov.Core()
        # one stream using as many threads as torch would (the same knob: torch.set_num_threads, OMP_NUM_THREADS)
        config = {"INFERENCE_PRECISION_HINT": OV_PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        folder = Path(model_cache) / text_digest(description) if model_cache is not None else None
        if folder is not None and _cached(folder, description):
            model = folder / "model.xml"
        else:
            model = _convert(ov, module, channels, size)
            if folder is not None and _save(ov, model, folder, description):
                model = folder / "model.xml"
        if isinstance(model, Path):  # compiled from the file: OpenVINO's own cache then serves the next run
            config["CACHE_DIR"] = str(Path(model_cache) / "compiled")
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        results = self.request.infer({0: array})
        return {layer: np.asarray(results[self.compiled.output(i)], dtype=np.float32).copy()
                for i, layer in enumerate(self.layers)}


def _convert(ov, module: torch.nn.Module, channels: int, size: int):
    """``openvino.convert_model`` on the module (TorchScript tracing), batch dynamic."""
    example = torch.zeros(2, channels, size, size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        return ov.convert_model(module, example_input=example, input=[ov.PartialShape([-1, channels, size, size])])


def _cached(folder: Path, description: dict) -> bool:
    """True when ``folder`` holds an IR converted from exactly ``description``."""
    try:
        return (folder / "model.bin").is_file() and json.loads((folder / "description.json").read_text()) == description
    except (OSError, ValueError):
        return False


def _save(ov, model, folder: Path, description: dict) -> bool:
    """Save the IR and its description in ``folder`` through a temporary folder renamed into place (another
    process never sees half a model); False (with a warning) when the cache cannot be written."""
    log.info("converted %s to OpenVINO; cached in %s", description["backbone"], folder)
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=False)  # fp32 weights: fp32 stays exact
        (tmp / "description.json").write_text(json.dumps(description, indent=1, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # stale or damaged
        try:
            os.replace(tmp, folder)
        except OSError:  # another process put its copy in place first
            shutil.rmtree(tmp, ignore_errors=True)
        return _cached(folder, description)
    except (OSError, RuntimeError) as error:
        warnings.warn(f"could not write the OpenVINO model cache in {folder.parent} ({error}); the model will be "
                      "converted again next time", stacklevel=2)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return False
