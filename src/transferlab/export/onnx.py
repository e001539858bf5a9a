"""A saved linear or fine-tuned model as one ONNX graph, runnable with onnxruntime alone.

The graph's input ``pixels`` is a float32 RGB batch ``(N, 3, crop, crop)`` in [0, 1], already resized and
centre-cropped as the model's preprocessing says (the metadata property ``preprocessing``); its output
``scores`` is what ``transferlab predict`` reports: softmax probabilities for a fine-tuned network and a
logistic-regression probe, decision values for a LinearSVC probe. Normalisation, the cut network, pooling,
L2, PCA and the classifier are all inside the graph; the batch axis is dynamic. ``classes`` (a JSON list)
and ``preprocessing`` (JSON: resize, crop, mean, std, interpolation, mode) are metadata properties.

The exporter is ``torch.onnx.export`` with ``dynamo=False`` (the TorchScript tracer): the linear probe's
network is a torchvision FX ``GraphModule`` (the tap service) and timm's traced modules, which the tracer
records op by op at a fixed opset; on torch 2.14.1 the dynamo exporter also handles them but takes several
times longer (it re-traces with ``torch.export`` and runs onnxscript's optimiser) for the same graph.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

EXPORTABLE_KINDS = ("linear", "finetuned")
OPSET = 17
INPUT, OUTPUT = "pixels", "scores"


@dataclass(frozen=True)
class ExportedScores:
    """What :func:`export_onnx` wrote and how well the file agrees with the torch model."""

    path: Path
    classes: list[str]
    preprocessing: dict
    input_shape: tuple[int, int, int]
    output: str  # "probabilities" or "decision values"
    max_abs_difference: float  # onnxruntime vs torch on a random batch at export time


class _Scores(nn.Module):
    """[0, 1] pixels -> normalise -> the saved model's torch module -> predict's scores."""

    def __init__(self, network: nn.Module, mean, std, output: str, binary_logistic: bool) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.probabilities = output == "probabilities"
        self.binary_logistic = binary_logistic

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        scores = self.network((pixels - self.mean) / self.std)
        if self.binary_logistic:  # the probe's module gives (-d, d); sklearn's probabilities are sigmoid(d)
            scores = scores / 2
        return torch.softmax(scores, dim=1) if self.probabilities else scores


def _classifier_output(model) -> tuple[str, bool]:
    """("probabilities" | "decision values", binary logistic?) as the model's ``predict_scores`` gives them."""
    if model.kind == "finetuned":
        return "probabilities", False
    if hasattr(model.classifier, "predict_proba"):  # LinearProbeModel.scores: predict_proba when it has one
        return "probabilities", len(model.classes) == 2
    return "decision values", False


def exportable_module(model) -> tuple[nn.Module, str]:
    """The module the graph is made of, and what its output is; a kind that is not a classifier is refused."""
    kind = getattr(model, "kind", type(model).__name__)
    if kind not in EXPORTABLE_KINDS:
        raise ConfigError(f"export takes a {' or '.join(EXPORTABLE_KINDS)} model; got a {kind} model; export the "
                          "model folder written by `transferlab run` or `transferlab finetune`")
    output, binary_logistic = _classifier_output(model)
    pre = model.preprocessing
    module = _Scores(model.as_torch_module(), pre.mean, pre.std, output, binary_logistic).eval()
    return module, output


def _check_out(out: Path) -> Path:
    out = Path(out)
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out must be a file path for the .onnx graph; got the folder {out}; pass e.g. "
                          f"--out {out / 'model.onnx'}")
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out must end in .onnx; got {out.name!r}; pass e.g. --out {out.with_suffix('.onnx')}")
    return out


def export_onnx(model, out: Path | str, *, check: bool = True, seed: int = 0, dynamo: bool = False) -> ExportedScores:
    """Write ``model`` (a loaded saved model of kind linear or finetuned) as one ONNX graph at ``out``.

    ``dynamo=True`` uses torch's newer exporter (``torch.export`` + onnxscript) instead of the tracer.
    With ``check`` the written file is run with onnxruntime on a random batch of two images and compared
    with the torch module (to 1e-4): a graph that does not reproduce the model is never left behind.
    """
    import onnx

    out = _check_out(Path(out))
    module, output = exportable_module(model)
    pre = model.preprocessing
    channels, crop = len(pre.mean), int(pre.crop_size)
    x = torch.rand(2, channels, crop, crop, generator=torch.Generator().manual_seed(seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        expected = module(x).numpy()
        warnings.simplefilter("ignore", DeprecationWarning)  # the tracer is deprecated (still there in 2.14)
        if dynamo:
            torch.onnx.export(module, (x,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_shapes={INPUT: {0: torch.export.Dim("batch")}}, dynamo=True,
                              verbose=False, external_data=False)
        else:
            torch.onnx.export(module, (x,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
    graph = onnx.load(str(tmp))
    preprocessing = {"resize": pre.resize_size, "crop": pre.crop_size, "mean": list(pre.mean), "std": list(pre.std),
                     "interpolation": pre.interpolation, "mode": pre.mode, "crop_mode": pre.crop_mode}
    meta = {"classes": json.dumps(list(model.classes)), "preprocessing": json.dumps(preprocessing),
            "output": output, "kind": model.kind, "backbone": model.backbone_name, "producer": "transferlab"}
    for key, value in meta.items():
        graph.metadata_props.add(key=key, value=value)
    graph.doc_string = (f"transferlab {model.kind} model on {model.backbone_name}: {INPUT} float32 (N, {channels}, "
                        f"{crop}, {crop}) in [0, 1] -> {OUTPUT} ({output}, N x {len(model.classes)})")
    onnx.save(graph, str(tmp))
    difference = 0.0
    if check:
        got = run_onnx(tmp, x.numpy())
        difference = float(np.abs(got - expected).max())
        if not difference <= 1e-4:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"the exported graph differs from the torch model by {difference:.3g} (> 1e-4)")
    tmp.replace(out)
    return ExportedScores(out, list(model.classes), preprocessing, (channels, crop, crop), output, difference)


def run_onnx(path: Path | str, pixels: np.ndarray) -> np.ndarray:
    """Scores of an exported graph on a float32 batch (onnxruntime, CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(pixels, dtype=np.float32)})[0]
