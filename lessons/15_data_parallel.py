# %% [markdown]
# # Lesson 15: data-parallel SGD. Two processes with batch 32 each take the steps of one with batch 64.
#
# Data parallelism copies the whole model into every process (a "rank") and gives each rank a
# different shard of every batch. Why that trains the same model as one big batch: for a loss
# that is a MEAN over the samples, a batch $\mathcal{B}$ of $R b$ samples cut into $R$ shards
# $\mathcal{B}_1, \dots, \mathcal{B}_R$ of $b$ each,
#
# $$L(w) = \frac{1}{R b} \sum_{i \in \mathcal{B}} \ell_i(w)
#        = \frac{1}{R} \sum_{r=1}^{R} \left[ \frac{1}{b} \sum_{i \in \mathcal{B}_r} \ell_i(w) \right]
#        = \frac{1}{R} \sum_{r=1}^{R} L_r(w)$$
#
# and differentiation is linear, so
#
# $$\frac{\partial L}{\partial w} = \frac{1}{R} \sum_{r=1}^{R} \frac{\partial L_r}{\partial w}.$$
#
# Each rank computes $\partial L_r / \partial w$ on its own 32 samples; one all-reduce adds the $R$ gradients up
# on every rank, each divides by $R$, and all ranks take the same optimizer step from the same
# weights: the copies stay identical, and the step is the step of batch $R b = 64$. (Two
# conditions: equal shard sizes, hence drop_last; and nothing that mixes samples inside a
# batch, which batch norm does: its statistics would be per shard.)
#
# What this lesson measures:
# 1. the loss curve of $R$ processes x batch 32 (the mean of the shards' losses, itself an
#    all-reduce) against 1 process x batch 64 from the same initial weights and the same order
#    of samples, computed on rank 0: the largest difference is float32 rounding;
# 2. the cost of the communication: seconds in the all-reduces against the whole step, and the
#    bytes each rank sends per step (every gradient, once).
#
# Run:  mpiexec -n 2 python lessons/15_data_parallel.py [--smoke]   (two processes)
#       python lessons/15_data_parallel.py                        (one process: the reference)
# Needs mpi4py for the group (pip install -e '.[distributed]'); without it, plain python runs
# the one-process reference alone. --device cuda uses NCCL (one GPU per rank).

# %% [markdown]
# ## Setup: the process group, arguments, device

# %%
import time
from pathlib import Path

import numpy as np

import common  # lessons/common.py: the flags and set-up every lesson shares
import minidl
import minidl.distributed as dist
import minidl.nn.functional as F
from minidl import datasets, nn, optim, plot
from minidl.data import ArrayDataset, DataLoader

flags = common.parser("Lesson 15: data-parallel SGD over MPI; R x batch 32 against 1 x batch 32R",
                      epochs=20, batch_size=32, out="runs/15_data_parallel")
flags.add_argument("--hidden", type=int, default=512, help="hidden units per layer (default: 512)")
flags.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default: 0.05; momentum 0.9)")
args, _ = flags.parse_known_args()
if args.smoke:
    args.epochs, args.hidden = min(args.epochs, 2), min(args.hidden, 64)

backend = "nccl" if args.device.startswith("cuda") else "mpi"
available = dist.is_nccl_available() if backend == "nccl" else dist.is_mpi_available()
if available:
    dist.init_process_group(backend)  # under mpiexec -n 2: two ranks; under plain python: one
    rank, world = dist.get_rank(), dist.get_world_size()
    if backend == "nccl":
        args.device = str(dist.get_device())  # rank r on GPU r % count
else:
    rank, world = 0, 1
    print(f"{backend} is not available here (pip install -e '.[distributed]'): one process, no group")
say = print if rank == 0 else (lambda *a, **k: None)  # one rank reports
device = common.setup(args)  # seeds, checks the device, makes --out (on every rank)
out = Path(args.out)
lesson_start = time.perf_counter()
say(f"\n{world} process{'es' if world > 1 else ''} ({backend if available else 'no group'}), batch "
    f"{args.batch_size} per rank: steps of batch {args.batch_size * world}")

# %% [markdown]
# ## 1. The data: the same spiral on every rank (each will read only its shard)

# %%
classes = 3
X, y = datasets.spiral(100 if args.smoke else 1000, classes=classes, noise=0.2, seed=args.seed)
dataset = ArrayDataset(X, y)
say(f"spiral: {len(y)} points, {classes} classes")


def mlp():
    return nn.Sequential(nn.Linear(2, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                         nn.Linear(args.hidden, classes)).to(device)


minidl.manual_seed(args.seed + rank)  # a different start on every rank: DDP replaces it with rank 0's
model = mlp()
parameters = sum(p.data.size for p in model.parameters())


# %% [markdown]
# ## 2. One training loop for both runs
#
# The sampler decides which samples a rank sees: every epoch all ranks draw the same permutation
# (seed + epoch) and rank $r$ keeps positions $r, r+R, r+2R, \dots$ So rank $r$'s $k$-th batch of 32 holds
# positions $64k + r, 64k + r + 2, \dots$: together the ranks' $k$-th batches are exactly positions
# $64k, \dots, 64k+63$ of the permutation, the $k$-th batch of 64 of one process using the same permutation.

# %%
def train(model, world_size, rank_here, batch_size, ddp=None):
    """SGD with momentum over the shard of ``rank_here``; returns the per-step losses (a Tensor,
    one host copy at the end) and the per-step seconds of the step and of its all-reduces."""
    sampler = dist.DistributedSampler(len(dataset), world_size, rank_here, seed=args.seed)
    loader = DataLoader(dataset, batch_size, sampler=sampler, drop_last=True, device=device)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    net = model if ddp is None else ddp
    losses, step_seconds, comm_seconds = [], [], []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new order each epoch, the same on every rank
        for xb, yb in loader:
            with common.Stopwatch(device) as clock:
                loss = F.cross_entropy(net(xb), yb)
                opt.zero_grad()
                loss.backward()  # with DDP: ends with the gradients averaged over the ranks
                opt.step()
            losses.append(loss.detach())
            step_seconds.append(clock.seconds)
            comm_seconds.append(0.0 if ddp is None else ddp.comm_stats["seconds"])
    return minidl.stack(losses), np.array(step_seconds), np.array(comm_seconds)


# %% [markdown]
# ## 3. The data-parallel run (a group of one under plain python)

# %%
ddp = dist.DistributedDataParallel(model) if available else None  # broadcasts rank 0's weights
start = {name: value.numpy().copy() for name, value in model.state_dict().items()}  # rank 0's, on every rank
shard_losses, step_s, comm_s = train(model, world, rank, args.batch_size, ddp)
losses = dist.all_reduce(shard_losses, op="mean") if available else shard_losses  # the big batch's loss
curve = losses.numpy()
np.savez(out / f"curve_{world}proc.npz", loss=curve)

with minidl.no_grad():
    accuracy = float((model(minidl.tensor(X, device=device)).argmax(dim=1).numpy() == y).mean())
say(f"\n{world} x batch {args.batch_size}: {len(curve)} steps, loss {curve[0]:.4f} -> {curve[-1]:.4f}, "
    f"training accuracy {accuracy:.1%}")

# %% [markdown]
# ## 4. What the communication costs
#
# Every step each rank sends every gradient once (all-reduce of the buckets), plus a count of the
# parameters it used: $\text{bytes} = 4 \times \text{parameters} + 8 \times \text{tensors}$. Timed on the host around the reduction,
# so it includes waiting for the slower rank: an all-reduce ends only when every rank has arrived.

# %%
if ddp is not None:
    skip = min(5, len(step_s) - 1)  # the first steps warm caches up
    step, comm = np.median(step_s[skip:]), np.median(comm_s[skip:])
    stats = ddp.comm_stats
    say(f"\nper step (median of {len(step_s) - skip}): {1e3 * step:.2f} ms, of which all-reduce {1e3 * comm:.2f} ms "
        f"({comm / step:.0%}) and compute {1e3 * (step - comm):.2f} ms")
    say(f"sent per rank per step: {stats['bytes'] / 2**20:.2f} MiB in {stats['all_reduces']} all-reduces "
        f"({parameters:,} float32 gradients in {len(ddp.buckets)} bucket(s) + the used-parameter counts); "
        f"{stats['bytes'] / max(comm, 1e-9) / 2**30:.2f} GiB/s")

# %% [markdown]
# ## 5. The reference: one process, batch $32 R$, same start, same order (rank 0 computes it)

# %%
if world > 1 and rank == 0:
    reference_model = mlp()
    reference_model.load_state_dict(start)
    reference = train(reference_model, 1, 0, args.batch_size * world)[0].numpy()
    difference = np.abs(curve - reference)
    print(f"\n1 x batch {args.batch_size * world} (reference): loss {reference[0]:.4f} -> {reference[-1]:.4f}")
    spans = [n for n in (10, 100) if n < len(curve)] + [len(curve)]
    print("max |difference| between the two loss curves, over the first " + ", ".join(
        f"{n} steps: {difference[:n].max():.1e}" for n in spans))
    print("(float32 rounding: the runs add the same numbers in another order, and training amplifies\n"
          " the last-bit differences step after step; in float64 the curves agree to 1e-12: tests/test_distributed.py)")
    series = {f"{world} processes x batch {args.batch_size}": curve, f"1 process x batch {args.batch_size * world}":
              reference}
    print(f"saved {common.show(plot.lines(series, out / 'loss_curves.png', xlabel='step', ylabel='training loss', logy=True))}")
elif world == 1:
    say("one process: this is the reference curve; run `mpiexec -n 2 python lessons/15_data_parallel.py` "
        "to train on two and compare")

# %% [markdown]
# ## Measurements for the results table

# %%
say(f"\nlesson 15 | {world} process(es) x batch {args.batch_size} | final loss {curve[-1]:.4f} | training "
    f"accuracy {accuracy:.1%} | wall time {time.perf_counter() - lesson_start:.1f} s | peak memory "
    f"{common.peak_memory(device)} | device {device}")
if available:
    dist.destroy_process_group()
