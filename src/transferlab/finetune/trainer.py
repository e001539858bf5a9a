"""Fine-tuning as a task on the training engine: validation carved from train, early stopping, exact resume.

Protocol (report 001, sections 1.6.3-1.6.5: 80 % train / 20 % validation, test kept apart): a seeded,
stratified validation split is carved from the training images; the best epoch is chosen on
validation accuracy only (ties: lower validation loss) and early stopping watches the same number;
the test images are evaluated once, at the end, with the best weights.

:class:`FinetuneTask` says what a step and a validation are; :func:`transferlab.training.fit` owns the
devices, AMP, clipping, the NaN guard (report 004's ResNet kept training for ten epochs on a NaN loss),
the checkpoint after every epoch, exact resume, early stopping, the history and DDP under torchrun.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from .._utils import text_digest
from ..backbones import load_backbone
from ..backbones.grayscale import apply_grayscale
from ..backbones.spec import Preprocessing
from ..data import collate_skipping
from ..errors import ConfigError, TrainingError
from ..runs import Run
from ..training import FitConfig, FitState, Task, check_run_folder, fit, load_checkpoint, seeded
from ..training.checkpoint import check_checkpoint, restore_state
from ..training import distributed as _dist
from . import augment as _augment
from .config import FinetuneConfig
from .datasets import ItemDataset, TrainingData, load_data
from .freezing import apply_freeze, parameter_groups, set_train_mode
from .head import has_auxiliary_outputs, logits_of, replace_head
from .saved import save_finetuned

LAST, BEST = "checkpoints/last.pt", "checkpoints/best.pt"
TIMING_COLUMNS = ("images_per_s", "epoch_time_s")


def split_validation(labels: list[int], fraction: float, seed: int,
                     classes: list[str] | None = None) -> tuple[list[int], list[int]]:
    """Stratified, seeded split of positions into (train, validation); every class keeps >= 1 of each.

    ``classes`` (names by label) only makes the error for a class with fewer than 2 images name it.
    """
    labels_arr = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels_arr):
        positions = np.flatnonzero(labels_arr == label)
        if len(positions) < 2:
            name = repr(classes[label]) if classes is not None else f"index {label}"
            raise ConfigError(f"class {name} has {len(positions)} training image"
                              f"{'' if len(positions) == 1 else 's'}; the validation split needs at least 2 per "
                              "class: add images, raise --train-per-class or lower --test-fraction")
        order = rng.permutation(positions)
        n_val = min(len(positions) - 1, max(1, int(round(fraction * len(positions)))))
        val.extend(order[:n_val].tolist())
        train.extend(order[n_val:].tolist())
    return sorted(train), sorted(val)


def build_network(cfg: FinetuneConfig, num_classes: int):
    """Registry backbone with its weights, the new head (uniform), the grayscale surgery, the freeze policy.

    The random initialisation is seeded by ``cfg.seed`` in a fork of the random state: the caller's is untouched.
    The returned backbone's preprocessing is the one training and the saved model use (``--input-size``,
    ``--grayscale``); a learnt grayscale adapter is always trained, whatever the freeze policy.
    """
    with seeded(cfg.seed):
        bb = load_backbone(cfg.backbone, weights=cfg.weights, seed=cfg.seed, preprocessing_mode=cfg.preprocess)
    with seeded(cfg.seed):  # the new head's initialisation (independent of the backbone's)
        replace_head(bb.model, bb.spec, num_classes)
    pre = at_input_size(bb.preprocessing, cfg.input_size)
    if pre.crop_size != bb.preprocessing.crop_size:
        _check_input_size(bb.spec, pre.crop_size)
    pre, adapter = apply_grayscale(bb.model, bb.spec, pre, cfg.grayscale)
    bb = replace(bb, preprocessing=pre)
    frozen = apply_freeze(bb.model, bb.spec, cfg.freeze)
    if adapter is not None:
        for name, param in bb.model.get_submodule(adapter).named_parameters():
            param.requires_grad_(True)
            frozen.discard(f"{adapter}.{name}")
    return bb, frozen


def at_input_size(pre: Preprocessing, input_size: int | None) -> Preprocessing:
    """``pre`` with crop ``input_size`` and the resize before it scaled by the same factor (unchanged for None)."""
    if input_size is None or int(input_size) == pre.crop_size:
        return pre
    size = int(input_size)
    return replace(pre, crop_size=size, resize_size=max(size, int(round(pre.resize_size * size / pre.crop_size))))


def _check_input_size(spec, size: int) -> None:
    """Refuse an input size the architecture cannot take (a fixed-size flatten), on the meta device."""
    try:
        with torch.device("meta"), torch.no_grad():
            spec.build().eval()(torch.empty(1, 3, size, size))
    except Exception as exc:
        raise ConfigError(f"--input-size {size}: {spec.name} cannot take {size}x{size} images "
                          f"({exc.__class__.__name__}: {' '.join(str(exc).split())[:160]}); use its own size "
                          f"{spec.preprocessing.crop_size} (omit --input-size) or another backbone") from exc


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and trainable (``requires_grad``) parameter counts."""
    params = list(model.parameters())
    return {"total_params": int(sum(p.numel() for p in params)),
            "trainable_params": int(sum(p.numel() for p in params if p.requires_grad))}


def make_optimizer(model: nn.Module, spec, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, spec, cfg.lr, cfg.backbone_lr_factor)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: FinetuneConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _batches(order: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive batches; a trailing batch of one image joins the previous one.

    BatchNorm cannot train on a single image with 1x1 feature maps, and dropping it would leave an
    image unseen; folding it into the previous batch keeps every image and every batch valid.
    """
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches


class FinetuneTask(Task):
    """One fine-tuning job into ``out`` as a task of :func:`~transferlab.training.fit` (see :func:`finetune`)."""

    finite = {"val_loss": "validation loss"}

    def __init__(self, cfg: FinetuneConfig, data: TrainingData, out: Path, ctx: _dist.DistContext) -> None:
        self.cfg, self.data, self.out, self.ctx = cfg, data, out, ctx
        self.started = time.perf_counter()
        self.epoch = 0
        if data.val is not None:  # the dataset's own validation split (Flowers-102)
            self.train_items, self.val_items = list(data.train), list(data.val)
        else:
            train_pos, val_pos = split_validation([lab for _, lab in data.train], cfg.val_fraction, cfg.data_seed,
                                                  data.classes)
            self.train_items = [data.train[i] for i in train_pos]
            self.val_items = [data.train[i] for i in val_pos]
        self.split_digest = text_digest([data.describe(r) for r, _ in self.train_items],
                                        [data.describe(r) for r, _ in self.val_items])
        self.bb, self.frozen = build_network(cfg, len(data.classes))
        self.net = self.bb.model.to(ctx.device)
        self.model: nn.Module = self.net  # the network as trained (DDP-wrapped by fit under torchrun)
        self.find_unused_parameters = ctx.enabled and has_auxiliary_outputs(self.bb.spec)
        self.optimizer = make_optimizer(self.net, self.bb.spec, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.use_amp = bool(cfg.amp and ctx.device.type == "cuda")  # as fit decides: float16 on GPU only
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        pre = self.bb.preprocessing
        self.train_set = ItemDataset(data, self.train_items, _augment.train_transform(pre, cfg.augment))
        self.val_set = ItemDataset(data, self.val_items, _augment.eval_transform(pre))
        self.test_set = ItemDataset(data, data.test, _augment.eval_transform(pre))
        self.failures: dict[str, str] = {}
        self._coverage_done = False
        self._positions: list[int] = []

    # ----------------------------------------------------------------------------- the task protocol
    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": self.optimizer}

    def schedulers(self) -> dict[str, Any]:
        return {"lr": self.scheduler}

    def bind(self, nets: dict[str, nn.Module]) -> None:
        self.model = nets["model"]

    def fingerprint(self) -> dict[str, Any]:
        """The options (all but device/workers) and the train/validation images of the run."""
        return {**self.cfg.fingerprint(), "data": {"train/validation images": self.split_digest}}

    def start_epoch(self, epoch: int):
        cfg, ctx = self.cfg, self.ctx
        self.epoch, self._positions = epoch, []
        sampler = DistributedSampler(self.train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=False)
        sampler.set_epoch(epoch)
        loader = DataLoader(self.train_set, batch_sampler=_batches(list(sampler), cfg.batch_size),
                            num_workers=cfg.workers, collate_fn=collate_skipping, pin_memory=ctx.device.type == "cuda")
        set_train_mode(self.model)
        for x, y, pos, failed in loader:
            self._note_failures(self.train_items, failed)
            yield None if x is None else (x, y, pos)  # None: no decodable image (fit skips it on every process)

    def train_step(self, batch, step) -> dict[str, float]:
        x, y, pos = batch
        x, y = x.to(step.device, non_blocking=True), y.to(step.device, non_blocking=True)
        with step.autocast():
            logits = logits_of(step.net()(x))
            loss = self._loss(logits.float(), y)
        step.update(loss, "main", what="training loss")
        self._positions.extend(int(p) for p in pos)
        n = int(y.numel())
        return {"loss": float(loss.detach()), "acc": int((logits.detach().argmax(1) == y).sum()) / n, "n": n}

    def end_epoch(self, epoch: int, train: dict[str, Any]) -> dict[str, Any]:
        self._record_coverage(self._positions)
        if not train["n"]:
            raise TrainingError("no training image could be read in this epoch; check the data folder")
        lr = self.optimizer.param_groups[0]["lr"]  # fit steps the scheduler after this
        val_loss, val_acc, _ = self._evaluate(self.val_set, self.val_items)
        return {"train_loss": train["loss"], "train_acc": train["acc"], "val_loss": val_loss, "val_acc": val_acc,
                "lr": lr, "train_images": int(train["n"]), "images_per_s": train["n"] / max(train["seconds"], 1e-9),
                "epoch_time_s": train["seconds"]}

    def score(self, row: dict[str, Any]) -> tuple[float, float]:
        """Best epoch and early stopping: validation accuracy, ties broken by the lower validation loss."""
        return (row["val_acc"], -row["val_loss"])

    # ----------------------------------------------------------------------------- pieces
    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, y)

    @torch.no_grad()
    def _evaluate(self, dataset: ItemDataset, items) -> tuple[float, float, list[tuple[int, int, int]]]:
        """(mean loss, accuracy, [(position, true, predicted)]) over this rank's shard, reduced over ranks."""
        shard = Subset(dataset, _dist.shard(len(dataset), self.ctx))
        loader = DataLoader(shard, batch_size=self.cfg.batch_size, shuffle=False, num_workers=self.cfg.workers,
                            collate_fn=collate_skipping, generator=torch.Generator())  # leaves the global RNG alone
        self.net.eval()
        loss_sum, rows = 0.0, []
        for x, y, pos, failed in loader:
            self._note_failures(items, failed)
            if x is None:
                continue
            x, y = x.to(self.ctx.device), y.to(self.ctx.device)
            with torch.autocast(device_type=self.ctx.device.type, dtype=torch.float16, enabled=self.use_amp):
                logits = logits_of(self.net(x)).float()
            loss_sum += float(self.criterion(logits, y)) * int(y.numel())
            rows.extend(zip(pos.tolist(), y.tolist(), logits.argmax(1).tolist()))
        correct = sum(int(t == p) for _, t, p in rows)
        loss_sum, correct, n = _dist.all_reduce_sum([loss_sum, correct, len(rows)], self.ctx)
        if n == 0:
            raise TrainingError("no validation/test image could be read; check the data folder")
        all_rows = [r for part in _dist.all_gather_objects(rows, self.ctx) for r in part]
        return loss_sum / n, correct / n, sorted(all_rows)

    def _note_failures(self, items, failed) -> None:
        for position, reason in failed:
            self.failures[self.data.describe(items[position][0])] = reason

    def _record_coverage(self, positions: list[int]) -> None:
        """First epoch of a run: which training images each process saw (``data_coverage.json``)."""
        if self._coverage_done:
            return
        self._coverage_done = True
        parts = _dist.all_gather_objects(sorted(positions), self.ctx)
        if self.ctx.is_main:
            from .._utils import write_json

            union = sorted(set().union(*map(set, parts)))
            write_json(self.out / "data_coverage.json", {
                "epoch": self.epoch + 1, "world_size": self.ctx.world_size, "n_train": len(self.train_items),
                "per_rank": [len(p) for p in parts], "n_unique": len(union),
                "covers_all": union == list(range(len(self.train_items))),
                "digest": text_digest(union)})

    def fit_config(self) -> FitConfig:
        cfg = self.cfg
        return FitConfig(epochs=cfg.epochs, seed=cfg.seed, amp=cfg.amp, grad_clip=cfg.grad_clip,
                         patience=cfg.patience, checkpoint=LAST, best=BEST, what="a fine-tuning run")

    # ----------------------------------------------------------------------------- the end
    def finish(self, state: FitState) -> dict[str, Any]:
        """Best weights -> the one test evaluation, metrics.json, curves, saved model."""
        self.epoch = state.epoch
        best = check_checkpoint(load_checkpoint(self.out / BEST, map_location="cpu"), self.out / BEST, ("model",))
        restore_state(self.net, best["model"], self.out / BEST, "network")
        _, _, rows = self._evaluate(self.test_set, self.data.test)
        failures = {k: v for part in _dist.all_gather_objects(self.failures, self.ctx) for k, v in part.items()}
        skipped = {**dict(self.data.skipped), **failures}  # rejected by the folder scan + failed to decode
        if not self.ctx.is_main:
            return {}
        from ..classify.evaluate import write_evaluation

        history, best_epoch = state.history, int(state.best["epoch"])
        positions = [r[0] for r in rows]
        paths = [self.data.describe(self.data.test[p][0]) for p in positions]
        train_time = float(sum(r.get("epoch_time_s") or 0.0 for r in history.rows))  # every epoch, resumed too
        train_images = int(sum(r.get("train_images") or 0 for r in history.rows))
        metrics = write_evaluation(
            self.out, [r[1] for r in rows], [r[2] for r in rows], self.data.classes, paths,
            method="finetune", backbone=self.cfg.backbone, weights=self.bb.weights_id, freeze=self.cfg.freeze,
            augment=self.cfg.augment, grayscale=self.cfg.grayscale, input_size=self.bb.preprocessing.crop_size,
            **count_parameters(self.net), train_time_s=train_time, train_images_seen=train_images,
            wall_time_s=time.perf_counter() - self.started,
            best_epoch=best_epoch, epochs_run=len(history.rows),
            stopped_early=state.stopped_early, val_accuracy=float(state.best_row["val_acc"]),
            n_train=len(self.train_items), n_val=len(self.val_items), n_failed=len(failures),
            n_skipped=len(skipped), train_images_per_s=train_images / train_time if train_time > 0 else None,
            world_size=self.ctx.world_size)
        history.to_csv(self.out / "history.csv")
        history.plot(self.out / "curves.png", {"loss": ["train_loss", "val_loss"],
                                               "accuracy": ["train_acc", "val_acc"]},
                     title=f"{self.cfg.backbone} (freeze {self.cfg.freeze}, augment {self.cfg.augment})")
        save_finetuned(self.out / "model", self.net, backbone=self.cfg.backbone, weights_id=self.bb.weights_id,
                       classes=self.data.classes, preprocessing=self.bb.preprocessing, freeze=self.cfg.freeze,
                       augment=self.cfg.augment, best_epoch=best_epoch, grayscale=self.cfg.grayscale,
                       input_size=self.bb.preprocessing.crop_size, test_accuracy=metrics["accuracy"])
        if skipped:
            from .._utils import write_json

            write_json(self.out / "skipped.json", skipped)
        return metrics


Trainer = FinetuneTask  # the earlier name


def finetune(data: Path | str | TrainingData | None = None, config: FinetuneConfig | None = None, *,
             dataset: str | None = None, data_root: Path | str | None = None, out: Path | str | None = None,
             resume: bool = False, progress: bool = False,
             on_epoch_end: Callable[[int, FinetuneTask], None] | None = None, **options: Any) -> dict[str, Any]:
    """Fine-tune a registry backbone with a new head on an image folder or a torchvision dataset.

    ``config`` (or keyword options, see :class:`FinetuneConfig`) says what to train. Writes into ``out``:
    ``config.json``, ``history.csv``, ``curves.png``, ``metrics.json`` + confusion matrix + predictions
    (the ``transferlab run`` format), ``model/`` (a ``finetuned`` model folder) and
    ``checkpoints/{last,best}.pt``. Returns the test metrics (an empty dict on ranks other than 0 under
    ``torchrun``). ``resume=True`` continues an interrupted run in ``out`` exactly. ``on_epoch_end(epoch,
    task)`` is called after each epoch's checkpoint. Training is :class:`FinetuneTask` on
    :func:`transferlab.training.fit`.
    """
    if config is not None and options:
        raise ConfigError(f"pass either a FinetuneConfig or options, not both (got {', '.join(options)})")
    if isinstance(config, dict):  # as config.json records it (transferlab rerun)
        config = FinetuneConfig.from_options(**config)
    cfg = config.resolved() if config is not None else FinetuneConfig.from_options(**options)
    if resume and out is None:  # else a new, empty runs/finetune-<time> would be made and then found empty
        raise ConfigError("--resume needs --out: the folder of the interrupted run")
    ctx = _dist.init_distributed(cfg.device)
    call = {"data": None if data is None or isinstance(data, TrainingData) else str(data), "config": cfg.as_dict(),
            "dataset": dataset, "data_root": None if data_root is None else str(data_root)}
    with contextlib.ExitStack() as stack:
        stack.callback(_dist.shutdown, ctx)
        td = load_data(data, cfg, dataset, data_root)
        inputs = (td.root,) if td.root is not None and dataset is None else ()
        if out is not None and ctx.is_main:  # before the Run writes into it
            check_run_folder(Path(out), LAST, resume, "a fine-tuning run")
        run = stack.enter_context(Run("finetune", "transferlab.finetune.trainer:finetune", call, out, inputs,
                                      resume)) if ctx.is_main else None
        out_dir = Path(_dist.broadcast_object(str(run.out) if run else None, ctx))
        check_run_folder(out_dir, LAST, resume, "a fine-tuning run")
        task = FinetuneTask(cfg, td, out_dir, ctx)
        log = run.log if run else None
        if run is not None:
            run.record(data=td.summary(), dataset=dataset, world_size=ctx.world_size, **cfg.as_dict(),
                       preprocessing=task.bb.preprocessing.as_dict())
            if resume:
                log.info("resuming from %s", out_dir / LAST)

        def after_epoch(state: FitState) -> None:
            row = state.row
            if log:
                log.info("epoch %d/%d train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1f img/s%s",
                         state.epoch, cfg.epochs, row["train_loss"], row["train_acc"], row["val_loss"],
                         row["val_acc"], row["images_per_s"], " | early stop" if state.stopped_early else "")
            if on_epoch_end is not None:
                on_epoch_end(state.epoch, task)

        state = fit(task, task.fit_config(), out_dir, resume=resume, ctx=ctx, progress=progress,
                    on_epoch_end=after_epoch)
        metrics = task.finish(state)
        return {**metrics, "out": str(out_dir)} if metrics else {}
