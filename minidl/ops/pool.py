"""Pooling: summarise each window of an image by its maximum or its average.

Windows come from the same im2col as convolution, its columns (C*K, N*L) seen as
(C, K, N*L): element k (of K = KH*KW) of the window at position m (of N*L = N*OH*OW),
in channel c. Then

* max pooling:  y[c, m] = max_k windows[c, k, m]. The gradient goes to one element
  per window, the first maximum (PyTorch's rule), and im2col's backward sends it on
  to that pixel;
* average pooling:  y[c, m] = sum_k windows[c, k, m] / count[m], with
  dy/dwindows = 1 / count[m], spread evenly over the window;
* adaptive pooling picks the windows from the output size, as PyTorch does: output
  cell i covers input rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1.

Max pooling pads with -inf (padding never wins); average pooling pads with zeros and,
with ``count_include_pad=False``, divides by the number of real pixels only.
"""

from __future__ import annotations

import numpy

from minidl import backend, checks
from minidl.autograd import Function
from minidl.ops.conv import check_input, im2col
from minidl.ops.linalg import matmul
from minidl.ops.reduce import mean as mean_
from minidl.ops.reduce import sum as sum_
from minidl.ops.shape import getitem, permute, reshape, squeeze, transpose, unsqueeze
from minidl.tensor import Tensor


# --------------------------------------------------------------------------- #
# The max of each window (axis 1 of (A, K, B) windows), with a single winner
# --------------------------------------------------------------------------- #
class MaxOverWindow(Function):
    """y[a, 0, b] = max_k x[a, k, b];
    dy/dx = 1 at the window's first maximum (its "winner"), 0 at every other element"""

    def forward(self, windows):
        best = windows.max(axis=1, keepdims=True)
        self.winner = first_winner(windows, best)
        return best

    def backward(self, gy):
        return RouteToWinner(self.winner, self.inputs[0].shape[1])(gy)


class RouteToWinner(Function):
    """gx[a, k, b] = g[a, 0, b] where k is the window's winner, else 0;
    its own gradient picks the winner's entry back out: gg = pick_winner(ggx)"""

    def __init__(self, winner, window_size):
        self.winner, self.window_size = winner, window_size

    def forward(self, g):
        xp = backend.get_array_module(g)
        k = xp.arange(self.window_size, dtype=self.winner.dtype)[:, None]  # (K, 1): along axis 1
        return (k == self.winner) * g

    def backward(self, ggx):
        return PickWinner(self.winner, self.window_size)(ggx)


class PickWinner(Function):
    """y[a, 0, b] = x[a, winner, b];  gx = route_to_winner(gy)"""

    def __init__(self, winner, window_size):
        self.winner, self.window_size = winner, window_size

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.take_along_axis(x, self.winner.astype(xp.intp), axis=1)

    def backward(self, gy):
        return RouteToWinner(self.winner, self.window_size)(gy)


def first_winner(windows, best):
    """For each window (axis 1), the index of its first element equal to the max ``best``
    (or of its first NaN: a NaN is the max of its window, as in PyTorch).

    ``argmax`` along a short middle axis is slow in numpy, so instead each element k gets
    the rank K - k (earlier is higher), every element that is not the max gets 0, and
    the highest rank left names the first maximum.
    """
    xp = backend.get_array_module(windows)
    size = windows.shape[1]
    rank = xp.arange(size, 0, -1, dtype=numpy.min_scalar_type(size))[:, None]  # K, K-1, ..., 1
    is_max = (windows == best) | xp.isnan(windows)
    return size - (is_max * rank).max(axis=1, keepdims=True)


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
        out = _pooled_size(size, k, s, p, d, ceil_mode)
        extra = max(0, (out - 1) * s + reach - (size + 2 * p))  # ceil_mode: room for the last window
        padding.append((p, p + extra))
    return kernel, stride, dilation, tuple(padding)


def _pooled_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's output size; with ceil_mode a last, partial window is kept if it starts
    inside the input or its left padding."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


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
    geometry = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, spatial_dims, op)
    kernel, stride, dilation, padding = (_as_2d(v, spatial_dims, one) for v, one in zip(geometry, (1, 1, 1, (0, 0))))
    n, c = image.shape[:2]
    cols, (oh, ow) = im2col(image, kernel, stride, padding, dilation, op, pad_value=-numpy.inf)
    windows = reshape(cols, (c, kernel[0] * kernel[1], n * oh * ow))
    best = MaxOverWindow()
    y = _to_nchw(best(windows), n, oh, ow)
    if not return_indices:
        return restore(y)
    winner = _to_nchw(Tensor.wrap(best.winner), n, oh, ow).data
    return restore(y), restore(Tensor.wrap(_flat_indices(winner, image.shape, kernel, stride, padding, dilation)))


def _to_nchw(pooled, n, oh, ow):
    """Pooled windows (C, 1, N*OH*OW) as (N, C, OH, OW) (a transposed view, like conv2d's output)."""
    return permute(reshape(pooled, (-1, n, oh, ow)), (1, 0, 2, 3))


def _flat_indices(winner, image_shape, kernel, stride, padding, dilation):
    """Each window's winner (N, C, OH, OW) as a flat index into its (H, W) input plane (PyTorch's indices)."""
    xp = backend.get_array_module(winner)
    oh, ow = winner.shape[2:]
    i, j = xp.divmod(winner.astype(xp.int64), kernel[1])  # the winner's offset inside the kernel
    rows = xp.arange(oh)[:, None] * stride[0] - padding[0][0] + i * dilation[0]
    cols = xp.arange(ow) * stride[1] - padding[1][0] + j * dilation[1]
    return rows * image_shape[3] + cols


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
    if h % oh == 0 and w % ow == 0:  # equal bins: blocks of the image, no copy
        cells = reshape(image, (n, c, oh, h // oh, ow, w // ow))
    else:  # unequal bins: gather each bin's cells (short bins padded by repeating a cell)
        rows, columns = _bin_gather_index(h, oh, image.xp), _bin_gather_index(w, ow, image.xp)
        cells = getitem(image, (slice(None), slice(None), rows))  # (N, C, OH, KH, W)
        cells = getitem(cells, (Ellipsis, columns))  # (N, C, OH, KH, OW, KW)
    kh, kw = cells.shape[3], cells.shape[5]
    windows = reshape(permute(cells, (0, 1, 3, 5, 2, 4)), (n * c, kh * kw, oh * ow))
    return restore(reshape(MaxOverWindow()(windows), (n, c, oh, ow)))
