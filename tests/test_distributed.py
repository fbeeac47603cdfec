"""minidl.distributed: the sampler and the loader's sampler= (no MPI), the group's argument checks,
DistributedDataParallel's buckets and hooks on a stand-in group (in process), then real two-process
runs under ``mpiexec -n 2`` (skipped, saying why, when mpi4py or mpiexec is missing): averaged
gradients, identical parameters, the big-batch loss curve, a failing rank, lesson 15.

The NCCL backend cannot run here (no GPU): its rendezvous and its calls into CuPy's NCCL are
checked against stand-ins of MPI and of ``cupy.cuda.nccl``.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import minidl
import minidl.distributed as dist
import minidl.nn.functional as F
from minidl import nn
from minidl.data import ArrayDataset, DataLoader
from minidl.distributed import group as groups

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120


# --------------------------------------------------------------------------- #
# DistributedSampler and DataLoader(sampler=...)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n, replicas", [(10, 2), (10, 3), (7, 4), (3, 5), (0, 2), (100, 1)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_sampler_shards_are_disjoint_and_complete(n, replicas, shuffle):
    shards = [list(dist.DistributedSampler(n, replicas, r, shuffle=shuffle, seed=1)) for r in range(replicas)]
    assert all(len(s) == -(-n // replicas) for s in shards)  # equal sizes: ceil(n / R)
    together = sorted(i for s in shards for i in s)
    assert set(together) == set(range(n))  # complete
    padding = len(together) - n
    assert padding < replicas and len(set(together)) == n  # disjoint but for the padding repeats
    if not shuffle and n:
        assert shards[0][:2] == [0, replicas][: len(shards[0][:2])]  # rank r takes r, r+R, ...


@pytest.mark.parametrize("n, replicas", [(10, 3), (7, 4), (3, 5), (12, 4)])
def test_sampler_drop_last_cuts_instead_of_padding(n, replicas):
    shards = [list(dist.DistributedSampler(n, replicas, r, seed=2, drop_last=True)) for r in range(replicas)]
    together = [i for s in shards for i in s]
    assert len(together) == len(set(together)) == n // replicas * replicas
    assert all(len(s) == n // replicas for s in shards)


def test_set_epoch_reshuffles_the_same_way_on_every_rank():
    ranks = [dist.DistributedSampler(50, 2, r, seed=7) for r in range(2)]
    epochs = []
    for epoch in range(3):
        for sampler in ranks:
            sampler.set_epoch(epoch)
        shards = [list(s) for s in ranks]
        assert sorted(shards[0] + shards[1]) == list(range(50))  # both ranks drew the same permutation
        epochs.append(shards[0])
    assert epochs[0] != epochs[1] != epochs[2]
    again = dist.DistributedSampler(50, 2, 0, seed=7)
    again.set_epoch(1)
    assert list(again) == epochs[1]  # seed + epoch decides the order, nothing else
    assert list(dist.DistributedSampler(50, 2, 0, seed=8)) != epochs[0]


@pytest.mark.parametrize("kwargs, error, words", [
    ({"num_replicas": 2, "rank": 2}, ValueError, "rank in [0, 1]"),
    ({"num_replicas": 0, "rank": 0}, ValueError, "num_replicas"),
    ({"num_replicas": 2, "rank": 0, "seed": -1}, ValueError, "seed"),
    ({}, RuntimeError, "init_process_group"),
])
def test_sampler_argument_errors(kwargs, error, words):
    with pytest.raises(error, match="DistributedSampler") as info:
        dist.DistributedSampler(10, **kwargs)
    assert words in str(info.value)
    with pytest.raises(TypeError, match="DistributedSampler: expected a dataset"):
        dist.DistributedSampler(object(), 2, 0)


def test_loader_follows_its_sampler():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    sampler = dist.DistributedSampler(10, 2, 1, seed=4)
    loader = DataLoader(ArrayDataset(x, np.arange(10)), batch_size=2, sampler=sampler)
    assert len(loader) == 3  # 5 indices in batches of 2
    labels = np.concatenate([yb.numpy() for _, yb in loader])
    assert labels.tolist() == list(sampler)
    plain = DataLoader(list(x), batch_size=4, sampler=[9, 0, 3])  # any iterable of indices, the slow path too
    assert [b.numpy()[:, 0].tolist() for b in plain] == [[18.0, 0.0, 6.0]]


def test_loader_sampler_errors_name_the_loader():
    data = ArrayDataset(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="DataLoader: sampler is mutually exclusive with shuffle=True"):
        DataLoader(data, sampler=[0, 1], shuffle=True)
    with pytest.raises(TypeError, match="DataLoader: sampler must be an iterable of indices, got int"):
        DataLoader(data, sampler=3)
    with pytest.raises(IndexError, match=r"DataLoader: the sampler gave indices in \[0, 4\]"):
        list(DataLoader(data, sampler=[0, 4]))


# --------------------------------------------------------------------------- #
# The group's functions without a group, and their argument checks
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name, args", [("get_rank", ()), ("get_world_size", ()), ("barrier", ()),
                                        ("all_reduce", (minidl.ones(2),)), ("broadcast", (minidl.ones(2),)),
                                        ("destroy_process_group", ())])
def test_functions_need_a_group(name, args):
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match=f"{name}: expected a process group.*init_process_group"):
        getattr(dist, name)(*args)
    with pytest.raises(RuntimeError, match="DistributedDataParallel: expected a process group"):
        dist.DistributedDataParallel(nn.Linear(2, 2))


def test_init_process_group_checks_its_backend_and_says_what_to_install(monkeypatch):
    with pytest.raises(ValueError, match="init_process_group: expected backend to be one of 'mpi', 'nccl'"):
        dist.init_process_group("gloo")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if mpi4py were not installed
    with pytest.raises(ImportError, match=r"init_process_group: expected mpi4py.*pip install -e '\.\[distributed\]'"):
        dist.init_process_group("mpi")
    monkeypatch.setattr(groups.array_backend, "cupy", None)
    with pytest.raises(ImportError, match="init_process_group: backend 'nccl' expected CuPy built with NCCL"):
        dist.init_process_group("nccl")
    assert not dist.is_nccl_available()
    assert not dist.is_initialized()


# --------------------------------------------------------------------------- #
# DistributedDataParallel on a stand-in group (one process pretending to be rank 0 of 2)
# --------------------------------------------------------------------------- #
class MirrorGroup:
    """Rank 0 of 2, where the other rank's gradient is always ``peer`` times ours: an all-reduce
    gives (1 + peer) * ours and the average (1 + peer) / 2 * ours. Counts the collectives."""

    name, rank, world_size, device = "stand-in", 0, 2, minidl.Device("cpu")

    def __init__(self, peer=3.0):
        self.peer, self.sizes, self.broadcasts = peer, [], 0

    def all_reduce_(self, array, op):
        self.sizes.append(array.size)
        array *= 1 + self.peer

    def broadcast_(self, array, src, op):
        self.broadcasts += 1

    def host_all_reduce_(self, array):
        array *= 2  # the other rank used the same parameters

    def barrier(self):
        pass

    def close(self):
        pass


@pytest.fixture
def group(monkeypatch):
    stand_in = MirrorGroup()
    monkeypatch.setattr(groups, "_group", stand_in)
    return stand_in


def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_gradients_are_averaged_in_buckets(group):
    model, plain = mlp(), mlp()
    plain.load_state_dict(model.state_dict())
    versions = [p._version for p in model.parameters()]
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=100 / 2**20)  # 100 bytes: 25 float32s a bucket
    assert group.broadcasts == 4 and [p._version for p in model.parameters()] == [v + 1 for v in versions]
    assert [[p.shape for p in b] for b in ddp.buckets] == [[(3,)], [(3, 8)], [(8,)], [(8, 4)]]  # last layer first
    x, y = minidl.randn(5, 4), minidl.randint(0, 3, (5,))
    F.cross_entropy(ddp(x), y).backward()
    F.cross_entropy(plain(x), y).backward()
    for p, q in zip(model.parameters(), plain.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), 2.0 * q.grad.numpy(), rtol=1e-6)  # (1 + 3) / 2
    assert group.sizes == [3, 24, 8, 32]  # one all-reduce per bucket, in a fixed order
    assert ddp.comm_stats["all_reduces"] == 5 and ddp.comm_stats["bytes"] == 67 * 4 + 4 * 8
    assert list(ddp.state_dict()) == ["module." + k for k in model.state_dict()]  # PyTorch's keys


def test_one_bucket_under_the_default_cap_and_accumulated_grads(group):
    model = mlp()
    ddp = dist.DistributedDataParallel(model)
    assert len(ddp.buckets) == 1
    x = minidl.randn(5, 4)
    ddp(x).sum().backward()
    first = [p.grad.numpy().copy() for p in model.parameters()]
    ddp(x).sum().backward()  # no zero_grad: .grad holds first + this step's, all averaged together
    for p, g in zip(model.parameters(), first):
        np.testing.assert_allclose(p.grad.numpy(), g + 2.0 * g, rtol=1e-5)  # avg(first + local) = first + 2 local


def test_no_sync_accumulates_locally(group):
    model = mlp()
    ddp = dist.DistributedDataParallel(model)
    x = minidl.randn(5, 4)
    with ddp.no_sync():
        ddp(x).sum().backward()
    assert group.sizes == []
    local = [p.grad.numpy().copy() for p in model.parameters()]
    ddp(x).sum().backward()
    assert group.sizes == [sum(p.data.size for p in model.parameters())]
    for p, g in zip(model.parameters(), local):
        np.testing.assert_allclose(p.grad.numpy(), 2.0 * (g + g), rtol=1e-5)


def test_an_unused_parameter_sends_zeros_and_keeps_none_when_nobody_used_it(group, monkeypatch):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x):
            return self.used(x)

    model = TwoHeads()
    ddp = dist.DistributedDataParallel(model)
    monkeypatch.setattr(group, "host_all_reduce_", lambda counts: None)  # the other rank: no gradients at all
    ddp(minidl.randn(3, 4)).sum().backward()
    assert model.unused.weight.grad is None and model.unused.bias.grad is None
    assert group.sizes == [20]  # the unused parameters' zeros travel in the bucket all the same
    assert model.used.weight.grad is not None


def test_a_backward_that_misses_parameters_fails_the_next_forward(group):
    class AddWithoutGradForB(minidl.Function):
        """y = x + b;  dy/dx = 1, and (wrongly, on purpose) no gradient for b."""

        def forward(self, x, b):
            return x + b

        def backward(self, gy):
            return gy, None

    class Shifted(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.shift = nn.Linear(4, 2), nn.Parameter(minidl.zeros(2))

        def forward(self, x):
            return AddWithoutGradForB()(self.linear(x), self.shift)

    ddp = dist.DistributedDataParallel(Shifted())
    ddp(minidl.randn(2, 4)).sum().backward()  # the forward used `shift`, whose gradient never comes
    assert group.sizes == []  # so nothing was reduced, and another rank would be waiting
    with pytest.raises(RuntimeError, match="DistributedDataParallel: the previous backward reached only 2 of the 3"):
        ddp(minidl.randn(2, 4))


def test_ddp_argument_errors(group):
    with pytest.raises(TypeError, match="DistributedDataParallel: expected a minidl.nn.Module to wrap, got 'list'"):
        dist.DistributedDataParallel([nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="DistributedDataParallel: expected bucket_cap_mb"):
        dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)
    with pytest.raises(ValueError, match="all_reduce: expected op to be one of 'sum', 'mean'"):
        dist.all_reduce(minidl.ones(2), op="max")
    with pytest.raises(TypeError, match="all_reduce: expected a floating-point tensor for op='mean'"):
        dist.all_reduce(minidl.tensor([1, 2]), op="mean")
    with pytest.raises(ValueError, match="broadcast: expected src to be a rank below the world size 2"):
        dist.broadcast(minidl.ones(2), src=2)
    with pytest.raises(RuntimeError, match="init_process_group: already initialised"):
        dist.init_process_group("mpi")


# --------------------------------------------------------------------------- #
# NCCL without a GPU: the rendezvous and the calls, against stand-ins
# --------------------------------------------------------------------------- #
class FakeBcastComm:
    """MPI's Bcast between rank 0 and another rank, in one process: rank 0's comm keeps what it
    sends; the other rank's comm hands those buffers to its calls in the same order."""

    def __init__(self, sent=None):
        self.is_root, self.sent = sent is None, [] if sent is None else list(sent)

    def Bcast(self, buffer, root):  # noqa: N802  (mpi4py's name)
        assert root == 0
        if self.is_root:
            self.sent.append(buffer.copy())
        else:
            buffer[...] = self.sent.pop(0)


@pytest.mark.parametrize("uid", [bytes(range(100, 228)), tuple(range(-64, 64))])  # CuPy >= 13 / older CuPy
def test_the_nccl_id_reaches_every_rank_intact(uid):
    root = FakeBcastComm()
    nccl = SimpleNamespace(get_unique_id=lambda: uid)
    assert groups.share_nccl_id(root, nccl, 0) == uid
    other = FakeBcastComm(root.sent)
    got = groups.share_nccl_id(other, SimpleNamespace(), 1)  # rank 1 never asks NCCL for an id
    assert got == uid and type(got) is type(uid)


def test_nccl_group_calls_cupy_nccl_as_documented():
    calls = []
    nccl = SimpleNamespace(NCCL_FLOAT32=7, NCCL_SUM=0)
    stream = SimpleNamespace(ptr=99, synchronize=lambda: None)
    cupy = SimpleNamespace(ndarray=SimpleNamespace, cuda=SimpleNamespace(get_current_stream=lambda: stream))
    group = object.__new__(groups._NCCLGroup)  # the parts a GPU would make, made by hand
    group.nccl, group.cupy, group.world_size = nccl, cupy, 2
    group.nccl_comm = SimpleNamespace(allReduce=lambda *a: calls.append(("allReduce", a)),
                                      bcast=lambda *a: calls.append(("bcast", a)))
    array = SimpleNamespace(data=SimpleNamespace(ptr=1234), size=10, dtype=np.dtype("float32"))
    group.all_reduce_(array, "all_reduce")
    group.broadcast_(array, 1, "broadcast")
    assert calls == [("allReduce", (1234, 1234, 10, 7, 0, 99)), ("bcast", (1234, 10, 7, 1, 99))]
    with pytest.raises(TypeError, match="all_reduce: the 'nccl' backend expected a GPU tensor, got a ndarray"):
        group.all_reduce_(np.zeros(3, np.float32), "all_reduce")
    array.dtype = np.dtype("complex64")
    with pytest.raises(TypeError, match="all_reduce: expected a dtype NCCL reduces"):
        group.all_reduce_(array, "all_reduce")


# --------------------------------------------------------------------------- #
# Two real processes: mpiexec -n 2
# --------------------------------------------------------------------------- #
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not dist.is_mpi_available(),
    reason="needs mpi4py and mpiexec: pip install -e '.[distributed]'")


def mpiexec(*args, cwd=REPO):
    """``mpiexec -n 2 python -m mpi4py ARGS``: mpi4py's runner aborts the whole job when a rank
    raises, so a failure ends the run instead of leaving the other rank waiting."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env["MPLBACKEND"] = "Agg"
    process = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "mpi4py", *map(str, args)], cwd=cwd,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"mpiexec -n 2 {' '.join(map(str, args))} hung for more than {TIMEOUT_S} s")
    return process.returncode, output


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    code, output = mpiexec(REPO / "tests" / "distributed_worker.py", out)
    assert code == 0, f"the two-process worker failed ({code}):\n{output[-4000:]}"
    return [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]


@pytest.mark.slow
@needs_mpi
def test_collectives_across_two_processes(two_ranks):
    for saved in two_ranks:
        assert saved["world_size"] == 2
        np.testing.assert_array_equal(saved["all_reduce_sum"], [3.0, 6.0, 9.0])  # x + 2x
        np.testing.assert_array_equal(saved["all_reduce_mean"], [3.0, 6.0])  # (x + 2x) / 2
        np.testing.assert_array_equal(saved["broadcast_from_1"], [11.0, 21.0])
        assert saved["all_reduce_version_bump"] == 1


@pytest.mark.slow
@needs_mpi
def test_sampler_shards_across_two_processes(two_ranks):
    for epoch in (0, 1):
        a, b = (saved[f"shard_epoch{epoch}"] for saved in two_ranks)
        assert sorted(set(a) | set(b)) == list(range(101)) and len(a) == len(b) == 51
    assert not np.array_equal(two_ranks[0]["shard_epoch0"], two_ranks[0]["shard_epoch1"])


@pytest.mark.slow
@needs_mpi
def test_gradients_are_the_mean_of_each_ranks_own(two_ranks):
    rank0, rank1 = two_ranks
    np.testing.assert_array_equal(rank0["initial_params"], rank1["initial_params"])  # rank 0's start, broadcast
    assert not np.allclose(rank0["own_grad"], rank1["own_grad"])  # the shards differ...
    mean = (rank0["own_grad"] + rank1["own_grad"]) / 2
    for saved in two_ranks:  # ...and both ranks end with their mean, in several buckets
        np.testing.assert_allclose(saved["ddp_grad"], mean, rtol=0, atol=1e-14)
        assert saved["buckets"] >= 3 and saved["all_reduces_per_step"] == saved["buckets"] + 1


@pytest.mark.slow
@needs_mpi
def test_two_ranks_of_32_follow_one_process_of_64(two_ranks):
    rank0, rank1 = two_ranks
    np.testing.assert_array_equal(rank0["params_per_step"], rank1["params_per_step"])  # identical after every step
    assert not np.allclose(rank0["shard_losses"], rank1["shard_losses"])
    np.testing.assert_allclose(rank0["global_losses"], (rank0["shard_losses"] + rank1["shard_losses"]) / 2)
    np.testing.assert_allclose(rank0["global_losses"], rank0["reference_losses"], rtol=0, atol=1e-12)
    assert rank0["reference_losses"][-1] < rank0["reference_losses"][0]  # it trains


@pytest.mark.slow
@needs_mpi
def test_an_unused_parameter_does_not_hang_the_other_rank(two_ranks):
    expected = two_ranks[1]["unused_own_extra_grad"] / 2  # rank 0 sent zeros for it
    for saved in two_ranks:
        np.testing.assert_allclose(saved["unused_extra_grad"], expected, atol=1e-14)
        assert saved["unused_idle_grad_is_none"] and saved["unused_second_step_done"]


@pytest.mark.slow
@needs_mpi
def test_a_rank_that_raises_fails_the_job_with_its_traceback(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(
        "import minidl, minidl.distributed as dist\n"
        "from minidl import nn\n"
        "dist.init_process_group('mpi')\n"
        "model = dist.DistributedDataParallel(nn.Linear(3, 1))\n"
        "if dist.get_rank() == 1:\n"
        "    raise ValueError('rank 1 broke its batch')\n"
        "model(minidl.randn(4, 3)).sum().backward()  # rank 0 waits here for rank 1's gradients\n"
    )
    code, output = mpiexec(script)
    assert code != 0
    assert "ValueError: rank 1 broke its batch" in output and "Traceback" in output


@pytest.mark.slow
@pytest.mark.lessons
@needs_mpi
def test_lesson_15_smoke_run_on_two_processes(tmp_path):
    code, output = mpiexec(REPO / "lessons" / "15_data_parallel.py", "--smoke", "--out", tmp_path / "out")
    assert code == 0, f"lesson 15 on two processes failed ({code}):\n{output[-4000:]}"
    assert "2 processes" in output and "max |difference|" in output
