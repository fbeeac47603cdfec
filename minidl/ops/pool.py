"""Pooling: summarise each window of an image by its maximum or its average.

* max pooling:  y[n, c, p, q] = max over the window (i, j) of x[n, c, p*s + i*d - pad, q*s + j*d - pad].
  The gradient goes to one pixel per window, its first maximum (PyTorch's rule), the "winner".
  Forward (values and winners) and backward (each window's gradient to its winner) are two
  entries of the backend table, minidl.kernels.pool: a NumPy twin beside a CUDA kernel, one
  launch each on a GPU. Padding is never read (it counts as -inf, so it never wins);
* average pooling uses the same im2col as convolution, its columns (C*K, N*L) seen as
  (C, K, N*L): y[c, m] = sum_k windows[c, k, m] / count[m], with dy/dwindows = 1 / count[m],
  spread evenly over the window;
* adaptive pooling picks the windows from the output size, as PyTorch does: output
  cell i covers input rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1.

Average pooling pads with zeros and, with ``count_include_pad=False``, divides by the number
of real pixels only.
"""

from __future__ import annotations

import numpy

from minidl import backend, checks, kernels
from minidl.autograd import Function
from minidl.kernels.pool import pooled_size
from minidl.ops.conv import check_input, im2col
from minidl.ops.linalg import matmul
from minidl.ops.reduce import mean as mean_
from minidl.ops.reduce import sum as sum_
from minidl.ops.shape import getitem, permute, reshape, squeeze, transpose, unsqueeze
from minidl.tensor import Tensor


# --------------------------------------------------------------------------- #
# Max pooling: each window's max, and the gradient routed to its winner
# --------------------------------------------------------------------------- #
class MaxPool2d(Function):
    """y[n, c, p, q] = max over the window (i, j) of x[n, c, p*s + i*d - pad, q*s + j*d - pad];
    dy/dx = 1 at the window's winner (its first maximum, PyTorch's rule), 0 at every other pixel.

    Forward and backward are entries of the backend table (one kernel launch each on a GPU);
    ``indices`` keeps each window's winner as a flat index into its (H, W) plane."""

    keeps_inputs = False  # backward needs only the winners

    def __init__(self, kernel, stride, padding, dilation, ceil_mode):
        self.geometry = (kernel, stride, padding, dilation)
        self.ceil_mode = ceil_mode

    def forward(self, x):
        y, self.indices = kernels.backend_for(x).max_pool2d_forward(x, *self.geometry, self.ceil_mode)
        return y

    def backward(self, gy):
        return RouteToWinners(self.indices, self.inputs[0].shape, self.geometry)(gy)


class RouteToWinners(Function):
    """gx[n, c, h, w] = sum of g[n, c, p, q] over the windows (p, q) whose winner is pixel (h, w);
    linear in g, so its gradient picks each window's winner back out: gg = pick_winners(ggx)"""

    keeps_inputs = False

    def __init__(self, indices, input_shape, geometry):
        self.indices, self.input_shape, self.geometry = indices, input_shape, geometry

    def forward(self, g):
        return kernels.backend_for(g).max_pool2d_backward(g, self.indices, self.input_shape, *self.geometry)

    def backward(self, ggx):
        return PickWinners(self.indices, self.input_shape, self.geometry)(ggx)


class PickWinners(Function):
    """y[n, c, p, q] = x[n, c, winner of window (p, q)] (0 for a window with no winner);
    gx = route_to_winners(gy)"""

    keeps_inputs = False

    def __init__(self, indices, input_shape, geometry):
        self.indices, self.input_shape, self.geometry = indices, input_shape, geometry

    def forward(self, x):
        xp = backend.get_array_module(x)
        n, c = x.shape[:2]
        winners = self.indices.reshape(n, c, -1)
        picked = xp.take_along_axis(x.reshape(n, c, -1), xp.maximum(winners, 0), axis=2)
        return xp.where(winners >= 0, picked, 0).astype(x.dtype, copy=False).reshape(self.indices.shape)

    def backward(self, gy):
        return RouteToWinners(self.indices, self.input_shape, self.geometry)(gy)


# --------------------------------------------------------------------------- #
# Arguments
# --------------------------------------------------------------------------- #
def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, spatial_dims, op):
    """Check the arguments; return (kernel, stride, dilation, padding ((before, after) per axis))."""
    kernel = checks.int_tuple(kernel_size, spatial_dims, op, "kernel_size")
    stride = kernel if stride is None or stride == () else checks.int_tuple(stride, spatial_dims, op, "stride")
    dilation = checks.int_tuple(dilation, spatial_dims, op, "dilation")
    pads = checks.int_tuple(padding, spatial_dims, op, "padding", minimum=0)
    checks.floating(x, op)
    for k, p in zip(kernel, pads):
        if p > k // 2:
            raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k} (as in PyTorch)")
    padding = []
    for size, k, s, p, d in zip(x.shape[-spatial_dims:], kernel, stride, pads, dilation):
        reach = d * (k - 1) + 1
        if reach > size + 2 * p:
            raise ValueError(
                f"{op}: the kernel ({k}, dilation {d}, so {reach} wide) is larger than the padded input "
                f"({size} + 2*{p} = {size + 2 * p}); input shape {tuple(x.shape)}"
            )
        out = pooled_size(size, k, s, p, d, ceil_mode)
        extra = max(0, (out - 1) * s + reach - (size + 2 * p))  # ceil_mode: room for the last window
        padding.append((p, p + extra))
    return kernel, stride, dilation, tuple(padding)


def _as_image(x, spatial_dims, op):
    """x as a batched image (N, C, H, W), and a function that maps results back."""
    unbatched = check_input(x, spatial_dims, op)
    x = unsqueeze(x, 0) if unbatched else x
    x = unsqueeze(x, 2) if spatial_dims == 1 else x

    def restore(y):
        y = squeeze(y, 2) if spatial_dims == 1 else y
        return squeeze(y, 0) if unbatched else y

    return x, restore


def _as_2d(values, spatial_dims, fill):
    """Per-axis values of a 1-D pool as the matching 2-D ones (height 1)."""
    return values if spatial_dims == 2 else (fill,) + tuple(values)


# --------------------------------------------------------------------------- #
# Max and average pooling
# --------------------------------------------------------------------------- #
def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, spatial_dims, op):
    image, restore = _as_image(x, spatial_dims, op)
    kernel, stride, dilation, _ = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, spatial_dims, op)
    padding = checks.int_tuple(padding, spatial_dims, op, "padding", minimum=0)
    kernel, stride, padding, dilation = (_as_2d(v, spatial_dims, one) for v, one in
                                         zip((kernel, stride, padding, dilation), (1, 1, 0, 1)))
    pool = MaxPool2d(kernel, stride, padding, dilation, ceil_mode)
    y = restore(pool(image))
    return (y, restore(Tensor.wrap(pool.indices))) if return_indices else y


def _to_nchw(pooled, n, oh, ow):
    """Pooled windows (C, 1, N*OH*OW) as (N, C, OH, OW) (a transposed view, like conv2d's output)."""
    return permute(reshape(pooled, (-1, n, oh, ow)), (1, 0, 2, 3))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """y[n, c, p, q] = max over the window (i, j) of x_pad[n, c, p*s + i*d, q*s + j*d];
    the gradient goes to the window's first maximum. PyTorch's F.max_pool2d: input (N, C, H, W)
    or (C, H, W), padding with -inf; with return_indices also the flat index of each winner."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d")


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """y[n, c, t] = max over the window i of x_pad[n, c, t*s + i*d]: max_pool2d at height 1.
    PyTorch's F.max_pool1d: input (N, C, L) or (C, L)."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d")


def _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, spatial_dims, op):
    image, restore = _as_image(x, spatial_dims, op)
    geometry = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, spatial_dims, op)
    kernel, stride, _, padding = (_as_2d(v, spatial_dims, one) for v, one in zip(geometry, (1, 1, 1, (0, 0))))
    (n, c), area = image.shape[:2], kernel[0] * kernel[1]
    cols, (oh, ow) = im2col(image, kernel, stride, padding, (1, 1), op)
    total = reshape(sum_(reshape(cols, (c, area, n * oh * ow)), axis=1, keepdims=True), (c, n, oh * ow))
    if divisor_override is not None:
        divisor = checks.positive_int(divisor_override, op, "divisor_override")
    else:
        divisor = _window_counts(image, kernel, stride, padding, count_include_pad, op)  # (OH*OW,)
    return restore(_to_nchw(total / divisor, n, oh, ow))


def _window_counts(image, kernel, stride, padding, count_include_pad, op):
    """How many pixels each window averages: the whole window, except the part that
    ceil_mode lets hang off the padded input, and (without count_include_pad) the padding."""
    (top, bottom), (left, right) = padding
    (h, w), (ph, pw) = image.shape[2:], (top, left)  # the symmetric, user-given padding
    if count_include_pad:  # pixels and user padding count; only a ceil_mode overhang does not
        if (bottom, right) == (ph, pw):
            return kernel[0] * kernel[1]
        ones, zero_border = (h + 2 * ph, w + 2 * pw), ((0, bottom - ph), (0, right - pw))
    else:  # only real pixels count
        ones, zero_border = (h, w), padding
    ones = Tensor.wrap(image.xp.ones((1, 1) + ones, dtype=image.dtype))
    counts, _ = im2col(ones, kernel, stride, zero_border, (1, 1), op)  # (KH*KW, OH*OW)
    return Tensor(counts.data.sum(axis=0))  # a constant: no gradient


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """y[n, c, p, q] = (1 / count) * sum over the window (i, j) of x_pad[n, c, p*s + i, q*s + j];
    dy/dx = 1 / count for every pixel of the window. PyTorch's F.avg_pool2d: count = KH*KW
    (zero padding included) by default, the real pixels only with count_include_pad=False."""
    return _avg_pool(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2, "avg_pool2d"
    )


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """y[n, c, t] = (1 / count) * sum over the window i of x_pad[n, c, t*s + i]: avg_pool2d at height 1.
    PyTorch's F.avg_pool1d: input (N, C, L) or (C, L)."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d")


# --------------------------------------------------------------------------- #
# Adaptive pooling: the output size chooses the windows
# --------------------------------------------------------------------------- #
def adaptive_bins(size: int, out: int) -> list:
    """PyTorch's bins: output cell i covers input cells floor(i*size/out) .. ceil((i+1)*size/out) - 1."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive_output_size(x, output_size, spatial_dims, op) -> tuple:
    """output_size as a tuple of ints; None in it keeps that axis's size, as in PyTorch."""
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * spatial_dims
    if len(sizes) == spatial_dims:
        sizes = tuple(x.shape[-spatial_dims + i] if s is None else s for i, s in enumerate(sizes))
    if len(sizes) != spatial_dims or not all(checks.is_int(s) and s >= 1 for s in sizes):
        what = f"output_size to be an int >= 1 or a tuple of {spatial_dims} such ints (or None)"
        checks.fail(op, what, output_size)
    return tuple(int(s) for s in sizes)


def _averaging_matrix(size, out, like):
    """A (out, size) matrix whose row i averages bin i: A @ v is the adaptive average of v."""
    matrix = numpy.zeros((out, size))
    for i, (start, end) in enumerate(adaptive_bins(size, out)):  # a loop over output sizes, not pixels
        matrix[i, start:end] = 1.0 / (end - start)
    return Tensor.wrap(backend.to_device(matrix.astype(like.dtype), like.device))


def _adaptive_avg(x, output_size, spatial_dims, op):
    image, restore = _as_image(x, spatial_dims, op)
    checks.floating(x, op)
    (n, c, h, w) = image.shape
    oh, ow = _as_2d(_adaptive_output_size(x, output_size, spatial_dims, op), spatial_dims, 1)
    if h % oh == 0 and w % ow == 0:  # equal bins: an ordinary mean over blocks
        return restore(mean_(reshape(image, (n, c, oh, h // oh, ow, w // ow)), axis=(3, 5)))
    # Unequal (possibly overlapping) bins: y = A_h x A_w^T, one averaging matrix per axis.
    rows, columns = _averaging_matrix(h, oh, image), _averaging_matrix(w, ow, image)
    return restore(matmul(matmul(rows, image), transpose(columns, 0, 1)))


def adaptive_avg_pool2d(input, output_size):
    """y[n, c, i, j] = mean of x[n, c] over bin i of the rows and bin j of the columns, the bins
    chosen from the output size (PyTorch's F.adaptive_avg_pool2d; None keeps that axis' size)."""
    return _adaptive_avg(input, output_size, 2, "adaptive_avg_pool2d")


def adaptive_avg_pool1d(input, output_size):
    """y[n, c, i] = mean of x[n, c] over bin i (PyTorch's F.adaptive_avg_pool1d)."""
    return _adaptive_avg(input, output_size, 1, "adaptive_avg_pool1d")


def _bin_gather_index(size, out, xp):
    """(out, longest bin) indices of each bin's cells; a short bin repeats its last cell,
    which changes no maximum."""
    bins = adaptive_bins(size, out)
    longest = max(end - start for start, end in bins)
    index = numpy.array([[min(start + k, end - 1) for k in range(longest)] for start, end in bins])
    return xp.asarray(index)


def adaptive_max_pool2d(input, output_size):
    """y[n, c, i, j] = max of x[n, c] over bin i of the rows and bin j of the columns
    (PyTorch's F.adaptive_max_pool2d); the gradient goes to the first maximum of each bin."""
    op = "adaptive_max_pool2d"
    image, restore = _as_image(input, 2, op)
    checks.floating(input, op)
    (n, c, h, w), (oh, ow) = image.shape, _adaptive_output_size(input, output_size, 2, op)
    if h % oh == 0 and w % ow == 0:  # equal bins: a max pool whose windows are the bins
        bins = (h // oh, w // ow)
        return restore(MaxPool2d(bins, bins, (0, 0), (1, 1), False)(image))
    # Unequal bins: gather each bin's cells, (N, C, OH*KH, OW*KW), then max-pool KH x KW blocks.
    # A short bin repeats its last cell: that changes no maximum, and the copy comes after the
    # original, so it never wins.
    rows, columns = _bin_gather_index(h, oh, image.xp), _bin_gather_index(w, ow, image.xp)
    cells = getitem(image, (slice(None), slice(None), rows.reshape(-1)))  # (N, C, OH*KH, W)
    cells = getitem(cells, (Ellipsis, columns.reshape(-1)))  # (N, C, OH*KH, OW*KW)
    bins = (rows.shape[1], columns.shape[1])
    return restore(MaxPool2d(bins, bins, (0, 0), (1, 1), False)(cells))
