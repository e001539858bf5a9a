"""One saved-model format for every kind of model, and the registry of kinds behind ``load_model``.

A model folder is ``model.json`` (format marker, version, ``kind``, classes, preprocessing, what to
rebuild) + ``tensors.safetensors`` (:mod:`.model_file`; no pickle, no code runs on load). Each kind is a
class that follows :class:`SavedModel`; ``predict``, ``explain --model`` and the library take any kind.

==========  =========================================================  =====================================
kind        class                                                      written by
==========  =========================================================  =====================================
linear      :class:`transferlab.classify.linear_model.LinearProbeModel`  ``transferlab run``
finetuned   :class:`transferlab.finetune.saved.FinetunedModel`           ``transferlab finetune``
dann        :class:`transferlab.adapt.saved.DannModel`                   ``transferlab adapt``
gan         :class:`transferlab.generate.saved.GanModel`                 ``transferlab gan train``
==========  =========================================================  =====================================

The registry names each kind's class as ``"module:Class"`` and imports it on first use, so reading a
folder of one kind never imports the packages of the others (and ``classify`` does not import
``finetune``, which imports ``classify``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..backbones import Preprocessing
from ..errors import ModelFileError
from .model_file import read_model_folder

KINDS: dict[str, str] = {
    "linear": "transferlab.classify.linear_model:LinearProbeModel",
    "finetuned": "transferlab.finetune.saved:FinetunedModel",
    "dann": "transferlab.adapt.saved:DannModel",
    "gan": "transferlab.generate.saved:GanModel",
}


@runtime_checkable
class SavedModel(Protocol):
    """What every saved-model kind provides.

    ``classes`` and ``preprocessing`` are read back from the folder exactly as they were written;
    ``as_torch_module()`` maps normalised images ``(N, 3, crop, crop)`` to class scores ``(N, classes)``,
    differentiable, in eval mode; ``layer_module(path)`` is the submodule at a dotted path of the backbone
    (for hooks: Grad-CAM, activations); ``predict_scores(paths)`` decodes images robustly and returns
    ``(scores (n_ok, classes), kept indices, [(path, reason) of the skipped])``.
    """

    kind: str
    classes: list[str]
    preprocessing: Preprocessing
    backbone_name: str

    def as_torch_module(self) -> nn.Module: ...

    def layer_module(self, dotted_path: str) -> nn.Module: ...

    def predict_scores(self, paths: Sequence[Path | str], batch_size: int | None = None, device: str = "auto",
                       cache_dir: Path | str | None = None, use_cache: bool = True
                       ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]: ...

    def save(self, folder: Path | str) -> Path: ...


def register_kind(kind: str, target: str) -> None:
    """Add a model kind: ``target`` is ``"package.module:Class"`` with a ``load(folder)`` classmethod."""
    if kind in KINDS:
        raise ValueError(f"model kind {kind!r} is already registered")
    KINDS[kind] = target


def load_model(folder: Path | str) -> SavedModel:
    """Load any saved transferlab model folder, whatever its kind."""
    meta, _ = read_model_folder(folder)
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ModelFileError(f"{folder} holds a model of unknown kind {kind!r}; this transferlab reads "
                             f"{', '.join(KINDS)}")
    module, _, name = KINDS[kind].partition(":")
    try:
        return getattr(importlib.import_module(module), name).load(folder)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # a damaged model.json
        raise ModelFileError(f"{folder}/model.json does not describe a {kind} model this transferlab can rebuild "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())}); re-create the model") from None


def check_tensors(folder: Path | str, tensors: dict, n_classes: int, head: str | None, fix: str) -> None:
    """Class names against the head's rows and every floating tensor finite: one ModelFileError otherwise
    (a tampered folder would give an IndexError when the last class wins, or NaN scores, silently)."""
    if n_classes < 2:
        raise ModelFileError(f"{folder}/model.json names {n_classes} class(es); a classifier has at least two; {fix}")
    weight = tensors.get(f"{head}.weight") if head else None
    if weight is not None and weight.ndim >= 1 and int(weight.shape[0]) != n_classes:
        raise ModelFileError(f"{folder}: model.json names {n_classes} classes but the head {head!r} has "
                             f"{int(weight.shape[0])} rows; {fix}")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{folder}: the tensor {name!r} holds NaN or infinite values; {fix}")


def submodule(root: nn.Module | None, dotted_path: str, what: str) -> nn.Module:
    """The module at ``dotted_path`` under ``root``, or a one-line ConfigError listing some valid paths."""
    from ..errors import ConfigError, did_you_mean

    modules = dict(root.named_modules()) if root is not None else {}
    if not dotted_path or dotted_path not in modules:
        names = [n for n in modules if n]
        raise ConfigError(f"{what} has no module {dotted_path!r}.{did_you_mean(dotted_path, names)} Modules: "
                          f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
    return modules[dotted_path]


@torch.no_grad()
def score_images(module: nn.Module, preprocessing: Preprocessing, paths: Sequence[Path | str], n_classes: int,
                 batch_size: int | None = None, device: str = "auto"
                 ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Softmax probabilities of an end-to-end network (normalised images -> logits) on image files.

    Unreadable images are reported, not fatal: returns ``(scores, kept indices, failures)``.
    """
    from torch.utils.data import DataLoader

    from .._utils import resolve_device
    from ..data import ImagePathDataset, collate_skipping, image_transform
    from ..features.extract import default_batch_size

    dev = resolve_device(device)
    batch_size = default_batch_size(dev) if batch_size is None else batch_size
    module = module.to(dev).eval()
    paths = [Path(p) for p in paths]
    loader = DataLoader(ImagePathDataset(paths, transform=image_transform(preprocessing)), batch_size=batch_size,
                        shuffle=False, collate_fn=collate_skipping)
    scores, kept, failures = [], [], []
    for x, _, idx, failed in loader:
        failures.extend((str(paths[i]), reason) for i, reason in failed)
        if x is None:
            continue
        scores.append(torch.softmax(module(x.to(dev)).float(), dim=1).cpu().numpy())
        kept.extend(int(i) for i in idx)
    out = np.concatenate(scores) if scores else np.zeros((0, n_classes), dtype=np.float32)
    return out, kept, failures
