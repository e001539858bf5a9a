"""Data-parallel training with PyTorch's own engine: DistributedDataParallel + DistributedSampler.

Any task on :func:`~transferlab.training.fit` (``transferlab finetune`` ...) run under ``torchrun
--nproc_per_node=N`` finds the ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` variables torchrun sets, joins the process group (``nccl`` on
GPUs, ``gloo`` on CPU), wraps the network in :class:`~torch.nn.parallel.DistributedDataParallel` and
shards the training set with :class:`~torch.utils.data.DistributedSampler` (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training"). We use DDP directly rather than
Lightning Fabric: it is part of torch (no new dependency) and the loop needs nothing more.
Without those variables everything below is a no-op and training runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .._utils import resolve_device
from ..errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size, its device, and whether a process group is up."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_main_process() -> bool:
    """True in a process not launched by torchrun, and on torchrun's rank 0 (the one that writes)."""
    return not launched_by_torchrun() or os.environ["RANK"] == "0"


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun; otherwise a one-process context."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    wanted = resolve_device(device)
    if wanted.type == "cuda":
        if torch.cuda.device_count() <= local_rank:
            raise ConfigError(f"torchrun started local rank {local_rank} but only {torch.cuda.device_count()} CUDA "
                              "GPU(s) are visible; lower --nproc_per_node or use --device cpu")
        torch.cuda.set_device(local_rank)
        device_, backend = torch.device("cuda", local_rank), "nccl"
    elif wanted.type == "cpu":
        device_, backend = torch.device("cpu"), "gloo"
    else:
        raise ConfigError(f"distributed training supports cuda (nccl) and cpu (gloo); got --device {device}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device_, backend=backend)


def wrap_model(model: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """DDP-wrap ``model`` (already on ``ctx.device``) when distributed; otherwise return it unchanged.

    ``find_unused_parameters``: for networks with auxiliary heads (Inception v3), whose outputs the
    loss ignores, so DDP must not wait for their gradients (see ``head.has_auxiliary_outputs``).
    """
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) \
        else model


def shard(n: int, ctx: DistContext) -> list[int]:
    """Positions ``rank, rank + world, ...`` of ``n`` items (evaluation: no padding, no duplicates)."""
    return list(range(ctx.rank, n, ctx.world_size))


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few numbers over all processes (float64)."""
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """One picklable object per process, in rank order."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's object on every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
