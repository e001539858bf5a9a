"""``data inspect --dataset``: torchvision's datasets summarised as ``finetune --dataset`` loads them."""

from __future__ import annotations

import json

import pytest
from tests_helpers import run_main, write_fake_flowers102

from transferlab.errors import DataError
from transferlab.inspection.dataset_summary import summarize_torchvision


@pytest.fixture
def flowers(tmp_path, monkeypatch):
    """torchvision's real Flowers102 loader on a generated flowers-102 folder (only the md5 check patched)."""
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd.Flowers102, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvd.Flowers102, "classes", tvd.Flowers102.classes[:3])
    return write_fake_flowers102(tmp_path / "tv", per_split=(2, 1, 3))


def test_flowers102_summary_keeps_its_three_splits(flowers):
    summary = summarize_torchvision("flowers102", flowers, download=False)
    assert summary.splits == ["train", "val", "test"] and summary.layout == "torchvision flowers102"
    assert summary.counts["pink primrose"] == {"train": 2, "val": 1, "test": 3}
    assert summary.rows_classes()[-1] == {"class": "total", "train": 6, "val": 3, "test": 9, "total": 18}
    assert summary.rows_resolutions() == [{"width": 32, "height": 32, "images": 6},
                                          {"width": 40, "height": 32, "images": 6},
                                          {"width": 48, "height": 32, "images": 6}]
    assert dict(summary.modes) == {"RGB": 18}
    assert summary.images[0].path.name == "image_00001.jpg"
    assert summary.load(summary.images[-1]).size == (48, 32)


def test_data_inspect_cli_on_a_torchvision_dataset(flowers, tmp_path, capsys):
    out = tmp_path / "inspect"
    code, stdout, _ = run_main(["data", "inspect", "--dataset", "flowers102", "--data-root", str(flowers),
                                "--out", str(out)], capsys)
    assert code == 0 and "18 images, 3 classes, 3 distinct resolutions" in stdout
    saved = json.loads((out / "summary.json").read_text())
    assert saved["dataset"] == "flowers102" and saved["splits"] == ["train", "val", "test"]
    assert (out / "samples.png").is_file() and (out / "resolutions.png").is_file()
    code, _, err = run_main(["data", "inspect", "--out", str(tmp_path / "none")], capsys)
    assert code == 2 and "give either an image folder DATA or --dataset" in err


def test_missing_torchvision_dataset_offline_is_one_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(DataError, match="dataset cifar10 is not in .* could not be downloaded"):
        summarize_torchvision("cifar10", tmp_path / "empty")
