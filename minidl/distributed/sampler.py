"""DistributedSampler: which samples of a dataset each rank sees, epoch by epoch."""

from __future__ import annotations

import math

import numpy

from minidl import checks
from minidl.distributed.group import get_rank, get_world_size, is_initialized
from minidl.random import Generator


class DistributedSampler:
    """The indices of this rank's shard of a dataset, as PyTorch's DistributedSampler.

    Every epoch all ranks draw the same order (a permutation seeded by ``seed + epoch``, or
    0..N-1 without ``shuffle``), make its length a multiple of R (padded by repeating the
    order from its start, or cut with ``drop_last``), and rank r keeps positions r, r+R,
    r+2R, ...: the shards are disjoint and (up to the padding) cover the dataset. Call
    ``set_epoch(epoch)`` before each epoch, or every epoch repeats the same order.
    """

    def __init__(self, dataset_or_length, num_replicas=None, rank=None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        op = "DistributedSampler"
        if checks.is_int(dataset_or_length):
            n = checks.non_negative_int(dataset_or_length, op, "dataset_or_length")
        elif hasattr(dataset_or_length, "__len__"):
            n = len(dataset_or_length)
        else:
            checks.fail(op, "a dataset (with __len__) or a length", type(dataset_or_length).__name__, TypeError)
        if num_replicas is None or rank is None:
            if not is_initialized():
                checks.fail(op, "num_replicas= and rank=, or init_process_group() called first",
                            f"num_replicas={num_replicas}, rank={rank}", RuntimeError)
        self.num_replicas = checks.positive_int(get_world_size() if num_replicas is None else num_replicas,
                                                op, "num_replicas")
        self.rank = checks.non_negative_int(get_rank() if rank is None else rank, op, "rank")
        if self.rank >= self.num_replicas:
            checks.fail(op, f"rank in [0, {self.num_replicas - 1}] (num_replicas={self.num_replicas})", self.rank)
        self.length, self.shuffle, self.drop_last = n, bool(shuffle), bool(drop_last)
        self.seed, self.epoch = checks.non_negative_int(seed, op, "seed"), 0
        R = self.num_replicas
        self.num_samples = math.ceil((n - R) / R) if drop_last and n % R else math.ceil(n / R)
        self.total_size = self.num_samples * R

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (seed + epoch) for the next pass."""
        self.epoch = checks.non_negative_int(epoch, "DistributedSampler.set_epoch", "epoch")

    def __iter__(self):
        if self.shuffle:
            order = Generator("cpu").manual_seed(self.seed + self.epoch).permutation(self.length)
        else:
            order = numpy.arange(self.length)
        order = order[:self.total_size] if self.drop_last else numpy.resize(order, self.total_size)
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler({self.length} samples, num_replicas={self.num_replicas}, rank={self.rank}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
