"""RMSprop: each weight's step divided by a running root-mean-square of its gradient.

PyTorch's equations, for gradient g, parameter p, square average v, gradient average a
and momentum buffer b (all start at zero)::

    g = g + weight_decay * p                  (L2 penalty, coupled into the gradient)
    v = alpha * v + (1 - alpha) * g**2        (running mean of g**2)
    a = alpha * a + (1 - alpha) * g           (centered only: running mean of g)
    d = sqrt(v - a**2) + eps   if centered  else  d = sqrt(v) + eps
    b = momentum * b + g / d;  p = p - lr * b     (momentum > 0)
    p = p - lr * g / d                            (momentum = 0)

As in PyTorch, eps is added after the square root (TensorFlow adds it inside), and
there is no bias correction: v starts at zero, so the first steps are larger than lr
(step 1 divides by sqrt(1 - alpha) |g|, i.e. moves 10 lr for alpha = 0.99).
"""

from __future__ import annotations

from minidl import checks
from minidl.optim.optimizer import Optimizer
from minidl.tensor import Tensor


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e; centered: Graves, 2013), as ``torch.optim.RMSprop``."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False):
        lr = checks.non_negative_float(lr, "RMSprop", "lr")
        alpha = checks.real(alpha, "RMSprop", "alpha", minimum=0.0, maximum=1.0)
        eps = checks.non_negative_float(eps, "RMSprop", "eps")
        weight_decay = checks.non_negative_float(weight_decay, "RMSprop", "weight_decay")
        momentum = checks.non_negative_float(momentum, "RMSprop", "momentum")
        if not isinstance(centered, bool):
            checks.fail("RMSprop", "centered to be True or False", centered, TypeError)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    state_keys = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def update(self, p, grad, state, group):
        """Every change to p and to its averages is an in-place Tensor op, so it bumps their versions."""
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        g = Tensor.wrap(-grad if group["maximize"] else grad)
        xp = p.xp
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor.wrap(xp.zeros_like(p.data))
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = Tensor.wrap(xp.zeros_like(p.data))
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = Tensor.wrap(xp.zeros_like(p.data))
        state["step"] += 1

        if weight_decay != 0:
            g = g + weight_decay * p
        v = state["square_avg"]
        v.mul_(alpha).add_(g * g, alpha=1 - alpha)
        if group["centered"]:
            a = state["grad_avg"]
            a.mul_(alpha).add_(g, alpha=1 - alpha)
            denom = xp.sqrt(v.data - a.data * a.data) + eps
        else:
            denom = xp.sqrt(v.data) + eps
        scaled = Tensor.wrap(g.data / denom)
        if momentum > 0:
            b = state["momentum_buffer"]
            b.mul_(momentum).add_(scaled)
            p.sub_(b, alpha=lr)
        else:
            p.sub_(scaled, alpha=lr)
