"""Numeric options are validated before any work: a NaN or infinite value is one line naming the option."""

import math

import pytest

from transferlab.adapt.train import AdaptConfig
from transferlab.errors import ConfigError
from transferlab.finetune.config import FinetuneConfig
from transferlab.generate.train import GanConfig
from transferlab.training.engine import FitConfig


@pytest.mark.parametrize("config, option", [
    (FinetuneConfig("digits_cnn", momentum=math.nan), "--momentum"),
    (FinetuneConfig("digits_cnn", weight_decay=math.inf), "--weight-decay"),
    (FinetuneConfig("digits_cnn", test_fraction=math.nan), "--test-fraction"),
    (AdaptConfig(gamma=math.nan), "--gamma"),
    (AdaptConfig(pl_weight=-math.inf), "--pl-weight"),
    (GanConfig(lr_g=math.nan), "--lr-g"),
])
def test_a_non_finite_option_is_refused_in_one_line(config, option):
    with pytest.raises(ConfigError, match=rf"^{option} must be a finite number; got (nan|inf|-inf)$"):
        config.resolved()


def test_the_engine_refuses_a_non_finite_clip():
    with pytest.raises(ConfigError, match="--grad-clip must be a finite number"):
        FitConfig(epochs=1, grad_clip=math.inf).resolved()


# --- the command line: every numeric option of every command is checked while parsing, before any work ---

def _numeric_options():
    from typer.main import get_command

    from transferlab.cli.main import app

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
            return
        for param in command.params:
            annotation = str(param.type_descriptor.annotation)
            if param.opts and param.opts[0].startswith("--") and ("float" in annotation or "int" in annotation):
                yield path, max(param.opts, key=len), "float" in annotation

    return list(walk(get_command(app), []))


def _cli(argv, capsys):
    from transferlab.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_every_float_option_of_every_command_refuses_nan_and_inf_in_one_line(capsys):
    float_options = [(path, option) for path, option, is_float in _numeric_options() if is_float]
    assert len(float_options) > 40  # the walk found the commands' options
    for path, option in float_options:
        for value in ("nan", "inf"):
            code, err = _cli([*path, option, value], capsys)
            assert code == 2 and len(err) == 1, (path, option, err)
            # typer's own min= bound, where declared, refuses nan first ("should be greater than or equal to")
            assert err[0].startswith(f"error: Invalid value for '{option}': "), err


@pytest.mark.parametrize("argv, message", [
    (["run", "DATA", "--test-fraction", "1.5"], "'--test-fraction': must be in (0, 1); got 1.5"),
    (["run", "DATA", "--test-fraction", "0"], "'--test-fraction': must be in (0, 1); got 0"),
    (["run", "DATA", "--pca", "0"], "'--pca': must be >= 1; got 0"),
    (["finetune", "DATA", "--lr", "-0.1"], "'--lr': must be > 0; got -0.1"),
    (["finetune", "DATA", "--momentum", "1"], "'--momentum': must be in [0, 1); got 1"),
    (["finetune", "DATA", "--val-fraction", "1"], "'--val-fraction': must be in [0, 1); got 1"),
    (["finetune", "DATA", "--label-smoothing", "-1"], "'--label-smoothing': must be in [0, 1); got -1"),
    (["adapt", "--pl-threshold", "2"], "'--pl-threshold': must be in [0, 1]; got 2"),
    (["explain", "adversarial", "x.png", "--eps", "0"], "'--eps': must be in (0, 1]; got 0"),
    (["explain", "adversarial", "x.png", "--step-size", "-1"], "'--step-size': must be > 0; got -1"),
    (["gan", "train", "--beta1", "1"], "'--beta1': must be in [0, 1); got 1"),
    (["study", "heads", "DATA", "--alpha", "-1"], "'--alpha': must be >= 0; got -1"),
])
def test_an_option_out_of_its_range_is_refused_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DATA does not exist: the range error comes first, and no run folder is made
    code, err = _cli(argv, capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


def test_usage_errors_are_one_line_too(capsys):
    code, err = _cli(["run", "DATA", "--cv-folds", "1"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: Invalid value for '--cv-folds'")
    code, err = _cli(["nosuch-command"], capsys)
    assert code == 2 and err == ["error: No such command 'nosuch-command'. (see `transferlab --help`)"]
