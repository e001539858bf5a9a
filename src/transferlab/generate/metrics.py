"""Metrics that mean something for small GANs trained here.

A small CNN, the *judge*, is trained on the real labelled images (a held-out fifth measures its own
accuracy, reported alongside). Then:

* conditional models: the accuracy with which the judge recognises the requested class in generated
  samples (chance = 1 / classes), overall and per class;
* unconditional models: the distribution of the judge's predicted classes over generated samples: its
  normalised entropy (1 = all classes equally often) and the largest class share (near 1 = mode collapse);
* both: the diversity ratio, the samples' mean distance to their (class) centroid in the judge's
  feature space over the same for real images (near 0 = the generator ignores its noise);
* both: the Fréchet distance between Gaussians fitted to the judge's penultimate features of real and
  generated images (Heusel et al. 2017, arXiv:1706.08500, with this judge in place of Inception).

FID proper (Inception-v3 pool features) is computed by :func:`inception_fid` only when torch-fidelity
or torchmetrics is installed and its Inception weights can be loaded; otherwise it returns ``None``
with a message saying why (these are optional: transferlab does not depend on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..data import collate_skipping
from ..data.sources import as_items
from ..errors import DataError
from ..training import FitConfig, Task, fit, seeded
from .datasets import GanData, labels_of
from .models import generate, is_conditional


class JudgeNet(nn.Module):
    """Two conv blocks and two linear layers for 32x32 images in [-1, 1]; ``features`` = the 128-d layer."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),  # 8x8
            nn.Flatten(), nn.Linear(32 * 8 * 8, 128), nn.ReLU(True),
        )
        self.head = nn.Linear(128, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class Judge:
    """A classifier trained on real data, its held-out accuracy and the real images' feature statistics."""

    net: JudgeNet
    classes: list[str]
    test_accuracy: float
    real_features: np.ndarray
    real_labels: np.ndarray

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Predicted classes and penultimate features of ``images`` (CPU tensors in [-1, 1])."""
        self.net.eval()
        device = next(self.net.parameters()).device
        preds, feats = [], []
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device)
            f = self.net.features(x)
            preds.append(self.net.head(f).argmax(1).cpu())
            feats.append(f.cpu())
        return torch.cat(preds).numpy(), torch.cat(feats).double().numpy()


def _stack(dataset, indices: np.ndarray, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The decodable images among ``indices`` (undecodable ones are skipped) and their labels."""
    loader = DataLoader(Subset(as_items(dataset), indices.tolist()), batch_size=batch_size, shuffle=False,
                        collate_fn=collate_skipping, generator=torch.Generator())  # not the global RNG
    xs, ys = zip(*[(x, y) for x, y, _, _ in loader if x is not None]) if len(indices) else ((), ())
    if not xs:
        raise DataError(f"none of the {len(indices)} images could be decoded; check the data")
    return torch.cat(xs), torch.cat([torch.as_tensor(y) for y in ys]).long()


class JudgeTask(Task):
    """The judge's training as a task on :func:`~transferlab.training.fit`: Adam, cross-entropy, seeded batches."""

    def __init__(self, net: JudgeNet, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.net, self.x, self.y, self.batch_size = net, x, y, batch_size
        self.opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        self.gen = torch.Generator().manual_seed(seed)

    def modules(self):
        return {"judge": self.net}

    def optimizers(self):
        return {"adam": self.opt}

    def start_epoch(self, epoch: int):
        self.net.train()
        return torch.randperm(len(self.x), generator=self.gen).split(self.batch_size)

    def train_step(self, idx, step):
        loss = F.cross_entropy(step.net("judge")(self.x[idx].to(step.device)), self.y[idx].to(step.device))
        step.update(loss, "adam", what="judge loss")
        return {"loss": float(loss.detach()), "n": len(idx)}


def train_judge(data: GanData, *, epochs: int = 4, max_images: int = 10_000, seed: int = 0,
                device: str | torch.device = "cpu", batch_size: int = 64) -> Judge:
    """Train the judge on at most ``max_images`` real images (a seeded 80/20 split measures it)."""
    if len(data.classes) < 2:
        raise DataError(f"{data.name} has a single class: class-based GAN metrics need labelled data "
                        "(class sub-folders, digits, MNIST, CIFAR-10 or a CelebA attribute)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))[:max_images]
    n_test = max(1, len(order) // 5)
    x_train, y_train = _stack(data.dataset, order[n_test:])
    x_test, y_test = _stack(data.dataset, order[:n_test])
    with seeded(seed):
        net = JudgeNet(data.channels, len(data.classes))
    fit(JudgeTask(net, x_train, y_train, batch_size, seed), FitConfig(epochs=epochs, seed=seed), None,
        device=torch.device(device))
    judge = Judge(net.eval(), list(data.classes), 0.0, np.empty((0, 128)), y_test.numpy())
    pred, judge.real_features = judge.predict(x_test)
    judge.test_accuracy = float((pred == y_test.numpy()).mean())
    return judge


def spread(features: np.ndarray, labels: np.ndarray | None = None) -> float:
    """Mean distance of feature rows to their group's centroid (groups = ``labels``; one group if None).

    Generated samples that ignore their noise (collapse, even within a class) have a spread near 0.
    """
    labels = np.zeros(len(features), dtype=int) if labels is None else np.asarray(labels)
    dists = [np.linalg.norm(features[labels == k] - features[labels == k].mean(0), axis=1)
             for k in np.unique(labels) if (labels == k).sum() > 1]
    return float(np.concatenate(dists).mean()) if dists else 0.0


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b``.

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``; the square-root trace is computed from the
    eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)`` (symmetric, so stable, unlike a general ``sqrtm``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise DataError(f"Fréchet distance needs two (n >= 2, d) feature arrays of equal d; got {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * trace_root)


def class_distribution(pred: np.ndarray, classes: int) -> dict[str, Any]:
    """Share of each predicted class, normalised entropy (1 = uniform) and the largest share."""
    counts = np.bincount(pred, minlength=classes).astype(float)
    share = counts / max(1.0, counts.sum())
    nz = share[share > 0]
    entropy = max(0.0, float(-(nz * np.log(nz)).sum() / np.log(classes))) if classes > 1 else 0.0
    return {"predicted_share": [round(float(s), 4) for s in share], "class_entropy": entropy,
            "max_class_share": float(share.max()), "classes_covered": int((counts > 0).sum())}


def evaluate_generator(generator: nn.Module, judge: Judge, *, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Judge-based metrics of ``n`` samples (``n`` rounded up to whole classes for conditional models)."""
    classes = len(judge.classes)
    g = torch.Generator().manual_seed(seed + 104729)
    conditional = is_conditional(generator)
    if conditional:
        per_class = -(-n // classes)
        labels = torch.arange(classes).repeat_interleave(per_class)
        z = torch.randn(len(labels), generator.nz, generator=g)
        images = generate(generator, z, labels)
    else:
        labels = None
        images = generate(generator, torch.randn(n, generator.nz, generator=g))
    pred, feats = judge.predict(images)
    metrics: dict[str, Any] = {"samples": int(images.shape[0]), "judge_test_accuracy": judge.test_accuracy,
                               "chance": 1.0 / classes, **class_distribution(pred, classes),
                               "frechet_judge": frechet_distance(judge.real_features, feats)}
    real_groups = judge.real_labels if conditional else None
    metrics["diversity_ratio"] = spread(feats, None if labels is None else labels.numpy()) / max(
        1e-12, spread(judge.real_features, real_groups))
    if conditional:
        hit = pred == labels.numpy()
        metrics["class_recognition"] = float(hit.mean())
        metrics["per_class_recognition"] = {c: float(hit[labels.numpy() == i].mean())
                                            for i, c in enumerate(judge.classes)}
    return metrics


def inception_fid(real: torch.Tensor, fake: torch.Tensor) -> tuple[float | None, str]:
    """FID with Inception-v3 features via torchmetrics, when installed and its weights load.

    Returns ``(fid, "")`` or ``(None, why)``. Images are ``(N, C, 32, 32)`` in [-1, 1].
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        return None, ("FID (Inception) not computed: it needs torchmetrics[image] (with torch-fidelity) and its "
                      "Inception weights, which are not installed here; the judge's Fréchet distance is reported "
                      "instead. Install them (pip install 'torchmetrics[image]') on a connected machine to get FID")
    try:
        fid = FrechetInceptionDistance(feature=2048, normalize=True)
        to01 = lambda x: ((x.clamp(-1, 1) + 1) / 2).expand(-1, 3, -1, -1)  # noqa: E731
        fid.update(to01(real), real=True)
        fid.update(to01(fake), real=False)
        return float(fid.compute()), ""
    except Exception as exc:  # weights download refused offline, etc.
        return None, f"FID (Inception) not computed: {exc.__class__.__name__}: {exc}"


def real_images(data: GanData, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` seeded real images of ``data`` (for FID)."""
    order = np.random.default_rng(seed).permutation(len(data))[:n]
    return _stack(data.dataset, order)[0]


def score_generator(generator: nn.Module, data: GanData, *, judge: Judge | None = None, n: int = 1000,
                    judge_metrics: bool = True, fid: bool = False, seed: int = 0,
                    judge_epochs: int = 4) -> dict[str, Any]:
    """Metrics of a trained generator on ``data``: the judge's (trained when not given) and FID on request."""
    metrics: dict[str, Any] = {}
    if not judge_metrics:
        pass
    elif len(data.classes) < 2:
        metrics = {"note": f"{data.name} has a single class: the class-based metrics need labelled "
                                           "data"}
    else:
        judge = judge or train_judge(data, seed=seed, epochs=judge_epochs)
        metrics = evaluate_generator(generator, judge, n=n, seed=seed)
    if fid:
        g = torch.Generator().manual_seed(seed + 15485863)
        z = torch.randn(n, generator.nz, generator=g)
        labels = torch.randint(0, getattr(generator, "classes", 1), (n,), generator=g)
        fake = generate(generator, z, labels if is_conditional(generator) else None)
        metrics["fid_inception"], why = inception_fid(real_images(data, n, seed), fake)
        if why:
            metrics["fid_note"] = why
    return metrics


__all__ = ["Judge", "JudgeNet", "JudgeTask", "class_distribution", "evaluate_generator", "frechet_distance", "inception_fid",
           "labels_of", "real_images", "score_generator", "spread", "train_judge"]
