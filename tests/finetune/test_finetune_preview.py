"""``data augment-preview``: one image, N versions drawn by the training transform (report 001 Fig. 1.9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tests_helpers import run_main

from transferlab.errors import ConfigError
from transferlab.finetune.preview import augmented_versions


@pytest.fixture
def photo(tmp_path):
    from skimage import data

    path = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


def test_versions_are_the_training_transform_seeded(photo):
    view, versions, pre = augmented_versions(photo, backbone="resnet18", augment="seed+cutout", n=4, seed=1)
    assert pre.crop_size == 224 and view.shape == (3, 224, 224) and len(versions) == 4
    assert all(v.shape == (3, 224, 224) and 0 <= v.min() and v.max() <= 1 for v in versions)
    assert len({float(v.sum()) for v in versions}) == 4  # random: four different versions
    again = augmented_versions(photo, backbone="resnet18", augment="seed+cutout", n=4, seed=1)[1]
    assert all(torch.equal(a, b) for a, b in zip(versions, again))  # seeded
    state = torch.get_rng_state()
    other = augmented_versions(photo, backbone="resnet18", augment="seed+cutout", n=4, seed=2)[1]
    assert torch.equal(state, torch.get_rng_state()) and not torch.equal(other[0], versions[0])
    none = augmented_versions(photo, backbone="resnet18", augment="none", n=2)[1]
    assert torch.equal(none[0], view) and torch.equal(none[1], view)  # no augmentation: the evaluation view
    small = augmented_versions(photo, backbone="resnet18", augment="light", n=1, input_size=96, grayscale="sum-filters")
    assert small[0].shape == (1, 96, 96) and small[2].resize_size == 110  # 256 * 96 / 224
    with pytest.raises(ConfigError, match="unknown --augment preset 'strong'"):
        augmented_versions(photo, augment="strong")


def test_augment_preview_cli_writes_the_figure(photo, tmp_path, capsys):
    out = tmp_path / "preview"
    code, stdout, err = run_main(["data", "augment-preview", str(photo), "-b", "resnet18", "--augment",
                                  "seed+noise+cutout", "--n", "9", "--out", str(out)], capsys)
    assert code == 0, err
    assert "9 augmented versions at 224 px" in stdout
    figure = Image.open(out / "augment_preview.png")
    assert figure.size[0] > 600 and np.asarray(figure).std() > 10
    assert (out / "config.json").is_file() and (out / "status.json").is_file()
    code, _, err = run_main(["data", "augment-preview", str(photo), "--augment", "seed+blur", "--out",
                             str(tmp_path / "bad")], capsys)
    assert code == 2 and "'blur' is not a block" in err
