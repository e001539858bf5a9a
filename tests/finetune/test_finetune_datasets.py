"""torchvision datasets of the seeds: the real loader code, offline error, folders."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from ft_helpers import FAST

from transferlab.errors import DataError
from transferlab.finetune import finetune, folder_data, torchvision_data


def write_fake_mnist(root, n_train=40, n_test=20):
    """Tiny MNIST files in torchvision's raw format (idx), so the real MNIST loader reads them offline."""
    from transferlab.data import digits_arrays

    images, labels = digits_arrays(size=28)
    labels = np.asarray(labels)
    per_class = [np.flatnonzero(labels == d)[: (n_train + n_test) // 10] for d in range(10)]
    order = np.array([idx[i] for i in range((n_train + n_test) // 10) for idx in per_class])  # class-balanced
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, idx in (("train", order[:n_train]), ("t10k", order[n_train:])):
        imgs, labs = images[idx].astype(np.uint8), labels[idx].astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, len(imgs), 28, 28) + imgs.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(labs)) + labs.tobytes())
    return root


def test_mnist_through_torchvision_loader(tmp_path):
    root = write_fake_mnist(tmp_path / "tv")
    data = torchvision_data("mnist", root)
    assert data.classes[0] == "0 - zero" and len(data.train) == 40 and len(data.test) == 20
    ref, label = data.train[3]
    img = data.load(ref)
    assert img.mode == "RGB" and img.size == (28, 28) and data.describe(ref) == "mnist/train/3"
    metrics = finetune(dataset="mnist", data_root=root, **{**FAST, "test_fraction": None}, epochs=1, augment="none",
                       freeze="none", out=tmp_path / "run")
    assert metrics["n_test"] == 20 and len(metrics["classes"]) == 10


def test_offline_download_fails_with_a_clear_message(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvu, "download_url", offline)  # the same failure as this machine's real offline run
    with pytest.raises(DataError, match=r"dataset cifar10 is not in .* could not be downloaded .*--data-root"):
        torchvision_data("cifar10", tmp_path / "empty")
    with pytest.raises(DataError, match="unknown --dataset 'flowers'.*Did you mean: flowers102"):
        torchvision_data("flowers", tmp_path)


def test_folder_data_matches_the_run_split(tiny_dir):
    from transferlab.data import load_split

    data = folder_data(tiny_dir, test_fraction=0.25, seed=0)
    split = load_split(tiny_dir, test_fraction=0.25, seed=0)
    assert [r for r, _ in data.test] == [s.path for s in split.test]
    assert [lab for _, lab in data.train] == [s.label for s in split.train]


def test_flowers102_keeps_its_own_train_val_test_splits(tmp_path, monkeypatch):
    """torchvision's real Flowers102 loader on a folder laid out as it expects (only the md5 check is patched):
    train trains, val is the validation set (nothing carved from train), test is evaluated once."""
    import json

    import torchvision.datasets as tvd
    from tests_helpers import write_fake_flowers102

    root = write_fake_flowers102(tmp_path / "tv", per_split=(3, 2, 2))
    monkeypatch.setattr(tvd.Flowers102, "_check_integrity", lambda self: True)
    # the folder holds 3 of the 102 classes; a 102-row confusion matrix figure alone would take 15 s here
    monkeypatch.setattr(tvd.Flowers102, "classes", tvd.Flowers102.classes[:3])
    data = torchvision_data("flowers102", root, download=False)
    assert data.classes == ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
    assert (len(data.train), len(data.val), len(data.test)) == (9, 6, 6)
    assert [lab for _, lab in data.train] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.describe(data.val[0][0]) == "flowers102/val/0" and data.load(data.test[5][0]).size == (48, 32)
    metrics = finetune(dataset="flowers102", data_root=root, **{**FAST, "test_fraction": None}, epochs=2,
                       augment="none", freeze="none", out=tmp_path / "run", patience=None)
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (9, 6, 6)
    coverage = json.loads((tmp_path / "run" / "data_coverage.json").read_text())
    assert coverage["n_train"] == 9 and coverage["covers_all"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["validation"] == "the dataset's own split" and config["data"]["n_val"] == 6


def test_flowers102_offline_without_files_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(DataError, match=r"dataset flowers102 is not in .* could not be downloaded .*--data-root"):
        torchvision_data("flowers102", tmp_path / "empty")
