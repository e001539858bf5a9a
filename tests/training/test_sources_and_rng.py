"""The dataset layer (one root honouring TRANSFERLAB_CACHE, skippable items) and builders without global effects."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from transferlab.data import ImagePathDataset
from transferlab.data.sources import SkippableItems, TensorItems, as_items, dataset_root, describe_item, digit_items


def test_one_dataset_root_honours_transferlab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    assert dataset_root() == tmp_path / "cache" / "datasets"
    assert dataset_root(tmp_path / "mine") == tmp_path / "mine"
    from transferlab.adapt.data import default_data_root as adapt_root
    from transferlab.finetune.datasets import default_data_root as finetune_root
    from transferlab.generate.datasets import default_root as gan_root

    assert adapt_root() == finetune_root() == gan_root() == tmp_path / "cache" / "datasets"
    monkeypatch.delenv("TRANSFERLAB_CACHE")
    assert dataset_root().parts[-2:] == ("transferlab", "datasets")


def test_items_are_skippable_for_folders_torchvision_style_sets_and_digits(tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    bad.write_bytes(good.read_bytes()[:30])  # truncated
    folder = ImagePathDataset([good, bad], [0, 1], transform=lambda im: torch.zeros(3))
    assert as_items(folder) is folder
    assert folder[0][1:] == (0, 0) and folder[1][0] is None and "bad.png" in folder[1][1]
    assert describe_item(Subset(folder, [1]), 0) == str(bad)

    class Pairs(Dataset):  # torchvision's convention: (image, target), raising on a broken file
        def __len__(self):
            return 2

        def __getitem__(self, i):
            if i == 1:
                raise OSError("image file is truncated")
            return torch.ones(2), 7

    items = as_items(Pairs())
    assert isinstance(items, SkippableItems) and items[0][1:] == (7, 0)
    x, reason, index = items[1]
    assert x is None and index == 1 and "Pairs[1]: OSError: image file is truncated" in reason
    digits = digit_items(32)
    assert isinstance(digits, TensorItems) and len(digits) == 1797 and digits[0][0].shape == (1, 32, 32)
    assert float(digits.x.min()) == -1.0 and digits[5][2] == 5


def test_builders_leave_the_callers_random_state_unchanged():
    from transferlab.adapt import build_dann
    from transferlab.finetune import FinetuneConfig
    from transferlab.finetune.trainer import build_network

    torch.manual_seed(21)
    before = torch.get_rng_state()
    a, _, _ = build_dann("ganin", 10, seed=4)
    b, _, _ = build_dann("digits_cnn", 10, seed=4, weights="none")
    bb, _ = build_network(FinetuneConfig.from_options(backbone="digits_cnn", weights="none"), 3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(22)
    a2, _, _ = build_dann("ganin", 10, seed=4)
    bb2, _ = build_network(FinetuneConfig.from_options(backbone="digits_cnn", weights="none"), 3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), a2.state_dict().values()))
    assert all(torch.equal(x, y) for x, y in zip(bb.model.state_dict().values(), bb2.model.state_dict().values()))
