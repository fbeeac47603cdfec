"""cupy's own API in the stand-in: moving data, devices, memory, random numbers, RawModule.

``RawModule(code=...)``/``RawKernel(code, name)`` run a hand-written CUDA kernel without a GPU:
the call ``kernel(grid, block, args)`` reads the ``extern "C" __global__ void name(...)``
signature from the source, checks every argument as the GPU would need it (a pointer takes a
C-contiguous device array of the pointee's dtype; a scalar takes a numpy scalar of exactly that
type: a Python int or float is refused, because cupy would pass it with the wrong width), counts
one launch and calls ``minidl.kernels.EMULATORS[name]`` with the numpy payloads.
"""

from __future__ import annotations

import os
import re
import types

import numpy

from minidl.fakecupy import meter
from minidl.fakecupy.arrays import _device, _unwrap, ndarray

# --------------------------------------------------------------------------- #
# moving data
# --------------------------------------------------------------------------- #


def array(obj, dtype=None, copy=True, order="K", ndmin=0, *, blocking=False):
    """A device copy of ``obj`` (host arrays, lists, scalars, device arrays).

    From the host, as CuPy 14 copies: through a pinned staging buffer, asynchronously (no sync);
    ``blocking=True`` makes the host wait for the copy: counted as a sync."""
    raw = _unwrap(obj, allow_host=True)
    if isinstance(obj, ndarray):
        meter.launch()  # a device-to-device copy
    else:
        meter.transfer_in(numpy.asarray(raw).nbytes)
        if blocking:
            meter.sync(0)
    return _device(numpy.array(raw, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, blocking=False):
    """``a`` on the device: itself when it is already there with that dtype, else a copy (see ``array``)."""
    if isinstance(a, ndarray) and (dtype is None or a.dtype == numpy.dtype(dtype)) and order is None:
        return a
    return array(a, dtype=dtype, order=order or "K", blocking=blocking)


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(order=order) if isinstance(a, ndarray) else numpy.asarray(a, order=order)


# --------------------------------------------------------------------------- #
# devices and memory
# --------------------------------------------------------------------------- #
class _CudaDevice:
    """cupy.cuda.Device: one fake GPU, id 0."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def __enter__(self):
        if self.id != 0:
            raise RuntimeError(f"cudaErrorInvalidDevice: fakecupy has one GPU (0), not {self.id}")
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        meter.sync(0)


cuda = types.SimpleNamespace(Device=_CudaDevice, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))


class _MemoryPool:
    """cupy's memory pool: reports the live device bytes the meter tracks (no caching)."""

    used_bytes = total_bytes = staticmethod(lambda: meter.STATE.live_bytes)
    free_all_blocks = staticmethod(lambda: None)


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


# --------------------------------------------------------------------------- #
# cuBLAS's compute type (TF32): cupy._core.set_compute_type / get_compute_type
# --------------------------------------------------------------------------- #
_COMPUTE_TYPES = {"COMPUTE_TYPE_TBD": 0, "COMPUTE_TYPE_DEFAULT": 1, "COMPUTE_TYPE_PEDANTIC": 2,
                  "COMPUTE_TYPE_FP16": 3, "COMPUTE_TYPE_FP32": 4, "COMPUTE_TYPE_FP64": 5,
                  "COMPUTE_TYPE_BF16": 6, "COMPUTE_TYPE_TF32": 7}  # CuPy's values
_COMPUTE_DTYPES = "efdFD"  # the dtypes CuPy keeps a compute type for


def _compute_type_index(dtype):
    char = numpy.dtype(dtype).char
    if char not in _COMPUTE_DTYPES:
        raise TypeError("dtype is not supported: {}".format(numpy.dtype(dtype)))
    return char


def _initial_compute_types():
    """As CuPy starts: COMPUTE_TYPE_DEFAULT, or TF32 for float32 when CUPY_TF32 is set above 0."""
    types_ = dict.fromkeys(_COMPUTE_DTYPES, _COMPUTE_TYPES["COMPUTE_TYPE_DEFAULT"])
    setting = os.environ.get("CUPY_TF32", "0").strip()
    if setting.isdigit() and int(setting) > 0:
        types_["f"] = _COMPUTE_TYPES["COMPUTE_TYPE_TF32"]
    return types_


_compute_types = _initial_compute_types()


def set_compute_type(dtype, compute_type):
    """cupy._core.set_compute_type: the cuBLAS compute type of ``dtype``'s products (recorded here:
    the stand-in's products stay numpy's, so TF32 changes no value)."""
    _compute_types[_compute_type_index(dtype)] = int(compute_type)


def get_compute_type(dtype):
    return _compute_types[_compute_type_index(dtype)]


class _Names(types.SimpleNamespace):
    """A namespace of cupy's (``cupy._core`` ...): a name it lacks raises AttributeError naming the path."""

    def __init__(self, path, **names):
        super().__init__(**names)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name):
        raise AttributeError(f"fakecupy: the stand-in has no {self._path}.{name}")


_core = _Names("cupy._core", set_compute_type=set_compute_type, get_compute_type=get_compute_type,
               _routines_linalg=_Names("cupy._core._routines_linalg", set_compute_type=set_compute_type,
                                       get_compute_type=get_compute_type, **_COMPUTE_TYPES))


# --------------------------------------------------------------------------- #
# hand-written kernels
# --------------------------------------------------------------------------- #
_POINTEES = {"float": numpy.float32, "double": numpy.float64, "int": numpy.int32, "long long": numpy.int64,
             "unsigned char": numpy.uint8, "bool": numpy.bool_, "unsigned long long": numpy.uint64,
             "unsigned int": numpy.uint32, "short": numpy.int16, "__half": numpy.float16, "half": numpy.float16}


def _parse_signature(code, name):
    """[(argument name, C base type, is pointer)] of ``extern "C" __global__ void name(...)`` in ``code``."""
    match = re.search(r'extern\s+"C"\s+__global__\s+void\s+' + re.escape(name) + r"\s*\(([^)]*)\)", code)
    if match is None:
        raise AttributeError(f"fakecupy RawModule: no extern \"C\" __global__ void {name}(...) in the source")
    arguments = []
    for part in filter(None, (p.strip() for p in match.group(1).split(","))):
        part = re.sub(r"\b(const|__restrict__|restrict|volatile)\b", " ", part)
        pointer = "*" in part
        words = part.replace("*", " ").split()
        arguments.append((words[-1], " ".join(words[:-1]), pointer))
    return arguments


class _Kernel:
    """One compiled kernel: call it as ``kernel(grid, block, args)``."""

    def __init__(self, code, name):
        self.name, self.signature = name, _parse_signature(code, name)

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        from minidl.kernels import EMULATORS

        where = f"fakecupy kernel {self.name}"
        for label, value in (("grid", grid), ("block", block)):
            if not (isinstance(value, tuple) and 1 <= len(value) <= 3
                    and all(isinstance(v, (int, numpy.integer)) and not isinstance(v, bool) and v > 0 for v in value)):
                raise TypeError(f"{where}: {label} must be a tuple of 1 to 3 positive ints, got {value!r}")
        if not isinstance(args, tuple) or len(args) != len(self.signature):
            count = len(args) if isinstance(args, (tuple, list)) else "not a tuple"
            raise TypeError(f"{where}: expected a tuple of {len(self.signature)} arguments, got {count}")
        if self.name not in EMULATORS:
            raise NotImplementedError(f"{where}: no emulator; add '{self.name}' to its family's EMULATE dict")
        converted = [self._check(position, value) for position, value in enumerate(args)]
        meter.launch()
        meter.kernel()
        EMULATORS[self.name](*converted)

    def _check(self, position, value):
        argument, ctype, pointer = self.signature[position]
        where = f"fakecupy kernel {self.name}, argument {position} ({ctype}{' *' if pointer else ''} {argument})"
        expected = _POINTEES.get(ctype)
        if expected is None:
            raise TypeError(f"{where}: the stand-in knows no C type '{ctype}'")
        if pointer:
            if not isinstance(value, ndarray):
                raise TypeError(f"{where}: expected a device array, got {type(value).__name__}")
            if value._array.dtype != expected:
                raise TypeError(f"{where}: expected dtype {numpy.dtype(expected)}, got {value._array.dtype}")
            if not value._array.flags.c_contiguous:
                raise TypeError(f"{where}: the array is not C-contiguous (cupy.ascontiguousarray it)")
            return value._array
        if type(value) is not expected:
            raise TypeError(f"{where}: expected a numpy.{numpy.dtype(expected).name} scalar, got "
                            f"{type(value).__name__} {value!r} (a Python number would be passed with the wrong width)")
        return value.item()


class RawModule:
    """cupy.RawModule(code=..., options=...): ``get_function(name)`` gives a kernel of ``code``."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            raise TypeError("fakecupy RawModule: give the CUDA source as code= (the stand-in reads no files)")
        self.code, self.options = code, tuple(options)

    def get_function(self, name):
        return _Kernel(self.code, name)


def RawKernel(code, name, options=(), backend="nvrtc", translate_cucomplex=False,  # noqa: N802 (cupy's name)
              enable_cooperative_groups=False, jitify=False):
    """cupy.RawKernel(code, name): the one kernel ``name`` of ``code``."""
    return _Kernel(code, name)
