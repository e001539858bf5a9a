"""``ProbeStudy``: the common state of the feature + classifier studies (data, options, feature source)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..classify import LinearOptions
from ..pipeline import ExtractionOptions
from .probe import FeatureSource
from .runner import Study

# Options that change how fast results come, never what they are: left out of the resume fingerprint.
RUNTIME_ONLY = ("progress", "device", "workers", "cache_dir", "use_cache", "batch_size")


class ProbeStudy(Study):
    """A study over one dataset: features from ``extraction``, heads fitted as ``linear`` says."""

    def __init__(self, data: Path | str, extraction: ExtractionOptions, linear: LinearOptions | None = None,
                 cv: bool = True) -> None:
        self.data, self.extraction, self.linear, self.cv = data, extraction, linear or LinearOptions(), cv
        self.seed = extraction.seed
        self.source = FeatureSource(data, extraction)

    def inputs(self):
        return (self.data,)

    def config(self) -> dict[str, Any]:
        extraction = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.extraction).items()
                      if k not in RUNTIME_ONLY}
        linear = {**asdict(self.linear), "c_grid": list(self.linear.c_grid)}
        # the data folder as an absolute path: a resume from another directory, or spelt relative, is the same study
        data = str(Path(self.data).expanduser().resolve())
        return {"study": self.name, "data": data, "extraction": extraction, "linear": linear,
                "cv": self.cv, **self.study_config()}

    def study_config(self) -> dict[str, Any]:
        return {}

    def default_features(self):
        """Features at ``--layer`` (default: the backbone's own feature layer), pooled if spatial."""
        backbone = self.source.backbone()
        layer = self.extraction.layers[0] if self.extraction.layers else backbone.spec.default_layer
        from .probe import effective_pooling

        options = self.source.options([layer], effective_pooling(backbone, layer, self.extraction.pooling))
        return backbone, layer, options, self.source.get(options, backbone)


def best_by_cv(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the highest CV accuracy (on the training split), or None when no row has one
    (``--no-cv``): the test split is never used to choose."""
    scored = [r for r in rows if r.get("cv_acc") is not None]
    return max(scored, key=lambda r: r["cv_acc"]) if scored else None

