"""``gan train|sample|interpolate`` and ``study gan`` as library verbs, each inside one :class:`~transferlab.runs.Run`.

Each verb takes JSON-able arguments (a :class:`GanConfig` may be given as the dict ``config.json`` records), writes
its run folder (log from the first line, ``config.json`` with the call, the library versions and the resolved
device, ``status.json`` at the end) and returns its result, so ``transferlab rerun`` replays it. The command line
only parses options, calls one verb and prints.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..runs import Run

Message = Callable[[str], None]


def _gan_config(config, **overrides):
    from .train import GanConfig

    if isinstance(config, dict):
        config = GanConfig(**config)
    config = config or GanConfig()
    return replace(config, **overrides) if overrides else config


def _inputs(data: str) -> tuple[Path, ...]:
    return (Path(data),) if Path(data).expanduser().is_dir() else ()


def _say(run: Run, on_message: Message | None) -> Message:
    def say(message: str) -> None:
        run.log.info(message)
        if on_message is not None:
            on_message(message)
    return say


def gan_train(data: str = "digits", config: Any = None, *, channels: int | None = None,
              attribute: str | None = None, data_root: Path | str | None = None, download: bool = False,
              max_images: int | None = None, metrics: bool = True, fid: bool = False,
              out: Path | str | None = None, resume: bool = False, on_message: Message | None = None):
    """``transferlab gan train``: train a DCGAN or conditional GAN (see :func:`~transferlab.generate.train_gan`),
    then score it with the judge (``metrics.json``) when ``metrics`` or ``fid``; returns the :class:`GanRun`
    (its ``metrics`` set when scored). ``resume=True`` continues the run in ``out`` (its config.json is kept)."""
    from .._utils import write_json
    from ..training import check_run_folder
    from .datasets import load_gan_data
    from .metrics import score_generator
    from .train import CHECKPOINT, train_gan

    config = _gan_config(config).resolved()
    if resume and out is None:
        raise ConfigError("--resume needs --out: the folder of the run to continue")
    if out is not None:
        check_run_folder(Path(out), CHECKPOINT, resume, "a GAN run")  # before config.json is written
    call = {"data": data, "config": asdict(config), "channels": channels, "attribute": attribute,
            "data_root": data_root, "download": download, "max_images": max_images, "metrics": metrics, "fid": fid}
    with Run("gan train", "transferlab.generate.run:gan_train", call, out, inputs=_inputs(data),
             resume=resume) as run:
        say = _say(run, on_message)
        dataset = load_gan_data(data, channels=channels, root=data_root, download=download, attribute=attribute,
                                max_images=max_images, seed=config.seed)
        result = train_gan(dataset, config, run.out, resume=resume, log=say, record=run.record)
        if metrics or fid:
            scores = score_generator(result.generator.cpu(), dataset, judge_metrics=metrics, fid=fid,
                                     seed=config.seed)
            write_json(run.out / "metrics.json", {**scores, "n_skipped": len(result.skipped)})
            result.metrics = scores
    return result


def gan_sample(run: Path | str, *, n: int = 64, per_class: int = 8, columns: int = 8, images: bool = False,
               seed: int = 0, out: Path | str | None = None) -> dict[str, Any]:
    """``transferlab gan sample``: a grid of samples of the generator in ``run`` (``samples.png``, optional PNGs);
    returns ``samples.json``'s content."""
    from .sampling import write_samples

    call = {"run": run, "n": n, "per_class": per_class, "columns": columns, "images": images, "seed": seed}
    with Run("gan sample", "transferlab.generate.run:gan_sample", call, out) as folder:
        folder.record(resolved_device="cpu", generator=str(run))
        info = write_samples(run, folder.out, n=n, per_class=per_class, columns=columns, images=images, seed=seed)
        folder.log.info("%d samples -> %s", info["count"], info["grid"])
    return info


def gan_interpolate(run: Path | str, *, pairs: int = 4, steps: int = 10, labels: Sequence[int] | None = None,
                    seed: int = 0, out: Path | str | None = None) -> dict[str, Any]:
    """``transferlab gan interpolate``: latent interpolation strips (``interpolation.png``); returns
    ``interpolation.json``'s content with the image's path."""
    from .._utils import write_json
    from .interpolate import save_interpolation
    from .models import load_generator

    labels = list(labels) if labels else None
    call = {"run": run, "pairs": pairs, "steps": steps, "labels": labels, "seed": seed}
    with Run("gan interpolate", "transferlab.generate.run:gan_interpolate", call, out) as folder:
        generator, meta = load_generator(run)
        folder.record(resolved_device="cpu", generator=str(run), model=meta.get("model"))
        path = save_interpolation(generator, folder.out / "interpolation.png", pairs=pairs, steps=steps, seed=seed,
                                  labels=labels)
        info = {"run": str(run), "pairs": pairs, "steps": steps, "seed": seed, "labels": labels,
                "alpha": "0 (z2, left) .. 1 (z1, right)"}
        write_json(folder.out / "interpolation.json", info)
        folder.log.info("%d strips x %d steps -> %s", pairs, steps, path)
    return {**info, "path": path}


def gan_study(data: str = "digits", base: Any = None, *, groups: Sequence[str] | None = None,
              nz_values: Sequence[int] = (2, 10, 1000), imbalance: Sequence[Sequence[int]] = ((256, 8), (8, 256)),
              channels: int | None = None, attribute: str | None = None, data_root: Path | str | None = None,
              download: bool = False, max_images: int | None = None, judge_epochs: int = 4, samples: int = 1000,
              out: Path | str | None = None, on_message: Message | None = None):
    """``transferlab study gan``: the seeds' GAN ablations (see :func:`~transferlab.generate.run_gan_study`);
    returns the :class:`GanStudy`."""
    from .._utils import resolve_device
    from .datasets import load_gan_data
    from .study import GROUPS, run_gan_study

    base = _gan_config(base).resolved()
    groups = list(groups) if groups is not None else list(GROUPS)
    pairs = [tuple(int(v) for v in p) for p in imbalance]
    if any(len(p) != 2 for p in pairs):
        raise ConfigError(f"--imbalance takes ngf:ndf pairs like 256:8,8:256; got {list(imbalance)!r}")
    call = {"data": data, "base": asdict(base), "groups": groups, "nz_values": [int(v) for v in nz_values],
            "imbalance": pairs, "channels": channels, "attribute": attribute, "data_root": data_root,
            "download": download, "max_images": max_images, "judge_epochs": judge_epochs, "samples": samples}
    with Run("study gan", "transferlab.generate.run:gan_study", call, out, inputs=_inputs(data)) as run:
        say = _say(run, on_message)
        dataset = load_gan_data(data, channels=channels, root=data_root, download=download, attribute=attribute,
                                max_images=max_images, seed=base.seed)
        run.record(resolved_device=str(resolve_device(base.device)))
        result = run_gan_study(dataset, run.out, base, groups=groups, nz_values=call["nz_values"], imbalance=pairs,
                               judge_epochs=judge_epochs, n_samples=samples, log=say, record=run.record)
    return result
