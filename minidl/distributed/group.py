"""The process group: which processes train together, and the collectives between them.

``init_process_group("mpi")`` joins the processes ``mpiexec -n N`` started; ``all_reduce`` and
``broadcast`` act on Tensors in place (through ``copy_``, so versions go up). The work is done
by one small class per backend with the same four methods (``all_reduce_``, ``broadcast_``,
``host_all_reduce_``, ``barrier``) on raw arrays: MPI (mpi4py) for numpy arrays, NCCL (CuPy)
for cupy arrays.
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy

from minidl import backend as array_backend
from minidl import checks
from minidl.autograd import no_grad
from minidl.tensor import Tensor

_group = None  # the process group of this process: an _MPIGroup or an _NCCLGroup
_INSTALL = "pip install -e '.[distributed]' (mpi4py and mpich)"


def init_process_group(backend: str = "mpi") -> None:
    """Join the processes that ``mpiexec -n N`` started into one group ("mpi" or "nccl").

    Run under plain ``python`` it makes a group of one (MPI's singleton start)."""
    global _group
    checks.choice(backend, ("mpi", "nccl"), "init_process_group", "backend")
    if _group is not None:
        raise RuntimeError(f"init_process_group: already initialised (backend {_group.name!r}); "
                           "call destroy_process_group() first")
    nccl = _import_nccl() if backend == "nccl" else None  # before MPI starts: fail early and cheaply
    MPI = _import_mpi()
    _group = _MPIGroup(MPI.COMM_WORLD, MPI) if nccl is None else _NCCLGroup(MPI.COMM_WORLD, MPI, nccl)


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"init_process_group: expected mpi4py (the 'distributed' extra), got {error}; "
                          f"install it with {_INSTALL}") from error
    return MPI


def _import_nccl():
    cupy = array_backend.cupy
    try:
        if cupy is None:
            raise ImportError("cupy is not installed")
        return importlib.import_module(f"{cupy.__name__}.cuda.nccl")
    except ImportError as error:
        raise ImportError(f"init_process_group: backend 'nccl' expected CuPy built with NCCL, got {error}; "
                          "install minidl[cuda12] (or minidl[cuda13]) on a machine with NVIDIA GPUs, "
                          "or use backend='mpi' for CPU tensors") from error


def is_mpi_available() -> bool:
    """True when mpi4py can be imported (``init_process_group('mpi')`` will work)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_nccl_available() -> bool:
    """True when CuPy with NCCL can be imported (and mpi4py, which carries NCCL's id)."""
    try:
        _import_nccl()
    except ImportError:
        return False
    return is_mpi_available()


def is_initialized() -> bool:
    return _group is not None


def _require(op: str):
    if _group is None:
        raise RuntimeError(f"{op}: expected a process group, got none; call "
                           "minidl.distributed.init_process_group() first")
    return _group


def get_rank() -> int:
    """This process' number, 0 .. world_size - 1."""
    return _require("get_rank").rank


def get_world_size() -> int:
    """How many processes are in the group."""
    return _require("get_world_size").world_size


def get_device() -> array_backend.Device:
    """Where this rank's tensors belong: 'cpu' for "mpi", 'cuda:{rank % GPUs}' for "nccl"."""
    return _require("get_device").device


def barrier() -> None:
    """Wait until every rank has called barrier()."""
    _require("barrier").barrier()


def destroy_process_group() -> None:
    """Leave the group (MPI itself is finalised when the process exits, as mpi4py does)."""
    global _group
    _require("destroy_process_group").close()
    _group = None


def all_reduce(tensor, op: str = "sum"):
    """Every rank's ``tensor`` becomes sum_r tensor_r ("sum") or 1/R sum_r tensor_r ("mean"),
    written in place (its version goes up); not recorded for autograd. Returns ``tensor``."""
    group = _require("all_reduce")
    checks.tensor_input(tensor, "all_reduce", "a Tensor")
    checks.choice(op, ("sum", "mean"), "all_reduce", "op")
    if op == "mean" and tensor.dtype.kind not in "fc":
        checks.fail("all_reduce", "a floating-point tensor for op='mean'", str(tensor.dtype), TypeError)
    buffer = tensor.data.copy()  # contiguous, and the tensor changes only through copy_
    group.all_reduce_(buffer, "all_reduce")
    if op == "mean":
        buffer /= group.world_size
    with no_grad():
        tensor.copy_(Tensor.wrap(buffer))
    return tensor


def broadcast(tensor, src: int = 0):
    """Every rank's ``tensor`` takes rank ``src``'s values, in place (its version goes up)."""
    group = _require("broadcast")
    checks.tensor_input(tensor, "broadcast", "a Tensor")
    src = checks.integer(src, "broadcast", "src", minimum=0)
    if src >= group.world_size:
        checks.fail("broadcast", f"src to be a rank below the world size {group.world_size}", src)
    buffer = tensor.data.copy()
    group.broadcast_(buffer, src, "broadcast")
    with no_grad():
        tensor.copy_(Tensor.wrap(buffer))
    return tensor


class _MPIGroup:
    """Collectives on numpy arrays over MPI: Allreduce(IN_PLACE) and Bcast, written in place."""

    name = "mpi"

    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.rank, self.world_size = comm.Get_rank(), comm.Get_size()
        self.device = array_backend.Device("cpu")

    def _check(self, array, op):
        if not isinstance(array, numpy.ndarray):
            raise TypeError(f"{op}: the 'mpi' backend expected a CPU tensor, got one on "
                            f"{array_backend.device_of(array)}; use init_process_group('nccl') for GPU tensors")

    def all_reduce_(self, array, op):
        self._check(array, op)
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def broadcast_(self, array, src, op):
        self._check(array, op)
        self.comm.Bcast(array, root=src)

    def host_all_reduce_(self, array):
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def barrier(self):
        self.comm.Barrier()

    def close(self):
        pass


class _NCCLGroup(_MPIGroup):
    """Collectives on cupy arrays with NCCL, on the current stream; MPI for set-up and barriers.

    Written against CuPy's documented API (cupy.cuda.nccl.NcclCommunicator(ndev, commId, rank),
    allReduce(sendbuf, recvbuf, count, datatype, op, stream), bcast(buff, count, datatype,
    root, stream)); it has not run here: no GPU was lent to the session that wrote it."""

    name = "nccl"

    def __init__(self, comm, MPI, nccl):
        super().__init__(comm, MPI)
        cupy = array_backend.cupy
        gpus = cupy.cuda.runtime.getDeviceCount()
        if gpus < 1:
            checks.fail("init_process_group", "at least one GPU for backend 'nccl'", gpus, RuntimeError)
        self.device = array_backend.Device(f"cuda:{self.rank % gpus}")
        cupy.cuda.Device(self.device.index).use()  # NCCL binds a communicator to the current GPU
        self.nccl, self.cupy = nccl, cupy
        self.nccl_comm = nccl.NcclCommunicator(self.world_size, share_nccl_id(comm, nccl, self.rank), self.rank)

    def _check(self, array, op):
        if not isinstance(array, self.cupy.ndarray):
            raise TypeError(f"{op}: the 'nccl' backend expected a GPU tensor, got a {type(array).__name__}; "
                            "move it with .to(dist.get_device()) or use init_process_group('mpi')")
        if array.dtype.name not in _NCCL_DTYPES:
            checks.fail(op, f"a dtype NCCL reduces ({', '.join(_NCCL_DTYPES)})", array.dtype.name, TypeError)

    def _args(self, array):
        return array.data.ptr, array.size, getattr(self.nccl, _NCCL_DTYPES[array.dtype.name])

    def all_reduce_(self, array, op):
        self._check(array, op)
        pointer, count, dtype = self._args(array)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.nccl_comm.allReduce(pointer, pointer, count, dtype, self.nccl.NCCL_SUM, stream)

    def broadcast_(self, array, src, op):
        self._check(array, op)
        self.nccl_comm.bcast(*self._args(array), src, self.cupy.cuda.get_current_stream().ptr)

    def barrier(self):
        self.cupy.cuda.get_current_stream().synchronize()
        self.comm.Barrier()

    def close(self):
        self.nccl_comm.destroy()


_NCCL_DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
                "int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32", "int64": "NCCL_INT64"}


def share_nccl_id(comm, nccl, rank: int):
    """Rank 0 asks NCCL for a unique id; every rank receives a copy over MPI (two Bcasts of
    numpy arrays, no pickles). CuPy >= 13 gives the id as bytes, older CuPy as a tuple of ints."""
    header = numpy.zeros(2, numpy.int64)  # (1 if bytes else 0, length)
    payload = None
    if rank == 0:
        uid = nccl.get_unique_id()
        is_bytes = isinstance(uid, bytes)
        payload = numpy.frombuffer(uid, numpy.uint8) if is_bytes else numpy.asarray(uid)
        payload = payload.astype(numpy.int16)  # bytes 0..255 and C chars -128..127 both fit
        header[:] = int(is_bytes), len(payload)
    comm.Bcast(header, root=0)
    if rank != 0:
        payload = numpy.empty(int(header[1]), numpy.int16)
    comm.Bcast(payload, root=0)
    return bytes(payload.astype(numpy.uint8)) if header[0] else tuple(int(v) for v in payload)
