"""The optim family: SGD and Adam/AdamW over a whole list of parameters at once, in place.

Two entries of the backend table, called by minidl.optim with lists of raw arrays::

    sgd_step(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize,
             first_step)
    adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1, beta2, eps,
              weight_decay, decoupled, amsgrad, maximize)

Every array is changed where it is (the caller bumps the tensors' versions). ``first_step``: the
momentum buffers are new (their values are garbage) and take the gradient. ``step`` is Adam's step
count t, the same for every parameter of the call (from 1). Unused state lists may hold None
(``momentum_buffers`` when momentum is 0, ``max_exp_avg_sqs`` without amsgrad).

* NumPy twin: ``sgd_update`` / ``adam_update``, one parameter at a time, PyTorch's equations written
  as array code (xp-generic: it also runs on cupy arrays of other dtypes than float32).
* CuPy: one launch of a multi-tensor kernel (optim.cu) for every float32 parameter of the call,
  where the twin costs 6 to 13 array passes per parameter. The kernel finds the arrays through a
  device table of their addresses, uploaded only when an address changes (``upload_count`` says
  how many times): once per step at most, as the gradients are new arrays every step (one small
  asynchronous copy through pinned memory, ``launch.upload``: no sync; none at all when CuPy's
  memory pool gives the gradients their last step's addresses again).
  The scalars that change per step (bias corrections, the lr a scheduler sets) are kernel arguments.
"""

from __future__ import annotations

import math

import numpy

from minidl import backend
from minidl.kernels import launch

CU = "optim.cu"


# --------------------------------------------------------------------------- #
# The NumPy twins: one parameter, PyTorch's equations
# --------------------------------------------------------------------------- #
def sgd_update(p, grad, buffer, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    """One parameter's SGD step, in place (``buffer`` is None when momentum is 0)::

        g = -g                (maximize)
        g = g + weight_decay * p
        b = g  (first step)   or   b = momentum * b + (1 - dampening) * g
        g = g + momentum * b  (nesterov)   or   g = b
        p = p - lr * g
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + p * weight_decay
    if momentum != 0:
        if first_step:
            buffer[...] = g
        else:
            buffer *= momentum
            buffer += g * (1 - dampening)
        g = g + buffer * momentum if nesterov else buffer
    p -= g * lr


def adam_scalars(step, lr, beta1, beta2, weight_decay):
    """The per-step numbers of Adam's update, computed once on the host (Python floats)::

        decay = 1 - lr * weight_decay               (AdamW's shrink)
        step_size = lr / (1 - beta1**t)             (undoes m's bias from starting at zero)
        bias_correction2_sqrt = sqrt(1 - beta2**t)  (the same for v, under the square root)
    """
    return 1 - lr * weight_decay, lr / (1 - beta1**step), math.sqrt(1 - beta2**step)


def adam_update(p, grad, m, v, v_max, beta1, beta2, eps, weight_decay, decay, step_size, bias_correction2_sqrt,
                decoupled, amsgrad, maximize):
    """One parameter's Adam (or AdamW, ``decoupled``) step, in place::

        g = -g                              (maximize)
        p = decay * p                       (AdamW)   or   g = g + weight_decay * p   (Adam)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = max(v_max, v)               (amsgrad; v_max replaces v below)
        p = p - step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
    """
    xp = backend.get_array_module(p)
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            p *= decay
        else:
            g = g + p * weight_decay
    m *= beta1
    m += g * (1 - beta1)
    v *= beta2
    v += (g * g) * (1 - beta2)
    if amsgrad:
        xp.maximum(v_max, v, out=v_max)
        v = v_max
    denom = xp.sqrt(v) / bias_correction2_sqrt + eps
    p -= (m / denom) * step_size


class NumpyOptim:
    @staticmethod
    def sgd_step(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize,
                 first_step=False):
        """SGD for every parameter of the lists, one after the other (``sgd_update``)."""
        for p, grad, buffer in zip(params, grads, momentum_buffers):
            sgd_update(p, grad, buffer, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step)

    @staticmethod
    def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1, beta2, eps, weight_decay,
                  decoupled, amsgrad, maximize):
        """Adam at step ``step`` for every parameter of the lists, one after the other (``adam_update``)."""
        scalars = adam_scalars(step, lr, beta1, beta2, weight_decay)
        for p, grad, m, v, v_max in zip(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
            adam_update(p, grad, m, v, v_max, beta1, beta2, eps, weight_decay, *scalars, decoupled, amsgrad, maximize)


# --------------------------------------------------------------------------- #
# CuPy: one multi-tensor launch for the float32 parameters
# --------------------------------------------------------------------------- #
class CupyOptim(NumpyOptim):  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def sgd_step(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize,
                 first_step=False):
        """SGD: one ``sgd_multi_tensor`` launch for the float32 parameters, the twin for the others."""
        buffers = list(momentum_buffers) if momentum != 0 else [None] * len(params)
        rows, rest = _split_for_kernel([params, grads, buffers])
        if rest:
            NumpyOptim.sgd_step(*rest, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step)
        if rows:
            f32, i32 = numpy.float32, numpy.int32
            _launch_multi_tensor("sgd_multi_tensor", rows, (
                f32(lr), f32(momentum), f32(dampening), f32(weight_decay),
                i32(bool(nesterov)), i32(bool(maximize)), i32(bool(first_step))))

    @staticmethod
    def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1, beta2, eps, weight_decay,
                  decoupled, amsgrad, maximize):
        """Adam: one ``adam_multi_tensor`` launch for the float32 parameters, the twin for the others."""
        v_maxes = list(max_exp_avg_sqs) if amsgrad else [None] * len(params)
        rows, rest = _split_for_kernel([params, grads, exp_avgs, exp_avg_sqs, v_maxes])
        if rest:
            NumpyOptim.adam_step(*rest, step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize)
        if rows:
            f32, i32 = numpy.float32, numpy.int32
            decay, step_size, bias_correction2_sqrt = adam_scalars(step, lr, beta1, beta2, weight_decay)
            _launch_multi_tensor("adam_multi_tensor", rows, (
                f32(beta1), f32(beta2), f32(eps), f32(weight_decay), f32(decay), f32(step_size),
                f32(bias_correction2_sqrt), i32(bool(decoupled)), i32(bool(amsgrad)), i32(bool(maximize))))


def _split_for_kernel(rows):
    """Split the columns of ``rows`` (row 0 params, row 1 grads, then states; None = unused) into those
    the kernel can take (cupy float32, C-contiguous, on the first parameter's device) and the rest.
    A float32 gradient that is not C-contiguous is copied (one launch) so that it can go too."""
    xp = backend.cupy
    rows = [list(row) for row in rows]
    device = rows[0][0].device.id if rows[0] else None
    kernel_columns, rest_columns = [], []
    for i in range(len(rows[0])):
        grad = rows[1][i]
        if backend.is_cupy_array(grad) and grad.dtype == numpy.float32 and not grad.flags.c_contiguous:
            rows[1][i] = xp.ascontiguousarray(grad)
        column = [row[i] for row in rows]
        fits = all(
            a is None or (backend.is_cupy_array(a) and a.dtype == numpy.float32 and a.flags.c_contiguous
                          and a.device.id == device)
            for a in column)
        (kernel_columns if fits else rest_columns).append(column)
    return _as_rows(kernel_columns), _as_rows(rest_columns)


def _as_rows(columns):
    """Columns back to rows (None when there are no columns)."""
    return [list(row) for row in zip(*columns)] if columns else None


_uploaded: dict = {}  # (cupy module, device id, values) -> the device array holding them (a few, newest last)
upload_count = 0  # how many address tables have been copied to a device (for the cost tests)


def _device_int64(values: tuple, device_id: int):
    """``values`` as an int64 device array, uploaded once (asynchronously: ``launch.upload``) and kept
    while it keeps being asked for. A table holds addresses (or sizes) only, so it stays right whatever
    now lives at them."""
    global upload_count
    key = (id(backend.cupy), device_id, values)
    table = _uploaded.pop(key, None)
    if table is None:
        table = launch.upload(numpy.array(values, dtype=numpy.int64))
        upload_count += 1
    _uploaded[key] = table  # (re)inserted last: the newest
    while len(_uploaded) > 16:
        del _uploaded[next(iter(_uploaded))]
    return table


def _launch_multi_tensor(name, rows, scalars):
    """Launch kernel ``name`` over every item of the tensors in ``rows`` (row 0: the params)."""
    first = rows[0][0]
    sizes = [a.size for a in rows[0]]
    starts = tuple(int(s) for s in numpy.cumsum([0] + sizes))
    addresses = tuple(0 if a is None else a.data.ptr for row in rows for a in row)
    with first.device:
        device_id = first.device.id
        args = (_device_int64(addresses, device_id), _device_int64(starts, device_id),
                numpy.int32(len(sizes)), numpy.int64(starts[-1]), *scalars)
        launch.launch(CU, name, starts[-1], args)


# --------------------------------------------------------------------------- #
# Emulation on the CPU stand-in (minidl.fakecupy): the kernels, through the twins
# --------------------------------------------------------------------------- #
def _tensors(addresses, starts, n_tensors):
    """The kernel's tables read back on the stand-in: one tuple per tensor t of its rows' arrays (flat
    numpy payloads, found by address with the stand-in's ``array_at``; None for address 0)."""
    array_at = backend.cupy.array_at  # the stand-in is installed as backend.cupy while it runs kernels
    rows = numpy.asarray(addresses).reshape(-1, n_tensors)
    for t in range(n_tensors):
        size = int(starts[t + 1] - starts[t])
        arrays = []
        for address in rows[:, t]:
            array = None if address == 0 else array_at(int(address)).reshape(-1)
            if array is not None and array.size != size:
                raise ValueError(f"optim kernel emulation: the array at address {int(address)} has {array.size} "
                                 f"items, the kernel's starts give tensor {t} {size}")
            arrays.append(array)
        yield arrays


def _emulate_sgd(addresses, starts, n_tensors, n, lr, momentum, dampening, weight_decay, nesterov, maximize,
                 first_step):
    for p, grad, buffer in _tensors(addresses, starts, n_tensors):
        sgd_update(p, grad, buffer, lr, momentum, dampening, weight_decay, bool(nesterov), bool(maximize),
                   bool(first_step))


def _emulate_adam(addresses, starts, n_tensors, n, beta1, beta2, eps, weight_decay, decay, step_size,
                  bias_correction2_sqrt, decoupled, amsgrad, maximize):
    for p, grad, m, v, v_max in _tensors(addresses, starts, n_tensors):
        adam_update(p, grad, m, v, v_max, beta1, beta2, eps, weight_decay, decay, step_size, bias_correction2_sqrt,
                    bool(decoupled), bool(amsgrad), bool(maximize))


EMULATE = {"sgd_multi_tensor": _emulate_sgd, "adam_multi_tensor": _emulate_adam}


# --------------------------------------------------------------------------- #
# Cases for the prepared GPU check (minidl.gpu_check.twins): kernel against twin on a real GPU
# --------------------------------------------------------------------------- #
def _many_tensors(rng, rows):
    """``rows`` lists of 40 float32 arrays of mixed sizes (empty, scalar, one of 300,000 items)."""
    shapes = [(0,), (), (300_000,), (3, 0, 2)]
    shapes += [tuple(rng.integers(1, 40, size=rng.integers(1, 4))) for _ in range(36)]
    return [[rng.standard_normal(shape).astype(numpy.float32) for shape in shapes] for _ in range(rows)]


def _check_sgd_first_step_maximize(rng):
    params, grads, buffers = _many_tensors(rng, 3)
    return (params, grads, buffers, 0.05, 0.9, 0.25, 0.01, False, True), {"first_step": True}


def _check_sgd_no_momentum(rng):
    params, grads = _many_tensors(rng, 2)
    return params, grads, [None] * len(params), 0.1, 0.0, 0.0, 0.0, False, False


def _check_adam_l2_maximize(rng):
    params, grads, m, v = _many_tensors(rng, 4)
    v = [numpy.abs(a) for a in v]
    return params, grads, m, v, [None] * len(params), 1, 3e-4, 0.8, 0.99, 1e-6, 0.1, False, False, True


CHECK_CASES = [
    ("sgd_step", _check_sgd_first_step_maximize),
    ("sgd_step", _check_sgd_no_momentum),
    ("adam_step", _check_adam_l2_maximize, {"rtol": 1e-4, "atol": 1e-5}),
]
