"""Reverse-mode automatic differentiation: Functions, graph recording, backward traversal.

The graph is recorded as the program runs (define-by-run). Every differentiable op is a
subclass of ``Function`` with two methods:

* ``forward(*arrays)`` computes the output from raw numpy/cupy arrays;
* ``backward(*grad_outputs)`` receives the gradient of the loss with respect to each
  output (as Tensors) and returns the gradient with respect to each input (Tensors,
  or None for an input that gets no gradient).

Because ``backward`` is written with Tensor ops, running it with grad recording on
(``create_graph=True``) records a graph of the gradient itself: gradients of gradients.
A fused Function, whose backward works on raw arrays, also defines ``composed(*inputs)``:
the same math in Tensor ops, which the engine differentiates instead when create_graph=True.

Calling a Function links each output Tensor to the Function (``tensor.grad_fn``) and
the Function to its inputs (``function.inputs``). ``backward`` walks those links from
the loss back to the leaves, in reverse topological order, with an explicit stack:
there is no recursion, so a chain of 100,000 ops is fine.
"""

from __future__ import annotations

import weakref

import numpy

from minidl import backend
from minidl.grad_mode import _Mode, check_finite, is_anomaly_enabled, is_grad_enabled, user_frames
from minidl.grad_mode import detect_anomaly, enable_grad, no_grad, set_detect_anomaly, set_grad_enabled  # noqa: F401


class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` takes the hook away again."""

    _next_id = 0

    def __init__(self, hooks: dict, hook):
        self.hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1
        hooks[self.id] = hook

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


# --------------------------------------------------------------------------- #
# Function
# --------------------------------------------------------------------------- #
class Function:
    """One differentiable operation. Subclasses define ``forward`` and ``backward``.

    ``self.inputs`` are the input Tensors, ``self.outputs`` the output Tensors;
    ``forward`` may stash anything else ``backward`` needs on ``self``.
    """

    differentiable = True  # False for ops with no gradient (argmax, comparisons)
    keeps_inputs = True  # backward reads the inputs' values (False for x + y, reshape ...)
    keeps_outputs = False  # backward reads the outputs' values (True for exp, tanh ...)
    composed = None  # a fused op's twin in Tensor ops, composed(*inputs) -> output(s)

    def __call__(self, *inputs):
        inputs = tuple(x if isinstance(x, Tensor) else as_tensor_like(x, inputs) for x in inputs)
        check_same_device(self, inputs)
        arrays = [t.data for t in inputs]
        try:
            result = self.forward(*arrays)
        except (ValueError, IndexError) as error:  # e.g. shapes that do not broadcast: name the op and shapes
            shapes = " and ".join(str(a.shape) for a in arrays)
            raise type(error)(f"{self.name}: {error} (inputs of shape {shapes})") from error
        single = not isinstance(result, tuple)
        outputs = tuple(_output_tensor(r, inputs) for r in ((result,) if single else result))
        if is_anomaly_enabled():
            self.stack = user_frames()
            check_finite(self, [o.data for o in outputs], "forward", "output", nan_only=True)
        if self.differentiable and is_grad_enabled() and any(t.requires_grad for t in inputs):
            self._record(inputs, outputs)
        return outputs[0] if single else outputs

    def _record(self, inputs, outputs):
        """Link this Function into the graph between ``inputs`` and ``outputs``."""
        self.inputs = inputs
        for o in outputs:
            if o.dtype.kind in "fc":  # only floating-point results carry a gradient (an int cast does not)
                o.grad_fn, o.requires_grad = self, True
        self._outputs = tuple(weakref.ref(o) for o in outputs)
        if len(outputs) > 1:  # an output nobody used still needs a zero gradient of its shape
            self._output_meta = tuple((o.shape, o.dtype, o.device) for o in outputs)
        self._versions = (tuple(t._version for t in inputs) if self.keeps_inputs else None,
                          tuple(o._version for o in outputs) if self.keeps_outputs else None)

    @property
    def outputs(self):
        """The output Tensors (None for an output nobody holds any more)."""
        return tuple(ref() for ref in self._outputs)

    def replace_output(self, old, new) -> None:
        """Make ``new`` stand where ``old`` was among the outputs (for in-place changes)."""
        self._outputs = tuple(weakref.ref(new) if ref() is old else ref for ref in self._outputs)

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


def _output_tensor(array, inputs):
    """Wrap an op's result. A result that views an input's memory (a reshape, a slice) shares
    that input's version counter, so an in-place change through either one is seen by both."""
    out = Tensor.wrap(array)
    base = getattr(array, "base", None)
    if base is not None:
        for t in inputs:
            if t.data is base or t.data.base is base:
                out._version_counter, out._base = t._version_counter, (t if t._base is None else t._base)
                break
    return out


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


# --------------------------------------------------------------------------- #
# Backward traversal
# --------------------------------------------------------------------------- #
def topological_order(root_functions, boundary=()):
    """Functions reachable from ``root_functions``, each after every Function that uses its outputs.

    A depth-first search with an explicit stack yields a post-order (inputs before users);
    reversing it gives the order in which gradients can flow back. The walk does not go
    past a tensor whose id is in ``boundary``.
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
                child = tensor.grad_fn
                if child is not None and id(child) not in visited and id(tensor) not in boundary:
                    visited.add(id(child))
                    stack.append((child, iter(child.inputs or ())))
                    break
            else:
                stack.pop()
                order.append(function)
    order.reverse()
    return order


def run_backward(tensors, grad_tensors, retain_graph=False, create_graph=False, inputs=None,
                 accumulate=None, stop_at_inputs=False):
    """Send ``grad_tensors`` back from ``tensors`` through the recorded graph.

    ``accumulate`` (the default without ``inputs``): add each gradient into ``.grad`` of the
    leaves (or of ``inputs`` only), and of the non-leaves that called ``retain_grad()``.
    Otherwise return the gradients of ``inputs`` (None where none arrived): ``minidl.grad``.
    ``stop_at_inputs``: do not walk past ``inputs`` (their partial derivatives only).
    """
    accumulate = inputs is None if accumulate is None else accumulate
    wanted = {} if inputs is None else {id(t): None for t in inputs}
    arrived, handed = {}, {id(g.data) for g in grad_tensors}  # handed: arrays someone else holds
    for t, g in zip(tensors, grad_tensors):
        _add_gradient(arrived, t, g)

    def finish(tensor):  # every gradient of `tensor` has arrived: hooks, then store or hand back
        grad = _run_hooks(tensor, arrived.pop(id(tensor))[1])
        if id(tensor) in wanted and not accumulate:
            wanted[id(tensor)] = grad
        elif accumulate and (id(tensor) in wanted or inputs is None and (tensor.is_leaf or tensor._retains_grad)):
            _store_grad(tensor, grad, create_graph, handed)
        return grad

    boundary = set(wanted) if stop_at_inputs else ()
    with _Mode(create_graph):
        for function in topological_order([t.grad_fn for t in tensors if id(t) not in boundary], boundary):
            outs = function.outputs
            grad_outputs = [finish(o) if o is not None and id(o) in arrived else None for o in outs]
            if all(g is None for g in grad_outputs):
                continue
            for x, gx in zip(function.inputs, _call_backward(function, grad_outputs, create_graph)):
                if gx is not None and x.requires_grad:
                    _add_gradient(arrived, x, gx)
            if not retain_graph:
                function.release()
        for tensor, _ in list(arrived.values()):  # what is left: leaves, and tensors at the boundary
            finish(tensor)
    return None if accumulate else [wanted[id(t)] for t in inputs]


def _add_gradient(arrived, tensor, grad):
    key = id(tensor)
    arrived[key] = (tensor, grad if key not in arrived else arrived[key][1] + grad)


def _call_backward(function, grad_outputs, create_graph):
    """``function``'s gradients for its inputs, as Tensors, after checking that it still can."""
    if getattr(function, "_released", False):
        raise RuntimeError(
            f"backward: the graph through {function.name} was already freed by an earlier "
            "backward(); pass retain_graph=True to the first backward to go through it twice"
        )
    _check_versions(function)
    if len(grad_outputs) > 1:  # outputs nobody used get zeros
        zeros = lambda shape, dtype, device: Tensor.wrap(backend.array_module_for(device).zeros(shape, dtype))  # noqa
        grad_outputs = [g if g is not None else zeros(*meta) for g, meta in zip(grad_outputs, function._output_meta)]
    if create_graph and function.composed is not None:
        grads = _differentiate_composed(function, grad_outputs)
    else:
        grads = function.backward(*grad_outputs)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(function.inputs):
        raise RuntimeError(f"{function.name}.backward returned {len(grads)} gradients for {len(function.inputs)} inputs")
    for i, (x, g) in enumerate(zip(function.inputs, grads)):
        if g is not None and not isinstance(g, Tensor):
            raise TypeError(f"{function.name}.backward returned a {type(g).__name__} for input {i}; "
                            "expected a Tensor or None; wrap arrays as minidl.Tensor(array)")
        if g is not None and g.shape != x.shape:
            raise RuntimeError(
                f"{function.name}.backward returned a gradient of shape {g.shape} for an input of shape {x.shape}"
            )
    if is_anomaly_enabled():
        check_finite(function, [None if g is None else g.data for g in grads], "backward", "gradient")
    return grads


def _differentiate_composed(function, grad_outputs):
    """create_graph=True through a fused Function: run its composed twin on the same inputs and
    let autograd differentiate that, stopping at the inputs (their partial derivatives only)."""
    inputs = function.inputs
    wanted = list({id(t): t for t in inputs if t.requires_grad}.values())  # each tensor once
    outputs = function.composed(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    grads = run_backward([o for o, _ in pairs], [g for _, g in pairs], True, True, wanted, False, True)
    by_id = {id(t): g for t, g in zip(wanted, grads)}
    return tuple(by_id.pop(id(t), None) for t in inputs)  # a tensor passed twice gets its gradient once


def _check_versions(function):
    """Refuse to run a backward whose saved tensors were changed in place after forward."""
    for role, tensors, versions in zip(("input", "output"), (function.inputs, function.outputs), function._versions):
        for t, seen in zip(tensors, versions or ()):
            if t is None or t._version == seen:
                continue
            raise RuntimeError(
                f"backward: one of the tensors needed for gradient computation has been modified by an "
                f"in-place operation: {function.name}'s {role} of shape {t.shape} is at version {t._version}; "
                f"expected version {seen}. Change it out of place (y = y + 1), or after backward "
                "(an optimizer step between two backwards over one graph does this)"
            )


def _run_hooks(tensor, grad):
    for hook in list((tensor._hooks or {}).values()):
        replaced = hook(grad)
        if replaced is not None:
            grad = replaced
    return grad


def _store_grad(tensor, grad, create_graph, handed):
    """Add ``grad`` into ``tensor.grad`` (detached unless building a graph of gradients). A new
    ``.grad`` owns its array, so an in-place change to it (``zero_()``, a GradScaler's unscale) touches
    nothing else; a fresh array (the usual case) is stored as it is, without a copy (a launch on a GPU)."""
    grad = grad if create_graph else grad.detach()
    if grad.dtype != tensor.dtype:
        grad = grad.to(tensor.dtype)
    elif tensor.grad is None and not create_graph and _shared(grad.data, handed):
        grad = Tensor.wrap(grad.data.copy())
    handed.update((id(grad.data), id(grad.data if grad.data.base is None else grad.data.base)))
    tensor.grad = grad if tensor.grad is None else tensor.grad + grad


def _shared(array, handed) -> bool:
    """Whether ``array`` must be copied to be owned: it (or the array it views) is held by the caller
    or another tensor's ``.grad`` (``handed``), or it is a view that is no plain C-contiguous block
    (a broadcast gradient: one value seen many times; a transposed one: kernels want C order)."""
    base = array.base
    return id(array) in handed or base is not None and (id(base) in handed or not array.flags.c_contiguous)


_SEEDS: dict = {}  # (device, dtype, shape) -> a ones array that backward() starts from; never written to


def seed_gradient(tensor):
    """d(tensor)/d(tensor) = 1 for a one-element ``tensor``: made once per device, dtype and shape
    (``run_backward`` counts it as handed, so no ``.grad`` ever stores it without a copy)."""
    key = (str(tensor.device), tensor.dtype, tensor.shape)
    if key not in _SEEDS:
        ones = tensor.xp.ones(tensor.shape, dtype=tensor.dtype)
        if isinstance(ones, numpy.ndarray):
            ones.flags.writeable = False  # on the CPU a write into the seed raises
        _SEEDS[key] = ones
    return Tensor.wrap(_SEEDS[key])


from minidl.tensor import Tensor  # noqa: E402,I001  (Tensor and creation are built on Function:
from minidl.creation import as_tensor_like  # noqa: E402  imported last to close the loop)
