"""``LinearProbeModel``: a backbone cut at a layer + a fitted linear classifier, saved and loaded safely.

Saved as a model folder (see ``model_file.py``): the backbone is referred to by name and weights
identity (ImageNet weights are not copied; random weights are rebuilt from their seed; weights from a
file are stored in the folder), the classifier and the optional PCA as arrays. Loading rebuilds the
scikit-learn estimators from those arrays, so predictions are the fitted pipeline's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from torch import nn

from ..backbones import Backbone, depends_on, hook_point, load_backbone, make_taps
from ..backbones.spec import Preprocessing
from ..errors import ConfigError, ModelFileError
from ..features import extract_features, l2_normalize, pool
from .model_file import read_model_folder, write_model_folder


@dataclass
class LinearProbeModel:
    """A transfer-learning classifier: features of ``backbone`` at ``layer`` -> linear classifier.

    Follows the saved-model protocol (:class:`transferlab.classify.saved.SavedModel`), kind ``linear``.
    """

    kind: ClassVar[str] = "linear"

    backbone: Backbone
    layer: str
    pooling: str
    l2: bool
    classes: list[str]
    classifier: Any  # fitted LinearSVC / LogisticRegression, or Pipeline(pca, classifier)
    weights: str = "imagenet"  # how the backbone was asked for ("imagenet", "none", a path)
    seed: int = 0
    kind_name: str = "svm"
    _torch: Any = field(default=None, init=False, repr=False, compare=False)

    # -- the shared saved-model interface ---------------------------------------------------------
    @property
    def preprocessing(self) -> Preprocessing:
        return self.backbone.preprocessing

    @property
    def backbone_name(self) -> str:
        return self.backbone.name

    def features(self, paths: Sequence[str | Path], batch_size: int | None = None, device: str = "auto",
                 cache_dir: Path | None = None, use_cache: bool = True, progress: bool = False,
                 engine: str = "torch"):
        return extract_features(paths, self.backbone, [self.layer], pooling=self.pooling, l2=self.l2,
                                batch_size=batch_size, device=device, cache_dir=cache_dir, use_cache=use_cache,
                                progress=progress, workers=0, engine=engine)

    def predict_scores(self, paths: Sequence[str | Path], batch_size: int | None = None, device: str = "auto",
                       cache_dir: Path | None = None, use_cache: bool = True, engine: str = "torch"
                       ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
        """Scores (n_ok, n_classes): probabilities for logreg, decision values for the SVM; ``engine``
        computes the features (``torch`` or ``openvino``, see ``features/engines.py``)."""
        result = self.features(paths, batch_size, device, cache_dir, use_cache, engine=engine)
        X = result.features[self.layer]
        scores = self.scores(X) if len(X) else np.zeros((0, len(self.classes)), np.float32)
        return scores, result.kept.tolist(), result.failures

    def scores(self, X: np.ndarray) -> np.ndarray:
        if hasattr(self.classifier, "predict_proba"):
            return self.classifier.predict_proba(X)
        decision = self.classifier.decision_function(X)
        return np.stack([-decision, decision], axis=1) if decision.ndim == 1 else decision

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices for feature rows ``X`` (names: ``[model.classes[i] for i in ...]``)."""
        return self.classifier.predict(X)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.classifier.decision_function(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (logistic regression only; the SVM has decision values, not probabilities)."""
        if not hasattr(self.classifier, "predict_proba"):
            raise ConfigError("a LinearSVC gives decision values, not probabilities; use decision_function, "
                              "or fit with classifier='logreg'")
        return self.classifier.predict_proba(X)

    def predict_paths(self, paths: Sequence[str | Path], **options) -> list[str | None]:
        """Predicted class name per image path (None for an unreadable image)."""
        scores, kept, _ = self.predict_scores(paths, **options)
        names: list[str | None] = [None] * len(paths)
        for row, index in zip(scores, kept):
            names[index] = self.classes[int(np.argmax(row))]
        return names

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(self.classifier.score(X, y))

    def as_torch_module(self) -> nn.Module:
        """Differentiable ``normalised images -> class scores`` (decision values / logits), eval mode (one
        module per model, so that :meth:`layer_module`'s hook points belong to it)."""
        if self._torch is None:
            self._torch = _ProbeModule(self)
        return self._torch

    def layer_module(self, dotted_path: str) -> nn.Module:
        """The module to hook for a layer (any name ``extract`` takes, function nodes included) in
        :meth:`as_torch_module`; a layer it does not compute gets a module that never runs."""
        return self.as_torch_module().hook_point(dotted_path)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, folder: Path | str) -> Path:
        arrays = _classifier_arrays(self.classifier)
        weights = self.weights
        if not self.backbone.weights_id.startswith(("imagenet:", "none:")):  # a file: its tensors are copied in
            arrays.update({f"backbone.{k}": v for k, v in self.backbone.model.state_dict().items()})
            weights = "folder"
        meta = {"kind": "linear", "backbone": self.backbone.name, "weights": weights,
                "preprocessing_of": self.backbone.preprocessing_source or None,
                "weights_id": self.backbone.weights_id, "seed": self.seed, "layer": self.layer,
                "pooling": self.pooling, "l2": self.l2, "classes": list(self.classes),
                "preprocessing": self.preprocessing.as_dict(), "classifier": self.kind_name,
                "pca": "pca.components" in arrays}
        return write_model_folder(folder, meta, {k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()})

    @classmethod
    def load(cls, folder: Path | str) -> "LinearProbeModel":
        meta, tensors = read_model_folder(folder, kind="linear")
        try:
            arrays = {k: v.numpy() for k, v in tensors.items()}
            classifier = _classifier_from_arrays(meta["classifier"], arrays, meta["pca"])
            mode = meta["preprocessing"]["mode"]
            if meta["weights"] == "folder":
                backbone = load_backbone(meta["backbone"], "none", preprocessing_mode=mode,
                                         num_classes=_head_rows(tensors, meta["backbone"]),
                                         preprocessing_of=meta.get("preprocessing_of"))
                backbone.model.load_state_dict({k.removeprefix("backbone."): v for k, v in tensors.items()
                                                if k.startswith("backbone.")})
                backbone.weights_id = meta["weights_id"]
            else:
                backbone = load_backbone(meta["backbone"], meta["weights"], seed=meta["seed"], preprocessing_mode=mode,
                                         preprocessing_of=meta.get("preprocessing_of"))
            backbone.preprocessing = Preprocessing.from_dict(meta["preprocessing"])  # exactly as trained
            if backbone.weights_id != meta["weights_id"]:
                raise ModelFileError(f"{folder} was trained on weights {meta['weights_id']} but "
                                     f"{backbone.weights_id} were loaded")
            _check_classifier(folder, list(meta["classes"]), arrays, meta["pca"],
                              _feature_width(backbone, meta["layer"], meta["pooling"]))
            return cls(backbone, meta["layer"], meta["pooling"], meta["l2"], list(meta["classes"]), classifier,
                       meta["weights"], meta["seed"], meta["classifier"])
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{folder} is not a valid transferlab linear model ({exc.__class__.__name__}: "
                                 f"{exc}); re-create it with `transferlab run`") from exc


ABSURD = 1e10  # no fitted coefficient, intercept or PCA value comes near this; 1e38 overflows float32 scores


def _feature_width(backbone: Backbone, layer: str, pooling: str) -> int | None:
    """Length of the feature vector ``layer`` + ``pooling`` gives for the model's crop (one zero image through
    the network up to the layer); None when the layer cannot be run this way (the loader then says why)."""
    from ..backbones import get_spec

    try:
        spec = getattr(backbone, "spec", None) or get_spec(backbone.name)
        crop = backbone.preprocessing.crop_size
        device = next(backbone.model.parameters()).device
        taps = make_taps(spec, backbone.model, [layer])
        was_training = backbone.model.training
        with torch.no_grad():
            output = taps.eval()(torch.zeros(1, 3, crop, crop, device=device))[layer]
            width = int(pool(output, pooling).shape[1])
        backbone.model.train(was_training)
        return width
    except Exception:  # an unknown layer or pooling: refused later with its own message
        return None


def _check_classifier(folder, classes: list[str], arrays: dict[str, np.ndarray], with_pca: bool,
                      width: int | None) -> None:
    """Class names against the classifier's rows, its width against the layer's features, finite sane values:
    a tampered or mismatched model is one ModelFileError, not an IndexError or a silent wrong prediction."""
    fix = "re-create the model with `transferlab run`"
    coef, intercept = np.asarray(arrays["coef"]), np.asarray(arrays["intercept"])
    if coef.ndim != 2 or intercept.ndim != 1:
        raise ModelFileError(f"{folder}: classifier coefficients of shape {tuple(coef.shape)} and intercept "
                             f"{tuple(intercept.shape)} are not a linear classifier's; {fix}")
    rows = 1 if len(classes) == 2 else len(classes)
    if len(classes) < 2 or coef.shape[0] != rows or intercept.shape[0] != rows:
        raise ModelFileError(f"{folder}: model.json names {len(classes)} classes but the classifier has "
                             f"{coef.shape[0]} rows of coefficients and {intercept.shape[0]} intercepts (expected "
                             f"{rows} for {len(classes)} classes); {fix}")
    if len(np.asarray(arrays["classes"]).reshape(-1)) != len(classes):
        raise ModelFileError(f"{folder}: model.json names {len(classes)} classes but the classifier was fitted "
                             f"on {len(np.asarray(arrays['classes']).reshape(-1))}; {fix}")
    inputs = width
    if with_pca:
        components = np.asarray(arrays["pca.components"])
        if components.ndim != 2 or np.asarray(arrays["pca.mean"]).shape != (components.shape[1],):
            raise ModelFileError(f"{folder}: the PCA components {tuple(components.shape)} and mean "
                                 f"{tuple(np.asarray(arrays['pca.mean']).shape)} do not fit together; {fix}")
        if width is not None and components.shape[1] != width:
            raise ModelFileError(f"{folder}: the PCA takes {components.shape[1]} features but the layer gives "
                                 f"{width}; {fix}")
        inputs = components.shape[0]
    if inputs is not None and coef.shape[1] != inputs:
        raise ModelFileError(f"{folder}: the classifier takes {coef.shape[1]} features but "
                             f"{'the PCA gives' if with_pca else 'the layer gives'} {inputs}; {fix}")
    for name, value in arrays.items():
        if name == "classes" or name.startswith("backbone."):
            continue
        value = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise ModelFileError(f"{folder}: the classifier array {name!r} holds NaN or infinite values; {fix}")
        if value.size and np.abs(value).max() > ABSURD:
            raise ModelFileError(f"{folder}: the classifier array {name!r} holds values up to "
                                 f"{np.abs(value).max():.3g}, beyond any fitted model (limit {ABSURD:.0e}); {fix}")
    for name, value in arrays.items():
        if name.startswith("backbone.") and np.issubdtype(np.asarray(value).dtype, np.floating) \
                and not np.all(np.isfinite(value)):
            raise ModelFileError(f"{folder}: the backbone tensor {name.removeprefix('backbone.')!r} holds NaN or "
                                 f"infinite values; {fix}")


def _head_rows(tensors: dict[str, torch.Tensor], backbone: str) -> int | None:
    from ..backbones import get_spec

    weight = tensors.get(f"backbone.{get_spec(backbone).head}.weight")
    return int(weight.shape[0]) if weight is not None else None


def _classifier_arrays(classifier) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    head = classifier
    if isinstance(classifier, Pipeline):
        pca, head = classifier.named_steps["pca"], classifier.named_steps["classifier"]
        arrays.update({"pca.components": pca.components_, "pca.mean": pca.mean_,
                       "pca.explained_variance": pca.explained_variance_})
    arrays.update({"coef": head.coef_, "intercept": np.atleast_1d(head.intercept_), "classes": head.classes_})
    return arrays


def _classifier_from_arrays(kind: str, arrays: dict[str, np.ndarray], with_pca: bool):
    head = LinearSVC() if kind == "svm" else LogisticRegression()
    head.coef_, head.intercept_ = arrays["coef"], arrays["intercept"]  # dtypes as fitted
    head.classes_ = arrays["classes"]
    if kind == "svm" and len(head.classes_) == 2 and head.coef_.shape[0] != 1:
        raise ValueError("binary SVM must have one row of coefficients")
    if not with_pca:
        head.n_features_in_ = head.coef_.shape[1]
        return head
    pca = PCA(n_components=arrays["pca.components"].shape[0])
    pca.components_, pca.mean_ = arrays["pca.components"], arrays["pca.mean"]
    pca.explained_variance_ = arrays["pca.explained_variance"]
    pca.n_components_, pca.n_features_in_, pca.whiten = pca.components_.shape[0], pca.components_.shape[1], False
    head.n_features_in_ = head.coef_.shape[1]
    return Pipeline([("pca", pca), ("classifier", head)])


class _ProbeModule(nn.Module):
    """layer output -> pool -> L2 -> PCA -> linear scores, all in torch (for explanations).

    The network runs as the registry's tap service (:func:`~transferlab.backbones.make_taps`) up to the
    feature layer, so every layer ``extract`` accepts works here (function nodes such as
    ``layer3.1.relu_1``, composite cells) and nothing later is computed. :meth:`hook_point` adds a hook
    point for any layer the features are computed from (Grad-CAM, activations).
    """

    def __init__(self, model: LinearProbeModel) -> None:
        super().__init__()
        self._spec = model.backbone.spec
        self.network = model.backbone.model
        self.layer, self.pooling, self.l2 = model.layer, model.pooling, model.l2
        self._markers: dict[str, nn.Module] = {}
        self._hooked: list[str] = []
        self.taps = make_taps(self._spec, self.network, [self.layer], markers=self._markers)
        arrays = _classifier_arrays(model.classifier)
        coef = torch.as_tensor(arrays["coef"], dtype=torch.float32)
        intercept = torch.as_tensor(arrays["intercept"], dtype=torch.float32)
        if coef.shape[0] == 1:  # binary: scores (-d, d) for the two classes
            coef, intercept = torch.cat([-coef, coef]), torch.cat([-intercept, intercept])
        self.register_buffer("coef", coef)
        self.register_buffer("intercept", intercept)
        has_pca = "pca.components" in arrays
        self.register_buffer("pca_components", torch.as_tensor(arrays["pca.components"], dtype=torch.float32)
                             if has_pca else None)
        self.register_buffer("pca_mean", torch.as_tensor(arrays["pca.mean"], dtype=torch.float32) if has_pca else None)
        self.eval()

    def hook_point(self, layer: str) -> nn.Module:
        """The module whose output is ``layer``'s in this module's pass; one that never runs when the
        features are not computed from ``layer`` (a later layer)."""
        if layer not in self._hooked:
            taps = make_taps(self._spec, self.network, [self.layer, *self._hooked, layer], markers=self._markers)
            if not depends_on(taps, self.layer, layer):
                return nn.Identity()
            self.taps, self._hooked = taps.train(self.training), [*self._hooked, layer]
        return hook_point(self.taps, layer)

    def layer_output(self, x: torch.Tensor) -> torch.Tensor:
        return self.taps(x)[self.layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = pool(self.layer_output(x), self.pooling)
        v = l2_normalize(v) if self.l2 else v
        if self.pca_components is not None:
            v = (v - self.pca_mean) @ self.pca_components.T
        return v @ self.coef.T + self.intercept
