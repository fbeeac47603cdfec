"""Run by tests/test_distributed.py as ``mpiexec -n 2 python -m mpi4py tests/distributed_worker.py OUT``.

Each rank computes and saves what it saw to OUT/rank{r}.npz; the test compares the ranks'
files and checks them against references computed here independently (the test does the
asserting, so a failure is reported by pytest with numbers). float64 throughout, so
"equal" can mean 1e-12, not float32's rounding.
"""

import sys
from pathlib import Path

import numpy as np

import minidl
import minidl.distributed as dist
import minidl.nn.functional as F
from minidl import nn, optim
from minidl.data import ArrayDataset, DataLoader

out = Path(sys.argv[1])
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
saved = {"world_size": np.array(world)}

# --- collectives on tensors: in place, versions bump ---
t = minidl.tensor([1.0, 2.0, 3.0]) * (rank + 1)
before = t._version
dist.all_reduce(t)
saved["all_reduce_sum"], saved["all_reduce_version_bump"] = t.numpy(), np.array(t._version - before)
t = minidl.tensor([2.0, 4.0]) * (rank + 1)
saved["all_reduce_mean"] = dist.all_reduce(t, op="mean").numpy()
t = minidl.tensor([10.0 + rank, 20.0 + rank])
saved["broadcast_from_1"] = dist.broadcast(t, src=1).numpy()
dist.barrier()

# --- the sampler: this rank's shard in epochs 0 and 1 ---
sampler = dist.DistributedSampler(101, seed=5)
for epoch in (0, 1):
    sampler.set_epoch(epoch)
    saved[f"shard_epoch{epoch}"] = np.array(list(sampler))


def make_model(seed):
    minidl.manual_seed(seed)  # a different start on each rank: DDP must replace it with rank 0's
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def flat(params):
    return np.concatenate([p.numpy().ravel() for p in params])


# --- one step: the averaged gradient vs this rank's own gradient, computed without DDP ---
data_rng = np.random.default_rng(0)  # the same data on every rank
X, Y = data_rng.standard_normal((256, 4)), data_rng.integers(0, 3, 256)
model = dist.DistributedDataParallel(make_model(100 + rank), bucket_cap_mb=0.0005)  # ~500 B: several buckets
saved["initial_params"] = flat(model.parameters())
saved["buckets"] = np.array(len(model.buckets))
plain = make_model(0)
plain.load_state_dict(model.module.state_dict())
shard = slice(rank * 32, rank * 32 + 32)
x, y = minidl.tensor(X[shard]), minidl.tensor(Y[shard])
F.cross_entropy(model(x), y).backward()
F.cross_entropy(plain(x), y).backward()
saved["ddp_grad"] = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
saved["own_grad"] = np.concatenate([p.grad.numpy().ravel() for p in plain.parameters()])
saved["all_reduces_per_step"] = np.array(model.comm_stats["all_reduces"])


# --- training: 2 ranks x batch 32 against 1 process x batch 64, same start, same order ---
def train(model, loader, sampler, epochs, record_params=False):
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses, params = [], []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            if record_params:
                params.append(flat(model.parameters()))
    return minidl.stack(losses), params


dataset = ArrayDataset(X, Y)
start = make_model(0).state_dict()
model = dist.DistributedDataParallel(make_model(0))
model.module.load_state_dict(start)
sampler = dist.DistributedSampler(dataset, seed=3)
losses, params = train(model, DataLoader(dataset, 32, sampler=sampler, drop_last=True), sampler, 2, True)
saved["shard_losses"] = losses.numpy().copy()
saved["global_losses"] = dist.all_reduce(losses, op="mean").numpy()  # mean of the shard losses
saved["params_per_step"] = np.stack(params)
if rank == 0:
    reference = make_model(0)
    reference.load_state_dict(start)
    one = dist.DistributedSampler(dataset, num_replicas=1, rank=0, seed=3)
    saved["reference_losses"] = train(reference, DataLoader(dataset, 32 * world, sampler=one, drop_last=True),
                                      one, 2)[0].numpy()


# --- unused parameters: rank 0 never uses `extra`, rank 1 does; nobody uses `idle` ---
class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.main, self.extra, self.idle = nn.Linear(4, 2), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x, use_extra):
        return self.main(x) + self.extra(x) if use_extra else self.main(x)


model = dist.DistributedDataParallel(Branchy().double())
plain = Branchy().double()
plain.load_state_dict(model.module.state_dict())
x = minidl.tensor(X[shard])
model(x, rank == 1).sum().backward()
plain(x, rank == 1).sum().backward()
saved["unused_extra_grad"] = model.module.extra.weight.grad.numpy()
saved["unused_own_extra_grad"] = (np.zeros((2, 4)) if plain.extra.weight.grad is None
                                  else plain.extra.weight.grad.numpy())
saved["unused_idle_grad_is_none"] = np.array(model.module.idle.weight.grad is None)
model(x, rank == 1).sum().backward()  # a second step: nothing hangs
saved["unused_second_step_done"] = np.array(True)

np.savez(out / f"rank{rank}.npz", **saved)
dist.destroy_process_group()
