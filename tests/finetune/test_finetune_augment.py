"""Augmentation presets: the exact seed list, sizes from the weights, and training images only."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from ft_helpers import FAST
from torchvision.transforms import v2

from transferlab.backbones import get_spec
from transferlab.data import image_transform, load_rgb
from transferlab.errors import ConfigError
from transferlab.finetune import augment, augmentation, eval_transform, finetune, train_transform


def test_seed_preset_is_report_001_list_in_order():
    pre = get_spec("vgg16").preprocessing
    steps = augmentation("seed", pre).transforms
    assert [type(t) for t in steps] == [v2.RandomHorizontalFlip, v2.RandomRotation, v2.RandomResizedCrop,
                                       v2.ColorJitter, v2.RandomPerspective]
    flip, rot, crop, jitter, persp = steps
    assert flip.p == 0.5 and list(rot.degrees) == [-15.0, 15.0]
    assert list(crop.size) == [pre.crop_size, pre.crop_size] == [224, 224]
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.8, 1.2) and jitter.hue is None
    assert persp.distortion_scale == 0.2 and persp.p == 0.5


def test_light_preset_and_unknown_name():
    pre = get_spec("digits_cnn").preprocessing
    assert [type(t) for t in augmentation("light", pre).transforms] == [v2.RandomResizedCrop, v2.RandomHorizontalFlip]
    assert augmentation("none", pre) is None
    with pytest.raises(ConfigError, match="unknown --augment preset 'seeds'.*Did you mean: seed"):
        augmentation("seeds", pre)


@pytest.mark.parametrize("preset", ["light", "seed"])
def test_train_transform_outputs_the_crop_size_and_varies(preset):
    pre = get_spec("digits_cnn").preprocessing
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    transform = train_transform(pre, preset)
    torch.manual_seed(0)
    a, b = transform(img), transform(img)
    assert a.shape == b.shape == (3, pre.crop_size, pre.crop_size)
    assert not torch.equal(a, b)
    assert torch.equal(eval_transform(pre)(img), image_transform(pre)(img))  # deterministic, no augmentation
    assert torch.equal(train_transform(pre, "none")(img), image_transform(pre)(img))


def _digest(img: Image.Image) -> str:
    return hashlib.sha1(np.asarray(img).tobytes()).hexdigest()


def test_augmentation_never_reaches_validation_or_test_images(tiny_dir, tmp_path, monkeypatch):
    seen: list[str] = []
    real = augment.augmentation

    def recording(preset, pre):
        aug = real(preset, pre)

        def apply(img):
            seen.append(_digest(img))
            return aug(img)
        return apply

    monkeypatch.setattr(augment, "augmentation", recording)
    out = tmp_path / "run"
    finetune(tiny_dir, **FAST, epochs=2, augment="seed", freeze="none", out=out, patience=None)
    import csv

    import transferlab.finetune.trainer as trainer
    from transferlab.data import load_split

    split = load_split(tiny_dir, test_fraction=0.25, seed=0)
    train_pos, val_pos = trainer.split_validation([s.label for s in split.train], 0.2, 0)
    train = {_digest(load_rgb(split.train[i].path)) for i in train_pos}
    val = {_digest(load_rgb(split.train[i].path)) for i in val_pos}
    test = {_digest(load_rgb(s.path)) for s in split.test}
    assert len(train) == 18 and len(val) == 6 and len(test) == 6
    assert set(seen) == train  # every training image, and nothing else, was augmented
    assert len(seen) == 2 * len(train)  # once per epoch
    with open(out / "predictions.csv") as handle:
        assert {r["path"] for r in csv.DictReader(handle)} == {str(s.path) for s in split.test}
