"""Issue 14, items 3, 4 (--out), 5 and 7: OS names, unwritable outputs, tampered models, small OS matters."""

from __future__ import annotations

import csv
import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from transferlab.cli.main import app
from transferlab.data import write_digits_folder
from tests_helpers import run_main

runner = CliRunner()
RUN = ["-b", "digits_cnn", "-w", "none", "--train-per-class", "6", "--workers", "0"]


def _one_line_error(args, capsys) -> str:
    """Run ``transferlab ARGS`` through ``main`` (its error handling): exit 2 and one line on stderr."""
    code, out, err = run_main(args, capsys)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


@pytest.fixture(scope="module")
def digits3(tmp_path_factory):
    return write_digits_folder(tmp_path_factory.mktemp("d") / "digits", classes=[0, 1, 2], per_class=12)


@pytest.fixture(scope="module")
def linear_model(digits3, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    result = runner.invoke(app, ["run", str(digits3), *RUN, "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    return out / "model"


# -- item 3: names that are not UTF-8 ---------------------------------------------------------------------
def test_non_utf8_class_and_file_names_run_to_the_end_and_map_back(tmp_path):
    root = write_digits_folder(tmp_path / "data", classes=[0, 1, 2], per_class=12)
    broot = os.fsencode(root)
    os.rename(os.path.join(broot, b"0"), os.path.join(broot, b"zero\xff"))
    folder = os.path.join(broot, b"1")
    for i, name in enumerate(sorted(os.listdir(folder))):
        if not name.startswith(b"."):
            os.rename(os.path.join(folder, name), os.path.join(folder, b"img\xfe\xe9%02d.png" % i))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(root), *RUN, "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    with open(out / "predictions.csv", newline="", errors="surrogateescape") as handle:
        rows = list(csv.DictReader(handle))
    odd = [r for r in rows if "img" in r["path"]]
    assert odd, rows
    for row in odd:  # the name written is the file's own bytes
        assert os.path.isfile(os.fsencode(row["path"]))
        assert os.fsencode(row["path"]).startswith(os.path.join(broot, b"1", b"img\xfe\xe9"))
    from transferlab.data.folders import class_folder_bytes

    metrics = json.loads((out / "metrics.json").read_text())
    assert "zero\\xff" in metrics["classes"]
    assert class_folder_bytes("zero\\xff") == b"zero\xff"
    assert any(r["true"] == "zero\\xff" for r in rows)
    for name in ("report.md", "confusion_matrix.csv", "confusion_matrix.png", "model/model.json"):
        assert (out / name).is_file()
    predicted = runner.invoke(app, ["predict", str(out / "model"), os.fsdecode(os.path.join(broot, b"zero\xff")),
                                    "--json", "--no-cache"])
    assert predicted.exit_code == 0, predicted.output


def test_non_utf8_names_through_finetune(tmp_path):
    root = write_digits_folder(tmp_path / "data", classes=[0, 1, 2], per_class=8)
    broot = os.fsencode(root)
    os.rename(os.path.join(broot, b"2"), os.path.join(broot, b"two\xe9\xff"))
    folder = os.path.join(broot, b"1")
    for i, name in enumerate(sorted(n for n in os.listdir(folder) if not n.startswith(b"."))):
        os.rename(os.path.join(folder, name), os.path.join(folder, b"f\xfe%02d.png" % i))
    out = tmp_path / "ft"
    result = runner.invoke(app, ["finetune", str(root), "--backbone", "digits_cnn", "--weights", "none", "--epochs", "1",
                                 "--batch-size", "8", "--test-fraction", "0.25", "--device", "cpu", "--workers", "0",
                                 "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "predictions.csv", newline="", errors="surrogateescape") as handle:
        rows = list(csv.DictReader(handle))
    assert any(b"f\xfe" in os.fsencode(r["path"]) and os.path.isfile(os.fsencode(r["path"])) for r in rows)
    assert any(r["true"] == "two\\xe9\\xff" for r in rows)


# -- item 4: --out -------------------------------------------------------------------------------------------
def test_a_non_utf8_out_folder_prints_on_a_strict_utf8_terminal(digits3, tmp_path):
    """A UTF-8 terminal's stdout is strict: the path is printed with escapes, not a UnicodeEncodeError."""
    import subprocess
    import sys

    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "transferlab", "run", str(digits3), *RUN, "--out", out,
                           "--no-cache"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert b"out\xff" in done.stdout and (Path(out) / "metrics.json").is_file()  # the name's own bytes


def test_out_that_is_a_file_is_one_line_exit_2(digits3, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine")
    line = _one_line_error(["run", str(digits3), *RUN, "--out", str(target)], capsys)
    assert "is a file" in line
    assert target.read_text() == "mine"
    line = _one_line_error(["run", str(digits3), *RUN, "--out", str(target / "sub")], capsys)
    assert "cannot be created" in line


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_unwritable_out_is_one_line_exit_2_before_any_work(digits3, tmp_path, monkeypatch, code, capsys):
    import tempfile

    import transferlab.classify.run as run_module

    out = tmp_path / "out"
    out.mkdir()

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(out))

    def no_work(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(run_module, "features_for", no_work)
    line = _one_line_error(["run", str(digits3), *RUN, "--out", str(out)], capsys)
    assert "not writable" in line and errno.errorcode[code] in line
    assert list(out.iterdir()) == []


def test_out_that_cannot_be_created_is_one_line(digits3, tmp_path, monkeypatch, capsys):
    def refuse(self, *args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    line = _one_line_error(["run", str(digits3), *RUN, "--out", str(tmp_path / "new" / "out")], capsys)
    assert "cannot be created" in line and "EACCES" in line


# -- item 5: tampered models ------------------------------------------------------------------------------
def _copy(model: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "model"
    shutil.copytree(model, target)
    return target


def _edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))


def _edit_tensors(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "tensors.safetensors"))
    edit(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "tensors.safetensors"))


def _predict_refused(folder: Path, images: Path, capsys) -> str:
    return _one_line_error(["predict", str(folder), str(images), "--no-cache"], capsys)


@pytest.mark.parametrize("tamper", ["fewer", "more", "width", "nan", "huge"])
def test_tampered_linear_model_is_refused_on_load(linear_model, digits3, tmp_path, tamper, capsys):
    folder = _copy(linear_model, tmp_path)
    classes = json.loads((folder / "model.json").read_text())["classes"]
    if tamper == "fewer":
        _edit_meta(folder, classes=classes[:-1] + [])
    elif tamper == "more":
        _edit_meta(folder, classes=classes + ["extra"])
    elif tamper == "width":
        _edit_tensors(folder, lambda t: t.update(coef=torch.cat([t["coef"], t["coef"]], dim=1)))
    elif tamper == "nan":
        _edit_tensors(folder, lambda t: t["coef"].view(-1).__setitem__(0, float("nan")))
    else:
        _edit_tensors(folder, lambda t: t["intercept"].__setitem__(0, 1e38))
    line = _predict_refused(folder, digits3 / "1", capsys)
    assert str(folder) in line
    expected = {"fewer": "classes", "more": "classes", "width": "features", "nan": "NaN", "huge": "beyond"}[tamper]
    assert expected in line


def test_untampered_linear_model_still_predicts(linear_model, digits3):
    result = runner.invoke(app, ["predict", str(linear_model), str(digits3 / "1"), "--json", "--no-cache"])
    assert result.exit_code == 0, result.output


def _finetuned_folder(tmp_path: Path) -> Path:
    from transferlab.backbones import load_backbone
    from transferlab.finetune.saved import rebuild_network, save_finetuned

    model = rebuild_network("digits_cnn", 3)
    return save_finetuned(tmp_path / "ft", model, backbone="digits_cnn", weights_id="none:seed=0",
                          classes=["0", "1", "2"], preprocessing=load_backbone("digits_cnn", "none").preprocessing)


def _dann_folder(tmp_path: Path) -> Path:
    from transferlab.adapt.models import build_dann
    from transferlab.classify.model_file import write_model_folder

    dann, preprocessing, _ = build_dann("ganin", 3)
    meta = {"kind": "dann", "backbone": "ganin", "classes": ["0", "1", "2"], "input_size": 28,
            "batch_norm": False, "method": "dann", "preprocessing": preprocessing.as_dict()}
    return write_model_folder(tmp_path / "dann", meta, dict(dann.state_dict()))


@pytest.mark.parametrize("kind", ["finetuned", "dann"])
@pytest.mark.parametrize("tamper", [None, "fewer", "more", "nan"])
def test_tampered_network_models_are_refused_on_load(kind, tamper, tmp_path, digits3, capsys):
    from transferlab.classify.saved import load_model
    from transferlab.errors import ModelFileError

    folder = _finetuned_folder(tmp_path) if kind == "finetuned" else _dann_folder(tmp_path)
    if tamper is None:
        assert load_model(folder).classes == ["0", "1", "2"]
        return
    if tamper in ("fewer", "more"):
        classes = ["0", "1"] if tamper == "fewer" else ["0", "1", "2", "3"]
        _edit_meta(folder, classes=classes, **({"num_classes": len(classes)} if kind == "finetuned" else {}))
    else:
        _edit_tensors(folder, lambda t: next(v for v in t.values() if v.is_floating_point()).view(-1)
                      .__setitem__(0, float("nan")))
    with pytest.raises(ModelFileError) as caught:
        load_model(folder)
    assert "\n" not in str(caught.value)
    assert ("NaN" if tamper == "nan" else "rows") in str(caught.value)
    _predict_refused(folder, digits3 / "1", capsys)


# -- item 7: file modes, symlink loops, the bomb message, Pillow's formats ------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    from transferlab._utils import atomic_save, atomic_write_bytes

    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.txt", b"x")
        atomic_save(tmp_path / "b.npy", lambda tmp: np.save(tmp, np.zeros(2)))
    finally:
        os.umask(previous)
    for name in ("a.txt", "b.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_symlink_loop_and_broken_link_are_listed_as_skipped(tmp_path):
    from transferlab.data import load_split

    root = write_digits_folder(tmp_path / "data", classes=[0, 1], per_class=8)
    (root / "0" / "loop.png").symlink_to(root / "0" / "loop.png")
    (root / "1" / "gone.png").symlink_to(root / "1" / "missing.png")
    split = load_split(root, train_per_class=4)
    reasons = dict(split.skipped)
    assert "loop" in reasons[str(root / "0" / "loop.png")]
    assert "broken" in reasons[str(root / "1" / "gone.png")]
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(root), "-b", "digits_cnn", "-w", "none", "--train-per-class", "4", "--workers", "0",
                                 "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    skipped = (out / "skipped.txt").read_text()
    assert "loop.png" in skipped and "gone.png" in skipped


def test_bomb_message_quotes_max_pixels(tmp_path, monkeypatch):
    from PIL import Image

    from transferlab.data import ImageDecodeError, check_image_header

    path = tmp_path / "big.png"
    Image.new("L", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL itself refuses above 2000 pixels
    with pytest.raises(ImageDecodeError) as caught:
        check_image_header(path, max_pixels=500)
    assert "500" in str(caught.value) and "--max-pixels" in str(caught.value) and "2000" not in str(caught.value)
    assert check_image_header(path, max_pixels=20_000) == (100, 100, "L")  # --max-pixels above PIL's limit


@pytest.mark.parametrize("suffix", [".tga", ".jp2"])
def test_formats_pillow_decodes_are_accepted(tmp_path, suffix):
    from PIL import features

    from transferlab.data import IMAGE_SUFFIXES, load_rgb, scan_images

    if suffix == ".jp2" and not features.check("jpg_2000"):
        pytest.skip("this Pillow has no OpenJPEG")
    from PIL import Image

    path = tmp_path / f"img{suffix}"
    Image.new("RGB", (20, 16), (200, 10, 10)).save(path)
    assert suffix in IMAGE_SUFFIXES
    good, bad = scan_images(tmp_path)
    assert good == [path] and not bad
    assert load_rgb(path).size == (20, 16)
    assert ".eps" not in IMAGE_SUFFIXES  # decoded by running Ghostscript: refused


def test_an_unreadable_file_with_a_non_utf8_name_is_listed_in_skipped_txt_and_the_log(tmp_path):
    import os

    from transferlab.classify import run_linear
    from transferlab.data import write_digits_folder
    from transferlab.pipeline import ExtractionOptions

    data = write_digits_folder(tmp_path / "digits", classes=[0, 1, 2], per_class=12)
    bad = os.path.join(os.fsencode(data / "1"), b"broken\xff.png")
    with open(bad, "wb") as handle:
        handle.write(b"not an image")
    options = ExtractionOptions(backbone="digits_cnn", weights="none", train_per_class=6, use_cache=False,
                                progress=False, workers=0)
    run_linear(data, tmp_path / "run", options)
    listed = (tmp_path / "run" / "skipped.txt").read_bytes()
    assert b"broken\xff.png" in listed  # the exact bytes: the name maps back to the file
    assert "broken" in (tmp_path / "run" / "log.txt").read_text(errors="replace")


# --- training checkpoints are validated on resume -------------------------------------------------------------

def _tamper_checkpoint(path, edit):
    import torch

    saved = torch.load(path, weights_only=True)
    edit(saved)
    torch.save(saved, path)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["model"]["weight"].fill_(float("nan")), r"holds non-finite values in model.weight; it is damaged"),
    (lambda s: s["model"].update(weight=s["model"]["weight"].repeat(3, 1)),
     r"does not fit this run's model network \(.*size mismatch"),
    (lambda s: s.pop("optimizers"), r"lacks optimizers: it is damaged or from another program"),
    (lambda s: s["optimizers"].clear(), r"has no optimizer 'main'"),
])
def test_a_tampered_training_checkpoint_is_refused_on_resume_in_one_line(tmp_path, edit, message):
    from training.test_engine import Line  # the engine tests' tiny task

    from transferlab.errors import TrainingError
    from transferlab.training import FitConfig, fit

    def interrupt(state):
        if state.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(Line(), FitConfig(epochs=3), tmp_path, on_epoch_end=interrupt)
    _tamper_checkpoint(tmp_path / "checkpoint.pt", edit)
    with pytest.raises(TrainingError, match=message) as info:
        fit(Line(), FitConfig(epochs=3), tmp_path, resume=True)
    assert "\n" not in str(info.value)


def test_a_run_log_writes_non_utf8_bytes_as_escapes_in_its_name_and_lines(tmp_path, caplog):
    from transferlab.runs import attach_log, detach_log

    out = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/run\xfe"))
    out.mkdir()
    log = attach_log(out)
    try:
        log.warning("skipped %s: %s", os.fsdecode(b"/data/cat\xff.jpg"), "not an image")
    finally:
        detach_log(out)
    assert "skipped /data/cat\\xff.jpg: not an image" in (out / "log.txt").read_text()
    record = caplog.records[-1]  # what pytest-xdist must send between processes: valid UTF-8
    record.getMessage().encode("utf-8") and record.name.encode("utf-8")
    assert record.name.endswith("/run\\xfe")
