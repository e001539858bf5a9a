"""The saved-model folder: ``model.json`` (what it is) + ``tensors.safetensors`` (the numbers).

Loading never executes code: JSON and safetensors only, no pickle. ``model.json`` carries a format
marker, a version and a ``kind`` (``linear`` for a feature-extraction + linear classifier model,
``finetuned`` for a network with a new head) so each loader can refuse what it does not understand.
The backbone's weights are stored only when they are not the library's own (``imagenet``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .._utils import atomic_save, write_json
from ..errors import ModelFileError

FORMAT = "transferlab-model"
FORMAT_VERSION = 1
META_FILE, TENSORS_FILE = "model.json", "tensors.safetensors"


def write_model_folder(folder: Path | str, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write a model folder; ``meta`` must hold ``kind``; tensor names are free-form."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_save(folder / TENSORS_FILE, lambda tmp: save_file(clean, tmp))
    write_json(folder / META_FILE, {"format": FORMAT, "format_version": FORMAT_VERSION, **meta})
    return folder


def read_model_folder(folder: Path | str, kind: str | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and validate a model folder (no code is executed); check ``kind`` when given."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path, tensor_path = folder / META_FILE, folder / TENSORS_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise ModelFileError(f"{folder} is not a transferlab model: expected a folder with {META_FILE} and "
                             f"{TENSORS_FILE} (the OUT/model folder written by `transferlab run` or `finetune`)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_path} is not valid JSON ({exc}); the model folder is damaged") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{meta_path} is not a transferlab model description (format marker missing)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{folder} has model format version {meta.get('format_version')}; this transferlab "
                             f"reads version {FORMAT_VERSION}")
    if kind is not None and meta.get("kind") != kind:
        raise ModelFileError(f"{folder} holds a {meta.get('kind')!r} model; expected {kind!r}")
    try:
        tensors = load_file(str(tensor_path))
    except Exception as exc:  # safetensors raises its own error classes for damaged files
        raise ModelFileError(f"{tensor_path} cannot be read ({exc.__class__.__name__}: {exc}); "
                             "the model folder is damaged") from exc
    return meta, tensors
