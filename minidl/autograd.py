"""Reverse-mode automatic differentiation: Functions, graph recording, backward traversal.

The graph is recorded as the program runs (define-by-run). Every differentiable op is a
subclass of ``Function`` with two methods:

* ``forward(*arrays)`` computes the output from raw numpy/cupy arrays;
* ``backward(*grad_outputs)`` receives the gradient of the loss with respect to each
  output (as Tensors) and returns the gradient with respect to each input (Tensors,
  or None for an input that gets no gradient).

Because ``backward`` is written with Tensor ops, running it with grad recording on
(``create_graph=True``) records a graph of the gradient itself: gradients of gradients.

Calling a Function links each output Tensor to the Function (``tensor.creator``) and
the Function to its inputs (``function.inputs``). ``backward`` walks those links from
the loss back to the leaves, in reverse topological order, with an explicit stack:
there is no recursion, so a chain of 100,000 ops is fine.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

from minidl import backend

# --------------------------------------------------------------------------- #
# Grad mode
# --------------------------------------------------------------------------- #
_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops currently record the graph."""
    return getattr(_state, "enabled", True)


class _GradMode(contextlib.ContextDecorator):
    """Context manager and decorator that sets grad recording on or off."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.previous = is_grad_enabled()
        _state.enabled = self.enabled
        return self

    def __exit__(self, *exc):
        _state.enabled = self.previous
        return False

    def _recreate_cm(self):  # each call of a decorated function gets its own saved state
        return type(self)(self.enabled)


def no_grad(func=None):
    """Record nothing inside: ``with minidl.no_grad(): ...``, ``@minidl.no_grad()`` or ``@minidl.no_grad``."""
    mode = _GradMode(False)
    return mode if func is None else mode(func)


def enable_grad(func=None):
    """Record the graph inside, even within ``no_grad`` (a context manager or a decorator, like no_grad)."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


class set_grad_enabled(_GradMode):
    """``with set_grad_enabled(training): ...``"""


# --------------------------------------------------------------------------- #
# Function
# --------------------------------------------------------------------------- #
class Function:
    """One differentiable operation. Subclasses define ``forward`` and ``backward``.

    ``self.inputs`` are the input Tensors, ``self.outputs`` the output Tensors;
    ``forward`` may stash anything else ``backward`` needs on ``self``.
    """

    differentiable = True  # False for ops with no gradient (argmax, comparisons)

    def __call__(self, *inputs):
        inputs = tuple(as_tensor_like(x, inputs) for x in inputs)
        check_same_device(self, inputs)
        arrays = [t.data for t in inputs]
        try:
            result = self.forward(*arrays)
        except (ValueError, IndexError) as error:  # e.g. shapes that do not broadcast: name the op and shapes
            shapes = " and ".join(str(a.shape) for a in arrays)
            kind = ValueError if isinstance(error, ValueError) else IndexError
            raise kind(f"{self.name}: {error} (inputs of shape {shapes})") from error
        single = not isinstance(result, tuple)
        results = (result,) if single else result

        record = self.differentiable and is_grad_enabled() and any(t.requires_grad for t in inputs)
        outputs = tuple(_output_tensor(r, self if record else None) for r in results)
        if record:
            self.inputs = inputs
            self._outputs = tuple(weakref.ref(o) for o in outputs)
            if not single:  # an unused output still needs a zero gradient of the right shape
                self._output_meta = tuple((o.shape, o.dtype, o.device) for o in outputs)
        return outputs[0] if single else outputs

    @property
    def outputs(self):
        """The output Tensors (None for an output nobody holds any more)."""
        return tuple(ref() for ref in self._outputs)

    @property
    def name(self) -> str:
        return type(self).__name__

    def forward(self, *arrays):  # pragma: no cover - abstract
        raise NotImplementedError(f"{self.name}.forward is not implemented")

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{self.name}.backward is not implemented")

    def release(self):
        """Free what backward needed; called after backward unless ``retain_graph``."""
        self.__dict__ = {"inputs": None, "_outputs": self._outputs, "_released": True}

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _output_tensor(array, creator):
    """Wrap an op's result; only floating-point results carry a gradient (an int cast does not)."""
    differentiable = creator is not None and array.dtype.kind in "fc"
    return Tensor(array, requires_grad=differentiable, _creator=creator if differentiable else None)


def check_same_device(function, tensors) -> None:
    """All inputs of one op must live on one device."""
    if len(tensors) < 2:
        return
    first = tensors[0].device
    for t in tensors[1:]:
        if t.device != first:
            raise RuntimeError(
                f"{function.name}: expected all inputs on one device, "
                f"got tensors on '{first}' and '{t.device}'; move them with .to(device) first"
            )


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
            dtype = backend.numpy.dtype(backend.numpy.float32)
        elif not isinstance(value, bool) and dtype.kind == "b":  # mask * 2 counts, like PyTorch
            dtype = backend.numpy.dtype(backend.numpy.int64)
        return Tensor(like.xp.asarray(value, dtype=dtype))
    return Tensor(backend.to_device(value, like.device))


# --------------------------------------------------------------------------- #
# Backward traversal
# --------------------------------------------------------------------------- #
def topological_order(root_functions):
    """Functions reachable from ``root_functions``, each after every Function that uses its outputs.

    A depth-first search with an explicit stack yields a post-order (inputs before users);
    reversing it gives the order in which gradients can flow back.
    """
    order, visited = [], set()
    for root in root_functions:
        if root is None or id(root) in visited:
            continue
        visited.add(id(root))
        stack = [(root, iter(root.inputs or ()))]
        while stack:
            function, pending = stack[-1]
            for tensor in pending:
                child = tensor.creator
                if child is not None and id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, iter(child.inputs or ())))
                    break
            else:
                stack.pop()
                order.append(function)
    order.reverse()
    return order


def run_backward(tensors, grad_tensors, retain_graph=False, create_graph=False, inputs=None):
    """Send ``grad_tensors`` back from ``tensors`` through the recorded graph.

    Without ``inputs``: every leaf that requires grad gets its gradient added to ``.grad``
    (and so does every non-leaf that called ``retain_grad()``).
    With ``inputs``: nothing is stored; the gradients of those tensors are returned
    (a list, None where no gradient reached one). This is ``minidl.grad``.
    """
    pending = {}  # id(tensor) -> gradient flowing into that tensor so far
    alive = {}  # id(tensor) -> tensor, so that ids stay unique while we work
    captured = None if inputs is None else {id(t): None for t in inputs}

    def receive(tensor, grad):
        key = id(tensor)
        if captured is not None and key in captured:
            captured[key] = grad if captured[key] is None else captured[key] + grad
            if tensor.creator is None:
                return
        elif tensor.creator is None:
            if captured is None:
                _store_grad(tensor, grad, create_graph)
            return
        alive[key] = tensor
        pending[key] = grad if key not in pending else pending[key] + grad

    for t, g in zip(tensors, grad_tensors):
        receive(t, g)

    with _GradMode(create_graph):
        for function in topological_order([t.creator for t in tensors]):
            if getattr(function, "_released", False):
                raise RuntimeError(
                    f"backward: the graph through {function.name} was already freed by an earlier "
                    "backward(); pass retain_graph=True to the first backward to go through it twice"
                )
            grad_outputs = []
            for out in function.outputs:
                g = pending.pop(id(out), None) if out is not None else None
                if g is not None and out._retains_grad and captured is None:
                    _store_grad(out, g, create_graph)
                grad_outputs.append(g)
            if all(g is None for g in grad_outputs):
                continue
            grad_outputs = [
                g if g is not None else _zeros(*function._output_meta[i]) for i, g in enumerate(grad_outputs)
            ]

            grad_inputs = function.backward(*grad_outputs)
            if not isinstance(grad_inputs, tuple):
                grad_inputs = (grad_inputs,)
            if len(grad_inputs) != len(function.inputs):
                raise RuntimeError(
                    f"{function.name}.backward returned {len(grad_inputs)} gradients "
                    f"for {len(function.inputs)} inputs"
                )
            for x, gx in zip(function.inputs, grad_inputs):
                if gx is None or not x.requires_grad:
                    continue
                if gx.shape != x.shape:
                    raise RuntimeError(
                        f"{function.name}.backward returned a gradient of shape {gx.shape} "
                        f"for an input of shape {x.shape}"
                    )
                receive(x, gx)
            if not retain_graph:
                function.release()
    if captured is not None:
        return [captured[id(t)] for t in inputs]
    return None


def _zeros(shape, dtype, device):
    """The gradient of an output nobody used: zeros of its shape."""
    return Tensor(backend.array_module_for(device).zeros(shape, dtype=dtype))


def _store_grad(tensor, grad, create_graph):
    """Add ``grad`` into ``tensor.grad`` (detached unless building a graph of gradients)."""
    if not create_graph:
        grad = grad.detach()
    if grad.dtype != tensor.dtype:
        grad = grad.astype(tensor.dtype)
    tensor.grad = grad if tensor.grad is None else tensor.grad + grad


from minidl.tensor import Tensor  # noqa: E402  (Functions make Tensors; Tensors are made by Functions)
