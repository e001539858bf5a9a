"""The fine-tuned model on disk (``OUT/model``) and :class:`FinetunedModel`, which loads and runs it.

The folder is the shared transferlab model format (``model.json`` + ``tensors.safetensors``, no pickle)
with ``kind = "finetuned"``: the backbone name, the identity of the weights it started from, the class
names, the preprocessing and the head path in JSON, and the whole network's state dict as tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from ..backbones import Preprocessing, get_spec, load_backbone
from ..backbones.loading import load_state_dict_exactly
from ..classify.model_file import read_model_folder, write_model_folder
from ..classify.saved import check_tensors
from ..errors import ModelFileError
from .head import replace_head

KIND = "finetuned"


def save_finetuned(folder: Path | str, model: nn.Module, *, backbone: str, weights_id: str, classes: Sequence[str],
                   preprocessing: Preprocessing, **extra: Any) -> Path:
    """Write ``model`` (the bare network, not a DDP wrapper) as a ``finetuned`` model folder."""
    spec = get_spec(backbone)
    meta = {"kind": KIND, "backbone": backbone, "weights": weights_id, "num_classes": len(classes),
            "classes": list(classes), "preprocessing": preprocessing.as_dict(), "head": spec.head, **extra}
    return write_model_folder(folder, meta, dict(model.state_dict()))


def rebuild_network(backbone: str, num_classes: int, grayscale: str = "duplicate") -> nn.Module:
    """The architecture exactly as the trainer builds it: registry network + new head (random weights).

    It is ``load_backbone(name, weights="none")`` followed by the same :func:`replace_head` as in
    training, so auxiliary parts that ``num_classes`` would also resize (Inception's ``AuxLogits``)
    keep the shapes they had during fine-tuning, and the same grayscale surgery (``--grayscale``).
    """
    from ..backbones.grayscale import apply_grayscale

    bb = load_backbone(backbone, weights="none")
    replace_head(bb.model, bb.spec, num_classes)
    apply_grayscale(bb.model, bb.spec, bb.preprocessing, grayscale)
    return bb.model


class Luma(nn.Module):
    """``(N, 3, H, W) -> (N, 1, H, W)``: ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B, PIL's ``convert("L")``).

    The weights sum to 1, so on images normalised with one mean and std for every channel the luma of the
    normalised image is the normalised luma: the input a ``--grayscale`` network was trained on."""

    def forward(self, x):
        if x.shape[1] == 1:
            return x
        weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)


class FinetunedModel:
    """A network fine-tuned by ``transferlab finetune``, ready to predict (and to be explained).

    Follows the saved-model protocol (:class:`transferlab.classify.saved.SavedModel`), kind ``finetuned``.
    """

    kind = KIND

    def __init__(self, model: nn.Module, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.preprocessing = Preprocessing.from_dict(meta["preprocessing"])
        self.backbone_name: str = meta["backbone"]
        self.head: str = meta.get("head", get_spec(self.backbone_name).head)
        self._gray_module: nn.Module | None = None

    @classmethod
    def load(cls, folder: Path | str) -> "FinetunedModel":
        meta, tensors = read_model_folder(folder, kind=KIND)
        for key in ("backbone", "classes", "preprocessing", "num_classes"):
            if key not in meta:
                raise ModelFileError(f"{folder}/model.json has no {key!r}; the model folder is damaged")
        if len(meta["classes"]) != int(meta["num_classes"]):
            raise ModelFileError(f"{folder}/model.json lists {len(meta['classes'])} classes but num_classes is "
                                 f"{meta['num_classes']}; the model folder is damaged")
        check_tensors(folder, tensors, len(meta["classes"]), head=meta.get("head") or get_spec(meta["backbone"]).head,
                      fix="re-create it with `transferlab finetune`")
        model = rebuild_network(meta["backbone"], int(meta["num_classes"]), meta.get("grayscale") or "duplicate")
        try:
            load_state_dict_exactly(model, tensors, Path(folder), meta["backbone"])
        except Exception as exc:
            raise ModelFileError(f"{folder}: the saved tensors do not fit {meta['backbone']} ({exc})") from exc
        return cls(model, meta)


    def save(self, folder: Path | str) -> Path:
        extra = {k: v for k, v in self.meta.items() if k not in
                 ("format", "format_version", "kind", "backbone", "weights", "num_classes", "classes",
                  "preprocessing", "head")}
        return save_finetuned(folder, self.model, backbone=self.backbone_name, weights_id=self.meta.get("weights", ""),
                              classes=self.classes, preprocessing=self.preprocessing, **extra)

    def as_torch_module(self) -> nn.Module:
        """The network: normalised images (N, 3, crop, crop) -> logits (N, classes), in eval mode.

        A model fine-tuned with ``--grayscale sum-filters|learnt`` takes one channel: its module turns the three
        channels into their luma first (:class:`Luma`, PIL's ``convert("L")`` weights), so explanations feed it RGB
        like any other model; ``.model`` is the 1-channel network itself (ONNX export takes it: its graph's input
        has one channel, ``docs/export.md``)."""
        if len(self.preprocessing.mean) == 1:
            if self._gray_module is None:
                self._gray_module = nn.Sequential(Luma(), self.model)
            return self._gray_module.eval()
        return self.model.eval()

    def layer_module(self, dotted_path: str) -> nn.Module:
        """The sub-module at ``dotted_path`` (e.g. ``layer4``, ``features.29``)."""
        from ..classify.saved import submodule

        return submodule(self.model, dotted_path, self.backbone_name)

    def predict_scores(self, paths: Sequence[Path | str], batch_size: int | None = None, device: str = "auto",
                       cache_dir: Path | str | None = None, use_cache: bool = True
                       ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
        """Softmax probabilities for the readable images; unreadable ones are reported, not fatal.

        ``cache_dir`` and ``use_cache`` are accepted for the same call as a linear model's and ignored: a
        fine-tuned network runs end to end, there are no cached features.
        """
        from ..classify.saved import score_images

        return score_images(self.model, self.preprocessing, paths, len(self.classes), batch_size, device)
