"""Adam and AdamW: gradient steps scaled by running estimates of the gradient's moments.

PyTorch's equations at step t (from 1), for gradient g and parameter p::

    g = g + weight_decay * p                  (Adam: L2 penalty coupled into the gradient)
    p = p - lr * weight_decay * p             (AdamW: weight decay decoupled from the gradient)
    m = beta1 * m + (1 - beta1) * g           (first moment)
    v = beta2 * v + (1 - beta2) * g**2        (second moment)
    v_max = max(v_max, v)                     (amsgrad only; v_max replaces v below)
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

The two ``1 - beta**t`` factors undo the bias of starting m and v at zero.

The update itself is the backend table's ``adam_step`` (minidl/kernels/optim.py), over all the
parameters of a group at once: on the CPU its NumPy twin (these equations, one parameter after
the other), on a GPU one multi-tensor kernel for every float32 parameter of the group.
"""

from __future__ import annotations

from minidl import checks, kernels
from minidl.optim.optimizer import Optimizer, batches, changed_in_place
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

    def update_group(self, group, params):
        """All of ``params`` in one call of the backend table (one kernel launch on a GPU)."""
        if self._overrides_update(Adam):  # a subclass changed the per-parameter rule: honour it
            return super().update_group(group, params)
        self._step(params, [p.grad.data for p in params], group)

    def update(self, p, grad, state, group):
        """One parameter, from the raw gradient array ``grad`` (a subclass may change it first, then call
        this); ``state`` is ``self.state[p]``, which the update keeps."""
        self._step([p], [grad], group)

    def _step(self, params, grads, group):
        """The table changes the arrays of p and of its moments in place; their versions are bumped after.
        Parameters at different step counts (one skipped a step without a gradient) go in separate calls."""
        for p in params:
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = Tensor.wrap(p.xp.zeros(p.shape, dtype=p.dtype))
                state["exp_avg_sq"] = Tensor.wrap(p.xp.zeros(p.shape, dtype=p.dtype))
            if group["amsgrad"] and state.get("max_exp_avg_sq") is None:
                state["max_exp_avg_sq"] = Tensor.wrap(p.xp.zeros(p.shape, dtype=p.dtype))
            state["step"] += 1
        grad_of = {id(p): g for p, g in zip(params, grads)}
        beta1, beta2 = group["betas"]
        for batch in batches(params, key=lambda p: self.state[p]["step"]):
            states = [self.state[p] for p in batch]
            moments = [[s.get(key) for s in states] for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")]
            kernels.backend_for(batch[0].data).adam_step(
                [p.data for p in batch], [grad_of[id(p)] for p in batch],
                *[[None if t is None else t.data for t in row] for row in moments],
                states[0]["step"], group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                self.decoupled_weight_decay, group["amsgrad"], group["maximize"])
            changed_in_place(batch + [t for row in moments for t in row])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``:
    the parameter shrinks by ``lr * weight_decay * p`` each step, outside the moment estimates."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
