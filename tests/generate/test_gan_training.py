"""The training loop: outputs, exact resume, NaN guard, and a conditional GAN that learns its classes."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch
from torch.utils.data import TensorDataset

from transferlab.errors import ConfigError, TrainingError
from transferlab.generate import GanConfig, GanData, evaluate_generator, load_generator, train_gan, train_judge
from transferlab.training import load_checkpoint

TINY = dict(nz=16, ngf=8, ndf=8, batch_size=32, max_batches=3, device="cpu", n_eval=16)


def test_run_folder_contents(small_digits, tmp_path):
    run = train_gan(small_digits, GanConfig(epochs=2, **TINY), tmp_path / "run")
    out = run.out
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    from PIL import Image

    gif = Image.open(out / "samples.gif")
    assert gif.n_frames == 2
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "steps"} <= set(rows[0])
    assert all(int(r["steps"]) == 3 for r in rows)
    assert (out / "curves.png").stat().st_size > 1000
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    g, meta = load_generator(out)
    assert meta["model"] == "dcgan" and meta["nz"] == 16 and meta["classes"] == [str(i) for i in range(10)]
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), run.generator.cpu().state_dict().values()))


def test_resume_equals_uninterrupted(small_digits, tmp_path):
    full = train_gan(small_digits, GanConfig(epochs=3, **TINY), tmp_path / "full")
    train_gan(small_digits, GanConfig(epochs=1, **TINY), tmp_path / "split")
    resumed = train_gan(small_digits, GanConfig(epochs=3, **TINY), tmp_path / "split", resume=True)
    for net in ("generator", "discriminator"):
        a, b = getattr(full, net).state_dict(), getattr(resumed, net).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), net
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(full.history) == strip(resumed.history)


def test_resume_refuses_changed_options_and_overwrite(small_digits, tmp_path):
    train_gan(small_digits, GanConfig(epochs=1, **TINY), tmp_path / "r")
    with pytest.raises(TrainingError, match=r"already holds a GAN run \(checkpoint.pt\); pass --resume"):
        train_gan(small_digits, GanConfig(epochs=2, **TINY), tmp_path / "r")
    with pytest.raises(TrainingError, match="cannot resume .*options differ.*nz: checkpoint 16, now 32"):
        train_gan(small_digits, GanConfig(epochs=2, **{**TINY, "nz": 32}), tmp_path / "r", resume=True)
    with pytest.raises(TrainingError, match="no checkpoint at"):
        train_gan(small_digits, GanConfig(epochs=2, **TINY), tmp_path / "none", resume=True)
    from transferlab.generate import load_gan_data

    other = load_gan_data("digits", max_images=320, seed=0)  # an epoch would mean other data
    with pytest.raises(TrainingError, match="cannot resume .*data.images: checkpoint 160, now 320"):
        train_gan(other, GanConfig(epochs=2, **TINY), tmp_path / "r", resume=True)


def test_nan_stops_with_clear_message(small_digits, tmp_path):
    x, y = small_digits.dataset[0][0], 0
    images = torch.stack([x] * 64)
    images[5, 0, 3, 3] = float("nan")  # one corrupt pixel in the first batch
    bad = GanData("corrupt", TensorDataset(images, torch.full((64,), y)), 1, ["0", "1"])
    with pytest.raises(TrainingError, match=r"discriminator loss became nan \(epoch 1, step 1\): training stopped"):
        train_gan(bad, GanConfig(epochs=1, **{**TINY, "batch_size": 64}), tmp_path / "nan")


def test_config_errors(small_digits, tmp_path):
    with pytest.raises(ConfigError, match="unknown generator loss 'hinge'"):
        train_gan(small_digits, GanConfig(g_loss="hinge"), tmp_path / "x")
    with pytest.raises(ConfigError, match="--lr-g must be positive"):
        train_gan(small_digits, GanConfig(lr_g=0.0), tmp_path / "x")
    with pytest.raises(ConfigError, match="--beta1 must be in"):
        train_gan(small_digits, GanConfig(beta1=1.5), tmp_path / "x")
    one_class = dataclasses.replace(small_digits, classes=["all"])
    with pytest.raises(ConfigError, match="conditional GAN needs a dataset with at least 2 classes"):
        train_gan(one_class, GanConfig(model="conditional", **TINY), tmp_path / "x")


@pytest.mark.slow
def test_conditional_gan_samples_are_recognised(digits_gan, tmp_path):
    judge = train_judge(digits_gan, epochs=3, seed=0)
    assert judge.test_accuracy > 0.9  # measured 0.967 on the held-out fifth of the real digits
    run = train_gan(digits_gan, GanConfig(model="conditional", epochs=4, batch_size=64, device="cpu"), tmp_path / "c")
    metrics = evaluate_generator(run.generator, judge, n=500)
    # Measured with this seed on CPU: class recognition 0.80 after 3 epochs, 0.996 after 4 (chance 0.10);
    # 0.6 leaves room for platform differences and is still six times chance.
    assert metrics["class_recognition"] > 0.6
    assert metrics["classes_covered"] == 10
    assert metrics["chance"] == pytest.approx(0.1)
    # Each class row of the fixed-noise grid exists (10 rows x 8 columns).
    assert (run.out / "samples" / "epoch_004.png").exists()


def test_study_nz_variants_are_relative_to_the_baseline_nz():
    from transferlab.generate import study_variants

    names = [name for name, _ in study_variants(("baseline", "nz"), (2, 10, 100, 1000), base_nz=10)]
    assert names == ["baseline", "nz=2", "nz=100", "nz=1000"]  # nz=10 is the baseline itself


def test_a_gan_trains_past_a_corrupt_image(color_dir, tmp_path):
    # A truncated PNG passes the folder scan (its header is fine) and fails only when decoded; a garbage file
    # with a PNG name is rejected by the scan. Training completes, and both are reported in skipped.json.
    from transferlab.generate import load_gan_data

    good = sorted((color_dir / "red").glob("*.png"))[0].read_bytes()
    truncated = color_dir / "red" / "truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    (color_dir / "blue" / "garbage.png").write_bytes(b"\x00garbage, not an image" * 10)
    data = load_gan_data(color_dir, channels=1)
    assert len(data) == 37 and [p for p, _ in data.skipped] == [str(color_dir / "blue" / "garbage.png")]
    config = GanConfig(epochs=2, **{**TINY, "batch_size": 37, "max_batches": None})  # every image, every epoch
    run = train_gan(data, config, tmp_path / "run")
    assert [r["epoch"] for r in run.history] == [1, 2] and all(r["steps"] == 1 for r in run.history)
    import json

    skipped = json.loads((tmp_path / "run" / "skipped.json").read_text())
    assert sorted(skipped) == sorted([str(truncated), str(color_dir / "blue" / "garbage.png")])
    assert "truncated.png" in skipped[str(truncated)] and run.skipped == skipped
    assert (tmp_path / "run" / "model" / "model.json").is_file()
    metrics = train_judge(data, epochs=1)  # the judge skips it too
    assert metrics.test_accuracy >= 0.0


def test_builders_and_training_leave_the_callers_random_state_alone(small_digits, tmp_path):
    from transferlab.generate import build_pair

    torch.manual_seed(11)
    before = torch.get_rng_state()
    g1, _ = build_pair("dcgan", nz=8, ngf=8, ndf=8, channels=1, classes=10, seed=3)
    train_judge(small_digits, epochs=1)
    train_gan(small_digits, GanConfig(epochs=1, **TINY), tmp_path / "run")
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(12)
    g2, _ = build_pair("dcgan", nz=8, ngf=8, ndf=8, channels=1, classes=10, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(g1.state_dict().values(), g2.state_dict().values()))
