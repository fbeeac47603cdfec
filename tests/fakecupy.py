"""A CPU stand-in for cupy, so the 'cuda' half of the tests runs where no GPU is lent.

Opt in: ``MINIDL_FAKE_CUDA=1 python -m pytest -n 2 -q`` (tests/conftest.py calls ``install()``,
which puts this module where minidl.backend keeps ``cupy``), or run one script under it:
``python tests/fakecupy.py lessons/03_mlp_spiral.py --smoke --device cuda``
(``python tests/fakecupy.py -m minidl.bench --smoke --device cuda`` for a module).

A device array here is ``fakecupy.ndarray``: a wrapper round a numpy array (not a numpy subclass,
just as cupy.ndarray is not), holding cupy's rules about meeting host data:

* a ufunc or operator mixing it with a host numpy array (of any ndim, 0-d included) or a
  list raises TypeError; Python and numpy scalars are fine;
* ``numpy.asarray(device_array)`` raises TypeError (no ``__array__``, no array interface);
  ``.get()``, ``cupy.asnumpy``, ``.item()``, ``.tolist()``, ``float()``, ``int()`` work;
* ``numpy.f(device_array)`` dispatches to ``cupy.f`` (``__array_function__``), as cupy does;
* ``cupy.f(host_array)`` raises, except ``array``/``asarray`` (which copy to the device);
* indices may be host arrays or lists; a basic-slice assignment of a host array raises;
* reductions and scalar indexing give 0-d device arrays, not numpy scalars;
* ``cupy.random.default_rng`` has cupy's methods only (no permutation, choice, normal), and its
  bit generators (XORWOW, Philox4x3210 ...) keep their state unreadable, as cupy's do;
* ``cupyx.scatter_add`` takes only cupy's dtypes (no int64 target with array indices).

What a green run under the fake proves: the cupy branches of minidl run, keep device data on
the device, and never hand device data to numpy (or host data to cupy). What it cannot show:
speed, memory, kernels, streams and asynchrony, float rounding that differs on the GPU, cupy
functions numpy has but cupy lacks (every numpy function is offered), more than one GPU, and
the exact dtype rules where cupy and numpy differ.
"""

import operator
import runpy
import sys
import types
from pathlib import Path

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

_SCALARS = (int, float, complex, numpy.generic)  # bool is an int
_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")


def _host_error(value):
    return TypeError(f"Unsupported type {type(value)} (fakecupy: host data met a device array; "
                     "move it with cupy.asarray or .get() first)")


def _unwrap(value, allow_host=False):
    """Device arrays -> their numpy payload; host numpy arrays refused unless ``allow_host``."""
    if isinstance(value, ndarray):
        return value._array
    if isinstance(value, numpy.ndarray) and not allow_host:
        raise _host_error(value)
    if type(value) in (list, tuple):
        return type(value)(_unwrap(v, allow_host) for v in value)
    return value


def _wrap(value):
    """numpy results -> device arrays (numpy scalars become 0-d arrays, as cupy returns)."""
    if isinstance(value, numpy.ndarray):
        return _device(value)
    if isinstance(value, numpy.generic):
        return _device(numpy.asarray(value))
    if type(value) in (list, tuple):
        return type(value)(_wrap(v) for v in value)
    return value


def _check_kwargs(name, kwargs):
    """numpy reductions take where= and initial=; cupy's take neither."""
    for keyword in ("where", "initial"):
        if keyword in kwargs:
            raise TypeError(f"{name}() got an unexpected keyword argument '{keyword}' (fakecupy: cupy has no {keyword}=)")


def _device(array):
    wrapped = object.__new__(ndarray)
    wrapped._array = array
    return wrapped


def _index(key):
    """An index: device arrays unwrapped; host arrays and lists allowed (cupy copies them in)."""
    return _unwrap(key, allow_host=True)


def _is_advanced(key):
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (list, numpy.ndarray, ndarray)) for k in parts)


def _apply_ufunc(ufunc, method, inputs, kwargs):
    """cupy's ufunc rule: device arrays and scalars only."""
    skip = 1 if method == "at" else None  # ufunc.at(a, indices, b): indices may be host
    for position, x in enumerate(inputs):
        if position != skip and not isinstance(x, (ndarray,) + _SCALARS):
            raise _host_error(x)
    raw = [_index(x) if i == skip else _unwrap(x) for i, x in enumerate(inputs)]
    out = kwargs.get("out")
    result = getattr(ufunc, method)(*raw, **{k: _unwrap(v) for k, v in kwargs.items()})
    if out is not None:
        return out[0] if isinstance(out, tuple) and len(out) == 1 else out
    return _wrap(result)


def _on_host(conversion):
    return lambda self, *args: conversion(self._array, *args)


class ndarray(NDArrayOperatorsMixin):
    """A device array: numpy data that refuses to mix with host numpy arrays, as cupy's does."""

    __slots__ = ("_array",)

    def __init__(self, shape, dtype=float):  # cupy.ndarray(shape, dtype): uninitialised
        self._array = numpy.empty(shape, dtype)

    @property
    def device(self):
        return cuda.Device(0)

    def get(self, stream=None, order="C", out=None):
        """A host copy (the only explicit way out, with cupy.asnumpy)."""
        return numpy.array(self._array, order=order)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        namespace = sys.modules[__name__]
        try:
            for part in func.__module__.split(".")[1:]:
                namespace = getattr(namespace, part)
            device_function = getattr(namespace, func.__name__)
        except AttributeError:
            return NotImplemented
        return device_function(*args, **kwargs)

    def __getattr__(self, name):  # shape, dtype, T, reshape, sum, astype ... from the payload
        if name.startswith("__") or name == "_array":  # never __array_interface__ and friends: no way to the host
            raise AttributeError(name)
        attribute = getattr(self._array, name)
        if not callable(attribute):
            return _wrap(attribute)
        allow_host = name in ("take", "put", "compress")  # cupy copies index arrays in

        def method(*args, **kwargs):
            _check_kwargs(name, kwargs)
            kwargs = {k: _unwrap(v, allow_host) for k, v in kwargs.items()}
            return _wrap(attribute(*_unwrap(args, allow_host), **kwargs))

        return method

    def __getitem__(self, key):
        return _wrap(self._array[_index(key)])

    def __setitem__(self, key, value):
        if not _is_advanced(key) and isinstance(value, (list, tuple, numpy.ndarray)) and numpy.ndim(value) > 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill "
                             "(fakecupy: assigning host data into a device array; cupy.asarray it first)")
        self._array[_index(key)] = _unwrap(value, allow_host=True)

    # Python's own conversions and printing work, as cupy's do (they copy to the host)
    __len__, __bool__, __int__, __float__ = _on_host(len), _on_host(bool), _on_host(int), _on_host(float)
    __complex__, __index__, __format__ = _on_host(complex), _on_host(operator.index), _on_host(format)
    __repr__, __str__ = _on_host(repr), _on_host(str)

    def __iter__(self):
        if self._array.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._array)))


class _Namespace:
    """A numpy module seen as a cupy one: functions take and give device arrays."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return _device_attribute(getattr(self._module, name))


class _Ufunc:
    def __init__(self, ufunc):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _apply_ufunc(self._ufunc, "__call__", args, kwargs)

    def __getattr__(self, name):
        if name in ("reduce", "accumulate", "outer", "at", "reduceat"):
            return lambda *args, **kwargs: _apply_ufunc(self._ufunc, name, args, kwargs)
        return getattr(self._ufunc, name)


def _device_attribute(attribute):
    if isinstance(attribute, numpy.ufunc):
        return _Ufunc(attribute)
    if isinstance(attribute, types.ModuleType):
        return _Namespace(attribute)
    if callable(attribute) and not isinstance(attribute, type):
        def function(*args, **kwargs):
            _check_kwargs(function.__name__, kwargs)
            kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
            return _wrap(attribute(*_unwrap(args), **kwargs))
        function.__name__ = getattr(attribute, "__name__", "function")
        return function
    return attribute  # dtypes, constants (pi, nan, newaxis), classes (finfo)


def __getattr__(name):  # cupy.exp, cupy.pad, cupy.float32, cupy.fft, cupy.lib ...: numpy's, on the device
    return _device_attribute(getattr(numpy, name))


# --------------------------------------------------------------------------- #
# cupy's own API: moving data, devices, memory, random numbers; cupyx
# --------------------------------------------------------------------------- #
def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    """A device copy of ``obj`` (host arrays, lists, scalars, device arrays)."""
    return _device(numpy.array(_unwrap(obj, allow_host=True), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None):
    """``a`` on the device: itself when it is already there with that dtype, else a copy."""
    if isinstance(a, ndarray) and (dtype is None or a.dtype == numpy.dtype(dtype)) and order is None:
        return a
    return array(a, dtype=dtype, order=order or "K")


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(order=order) if isinstance(a, ndarray) else numpy.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


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
        pass


cuda = types.SimpleNamespace(Device=_CudaDevice, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))


class _MemoryPool:
    """cupy's memory pool, always empty: the fake cannot measure GPU memory."""

    used_bytes = total_bytes = staticmethod(lambda: 0)
    free_all_blocks = staticmethod(lambda: None)


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


class _BitGenerator:
    """cupy.random's cuRAND bit generators (XORWOW, MRG32k3a, Philox4x3210): seeded as cupy seeds
    them, through numpy's SeedSequence down to one 32-bit cuRAND seed. Their state lives on the
    GPU and, as in cupy, cannot be read back (no ``state`` dict, no jump or advance)."""

    def __init__(self, seed=None, *, size=-1):
        if isinstance(seed, ndarray):
            seed = seed.get()
        sequence = seed if isinstance(seed, numpy.random.SeedSequence) else numpy.random.SeedSequence(seed)
        self._seed = sequence.generate_state(1, numpy.uint32)[0]  # cupy: "seed with the 64th bit set" breaks cuRAND
        self._bits = numpy.random.Philox(int(self._seed))  # another stream than cuRAND's; same seed, same numbers

    def random_raw(self, size=None, output=True):
        values = _device(numpy.asarray(self._bits.random_raw(size) & 0xFFFFFFFF).astype(numpy.int32))
        return values if output else None


class _XORWOW(_BitGenerator):
    pass


class _MRG32k3a(_BitGenerator):
    pass


class _Philox4x3210(_BitGenerator):
    pass


class _Generator:
    """cupy.random.Generator(bit_generator): random, standard_normal, uniform, integers ... all on the
    device. Like cupy's it has no permutation, choice, shuffle or normal (AttributeError)."""

    def __init__(self, bit_generator):
        if not isinstance(bit_generator, _BitGenerator):
            raise TypeError(f"cupy.random.Generator: expected a cupy BitGenerator, got {type(bit_generator).__name__}")
        self.bit_generator = bit_generator
        self._rng = numpy.random.Generator(bit_generator._bits)

    def random(self, size=None, dtype=numpy.float64, out=None):
        return _device(numpy.asarray(self._rng.random(size, dtype=numpy.dtype(dtype))))

    def standard_normal(self, size=None, dtype=numpy.float64, out=None):
        return _device(numpy.asarray(self._rng.standard_normal(size, dtype=numpy.dtype(dtype))))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=numpy.float64):
        low, high = asarray(low)._array, asarray(high)._array  # cupy.asarray: host bounds are copied in
        return _device(numpy.asarray(self._rng.uniform(low, high, size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        low, high = (0, int(low)) if high is None else (int(low), int(high))  # cupy takes ints only
        return _device(numpy.asarray(self._rng.integers(low, high, size, dtype=dtype, endpoint=endpoint)))


class _Random(_Namespace):
    Generator, BitGenerator = _Generator, _BitGenerator
    XORWOW, MRG32k3a, Philox4x3210 = _XORWOW, _MRG32k3a, _Philox4x3210

    def default_rng(self, seed=None):
        return _Generator(_XORWOW(seed))  # cupy's default bit generator


random = _Random(numpy.random)

_SCATTER_ADD_DTYPES = (numpy.int32, numpy.float16, numpy.float32, numpy.float64, numpy.uint32, numpy.uint64)


def _scatter_add(a, slices, value):
    """cupyx.scatter_add: a[slices] += value, repeated indices accumulating (atomicAdd on a GPU)."""
    if not isinstance(a, ndarray):
        raise TypeError(f"cupyx.scatter_add: expected a cupy.ndarray target, got {type(a)}")
    if _is_advanced(slices) and a.dtype.type not in _SCATTER_ADD_DTYPES:
        raise TypeError("scatter_add only supports int32, float16, float32, float64, uint32, uint64, as data type")
    numpy.add.at(a._array, _index(slices), _unwrap(value, allow_host=_is_advanced(slices)))


cupyx = types.SimpleNamespace(scatter_add=_scatter_add)


def install():
    """Make minidl see one GPU, 'cuda:0', backed by this module."""
    from minidl import backend, kernels
    from minidl import random as random_state

    module = sys.modules[__name__]
    backend.cupy, kernels.CupyBackend.xp = module, module
    random_state._default_generators.clear()  # none was made for a GPU that was not there


if __name__ == "__main__":  # python tests/fakecupy.py SCRIPT|-m MODULE [ARGS...], with the fake GPU
    import fakecupy  # this file again, as a module, so there is one ndarray class

    fakecupy.install()
    if sys.argv[1] == "-m":
        sys.argv, sys.path[0] = sys.argv[2:], str(Path.cwd())
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        sys.path[0] = str(Path(sys.argv[0]).resolve().parent)
        runpy.run_path(sys.argv[0], run_name="__main__")
