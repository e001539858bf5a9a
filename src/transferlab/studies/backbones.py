"""``transferlab study backbones``: the same protocol over several networks (report 001, section 1.6.5).

Each backbone is cut at its own natural feature layer (``default_layer``: relu7 for VGG/AlexNet,
pre-logits elsewhere) and fed with its own weights' preprocessing; the SVM and the CV protocol are
those of ``transferlab run``. One model is held in memory at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backbones import get_spec
from ..classify import LinearOptions
from ..errors import ConfigError
from ..pipeline import ExtractionOptions
from .base import ProbeStudy, best_by_cv
from .figures import plot_bars
from .probe import drop_private, effective_pooling, extraction_metrics, probe_metrics
from .runner import Condition

DEFAULT_BACKBONES = ("alexnet", "vgg16", "vgg19", "resnet50", "resnet152", "inception_v3")


class BackbonesStudy(ProbeStudy):
    name = "backbones"

    def __init__(self, data: Path | str, extraction: ExtractionOptions, linear: LinearOptions | None = None,
                 backbones: list[str] | None = None, cv: bool = True) -> None:
        super().__init__(data, extraction, linear, cv)
        self.backbones = list(backbones or DEFAULT_BACKBONES)
        if not self.backbones:
            raise ConfigError("--backbones is empty; give a comma-separated list such as alexnet,vgg16,resnet50")
        for name in self.backbones:
            get_spec(name)  # an unknown name fails now, with the registry's suggestions

    def study_config(self) -> dict[str, Any]:
        return {"backbones": self.backbones}

    def conditions(self) -> list[Condition]:
        return [Condition(name, {"backbone": name, "layer": get_spec(name).default_layer}) for name in self.backbones]

    def evaluate(self, condition: Condition) -> dict[str, Any]:
        name, layer = condition.key, condition.params["layer"]
        backbone = self.source.backbone(name, keep=False)
        options = self.source.options([layer], effective_pooling(backbone, layer, self.extraction.pooling), name)
        result = self.source.get(options, backbone)
        metrics = probe_metrics(result.features[layer], backbone, layer, options, self.linear, cv=self.cv)
        return {"weights_id": backbone.weights_id, "input_size": backbone.preprocessing.crop_size,
                "pooling": options.pooling, **drop_private(metrics), **extraction_metrics(result)}

    def figures(self, rows: list[dict[str, Any]], out: Path) -> list[Path]:
        return [plot_bars(rows, "backbone", out / "backbones.png", "accuracy per backbone (SVM on its feature layer)",
                          second="feature_size", second_label="feature size")]

    def summary(self, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        best = best_by_cv(rows)
        return {"best_backbone_by_cv": best["backbone"] if best else None,
                "best_test_acc": best["test_acc"] if best else None}
