"""Tensor: an array (numpy or cupy), its gradient, and the Function that made it.

A Tensor holds no math of its own: every operator delegates to a Function in
``minidl.ops``, which is where each forward and its derivative live.

The methods take the ops' numpy-style arguments (``x.sum(axis=1, keepdims=True)``,
``x.softmax(axis=-1)``) where PyTorch writes ``dim`` and ``keepdim``; the rest follows
PyTorch (``x.transpose(0, 1)``, ``x.flatten(1)``, ``x.to(minidl.float64)``, ``x.clamp(min=0)``).
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.backend import Device


def _to_array(data, dtype=None, device=None):
    """Make a numpy/cupy array from ``data`` with PyTorch's defaults.

    Python floats (and lists of them) become float32, Python ints int64, bools bool;
    numpy and cupy arrays keep their dtype unless ``dtype`` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = numpy.dtype(dtype)
    if not (isinstance(data, numpy.ndarray) or backend.is_cupy_array(data)):
        try:
            host = numpy.asarray(data)
        except ValueError:  # ragged nested lists
            raise ValueError(f"tensor: nested lists of different lengths make no regular array: {data!r:.80}") from None
        if host.dtype == object or host.dtype.kind in "USV":
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data {data!r:.80}")
        if dtype is None and host.dtype == numpy.float64 and not isinstance(data, numpy.generic):
            dtype = numpy.dtype(numpy.float32)  # Python floats default to float32, like PyTorch
        data = host
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    device = backend.get_default_device() if device is None and not backend.is_cupy_array(data) else device
    if device is not None:
        data = backend.to_device(data, Device(device))
    return data


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


class Tensor:
    """A multi-dimensional array that remembers how it was computed.

    Attributes
    ----------
    data : numpy.ndarray or cupy.ndarray
        The values.
    grad : Tensor or None
        d(loss)/d(this tensor), filled in by ``backward()`` for leaves that require grad.
    creator : Function or None
        The op that produced this tensor (None for leaves: inputs and parameters).
    requires_grad : bool
        Whether gradients should flow to (or through) this tensor.
    """

    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__
    __slots__ = ("data", "grad", "creator", "requires_grad", "_retains_grad", "name", "__weakref__")

    def __init__(self, data, requires_grad: bool = False, *, dtype=None, device=None, _creator=None):
        if isinstance(data, numpy.generic):  # what numpy's full reductions return: host data, like an array
            data = numpy.asarray(data)
        if (isinstance(data, numpy.ndarray) or backend.is_cupy_array(data)) and dtype is None and device is None:
            array = data  # the fast path ops take: wrap the array as it is
        else:
            array = _to_array(data, dtype, device)
        self.data = array
        self.grad = None
        self.creator = _creator
        self.requires_grad = bool(requires_grad)
        self._retains_grad = False
        self.name = None
        if requires_grad and array.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {array.dtype}")

    # ------------------------------------------------------------------ #
    # What it is
    # ------------------------------------------------------------------ #
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> Device:
        return backend.device_of(self.data)

    @property
    def xp(self):
        """The array module (numpy or cupy) holding this tensor's data."""
        return backend.get_array_module(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def size(self, dim: int | None = None):
        """The shape (PyTorch spelling), or the length of one dimension."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        body = numpy.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(")
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype != numpy.float32 and self.dtype != numpy.int64 and self.dtype != numpy.bool_:
            extras.append(f"dtype={self.dtype}")
        if self.creator is not None:
            extras.append(f"grad_fn=<{self.creator.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ------------------------------------------------------------------ #
    # Moving and converting
    # ------------------------------------------------------------------ #
    def to(self, device=None, dtype=None) -> "Tensor":
        """Copy to another device and/or dtype; differentiable (gradients flow back).

        Like PyTorch, a dtype may also come first: ``t.to(minidl.float64)``.
        """
        if dtype is None and device is not None and is_dtype(device):
            device, dtype = None, device
        out = self
        if dtype is not None and numpy.dtype(dtype) != self.dtype:
            out = ops.cast(out, dtype)
        if device is not None and Device(device) != self.device:
            out = ops.to_device(out, Device(device))
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def numpy(self) -> numpy.ndarray:
        """The values as a host numpy array (a copy when the tensor is on a GPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def astype(self, dtype) -> "Tensor":
        return ops.cast(self, dtype)

    def float(self) -> "Tensor":
        return ops.cast(self, numpy.float32)

    def double(self) -> "Tensor":
        return ops.cast(self, numpy.float64)

    def long(self) -> "Tensor":
        return ops.cast(self, numpy.int64)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.item())

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    # ------------------------------------------------------------------ #
    # Autograd
    # ------------------------------------------------------------------ #
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires grad, into ``leaf.grad``.

        ``gradient`` is d(loss)/d(self); it may be left out only when self is a scalar (it is then 1).
        The graph is freed afterwards unless ``retain_graph`` (which defaults to ``create_graph``).
        """
        retain_graph = create_graph if retain_graph is None else retain_graph
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no grad_fn; "
                "did you forget requires_grad=True on an input, or call it inside no_grad()?"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, got shape {self.shape}; "
                    "pass gradient= (a tensor of that shape) or reduce to a scalar first (e.g. .sum())"
                )
            gradient = Tensor(self.xp.ones(self.shape, dtype=self.dtype))
        elif not isinstance(gradient, Tensor):
            gradient = Tensor(backend.to_device(_to_array(gradient), self.device))
        if gradient.shape != self.shape:
            raise ValueError(f"backward: grad has shape {gradient.shape} but the tensor has shape {self.shape}")
        autograd.run_backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph)

    def detach(self) -> "Tensor":
        """The same values, cut off from the graph (shares the array)."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self.creator is not None and not requires_grad:
            raise RuntimeError("requires_grad_: only leaf tensors can stop requiring grad; use detach()")
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: only floating-point tensors can require grad, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retains_grad = True

    # ------------------------------------------------------------------ #
    # Operators: each delegates to an op in minidl.ops
    # ------------------------------------------------------------------ #
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        return ops.pow(self, exponent)

    def __rpow__(self, base):
        return ops.pow(base, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def __setitem__(self, index, value):
        """In-place assignment; allowed only where no gradient could be silently wrong."""
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError(
                "__setitem__: in-place assignment into a tensor that requires grad would make its gradient "
                "wrong; do it inside minidl.no_grad() or build a new tensor (e.g. with minidl.where)"
            )
        value = value.data if isinstance(value, Tensor) else value
        if isinstance(value, numpy.ndarray) or backend.is_cupy_array(value):  # cupy takes no host arrays
            value = backend.to_device(value, self.device)
        self.data[ops.shape.index_to_arrays(index, self)] = value

    # Comparisons give boolean tensors and have no gradient.
    def _compare(self, other, op):
        if isinstance(other, Tensor) and other.device != self.device:
            raise RuntimeError(
                f"comparison: expected both tensors on one device, got '{self.device}' and '{other.device}'; "
                "move one with .to(device) first"
            )
        other = other.data if isinstance(other, Tensor) else other
        if isinstance(other, numpy.ndarray) or backend.is_cupy_array(other):  # a raw array goes to our device
            other = backend.to_device(other, self.device)
        return Tensor(op(self.data, other))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__  # tensors are hashed by identity, like PyTorch's

    # ------------------------------------------------------------------ #
    # Methods: the same ops as minidl.<name>(tensor, ...)
    # ------------------------------------------------------------------ #
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def softmax(self, axis=-1):
        return ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis)

    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        return ops.var(self, axis, keepdims, correction)

    def std(self, axis=None, keepdims=False, correction=1):
        return ops.std(self, axis, keepdims, correction)

    def argmax(self, axis=None, keepdims=False):
        return ops.argmax(self, axis, keepdims)

    def argmin(self, axis=None, keepdims=False):
        return ops.argmin(self, axis, keepdims)

    def reshape(self, *shape):
        return ops.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def unsqueeze(self, axis):
        return ops.unsqueeze(self, axis)

    def transpose(self, *axes):
        """Swap two axes (``t.transpose(0, 1)``, as PyTorch) or, with none, reverse them all."""
        if len(axes) == 2:
            return ops.swapaxes(self, *axes)
        return ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def permute(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)

    @property
    def T(self):
        return ops.transpose(self, None)

    @property
    def mT(self):
        return ops.swapaxes(self, -2, -1)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def expand(self, *shape):
        return ops.broadcast_to(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def sum_to(self, shape):
        return ops.sum_to(self, shape)

    def clip(self, min=None, max=None):  # noqa: A002  (PyTorch's names for the bounds)
        return ops.clip(self, min, max)

    clamp = clip

    def matmul(self, other):
        return ops.matmul(self, other)

    def split(self, split_size_or_sections, axis=0):
        return ops.split(self, split_size_or_sections, axis)

    def chunk(self, chunks, axis=0):
        return ops.chunk(self, chunks, axis)


from minidl import autograd, ops  # noqa: E402  (ops are built on Tensor; imported last to close the loop)
