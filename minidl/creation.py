"""Making tensors: from data, filled with a constant, ranges, random numbers.

Names and defaults follow PyTorch: floating-point results are float32 unless a
dtype is given; ``device=None`` means the default device (``set_default_device``),
for Python data and numpy arrays alike (a cupy array stays on its GPU).
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.backend import Device
from minidl.random import default_generator


def to_array(data, dtype=None, device=None):
    """Make a numpy/cupy array from ``data`` with PyTorch's defaults, without copying when none is needed.

    Python floats (and lists of them) become float32, Python ints int64, bools bool;
    numpy and cupy arrays keep their dtype unless ``dtype`` is given. Host data lands on
    ``device``, else on the default device; a cupy array stays where it is unless ``device`` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, numpy.generic):  # a numpy scalar: host data, like an array
        data = numpy.asarray(data)
    if dtype is not None:
        dtype = numpy.dtype(dtype)
    if not (isinstance(data, numpy.ndarray) or backend.is_cupy_array(data)):
        data = _host_array(data, dtype)
        dtype = dtype if dtype is not None or data.dtype != numpy.float64 else numpy.dtype(numpy.float32)
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    if device is None and not backend.is_cupy_array(data):
        device = backend.get_default_device()
    return data if device is None else backend.to_device(data, Device(device))


def _host_array(data, dtype):
    """numpy's reading of Python data (numbers, nested lists), refusing what makes no numeric array."""
    try:
        host = numpy.asarray(data)
    except ValueError:  # ragged nested lists
        raise ValueError(f"tensor: nested lists of different lengths make no regular array: {data!r:.80}") from None
    if host.dtype == object or host.dtype.kind in "USV":
        raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data {data!r:.80}")
    return host


def as_tensor_like(value, others):
    """Wrap a Python scalar or array as a constant Tensor that matches the other inputs.

    A Python number takes the dtype and device of the first Tensor among ``others``
    (so ``x * 2`` stays float32); an array keeps its own dtype.
    """
    if isinstance(value, Tensor):
        return value
    like = next((o for o in others if isinstance(o, Tensor)), None)
    if like is None:
        return Tensor(value)
    if isinstance(value, (bool, int, float)):
        dtype = like.dtype
        if isinstance(value, float) and dtype.kind in "iub":
            dtype = numpy.dtype(numpy.float32)
        elif not isinstance(value, bool) and dtype.kind == "b":  # mask * 2 counts, like PyTorch
            dtype = numpy.dtype(numpy.int64)
        return Tensor.wrap(like.xp.asarray(value, dtype=dtype))
    return Tensor.wrap(backend.to_device(value, like.device))


def gradient_for(tensor, gradient, where: str, position: int = 0):
    """The gradient to start backward from at ``tensor``: 1 for a scalar when None, else checked."""
    if gradient is None:
        return Tensor.wrap(tensor.xp.ones(tensor.shape, dtype=tensor.dtype))
    if not isinstance(gradient, Tensor):
        gradient = Tensor.wrap(backend.to_device(numpy.asarray(gradient, dtype=tensor.dtype), tensor.device))
    if gradient.shape != tensor.shape:
        raise ValueError(f"{where}: grad_outputs[{position}] has shape {gradient.shape}, but output {position} "
                         f"has shape {tensor.shape}; expected a gradient of shape {tensor.shape}")
    return gradient


def is_dtype(value) -> bool:
    """Whether ``value`` names a dtype ('float64', numpy.float64) rather than a device ('cpu', 'cuda:0')."""
    if isinstance(value, Device):
        return False
    if isinstance(value, str):
        try:
            Device(value)
            return False
        except ValueError:
            pass
    try:
        numpy.dtype(value)
        return True
    except TypeError:
        return False


def _new(array, requires_grad=False) -> "Tensor":
    """A tensor around an array made here, already on its device."""
    return Tensor.wrap(array).requires_grad_(requires_grad)


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
    array = to_array(data, dtype, device)
    if array is source:  # nothing was converted: copy, so the tensor owns its values
        array = array.copy()
    return _new(array, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares ``data``'s memory when no conversion is needed."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return Tensor.wrap(to_array(data, dtype, device))


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
        return _new(xp.full(_shape(shape, "full"), fill_value, dtype=dtype), requires_grad)


def zeros(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return _new(xp.zeros(_shape(shape, "zeros"), dtype=dtype), requires_grad)


def ones(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return _new(xp.ones(_shape(shape, "ones"), dtype=dtype), requires_grad)


def eye(n, m=None, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return _new(xp.eye(n, m, dtype=dtype), requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None) -> Tensor:
    """Numbers from start (inclusive) to end (exclusive); ints give int64, floats float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = numpy.int64 if all(isinstance(v, int) for v in (start, end, step)) else numpy.float32
    device, xp = _place(device)
    with _on(device):
        return _new(xp.arange(start, end, step, dtype=dtype))


def linspace(start, end, steps, dtype=numpy.float32, device=None) -> Tensor:
    device, xp = _place(device)
    with _on(device):
        return _new(xp.linspace(start, end, steps, dtype=dtype))


def randn(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples, from the generator seeded by ``minidl.manual_seed``."""
    device, _ = _place(device)
    with _on(device):
        values = default_generator(device).standard_normal(_shape(shape, "randn"), dtype=numpy.float64)
        return _new(values.astype(dtype), requires_grad)


def rand(*shape, dtype=numpy.float32, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    device, _ = _place(device)
    with _on(device):
        values = default_generator(device).random(_shape(shape, "rand"), dtype=numpy.float64)
        return _new(values.astype(dtype), requires_grad)


def randint(low, high, shape=None, dtype=numpy.int64, device=None) -> Tensor:
    """Uniform integers in [low, high): ``randint(0, 10, (3,))``, or ``randint(10, (3,))`` with low = 0 (as PyTorch)."""
    if shape is None:
        low, high, shape = 0, low, high
    device, _ = _place(device)
    with _on(device):
        return _new(default_generator(device).integers(low, high, size=_shape(shape, "randint")).astype(dtype))


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


from minidl.tensor import Tensor  # noqa: E402  (Tensor(data) converts with to_array: imported last to close the loop)
