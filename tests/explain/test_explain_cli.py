"""Every ``transferlab explain`` command end to end on scikit-image's photos with random weights."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from transferlab.cli.main import main


def run(args, capsys):
    """Run the CLI in-process (imports shared with the other tests); return (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


DIGITS = ["--backbone", "digits_cnn", "--weights", "none", "--device", "cpu"]


def _finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def _results(out):
    assert (out / "config.json").is_file()
    results = json.loads((out / "results.json").read_text())
    assert _finite(results)
    return results


def test_saliency_command(photos, tmp_path, capsys):
    out = tmp_path / "sal"
    code, stdout, err = run(["explain", "saliency", str(photos["chelsea"]), str(photos["coffee"]), *DIGITS,
                             "--smoothgrad", "--samples", "2", "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "saliency.png").stat().st_size > 1000
    results = _results(out)
    assert results["method"] == "smoothgrad"
    assert [r["image"] for r in results["images"]] == ["chelsea.png", "coffee.png"]
    assert all(r["map_max"] > 0 for r in results["images"])
    assert "chelsea.png" in stdout


def test_gradcam_command_with_target_name(photos, tmp_path, capsys):
    out = tmp_path / "cam"
    code, _, err = run(["explain", "gradcam", str(photos["astronaut"]), *DIGITS, "--target", "7",
                        "--out", str(out)], capsys)
    assert code == 0, err
    results = _results(out)
    assert results["layer"] == "features.16" and results["map_size"] == [8, 8]
    assert results["images"][0]["target"] == "7"
    assert (out / "gradcam.png").is_file()


@pytest.mark.parametrize("method", ["iterative", "fgsm", "pgd"])
def test_adversarial_command(photos, tmp_path, capsys, method):
    out = tmp_path / method
    code, stdout, err = run(["explain", "adversarial", str(photos["coffee"]), *DIGITS, "--method", method,
                             "--eps", "0.03", "--steps", "3", "--out", str(out)], capsys)
    assert code == 0, err
    results = _results(out)
    row = results["images"][0]
    assert row["linf"] <= 0.03 + 1e-7 and row["l2"] > 0 and 1 <= row["steps"] <= 3
    assert 0 < row["original_confidence"] <= 1 and 0 < row["adversarial_confidence"] <= 1
    assert (out / "adversarial.png").is_file() and (out / "adversarial_00_coffee.png").is_file()
    assert "steps" in stdout
    assert -1 <= row["saliency_pearson"] <= 1 and -1 <= row["saliency_spearman"] <= 1
    assert (out / "perturbation_vs_saliency.png").is_file()


def test_adversarial_min_eps_and_carlini_wagner_commands(photos, tmp_path, capsys):
    out = tmp_path / "min"
    code, stdout, err = run(["explain", "adversarial", str(photos["coffee"]), str(photos["chelsea"]), *DIGITS,
                             "--method", "fgsm", "--min-eps", "--max-eps", "0.5", "--tol", "0.002",
                             "--out", str(out)], capsys)
    assert code == 0, err
    results = _results(out)
    assert results["min_eps"] and results["tol"] == 0.002
    for row in results["images"]:  # random digits_cnn is nearly constant: no eps up to 0.5 flips it
        assert row["min_eps"] is None and row["min_eps_255"] is None and not row["success"]
        assert row["linf"] == pytest.approx(0.5, abs=1e-6)  # shown: the attack at --max-eps
    assert "smallest fooling eps not found" in stdout  # exact values: test_explain_adversarial.py (linear model)
    out = tmp_path / "cw"
    code, stdout, err = run(["explain", "adversarial", str(photos["coffee"]), *DIGITS, "--method", "cw",
                             "--steps", "20", "--step-size", "0.05", "--out", str(out)], capsys)
    assert code == 0, err
    row = _results(out)["images"][0]
    assert row["steps"] == 100  # 5 values of c x 20 Adam steps
    assert row["l2"] > 0 if row["success"] else row["l2"] == 0  # nothing fooled: the original is returned
    code, _, err = run(["explain", "adversarial", str(photos["coffee"]), *DIGITS, "--method", "cw", "--min-eps"],
                       capsys)
    assert code == 2 and "minimal-eps search takes an L-inf attack" in err


def test_classviz_commands(photos, tmp_path, capsys):
    out = tmp_path / "viz"
    code, _, err = run(["explain", "classviz", *DIGITS, "--target", "3", "--iterations", "6", "--show-every", "2",
                        "--blur-every", "2", "--out", str(out)], capsys)
    assert code == 0, err
    results = _results(out)
    assert results["target"] == "3" and len(results["scores"]) == 6 and results["snapshots"] == [0, 2, 4, 6]
    for name in ("classviz.png", "strip.png", "scores.png"):
        assert (out / name).is_file()
    out2 = tmp_path / "viz-init"
    code, _, err = run(["explain", "classviz", *DIGITS, "--init", str(photos["chelsea"]), "--iterations", "3",
                        "--out", str(out2)], capsys)
    assert code == 0, err
    assert _results(out2)["target_index"] in range(10)  # the photo's predicted class


def test_perceptual_commands(photos, tmp_path, capsys):
    out = tmp_path / "pair"
    code, _, err = run(["explain", "perceptual", str(photos["chelsea"]), str(photos["chelsea"]), *DIGITS,
                        "--layer", "relu1", "--layer", "relu5", "--out", str(out)], capsys)
    assert code == 0, err
    distances = _results(out)["distances"]
    assert distances == {k: 0.0 for k in ("pixel_l1", "pixel_l2", "relu1_l1", "relu1_l2", "relu5_l1", "relu5_l2")}
    for command in (["explain", "perceptual-experiment"], ["study", "perceptual"]):
        out = tmp_path / command[-1]
        code, stdout, err = run([*command, str(photos["astronaut"]), *DIGITS, "--out", str(out)], capsys)
        assert code == 0, err
        rows = _results(out)["rows"]
        assert len(rows) == 2 * 5  # pixels + 4 default layers, L1 and L2 each
        assert (out / "perceptual.csv").is_file() and (out / "images.png").is_file()
        assert "| measure | space | original vs translated |" in (out / "perceptual.md").read_text()
        assert "translation/noise" in stdout
    out = tmp_path / "full"
    code, stdout, err = run(["explain", "perceptual-experiment", str(photos["chelsea"]), *DIGITS, "--layer", "relu1",
                             "--full-resolution", "--out", str(out)], capsys)
    assert code == 0, err
    results = _results(out)
    assert results["full_resolution"] and len(results["rows"]) == 8
    width, height = Image.open(photos["chelsea"]).size
    assert results["rows"][4]["space"] == f"pixels 0-255 (full {width}x{height})"
    assert 1 < results["rows"][4]["original vs translated"] < 255  # grey levels, not [0, 1] units


def test_errors_are_one_line_exit_2(photos, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not an image at all")
    cases = [
        (["explain", "saliency", str(photos["chelsea"]), *DIGITS, "--target", "zebra"], "unknown class 'zebra'"),
        (["explain", "gradcam", str(photos["chelsea"]), *DIGITS, "--layer", "fc2"], "has no spatial extent"),
        (["explain", "gradcam", str(photos["chelsea"]), *DIGITS, "--layer", "nope"], "unknown layer 'nope'"),
        (["explain", "saliency", str(bad / "broken.png"), *DIGITS], "not a readable image"),
        (["explain", "saliency", str(photos["chelsea"]), "--model", str(bad), "--out", str(bad / "o")],
         "inside the input folder"),
        (["explain", "adversarial", str(photos["chelsea"]), *DIGITS, "--method", "deepfool"], "unknown attack 'deepfool'"),
        (["explain", "saliency", str(photos["chelsea"]), "--model", str(tmp_path / "missing")],
         "not a transferlab model"),
    ]
    for args, message in cases:
        out_args = [] if "--out" in args else ["--out", str(tmp_path / "o")]
        code, _, err = run([*args, *out_args], capsys)
        assert code == 2, (args, err)
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (bad / "o").exists()


def test_default_output_next_to_an_image_in_the_current_folder(photos, tmp_path, capsys, monkeypatch):
    """The documented `transferlab explain saliency cat.jpg` works from the image's own folder."""
    monkeypatch.chdir(photos["chelsea"].parent)
    code, _, err = run(["explain", "saliency", photos["chelsea"].name, *DIGITS], capsys)
    assert code == 0, err
    assert len(list((photos["chelsea"].parent / "runs").glob("explain-saliency-*/saliency.png"))) == 1


def test_explain_a_saved_finetuned_model(photos, tmp_path, capsys):
    from transferlab.backbones import get_spec
    from transferlab.finetune.saved import rebuild_network, save_finetuned

    classes = ["cat", "cup", "person"]
    net = rebuild_network("digits_cnn", len(classes))
    folder = save_finetuned(tmp_path / "model", net, backbone="digits_cnn", weights_id="none:seed=0",
                            classes=classes, preprocessing=get_spec("digits_cnn").preprocessing)
    for command, extra in (("gradcam", []), ("saliency", ["--target", "cup"]), ("adversarial", ["--steps", "2"])):
        out = tmp_path / f"m-{command}"
        code, _, err = run(["explain", command, str(photos["chelsea"]), "--model", str(folder), "--device", "cpu",
                            *extra, "--out", str(out)], capsys)
        assert code == 0, err
        row = _results(out)["images"][0]
        assert set(row.values()) & set(classes), row  # the saved model's own class names
    out = tmp_path / "m-perc"
    code, _, err = run(["explain", "perceptual", str(photos["chelsea"]), str(photos["coffee"]), "--model",
                        str(folder), "--layer", "relu5", "--out", str(out)], capsys)
    assert code == 0, err
    assert _results(out)["distances"]["relu5_l2"] > 0


@pytest.mark.slow
def test_resnet18_random_weights_end_to_end(photos, tmp_path, capsys):
    common = ["--backbone", "resnet18", "--weights", "none", "--device", "cpu"]
    out = tmp_path / "r18"
    code, _, err = run(["explain", "gradcam", str(photos["chelsea"]), *common, "--target", "tabby", "--out",
                        str(out)], capsys)
    assert code == 0, err
    results = _results(out)
    assert results["layer"] == "layer4" and results["map_size"] == [7, 7]
    assert results["images"][0]["target"] == "tabby"
    out = tmp_path / "r18-adv"
    code, _, err = run(["explain", "adversarial", str(photos["coffee"]), *common, "--method", "fgsm",
                        "--out", str(out)], capsys)
    assert code == 0, err
    assert abs(_results(out)["images"][0]["linf"] - 8 / 255) < 1e-6
