"""The fine-tuned model on disk (``OUT/model``) and :class:`FinetunedModel`, which loads and runs it.

The folder is the shared transferlab model format (``model.json`` + ``tensors.safetensors``, no pickle)
with ``kind = "finetuned"``: the backbone name, the identity of the weights it started from, the class
names, the preprocessing and the head path in JSON, and the whole network's state dict as tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._utils import resolve_device
from ..backbones import Preprocessing, get_spec, load_backbone
from ..backbones.loading import load_state_dict_exactly
from ..classify.model_file import read_model_folder, write_model_folder
from ..errors import ConfigError, ModelFileError, did_you_mean
from .head import replace_head

KIND = "finetuned"


def save_finetuned(folder: Path | str, model: nn.Module, *, backbone: str, weights_id: str, classes: Sequence[str],
                   preprocessing: Preprocessing, **extra: Any) -> Path:
    """Write ``model`` (the bare network, not a DDP wrapper) as a ``finetuned`` model folder."""
    spec = get_spec(backbone)
    meta = {"kind": KIND, "backbone": backbone, "weights": weights_id, "num_classes": len(classes),
            "classes": list(classes), "preprocessing": preprocessing.as_dict(), "head": spec.head, **extra}
    return write_model_folder(folder, meta, dict(model.state_dict()))


def rebuild_network(backbone: str, num_classes: int) -> nn.Module:
    """The architecture exactly as the trainer builds it: registry network + new head (random weights).

    It is ``load_backbone(name, weights="none")`` followed by the same :func:`replace_head` as in
    training, so auxiliary parts that ``num_classes`` would also resize (Inception's ``AuxLogits``)
    keep the shapes they had during fine-tuning.
    """
    bb = load_backbone(backbone, weights="none")
    replace_head(bb.model, bb.spec, num_classes)
    return bb.model


class FinetunedModel:
    """A network fine-tuned by ``transferlab finetune``, ready to predict (and to be explained)."""

    def __init__(self, model: nn.Module, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        pre = dict(meta["preprocessing"])
        self.preprocessing = Preprocessing(resize_size=int(pre["resize_size"]), crop_size=int(pre["crop_size"]),
                                           mean=tuple(pre["mean"]), std=tuple(pre["std"]),
                                           interpolation=pre.get("interpolation", "bilinear"),
                                           mode=pre.get("mode", "weights"),
                                           crop_mode=pre.get("crop_mode", "center"))
        self.backbone_name: str = meta["backbone"]
        self.head: str = meta.get("head", get_spec(self.backbone_name).head)

    @classmethod
    def from_folder(cls, folder: Path | str) -> "FinetunedModel":
        meta, tensors = read_model_folder(folder, kind=KIND)
        for key in ("backbone", "classes", "preprocessing", "num_classes"):
            if key not in meta:
                raise ModelFileError(f"{folder}/model.json has no {key!r}; the model folder is damaged")
        if len(meta["classes"]) != int(meta["num_classes"]):
            raise ModelFileError(f"{folder}/model.json lists {len(meta['classes'])} classes but num_classes is "
                                 f"{meta['num_classes']}; the model folder is damaged")
        model = rebuild_network(meta["backbone"], int(meta["num_classes"]))
        try:
            load_state_dict_exactly(model, tensors, Path(folder), meta["backbone"])
        except Exception as exc:
            raise ModelFileError(f"{folder}: the saved tensors do not fit {meta['backbone']} ({exc})") from exc
        return cls(model, meta)

    def as_torch_module(self) -> nn.Module:
        """The network: normalised images (N, 3, crop, crop) -> logits (N, classes), in eval mode."""
        return self.model.eval()

    def layer_module(self, dotted_path: str) -> nn.Module:
        """The sub-module at ``dotted_path`` (e.g. ``layer4``, ``features.29``)."""
        modules = dict(self.model.named_modules())
        if not dotted_path or dotted_path not in modules:
            names = [n for n in modules if n]
            raise ConfigError(f"{self.backbone_name} has no module {dotted_path!r}.{did_you_mean(dotted_path, names)} "
                              f"Modules: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
        return modules[dotted_path]

    @torch.no_grad()
    def predict_scores(self, paths: Sequence[Path | str], batch_size: int | None = None, device: str = "auto",
                       cache_dir: Path | str | None = None, use_cache: bool = True
                       ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
        """Softmax probabilities for the readable images; unreadable ones are reported, not fatal.

        Returns ``(scores (n_ok, n_classes), kept_indices, failures [(path, reason)])``. ``cache_dir`` and
        ``use_cache`` are accepted for the same call as a linear model's and ignored: a fine-tuned
        network runs end to end, there are no cached features.
        """
        from torch.utils.data import DataLoader

        from ..data import ImagePathDataset, collate_skipping
        from ..features.extract import default_batch_size
        from .augment import eval_transform

        dev = resolve_device(device)
        batch_size = default_batch_size(dev) if batch_size is None else batch_size
        model = self.model.to(dev).eval()
        paths = [Path(p) for p in paths]
        loader = DataLoader(ImagePathDataset(paths, transform=eval_transform(self.preprocessing)),
                            batch_size=batch_size, shuffle=False, collate_fn=collate_skipping)
        scores, kept, failures = [], [], []
        for x, _, idx, failed in loader:
            failures.extend((str(paths[i]), reason) for i, reason in failed)
            if x is None:
                continue
            logits = model(x.to(dev))
            scores.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            kept.extend(int(i) for i in idx)
        out = np.concatenate(scores) if scores else np.zeros((0, len(self.classes)), dtype=np.float32)
        return out, kept, failures
