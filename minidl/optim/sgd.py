"""SGD: stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

PyTorch's equations, for gradient g, parameter p and momentum buffer b::

    g = -g                                    (maximize=True: ascend)
    g = g + weight_decay * p                  (L2 penalty, coupled into the gradient)
    b = g                                     (first step)
    b = momentum * b + (1 - dampening) * g    (later steps)
    g = g + momentum * b   if nesterov  else  g = b
    p = p - lr * g

The update itself is the backend table's ``sgd_step`` (minidl/kernels/optim.py), over all the
parameters of a group at once: on the CPU its NumPy twin (these equations, one parameter after
the other), on a GPU one multi-tensor kernel for every float32 parameter of the group.
"""

from __future__ import annotations

from minidl import checks, kernels
from minidl.optim.optimizer import Optimizer, batches, changed_in_place
from minidl.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        lr = checks.non_negative_float(lr, "SGD", "lr")
        momentum = checks.non_negative_float(momentum, "SGD", "momentum")
        dampening = checks.real(dampening, "SGD", "dampening")
        weight_decay = checks.non_negative_float(weight_decay, "SGD", "weight_decay")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires momentum > 0 and dampening = 0, "
                f"got momentum={momentum}, dampening={dampening}"
            )
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    state_keys = ("momentum_buffer",)

    def update_group(self, group, params):
        """All of ``params`` in one call of the backend table (one kernel launch on a GPU)."""
        if self._overrides_update(SGD):  # a subclass changed the per-parameter rule: honour it
            return super().update_group(group, params)
        self._step(params, [p.grad.data for p in params], group)

    def update(self, p, grad, state, group):
        """One parameter, from the raw gradient array ``grad`` (a subclass may change it first, then call
        this); ``state`` is ``self.state[p]``, which the update keeps."""
        self._step([p], [grad], group)

    def _step(self, params, grads, group):
        """The table changes the arrays of p and of its buffer in place; their versions are bumped after."""
        momentum = group["momentum"]
        new = {}  # id(p) -> p's momentum buffer that starts now: it takes the gradient (kept once filled)
        for p in params:
            if self.state.setdefault(p, {}).get("momentum_buffer") is None and momentum != 0:
                new[id(p)] = Tensor.wrap(p.xp.empty(p.shape, dtype=p.dtype))
        grad_of = {id(p): g for p, g in zip(params, grads)}
        for batch in batches(params, key=lambda p: id(p) in new):
            buffers = [new[id(p)] if id(p) in new else self.state[p].get("momentum_buffer") for p in batch]
            kernels.backend_for(batch[0].data).sgd_step(
                [p.data for p in batch], [grad_of[id(p)] for p in batch],
                [None if b is None else b.data for b in buffers],
                group["lr"], momentum, group["dampening"], group["weight_decay"], group["nesterov"],
                group["maximize"], first_step=id(batch[0]) in new)
            for p, buffer in zip(batch, buffers):
                if id(p) in new:
                    self.state[p]["momentum_buffer"] = buffer
            changed_in_place(batch + buffers)
