"""Pseudo-labelling: self-training on the model's own confident target predictions.

Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method for Deep Neural Networks",
ICML 2013 workshop; in domain adaptation (reports 001 and 002, question 4): a model trained on the
labelled source predicts the unlabelled target; the predictions whose softmax probability reaches a
threshold become labels, and the model is trained further on source + pseudo-labelled target. Each
round relabels the whole target set with the current model (labels may change, images may drop out).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..data import collate_skipping


@dataclass
class PseudoLabels:
    """Target images (indices into the target training set) with their pseudo-labels."""

    indices: torch.Tensor
    labels: torch.Tensor
    threshold: float

    @classmethod
    def empty(cls) -> "PseudoLabels":
        return cls(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 1.0)

    def __len__(self) -> int:
        return int(self.indices.numel())

    def dataset(self, target: Dataset) -> "PseudoLabelled":
        return PseudoLabelled(target, self)

    def accuracy(self, target: Dataset) -> float | None:
        """Fraction of pseudo-labels equal to the true labels (diagnostic; needs a labelled target)."""
        if not len(self):
            return None
        truth = torch.tensor([int(target[int(i)][1]) for i in self.indices])
        if (truth < 0).any():
            return None
        return float((truth == self.labels).float().mean())


class PseudoLabelled(Dataset):
    """The selected target images, each with its pseudo-label instead of its own label."""

    def __init__(self, target: Dataset, pseudo: PseudoLabels) -> None:
        self.target, self.pseudo = target, pseudo

    def __len__(self) -> int:
        return len(self.pseudo)

    def __getitem__(self, index: int):
        x, _, _ = self.target[int(self.pseudo.indices[index])]
        if x is None:
            return None, "unreadable", index
        return x, int(self.pseudo.labels[index]), index


@torch.no_grad()
def select_pseudo_labels(model: torch.nn.Module, target: Dataset, threshold: float, batch_size: int = 128,
                         device: torch.device | str = "cpu", workers: int = 0) -> PseudoLabels:
    """Predict every target image; keep those whose top softmax probability is at least ``threshold``."""
    from torch.utils.data import DataLoader

    model.eval()
    keep_idx, keep_lab = [], []
    for x, _, idx, _ in DataLoader(target, batch_size=batch_size, shuffle=False, num_workers=workers,
                                   collate_fn=collate_skipping):
        if x is None:
            continue
        logits = model(x.to(device))[0]
        prob, label = logits.softmax(1).max(1)
        mask = (prob >= threshold).cpu()
        keep_idx.append(idx[mask])
        keep_lab.append(label.cpu()[mask])
    if not keep_idx:
        return PseudoLabels.empty()
    return PseudoLabels(torch.cat(keep_idx).long(), torch.cat(keep_lab).long(), float(threshold))
