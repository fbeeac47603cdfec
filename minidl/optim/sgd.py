"""SGD: stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

PyTorch's equations, for gradient g, parameter p and momentum buffer b::

    g = g + weight_decay * p                  (L2 penalty, coupled into the gradient)
    b = g                                     (first step)
    b = momentum * b + (1 - dampening) * g    (later steps)
    g = g + momentum * b   if nesterov  else  g = b
    p = p - lr * g                            (p + lr * g with maximize=True)
"""

from __future__ import annotations

from minidl.optim.optimizer import Optimizer
from minidl.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        if lr < 0.0:
            raise ValueError(f"SGD: invalid learning rate {lr} (expected lr >= 0)")
        if momentum < 0.0:
            raise ValueError(f"SGD: invalid momentum {momentum} (expected momentum >= 0)")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay} (expected weight_decay >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires momentum > 0 and dampening = 0, "
                f"got momentum={momentum}, dampening={dampening}"
            )
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, p, grad, state, group):
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * p.data
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = Tensor(grad.copy())
            else:
                buffer.data *= momentum
                buffer.data += (1 - group["dampening"]) * grad
            grad = grad + momentum * buffer.data if group["nesterov"] else buffer.data
        if group["maximize"]:
            p.data += lr * grad
        else:
            p.data -= lr * grad
