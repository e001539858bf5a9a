"""``transferlab adapt``, ``adapt-data`` and ``study adapt`` end to end on generated folders, and their errors."""

from __future__ import annotations

import json

import pytest

from tests_helpers import make_color_folder
from transferlab.cli.main import main
from transferlab.training import History


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out + captured.err


@pytest.fixture
def colour_domains(tmp_path):
    """Source: tinted noise; target: the same classes, brighter and noisier (another seed)."""
    src = make_color_folder(tmp_path / "src", per_class=10, size=32, seed=0)
    tgt = make_color_folder(tmp_path / "tgt", per_class=10, size=32, seed=1)
    return src, tgt


def test_adapt_on_named_digits_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["adapt", "--source", "digits", "--target", "digits-m", "--data-root", str(tmp_path / "data"),
            "--size", "16", "--epochs", "1", "--batch-size", "128", "--device", "cpu", "--out", str(out)]
    code, text = _cli(args, capsys)
    assert code in (0, None), text
    assert "dann: target accuracy" in text
    for name in ("config.json", "history.csv", "metrics.json", "curves.png", "checkpoint.pt", "log.txt",
                 "model/model.json", "model/tensors.safetensors"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_source_train"] == 1257 and metrics["n_target_test"] == 540
    assert 0.0 <= metrics["target_class_acc"] <= 1.0 and metrics["classes"] == [str(d) for d in range(10)]
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "dann" and config["input_size"] == 16 and config["backbone"] == "ganin"
    code, text = _cli(args[:-4] + ["--epochs", "2", "--device", "cpu", "--out", str(out), "--resume"], capsys)
    assert code in (0, None), text
    assert [r["epoch"] for r in History.from_csv(out / "history.csv").rows] == [1, 2]


def test_adapt_registry_backbone_on_folders(colour_domains, tmp_path, capsys):
    src, tgt = colour_domains
    out = tmp_path / "run"
    code, text = _cli(["adapt", "-s", str(src), "-t", str(tgt), "--backbone", "digits_cnn", "--weights", "none",
                       "--method", "pseudo-label", "--pl-rounds", "1", "--pl-epochs", "1", "--pl-threshold", "0.3",
                       "--epochs", "1", "--batch-size", "8", "--optimizer", "adam", "--device", "cpu",
                       "--out", str(out)], capsys)
    assert code in (0, None), text
    rows = History.from_csv(out / "history.csv").rows
    assert [r["phase"] for r in rows] == ["base", "pseudo-1"]
    assert json.loads((out / "config.json").read_text())["layer"] == "relu_fc2"


def test_adapt_refuses_overwrite_and_resume_with_other_data_and_keeps_config(colour_domains, tmp_path, capsys):
    src, tgt = colour_domains
    out = tmp_path / "run"

    def adapt(source, target, epochs, *extra):
        return _cli(["adapt", "-s", str(source), "-t", str(target), "--epochs", str(epochs), "--batch-size", "8",
                     "--device", "cpu", "--out", str(out), *extra], capsys)

    code, text = adapt(src, tgt, 1)
    assert code in (0, None), text
    config = (out / "config.json").read_text()
    code, text = adapt(src, tgt, 1, "--seed", "3")  # a new run into the same --out, without --resume
    assert code == 2 and "already holds an adaptation run (checkpoint.pt); pass --resume" in text, text
    assert (out / "config.json").read_text() == config
    code, text = adapt(tgt, src, 2, "--resume")
    assert code == 2 and "data.source: checkpoint" in text and "data.target: checkpoint" in text, text
    code, text = adapt(src, tgt, 2, "--test-fraction", "0.5", "--resume")
    assert code == 2 and "data.test_fraction: checkpoint 0.3, now 0.5" in text, text
    assert "data.source_train images" in text  # trained-on images would have moved into the test set
    code, text = adapt(src, tgt, 2, "--resume")
    assert code in (0, None), text
    assert [r["epoch"] for r in History.from_csv(out / "history.csv").rows] == [1, 2]
    assert (out / "config.json").read_text() == config  # the first run's, never rewritten on resume


@pytest.mark.parametrize("extra, match", [
    (["--method", "mmd"], "unknown --method 'mmd'"),
    (["--source", "mnistm"], "neither a dataset name .*Did you mean: mnist-m"),
    (["--resume"], "--resume needs --out"),
    (["--backbone", "ganin", "--weights", "imagenet"], "no pretrained weights"),
])
def test_adapt_errors_exit_2(extra, match, colour_domains, capsys):
    src, tgt = colour_domains
    base = ["adapt", "-s", str(src), "-t", str(tgt), "--epochs", "1", "--device", "cpu"]
    code, text = _cli(base + extra, capsys)
    assert code == 2
    assert text.startswith("error: ") and __import__("re").search(match, text), text


def test_adapt_class_mismatch_exit_2(tmp_path, capsys):
    src = make_color_folder(tmp_path / "a", classes=("red", "green"), per_class=4)
    tgt = make_color_folder(tmp_path / "b", classes=("red", "blue"), per_class=4)
    code, text = _cli(["adapt", "-s", str(src), "-t", str(tgt), "--device", "cpu", "--out", str(tmp_path / "o")],
                      capsys)
    assert code == 2 and "different class sets" in text and "only in target: ['blue']" in text


def test_adapt_refuses_output_inside_data(colour_domains, capsys):
    src, tgt = colour_domains
    code, text = _cli(["adapt", "-s", str(src), "-t", str(tgt), "--device", "cpu", "--out", str(src / "run")], capsys)
    assert code == 2 and "inside the input folder" in text


def test_study_adapt_table_and_figure(colour_domains, tmp_path, capsys):
    src, tgt = colour_domains
    out = tmp_path / "study"
    code, text = _cli(["study", "adapt", "-s", str(src), "-t", str(tgt), "--methods", "source-only,dann-no-grl",
                       "--grl-factors", "0.3", "--seeds", "0,1", "--epochs", "1", "--batch-size", "8",
                       "--device", "cpu", "--out", str(out)], capsys)
    assert code in (0, None), text
    for name in ("runs.csv", "runs.md", "summary.csv", "summary.md", "study.png", "config.json"):
        assert (out / name).is_file(), name
    summary = (out / "summary.md").read_text()
    assert "source-only" in summary and "dann-no-grl" in summary and "dann grl=0.3" in summary
    runs = (out / "runs.csv").read_text().strip().splitlines()
    assert len(runs) == 1 + 3 * 2


def test_study_adapt_errors(colour_domains, capsys):
    src, tgt = colour_domains
    code, text = _cli(["study", "adapt", "-s", str(src), "-t", str(tgt), "--methods", "dann,foo"], capsys)
    assert code == 2 and "unknown method 'foo'" in text
    code, text = _cli(["study", "adapt", "-s", str(src), "-t", str(tgt), "--seeds", "a,b"], capsys)
    assert code == 2 and "--seeds expects comma-separated values" in text


def test_adapt_data_writes_folders(tmp_path, capsys):
    code, text = _cli(["adapt-data", "digits-m", "--data-root", str(tmp_path), "--size", "16"], capsys)
    assert code in (0, None), text
    folder = tmp_path / "digits-16" / "digits-m"
    assert text.strip() == str(folder) and (folder / "test" / "9").is_dir()
