"""Every fused CuPy entry of the backend table against its NumPy twin, on the same random inputs.

A case is ``(entry, make)`` or ``(entry, make, tolerances)``: ``make(rng)`` returns the entry's
arguments as host (numpy) arrays and Python values: a tuple, or ``(args, kwargs)``. The walker
gives the twin (``NumpyBackend.entry``) one copy of them and the kernel (``CupyBackend.entry``) a
device copy (each array keeps its memory layout: a channel-major view stays one), then compares
what came back *and* every array argument afterwards (the kernels that write in place:
optimiser steps, running statistics, the recurrent cells' outputs). Floats must agree within
``rtol``/``atol`` (float32 by default: 1e-4 / 1e-5), integers and booleans exactly, and shapes
and dtypes must match.

Kernel authors extend the list in their own family module, without importing this one::

    CHECK_CASES = [("lstm_forward", make_lstm_forward), ("lstm_backward", make_lstm_backward, {"atol": 1e-4})]

``cases()`` is CASES below plus every family's CHECK_CASES; ``uncovered()`` names the CuPy entries
that no case calls. On the GPU machine ``python -m minidl.gpu_check`` runs them all; on a CPU
they run on minidl.fakecupy (there a kernel runs its EMULATE adapter: the glue is checked, not the CUDA).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy

from minidl import backend, kernels


class Case(NamedTuple):
    entry: str
    make: object  # rng -> args tuple, or (args tuple, kwargs dict)
    tolerances: dict = {}


class Result(NamedTuple):
    entry: str
    case: str  # the make function's name
    ok: bool
    max_abs_error: float
    message: str


# --------------------------------------------------------------------------- #
# Input makers for the entries of basic, conv, pool, norm and optim
# --------------------------------------------------------------------------- #
def _normal(rng, *shape, dtype=numpy.float32):
    return rng.standard_normal(shape).astype(dtype)


def _channel_major(x):
    """x (N, C, ...) held as (C, N, ...) memory: the layout conv2d's outputs have."""
    return numpy.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)


def scatter_add_repeated(rng):
    target = _normal(rng, 50, 3)
    indices = rng.integers(0, 50, size=400)  # many repeats: the atomic adds must all land
    return target, indices, _normal(rng, 400, 3)


def matmul_float32(rng):
    return _normal(rng, 4, 33, 65), _normal(rng, 65, 17)


def matmul_float16(rng):
    return _normal(rng, 64, 128, dtype=numpy.float16), _normal(rng, 128, 32, dtype=numpy.float16)


def im2col_padded_strided(rng):
    return _normal(rng, 3, 4, 11, 9), (3, 2), (2, 1), ((1, 2), (0, 1)), (1, 2)


def im2col_channel_major(rng):
    return (_channel_major(_normal(rng, 2, 5, 8, 8)), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)), {"pad_value": -1.5}


def col2im_padded_strided(rng):
    n, c, h, w, (kh, kw), stride, padding, dilation = 3, 4, 11, 9, (3, 2), (2, 1), ((1, 2), (0, 1)), (1, 2)
    oh, ow = kernels.conv.output_size((h, w), (kh, kw), stride, padding, dilation)
    return _normal(rng, c * kh * kw, n * oh * ow), (n, c, h, w), (kh, kw), stride, padding, dilation


def max_pool2d_forward_padded(rng):
    return _normal(rng, 2, 3, 13, 10), (3, 2), (2, 2), (1, 1), (1, 1), True


def max_pool2d_backward_padded(rng):
    x, *geometry, ceil_mode = max_pool2d_forward_padded(rng)
    y, indices = kernels.NumpyBackend.max_pool2d_forward(x, *geometry, ceil_mode)
    return _normal(rng, *y.shape), indices, x.shape, *geometry


def batch_norm_forward_relu_residual(rng):
    x = _channel_major(_normal(rng, 8, 6, 5, 5) * 3 + 1)
    running = (numpy.zeros(6, numpy.float32), numpy.ones(6, numpy.float32))
    return ((x, _normal(rng, 6), _normal(rng, 6), 1e-5),
            {"relu": True, "residual": _normal(rng, 8, 6, 5, 5), "running_mean": running[0],
             "running_var": running[1], "momentum": 0.1})


def batch_norm_backward_relu(rng):
    x = _normal(rng, 16, 4, 7) * 2 - 1
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    return (_normal(rng, 16, 4, 7), x, mean, var, _normal(rng, 4), _normal(rng, 4), 1e-5), {"relu": True}


def _parameters(rng, shapes):
    return [_normal(rng, *shape) for shape in shapes]


SHAPES = [(7, 3), (128,), (3, 4, 5), (1,)]


def sgd_step_nesterov(rng):
    params, grads, buffers = (_parameters(rng, SHAPES) for _ in range(3))
    return params, grads, buffers, 0.1, 0.9, 0.0, 1e-4, True, False


def adam_step_amsgrad(rng):
    params, grads, m = (_parameters(rng, SHAPES) for _ in range(3))
    v, v_max = ([numpy.abs(a) for a in _parameters(rng, SHAPES)] for _ in range(2))
    return params, grads, m, v, v_max, 5, 1e-3, 0.9, 0.999, 1e-8, 1e-2, True, True, False


CASES = [
    Case("scatter_add", scatter_add_repeated),
    Case("matmul", matmul_float32),
    Case("matmul", matmul_float16, {"rtol": 1e-2, "atol": 1e-1}),  # float16: tensor cores vs a rounded float32 product
    Case("im2col", im2col_padded_strided),
    Case("im2col", im2col_channel_major),
    Case("col2im", col2im_padded_strided),
    Case("max_pool2d_forward", max_pool2d_forward_padded),
    Case("max_pool2d_backward", max_pool2d_backward_padded),
    Case("batch_norm_forward", batch_norm_forward_relu_residual),
    Case("batch_norm_backward", batch_norm_backward_relu, {"atol": 1e-4}),
    Case("sgd_step", sgd_step_nesterov),
    Case("adam_step", adam_step_amsgrad),
]


def cases() -> list[Case]:
    """CASES plus every family's CHECK_CASES (the kernel authors' own)."""
    extra = [Case(*case) for family in kernels.FAMILIES for case in getattr(family, "CHECK_CASES", ())]
    return list(CASES) + extra


def fused_entries() -> list[str]:
    """The entries where the CuPy table has its own version (not the NumPy twin it inherits)."""
    cupy_side, numpy_side = kernels.CupyBackend, kernels.NumpyBackend
    return sorted(name for name in dir(cupy_side) if not name.startswith("_") and callable(getattr(cupy_side, name))
                  and getattr(cupy_side, name) is not getattr(numpy_side, name, None))


def uncovered(all_cases=None) -> list[str]:
    """Fused entries that no case calls."""
    covered = {case.entry for case in (cases() if all_cases is None else all_cases)}
    return [name for name in fused_entries() if name not in covered]


# --------------------------------------------------------------------------- #
# The walker
# --------------------------------------------------------------------------- #
def _split(made):
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], tuple) and isinstance(made[1], dict):
        return made
    return tuple(made), {}


def _to_device(value, cupy):
    """Host arrays (anywhere in lists/tuples/dicts) copied to the device, each in its own memory order."""
    if isinstance(value, numpy.ndarray):
        order = sorted(range(value.ndim), key=lambda axis: -value.strides[axis])
        dense = value.transpose(order)
        if not dense.flags.c_contiguous:
            return cupy.asarray(numpy.ascontiguousarray(value))
        return cupy.asarray(dense).transpose(numpy.argsort(order).tolist())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, cupy) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, cupy) for k, v in value.items()}
    return value


def _leaves(value, path="result"):
    """(path, array) for every array in a nested result, in order; None and numbers are skipped."""
    if isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            yield from _leaves(v, f"{path}[{k}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}[{k!r}]")
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        yield path, value


def _named(path: str) -> str:
    """'result[0][1]' -> 'returned[1]', 'result[1][0]' -> 'args[0]', 'result[2]['out']' -> "kwargs['out']"."""
    for index, name in (("0", "returned"), ("1", "args"), ("2", "kwargs")):
        if path.startswith(f"result[{index}]"):
            return name + path[len(f"result[{index}]"):]
    return path


def _compare(path, expected, got, rtol, atol):
    """(max abs error, problem or '') for one array of the twin against the kernel's."""
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return float("inf"), f"{path}: twin gives {expected.dtype}{expected.shape}, kernel {got.dtype}{got.shape}"
    if expected.size == 0:
        return 0.0, ""
    if expected.dtype.kind not in "fc":
        wrong = int(numpy.count_nonzero(expected != got))
        return float(wrong), f"{path}: {wrong} of {expected.size} entries differ" if wrong else ""
    a, b = expected.astype(numpy.float64), got.astype(numpy.float64)
    same_nan = numpy.isnan(a) == numpy.isnan(b)
    with numpy.errstate(invalid="ignore"):  # inf - inf: equal infinities count as no error
        error = numpy.where((a == b) | (numpy.isnan(a) & numpy.isnan(b)), 0.0, numpy.abs(a - b))
    worst = float(numpy.nanmax(error)) if same_nan.all() else float("nan")
    bad = (error > atol + rtol * numpy.abs(a)) | ~same_nan
    if bad.any():
        return worst, (f"{path}: {int(bad.sum())} of {a.size} entries off (max abs error {worst:.3g}, "
                       f"rtol {rtol:g}, atol {atol:g})")
    return worst, ""


def run_case(case: Case, seed: int = 0) -> Result:
    """One case: the twin on host copies, the kernel on device copies, everything compared."""
    cupy = backend.cupy
    label = getattr(case.make, "__name__", "case")
    rtol, atol = case.tolerances.get("rtol", 1e-4), case.tolerances.get("atol", 1e-5)
    args, kwargs = _split(case.make(numpy.random.default_rng(seed)))
    host_args, host_kwargs = copy.deepcopy((args, kwargs))
    device_args, device_kwargs = _to_device((args, kwargs), cupy)
    try:
        expected = getattr(kernels.NumpyBackend, case.entry)(*host_args, **host_kwargs)
        got = getattr(kernels.CupyBackend, case.entry)(*device_args, **device_kwargs)
    except Exception as error:  # a kernel that raises is a failed case, not a stopped check
        return Result(case.entry, label, False, float("inf"), f"raised {type(error).__name__}: {error}")
    wanted, given = list(_leaves((expected, host_args, host_kwargs))), list(_leaves((got, device_args, device_kwargs)))
    if [path for path, _ in wanted] != [path for path, _ in given]:
        return Result(case.entry, label, False, float("inf"), f"the twin gives arrays at {[_named(p) for p, _ in wanted]}"
                      f", the kernel at {[_named(p) for p, _ in given]}")
    pairs = list(zip(wanted, given))
    worst, problems = 0.0, []
    for (path, want), (_, have) in pairs:
        error, problem = _compare(_named(path), numpy.asarray(want), cupy.asnumpy(have), rtol, atol)
        worst = max(worst, error)
        problems += [problem] if problem else []
    return Result(case.entry, label, not problems, worst, "; ".join(problems))


def run_all(seed: int = 0) -> list[Result]:
    """Every case, on whatever cupy minidl.backend holds (a GPU's, or minidl.fakecupy)."""
    return [run_case(case, seed) for case in cases()]
