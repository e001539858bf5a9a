"""Build a GAN pair from its configuration; save and load the trained generator as a model folder.

The model folder is the project's format (``model.json`` + ``tensors.safetensors``, kind ``gan``):
JSON and safetensors only, so loading one never executes code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelFileError
from ..training import seeded
from .conditional import ConditionalDiscriminator, ConditionalGenerator
from .dcgan import Discriminator, Generator, initialise

MODELS = ("dcgan", "conditional")
KIND = "gan"


def build_pair(model: str, *, nz: int, ngf: int, ndf: int, channels: int, classes: int,
               init: str = "dcgan", seed: int = 0, d_ignores_labels: bool = False) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for ``model`` (``dcgan`` or ``conditional``), initialised with ``init``;
    ``d_ignores_labels``: the conditional discriminator blind to y (report 002, question 7).

    DCGAN: Radford et al. 2016 (ICLR); conditional GAN: Mirza & Osindero 2014 (arXiv:1411.1784).
    """
    if model not in MODELS:
        raise ConfigError(f"unknown GAN model {model!r}; expected one of {', '.join(MODELS)}")
    if d_ignores_labels and model != "conditional":
        raise ConfigError("--d-ignores-y is an ablation of the conditional GAN; got --model "
                          f"{model}; add --model conditional")
    if model == "conditional" and classes < 2:
        raise ConfigError(f"a conditional GAN needs a dataset with at least 2 classes; this one has {classes} "
                          "(use --model dcgan, or class sub-folders)")
    with seeded(seed):  # seeded in a fork: the caller's random state is left as it was
        if model == "dcgan":
            g: nn.Module = Generator(nz, ngf, channels)
            d: nn.Module = Discriminator(ndf, channels)
        else:
            g = ConditionalGenerator(nz, ngf, channels, classes)
            d = ConditionalDiscriminator(ndf, channels, classes, ignore_labels=d_ignores_labels)
        return initialise(g, init), initialise(d, init)


def is_conditional(module: nn.Module) -> bool:
    return isinstance(module, (ConditionalGenerator, ConditionalDiscriminator))


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None,
             batch_size: int = 256) -> torch.Tensor:
    """Images for noise ``z`` (and ``labels`` for conditional generators), in eval mode, on the CPU."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        out = []
        for start in range(0, z.shape[0], batch_size):
            zb = z[start:start + batch_size].to(device)
            if is_conditional(generator):
                if labels is None:
                    raise ConfigError("a conditional generator needs class labels")
                out.append(generator(zb, labels[start:start + batch_size].to(device)).cpu())
            else:
                out.append(generator(zb).cpu())
        return torch.cat(out) if out else torch.empty(0)
    finally:
        generator.train(was_training)


def save_generator(folder: Path | str, generator: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``folder`` (model.json + tensors.safetensors) for :func:`load_generator`."""
    from ..classify.model_file import write_model_folder

    arch = {"model": "conditional" if is_conditional(generator) else "dcgan", "nz": generator.nz,
            "ngf": generator.ngf, "channels": generator.channels,
            "classes_count": getattr(generator, "classes", 1)}
    return write_model_folder(folder, {"kind": KIND, **meta, **arch}, dict(generator.state_dict()))


def load_generator(path: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a generator from a GAN run folder (its ``model/``) or a model folder; eval mode."""
    from ..classify.model_file import read_model_folder

    path = Path(path)
    folder = path / "model" if (path / "model").is_dir() else path
    meta, tensors = read_model_folder(folder, kind=KIND)
    try:
        if meta["model"] == "dcgan":
            g: nn.Module = Generator(meta["nz"], meta["ngf"], meta["channels"])
        else:
            g = ConditionalGenerator(meta["nz"], meta["ngf"], meta["channels"], meta["classes_count"])
        g.load_state_dict(tensors)
    except (KeyError, RuntimeError, ConfigError) as exc:
        raise ModelFileError(f"{folder} does not describe a generator this transferlab can rebuild ({exc})") from exc
    return g.to(device).eval(), meta
