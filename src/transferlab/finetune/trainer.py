"""One fine-tuning loop: validation carved from train, early stopping, resumable, NaN-guarded, DDP-ready.

Protocol (report 001, sections 1.6.3-1.6.5: 80 % train / 20 % validation, test kept apart): a seeded,
stratified validation split is carved from the training images; the best epoch is chosen on
validation accuracy only (ties: lower validation loss) and early stopping watches the same number;
the test images are evaluated once, at the end, with the best weights.

Robustness (report 004's ResNet kept training for ten epochs on a NaN loss): a checkpoint is written
after every epoch (model, optimiser, scheduler, AMP scaler, RNG state, history) and ``resume=True``
continues exactly where it stopped; a non-finite loss stops the run at once and the last good
checkpoint stays intact.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from .._utils import text_digest
from ..backbones import load_backbone
from ..data import collate_skipping
from ..errors import ConfigError, TrainingError
from ..runs import attach_log, detach_log, make_run_dir, write_config
from ..training import History, capture_rng_state, check_finite, load_checkpoint, restore_rng_state, save_checkpoint
from . import augment as _augment
from . import distributed as _dist
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
    """Registry backbone with its weights, the new head (uniform), the freeze policy applied."""
    bb = load_backbone(cfg.backbone, weights=cfg.weights, seed=cfg.seed, preprocessing_mode=cfg.preprocess)
    torch.manual_seed(cfg.seed)  # the new head's initialisation
    replace_head(bb.model, bb.spec, num_classes)
    frozen = apply_freeze(bb.model, bb.spec, cfg.freeze)
    return bb, frozen


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


class Trainer:
    """Runs one fine-tuning job into ``out`` (see :func:`finetune`)."""

    def __init__(self, cfg: FinetuneConfig, data: TrainingData, out: Path, ctx: _dist.DistContext,
                 progress: bool = False, on_epoch_end: Callable[[int, "Trainer"], None] | None = None) -> None:
        self.cfg, self.data, self.out, self.ctx = cfg, data, out, ctx
        self.progress, self.on_epoch_end = progress, on_epoch_end
        self.epoch = 0
        train_pos, val_pos = split_validation([lab for _, lab in data.train], cfg.val_fraction, cfg.seed,
                                                       data.classes)
        self.train_items = [data.train[i] for i in train_pos]
        self.val_items = [data.train[i] for i in val_pos]
        self.split_digest = text_digest([data.describe(r) for r, _ in self.train_items],
                                        [data.describe(r) for r, _ in self.val_items])
        self.bb, self.frozen = build_network(cfg, len(data.classes))
        self.net = self.bb.model.to(ctx.device)
        self.model = _dist.wrap_model(self.net, ctx, ctx.enabled and has_auxiliary_outputs(self.bb.spec))
        self.optimizer = make_optimizer(self.net, self.bb.spec, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.use_amp = bool(cfg.amp and ctx.device.type == "cuda")  # mixed precision on GPU only
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        pre = self.bb.preprocessing
        self.train_set = ItemDataset(data, self.train_items, _augment.train_transform(pre, cfg.augment))
        self.val_set = ItemDataset(data, self.val_items, _augment.eval_transform(pre))
        self.test_set = ItemDataset(data, data.test, _augment.eval_transform(pre))
        self.history = History()
        self.best = {"val_acc": -1.0, "val_loss": math.inf, "epoch": 0, "bad_epochs": 0}
        self.stopped_early = False
        self.failures: dict[str, str] = {}
        self._coverage_done = False
        self.log = attach_log(out) if ctx.is_main else None

    # ----------------------------------------------------------------------------- checkpoints
    def _checkpoint_state(self) -> dict[str, Any]:
        rngs = _dist.all_gather_objects(capture_rng_state(), self.ctx)
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rngs,
                "epoch": self.epoch, "history": self.history.rows, "best": dict(self.best),
                "stopped_early": self.stopped_early, "config": self.cfg.fingerprint(),
                "split": self.split_digest, "world_size": self.ctx.world_size}

    def resume(self) -> None:
        """Restore model, optimiser, scheduler, scaler, RNG, epoch, history and best from ``last.pt``."""
        state = load_checkpoint(self.out / LAST, map_location="cpu")  # RNG states must stay on the CPU
        changed = {k: (v, state["config"].get(k)) for k, v in self.cfg.fingerprint().items()
                   if state["config"].get(k) != v}
        if changed:
            text = "; ".join(f"{k}: checkpoint {old!r}, now {new!r}" for k, (new, old) in changed.items())
            raise TrainingError(f"cannot resume {self.out}: the options differ from the interrupted run ({text}); "
                                "rerun with the same options or choose another --out")
        if state["split"] != self.split_digest:
            raise TrainingError(f"cannot resume {self.out}: the training/validation images differ from the "
                                "interrupted run's (the data folder changed)")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        restore_rng_state(rngs[self.ctx.rank] if len(rngs) == self.ctx.world_size else rngs[0])
        self.epoch, self.best = int(state["epoch"]), dict(state["best"])
        self.history = History(state["history"])
        self.stopped_early = bool(state["stopped_early"])
        if self.log:
            self.log.info("resumed from %s at epoch %d", self.out / LAST, self.epoch)

    def _save(self, improved: bool) -> None:
        state = self._checkpoint_state()  # collective (RNG gather): every rank takes part
        if self.ctx.is_main:
            if improved:
                save_checkpoint(self.out / BEST, model=self.net.state_dict(), epoch=self.epoch)
            save_checkpoint(self.out / LAST, **state)
            self.history.to_csv(self.out / "history.csv")
        _dist.barrier(self.ctx)

    # ----------------------------------------------------------------------------- epochs
    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, y)

    def _train_epoch(self, bar) -> dict[str, float]:
        cfg, ctx = self.cfg, self.ctx
        sampler = DistributedSampler(self.train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=False)
        sampler.set_epoch(self.epoch)
        loader = DataLoader(self.train_set, batch_sampler=_batches(list(sampler), cfg.batch_size),
                            num_workers=cfg.workers, collate_fn=collate_skipping, pin_memory=ctx.device.type == "cuda")
        set_train_mode(self.model)
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        last = self.out / LAST if (self.out / LAST).is_file() else None
        loss_sum, correct, seen, positions = 0.0, 0, 0, []
        task = bar.add_task(f"epoch {self.epoch + 1}/{cfg.epochs}", total=len(loader), loss=0.0, acc=0.0, ips=0.0)
        start = time.perf_counter()
        for step, (x, y, pos, failed) in enumerate(loader):
            self._note_failures(self.train_items, failed)
            # Every process must agree to take this step: under DDP a process that skipped alone would leave
            # the others waiting forever in the loss and gradient all-reduces. So when any process got a
            # batch in which no image could be decoded, all of them skip it (its decodable images are lost
            # for this epoch only, and listed as usual in skipped.json).
            ready = _dist.all_reduce_sum([float(x is not None)], ctx)[0] if ctx.enabled else float(x is not None)
            if ready < ctx.world_size:
                bar.advance(task)
                continue
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            with torch.autocast(device_type=ctx.device.type, dtype=torch.float16, enabled=self.use_amp):
                logits = logits_of(self.model(x))
                loss = self._loss(logits.float(), y)
            probe = _dist.all_reduce_sum([float(loss.detach())], ctx)[0] if ctx.enabled else loss
            check_finite(probe, what="training loss", epoch=self.epoch + 1, step=step + 1, checkpoint=last)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = int(y.numel())
            loss_sum += float(loss.detach()) * n
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += n
            positions.extend(int(p) for p in pos)
            elapsed = time.perf_counter() - start
            bar.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen, ips=seen * ctx.world_size / elapsed)
        elapsed = time.perf_counter() - start
        bar.remove_task(task)
        loss_sum, correct, seen = _dist.all_reduce_sum([loss_sum, correct, seen], ctx)
        self._record_coverage(positions)
        if seen == 0:
            raise TrainingError("no training image could be read in this epoch; check the data folder")
        return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "train_images": int(seen),
                "images_per_s": seen / elapsed, "epoch_time_s": elapsed}

    @torch.no_grad()
    def _evaluate(self, dataset: ItemDataset, items) -> tuple[float, float, list[tuple[int, int, int]]]:
        """(mean loss, accuracy, [(position, true, predicted)]) over this rank's shard, reduced over ranks."""
        shard = Subset(dataset, _dist.shard(len(dataset), self.ctx))
        loader = DataLoader(shard, batch_size=self.cfg.batch_size, shuffle=False, num_workers=self.cfg.workers,
                            collate_fn=collate_skipping)
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

    # ----------------------------------------------------------------------------- run
    def fit(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        cfg = self.cfg
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[ips]:.1f} img/s"),
                   TimeRemainingColumn()]
        with Progress(*columns, disable=not (self.progress and self.ctx.is_main), transient=True) as bar:
            while self.epoch < cfg.epochs and not self.stopped_early:
                train = self._train_epoch(bar)
                lr = self.optimizer.param_groups[0]["lr"]
                self.scheduler.step()
                val_loss, val_acc, _ = self._evaluate(self.val_set, self.val_items)
                check_finite(val_loss, what="validation loss", epoch=self.epoch + 1,
                             checkpoint=self.out / LAST if (self.out / LAST).is_file() else None)
                self.epoch += 1
                self.history.append(epoch=self.epoch, train_loss=train["train_loss"], train_acc=train["train_acc"],
                                    val_loss=val_loss, val_acc=val_acc, lr=lr, train_images=train["train_images"],
                                    images_per_s=train["images_per_s"], epoch_time_s=train["epoch_time_s"])
                improved = (val_acc, -val_loss) > (self.best["val_acc"], -self.best["val_loss"])
                if improved:
                    self.best = {"val_acc": val_acc, "val_loss": val_loss, "epoch": self.epoch, "bad_epochs": 0}
                else:
                    self.best["bad_epochs"] += 1
                    self.stopped_early = cfg.patience is not None and self.best["bad_epochs"] >= cfg.patience
                self._save(improved)
                if self.log:
                    self.log.info("epoch %d/%d train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1f img/s%s",
                                  self.epoch, cfg.epochs, train["train_loss"], train["train_acc"], val_loss, val_acc,
                                  train["images_per_s"], " | early stop" if self.stopped_early else "")
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self.epoch, self)

    def finish(self) -> dict[str, Any]:
        """Best weights -> the one test evaluation, metrics.json, curves, saved model."""
        best = load_checkpoint(self.out / BEST, map_location="cpu")
        self.net.load_state_dict(best["model"])
        _, _, rows = self._evaluate(self.test_set, self.data.test)
        failures = {k: v for part in _dist.all_gather_objects(self.failures, self.ctx) for k, v in part.items()}
        skipped = {**dict(self.data.skipped), **failures}  # rejected by the folder scan + failed to decode
        if not self.ctx.is_main:
            return {}
        from ..classify.evaluate import write_evaluation

        positions = [r[0] for r in rows]
        paths = [self.data.describe(self.data.test[p][0]) for p in positions]
        speeds = [r["images_per_s"] for r in self.history.rows if r.get("images_per_s")]
        metrics = write_evaluation(
            self.out, [r[1] for r in rows], [r[2] for r in rows], self.data.classes, paths,
            method="finetune", backbone=self.cfg.backbone, weights=self.bb.weights_id, freeze=self.cfg.freeze,
            augment=self.cfg.augment, best_epoch=int(self.best["epoch"]), epochs_run=len(self.history.rows),
            stopped_early=self.stopped_early, val_accuracy=float(self.best["val_acc"]),
            n_train=len(self.train_items), n_val=len(self.val_items), n_failed=len(failures),
            n_skipped=len(skipped), train_images_per_s=float(np.mean(speeds)) if speeds else None,
            world_size=self.ctx.world_size)
        self.history.to_csv(self.out / "history.csv")
        self.history.plot(self.out / "curves.png", {"loss": ["train_loss", "val_loss"],
                                                    "accuracy": ["train_acc", "val_acc"]},
                          title=f"{self.cfg.backbone} (freeze {self.cfg.freeze}, augment {self.cfg.augment})")
        save_finetuned(self.out / "model", self.net, backbone=self.cfg.backbone, weights_id=self.bb.weights_id,
                       classes=self.data.classes, preprocessing=self.bb.preprocessing, freeze=self.cfg.freeze,
                       augment=self.cfg.augment, best_epoch=int(self.best["epoch"]),
                       test_accuracy=metrics["accuracy"])
        if skipped:
            from .._utils import write_json

            write_json(self.out / "skipped.json", skipped)
        return metrics


def finetune(data: Path | str | TrainingData | None = None, config: FinetuneConfig | None = None, *,
             dataset: str | None = None, data_root: Path | str | None = None, out: Path | str | None = None,
             resume: bool = False, progress: bool = False,
             on_epoch_end: Callable[[int, Trainer], None] | None = None, **options: Any) -> dict[str, Any]:
    """Fine-tune a registry backbone with a new head on an image folder or a torchvision dataset.

    ``config`` (or keyword options, see :class:`FinetuneConfig`) says what to train. Writes into ``out``:
    ``config.json``, ``history.csv``, ``curves.png``, ``metrics.json`` + confusion matrix + predictions
    (the ``transferlab run`` format), ``model/`` (a ``finetuned`` model folder) and
    ``checkpoints/{last,best}.pt``. Returns the test metrics (an empty dict on ranks other than 0 under
    ``torchrun``). ``resume=True`` continues an interrupted run in ``out`` exactly.
    """
    if config is not None and options:
        raise ConfigError(f"pass either a FinetuneConfig or options, not both (got {', '.join(options)})")
    cfg = config.resolved() if config is not None else FinetuneConfig.from_options(**options)
    if resume and out is None:  # else a new, empty runs/finetune-<time> would be made and then found empty
        raise ConfigError("--resume needs --out: the folder of the interrupted run")
    ctx = _dist.init_distributed(cfg.device)
    out_dir: Path | None = None
    try:
        td = load_data(data, cfg, dataset, data_root)
        inputs = (td.root,) if td.root is not None and dataset is None else ()
        run_dir = make_run_dir(out, "finetune", inputs=inputs) if ctx.is_main else None
        out_dir = Path(_dist.broadcast_object(str(run_dir) if run_dir else None, ctx))
        has_last = (out_dir / LAST).is_file()
        if resume and not has_last:
            raise TrainingError(f"--resume: no checkpoint in {out_dir / LAST}; start without --resume")
        if has_last and not resume:
            raise TrainingError(f"{out_dir} already holds a fine-tuning run ({LAST}); pass --resume to continue it "
                                "or choose another --out")
        trainer = Trainer(cfg, td, out_dir, ctx, progress=progress, on_epoch_end=on_epoch_end)
        if resume:
            trainer.resume()
        elif ctx.is_main:
            write_config(out_dir, {"command": "finetune", "data": td.summary(), "dataset": dataset,
                                   "world_size": ctx.world_size, **cfg.as_dict()})
        trainer.fit()
        metrics = trainer.finish()
        return {**metrics, "out": str(out_dir)} if metrics else {}
    finally:
        if out_dir is not None:
            detach_log(out_dir)
        _dist.shutdown(ctx)
