"""Tensor: an array (numpy or cupy), its gradient, and the Function that made it.

A Tensor holds no math of its own. Its operators and methods (``x + y``, ``x.sum(dim=1)``)
are the ops of ``minidl.ops``, attached in ``minidl/ops/methods.py``; this file keeps
what makes a Tensor a node of the graph: ``grad``, ``grad_fn``, ``requires_grad``,
``backward()``, hooks, and the in-place changes with their version counter.

In-place changes (``x += 1``, ``x.add_(y)``, ``x[0] = 5``, ``x.zero_()``) follow PyTorch's
rules, with a version counter that backward checks: see ``_change_in_place``.
"""

from __future__ import annotations

import numpy

from minidl import backend


class Tensor:
    """A multi-dimensional array that remembers how it was computed.

    Attributes
    ----------
    data : numpy.ndarray or cupy.ndarray
        The values.
    grad : Tensor or None
        d(loss)/d(this tensor), filled in by ``backward()`` for leaves that require grad.
    grad_fn : Function or None
        The op that produced this tensor (None for leaves: inputs and parameters).
    requires_grad : bool
        Whether gradients should flow to (or through) this tensor.
    """

    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__
    __slots__ = ("data", "grad", "grad_fn", "requires_grad", "_version_counter", "_base", "_hooks",
                 "_retains_grad", "name", "__weakref__")

    def __init__(self, data, requires_grad: bool = False, *, dtype=None, device=None):
        """``Tensor(data)``: like ``minidl.as_tensor`` (shares a numpy/cupy array when no copy is needed)."""
        self._become(creation.to_array(data, dtype, device))
        self.requires_grad = bool(requires_grad)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {self.data.dtype}")

    @classmethod
    def wrap(cls, array, counter=None) -> "Tensor":
        """A Tensor around an array exactly as it is (where ops put their results)."""
        t = cls.__new__(cls)
        t._become(numpy.asarray(array) if isinstance(array, numpy.generic) else array, counter)
        return t

    def _become(self, array, counter=None):
        self.data, self.grad, self.grad_fn, self.requires_grad = array, None, None, False
        self._version_counter = [0] if counter is None else counter  # shared by views of one array
        self._base = None  # the tensor whose memory this one views (set by ops that return views)
        self._hooks, self._retains_grad, self.name = None, False, None

    # ------------------------------------------------------------------ #
    # What it is
    # ------------------------------------------------------------------ #
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    xp = property(lambda self: backend.get_array_module(self.data), doc="numpy or cupy")
    is_leaf = property(lambda self: self.grad_fn is None, doc="made by the user, not by an op")
    _version = property(lambda self: self._version_counter[0], doc="how many in-place changes it has seen")

    numel = lambda self: int(self.data.size)  # noqa: E731
    dim = lambda self: self.ndim  # noqa: E731

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    __hash__ = object.__hash__  # tensors are hashed by identity, like PyTorch's

    # ------------------------------------------------------------------ #
    # Leaving minidl
    # ------------------------------------------------------------------ #
    def numpy(self) -> numpy.ndarray:
        """The values as a host numpy array (a copy when the tensor is on a GPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self.data.item()

    tolist = lambda self: backend.to_numpy(self.data).tolist()  # noqa: E731
    __float__ = lambda self: float(self.item())  # noqa: E731
    __int__ = lambda self: int(self.item())  # noqa: E731

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.item())

    def __array__(self, dtype=None, copy=None):
        array = backend.to_numpy(self.data)
        return array if dtype is None else array.astype(dtype)

    # ------------------------------------------------------------------ #
    # Autograd
    # ------------------------------------------------------------------ #
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs=None) -> None:
        """Add d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad (or only ``inputs``).

        ``gradient`` is d(loss)/d(self); it may be left out only when self is a scalar (it is then 1).
        The graph is freed afterwards unless ``retain_graph`` (which defaults to ``create_graph``).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no grad_fn; "
                "did you forget requires_grad=True on an input, or call it inside no_grad()?"
            )
        if gradient is None and self.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs, got shape {self.shape}; "
                "pass gradient= (a tensor of that shape) or reduce to a scalar first (e.g. .sum())"
            )
        gradient = autograd.seed_gradient(self) if gradient is None else creation.gradient_for(self, gradient, "backward")
        retain_graph = create_graph if retain_graph is None else retain_graph
        autograd.run_backward([self], [gradient], retain_graph, create_graph, inputs, accumulate=True)

    def detach(self) -> "Tensor":
        """The same values, cut off from the graph (shares the array and its version counter)."""
        return Tensor.wrap(self.data, self._version_counter)

    def detach_(self) -> "Tensor":
        """Cut this tensor off from the graph, in place: it becomes a leaf."""
        self.grad_fn, self.requires_grad = None, False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("requires_grad_: only leaf tensors can stop requiring grad; use detach()")
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: only floating-point tensors can require grad, got {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that does not require grad")
        self._retains_grad = self.grad_fn is not None

    def register_hook(self, hook) -> "autograd.RemovableHandle":
        """Call ``hook(grad)`` when this tensor's gradient has been computed; if it returns a
        Tensor, that replaces the gradient (for what flows on and what is stored). ``handle.remove()``."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: can't register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = {}
        return autograd.RemovableHandle(self._hooks, hook)

    # ------------------------------------------------------------------ #
    # In place: every change goes through _change_in_place
    # ------------------------------------------------------------------ #
    def _change_in_place(self, op: str, new_values, *others):
        """Give this tensor the values ``new_values(old)`` (a function of Tensors), keeping its identity.

        * On a leaf that requires grad it is refused unless grad mode is off (``no_grad()``),
          which is where an optimizer updates its parameters.
        * It bumps ``self._version``; an op that keeps this tensor for its backward remembers the
          version it saw, and backward refuses to run if the version moved (the values changed).
        * While the graph is recorded (grad mode on, and this tensor or one of ``others`` requires
          grad), ``x.add_(y)`` is ``x = x + y`` done to this very object: x takes the new values and
          grad_fn, and a stand-in for the old x stays in the graph where the old x was used.
        """
        recording = autograd.is_grad_enabled() and (
            self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others))
        if recording and self.grad_fn is None and self.requires_grad:
            raise RuntimeError(
                f"{op}: a leaf tensor that requires grad (shape {self.shape}) can't be changed in place: its "
                "gradient would be wrong. Update parameters inside `with minidl.no_grad():`"
            )
        if recording and self._base is not None:
            raise RuntimeError(
                f"{op}: in-place change of a view (a slice or reshape of another tensor) while the graph is "
                "recorded is not supported by minidl (PyTorch allows it); write it out of place: y = y + ..."
            )
        before = Tensor.wrap(self.data, list(self._version_counter))  # the old values, as a tensor of their own
        before.grad_fn, before.requires_grad = self.grad_fn, self.requires_grad
        result = new_values(before)
        if result.shape != self.shape or not numpy.can_cast(result.dtype, self.dtype, "same_kind"):
            raise RuntimeError(
                f"{op}: the result has shape {result.shape} and dtype {result.dtype}, which can't be written "
                f"into a tensor of shape {self.shape} and dtype {self.dtype}"
            )
        if not recording:  # the values change where they are (views of them see the change)
            self.data[...] = result.data
        else:  # self = new_values(self): the old self lives on in the graph as `before`
            if self.grad_fn is not None:
                self.grad_fn.replace_output(self, before)
            self.data, self.grad_fn, self.requires_grad = result.data.astype(self.dtype, copy=False), result.grad_fn, True
            if self.grad_fn is not None:
                self.grad_fn.replace_output(result, self)
        self._version_counter[0] += 1
        return self

    def __setitem__(self, index, value):
        """``x[index] = value``, in place (differentiable while the graph is recorded)."""
        return self._change_in_place("__setitem__", lambda old: ops.index_put(old, index, value), value)

    def add_(self, other, alpha=1):
        return self._change_in_place("add_", lambda old: old + (other if alpha == 1 else other * alpha), other)

    def sub_(self, other, alpha=1):
        return self._change_in_place("sub_", lambda old: old - (other if alpha == 1 else other * alpha), other)

    def mul_(self, other):
        return self._change_in_place("mul_", lambda old: old * other, other)

    def div_(self, other):
        return self._change_in_place("div_", lambda old: old / other, other)

    def clamp_(self, min=None, max=None):  # noqa: A002  (PyTorch's names)
        return self._change_in_place("clamp_", lambda old: ops.clip(old, min, max))

    def copy_(self, src):
        """Take the values of ``src`` (broadcast to this shape, cast to this dtype, moved to this device)."""
        return self._change_in_place("copy_", lambda old: ops.replace_values(old, src), src)

    def fill_(self, value):
        return self._change_in_place("fill_", lambda old: ops.replace_values(old, value))

    def zero_(self):
        return self.fill_(0)

    def normal_(self, mean=0.0, std=1.0):
        draw = creation.randn(self.shape, dtype=self.dtype, device=self.device) * std + mean
        return self.copy_(draw)

    def uniform_(self, a=0.0, b=1.0):
        draw = creation.rand(self.shape, dtype=self.dtype, device=self.device) * (b - a) + a
        return self.copy_(draw)

    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_


from minidl import autograd, creation, ops  # noqa: E402,I001  (they are built on Tensor: imported last to close the loop)
