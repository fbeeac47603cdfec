"""Adam and AdamW: gradient steps scaled by running estimates of the gradient's moments.

PyTorch's equations at step t (from 1), for gradient g and parameter p::

    g = g + weight_decay * p                  (Adam: L2 penalty coupled into the gradient)
    p = p - lr * weight_decay * p             (AdamW: weight decay decoupled from the gradient)
    m = beta1 * m + (1 - beta1) * g           (first moment)
    v = beta2 * v + (1 - beta2) * g**2        (second moment)
    v_max = max(v_max, v)                     (amsgrad only; v_max replaces v below)
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

The two ``1 - beta**t`` factors undo the bias of starting m and v at zero.
"""

from __future__ import annotations

import math

from minidl import checks
from minidl.optim.optimizer import Optimizer
from minidl.tensor import Tensor


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``; weight decay is an L2 penalty."""

    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False):
        name = type(self).__name__
        lr, eps = checks.non_negative_float(lr, name, "lr"), checks.non_negative_float(eps, name, "eps")
        weight_decay = checks.non_negative_float(weight_decay, name, "weight_decay")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
                checks.is_real(b) and 0.0 <= b < 1.0 for b in betas):
            checks.fail(name, "betas to be a pair (beta1, beta2) of numbers in [0, 1)", betas)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def update(self, p, grad, state, group):
        """Every change to p and to its moments is an in-place Tensor op, so it bumps their versions."""
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        g = Tensor.wrap(-grad if group["maximize"] else grad)
        if not state:
            xp = p.xp
            state["step"] = 0
            state["exp_avg"] = Tensor.wrap(xp.zeros_like(p.data))
            state["exp_avg_sq"] = Tensor.wrap(xp.zeros_like(p.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor.wrap(xp.zeros_like(p.data))
        state["step"] += 1
        step = state["step"]

        if weight_decay != 0:
            if self.decoupled_weight_decay:
                p.mul_(1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).add_(g * g, alpha=1 - beta2)
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"].copy_(Tensor.wrap(p.xp.maximum(state["max_exp_avg_sq"].data, v.data)))

        step_size = lr / (1 - beta1**step)
        denom = p.xp.sqrt(v.data) / math.sqrt(1 - beta2**step) + eps
        p.sub_(Tensor.wrap(m.data / denom), alpha=step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``:
    the parameter shrinks by ``lr * weight_decay * p`` each step, outside the moment estimates."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
