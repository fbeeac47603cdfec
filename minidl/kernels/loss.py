"""The loss family of the backend table: cross-entropy of logits z (M, C) against class indices,
forward and backward in one pass each.

For row n with target y_n, class weights w (all 1 without them), label smoothing eps and
ignore_index (PyTorch's definitions):

    target_weight_n = w_{y_n}  (0 for an ignored row),    hot_n = (1 - eps) target_weight_n,
    spread_n = eps / C  (0 for an ignored row),          q_nc = hot_n [c = y_n] + spread_n w_c,
    s_n = sum_c q_nc = hot_n + spread_n sum_c w_c,        lse_n = log sum_c exp(z_nc),

    forward    loss_n = sum_c q_nc (lse_n - z_nc)
                      = hot_n (lse_n - z_{n,y_n}) + spread_n sum_c w_c (lse_n - z_nc)
    backward   gz_nc = g_n (p_nc s_n - q_nc),   p_nc = exp(z_nc - lse_n)  (softmax)

lse is computed as m + log sum exp(z - m) with m = max(z): no overflow, even for logits of
+-1e4, and the loss from the shifted z - m. Forward returns (loss, lse, target_weight, s): the
mean divides by sum(target_weight), backward reads lse and s (and recomputes p from z).

A target outside 0..C-1 raises IndexError on the CPU; on a GPU it gets a NaN target weight
(so a NaN loss and gradient): checking there would make every step wait for the device.

The twins are plain array code; the kernels (loss.cu) take the targets as they come (int64) and
do it all in one launch each way: the forward with one thread block per row (max, sum of
exponentials and weighted sums as block reductions), the backward one thread per element.
Composed of array ops the same loss and gradient took about 23 launches.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels import launch

FILE = "loss.cu"
ROW_BLOCK = 256  # the most threads per row in the forward kernel (loss.cu's MAX_ROW_BLOCK)


def class_index_targets(target, num_classes, dtype, weight=None, ignore_index=-100, op="cross_entropy"):
    """What class indices y (M,) ask for, as PyTorch defines it: (classes, target_weight, counts) with
    counts_n = [y_n != ignore_index],  classes_n = y_n (0 in ignored rows),
    target_weight_n = w_{y_n} (0 in ignored rows; w = 1 without class weights), all (M,) arrays.
    ``weight`` is w, an array (C,), or None.
    A target outside 0..C-1 raises IndexError on the CPU and gets a NaN weight on a GPU (so a NaN loss):
    there, checking would make every step wait for the device."""
    xp, dtype = backend.get_array_module(target), numpy.dtype(dtype)
    counts = target != ignore_index
    wanted = xp.where(counts, target, 0)
    classes = wanted.clip(0, num_classes - 1)
    out_of_range = classes != wanted
    if xp is numpy and out_of_range.any():
        bad = int(wanted[out_of_range][0])
        raise IndexError(
            f"{op}: target {bad} is out of bounds for {num_classes} classes (expected 0..{num_classes - 1})"
        )
    target_weight = counts if weight is None else weight.astype(dtype, copy=False)[classes] * counts
    return classes, xp.where(out_of_range, dtype.type(numpy.nan), target_weight).astype(dtype, copy=False), counts


def target_distribution(target, target_weight, num_classes, weight, ignore_index, label_smoothing):
    """q (M, C): q_nc = hot_n [c = y_n] + spread_n w_c (see the module docstring)."""
    xp, dtype = backend.get_array_module(target_weight), target_weight.dtype.type
    counts = target != ignore_index
    one_hot = xp.where(counts, target, 0)[:, None] == xp.arange(num_classes)
    q = xp.where(one_hot, (target_weight * dtype(1 - label_smoothing))[:, None], dtype(0))
    if label_smoothing:
        q = q + (counts * dtype(label_smoothing / num_classes))[:, None] * (1 if weight is None else weight)
    return q


class NumpyLoss:
    @staticmethod
    def cross_entropy_forward(z, target, weight=None, ignore_index=-100, label_smoothing=0.0):
        """(loss, lse, target_weight, target_sum), each (M,), for logits z (M, C) and class indices
        ``target`` (M,); ``weight``: w (C,) in z's dtype, or None."""
        xp, dtype, num_classes = backend.get_array_module(z), z.dtype.type, z.shape[1]
        classes, target_weight, counts = class_index_targets(target, num_classes, z.dtype, weight, ignore_index)
        m = z.max(axis=1, keepdims=True)
        shifted = z - m
        log_sum = xp.log(xp.exp(shifted).sum(axis=1))  # lse - m
        hot = target_weight * dtype(1 - label_smoothing)
        loss = hot * (log_sum - xp.take_along_axis(shifted, classes[:, None], axis=1)[:, 0])
        spread = counts * dtype(label_smoothing / num_classes)
        weight_total = num_classes if weight is None else weight.sum()
        if label_smoothing:  # sum_c w_c (lse - z_c) = sum(w) (lse - m) - sum_c w_c (z_c - m)
            weighted = shifted.sum(axis=1) if weight is None else shifted @ weight
            loss = loss + spread * (weight_total * log_sum - weighted)
        return loss, m[:, 0] + log_sum, target_weight, hot + spread * weight_total

    @staticmethod
    def cross_entropy_backward(z, lse, g, target, target_weight, target_sum, weight=None, ignore_index=-100,
                               label_smoothing=0.0):
        """gz (M, C) = g_n (p_nc s_n - q_nc), from what cross_entropy_forward returned and the
        loss gradient g (M,)."""
        xp = backend.get_array_module(z)
        p = xp.exp(z - lse[:, None])
        q = target_distribution(target, target_weight, z.shape[1], weight, ignore_index, label_smoothing)
        return g[:, None] * (p * target_sum[:, None] - q)


def _float32(*arrays):
    return all(a is None or a.dtype == numpy.float32 for a in arrays)


class CupyLoss(NumpyLoss):  # pragma: no cover - GPU (or fakecupy)
    @staticmethod
    def cross_entropy_forward(z, target, weight=None, ignore_index=-100, label_smoothing=0.0):
        """One launch of ``cross_entropy_forward_f32``: a block of threads per row."""
        if not _float32(z, weight) or z.shape[0] == 0:
            return NumpyLoss.cross_entropy_forward(z, target, weight, ignore_index, label_smoothing)
        cupy = backend.cupy
        z = cupy.ascontiguousarray(z)
        (rows, classes), block = z.shape, ROW_BLOCK
        while block > 32 and block // 2 >= classes:  # the smallest power of 2 >= C (at least a warp)
            block //= 2
        loss, lse, target_weight, target_sum = (cupy.empty(rows, dtype=numpy.float32) for _ in range(4))
        launch.launch(FILE, "cross_entropy_forward_f32", rows * block,
                      (z, _int64(target), *_weight_args(weight, z), numpy.int64(ignore_index),
                       numpy.float32(label_smoothing), numpy.int64(rows), numpy.int64(classes),
                       loss, lse, target_weight, target_sum), block=block)
        return loss, lse, target_weight, target_sum

    @staticmethod
    def cross_entropy_backward(z, lse, g, target, target_weight, target_sum, weight=None, ignore_index=-100,
                               label_smoothing=0.0):
        """One launch of ``cross_entropy_backward_f32``: a thread per element. g may be one value
        broadcast over the rows (stride 0: a mean's gradient), read without a copy."""
        if not _float32(z, lse, g, target_weight, target_sum, weight) or z.size == 0:
            return NumpyLoss.cross_entropy_backward(z, lse, g, target, target_weight, target_sum, weight,
                                                    ignore_index, label_smoothing)
        cupy = backend.cupy
        z = cupy.ascontiguousarray(z)
        g, g_stride = (g[:1], 0) if g.strides[0] == 0 else (cupy.ascontiguousarray(g), 1)
        gz = cupy.empty(z.shape, dtype=numpy.float32)
        launch.launch(FILE, "cross_entropy_backward_f32", z.size,
                      (z, lse, g, numpy.int64(g_stride), _int64(target), target_weight,
                       target_sum, *_weight_args(weight, z), numpy.int64(ignore_index), numpy.float32(label_smoothing),
                       numpy.int64(z.shape[0]), numpy.int64(z.shape[1]), gz))
        return gz


def _int64(target):
    return backend.cupy.ascontiguousarray(target, dtype=numpy.int64)


def _weight_args(weight, z):
    """(weight, has_weight): without class weights the kernel reads none; z (C-contiguous float32)
    stands in for the pointer."""
    return (z, numpy.int32(0)) if weight is None else (backend.cupy.ascontiguousarray(weight), numpy.int32(1))


# --------------------------------------------------------------------------- #
# The CPU stand-in runs the kernels through these adapters (numpy payloads in, outputs written in place)
# --------------------------------------------------------------------------- #
def _emulate_forward(z, target, weight, has_weight, ignore_index, smoothing, m, c, loss, lse, target_weight,
                     target_sum):
    results = _forward_on_gpu(z.reshape(m, c), target, weight if has_weight else None, ignore_index, smoothing)
    loss[...], lse[...], target_weight[...], target_sum[...] = results


def _forward_on_gpu(z, target, weight, ignore_index, smoothing):
    """The twin as the GPU runs it: a target out of range gives a NaN row, not an IndexError."""
    num_classes = z.shape[1]
    bad = ((target < 0) | (target >= num_classes)) & (target != ignore_index)
    loss, lse, target_weight, target_sum = NumpyLoss.cross_entropy_forward(
        z, numpy.where(bad, 0, target), weight, ignore_index, smoothing)
    nan = numpy.float32(numpy.nan)
    return tuple(numpy.where(bad, nan, a) if a is not lse else a for a in (loss, lse, target_weight, target_sum))


def _emulate_backward(z, lse, g, g_stride, target, target_weight, target_sum, weight, has_weight, ignore_index,
                      smoothing, m, c, gz):
    g = numpy.broadcast_to(g[:1], (m,)) if g_stride == 0 else g
    gz[...] = NumpyLoss.cross_entropy_backward(z.reshape(m, c), lse, g, target, target_weight, target_sum,
                                               weight if has_weight else None, ignore_index,
                                               numpy.float32(smoothing))


EMULATE = {"cross_entropy_forward_f32": _emulate_forward, "cross_entropy_backward_f32": _emulate_backward}


# --------------------------------------------------------------------------- #
# Cases for minidl.gpu_check: each kernel entry against its twin
# --------------------------------------------------------------------------- #
def _targets(rng, rows, classes, ignore_index=-100):
    target = rng.integers(0, classes, rows)
    target[rng.random(rows) < 0.1] = ignore_index
    return target


def _check_forward_weights_smoothing(rng):
    """1000 classes (several passes per thread), class weights, ignored rows, label smoothing 0.1, logits of +-1e4."""
    z = (rng.standard_normal((67, 1000)) * 3).astype(numpy.float32)
    z[0, :] = 1e4
    z[1, 5] = -1e4
    weight = rng.uniform(0.1, 2, 1000).astype(numpy.float32)
    return z, _targets(rng, 67, 1000), weight, -100, 0.1


def _check_forward_plain(rng):
    """Lesson 05's loss: 10 classes, batch 128, no weights, no smoothing."""
    return rng.standard_normal((128, 10)).astype(numpy.float32), rng.integers(0, 10, 128)


def _check_backward_broadcast_gradient(rng):
    """A mean's gradient (one value broadcast over the rows), weights, smoothing 0.2, ignore_index 3."""
    z = rng.standard_normal((50, 37)).astype(numpy.float32)
    target, weight = _targets(rng, 50, 37, ignore_index=3), rng.uniform(0.5, 2, 37).astype(numpy.float32)
    _, lse, target_weight, target_sum = NumpyLoss.cross_entropy_forward(z, target, weight, 3, 0.2)
    g = numpy.broadcast_to(numpy.float32(0.02), (50,))
    return z, lse, g, target, target_weight, target_sum, weight, 3, 0.2


def _check_backward_per_row_gradient(rng):
    """reduction='none': a gradient per row, 10 classes."""
    z, target = rng.standard_normal((128, 10)).astype(numpy.float32), rng.integers(0, 10, 128)
    _, lse, target_weight, target_sum = NumpyLoss.cross_entropy_forward(z, target)
    return z, lse, rng.standard_normal(128).astype(numpy.float32), target, target_weight, target_sum


CHECK_CASES = [
    ("cross_entropy_forward", _check_forward_weights_smoothing, {"atol": 1e-3}),
    ("cross_entropy_forward", _check_forward_plain),
    ("cross_entropy_backward", _check_backward_broadcast_gradient),
    ("cross_entropy_backward", _check_backward_per_row_gradient),
]
