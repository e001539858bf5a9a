"""The training loop: protocol, outputs, exact resume, NaN stop, early stopping, option errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ft_helpers import FAST

from transferlab.classify.model_file import read_model_folder
from transferlab.errors import ConfigError, TrainingError
from transferlab.finetune import FinetuneConfig, FinetunedModel, Trainer, finetune, split_validation
from transferlab.training import History, load_checkpoint

TIMING = ("images_per_s", "epoch_time_s")


def test_split_validation_is_stratified_seeded_and_disjoint():
    labels = [0] * 10 + [1] * 5 + [2] * 2
    train, val = split_validation(labels, 0.2, seed=3)
    assert sorted(train + val) == list(range(17)) and not set(train) & set(val)
    assert [sum(labels[i] == c for i in val) for c in range(3)] == [2, 1, 1]
    assert split_validation(labels, 0.2, seed=3) == (train, val)
    assert split_validation(labels, 0.2, seed=4) != (train, val)
    with pytest.raises(ConfigError, match="class index 1 has 1 training image; the validation split needs at least"):
        split_validation([0, 0, 1], 0.2, seed=0)


def test_a_class_too_small_for_the_validation_split_is_named_with_the_right_advice(tiny_dir, tmp_path):
    with pytest.raises(ConfigError, match="class 'blue' has 1 training image; the validation split needs at least "
                                          "2 per class: add images, raise --train-per-class or lower --test-fraction"):
        finetune(tiny_dir, **{**FAST, "test_fraction": None}, train_per_class=1, epochs=1, out=tmp_path / "run")


def test_end_to_end_outputs_and_single_test_evaluation(tiny_dir, tmp_path, monkeypatch):
    calls: list[tuple[str, int]] = []
    real = Trainer._evaluate

    def spy(self, dataset, items):
        calls.append(("test" if dataset is self.test_set else "val", self.epoch))
        return real(self, dataset, items)

    monkeypatch.setattr(Trainer, "_evaluate", spy)
    out = tmp_path / "run"
    metrics = finetune(tiny_dir, **FAST, epochs=3, freeze="none", lr=0.05, augment="none", out=out, patience=None)
    assert calls == [("val", 0), ("val", 1), ("val", 2), ("test", 3)]  # test once, at the end
    for name in ("config.json", "history.csv", "curves.png", "metrics.json", "confusion_matrix.csv",
                 "confusion_matrix.png", "predictions.csv", "log.txt", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and saved["n_test"] == 6
    assert np.array(saved["confusion_matrix"]).sum() == 6 and saved["classes"] == ["blue", "green", "red"]
    assert saved["method"] == "finetune" and saved["epochs_run"] == 3 and saved["n_train"] == 18
    rows = History.from_csv(out / "history.csv").rows
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(r["train_images"] == 18 for r in rows)
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert saved["best_epoch"] == best["epoch"] and saved["val_accuracy"] == pytest.approx(best["val_acc"])
    # the saved model is the best epoch's network and predicts like the test evaluation did
    meta, tensors = read_model_folder(out / "model", kind="finetuned")
    assert meta["backbone"] == "digits_cnn" and meta["num_classes"] == 3 and meta["head"] == "classifier.6"
    assert meta["weights"] == "none:seed=0" and meta["preprocessing"]["crop_size"] == 32
    best_state = load_checkpoint(out / "checkpoints/best.pt")["model"]
    assert all(torch.equal(tensors[k], v) for k, v in best_state.items())
    model = FinetunedModel.load(out / "model")
    import csv

    with open(out / "predictions.csv") as handle:
        pred_rows = list(csv.DictReader(handle))
    scores, kept, failures = model.predict_scores([r["path"] for r in pred_rows] + [str(tmp_path / "nope.png")],
                                                  batch_size=4, device="cpu")
    assert scores.shape == (6, 3) and kept == list(range(6)) and failures[0][0].endswith("nope.png")
    assert np.allclose(scores.sum(1), 1.0, atol=1e-5)
    assert [model.classes[i] for i in scores.argmax(1)] == [r["predicted"] for r in pred_rows]
    assert model.layer_module("features.16") is model.as_torch_module().features[16]
    with pytest.raises(ConfigError, match="has no module 'features.99'"):
        model.layer_module("features.99")


def test_files_rejected_by_the_folder_scan_are_listed_in_skipped_json(tiny_dir, tmp_path):
    (tiny_dir / "red" / "notes.txt").write_text("not an image")
    (tiny_dir / "blue" / "broken.png").write_bytes(b"garbage, no PNG header")
    metrics = finetune(tiny_dir, **FAST, epochs=1, augment="none", out=tmp_path / "run")
    skipped = json.loads((tmp_path / "run/skipped.json").read_text())
    assert sorted(skipped) == [str(tiny_dir / "blue/broken.png"), str(tiny_dir / "red/notes.txt")]
    assert "not an image file" in skipped[str(tiny_dir / "red/notes.txt")]
    assert metrics["n_skipped"] == 2 and metrics["n_failed"] == 0 and metrics["n_test"] == 6


def test_resume_is_exact(tiny_dir, tmp_path):
    options = dict(FAST, epochs=4, freeze="none", augment="light", lr=0.05, patience=None)
    whole = finetune(tiny_dir, **options, out=tmp_path / "whole")

    def interrupt(epoch, trainer):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_dir, **options, out=tmp_path / "split", on_epoch_end=interrupt)
    assert load_checkpoint(tmp_path / "split/checkpoints/last.pt")["epoch"] == 2
    resumed = finetune(tiny_dir, **options, out=tmp_path / "split", resume=True)

    a = load_checkpoint(tmp_path / "whole/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "split/checkpoints/last.pt")
    assert a["epoch"] == b["epoch"] == 4
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows_a, rows_b = (History.from_csv(tmp_path / p / "history.csv").rows for p in ("whole", "split"))
    strip = [[{k: v for k, v in r.items() if k not in TIMING} for r in rows] for rows in (rows_a, rows_b)]
    assert strip[0] == strip[1] and len(strip[0]) == 4
    assert whole["accuracy"] == resumed["accuracy"] and whole["best_epoch"] == resumed["best_epoch"]


def test_resume_refuses_other_options_and_fresh_runs_refuse_an_old_folder(tiny_dir, tmp_path):
    out = tmp_path / "run"
    finetune(tiny_dir, **FAST, epochs=1, out=out)
    with pytest.raises(TrainingError, match="already holds a fine-tuning run.*--resume"):
        finetune(tiny_dir, **FAST, epochs=1, out=out)
    with pytest.raises(TrainingError, match="options differ.*lr: checkpoint 0.01, now 0.1"):
        finetune(tiny_dir, **FAST, epochs=1, lr=0.1, out=out, resume=True)
    with pytest.raises(TrainingError, match="no checkpoint"):
        finetune(tiny_dir, **FAST, epochs=1, out=tmp_path / "other", resume=True)


def test_resume_without_out_is_refused_before_any_folder_is_made(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--resume needs --out: the folder of the interrupted run"):
        finetune(tiny_dir, **FAST, epochs=1, resume=True)
    assert not (tmp_path / "runs").exists()


def test_nan_loss_stops_at_once_and_keeps_the_last_good_checkpoint(tiny_dir, tmp_path, monkeypatch):
    real = Trainer._loss

    def poisoned(self, logits, y):
        loss = real(self, logits, y)
        return loss * float("nan") if self.epoch == 1 else loss  # the second epoch goes NaN

    monkeypatch.setattr(Trainer, "_loss", poisoned)
    out = tmp_path / "run"
    before = None

    def remember(epoch, trainer):
        nonlocal before
        before = {k: v.clone() for k, v in trainer.net.state_dict().items()}

    with pytest.raises(TrainingError, match=r"training loss became nan \(epoch 2, step 1\): training stopped; "
                                            r"the last good checkpoint is .*last\.pt"):
        finetune(tiny_dir, **FAST, epochs=5, freeze="none", out=out, on_epoch_end=remember)
    state = load_checkpoint(out / "checkpoints/last.pt")
    assert state["epoch"] == 1
    assert all(torch.equal(state["model"][k], v) for k, v in before.items())
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())
    assert len(History.from_csv(out / "history.csv").rows) == 1
    assert not (out / "metrics.json").exists()


def test_early_stopping_on_validation(tiny_dir, tmp_path):
    # only the head trains (all-but-head) and lr 1e-12 leaves it unchanged: validation never improves after
    # epoch 1, so patience 2 stops after epoch 3
    metrics = finetune(tiny_dir, **FAST, epochs=10, lr=1e-12, patience=2, augment="none", out=tmp_path / "r")
    rows = History.from_csv(tmp_path / "r/history.csv").rows
    assert len(rows) == 3 and metrics["stopped_early"] is True and metrics["best_epoch"] == 1


def test_config_defaults_and_errors():
    cfg = FinetuneConfig.from_options(backbone="resnet18")
    assert (cfg.freeze, cfg.weights, cfg.lr, cfg.weight_decay, cfg.augment) == ("all-but-head", "imagenet", 0.01,
                                                                                1e-4, "light")
    scratch = FinetuneConfig.from_options(backbone="resnet18", from_scratch=True, optimizer="adamw")
    assert (scratch.freeze, scratch.weights, scratch.lr, scratch.weight_decay) == ("none", "none", 1e-3, 0.01)
    with pytest.raises(ConfigError, match="--from-scratch with --freeze all-but-head"):
        FinetuneConfig.from_options(backbone="resnet18", from_scratch=True, freeze="all-but-head")
    with pytest.raises(ConfigError, match="--from-scratch trains from random weights but --weights x.pth"):
        FinetuneConfig.from_options(backbone="resnet18", from_scratch=True, weights="x.pth")
    with pytest.raises(ConfigError, match="--optimizer 'adam' is not one of sgd, adamw"):
        FinetuneConfig.from_options(backbone="resnet18", optimizer="adam")
    with pytest.raises(ConfigError, match="--val-fraction must be between 0 and 1"):
        FinetuneConfig.from_options(backbone="resnet18", val_fraction=1.0)
    with pytest.raises(ConfigError, match="unknown fine-tuning option"):
        FinetuneConfig.from_options(backbone="resnet18", epoch=3)
    with pytest.raises(ConfigError, match="either an image folder DATA or --dataset"):
        finetune(None, backbone="digits_cnn", weights="none")


@pytest.mark.slow
def test_resnet18_from_scratch_at_32px_with_adamw_step_schedule(tiny_dir, tmp_path):
    metrics = finetune(tiny_dir, backbone="resnet18", from_scratch=True, optimizer="adamw", schedule="step",
                       epochs=2, batch_size=6, test_fraction=0.25, device="cpu", preprocess="squash",
                       label_smoothing=0.1, grad_clip=1.0, backbone_lr_factor=0.5, out=tmp_path / "r")
    assert metrics["weights"] == "none:seed=0" and metrics["freeze"] == "none" and metrics["n_test"] == 6
    rows = History.from_csv(tmp_path / "r/history.csv").rows
    assert [r["lr"] for r in rows] == [pytest.approx(1e-3), pytest.approx(1e-4)]  # step_size = epochs // 3 -> 1
    model = FinetunedModel.load(tmp_path / "r/model")
    assert model.backbone_name == "resnet18" and model.preprocessing.mode == "squash"
    assert model.as_torch_module()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.slow
def test_training_really_learns_digits_from_scratch(digits_dir, tmp_path):
    # measured: 0.916 (seed 0) and 0.906 (seed 1) test accuracy after 4 epochs; chance is 0.1
    metrics = finetune(digits_dir, backbone="digits_cnn", from_scratch=True, epochs=4, batch_size=32, lr=0.05,
                       train_per_class=30, augment="none", device="cpu", out=tmp_path / "r")
    assert metrics["n_test"] == 1497 and metrics["accuracy"] > 0.6
    rows = History.from_csv(tmp_path / "r/history.csv").rows
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
