"""The misclassified test images of a run, as thumbnails with the model's score and a Grad-CAM overlay.

Rows come from ``predictions.csv``; when the folder holds a saved linear or fine-tuned model (``model/``) it
is loaded once and each image is shown as the network sees it (its resize and crop), with the predicted
class's raw score and softmax probability and a Grad-CAM map (Selvaraju et al. 2017, "Grad-CAM: Visual
Explanations from Deep Networks") of the predicted class over it, through :mod:`transferlab.explain`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TransferlabError

LIMIT = 24  # misclassified images shown (Grad-CAM costs one backward pass each)
THUMB = 112  # pixels: thumbnails of runs without a model
_GRADCAM_KINDS = ("linear", "finetuned")


@dataclass
class Misclassified:
    path: str
    true: str
    predicted: str
    image_png: bytes | None = None  # what the network saw, or the file's thumbnail
    overlay_png: bytes | None = None  # Grad-CAM of the predicted class over it
    score: float | None = None  # raw score of the predicted class
    probability: float | None = None  # its softmax probability
    note: str = ""  # why a part is missing


def read_predictions(folder: Path) -> list[dict[str, str]]:
    """The rows of ``predictions.csv`` (paths with their exact bytes, as the CSV writes them)."""
    path = Path(folder) / "predictions.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        if not {"path", "true", "predicted"} <= set(reader.fieldnames or ()):
            return []  # another table of that name (predict-imagenet's top-k rows)
        return list(reader)


def has_predictions(folder: Path) -> bool:
    """Whether ``folder`` holds the test split's ``predictions.csv`` (path, true and predicted class)."""
    path = Path(folder) / "predictions.csv"
    if not path.is_file():
        return False
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return {"path", "true", "predicted"} <= set(csv.DictReader(handle).fieldnames or ())


def _spread(rows: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """Up to ``limit`` rows taken in turn from each true class (not the first class's errors only)."""
    by_class: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_class.setdefault(row.get("true", ""), []).append(row)
    picked: list[dict[str, str]] = []
    queues = list(by_class.values())
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def misclassified(folder: Path, limit: int = LIMIT, cwd: str | None = None, device: str | None = None
                  ) -> tuple[list[Misclassified], int]:
    """Up to ``limit`` misclassified rows of ``folder`` with their pictures, and how many there are in all.

    ``cwd`` is the folder the run started in: relative image paths in ``predictions.csv`` meant that folder.
    ``device``: the run's resolved device; a CUDA device is used when it is still there, else the CPU.
    """
    folder = Path(folder)
    wrong = [r for r in read_predictions(folder) if r.get("true") != r.get("predicted")]
    items = [Misclassified(r.get("path", ""), r.get("true", ""), r.get("predicted", ""))
             for r in _spread(wrong, limit)]
    if not items:
        return items, len(wrong)
    base = Path(cwd) if cwd and Path(cwd).is_dir() else Path.cwd()
    files = [_resolve(base, item.path) for item in items]
    try:
        note = _with_model(folder, items, files, device)
    except Exception as exc:  # noqa: BLE001 - a model that cannot explain still leaves the thumbnails
        note = f"the saved model could not score these images ({type(exc).__name__}: {' '.join(str(exc).split())})"
        for item in items:
            item.image_png = item.overlay_png = item.score = item.probability = None
            item.note = ""
    for item, file in zip(items, files):
        if item.image_png is None:
            item.image_png = _thumbnail(file)
            item.note = item.note or note
    return items, len(wrong)


def _resolve(base: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


def _with_model(folder: Path, items: list[Misclassified], files: list[Path], device: str | None = None) -> str:
    """Fill scores, crops and Grad-CAM overlays from the saved model; return why not when it cannot."""
    model_json = folder / "model" / "model.json"
    if not model_json.is_file():
        return "no saved model in this folder: no score or Grad-CAM"
    try:
        kind = json.loads(model_json.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return "model/model.json cannot be read: no score or Grad-CAM"
    if kind not in _GRADCAM_KINDS:
        return f"a {kind} model: no Grad-CAM"
    present = [i for i, f in enumerate(files) if f.is_file()]
    if not present:
        return "the images are no longer where predictions.csv says"
    import torch

    from ..explain.figures import overlay
    from ..explain.model import ExplainModel

    use_cuda = str(device or "").startswith("cuda") and torch.cuda.is_available()
    net = ExplainModel.from_saved_model(folder / "model", device=str(device) if use_cuda else "cpu")
    cams = _gradcams(net, folder)
    step = LIMIT if net.preprocessing.crop_size <= 64 else 8  # memory of the backward pass at 224 px
    for start in range(0, len(present), step):
        chunk = present[start:start + step]
        try:
            pixels = net.load_pixels([files[i] for i in chunk])
        except (TransferlabError, OSError) as exc:
            for i in chunk:
                items[i].note = f"cannot be read: {exc}"
            continue
        maps, layer = None, None
        for cam in cams:
            try:
                exp = cam.attribute(pixels)
            except (TransferlabError, RuntimeError):  # the layer is not computed, or has no usable map
                continue
            maps, layer, scores, probs, predicted = exp.maps, cam.layer, exp.scores, exp.probs, exp.predicted
            break
        if maps is None:
            with torch.no_grad():
                logits = net.pixel_module(pixels)
            predicted = logits.argmax(1)
            scores = logits.gather(1, predicted[:, None])[:, 0]
            probs = logits.softmax(1).gather(1, predicted[:, None])[:, 0]
        for j, i in enumerate(chunk):
            item = items[i]
            item.image_png = _png(pixels[j].permute(1, 2, 0).float().cpu().numpy())
            item.score, item.probability = float(scores[j]), float(probs[j])
            if net.classes[int(predicted[j])] != item.predicted:
                item.note = f"the saved model now predicts {net.classes[int(predicted[j])]}"
            if maps is not None:
                item.overlay_png = _png(overlay(pixels[j], maps[j]))
                item.note = item.note or f"Grad-CAM at {layer}"
            else:
                item.note = item.note or "no layer with a spatial map before the model's features: no Grad-CAM"
    return "the image file is missing"


def _gradcams(net, folder: Path) -> list:
    """Grad-CAM at the backbone's default layer, then at the probe's own layer (a linear model stops there)."""
    from ..explain.gradcam import GradCAM

    layers = [net.gradcam_layer]
    try:
        layers.append(json.loads((folder / "metrics.json").read_text()).get("layer"))
    except (OSError, ValueError, AttributeError):
        pass
    cams = []
    for layer in dict.fromkeys(layer for layer in layers if layer):
        try:
            cams.append(GradCAM(net, layer))
        except TransferlabError:
            continue
    return cams


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    image = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    return _encode(image)


def _thumbnail(path: Path) -> bytes | None:
    """A small PNG of an image file (decoded robustly), or None when it cannot be read."""
    from ..data.decode import load_rgb

    try:
        image = load_rgb(os.fspath(path))
    except (TransferlabError, OSError, ValueError):
        return None
    image.thumbnail((THUMB, THUMB))
    return _encode(image)


def _encode(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
