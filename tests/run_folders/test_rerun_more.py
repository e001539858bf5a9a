"""Every converted command is a library verb inside one Run: ``rerun`` replays gan train/sample/interpolate,
study gan, the feature studies, study finetune/adapt and the inspection commands, and gives the same results."""

import json

import numpy as np
import pytest
import torch

from transferlab.runs import rerun


@pytest.fixture
def digits(tmp_path):
    from transferlab.data import write_digits_folder

    return write_digits_folder(tmp_path / "digits", classes=[0, 1, 2], per_class=12)


def _config(folder):
    return json.loads((folder / "config.json").read_text())


def _assert_run_folder(folder, verb):
    config = _config(folder)
    assert config["call"]["verb"] == verb
    assert config["versions"]["torch"] and config["versions"]["transferlab"]
    assert config["resolved_device"] == "cpu"
    assert json.loads((folder / "status.json").read_text())["status"] == "done"
    log = (folder / "log.txt").read_text().splitlines()
    assert "transferlab" in log[0] and "done in" in log[-1]


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _same_tensors(a, b):
    a, b = _tensors(a), _tensors(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds",)} for r in rows]


TINY_GAN = dict(nz=16, ngf=8, ndf=8, batch_size=32, max_batches=2, device="cpu")


def test_rerun_reproduces_gan_train_sample_interpolate_and_resume_keeps_config(tmp_path):
    from transferlab.generate import GanConfig
    from transferlab.generate.run import gan_interpolate, gan_sample, gan_train

    first = gan_train("digits", GanConfig(epochs=1, **TINY_GAN), max_images=96, metrics=False, out=tmp_path / "a")
    _assert_run_folder(tmp_path / "a", "transferlab.generate.run:gan_train")
    assert _config(tmp_path / "a")["call"]["args"]["config"]["epochs"] == 1
    again = rerun(tmp_path / "a", tmp_path / "b")
    assert _without_time(again.history) == _without_time(first.history)
    assert _same_tensors(tmp_path / "a" / "model" / "tensors.safetensors",
                         tmp_path / "b" / "model" / "tensors.safetensors")

    config = (tmp_path / "a" / "config.json").read_text()
    resumed = gan_train("digits", GanConfig(epochs=2, **TINY_GAN), max_images=96, metrics=False,
                        out=tmp_path / "a", resume=True)
    assert len(resumed.history) == 2 and (tmp_path / "a" / "config.json").read_text() == config

    gan_sample(tmp_path / "a", n=8, columns=4, seed=3, out=tmp_path / "s1")
    _assert_run_folder(tmp_path / "s1", "transferlab.generate.run:gan_sample")
    rerun(tmp_path / "s1", tmp_path / "s2")
    assert (tmp_path / "s1" / "samples.png").read_bytes() == (tmp_path / "s2" / "samples.png").read_bytes()

    gan_interpolate(tmp_path / "a", pairs=2, steps=4, seed=1, out=tmp_path / "i1")
    _assert_run_folder(tmp_path / "i1", "transferlab.generate.run:gan_interpolate")
    rerun(tmp_path / "i1", tmp_path / "i2")
    assert (tmp_path / "i1" / "interpolation.png").read_bytes() == (tmp_path / "i2" / "interpolation.png").read_bytes()


def test_rerun_reproduces_study_gan(tmp_path):
    from transferlab.generate import GanConfig
    from transferlab.generate.run import gan_study

    first = gan_study("digits", GanConfig(epochs=1, **TINY_GAN), groups=["baseline", "loss"], max_images=96,
                      judge_epochs=1, samples=20, out=tmp_path / "a")
    _assert_run_folder(tmp_path / "a", "transferlab.generate.run:gan_study")
    again = rerun(tmp_path / "a", tmp_path / "b")
    assert _without_time(again.rows) == _without_time(first.rows)


def _extraction(tmp_path, **extra):
    from transferlab.pipeline import ExtractionOptions

    return ExtractionOptions(backbone="digits_cnn", weights="none", train_per_class=6, pooling="avg", workers=0,
                             cache_dir=tmp_path / "cache", progress=False, **extra)


SCORES = ("key", "layer", "C", "feature_size", "n_train", "n_test", "test_acc", "cv_acc", "cv_std")


def _scores(rows):  # what a study finds (not its times, memory or cache hits)
    return [{k: r.get(k) for k in SCORES} for r in rows]


def test_rerun_reproduces_a_study_and_leaves_the_global_random_state(digits, tmp_path):
    from transferlab.classify import LinearOptions
    from transferlab.studies.runner import study

    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    first = study("C", digits, _extraction(tmp_path), LinearOptions(cv_folds=3, c_grid=(0.01, 1.0, 100.0)),
                  out=tmp_path / "a", progress=False)
    assert torch.equal(torch.get_rng_state(), torch_state) and np.random.get_state()[1].tolist() == \
        numpy_state[1].tolist()  # no global seeding
    _assert_run_folder(tmp_path / "a", "transferlab.studies.runner:study")
    config = _config(tmp_path / "a")
    assert config["command"] == "study C" and config["extraction"]["backbone"] == "digits_cnn"
    again = rerun(tmp_path / "a", tmp_path / "b")
    assert _scores(again.rows) == _scores(first.rows) and again.n_evaluated == len(first.rows)
    assert study("C", digits, _extraction(tmp_path), LinearOptions(cv_folds=3, c_grid=(0.01, 1.0, 100.0)),
                 out=tmp_path / "a", progress=False).n_evaluated == 0  # resumable, as before


def test_rerun_reproduces_a_layers_study(digits, tmp_path):
    from transferlab.classify import LinearOptions
    from transferlab.studies.runner import study

    first = study("layers", digits, _extraction(tmp_path), LinearOptions(cv_folds=3),
                  {"layers": ["pool3", "relu_fc2"], "heatmap": False}, out=tmp_path / "a", progress=False)
    again = rerun(tmp_path / "a", tmp_path / "b")
    assert _scores(again.rows) == _scores(first.rows)


def test_a_changed_study_in_the_same_folder_keeps_its_config(digits, tmp_path):
    from transferlab.classify import LinearOptions
    from transferlab.errors import ConfigError
    from transferlab.studies.runner import study

    study("C", digits, _extraction(tmp_path), LinearOptions(cv_folds=3, c_grid=(1.0,)), out=tmp_path / "a",
          progress=False)
    config = (tmp_path / "a" / "config.json").read_text()
    with pytest.raises(ConfigError, match="different settings"):
        study("C", digits, _extraction(tmp_path), LinearOptions(cv_folds=3, c_grid=(2.0,)), out=tmp_path / "a",
              progress=False)
    assert (tmp_path / "a" / "config.json").read_text() == config


def test_rerun_reproduces_study_adapt(tmp_path):
    from transferlab.adapt.study import study_adapt
    from transferlab.adapt.train import AdaptConfig

    first = study_adapt("digits", "digits-m", AdaptConfig(epochs=1, batch_size=128), methods=["source-only"],
                        grl_factors=[], seeds=[0], size=16, data_root=tmp_path / "data", device="cpu",
                        out=tmp_path / "a")
    _assert_run_folder(tmp_path / "a", "transferlab.adapt.study:study_adapt")
    again = rerun(tmp_path / "a", tmp_path / "b")
    assert _without_time(again["runs"]) == _without_time(first["runs"])


def _digit_image(tmp_path):
    from transferlab.data import write_digits_folder

    folder = write_digits_folder(tmp_path / "one", classes=[3], per_class=1)
    return next(folder.rglob("*.png"))


def test_rerun_reproduces_activations_inspect_and_data_inspect(digits, tmp_path):
    from transferlab.inspection.run import activations, data_inspect, inspect_backbone

    activations("digits_cnn", _digit_image(tmp_path), top=4, weights="none", device="cpu", out=tmp_path / "a")
    _assert_run_folder(tmp_path / "a", "transferlab.inspection.run:activations")
    rerun(tmp_path / "a", tmp_path / "b")
    for name in ("summary.json", "channels.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()

    inspect_backbone("digits_cnn", out=tmp_path / "i1")
    _assert_run_folder(tmp_path / "i1", "transferlab.inspection.run:inspect_backbone")
    rerun(tmp_path / "i1", tmp_path / "i2")
    assert (tmp_path / "i1" / "summary.json").read_text() == (tmp_path / "i2" / "summary.json").read_text()

    data_inspect(digits, train_per_class=6, out=tmp_path / "d1")
    _assert_run_folder(tmp_path / "d1", "transferlab.inspection.run:data_inspect")
    rerun(tmp_path / "d1", tmp_path / "d2")
    assert (tmp_path / "d1" / "summary.json").read_text() == (tmp_path / "d2" / "summary.json").read_text()


def test_the_inspection_commands_keep_their_one_line_errors_and_leave_no_folder(tmp_path, capsys):
    from tests_helpers import run_main

    code, _, err = run_main(["activations", "digits_cnn", str(tmp_path / "missing.png"), "--weights", "none",
                             "--out", str(tmp_path / "typo")], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "typo").exists()


def test_rerun_reproduces_study_finetune(digits, tmp_path):
    from transferlab.finetune.study import study_finetune

    common = dict(backbones=["digits_cnn"], weights="none", freezes=["none"], augments=["none"], svm=False, epochs=1,
                  batch_size=16, test_fraction=0.3, device="cpu", workers=0)
    first = study_finetune(digits, out=tmp_path / "a", **common)
    _assert_run_folder(tmp_path / "a", "transferlab.finetune.study:study_finetune")
    again = rerun(tmp_path / "a", tmp_path / "b")
    keys = ("backbone", "method", "freeze", "augment", "best_epoch", "val_accuracy", "test_accuracy")
    assert [{k: r[k] for k in keys} for r in again["rows"]] == [{k: r[k] for k in keys} for r in first["rows"]]
