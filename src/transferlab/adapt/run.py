"""``transferlab adapt`` as a library verb: data, model and run folder in one call (Ganin & Lempitsky 2015).

:func:`adapt` resolves the named domains or folders, builds the DANN once on the chosen backbone, trains it
(:func:`~transferlab.adapt.train.train_adaptation`, a task on the training engine) inside a :class:`Run`
whose ``config.json`` records the call, so ``transferlab rerun`` gives the same results.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..runs import Run
from .data import load_domain_folders, resolve_domain
from .models import GANIN, build_dann
from .train import AdaptConfig, AdaptResult, check_run_folder, train_adaptation


def domain_data(source: str, target: str, *, backbone: str = GANIN, weights: str = "none", layer: str | None = None,
                size: int = 28, data_root: Path | str | None = None, test_fraction: float = 0.3, seed: int = 0):
    """The two domains (named datasets are written on first use) in the backbone's preprocessing.

    Returns ``(source folder, target folder, DomainData, input size)``; the paper's CNN takes ``size`` px
    images, a registry backbone its own input size.
    """
    src, tgt = resolve_domain(source, data_root, size), resolve_domain(target, data_root, size)
    input_size = size if backbone == GANIN else 28
    _, pre, _ = build_dann(backbone, 2, weights=weights, layer=layer, input_size=input_size, seed=seed)
    return src, tgt, load_domain_folders(src, tgt, pre, test_fraction=test_fraction, seed=seed), input_size


def adapt(source: str = "digits", target: str = "digits-m", config: AdaptConfig | dict | None = None, *,
          backbone: str = GANIN, weights: str = "none", layer: str | None = None, size: int = 28,
          data_root: Path | str | None = None, test_fraction: float = 0.3, device: str = "auto", workers: int = 0,
          out: Path | str | None = None, resume: bool = False,
          on_epoch: Callable[[dict], None] | None = None) -> AdaptResult:
    """Train on a labelled ``source`` and adapt to ``target`` (see ``docs/adapt.md``); returns the result
    (metrics, history). ``config`` may be given as a dict, as ``config.json`` records it."""
    from .._utils import resolve_device

    config = AdaptConfig(**config) if isinstance(config, dict) else (config or AdaptConfig())
    config = config.resolved()
    if out is None and resume:
        raise ConfigError("--resume needs --out: the folder of the run to continue")
    dev = resolve_device(device)
    src, tgt, data, input_size = domain_data(source, target, backbone=backbone, weights=weights, layer=layer,
                                             size=size, data_root=data_root, test_fraction=test_fraction,
                                             seed=config.seed)
    if out is not None:
        check_run_folder(Path(out), resume)  # before config.json is written over the existing run's
    call: dict[str, Any] = {"source": source, "target": target, "config": asdict(config), "backbone": backbone,
                            "weights": weights, "layer": layer, "size": size, "data_root": data_root,
                            "test_fraction": test_fraction, "device": device, "workers": workers}
    with Run("adapt", "transferlab.adapt.run:adapt", call, out, inputs=(src, tgt), resume=resume) as run:
        model, pre, describe = build_dann(backbone, len(data.classes), weights=weights, layer=layer,
                                          input_size=input_size, reverse=config.method != "dann-no-grl",
                                          seed=config.seed)
        describe = {**describe, "preprocessing": pre.as_dict()}
        run.record(source=str(src), target=str(tgt), **asdict(config), learning_rate=config.learning_rate,
                   **describe, resolved_device=str(dev), data=data.info)

        def logged(row: dict) -> None:
            target_acc = row["target_class_acc"]
            run.log.info("epoch %d [%s] lambda=%.3f source acc %.3f target acc %s domain acc %.3f", row["epoch"],
                         row["phase"], row["lambda"], row["source_class_acc"],
                         "-" if target_acc is None else f"{target_acc:.3f}", row["domain_acc"])
            if on_epoch is not None:
                on_epoch(row)

        result = train_adaptation(model, data, config, out=run.out, resume=resume, device=dev, workers=workers,
                                  describe=describe, on_epoch=logged)
    return replace(result, out=run.out)
