"""SGD: stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

PyTorch's equations, for gradient g, parameter p and momentum buffer b::

    g = g + weight_decay * p                  (L2 penalty, coupled into the gradient)
    b = g                                     (first step)
    b = momentum * b + (1 - dampening) * g    (later steps)
    g = g + momentum * b   if nesterov  else  g = b
    p = p - lr * g                            (p + lr * g with maximize=True)
"""

from __future__ import annotations

from minidl import checks
from minidl.optim.optimizer import Optimizer
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

    def update(self, p, grad, state, group):
        """Every change to p and to its buffer is an in-place Tensor op, so it bumps their versions."""
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        g = Tensor.wrap(grad)
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = Tensor.wrap(g.data.copy())
            else:
                buffer.mul_(momentum).add_(g, alpha=1 - group["dampening"])
            g = g + momentum * buffer if group["nesterov"] else buffer
        if group["maximize"]:
            p.add_(g, alpha=lr)
        else:
            p.sub_(g, alpha=lr)
