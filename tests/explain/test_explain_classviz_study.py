"""``transferlab study classviz`` (issue 17, item 2): the grid, its checkpoints, snapshots, resuming."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from transferlab.errors import ConfigError
from transferlab.explain import ClassVisualizer
from transferlab.studies.classviz import ClassVizStudy
from transferlab.studies.runner import run_study


def test_each_cell_is_exactly_a_run_of_its_length(trained, tmp_path):
    """One trajectory per setting: the checkpoint at t equals a separate run of t iterations, score and image."""
    study = ClassVizStudy(trained, "blue", lrs=[2.0, 5.0], iterations=[3, 6], l2_regs=[1e-3], blur_every=[0, 2],
                          snapshots=[1, 4], jitter=2, seed=3)
    study.bind(tmp_path / "s")
    result = run_study(study, tmp_path / "s", progress=False)
    assert len(result.rows) == 8 and result.n_evaluated == 8
    for row in result.rows:
        alone = ClassVisualizer(trained, lr=row["lr"], iterations=row["iterations"], l2_reg=row["l2_reg"],
                                blur_every=row["blur_every"], max_jitter=2, seed=3).visualize("blue")
        assert row["final_score"] == alone.final_score and row["final_probability"] == alone.final_probability
        assert row["first_score"] == alone.scores[0]
        saved = np.asarray(Image.open(tmp_path / "s" / row["image"]))
        expected = (alone.image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(saved, expected)
    lr5 = [r for r in result.rows if r["lr"] == 5.0 and r["iterations"] == 6]
    assert all(r["final_score"] > r["first_score"] for r in lr5)  # the trained net's "blue" score rises
    cells = sorted(p.name for p in (tmp_path / "s" / "cells").iterdir())
    assert len(cells) == 4 * 4  # 4 settings x iterations {1, 3, 4, 6} (snapshots and cells)
    assert {p.name for p in result.figures} == {"grid.png", "snapshots.png"}
    with open(tmp_path / "s" / "classviz.csv") as handle:
        table = list(csv.DictReader(handle))
    assert {"lr", "iterations", "l2_reg", "blur_every", "init", "final_score", "final_probability"} <= set(table[0])
    assert result.summary["best_score"] == max(r["final_score"] for r in result.rows)


def test_study_options_are_checked(trained):
    with pytest.raises(ConfigError, match="--lr needs at least one value"):
        ClassVizStudy(trained, "blue", lrs=[])
    with pytest.raises(ConfigError, match="iterations >= 1"):
        ClassVizStudy(trained, "blue", iterations=[0])
    with pytest.raises(ConfigError, match="unknown class 'zebra'"):
        ClassVizStudy(trained, "zebra")


def _cli(args, capsys):
    from test_explain_cli import run

    return run(["study", "classviz", "-b", "digits_cnn", "--weights", "none", "--device", "cpu", "-q", *args],
               capsys)


def test_the_command_resumes_cell_by_cell_and_starts_from_images(photos, tmp_path, capsys):
    out = tmp_path / "grid"
    args = ["-t", "3", "--lr", "1,5", "--iterations", "2,4", "--blur-every", "0", "--snapshots", "1,3",
            "--init", str(photos["coffee"]), "--out", str(out)]
    code, stdout, err = _cli(args, capsys)
    assert code == 0, err
    assert "8 cells (8 run now, 0 resumed)" in stdout
    first = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()[1:]]
    assert {r["init"] for r in first} == {"noise", str(photos["coffee"])}
    assert (out / "grid.png").is_file() and (out / "snapshots.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["call"]["verb"] == "transferlab.studies.classviz:study_classviz"
    from transferlab.runs import rerun

    replayed = rerun(out, tmp_path / "again")
    assert [r["final_score"] for r in replayed.rows] == [r["final_score"] for r in first]
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:4]) + "\n")  # killed after its third cell
    code, stdout, err = _cli(args, capsys)
    assert code == 0, err
    assert "8 cells (5 run now, 3 resumed)" in stdout
    again = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()[1:]]
    by_key = {r["key"]: r for r in again}
    for row in first:  # the cells run again give the same numbers
        assert by_key[row["key"]]["final_score"] == row["final_score"]
    code, _, err = _cli(["-t", "3", "--lr", "2", "--iterations", "2", "--out", str(out)], capsys)
    assert code == 2 and "different settings" in err
    code, _, err = _cli(["-t", "3", "--lr", "x", "--out", str(tmp_path / "bad")], capsys)
    assert code == 2 and "--lr expects comma-separated numbers" in err
