"""Making tensors: from data, filled with a constant, ranges, random numbers.

Names and defaults follow PyTorch: floating-point results are float32 unless a
dtype is given; ``device=None`` means the default device (``set_default_device``).
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.backend import Device
from minidl.tensor import Tensor, _to_array


def _place(device):
    device = backend.get_default_device() if device is None else Device(device)
    backend.check_device_usable(device)
    return device, backend.array_module_for(device)


def _shape(shape, op: str):
    """``(2, 3)`` from ``shape`` given as ``(2, 3)`` or ``((2, 3),)`` (``zeros(2, 3)`` or ``zeros((2, 3))``)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, (int, numpy.integer)) or n < 0:
            raise ValueError(f"{op}: expected a shape of non-negative integers, got {shape}")
    return tuple(int(n) for n in shape)


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of ``data`` (a number, nested lists, a numpy/cupy array)."""
    source = data.data if isinstance(data, Tensor) else data
    array = _to_array(data, dtype, device)
    if array is source:  # nothing was converted: copy, so the tensor owns its values
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares ``data``'s memory when no conversion is needed."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return Tensor(_to_array(data, dtype, device))


def full(*shape, fill_value=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``: ``full((2, 3), 1.5)`` as PyTorch,
    or ``full(2, 3, fill_value=1.5)``."""
    if fill_value is None:
        if len(shape) < 2:
            raise TypeError("full: expected a shape and a fill_value, e.g. full((2, 3), 1.5)")
        *shape, fill_value = shape
    device, xp = _place(device)
    if dtype is None:
        dtype = numpy.float32 if isinstance(fill_value, float) else numpy.asarray(fill_value).dtype
    with _on(device):
        return Tensor(xp.full(_shape(shape, "full"), fill_value, dtype=dtype), requires_grad=requires_grad)


def zeros(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return Tensor(xp.zeros(_shape(shape, "zeros"), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return Tensor(xp.ones(_shape(shape, "ones"), dtype=dtype), requires_grad=requires_grad)


def eye(n, m=None, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return Tensor(xp.eye(n, m, dtype=dtype), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None) -> Tensor:
    """Numbers from start (inclusive) to end (exclusive); ints give int64, floats float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = numpy.int64 if all(isinstance(v, int) for v in (start, end, step)) else numpy.float32
    device, xp = _place(device)
    with _on(device):
        return Tensor(xp.arange(start, end, step, dtype=dtype))


def linspace(start, end, steps, dtype=numpy.float32, device=None) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return Tensor(xp.linspace(start, end, steps, dtype=dtype))


def randn(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples, from the generator seeded by ``minidl.manual_seed``."""
    device, _ = _place(device)
    with _on(device):
        values = backend.generator(device).standard_normal(_shape(shape, "randn"), dtype=numpy.float64)
        return Tensor(values.astype(dtype), requires_grad=requires_grad)


def rand(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    device, _ = _place(device)
    with _on(device):
        values = backend.generator(device).random(_shape(shape, "rand"), dtype=numpy.float64)
        return Tensor(values.astype(dtype), requires_grad=requires_grad)


def randint(low, high, shape=None, dtype=numpy.int64, device=None) -> Tensor:
    """Uniform integers in [low, high): ``randint(0, 10, (3,))``, or ``randint(10, (3,))`` with low = 0 (as PyTorch)."""
    if shape is None:
        low, high, shape = 0, low, high
    device, _ = _place(device)
    with _on(device):
        return Tensor(backend.generator(device).integers(low, high, size=_shape(shape, "randint")).astype(dtype))


def _like(x, dtype, device):
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def zeros_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return zeros(x.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return ones(x.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return full(x.shape, fill_value=fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return randn(x.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return rand(x.shape, dtype=dtype, device=device, requires_grad=requires_grad)


class _on:
    """Make ``device`` current while cupy allocates (a no-op on the CPU)."""

    def __init__(self, device):
        self.context = backend.cupy.cuda.Device(device.index) if device.type == "cuda" else None

    def __enter__(self):
        if self.context is not None:  # pragma: no cover
            self.context.__enter__()

    def __exit__(self, *exc):
        if self.context is not None:  # pragma: no cover
            self.context.__exit__(*exc)
