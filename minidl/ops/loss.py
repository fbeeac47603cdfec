"""Losses: cross-entropy (fused with softmax), negative log-likelihood, mean squared error,
binary cross-entropy with logits. Names, arguments and reductions follow PyTorch.

Cross-entropy in one picture. For logits z (one row per example) and a target
distribution q over the C classes,

    loss = -sum_c q_c log softmax(z)_c = sum_c q_c (logsumexp(z) - z_c),

and the gradient is the famous   dloss/dz = softmax(z) * sum(q) - q   (= p - q).
An integer target y means q = one_hot(y); label smoothing eps mixes it with the uniform
distribution, q = (1 - eps) one_hot(y) + eps / C; class weights w scale q.
SoftmaxCrossEntropy takes q as a tensor (class probabilities, which may need a gradient);
for class indices ClassIndexCrossEntropy computes the same loss and gradient from y
directly, without building q: one pass forward and one backward (the backend table's
cross_entropy_forward/backward: kernels on a GPU, their NumPy twins in minidl/kernels/loss.py).
"""

from __future__ import annotations

import numpy

from minidl import amp, backend, checks, kernels
from minidl.autograd import Function
from minidl.kernels.loss import class_index_targets, target_distribution
from minidl.ops.activation import log_softmax, relu, sigmoid, softmax
from minidl.ops.arithmetic import abs as abs_
from minidl.ops.arithmetic import exp, log
from minidl.ops.reduce import sum as sum_
from minidl.ops.shape import permute, reshape
from minidl.tensor import Tensor

REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------- #
# The fused ops
# --------------------------------------------------------------------------- #
class SoftmaxCrossEntropy(Function):
    """loss_n = -sum_c q_nc log softmax(z_n)_c    for logits z (N, C) and targets q (N, C);
    dloss_n/dz_nc = softmax(z_n)_c * sum_c' q_nc' - q_nc,   dloss_n/dq_nc = -log softmax(z_n)_c

    log softmax(z) = (z - m) - log sum exp(z - m) with m = max(z): no exp overflows, even
    for logits of +-1e4, and a confident wrong answer costs a large finite loss, not inf.
    """

    def forward(self, z, q):
        xp = backend.get_array_module(z)
        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        return -(q * log_p).sum(axis=1)

    def backward(self, gy):
        z, q = self.inputs
        gy = reshape(gy, (-1, 1))
        gz = (softmax(z, axis=1) * sum_(q, 1, keepdims=True) - q) * gy
        gq = -log_softmax(z, axis=1) * gy if q.requires_grad else None
        return gz, gq


class ClassIndexCrossEntropy(Function):
    """SoftmaxCrossEntropy for class indices y, without building q:
        q_n = hot_n one_hot(y_n) + spread_n w,   hot_n = (1 - eps) w_{y_n},  spread_n = eps / C
    (both 0 for an ignored row), and with lse_n = log sum_c exp(z_nc)  (so log p_nc = z_nc - lse_n),
        loss_n = hot_n (lse_n - z_{n,y_n}) + spread_n sum_c w_c (lse_n - z_nc);
        dloss_n/dz_nc = p_nc s_n - q_nc,   s_n = sum(q_n) = hot_n + spread_n sum_c w_c   (CrossEntropyBackward).

    ``target`` (M,): the class indices as given; ``weight``: w (C,) in z's dtype, or None.
    The backend table's cross_entropy_forward does it in one pass (a kernel on a GPU; its NumPy twin
    in minidl/kernels/loss.py is the readable math) and returns, besides the loss, what backward and
    the mean need: lse (M,), ``target_weight`` w_{y_n} (M,) (0 in ignored rows) and s (M,)."""

    def __init__(self, target, weight=None, ignore_index=-100, label_smoothing=0.0):
        self.target, self.weight = target, weight
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, z):
        table = kernels.backend_for(z)
        loss, self.lse, self.target_weight, self.target_sum = table.cross_entropy_forward(
            z, self.target, self.weight, self.ignore_index, self.label_smoothing)
        return loss

    def backward(self, gy):
        return CrossEntropyBackward(self)(self.inputs[0], gy)


class CrossEntropyBackward(Function):
    """gz_nc = g_n (p_nc s_n - q_nc)  for the logits z and the loss gradient g (M,), with
    p = softmax(z), q and s_n = sum_c q_nc as in ClassIndexCrossEntropy (``loss``, which computed them);
    its own gradients:  d/dz: g_n s_n (t_nc - p_nc sum_c' t_nc') with t = ggz * p  (softmax's backward),
                        d/dg: sum_c ggz_nc (p_nc s_n - q_nc)

    Forward is the backend table's cross_entropy_backward: one pass (p recomputed from z and lse)."""

    def __init__(self, loss):
        self.loss = loss

    def forward(self, z, g):
        loss = self.loss
        return kernels.backend_for(z).cross_entropy_backward(
            z, loss.lse, g, loss.target, loss.target_weight, loss.target_sum, loss.weight, loss.ignore_index,
            loss.label_smoothing)

    def backward(self, ggz):
        z, g = self.inputs
        p = softmax(z, axis=1)
        s, q = Tensor.wrap(self.loss.target_sum), Tensor.wrap(self.targets())
        t = ggz * p
        gz = reshape(g * s, (-1, 1)) * (t - p * sum_(t, 1, keepdims=True))
        gg = sum_(ggz * (p * reshape(s, (-1, 1)) - q), 1)
        return gz, gg

    def targets(self):
        """q (M, C) itself: for gradients of gradients only (the fast path never builds it)."""
        loss = self.loss
        return target_distribution(loss.target, loss.target_weight, self.inputs[0].shape[1], loss.weight,
                                   loss.ignore_index, loss.label_smoothing)


class BinaryCrossEntropyWithLogits(Function):
    """loss = -[k t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))]  elementwise, k = pos_weight
         = (1 - t) z + L softplus(-z)   with L = 1 + (k - 1) t and softplus(u) = log(1 + e**u);
    dloss/dz = (1 - t) - L sigmoid(-z)   (= sigmoid(z) - t when k = 1);
    dloss/dt = -z + (k - 1) softplus(-z)

    softplus(-z) is computed as max(-z, 0) + log(1 + exp(-|z|)): never overflows.
    """

    def __init__(self, pos_weight=None):
        self.pos_weight = pos_weight  # an array broadcasting against the target, or None

    def forward(self, z, t):
        xp = backend.get_array_module(z)
        softplus_neg_z = xp.maximum(-z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
        scale = 1 if self.pos_weight is None else 1 + (self.pos_weight - 1) * t
        return ((1 - t) * z + scale * softplus_neg_z).astype(z.dtype, copy=False)

    def backward(self, gy):
        z, t = self.inputs
        k = None if self.pos_weight is None else Tensor.wrap(self.pos_weight)
        scale = 1 if k is None else 1 + (k - 1) * t
        gz = ((1 - t) - scale * sigmoid(-z)) * gy
        gt = None
        if t.requires_grad:
            gt = -z if k is None else -z + (k - 1) * (relu(-z) + log(1 + exp(-abs_(z))))
            gt = gt * gy
        return gz, gt


# --------------------------------------------------------------------------- #
# Helpers: reductions, the class axis, target distributions
# --------------------------------------------------------------------------- #
def check_reduction(reduction, op: str) -> None:
    checks.choice(reduction, REDUCTIONS, op, "reduction")


def reduce_loss(loss, reduction: str, divisor=None):
    """'none': the losses as they are; 'sum': their sum; 'mean': sum / divisor
    (a 0-d array; by default the number of losses)."""
    if reduction == "none":
        return loss
    total = sum_(loss)
    if reduction == "sum":
        return total
    if divisor is None:
        return total / loss.numel()
    return total / Tensor.wrap(divisor.astype(loss.dtype, copy=False))


def as_tensor_on(value, like):
    """``value`` (a Tensor, array, list or None) as a Tensor on ``like``'s device."""
    if value is None or isinstance(value, Tensor):
        return value
    array = value if hasattr(value, "dtype") else numpy.asarray(value)
    return Tensor.wrap(backend.to_device(array, like.device))


def classes_last(input, target, op: str):
    """Logits (N, C, d1, ...) or (C,) as rows (M, C), and the target as matching rows.

    Integer targets are class indices shaped like the input without its class axis
    (returned as an (M,) array); floating targets are class probabilities shaped like
    the input (returned as an (M, C) Tensor, through differentiable ops).
    Returns (rows, target_rows, loss_shape), ``loss_shape`` being the shape of the 'none' result.
    """
    if input.ndim == 0:
        raise ValueError(f"{op}: expected input of shape (N, C), (C,) or (N, C, d1, ...), got a 0-d tensor")
    target = as_tensor_on(target, input)
    probabilities = target.dtype.kind == "f"
    if not probabilities and target.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class indices or float class probabilities, got dtype {target.dtype}")
    batched = input.ndim >= 2
    expected = input.shape if probabilities else (input.shape[:1] + input.shape[2:] if batched else ())
    if target.shape != expected:
        kind = "class probabilities (shaped like the input)" if probabilities else "class indices"
        raise ValueError(
            f"{op}: input of shape {input.shape} needs {kind} of shape {expected}, got target of shape {target.shape}"
        )
    num_classes = input.shape[1] if batched else input.shape[0]
    if input.ndim > 2:  # move the class axis last: (N, C, d...) -> (N, d..., C)
        axes = (0,) + tuple(range(2, input.ndim)) + (1,)
        input = permute(input, axes)
        target = permute(target, axes) if probabilities else target
    loss_shape = input.shape[:-1]
    rows = reshape(input, (-1, num_classes))
    target = reshape(target, (-1, num_classes)) if probabilities else target.data.reshape(-1)
    return rows, target, loss_shape


def class_index_distribution(
    target, num_classes, dtype, weight=None, ignore_index=-100, label_smoothing=0.0, op="cross_entropy"
):
    """The target distributions q (M, C) of class indices y (M,), and the 'mean' divisor, as PyTorch
    defines them:  q_n = (1 - eps) w_{y_n} one_hot(y_n) + (eps / C) w  for rows with y_n != ignore_index
    (0 for the others);  divisor = the sum of w_{y_n} over the kept rows  (w = 1 without class weights).
    (cross_entropy never builds q: ClassIndexCrossEntropy works from the class_index_targets.)
    """
    xp, dtype = backend.get_array_module(target), numpy.dtype(dtype)
    w = None if weight is None else weight.data
    classes, target_weight, counts = class_index_targets(target, num_classes, dtype, w, ignore_index, op)
    one_hot = classes[:, None] == xp.arange(num_classes)
    q = xp.where(one_hot, (target_weight * dtype.type(1 - label_smoothing))[:, None], dtype.type(0))
    if label_smoothing:
        w = 1 if weight is None else weight.data.astype(dtype, copy=False)
        q = q + (counts * dtype.type(label_smoothing / num_classes))[:, None] * w
    return q, target_weight.sum()


def check_class_weight(weight, num_classes, op):
    if weight is not None and weight.shape != (num_classes,):
        raise ValueError(f"{op}: weight must have shape ({num_classes},), one per class, got {weight.shape}")


# --------------------------------------------------------------------------- #
# Functional forms (re-exported by minidl.nn.functional)
# --------------------------------------------------------------------------- #
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits ``input`` (N, C[, d...]) or (C,) and ``target``: class
    indices (N[, d...]) or class probabilities (shaped like the input), PyTorch's definition
    with ``weight`` (one per class), ``ignore_index`` and ``label_smoothing``.

    Probabilities t give q = w * ((1 - eps) t + eps / C) and 'mean' divides by the number
    of rows; they receive a gradient when they require one."""
    input = amp.autocast_inputs(input, to="float32")
    check_reduction(reduction, "cross_entropy")
    checks.probability(label_smoothing, "cross_entropy", "label_smoothing")
    checks.floating(input, "cross_entropy", "floating-point logits")
    rows, target_rows, loss_shape = classes_last(input, target, "cross_entropy")
    num_classes = rows.shape[1]
    weight = as_tensor_on(weight, input)
    check_class_weight(weight, num_classes, "cross_entropy")
    if isinstance(target_rows, Tensor):  # class probabilities
        q = target_rows.astype(rows.dtype) if target_rows.dtype != rows.dtype else target_rows
        if label_smoothing:
            q = q * (1 - label_smoothing) + label_smoothing / num_classes
        q, divisor = (q if weight is None else q * weight.astype(rows.dtype)), None
    else:
        w = None if weight is None else weight.data.astype(rows.dtype, copy=False)
        fused = ClassIndexCrossEntropy(target_rows, w, ignore_index, label_smoothing)
        loss = reshape(fused(rows), loss_shape)
        return reduce_loss(loss, reduction, fused.target_weight.sum() if reduction == "mean" else None)
    loss = SoftmaxCrossEntropy()(rows, q)
    return reduce_loss(reshape(loss, loss_shape), reduction, divisor)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood: loss_n = -w_{y_n} input[n, y_n] for log-probabilities ``input``
    (N, C[, d...]) and class indices ``target`` (N[, d...]); 'mean' divides by the sum of w_{y_n}.
    d loss_n / d input[n, c] = -w_{y_n} [c = y_n]."""
    input = amp.autocast_inputs(input, to="float32")
    check_reduction(reduction, "nll_loss")
    target = as_tensor_on(target, input)
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: expected integer class indices as target, got dtype {target.dtype}")
    rows, target_rows, loss_shape = classes_last(input, target, "nll_loss")
    weight = as_tensor_on(weight, input)
    check_class_weight(weight, rows.shape[1], "nll_loss")
    q, divisor = class_index_distribution(target_rows, rows.shape[1], rows.dtype, weight, ignore_index, op="nll_loss")
    loss = -sum_(rows * Tensor.wrap(q), axis=1)
    return reduce_loss(reshape(loss, loss_shape), reduction, divisor)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error: (input - target)**2, reduced;  d/d input = 2 (input - target)."""
    input, target = amp.autocast_inputs(input, target, to="float32")
    check_reduction(reduction, "mse_loss")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"mse_loss: target of shape {tuple(target.shape)} does not match input of shape {tuple(input.shape)}; "
            "broadcasting them would compare every input with every target (reshape one of them)"
        )
    difference = input - target
    return reduce_loss(difference * difference, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """Binary cross-entropy of sigmoid(input) against probabilities ``target`` (same shape),
    computed from the logits so it never takes log(0). ``weight`` scales each element's loss
    (broadcasting), ``pos_weight`` the positive term (broadcasting along the last axis)."""
    input, target = amp.autocast_inputs(input, target, to="float32")
    check_reduction(reduction, "binary_cross_entropy_with_logits")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"binary_cross_entropy_with_logits: target size {tuple(target.shape)} must be the same as "
            f"input size {tuple(input.shape)}"
        )
    checks.floating(input, "binary_cross_entropy_with_logits", "floating-point logits")
    target = as_tensor_on(target, input)
    target = target.astype(input.dtype) if target.dtype != input.dtype else target
    pos_weight = as_tensor_on(pos_weight, input)
    pos_weight = None if pos_weight is None else pos_weight.data.astype(input.dtype, copy=False)
    loss = BinaryCrossEntropyWithLogits(pos_weight)(input, target)
    if weight is not None:
        loss = loss * as_tensor_on(weight, input)
    return reduce_loss(loss, reduction)
