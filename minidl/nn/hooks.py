"""Module hooks, with PyTorch's semantics: code that runs around a module's forward and backward.

* ``module.register_forward_pre_hook(hook)``: ``hook(module, args)`` before ``forward``;
  it may return new args (a tuple, or a single value that becomes a 1-tuple).
* ``module.register_forward_hook(hook)``: ``hook(module, args, output)`` after ``forward``;
  it may return a new output.
* ``module.register_full_backward_hook(hook)``: ``hook(module, grad_input, grad_output)`` once
  the gradients of the call are known: grad_output[i] = dL/d output_i, grad_input[j] = dL/d args[j]
  (None for an argument that is not a Tensor requiring grad). It may return a replacement
  grad_input, which is what flows on to the layers before.

How the backward hook sees the gradients of one call, separately from any other use of the
same tensors: the Tensor arguments go into ``forward`` through an identity op, ``InputGate``,
and the Tensor outputs come out through another, ``OutputGate``. Backward reaches OutputGate
first (its backward receives every dL/d output at once), then InputGate (every dL/d input of
this call at once): there the hook runs, and InputGate passes on what it returns.

Every register method returns an ``autograd.RemovableHandle``: ``handle.remove()``.
"""

from __future__ import annotations

from minidl.autograd import Function, is_grad_enabled
from minidl.tensor import Tensor


class OutputGate(Function):
    """y_i = x_i for the module's outputs;  gx_i = gy_i, after noting gy in ``call.grad_output``."""

    keeps_inputs = False

    def __init__(self, call):
        self.call = call

    def forward(self, *xs):
        return tuple(x.view() for x in xs)  # views share the outputs' version counters

    def backward(self, *grads):
        self.call.grad_output = grads
        if not self.call.inputs_need_grad:  # no InputGate will run: the hook runs now
            self.call.run_hooks(())
        return grads


class InputGate(Function):
    """y_j = x_j for the module's Tensor arguments;  gx = the hooks' grad_input (gy by default)."""

    keeps_inputs = False

    def __init__(self, call):
        self.call = call

    def forward(self, *xs):
        return tuple(x.view() for x in xs)

    def backward(self, *grads):
        return self.call.run_hooks(grads)


class BackwardHookCall:
    """One call of a module with backward hooks: where its gates meet."""

    def __init__(self, module, args):
        self.module, self.grad_output = module, ()
        self.positions = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        self.num_args, self.inputs_need_grad = len(args), bool(self.positions)

    def gate_inputs(self, args):
        """args with every Tensor that requires grad passed through one InputGate."""
        if not self.positions:
            return args
        gated = InputGate(self)(*(args[i] for i in self.positions))
        args = list(args)
        for i, g in zip(self.positions, gated):  # a gate always returns a tuple
            args[i] = g
        return tuple(args)

    def gate_outputs(self, output):
        """output (a Tensor or nested tuples/lists of them) with its Tensors that require grad
        passed through one OutputGate."""
        found = []
        _map_tensors(output, lambda t: found.append(t) or t)
        found = [t for t in found if t.requires_grad]
        if not found:
            return output
        gated = OutputGate(self)(*found)
        replacement = dict(zip(map(id, found), gated))
        return _map_tensors(output, lambda t: replacement.get(id(t), t))

    def run_hooks(self, grads):
        """Call each backward hook with (grad_input, grad_output); return the gradients for the gated inputs."""
        grad_input = [None] * self.num_args
        for i, g in zip(self.positions, grads):
            grad_input[i] = g
        grad_input = tuple(grad_input)
        for hook in list(self.module._backward_hooks.values()):
            replaced = hook(self.module, grad_input, tuple(self.grad_output))
            if replaced is not None:
                grad_input = self._check_replacement(tuple(replaced), grad_input)
        return tuple(grad_input[i] for i in self.positions)

    def _check_replacement(self, replaced, grad_input):
        name = type(self.module).__name__
        if len(replaced) != len(grad_input):
            raise RuntimeError(
                f"{name}: a backward hook returned {len(replaced)} gradients; expected {len(grad_input)}, "
                "one per positional argument of forward (None where there is none)"
            )
        for i, (new, old) in enumerate(zip(replaced, grad_input)):
            if new is not None and (not isinstance(new, Tensor) or old is None or new.shape != old.shape):
                what = f"a {type(new).__name__}" if not isinstance(new, Tensor) else f"shape {new.shape}"
                expected = "None (that argument gets no gradient)" if old is None else f"a Tensor of shape {old.shape}"
                raise RuntimeError(f"{name}: a backward hook returned {what} as grad_input[{i}]; expected {expected}")
        return replaced


def _map_tensors(value, fn):
    """``value`` with fn applied to every Tensor inside (tuples and lists are walked)."""
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


def call_with_hooks(module, args, kwargs):
    """``module.forward(*args, **kwargs)`` with its pre-hooks, forward hooks and backward hooks."""
    for hook in list(module._forward_pre_hooks.values()):
        new_args = hook(module, args)
        if new_args is not None:
            args = new_args if isinstance(new_args, tuple) else (new_args,)
    call = BackwardHookCall(module, args) if module._backward_hooks and is_grad_enabled() else None
    if call is not None:
        args = call.gate_inputs(args)
    output = module.forward(*args, **kwargs)
    for hook in list(module._forward_hooks.values()):
        new_output = hook(module, args, output)
        if new_output is not None:
            output = new_output
    return output if call is None else call.gate_outputs(output)
