"""The bundled-photo patch task: every photograph loads offline, classes and counts, and train/test disjointness."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from transferlab.data import PATCH_CLASSES, load_split, read_patch_records, write_photo_patches, write_whole_photos
from transferlab.data.photos import MIN_SIDE, PATCH_SOURCES, WHOLE_PHOTOS, half_boxes
from transferlab.errors import ConfigError


@pytest.fixture(scope="module")
def demo_patches(tmp_path_factory):
    """The photo demo's own dataset (20 + 20 patches per class, 224 px, seed 0)."""
    return write_photo_patches(tmp_path_factory.mktemp("photos") / "patches")


def _overlap(a: dict, b: dict) -> int:
    """Area shared by two boxes (top, left, bottom, right) in source-photograph pixels."""
    height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    width = min(a["right"], b["right"]) - max(a["left"], b["left"])
    return max(0, height) * max(0, width)


def test_every_photograph_ships_with_the_dependencies_and_decodes_offline():
    for source in PATCH_SOURCES + WHOLE_PHOTOS:
        image = source.array()
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, source.name
        assert min(image.shape[:2]) >= 2 * MIN_SIDE, source.name
        top, bottom, left, right = source.region or (0, image.shape[0], 0, image.shape[1])
        assert 0 <= top < bottom <= image.shape[0] and 0 <= left < right <= image.shape[1], source.name
        assert image.std() > 5, source.name  # a real photograph, not a blank placeholder
    assert len(PATCH_CLASSES) == 10 and len(set(PATCH_CLASSES)) == 10


def test_the_patch_task_has_ten_classes_a_fixed_split_and_the_asked_counts(demo_patches):
    split = load_split(demo_patches)
    assert split.layout == "train/test"
    assert split.classes == sorted(PATCH_CLASSES)
    assert split.counts() == {c: {"train": 20, "test": 20} for c in PATCH_CLASSES}
    with Image.open(split.train[0].path) as image:
        assert image.mode == "RGB" and image.size == (224, 224)
    records = read_patch_records(demo_patches)
    assert len(records) == 400
    assert {r["file"] for r in records} == {str(s.path.relative_to(demo_patches)) for s in split.train + split.test}


def test_train_and_test_patches_come_from_disjoint_halves_and_never_overlap(demo_patches):
    records = read_patch_records(demo_patches)
    by_name = {s.name: s for s in PATCH_SOURCES}
    for name in PATCH_CLASSES:
        source = by_name[name]
        halves = half_boxes(source, source.array().shape[:2])
        train = [r for r in records if r["class"] == name and r["split"] == "train"]
        test = [r for r in records if r["class"] == name and r["split"] == "test"]
        assert {r["half"] for r in train} == {"left"} and {r["half"] for r in test} == {"right"}
        for split_records, half in ((train, "left"), (test, "right")):
            top, bottom, left, right = halves[half]
            for r in split_records:
                assert top <= r["top"] < r["bottom"] <= bottom and left <= r["left"] < r["right"] <= right, r
                assert r["bottom"] - r["top"] == r["right"] - r["left"] >= MIN_SIDE  # square, not tiny
        # no test pixel was ever in a training crop: every train/test pair of boxes is disjoint
        assert max(_overlap(a, b) for a in train for b in test) == 0
        assert max(r["right"] for r in train) <= min(r["left"] for r in test)


def test_no_test_image_is_a_copy_of_a_training_image(demo_patches):
    def digest(path):
        return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()

    split = load_split(demo_patches)
    train = {digest(s.path) for s in split.train}
    test = {digest(s.path) for s in split.test}
    assert len(train) == 200 and len(test) == 200  # no two files of a split are the same either
    assert not train & test
    # (the boxes above are what rules out near-duplicates: a flat patch of the moon's right half can look
    # like one of its left half without sharing a pixel with it)


def test_the_folder_is_reused_when_complete_and_replaced_when_the_parameters_change(tmp_path):
    out = write_photo_patches(tmp_path / "p", classes=["brick", "cat"], train_per_class=3, test_per_class=2, size=64)
    first = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*.png"))
    assert len(first) == 10
    assert sorted((p.name, p.stat().st_mtime_ns) for p in
                  write_photo_patches(out, classes=["brick", "cat"], train_per_class=3, test_per_class=2,
                                      size=64).rglob("*.png")) == first
    write_photo_patches(out, classes=["brick", "cat"], train_per_class=2, test_per_class=2, size=64,
                        train_half="right")
    split = load_split(out)
    assert split.counts() == {"brick": {"train": 2, "test": 2}, "cat": {"train": 2, "test": 2}}
    records = read_patch_records(out)
    assert {r["half"] for r in records if r["split"] == "train"} == {"right"}
    assert len(list(out.glob(".complete-photos-*"))) == 1


def test_bad_parameters_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="at least two of"):
        write_photo_patches(tmp_path / "p", classes=["brick", "unicorn"])
    with pytest.raises(ConfigError, match="train_half"):
        write_photo_patches(tmp_path / "p", classes=["brick", "cat"], train_half="top")


def test_whole_photographs_are_written_for_imagenet_predictions(tmp_path):
    paths = write_whole_photos(tmp_path / "photos", ["cat", "grace_hopper"])
    assert [p.name for p in paths] == ["cat.png", "grace_hopper.png"]
    with Image.open(paths[0]) as image:
        assert image.size == (451, 300) and image.mode == "RGB"
