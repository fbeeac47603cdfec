"""Compiling and launching the hand-written CUDA kernels (used by the CuPy half of each family).

Each family keeps its kernels in one ``.cu`` file beside its module (``conv.cu`` ...). A file is
compiled once per process by NVRTC (``cupy.RawModule``); ``launch`` starts one kernel over
``threads`` work items. Every kernel walks its items with a grid-stride loop::

    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)

so any grid size is correct and ``launch`` may cap it.

Arguments are passed exactly as the kernel's C signature declares them: device arrays
(C-contiguous, of the pointer's dtype) and numpy scalars of the exact type
(``numpy.int32`` for ``int``, ``numpy.int64`` for ``long long``, ``numpy.float32`` for ``float``).
CuPy does not check them against the signature; minidl.fakecupy does, in the tests.

``upload`` copies a small host table (addresses, sizes) to the device without making the host wait.
"""

from __future__ import annotations

from pathlib import Path

from minidl import backend

HERE = Path(__file__).resolve().parent
OPTIONS = ("--std=c++14",)
BLOCK = 256
MAX_BLOCKS = 65535
_modules: dict = {}  # (the cupy module in use, file name) -> compiled RawModule


def source(filename: str) -> str:
    """The CUDA source of one family, e.g. ``source('conv.cu')``."""
    return (HERE / filename).read_text()


def kernel(filename: str, name: str):
    """The compiled function ``name`` of ``filename`` (compiled on first use, then cached)."""
    cupy = backend.cupy
    key = (id(cupy), filename)
    if key not in _modules:
        _modules[key] = cupy.RawModule(code=source(filename), options=OPTIONS)
    return _modules[key].get_function(name)


def launch(filename: str, name: str, threads: int, args: tuple, block: int = BLOCK) -> None:
    """Run kernel ``name`` over ``threads`` work items (grid-stride loop; blocks of ``block`` threads)."""
    blocks = max(1, min((int(threads) + block - 1) // block, MAX_BLOCKS))
    kernel(filename, name)((blocks,), (block,), args)


def upload(host_array):
    """``host_array`` (numpy) copied to the current device, asynchronously: the host does not wait.

    A copy straight from pageable host memory (plain ``cudaMemcpy``, or CuPy's ``blocking=True``)
    waits until the GPU has finished the work queued before it: a hidden sync in a training step.
    ``cupy.asarray(host_array)`` (CuPy 14, as minidl requires; ``blocking=False``) avoids it: it copies the data
    into a pinned (page-locked) staging buffer from CuPy's pinned pool, queues ``cudaMemcpyAsync`` on
    the current stream, records an event after it and keeps the buffer alive until that event has
    passed (CuPy's watch list, checked without waiting). So ``host_array`` may be reused at once, and a
    kernel queued next on the stream reads the copied data. (A pinned ring of our own with
    ``cupy.cuda.Event``s would do the same again.) On the CPU stand-in ``blocking=True`` counts as a sync.
    """
    return backend.cupy.asarray(host_array, blocking=False)
