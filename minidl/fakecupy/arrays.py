"""The stand-in's device array and the numpy namespaces seen as cupy ones.

``ndarray`` wraps a numpy array (not a numpy subclass, just as cupy.ndarray is not) and keeps
cupy's rules about meeting host data (see the package docstring). Every way in or out of the
device passes through ``_device`` (a new device array: the meter sees each new buffer) or a
function that counts a transfer or a sync, so minidl.fakecupy.meter can count a training step.
"""

from __future__ import annotations

import operator
import sys

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

from minidl.fakecupy import meter, strict

_SCALARS = (int, float, complex, numpy.generic)  # bool is an int
_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")
_ADD_AT_DTYPES = (numpy.int32, numpy.float16, numpy.float32, numpy.float64, numpy.uint32, numpy.uint64)  # atomicAdd


def _package():
    return sys.modules["minidl.fakecupy"]


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
    """A device array around numpy ``array`` (the meter registers its buffer if it is a new one)."""
    wrapped = object.__new__(ndarray)
    wrapped._array = array
    meter.adopt(array)
    return wrapped


def _counted(call, *args, **kwargs):
    """Run ``call`` (numpy in, device arrays out) and count one launch if it made new data or
    wrote in place (``out=``, or returned None); a call that only makes views of existing buffers is free."""
    before = meter.STATE.buffers
    result = _wrap(call(*args, **kwargs))
    if result is None or meter.STATE.buffers != before or kwargs.get("out") is not None:
        meter.launch()
    return result


def _index(key):
    """An index: device arrays unwrapped; host arrays and lists allowed (cupy copies them in: counted)."""
    for part in key if isinstance(key, tuple) else (key,):
        if isinstance(part, (numpy.ndarray, list)):
            meter.transfer_in(numpy.asarray(part).nbytes)
    return _unwrap(key, allow_host=True)


def _is_advanced(key):
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (list, numpy.ndarray, ndarray)) for k in parts)


def _is_boolean_mask(key):
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (numpy.ndarray, ndarray)) and k.dtype == numpy.bool_ for k in parts)


def _apply_ufunc(ufunc, method, inputs, kwargs):
    """cupy's ufunc rule: device arrays and scalars only. Every call is one launch."""
    skip = 1 if method == "at" else None  # ufunc.at(a, indices, b): indices may be host
    for position, x in enumerate(inputs):
        if position != skip and not isinstance(x, (ndarray,) + _SCALARS):
            raise _host_error(x)
    strict.check_call(f"cupy.{ufunc.__name__}" if method == "__call__" else f"cupy.{ufunc.__name__}.{method}", kwargs)
    if method == "at" and ufunc is numpy.add and inputs[0]._array.dtype.type not in _ADD_AT_DTYPES:
        raise TypeError("scatter_add only supports int32, float16, float32, float64, uint32, uint64, as data type"
                        f" (fakecupy: cupy.add.at on {inputs[0]._array.dtype})")
    if ufunc is numpy.matmul and method == "__call__":
        _matmul(*inputs[:2])
    raw = [_index(x) if i == skip else _unwrap(x) for i, x in enumerate(inputs)]
    out = kwargs.get("out")
    result = getattr(ufunc, method)(*raw, **{k: _unwrap(v) for k, v in kwargs.items()})
    meter.launch()
    if out is not None:
        return out[0] if isinstance(out, tuple) and len(out) == 1 else out
    return _wrap(result)


def _synced(conversion, d2h=True):
    """A conversion that copies to the host (a sync, as on a GPU)."""
    def convert(self, *args):
        meter.sync(self._array.nbytes if d2h else 0)
        return conversion(self._array, *args)
    return convert


def _matmul(a, b, out=None, **kwargs):
    """matmul/dot: one cuBLAS launch; a batched (3-D+) operand that is not C-contiguous is copied first."""
    for operand in (a, b):
        if isinstance(operand, ndarray) and operand._array.ndim >= 3 and not operand._array.flags.c_contiguous:
            meter.launch()
    meter.matmul()


class _Memory:
    """``ndarray.data``: the device pointer (a unique int per buffer; see ``array_at``)."""

    def __init__(self, array):
        self.ptr = meter.pointer(array)


class ndarray(NDArrayOperatorsMixin):
    """A device array: numpy data that refuses to mix with host numpy arrays, as cupy's does."""

    __slots__ = ("_array", "__weakref__")

    def __init__(self, shape, dtype=float):  # cupy.ndarray(shape, dtype): uninitialised
        self._array = numpy.empty(shape, dtype)
        meter.adopt(self._array)

    @property
    def device(self):
        return _package().cuda.Device(0)

    @property
    def data(self):
        return _Memory(self._array)

    def get(self, stream=None, order="C", out=None):
        """A host copy (the only explicit way out, with cupy.asnumpy): a sync and a transfer."""
        meter.sync(self._array.nbytes)
        return numpy.array(self._array, order=order)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        namespace = _package()
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
        strict.check_name("cupy.ndarray", name)
        attribute = getattr(self._array, name)
        if not callable(attribute):
            return _wrap(attribute)
        allow_host = name in ("take", "put", "compress")  # cupy copies index arrays in

        def method(*args, **kwargs):
            _check_kwargs(name, kwargs)
            strict.check_call(f"cupy.ndarray.{name}", kwargs)
            if name in ("item", "tolist", "tobytes"):
                meter.sync(self._array.nbytes)
            elif name in ("nonzero",):
                meter.sync(0)
            elif name == "dot":
                _matmul(self, *args)
            kwargs = {k: _unwrap(v, allow_host) for k, v in kwargs.items()}
            return _counted(attribute, *_unwrap(args, allow_host), **kwargs)

        return method

    def __getitem__(self, key):
        raw = _index(key)
        if _is_boolean_mask(key):
            meter.sync(0)  # the result's size depends on the data
        result = self._array[raw]
        if isinstance(result, numpy.generic):  # integer indexing: cupy gives a 0-d view, no copy
            result = self._array[(raw if isinstance(raw, tuple) else (raw,)) + (Ellipsis,)]
        return _counted(lambda: result)

    def __setitem__(self, key, value):
        if not _is_advanced(key) and isinstance(value, (list, tuple, numpy.ndarray)) and numpy.ndim(value) > 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill "
                             "(fakecupy: assigning host data into a device array; cupy.asarray it first)")
        if isinstance(value, (list, tuple, numpy.ndarray)):
            meter.transfer_in(numpy.asarray(value).nbytes)
        self._array[_index(key)] = _unwrap(value, allow_host=True)
        meter.launch()

    # Python's own conversions and printing work, as cupy's do (they copy to the host: a sync)
    __bool__, __int__, __float__ = _synced(bool), _synced(int), _synced(float)
    __complex__, __index__, __format__ = _synced(complex), _synced(operator.index), _synced(format)
    __repr__, __str__ = _synced(repr), _synced(str)

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        if self._array.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._array)))


class _Namespace:
    """A numpy module seen as a cupy one (``path`` is its name in cupy): functions take and give
    device arrays; each name and keyword is checked against real cupy in strict mode."""

    def __init__(self, module, path):
        self._module, self._path = module, path

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        strict.check_name(self._path, name)
        return device_attribute(getattr(self._module, name), f"{self._path}.{name}")


class _Ufunc:
    def __init__(self, ufunc):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _apply_ufunc(self._ufunc, "__call__", args, kwargs)

    def __getattr__(self, name):
        strict.check_name(f"cupy.{self.__name__}", name)
        if name in ("reduce", "accumulate", "outer", "at", "reduceat"):
            return lambda *args, **kwargs: _apply_ufunc(self._ufunc, name, args, kwargs)
        return getattr(self._ufunc, name)


_DATA_DEPENDENT = ("nonzero", "argwhere", "flatnonzero", "unique", "extract", "compress", "trim_zeros")
_NO_LAUNCH = ("empty", "empty_like", "shape", "ndim", "size", "result_type", "can_cast", "broadcast_shapes")


def device_attribute(attribute, path):
    """numpy's ``attribute`` as cupy's ``path`` (e.g. 'cupy.pad'): a counted device function."""
    if isinstance(attribute, numpy.ufunc):
        return _Ufunc(attribute)
    if type(attribute).__name__ == "module":
        return _Namespace(attribute, path)
    if callable(attribute) and not isinstance(attribute, type):
        name = getattr(attribute, "__name__", "function")

        def function(*args, **kwargs):
            _check_kwargs(name, kwargs)
            strict.check_call(path, kwargs)
            if name in _DATA_DEPENDENT:
                meter.sync(0)
            elif name in ("dot", "tensordot", "einsum", "inner", "vdot"):
                _matmul(*args[:2])
            kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
            if name in _NO_LAUNCH:
                return _wrap(attribute(*_unwrap(args), **kwargs))
            return _counted(attribute, *_unwrap(args), **kwargs)

        function.__name__ = name
        return function
    return attribute  # dtypes, constants (pi, nan, newaxis), classes (finfo)
