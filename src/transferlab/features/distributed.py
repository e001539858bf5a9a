"""Feature extraction shared by torchrun's processes over one feature cache (issue 16).

Under ``torchrun`` every process runs the same command; :class:`ExtractionGroup` joins its process group
with the helpers fine-tuning uses (:mod:`transferlab.training.distributed`: gloo on CPU, nccl on GPUs,
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment). The extractions made inside ``with group:``
are shared: the ranks hash the image files in turn (each its slice, gathered), rank 0 says which cache
entries are missing, each rank computes the missing shards ``s % world == rank`` first and then helps
with the others, from their end, through the cache's non-blocking shard claims (a shard is computed by
whoever locks it first, so a slow rank's shards are picked up by the others), writing them into the shared
cache. A collective then gathers each rank's forward count; rank 0 alone merges the shards (computing any
still missing: a rank that died, or a cache folder the ranks do not share) and returns the features. The
other ranks return empty features: only rank 0 opens the run folder, fits and writes. A group made with
``everywhere=True`` (the studies, whose helpers must see the features to follow rank 0's steps) lets every
rank finalise (the entry's lock makes one of them merge, the others load the merged entry) and returns the
features on every rank.

This is data parallelism in the manner of PyTorch's ``DistributedSampler`` (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training"), with the cache's shard locks in place of
a fixed partition. Without torchrun a group is one process and changes nothing.
"""

from __future__ import annotations

import atexit
import logging
from contextvars import ContextVar
from pathlib import Path
from typing import Sequence

import torch.distributed as dist

from .._utils import file_digest
from ..training.distributed import (DistContext, all_gather_objects, barrier, broadcast_object, init_distributed,
                                    launched_by_torchrun)

log = logging.getLogger(__name__)

_ACTIVE: ContextVar["ExtractionGroup | None"] = ContextVar("transferlab_extraction_group", default=None)


_LEAVE_AT_EXIT: list[bool] = []


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active_group() -> "ExtractionGroup | None":
    """The group the current extraction is shared with (None: this process extracts alone)."""
    return _ACTIVE.get()


class ExtractionGroup:
    """torchrun's ranks, sharing the extractions made inside ``with group:`` (see the module docstring).

    ``ExtractionGroup(device)`` joins the process group when launched by torchrun (a one-process group
    otherwise, which changes nothing); the group stays up for the next verb of the process and is left at
    exit. Every rank must make the same extractions, in the same order, inside the block.
    """

    def __init__(self, device: str = "auto", everywhere: bool = False) -> None:
        self.ctx = init_distributed(device) if launched_by_torchrun() else DistContext()
        if self.ctx.enabled and not _LEAVE_AT_EXIT:
            _LEAVE_AT_EXIT.append(True)
            atexit.register(_leave)
        self.everywhere = everywhere  # features on every rank (else on rank 0 only)
        self.per_rank: list[int] | None = None  # images each rank forwarded in the last shared extraction

    @property
    def enabled(self) -> bool:
        return self.ctx.enabled

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    def __enter__(self) -> "ExtractionGroup":
        self._token = _ACTIVE.set(self if self.enabled else None)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._token)

    def returns_early(self) -> bool:
        """A helper rank that leaves once its shards are written."""
        return not self.is_main and not self.everywhere

    def barrier(self) -> None:
        barrier(self.ctx)

    def help(self, extract) -> None:
        """On a rank other than 0: run ``extract()`` (the extractions rank 0 makes) in the group, return None."""
        with self:
            extract()

    # -- the steps of one shared extraction (called by features.extract) ---------------------------
    def digests(self, paths: Sequence[Path]) -> list[str]:
        """Content hashes of ``paths``, each rank reading every ``world``-th file."""
        mine = {i: file_digest(paths[i]) for i in range(self.ctx.rank, len(paths), self.ctx.world_size)}
        merged: dict[int, str] = {}
        for part in all_gather_objects(mine, self.ctx):
            merged.update(part)
        return [merged[i] for i in range(len(paths))]

    def agree(self, missing: list[str]) -> list[str]:
        """Rank 0's list of the layers whose cache entries are missing."""
        return broadcast_object(missing if self.is_main else None, self.ctx)

    def scratch(self, own: str) -> str:
        """``--no-cache``: rank 0's scratch folder, where a rank on its node sees it (else its own)."""
        folder = broadcast_object(own if self.is_main else None, self.ctx)
        return folder if Path(folder).is_dir() else own

    def order(self, pending: list[int]) -> list[int]:
        """This rank's shards (``s % world == rank``) first, then the others' from their end."""
        rank, world = self.ctx.rank, self.ctx.world_size
        return [s for s in pending if s % world == rank] + [s for s in reversed(pending) if s % world != rank]

    def gather(self, n_forward: int, computed: list[int], entries) -> None:
        """A collective after every rank's shards: records the forward counts per rank; rank 0 warns about the
        shards another rank wrote that it cannot see (a cache folder the ranks do not share)."""
        reports = all_gather_objects((n_forward, sorted(computed)), self.ctx)
        self.per_rank = [count for count, _ in reports]
        if not self.is_main:
            return
        for rank, (_, shards) in enumerate(reports[1:], start=1):
            unseen = [s for s in shards if any(not e.has_shard(s) and not e.is_complete() for e in entries)]
            if unseen:
                folder = next(iter(entries)).folder
                log.warning("rank %d wrote %d shard(s) rank 0 cannot see in %s; rank 0 computes them again. Put "
                            "--cache-dir on a filesystem every node shares", rank, len(unseen), folder.parent.parent)
