"""Moved to :mod:`transferlab.training.distributed` (the training engine owns DDP); kept as an alias."""

from ..training.distributed import (DistContext, all_gather_objects, all_reduce_sum, barrier, broadcast_object,
                                    init_distributed, launched_by_torchrun, shard, shutdown, unwrap, wrap_model)

__all__ = ["DistContext", "all_gather_objects", "all_reduce_sum", "barrier", "broadcast_object", "init_distributed",
           "launched_by_torchrun", "shard", "shutdown", "unwrap", "wrap_model"]
