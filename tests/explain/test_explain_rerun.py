"""The explain commands' library verbs own their runs: config.json records the call, versions and resolved
device; ``rerun`` gives the same results.json; the global random state is never touched."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.errors import ConfigError
from transferlab.explain import (ExplainOptions, run_adversarial, run_classviz, run_gradcam, run_perceptual,
                                 run_perceptual_experiment, run_saliency)
from transferlab.runs import rerun

DIGITS = {"backbone": "digits_cnn", "weights": "none", "device": "cpu"}


def _same_on_rerun(first, tmp_path):
    """Rerun ``first``'s folder into a new one: the same results.json, byte for byte, and the same dict back."""
    again = rerun(first.out, tmp_path / "again")
    assert again == first and again.out == tmp_path / "again"
    assert (again.out / "results.json").read_text() == (first.out / "results.json").read_text()
    assert sorted(p.name for p in again.files) == sorted(p.name for p in first.files)
    return again


def test_gradcam_verb_records_its_run_and_reruns(photos, tmp_path):
    first = run_gradcam([photos["astronaut"], photos["coffee"]], "7", options=ExplainOptions(**DIGITS),
                        out=tmp_path / "first")
    assert first == json.loads((tmp_path / "first" / "results.json").read_text())
    assert first["layer"] == "features.16" and [r["target"] for r in first["images"]] == ["7", "7"]
    assert [p.name for p in first.files] == ["gradcam.png"] and (first.out / "gradcam.png").is_file()
    config = json.loads((first.out / "config.json").read_text())
    assert config["command"] == "explain gradcam"
    assert config["call"]["verb"] == "transferlab.explain.run:run_gradcam"
    args = config["call"]["args"]
    assert args["images"] == [str(photos["astronaut"]), str(photos["coffee"])] and args["target"] == "7"
    assert args["options"] == {"backbone": "digits_cnn", "weights": "none", "model": None, "preprocess": "weights",
                               "seed": 0, "device": "cpu"}
    assert torch.__version__.startswith(config["versions"]["torch"]) and config["versions"]["transferlab"]
    assert config["resolved_device"] == "cpu" and config["model"] == "digits_cnn (none:seed=0)"
    assert config["resolved_layer"] == "features.16" and config["preprocessing"]["crop_size"] > 0
    assert json.loads((first.out / "status.json").read_text())["status"] == "done"
    log = (first.out / "log.txt").read_text().splitlines()
    assert ": explain gradcam" in log[0] and "done in" in log[-1]
    _same_on_rerun(first, tmp_path)


@pytest.mark.parametrize("method", ["iterative", "pgd"])
def test_adversarial_verb_reruns_identically(photos, tmp_path, method):
    first = run_adversarial([photos["coffee"]], method=method, eps=0.03, steps=3, out=tmp_path / "first", **DIGITS)
    row = first["images"][0]
    assert row["linf"] <= 0.03 + 1e-7 and row["l2"] > 0
    assert {p.name for p in first.files} == {"adversarial.png", "perturbation_vs_saliency.png",
                                             "adversarial_00_coffee.png"}
    again = _same_on_rerun(first, tmp_path)
    a, b = (np.asarray(Image.open(r.out / "adversarial_00_coffee.png")) for r in (first, again))
    assert np.array_equal(a, b)  # the adversarial image itself, pixel for pixel


def test_classviz_verb_from_noise_reruns_identically(tmp_path):
    first = run_classviz(3, iterations=6, show_every=2, blur_every=2, out=tmp_path / "first", **DIGITS)
    assert first["target"] == "3" and len(first["scores"]) == 6 and first["snapshots"] == [0, 2, 4, 6]
    config = json.loads((first.out / "config.json").read_text())
    assert config["call"]["args"]["target"] == 3 and config["call"]["args"]["iterations"] == 6
    again = _same_on_rerun(first, tmp_path)
    assert again["scores"] == first["scores"]
    other = run_classviz(3, iterations=6, show_every=2, blur_every=2, out=tmp_path / "seed1",
                         options=ExplainOptions(**DIGITS, seed=1))
    assert other["scores"] != first["scores"]  # the seed is what decides the noise and the jitter


def test_saliency_and_perceptual_verbs_rerun_identically(photos, tmp_path):
    first = run_saliency([str(photos["chelsea"])], smoothgrad=True, samples=3, out=tmp_path / "sal", **DIGITS)
    assert first["method"] == "smoothgrad"
    assert rerun(first.out, tmp_path / "sal-again") == first
    first = run_perceptual(photos["chelsea"], photos["coffee"], ["relu1", "relu5"], out=tmp_path / "pair", **DIGITS)
    assert set(first["distances"]) == {f"{s}_{k}" for s in ("pixel", "relu1", "relu5") for k in ("l1", "l2")}
    assert rerun(first.out, tmp_path / "pair-again") == first
    first = run_perceptual_experiment(photos["astronaut"], out=tmp_path / "exp", **DIGITS)
    assert len(first["rows"]) == 10 and {p.name for p in first.files} == {"perceptual.csv", "perceptual.md",
                                                                          "images.png"}
    assert rerun(first.out, tmp_path / "exp-again") == first


def test_a_saved_model_run_reruns(photos, tmp_path):
    from transferlab.backbones import get_spec
    from transferlab.finetune.saved import rebuild_network, save_finetuned

    folder = save_finetuned(tmp_path / "model", rebuild_network("digits_cnn", 3), backbone="digits_cnn",
                            weights_id="none:seed=0", classes=["cat", "cup", "person"],
                            preprocessing=get_spec("digits_cnn").preprocessing)
    first = run_gradcam([photos["chelsea"]], "cup", options={"model": folder, "device": "cpu"}, out=tmp_path / "g")
    config = json.loads((first.out / "config.json").read_text())
    assert config["saved_model"] == str(folder) and config["backbone"] is None
    assert first["images"][0]["target"] == "cup"
    assert rerun(first.out, tmp_path / "g-again") == first


def test_the_verbs_leave_the_global_random_state_alone(photos, tmp_path):
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    run_saliency([photos["chelsea"]], smoothgrad=True, samples=2, out=tmp_path / "s", **DIGITS)
    run_adversarial([photos["coffee"]], method="pgd", steps=2, out=tmp_path / "a", options=ExplainOptions(**DIGITS,
                                                                                                          seed=3))
    run_classviz(1, iterations=2, out=tmp_path / "c", seed=7, **DIGITS)
    run_perceptual_experiment(photos["coffee"], ["relu1"], out=tmp_path / "p", **DIGITS)
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


def test_a_user_error_in_a_verb_leaves_no_folder(photos, tmp_path):
    with pytest.raises(ConfigError, match="unknown attack 'deepfool'"):
        run_adversarial([photos["coffee"]], method="deepfool", out=tmp_path / "typo", **DIGITS)
    assert not (tmp_path / "typo").exists()
    with pytest.raises(ConfigError, match="needs a target class"):
        run_classviz(out=tmp_path / "no-target", **DIGITS)
    assert not (tmp_path / "no-target").exists()
    with pytest.raises(TypeError, match="unknown explain option"):
        run_gradcam([photos["coffee"]], backbon="digits_cnn")


def test_the_rerun_command_replays_an_explain_command(photos, tmp_path, capsys):
    from test_explain_cli import DIGITS as CLI_DIGITS
    from test_explain_cli import run

    first, again = tmp_path / "first", tmp_path / "again"
    code, stdout, err = run(["explain", "gradcam", str(photos["chelsea"]), *CLI_DIGITS, "--target", "2",
                             "--out", str(first)], capsys)
    assert code == 0, err
    assert "chelsea.png: 2 p=" in stdout and "(layer features.16)" in stdout and "results.json, config.json" in stdout
    code, _, err = run(["rerun", str(first), "--out", str(again)], capsys)
    assert code == 0, err
    assert (again / "results.json").read_text() == (first / "results.json").read_text()
    assert (again / "gradcam.png").is_file()
