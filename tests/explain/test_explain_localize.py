"""Saliency as weak localisation (issue 17, item 7): mask and box from a map, exact on hand-set maps."""

import json

import numpy as np
import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.explain.localize import box_iou, localize


def _two_blobs() -> torch.Tensor:
    heat = torch.zeros(40, 50)
    heat[5:15, 10:30] = 1.0   # 200 px: the larger region
    heat[25:35, 40:45] = 2.0  # 50 px, brighter but smaller
    return heat


def test_the_largest_region_of_the_top_pixels_gives_mask_and_box():
    heat = _two_blobs()
    loc = localize(heat, top_percent=250 / 2000 * 100, smooth=0)  # exactly the 250 non-zero pixels are kept
    assert loc.box == (10, 5, 30, 15)  # x0, y0, x1, y1, end exclusive: the larger blob, not the brighter one
    assert loc.mask.sum() == 200 and loc.mask[5:15, 10:30].all()
    assert loc.mask_area == pytest.approx(200 / 2000) and loc.box_area == pytest.approx(200 / 2000)
    assert 0 < loc.threshold <= 1.0  # a quantile between the zeros and the larger blob


def test_smoothing_and_small_percentages_keep_the_peak_region():
    heat = _two_blobs()
    loc = localize(heat, top_percent=1, smooth=0)  # 20 px: all inside the brighter blob
    x0, y0, x1, y1 = loc.box
    assert 40 <= x0 and x1 <= 45 and 25 <= y0 and y1 <= 35
    smooth = localize(heat, top_percent=10)  # default sigma 2 % of 50 px = 1 px
    assert box_iou(smooth.box, (10, 5, 30, 15)) > 0.6


def test_box_iou_is_exact():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_bad_localisation_options_are_refused():
    with pytest.raises(ConfigError, match=r"top percent of a map's pixels, in \(0, 100\]"):
        localize(torch.ones(4, 4), top_percent=0)
    with pytest.raises(ConfigError, match="must be 2-D"):
        localize(torch.ones(2, 4, 4))


def test_saliency_and_gradcam_commands_localise(photos, tmp_path, capsys):
    from test_explain_cli import run

    for command in ("saliency", "gradcam"):
        out = tmp_path / command
        code, stdout, err = run(["explain", command, str(photos["chelsea"]), str(photos["coffee"]), "-b", "digits_cnn",
                     "--weights", "none", "--device", "cpu", "--localize", "10", "--out", str(out)], capsys)
        assert code == 0, err
        rows = json.loads((out / "results.json").read_text())["images"]
        for row in rows:
            loc = row["localization"]
            h, w = loc["image_size"]
            x0, y0, x1, y1 = loc["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert 0 < loc["mask_area"] <= loc["box_area"] <= 1 and loc["top_percent"] == 10
            assert loc["mask_area"] <= 0.1 + 1 / (h * w) + 1e-9  # at most the top 10 % (ties aside)
        assert (out / "localization.png").is_file()
        assert "box (" in stdout
    assert np.isfinite(rows[0]["localization"]["threshold"])
