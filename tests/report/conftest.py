"""Run folders the report tests read: a linear run, a fine-tuning run and a layer study on tiny digits."""

from __future__ import annotations

import pytest

FAST = ["-b", "digits_cnn", "-w", "none", "--workers", "0", "--no-cache"]


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory):
    """``runs/{linear,finetune,study}`` written by the CLI (each report.html by the Run hook) + the data."""
    from typer.testing import CliRunner

    from transferlab.cli.main import app
    from transferlab.data import write_digits_folder

    root = tmp_path_factory.mktemp("report")
    data = write_digits_folder(root / "digits", classes=[0, 1, 3, 7], per_class=12)
    runs = root / "runs"
    runner = CliRunner()
    for args in (["run", str(data), *FAST, "--train-per-class", "2", "--out", str(runs / "linear")],
                 ["finetune", str(data), *FAST[:-1], "--epochs", "2", "--train-per-class", "4",
                  "--out", str(runs / "finetune")],
                 ["study", "layers", str(data), *FAST, "--layers", "pool3,relu_fc2", "--no-heatmap",
                  "--train-per-class", "3", "--quiet", "--out", str(runs / "study")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    return runs, data
