"""GAN ablations: training only G or only D (GAN practical Q1) and a conditional D blind to y (report 002 Q7)."""

from __future__ import annotations

import json

import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.generate import GanConfig, train_gan
from transferlab.generate.conditional import ConditionalDiscriminator
from transferlab.generate.models import build_pair
from transferlab.generate.study import study_variants

TINY = dict(nz=16, ngf=8, ndf=8, batch_size=32, max_batches=2, device="cpu", n_eval=16)


def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize("only, frozen, trained", [("g", "d", "g"), ("d", "g", "d")])
def test_training_one_network_leaves_the_other_bit_identical(small_digits, tmp_path, only, frozen, trained):
    g0, d0 = build_pair("dcgan", nz=16, ngf=8, ndf=8, channels=1, classes=10, seed=0)
    initial = {"g": _params(g0), "d": _params(d0)}
    run = train_gan(small_digits, GanConfig(epochs=1, train_only=only, **TINY), tmp_path / "run")
    after = {"g": _params(run.generator), "d": _params(run.discriminator)}
    assert all(torch.equal(after[frozen][k].cpu(), v) for k, v in initial[frozen].items())
    changed = [k for k, v in initial[trained].items() if not torch.equal(after[trained][k].cpu(), v)]
    assert len(changed) == len(initial[trained])  # every parameter of the trained network moved
    row = run.history[-1]
    assert all(torch.isfinite(torch.tensor(row[k])) for k in ("loss_d", "loss_g", "d_real", "d_fake"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train_only"] == only


def test_only_d_learns_to_tell_real_from_the_untrained_generator(small_digits, tmp_path):
    run = train_gan(small_digits, GanConfig(epochs=2, train_only="d", **{**TINY, "max_batches": 4}),
                    tmp_path / "run")
    first, last = run.history[0], run.history[-1]
    assert last["d_real"] > last["d_fake"] and last["loss_d"] < first["loss_d"]


def test_the_y_blind_discriminator_gives_the_same_output_for_any_label():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    blind = ConditionalDiscriminator(ndf=8, channels=1, classes=10, ignore_labels=True).eval()
    seeing = ConditionalDiscriminator(ndf=8, channels=1, classes=10).eval()
    seeing.load_state_dict(blind.state_dict())  # same weights, only the label input differs
    with torch.no_grad():
        outputs = [blind(x, torch.full((4,), c)) for c in range(10)]
        sighted = [seeing(x, torch.full((4,), c)) for c in range(10)]
    assert all(torch.equal(o, outputs[0]) for o in outputs)
    assert not all(torch.equal(o, sighted[0]) for o in sighted)
    _, d = build_pair("conditional", nz=8, ngf=8, ndf=8, channels=1, classes=10, d_ignores_labels=True)
    assert d.ignore_labels


def test_a_conditional_gan_with_a_blind_d_trains_and_is_refused_without_labels(small_digits, tmp_path):
    run = train_gan(small_digits, GanConfig(model="conditional", d_ignores_labels=True, epochs=1, **TINY),
                    tmp_path / "run")
    assert run.discriminator.ignore_labels and len(run.history) == 1
    with pytest.raises(ConfigError, match="--d-ignores-y is an ablation of the conditional GAN; got --model dcgan"):
        GanConfig(d_ignores_labels=True).resolved()
    with pytest.raises(ConfigError, match="--train-only takes g .* or d .*; got 'both'"):
        GanConfig(train_only="both").resolved()


def test_the_study_groups_and_the_cli_options(tmp_path, capsys):
    names = dict(study_variants(["baseline", "one_sided", "blind_d"]))
    assert names == {"baseline": {}, "train only G": {"train_only": "g"}, "train only D": {"train_only": "d"},
                     "conditional, D ignores y": {"model": "conditional", "d_ignores_labels": True}}
    from transferlab.cli.main import main

    try:
        code = main(["gan", "train", "--model", "conditional", "--d-ignores-y", "--train-only", "D", "--epochs", "1",
                     "--nz", "8", "--ngf", "8", "--ndf", "8", "--batch-size", "32", "--max-batches", "1",
                     "--max-images", "64", "--no-metrics", "--device", "cpu", "--out", str(tmp_path / "cli")])
    except SystemExit as exc:
        code = exc.code
    assert not code, capsys.readouterr().err
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["call"]["args"]["config"]["train_only"] == "d"
    assert config["call"]["args"]["config"]["d_ignores_labels"] is True
