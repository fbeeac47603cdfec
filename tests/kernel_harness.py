"""What the kernel families' tests share (tests/test_kernels_*.py): the CUDA kernels run without a GPU.

* the C signatures: each ``extern "C" __global__ void name(...)`` of a family's .cu file(s), read as
  the C types of its parameters (``'const float* x'`` -> ``'float*'``);
* a checked ``launch``: ``KernelFamily.patch`` replaces the launch function (and backend.cupy by
  numpy) with one that checks every argument against the kernel's signature (C-contiguous arrays of
  the pointer's dtype, numpy scalars of the exact type) and runs the family's EMULATE adapter;
* the CUDA source compiled for the CPU by g++, two ways: ``single_thread_library`` (one "thread" walks
  each grid-stride loop: the kernels' indexing and math) and ``threaded_launch`` (one std::thread per
  CUDA thread, the blocks one after another, __syncthreads a barrier: block reductions too; C++20).

A family is described once in its test file, e.g.
``NORM = KernelFamily({"norm.cu": kn.EMULATE}, ["float*", "long long", "int", "float"])``.
"""

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.kernels import launch

# The numpy type each C type of a kernel parameter stands for (a family names the ones it uses).
C_TYPES = {"float*": np.float32, "bool*": np.bool_, "long long*": np.int64, "long long": np.int64,
           "int": np.int32, "float": np.float32}
KERNEL = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')


def c_type(parameter):
    """'const float* x' -> 'float*', 'long long sn' -> 'long long'."""
    words = parameter.replace("const", "").replace("*", " * ").split()
    return " ".join(words[:-1]).replace(" *", "*")


def kernel_parameters(*filenames):
    """{kernel name: [each parameter as written, e.g. 'const float* x']} of the .cu files."""
    return {name: [" ".join(p.split()) for p in params.split(",")]
            for filename in filenames for name, params in KERNEL.findall(launch.source(filename))}


def signatures(*filenames):
    """{kernel name: [C type of each parameter]} read from the .cu files."""
    return {name: [c_type(p) for p in params] for name, params in kernel_parameters(*filenames).items()}


class KernelFamily:
    """One family's kernels: ``emulate`` maps each .cu file to its EMULATE dict; ``c_types`` names the C
    types its kernels may take; ``launch_owner`` is where its glue finds ``launch`` (conv imports the
    function itself); ``check(name, threads, params, unpacked)`` adds the family's own checks."""

    def __init__(self, emulate, c_types, launch_owner=launch, check=None):
        self.files = {name: filename for filename, table in emulate.items() for name in table}
        self.emulate = {name: adapter for table in emulate.values() for name, adapter in table.items()}
        self.c_types = {t: C_TYPES[t] for t in c_types}
        self.signatures = signatures(*emulate)
        self.launch_owner, self.check = launch_owner, check

    def checked_launch(self, launched):
        """A launch() that checks every argument against the C signature, appends the kernel's name to
        ``launched`` and runs its EMULATE adapter."""

        def checked(filename, name, threads, args, block=launch.BLOCK):
            assert name in self.emulate and filename == self.files[name], f"{name} launched from {filename}"
            params = self.signatures[name]
            assert len(args) == len(params), f"{name}: {len(args)} arguments for {len(params)} parameters"
            unpacked = []
            for i, (arg, param) in enumerate(zip(args, params)):
                if param.endswith("*"):
                    assert (isinstance(arg, np.ndarray) and arg.dtype == self.c_types[param]
                            and arg.flags.c_contiguous), (f"{name} argument {i}: expected a C-contiguous {param} "
                                                          f"array, got {type(arg).__name__} "
                                                          f"{getattr(arg, 'dtype', '')} {getattr(arg, 'strides', '')}")
                    unpacked.append(arg)
                else:
                    assert type(arg) is self.c_types[param], f"{name} argument {i}: {type(arg)} for {param}"
                    unpacked.append(arg.item())
            if self.check is not None:
                self.check(name, threads, params, unpacked)
            launched.append(name)
            self.emulate[name](*unpacked)

        return checked

    def patch(self, monkeypatch):
        """Replace the launch function by ``checked_launch`` and backend.cupy by numpy; returns the list
        of launched kernel names (what a ``kernel_launches`` fixture returns)."""
        launched = []
        monkeypatch.setattr(self.launch_owner, "launch", self.checked_launch(launched))
        monkeypatch.setattr(backend, "cupy", np)
        return launched

    def launches_fixture(self):
        """The test file's ``kernel_launches`` fixture: ``kernel_launches = FAMILY.launches_fixture()``."""

        @pytest.fixture
        def kernel_launches(monkeypatch):
            """launch checks each argument against the C signature and runs the EMULATE adapter (numpy
            standing in for cupy); the fixture is the list of launched kernel names."""
            return self.patch(monkeypatch)

        return kernel_launches

    def launched_by(self, monkeypatch, call):
        """What the glue's ``call()`` returns, and the (name, arguments) it launches, unchecked and not
        run (numpy standing in for cupy): for running them on the compiled source."""
        launched = []
        monkeypatch.setattr(backend, "cupy", np)
        monkeypatch.setattr(self.launch_owner, "launch",
                            lambda filename, name, threads, args, block=launch.BLOCK: launched.append((name, args)))
        return call(), launched


# --------------------------------------------------------------------------- #
# The CUDA source compiled for the CPU by g++
# --------------------------------------------------------------------------- #
C_SCALARS = {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float}


def c_arguments(args):
    """numpy arrays as pointers, numpy scalars as the C types they stand for."""
    return [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else C_SCALARS[type(a)](a.item())
            for a in args]


def _needs_gpp():
    if shutil.which("g++") is None:
        pytest.skip("needs g++")


SINGLE_THREAD_PRELUDE = """
#include <cstring>
#include <math.h>
struct Dim { long long x; };
static const Dim blockIdx = {0}, threadIdx = {0}, blockDim = {1}, gridDim = {1};  // one thread walks the grid
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
#define __global__
#define __device__
#define __forceinline__ inline
"""


def single_thread_library(tmp_path_factory, filename):
    """``filename`` (e.g. 'pool.cu') built as a CPU library: call a kernel as ``library[name](*c_arguments(args))``."""
    _needs_gpp()
    stem = Path(filename).stem
    folder = tmp_path_factory.mktemp(f"{stem}_cu")
    (folder / f"{stem}.cpp").write_text(SINGLE_THREAD_PRELUDE + launch.source(filename))
    subprocess.run(["g++", "-shared", "-fPIC", "-O1", "-o", str(folder / f"{stem}.so"), str(folder / f"{stem}.cpp")],
                   check=True)
    return ctypes.CDLL(str(folder / f"{stem}.so"))


THREADS_PRELUDE = r"""
// The .cu files on the CPU: one std::thread per CUDA thread, the blocks one after another,
// __syncthreads a barrier; checks the kernels' indexing (walks, strides, block reductions).
#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
struct Dim { unsigned x = 0; };
thread_local Dim threadIdx;
Dim blockIdx, blockDim, gridDim;
static std::barrier<>* block_barrier;
#define __global__
#define __device__
#define __shared__ static
static void __syncthreads() { block_barrier->arrive_and_wait(); }
static float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
static float __int_as_float(int v) { float f; std::memcpy(&f, &v, sizeof f); return f; }
"""

RUN_BLOCKS = r"""
static void run_blocks(int grid, int block, const std::function<void()>& kernel) {
    gridDim.x = grid, blockDim.x = block;
    for (int b = 0; b < grid; b++) {
        blockIdx.x = b;
        std::barrier<> barrier(block);
        block_barrier = &barrier;
        std::vector<std::thread> threads;
        for (int t = 0; t < block; t++) threads.emplace_back([t, &kernel] { threadIdx.x = t; kernel(); });
        for (auto& thread : threads) thread.join();
    }
}
"""


def threads_source(*filenames):
    """The C++ harness: the .cu files included, and for each kernel K an ``extern "C" K_(grid, block, ...)``
    that runs K's body on grid x block threads (written from the kernel's own parameter list)."""
    here = Path(launch.HERE)
    lines = [THREADS_PRELUDE, *(f'#include "{here / filename}"' for filename in filenames), RUN_BLOCKS, 'extern "C" {']
    for name, params in kernel_parameters(*filenames).items():
        names = ", ".join(p.split()[-1].lstrip("*") for p in params)
        lines.append(f"void {name}_(int grid_, int block_, {', '.join(params)}) "
                     f"{{ run_blocks(grid_, block_, [=] {{ {name}({names}); }}); }}")
    return "\n".join(lines + ["}"])


def threaded_launch(tmp_path_factory, filenames, grids, default_grid=(3, 32)):
    """A launch() that runs the kernels of ``filenames`` compiled by g++ on CPU threads, with
    ``grids[name]`` (or ``default_grid``) as (blocks, threads per block): small, so every grid-stride
    loop turns. Its ``.launched`` lists the kernels it ran."""
    _needs_gpp()
    folder = tmp_path_factory.mktemp("_".join(Path(f).stem for f in filenames) + "_cu")
    (folder / "harness.cpp").write_text(threads_source(*filenames))
    built = subprocess.run(["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-o", str(folder / "kernels.so"),
                            str(folder / "harness.cpp"), "-lpthread"], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"g++ could not build the harness (C++20 <barrier> needed): {built.stderr[-300:]}")
    library = ctypes.CDLL(str(folder / "kernels.so"))
    launched = []

    def run_on_threads(filename, name, threads, args, block=launch.BLOCK):
        grid, block = grids.get(name, default_grid)
        launched.append(name)
        getattr(library, name + "_")(ctypes.c_int(grid), ctypes.c_int(block), *c_arguments(args))

    run_on_threads.launched = launched
    return run_on_threads


# --------------------------------------------------------------------------- #
# What an op costs on the fake GPU (MINIDL_FAKE_CUDA=1), counted by minidl.fakecupy.meter
# --------------------------------------------------------------------------- #
def measured(forward_step, leaf, repeat=2):
    """The forward and backward measurements of the last of ``repeat`` runs (the first compiles and warms
    up): forward_step() -> output, then output.backward(ones) (the gradient made outside both regions;
    leaf.grad reset first)."""
    from minidl.fakecupy import meter

    for _ in range(repeat):
        leaf.grad = None
        with meter.measure() as forward:
            out = forward_step()
        grad = minidl.ones(*out.shape, device="cuda")
        with meter.measure() as backward:
            out.backward(grad)
    return forward, backward


def reports(forward_step, leaf):
    """(forward report, backward report, (forward sites, backward sites)) of ``measured``."""
    forward, backward = measured(forward_step, leaf)
    return forward.report(), backward.report(), (forward.sites(), backward.sites())
