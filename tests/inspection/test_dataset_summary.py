"""Dataset summary on generated folders with odd files (empty, text, grayscale, RGBA, 16-bit, truncated)."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from transferlab.data import load_split
from transferlab.errors import DataError
from transferlab.inspection.dataset_summary import plot_resolutions, plot_samples, summarize_dataset

from inspection_helpers import make_odd_folder

EXPECTED_SKIPPED = {
    "README.txt": "not inside a class folder",
    "cat/empty.jpg": "empty file (0 bytes)",
    "cat/trunc.png": "corrupt or truncated image",
    "dog/fake.jpg": "not a readable image (UnidentifiedImageError)",
    "dog/notes.txt": "not an image file (suffix '.txt')",
}


@pytest.fixture
def odd(tmp_path):
    return make_odd_folder(tmp_path / "odd")


def test_odd_files_are_reported(odd):
    summary = summarize_dataset(odd)
    assert summary.classes == ["cat", "dog"] and summary.splits == ["images"]
    assert summary.counts == {"cat": {"images": 4}, "dog": {"images": 5}}
    assert summary.rows_classes()[-1] == {"class": "total", "images": 9}
    assert dict(summary.modes) == {"RGB": 6, "L": 1, "RGBA": 1, "I;16": 1}
    assert summary.rows_resolutions() == [{"width": 48, "height": 40, "images": 6},
                                          {"width": 32, "height": 32, "images": 2},
                                          {"width": 20, "height": 30, "images": 1}]
    skipped = {row["file"]: row["reason"] for row in summary.rows_skipped()}
    assert set(skipped) == set(EXPECTED_SKIPPED)
    for name, reason in EXPECTED_SKIPPED.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
    totals = summary.totals()
    assert (totals["images"], totals["classes"], totals["distinct_resolutions"], totals["skipped"]) == (9, 2, 3, 5)
    modes = {row["mode"]: row["note"] for row in summary.rows_modes()}
    assert modes["I;16"].startswith("16-bit") and modes["L"].startswith("grayscale")


def test_header_only_misses_the_truncated_file(odd):
    summary = summarize_dataset(odd, decode=False)
    assert summary.counts["cat"] == {"images": 5}
    assert "cat/trunc.png" not in {row["file"] for row in summary.rows_skipped()}


def test_split_counts_match_load_split(tmp_path):
    root = tmp_path / "clean"
    rng = np.random.default_rng(1)
    for name, n in (("a", 5), ("b", 7)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16 + i, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    summary = summarize_dataset(root, train_per_class=3, seed=4)
    split = load_split(root, train_per_class=3, seed=4)
    assert summary.splits == ["train", "test"]
    assert summary.counts == split.counts() == {"a": {"train": 3, "test": 2}, "b": {"train": 3, "test": 4}}
    assert summary.rows_classes()[-1] == {"class": "total", "train": 6, "test": 6, "total": 12}
    assert len(summary.resolutions) == 7
    with pytest.raises(DataError, match="leaves none for testing"):
        summarize_dataset(root, train_per_class=5)


def test_train_test_layout(tmp_path):
    root = tmp_path / "tt"
    for split, n in (("train", 3), ("test", 2)):
        for name in ("x", "y"):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (10, 12), (i * 40, 0, 0)).save(root / split / name / f"{i}.jpg")
    (root / "val" / "x").mkdir(parents=True)
    summary = summarize_dataset(root)
    assert summary.layout == "train/test" and summary.splits == ["train", "test"]
    assert summary.counts == {"x": {"train": 3, "test": 2}, "y": {"train": 3, "test": 2}}
    assert "not used by training: val" in summary.split_note
    assert summary.rows_resolutions() == [{"width": 10, "height": 12, "images": 10}]


def test_figures(odd, tmp_path):
    summary = summarize_dataset(odd)
    assert plot_resolutions(summary, tmp_path / "r.png").stat().st_size > 5_000
    assert plot_samples(summary, tmp_path / "s.png", per_class=3, max_classes=1).stat().st_size > 5_000


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist or is not a folder"):
        summarize_dataset(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="no class folders"):
        summarize_dataset(tmp_path / "flat")
