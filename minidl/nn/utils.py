"""Gradient clipping: keep one bad batch from throwing the parameters far away.

``clip_grad_norm_`` rescales all gradients together so that their joint norm is at
most ``max_norm`` (the direction is kept); ``clip_grad_value_`` clamps each entry.
Both change ``p.grad`` of each parameter in place, as in PyTorch.
"""

from __future__ import annotations

import math

from minidl import backend, checks
from minidl.tensor import Tensor


def _grads(parameters, op: str) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected Tensors (parameters), got a {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _vector_norm(xp, array, norm_type: float):
    """(sum |x|**p) ** (1/p), or max |x| for p = inf, as a 0-d array in x's dtype."""
    if norm_type == math.inf:
        return xp.abs(array).max() if array.size else xp.zeros((), dtype=array.dtype)
    if norm_type == 2.0:
        return xp.sqrt(xp.sum(array * array))
    return xp.sum(xp.abs(array) ** norm_type) ** (1.0 / norm_type)


def _norm_order(norm_type, op: str) -> float:
    """The order p of a norm as a float: positive, or inf (the string 'inf' too, as in PyTorch)."""
    try:
        order = float(norm_type)
    except (TypeError, ValueError):
        order = math.nan
    if not order > 0:
        checks.fail(op, "norm_type to be a positive number or inf", norm_type)
    return order


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False):
    """Scale all gradients by ``min(1, max_norm / (total_norm + 1e-6))``; return ``total_norm``.

    ``total_norm`` is the ``norm_type``-norm of all gradients joined into one vector
    (the norm of the per-parameter norms); ``norm_type=inf`` means the largest |entry|.
    Returns a 0-d Tensor (0.0 when no parameter has a gradient).
    """
    op = "clip_grad_norm_"
    norm_type = _norm_order(norm_type, op)
    max_norm = checks.non_negative_float(max_norm, op, "max_norm")
    grads = _grads(parameters, op)
    if not grads:
        return Tensor.wrap(backend.numpy.zeros((), dtype=backend.numpy.float32))
    device, xp = grads[0].device, grads[0].xp
    norms = xp.stack([backend.to_device(_vector_norm(g.xp, g.data, norm_type), device) for g in grads])
    total_norm = _vector_norm(xp, norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total_norm)):
        raise RuntimeError(
            f"{op}: the total norm of order {norm_type} of the gradients is non-finite ({float(total_norm)}), "
            "so they cannot be clipped; set error_if_nonfinite=False to skip this check"
        )
    clip_coef = xp.minimum(max_norm / (total_norm + 1e-6), 1.0)
    for g in grads:  # a new array for each: two parameters' grads may share one array
        g.data = g.data * backend.to_device(clip_coef, g.device).astype(g.dtype)
    return Tensor.wrap(total_norm)


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient entry into [-clip_value, clip_value]."""
    op = "clip_grad_value_"
    clip_value = checks.non_negative_float(clip_value, op, "clip_value")
    for g in _grads(parameters, op):
        g.data = g.xp.clip(g.data, -clip_value, clip_value)
