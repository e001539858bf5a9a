"""The ``dann`` saved-model kind: a domain-adapted network (``transferlab adapt``) that predicts classes.

The folder (written by :func:`transferlab.adapt.train.train_adaptation`) holds the whole :class:`DANN` state
dict and what :func:`build_dann` needs to rebuild the architecture (backbone, layer, input size, batch norm,
method). Prediction uses the label head only (features -> label head); the domain head and the gradient
reversal layer (Ganin & Lempitsky 2015) are kept in the file but play no part at inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from ..backbones import Preprocessing
from ..classify.model_file import read_model_folder, write_model_folder
from ..classify.saved import check_tensors
from ..errors import ConfigError, ModelFileError
from .models import DANN, GANIN, build_dann

KIND = "dann"


class _LabelScores(nn.Module):
    """Normalised images -> class logits of a DANN (its label branch)."""

    def __init__(self, dann: DANN) -> None:
        super().__init__()
        self.dann = dann

    def forward(self, x):
        return self.dann.label_head(self.dann.features(x))


class DannModel:
    """A trained DANN (or one of its baselines) as a classifier; the saved-model protocol's ``dann`` kind."""

    kind = KIND

    def __init__(self, dann: DANN, meta: dict[str, Any], preprocessing: Preprocessing) -> None:
        self.dann, self.meta = dann.eval(), meta
        self.classes: list[str] = list(meta["classes"])
        self.preprocessing = preprocessing
        self.backbone_name: str = meta["backbone"]

    @classmethod
    def load(cls, folder: Path | str) -> "DannModel":
        meta, tensors = read_model_folder(folder, kind=KIND)
        heads = sorted((k.removesuffix(".weight") for k in tensors  # the last Linear of the label head
                        if k.startswith("label_head.") and k.endswith(".weight") and tensors[k].ndim == 2),
                       key=lambda k: [int(p) if p.isdigit() else 0 for p in k.split(".")[1:]])
        if not isinstance(meta.get("classes"), list):
            raise ModelFileError(f"{folder}/model.json lists no classes; re-create it with `transferlab adapt`")
        check_tensors(folder, tensors, len(meta["classes"]), head=heads[-1] if heads else None,
                      fix="re-create it with `transferlab adapt`")
        try:
            dann, rebuilt_preprocessing, _ = build_dann(
                meta["backbone"], len(meta["classes"]), weights="none", layer=meta.get("layer"),
                input_size=int(meta.get("input_size", 28)), batch_norm=bool(meta.get("batch_norm", False)),
                reverse=meta.get("method") != "dann-no-grl")
            dann.load_state_dict(tensors)
        except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as exc:
            raise ModelFileError(f"{folder} is not a DANN this transferlab can rebuild ({exc.__class__.__name__}: "
                                 f"{exc}); re-create it with `transferlab adapt`") from exc
        preprocessing = (Preprocessing.from_dict(meta["preprocessing"]) if "preprocessing" in meta
                         else rebuilt_preprocessing)
        return cls(dann, meta, preprocessing)

    def save(self, folder: Path | str) -> Path:
        meta = {k: v for k, v in self.meta.items() if k not in ("format", "format_version")}
        meta.update(kind=KIND, preprocessing=self.preprocessing.as_dict())
        return write_model_folder(folder, meta, dict(self.dann.state_dict()))

    def as_torch_module(self) -> nn.Module:
        """Normalised images -> class logits (the label branch), eval mode."""
        return _LabelScores(self.dann).eval()

    def layer_module(self, dotted_path: str) -> nn.Module:
        """A module of the feature extractor: a backbone module path (``layer4``) or, for the paper's CNN,
        one of its own (``features.3``)."""
        from ..classify.saved import submodule

        root = self.dann.features if self.backbone_name == GANIN else getattr(self.dann.features, "taps", None)
        return submodule(root, dotted_path, f"the DANN's {self.backbone_name} features (up to its layer)")

    def predict_scores(self, paths: Sequence[Path | str], batch_size: int | None = None, device: str = "auto",
                       cache_dir: Path | str | None = None, use_cache: bool = True
                       ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
        """Softmax probabilities of the label head (``cache_dir``/``use_cache``: accepted, unused)."""
        from ..classify.saved import score_images

        return score_images(self.as_torch_module(), self.preprocessing, paths, len(self.classes), batch_size, device)
