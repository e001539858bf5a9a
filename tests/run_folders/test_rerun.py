"""One run: every command's folder has its call, versions, resolved device, log and status; ``rerun``
replays it from config.json and gives the same results."""

import json

import pytest

from transferlab.classify import run_linear
from transferlab.errors import ConfigError, TransferlabError
from transferlab.pipeline import ExtractionOptions
from transferlab.runs import Run, rerun


@pytest.fixture
def digits(tmp_path):
    from transferlab.data import write_digits_folder

    return write_digits_folder(tmp_path / "digits", classes=[0, 1, 2], per_class=20)


def _options(tmp_path, **extra):
    return ExtractionOptions(backbone="digits_cnn", weights="none", train_per_class=10, cache_dir=tmp_path / "cache",
                             progress=False, workers=0, **extra)


def test_a_run_folder_records_its_call_versions_device_log_and_status(digits, tmp_path):
    run_linear(digits, tmp_path / "run", _options(tmp_path), C="auto")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["call"]["verb"] == "transferlab.classify.run:run_linear"
    assert config["call"]["args"]["extraction"]["backbone"] == "digits_cnn"
    assert config["versions"]["torch"] and config["resolved_device"] == "cpu"
    assert config["device"] == "auto" and config["batch_size"] is None  # the options as asked, beside what they became
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "done" and status["seconds"] > 0
    log = (tmp_path / "run" / "log.txt").read_text().splitlines()
    assert "transferlab" in log[0] and ": run" in log[0] and "done in" in log[-1]


def test_rerun_reproduces_a_run(digits, tmp_path):
    first = run_linear(digits, tmp_path / "first", _options(tmp_path), C="auto", repeats=2)
    again = rerun(tmp_path / "first", tmp_path / "again")
    assert again["accuracy"] == first["accuracy"] and again["chosen_C"] == first["chosen_C"]
    assert again["repeats"]["accuracies"] == first["repeats"]["accuracies"]
    assert (tmp_path / "again" / "predictions.csv").read_text() == (tmp_path / "first" / "predictions.csv").read_text()


def test_rerun_refuses_what_it_cannot_replay(digits, tmp_path):
    with pytest.raises(ConfigError, match="has no config.json"):
        rerun(tmp_path)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text('{"command": "run"}')
    with pytest.raises(ConfigError, match="records no reproducible call"):
        rerun(tmp_path / "old")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "config.json").write_text('{"call": {"verb": "os:system", "args": {"command": "true"}}}')
    with pytest.raises(ConfigError, match="not transferlab's; refusing"):
        rerun(tmp_path / "evil")
    run_linear(digits, tmp_path / "run", _options(tmp_path))
    with pytest.raises(ConfigError, match="is the run being replayed"):
        rerun(tmp_path / "run", tmp_path / "run")


def test_a_user_error_leaves_no_folder_and_a_crash_a_failed_status(tmp_path):
    with pytest.raises(TransferlabError):
        with Run("run", "transferlab.classify.run:run_linear", {}, tmp_path / "typo"):
            raise ConfigError("unknown layer")
    assert not (tmp_path / "typo").exists()
    with pytest.raises(RuntimeError):
        with Run("run", "transferlab.classify.run:run_linear", {}, tmp_path / "crash") as run:
            (run.out / "partial.txt").write_text("half")
            raise RuntimeError("disk\nfull")
    status = json.loads((tmp_path / "crash" / "status.json").read_text())
    assert status["status"] == "failed" and status["error"] == "RuntimeError: disk full"  # one line


def _tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "tensors.safetensors"))


def test_rerun_reproduces_a_finetune(digits, tmp_path):
    import torch

    from transferlab.finetune import finetune

    first = finetune(digits, backbone="digits_cnn", from_scratch=True, augment="light", epochs=1, batch_size=16,
                     test_fraction=0.3, device="cpu", out=tmp_path / "first")
    again = rerun(tmp_path / "first", tmp_path / "again")
    assert again["accuracy"] == first["accuracy"]
    a, b = _tensors(tmp_path / "first"), _tensors(tmp_path / "again")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical weights


def test_rerun_reproduces_an_adapt(tmp_path):
    from transferlab.adapt.run import adapt
    from transferlab.adapt.train import AdaptConfig

    first = adapt("digits", "digits-m", AdaptConfig(epochs=1, batch_size=128), size=16, data_root=tmp_path / "data",
                  device="cpu", out=tmp_path / "first")
    config = json.loads((tmp_path / "first" / "config.json").read_text())
    assert config["call"]["verb"] == "transferlab.adapt.run:adapt" and config["resolved_device"] == "cpu"
    again = rerun(tmp_path / "first", tmp_path / "again")
    timing = {"train_seconds"}
    assert {k: v for k, v in again.metrics.items() if k not in timing} == \
        {k: v for k, v in first.metrics.items() if k not in timing}
    assert again.history.rows[-1]["source_class_loss"] == first.history.rows[-1]["source_class_loss"]


def test_the_rerun_command(digits, tmp_path, capsys):
    from tests_helpers import run_main

    run_linear(digits, tmp_path / "first", _options(tmp_path))
    code, out, err = run_main(["rerun", str(tmp_path / "first"), "--out", str(tmp_path / "again")], capsys)
    assert code == 0, err
    first, again = (json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("first", "again"))
    assert again["accuracy"] == first["accuracy"]
    code, _, err = run_main(["rerun", str(tmp_path / "nothing")], capsys)
    assert code == 2 and err.startswith("error: ") and "has no config.json" in err and err.count("\n") == 1


def test_a_refused_call_into_a_finished_run_leaves_its_description_as_it_was(digits, tmp_path, capsys):
    from tests_helpers import run_main

    run_linear(digits, tmp_path / "run", _options(tmp_path))
    config, status = ((tmp_path / "run" / name).read_bytes() for name in ("config.json", "status.json"))
    code, _, err = run_main(["run", str(digits), "-b", "digits_cnn", "-w", "none", "-l", "bogus", "-o",
                             str(tmp_path / "run")], capsys)
    assert code == 2 and "unknown layer 'bogus'" in err
    assert (tmp_path / "run" / "config.json").read_bytes() == config
    assert (tmp_path / "run" / "status.json").read_bytes() == status


def test_rerun_from_another_folder_resolves_the_paths_of_the_call(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(digits.parent)
    first = run_linear(digits.name, tmp_path / "first", _options(tmp_path))  # a relative data path
    monkeypatch.chdir(tmp_path)
    again = rerun(tmp_path / "first")
    assert again["accuracy"] == first["accuracy"]
    assert any(p.name.startswith("first-rerun-") for p in (tmp_path / "runs").iterdir())


def test_rerun_of_a_call_this_transferlab_cannot_make_is_one_line(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps(
        {"call": {"verb": "transferlab.pipeline:extract_dataset", "args": {"data": "x", "colour": "red"}}}))
    with pytest.raises(ConfigError, match="records arguments .* does not take"):
        rerun(tmp_path / "r")
    (tmp_path / "r" / "config.json").write_text(json.dumps({"call": {"verb": "transferlab.nothing:here"}}))
    with pytest.raises(ConfigError, match="which this transferlab does not have"):
        rerun(tmp_path / "r")


def test_every_json_written_is_strict(tmp_path):
    import math

    import numpy as np

    from transferlab._utils import write_json

    write_json(tmp_path / "x.json", {"a": math.nan, "b": [np.float32("inf"), 1.5], "c": np.array([np.nan, 2.0])})
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": [None, 2.0]}


def test_a_damaged_model_description_is_one_model_file_error(digits, tmp_path):
    from transferlab.classify import load_model
    from transferlab.errors import ModelFileError

    run_linear(digits, tmp_path / "run", _options(tmp_path))
    meta_path = tmp_path / "run" / "model" / "model.json"
    meta = json.loads(meta_path.read_text())
    for damage in ({"preprocessing": {}}, {"classes": 3}, {"kind": ["x"]}, {"backbone": 5}):
        meta_path.write_text(json.dumps({**meta, **damage}))
        with pytest.raises(ModelFileError):
            load_model(tmp_path / "run" / "model")


def test_a_call_that_changed_an_existing_run_before_failing_says_failed(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "status.json").write_text('{"status": "done"}')
    with pytest.raises(ConfigError):
        with Run("run", "transferlab.classify.run:run_linear", {}, tmp_path / "r") as run:
            (run.out / "checkpoint.pt").write_text("trained further")
            raise ConfigError("loss went NaN")
    assert json.loads((tmp_path / "r" / "status.json").read_text())["status"] == "failed"
