"""The shared runner (resume, settings guard, restart) and the `transferlab study ...` commands."""

from __future__ import annotations

import json

import pytest

from transferlab.classify import LinearOptions
from transferlab.cli.main import main
from transferlab.errors import ConfigError
from transferlab.studies import CStudy, run_study

GRID = (1e-2, 1.0, 100.0, 1e4)


def test_interrupted_study_resumes_without_redoing_finished_conditions(tiny_digits, make_options, tmp_path,
                                                                       monkeypatch):
    options, linear = make_options(), LinearOptions(cv_folds=3, c_grid=GRID)
    original = CStudy.evaluate
    seen: list[str] = []

    def interrupted(self, condition):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append(condition.key)
        return original(self, condition)

    monkeypatch.setattr(CStudy, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False)
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 2 and not (tmp_path / "out" / "C.csv").exists()

    seen.clear()
    monkeypatch.setattr(CStudy, "evaluate", lambda self, c: seen.append(c.key) or original(self, c))
    resumed = run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False)
    assert seen == ["C=100", "C=10000"] and resumed.n_evaluated == 2
    fresh = run_study(CStudy(tiny_digits, options, linear), tmp_path / "fresh", progress=False)
    assert [(r["C"], r["cv_acc"], r["cv_std"]) for r in resumed.rows] == \
        [(r["C"], r["cv_acc"], r["cv_std"]) for r in fresh.rows]
    assert resumed.summary["test_acc_chosen_C"] == fresh.summary["test_acc_chosen_C"]

    seen.clear()  # finished: a third call evaluates nothing
    assert run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False).n_evaluated == 0
    # other settings in the same folder: refused, unless --restart
    other = LinearOptions(cv_folds=2, c_grid=GRID)
    with pytest.raises(ConfigError, match=r"different settings \(linear.cv_folds: earlier 3, now 2\); use the same "
                                          r"options, another --out, or --restart"):
        run_study(CStudy(tiny_digits, options, other), tmp_path / "out", progress=False)
    restarted = run_study(CStudy(tiny_digits, options, other), tmp_path / "out", progress=False, restart=True)
    assert restarted.n_evaluated == len(GRID) and {r["folds"] for r in restarted.rows} == {2}


def test_a_study_resumed_with_its_data_path_spelt_differently_is_the_same_study(tiny_digits, make_options, tmp_path,
                                                                               monkeypatch):
    options, linear = make_options(), LinearOptions(cv_folds=3, c_grid=GRID[:2])
    run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False)
    monkeypatch.chdir(tiny_digits.parent)  # the same folder, now given relative to the working directory
    relative = CStudy(type(tiny_digits)(tiny_digits.name), options, linear)
    assert run_study(relative, tmp_path / "out", progress=False).n_evaluated == 0


def test_a_row_cut_short_by_a_kill_is_run_again(tiny_digits, make_options, tmp_path):
    options, linear = make_options(), LinearOptions(cv_folds=3, c_grid=GRID)
    run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False)
    path = tmp_path / "out" / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    assert run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False).n_evaluated == 1
    # the row written after the cut one is a line of its own: nothing is run a third time
    assert run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False).n_evaluated == 0


def cli(argv: list[str]) -> int:
    """Run the CLI as the console script does; return its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


COMMON = ["--backbone", "digits_cnn", "--weights", "none", "--train-per-class", "6", "--cv-folds", "3",
          "--workers", "0", "--quiet"]


@pytest.mark.parametrize("command, extra, files", [
    ("layers", ["--layers", "pool3,relu_fc2", "--no-heatmap"], ["layers.csv", "layers.md", "depth_curve.png"]),
    ("C", ["--grid", "0.01,1,100"], ["C.csv", "C.md", "C_sweep.png", "C_test.csv"]),
    ("pca", ["--dims", "4,8", "--no-cv"], ["pca.csv", "pca.md", "pca.png"]),
    ("heads", ["--heads", "svm,mlp", "--hidden", "16", "--epochs", "50"], ["heads.csv", "heads.md", "heads.png"]),
])
def test_cli_study_commands(command, extra, files, tiny_digits, shared_cache, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["study", command, str(tiny_digits), *COMMON, *extra, "--cache-dir", str(shared_cache),
                "-o", str(out)]) == 0
    for name in files + ["config.json", "summary.json"]:
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == f"study {command}" and config["extraction"]["backbone"] == "digits_cnn"
    assert "->" in capsys.readouterr().out


def test_no_cv_makes_no_choice_on_the_test_split(tiny_digits, shared_cache, tmp_path):
    """With --no-cv there is no CV accuracy, so no "best" is named (never the best test accuracy)."""
    from transferlab.studies.base import best_by_cv

    out = tmp_path / "out"
    assert cli(["study", "layers", str(tiny_digits), *COMMON, "--layers", "pool3,relu_fc2", "--no-heatmap",
                "--no-cv", "--cache-dir", str(shared_cache), "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_layer_by_cv"] is None and summary["best_layer_test_acc"] is None
    rows = [{"layer": "a", "cv_acc": None, "test_acc": 0.9}, {"layer": "b", "cv_acc": 0.7, "test_acc": 0.5}]
    assert best_by_cv(rows)["layer"] == "b" and best_by_cv(rows[:1]) is None


def test_cli_backbones_and_errors(tiny_digits, shared_cache, tmp_path, capsys):
    args = ["--weights", "none", "--train-per-class", "6", "--cv-folds", "3", "--workers", "0", "--quiet",
            "--cache-dir", str(shared_cache)]
    assert cli(["study", "backbones", str(tiny_digits), "--backbones", "digits_cnn", *args,
                "-o", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "backbones.png").exists()
    for argv, message in [
        (["study", "layers", str(tiny_digits), "--backbone", "digits_cnn", "--layers", "relu9", *args], "unknown layer"),
        (["study", "C", str(tiny_digits), "--backbone", "digits_cnn", "--grid", "0.1,abc", *args], "--grid expects"),
        (["study", "C", str(tiny_digits), "--backbone", "digits_cnn", "--grid", "0.1", *args,
          "-o", str(tiny_digits / "inside")], "inside the input folder"),
    ]:
        assert cli(argv) == 2
        assert message in capsys.readouterr().err
