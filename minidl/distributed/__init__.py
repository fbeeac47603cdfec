"""Data-parallel training: one copy of the model per process, each process a shard of every batch.

Why averaging gradients is enough. A batch B of R*b samples is cut into R shards B_1..B_R of
b samples, one per process (rank). For a loss that is a mean over samples,

    L(w) = 1/(R b) sum_{i in B} l_i(w) = 1/R sum_r [ 1/b sum_{i in B_r} l_i(w) ] = 1/R sum_r L_r(w)

so  dL/dw = 1/R sum_r dL_r/dw:  the big-batch gradient is the mean of the shard gradients.
Each rank computes dL_r/dw on its shard, one all-reduce sums them and every rank divides by
R; every rank then takes the same optimizer step from the same weights, and the copies stay
identical without ever sending a weight again. (With unequal shards the mean is weighted
differently: keep every rank's batch the same size, e.g. ``drop_last=True``.)

    import minidl.distributed as dist
    dist.init_process_group("mpi")                   # launched as: mpiexec -n 2 python train.py
    sampler = dist.DistributedSampler(dataset, seed=0)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler, drop_last=True)
    model = dist.DistributedDataParallel(make_model())  # rank 0's weights, copied to every rank
    for epoch in range(epochs):
        sampler.set_epoch(epoch)                     # a new order, the same on every rank
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()   # backward ends with averaged grads

The pieces, one file each: ``group.py`` (the process group and its collectives:
init_process_group, all_reduce, broadcast, barrier), ``sampler.py`` (DistributedSampler: which
samples a rank sees), ``parallel.py`` (DistributedDataParallel: when and how gradients are
averaged).

Backends: "mpi" (mpi4py; CPU tensors, numpy buffers) and "nccl" (CuPy's ``cupy.cuda.nccl``;
GPU tensors; rank r uses GPU r % count, and the NCCL id travels over MPI, so it also needs
mpi4py). No transport of our own. mpi4py is optional: ``pip install -e '.[distributed]'``.
"""

from minidl.distributed.group import (
    all_reduce,
    barrier,
    broadcast,
    destroy_process_group,
    get_device,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
    is_mpi_available,
    is_nccl_available,
)
from minidl.distributed.parallel import DistributedDataParallel
from minidl.distributed.sampler import DistributedSampler

__all__ = [
    "DistributedDataParallel", "DistributedSampler", "all_reduce", "barrier", "broadcast",
    "destroy_process_group", "get_device", "get_rank", "get_world_size", "init_process_group",
    "is_initialized", "is_mpi_available", "is_nccl_available",
]
