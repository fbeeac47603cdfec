"""Convolution by im2col: every window of the image becomes one column of a matrix,
and the convolution becomes one matrix product.

For an input x of shape (N, C, H, W), a KH x KW kernel, stride s and dilation d:

    cols[(c, i, j), (n, p, q)] = x[n, c, p*s + i*d, q*s + j*d]                       (im2col)
    Y[o, (n, p, q)] = sum_(c, i, j) W[o, (c, i, j)] * cols[(c, i, j), (n, p, q)]     (Y = W @ cols)
    y[n, o, p, q] = Y[o, (n, p, q)] + b[o]

so ``conv2d`` is im2col, ONE matrix product of the weight seen as an (O, C*KH*KW) matrix
with the (C*KH*KW, N*OH*OW) columns, and a bias add. One large product keeps the BLAS
(or cuBLAS) busy far better than N small ones. Y comes out as (O, N, OH, OW); y is a
transposed view of it, so in memory activations are stored channel by channel (C, N, H, W)
while their shape is PyTorch's (N, C, H, W). The next im2col reads them in that order.

Backward comes from the pieces: the matmul gives dW = dY @ cols^T and dcols = W^T @ dY;
im2col's backward, col2im, adds every column entry back onto the pixel it was copied
from (a pixel that lies in several windows receives the sum). im2col and col2im are
each other's adjoints, so each is the other's backward and gradients of gradients work.

Neither loops over samples or pixels: im2col is one strided view and one copy,
col2im one strided add per kernel offset (KH*KW of them).
"""

from __future__ import annotations

from minidl import amp, backend, checks
from minidl.autograd import Function
from minidl.ops.linalg import matmul
from minidl.ops.shape import getitem, pad_per_dim, permute, reshape, squeeze, unsqueeze


def count_windows(size: int, kernel: int, stride: int, dilation: int) -> int:
    """How many windows of a (dilated) kernel fit in ``size`` (already padded) pixels."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


# --------------------------------------------------------------------------- #
# The two Functions: im2col and its adjoint col2im
# --------------------------------------------------------------------------- #
class Im2Col(Function):
    """cols[(c, i, j), (n, p, q)] = x[n, c, p*sh + i*dh, q*sw + j*dw]  (one column per window);
    gx = col2im(gcols): each column entry goes back onto the pixel it came from"""

    def __init__(self, kernel_size, stride, dilation):
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def forward(self, x):
        xp = backend.get_array_module(x)
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        oh, ow = count_windows(h, kh, sh, dh), count_windows(w, kw, sw, dw)
        step_n, step_c, step_h, step_w = x.strides  # bytes from one element to the next, per axis
        # A view (no copy) with axes (c, i, j, n, p, q): one kernel offset i moves dh rows,
        # one window p moves sh rows; likewise for the columns j and q.
        windows = xp.lib.stride_tricks.as_strided(
            x,
            shape=(c, kh, kw, n, oh, ow),
            strides=(step_c, dh * step_h, dw * step_w, step_n, sh * step_h, sw * step_w),
        )
        return windows.reshape(c * kh * kw, n * oh * ow)  # the reshape is the one copy

    def backward(self, gcols):
        x = self.inputs[0]
        return Col2Im(x.shape, self.kernel_size, self.stride, self.dilation)(gcols)


class Col2Im(Function):
    """x[n, c, p*sh + i*dh, q*sw + j*dw] += cols[(c, i, j), (n, p, q)] for every window
    (overlapping windows add up: the adjoint of im2col);  gcols = im2col(gx)"""

    def __init__(self, image_shape, kernel_size, stride, dilation):
        self.image_shape = tuple(image_shape)
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def forward(self, cols):
        xp = backend.get_array_module(cols)
        (n, c, h, w), (kh, kw), (sh, sw), (dh, dw) = self.image_shape, self.kernel_size, self.stride, self.dilation
        oh, ow = count_windows(h, kh, sh, dh), count_windows(w, kw, sw, dw)
        cols = cols.reshape(c, kh, kw, n, oh, ow)
        image = xp.zeros((c, n, h, w), dtype=cols.dtype)  # channel-major, like the columns
        for i in range(kh):  # one strided add per kernel offset, never a loop over pixels
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
                image[:, :, rows, columns] += cols[:, i, j]
        return image.transpose(1, 0, 2, 3)  # (N, C, H, W), a view

    def backward(self, gimage):
        return Im2Col(self.kernel_size, self.stride, self.dilation)(gimage)


# --------------------------------------------------------------------------- #
# Checking and normalising arguments (shared with pooling)
# --------------------------------------------------------------------------- #
def check_input(x, spatial_dims: int, op: str) -> bool:
    """Check that x is (N, C, *spatial) or unbatched (C, *spatial); True when unbatched."""
    checks.tensor_input(x, op)
    names = "L" if spatial_dims == 1 else "H, W"
    if x.ndim not in (spatial_dims + 1, spatial_dims + 2):
        raise ValueError(
            f"{op}: expected a {spatial_dims + 2}-D input (N, C, {names}) or a {spatial_dims + 1}-D unbatched "
            f"input (C, {names}), got shape {tuple(x.shape)}"
        )
    return x.ndim == spatial_dims + 1


def im2col(x, kernel_size, stride, padding, dilation, op: str, pad_value=0.0):
    """The windows of x (N, C, H, W) as columns (C*KH*KW, N*OH*OW), and (OH, OW).

    ``padding`` is ((top, bottom), (left, right)); the padded border holds ``pad_value``.
    """
    (top, bottom), (left, right) = padding
    if top or bottom or left or right:
        x = pad_per_dim(x, ((0, 0), (0, 0), (top, bottom), (left, right)), value=pad_value)
    (h, w), (kh, kw), (dh, dw) = x.shape[2:], kernel_size, dilation
    if dh * (kh - 1) + 1 > h or dw * (kw - 1) + 1 > w:
        raise ValueError(
            f"{op}: the kernel ({kh}x{kw}, dilation {dh}x{dw}, so {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1} wide) "
            f"does not fit in the padded input ({h}x{w})"
        )
    cols = Im2Col(kernel_size, stride, dilation)(x)
    return cols, (count_windows(h, kh, stride[0], dh), count_windows(w, kw, stride[1], dw))


def _conv_padding(padding, kernel, stride, dilation, op) -> tuple:
    """((before, after), ...) per spatial axis, from an int, a tuple, 'valid' or 'same'.

    'same' keeps the size at stride 1: the total d*(k-1) goes half before and half after,
    the odd pixel (if any) after, as PyTorch does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * len(kernel)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' needs stride 1 (as in PyTorch), got stride {stride}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        checks.fail(op, "padding to be an int, a tuple, 'valid' or 'same'", padding)
    return tuple((p, p) for p in checks.int_tuple(padding, len(kernel), op, "padding", minimum=0))


# --------------------------------------------------------------------------- #
# Functional forms
# --------------------------------------------------------------------------- #
def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's F.unfold: the sliding windows of (N, C, H, W) as columns (N, C*KH*KW, L),
    after zero padding (im2col's columns, regrouped per sample)."""
    if input.ndim != 4:
        raise ValueError(f"unfold: expected a 4-D input (N, C, H, W), got shape {tuple(input.shape)}")
    kernel_size = checks.int_tuple(kernel_size, 2, "unfold", "kernel_size", minimum=1)
    padding = tuple((p, p) for p in checks.int_tuple(padding, 2, "unfold", "padding", minimum=0))
    stride = checks.int_tuple(stride, 2, "unfold", "stride")
    dilation = checks.int_tuple(dilation, 2, "unfold", "dilation")
    cols, (oh, ow) = im2col(input, kernel_size, stride, padding, dilation, "unfold")
    return permute(reshape(cols, (cols.shape[0], input.shape[0], oh * ow)), (1, 0, 2))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's F.fold, the adjoint of unfold: columns (N, C*KH*KW, L) summed back into
    an image (N, C, H, W) of ``output_size`` (overlapping windows add up)."""
    op = "fold"
    (h, w) = checks.int_tuple(output_size, 2, op, "output_size")
    (kh, kw) = checks.int_tuple(kernel_size, 2, op, "kernel_size")
    (dh, dw), (sh, sw) = checks.int_tuple(dilation, 2, op, "dilation"), checks.int_tuple(stride, 2, op, "stride")
    (ph, pw) = checks.int_tuple(padding, 2, op, "padding", minimum=0)
    oh, ow = count_windows(h + 2 * ph, kh, sh, dh), count_windows(w + 2 * pw, kw, sw, dw)
    if input.ndim != 3 or input.shape[1] % (kh * kw) or input.shape[2] != oh * ow or oh < 1 or ow < 1:
        raise ValueError(
            f"fold: expected input (N, C*{kh}*{kw}, {max(oh, 0) * max(ow, 0)}) for output_size {(h, w)}, "
            f"kernel {(kh, kw)}, padding {(ph, pw)}, stride {(sh, sw)}, dilation {(dh, dw)}; got shape "
            f"{tuple(input.shape)}"
        )
    n, rows = input.shape[0], input.shape[1]
    cols = reshape(permute(input, (1, 0, 2)), (rows, n * oh * ow))
    image = Col2Im((n, rows // (kh * kw), h + 2 * ph, w + 2 * pw), (kh, kw), (sh, sw), (dh, dw))(cols)
    return getitem(image, (slice(None), slice(None), slice(ph, ph + h), slice(pw, pw + w))) if ph or pw else image


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, p, q] = b[o] + sum_(c, i, j) W[o, c, i, j] x_pad[n, g*C/G + c, p*s + i*d, q*s + j*d]
    (g = the group of output channel o). PyTorch's F.conv2d: input (N, C, H, W) or (C, H, W),
    weight (O, C/groups, KH, KW), bias (O,); padding an int, a pair, 'valid' or 'same'."""
    return _convolve(input, weight, bias, stride, padding, dilation, groups, spatial_dims=2, op="conv2d")


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, t] = b[o] + sum_(c, i) W[o, c, i] x_pad[n, g*C/G + c, t*s + i*d]: conv2d on an image of
    height 1. PyTorch's F.conv1d: input (N, C, L) or (C, L), weight (O, C/groups, K), bias (O,)."""
    return _convolve(input, weight, bias, stride, padding, dilation, groups, spatial_dims=1, op="conv1d")


def _convolve(x, weight, bias, stride, padding, dilation, groups, spatial_dims, op):
    x, weight, bias = amp.autocast_inputs(x, weight, bias)  # float16 under autocast
    unbatched = check_input(x, spatial_dims, op)
    if weight.ndim != spatial_dims + 2:
        raise ValueError(
            f"{op}: expected a {spatial_dims + 2}-D weight (out_channels, in_channels/groups, "
            f"{'K' if spatial_dims == 1 else 'KH, KW'}), got shape {tuple(weight.shape)}"
        )
    stride = checks.int_tuple(stride, spatial_dims, op, "stride")
    dilation = checks.int_tuple(dilation, spatial_dims, op, "dilation")
    padding = _conv_padding(padding, weight.shape[2:], stride, dilation, op)
    _check_channels(x, weight, bias, groups, unbatched, op)

    if unbatched:
        x = unsqueeze(x, 0)
    if spatial_dims == 1:  # a 1-D signal is an image of height 1
        x, weight = unsqueeze(x, 2), unsqueeze(weight, 2)
        stride, dilation, padding = (1,) + stride, (1,) + dilation, ((0, 0),) + padding
    y = _conv2d(x, weight, bias, stride, padding, dilation, groups, op)
    if spatial_dims == 1:
        y = squeeze(y, 2)
    return squeeze(y, 0) if unbatched else y


def _check_channels(x, weight, bias, groups, unbatched, op):
    channels = x.shape[0 if unbatched else 1]
    out_channels = weight.shape[0]
    groups = checks.positive_int(groups, op, "groups")
    if out_channels % groups:
        raise ValueError(f"{op}: out_channels ({out_channels}, weight.shape[0]) must be divisible by groups ({groups})")
    if channels != weight.shape[1] * groups:
        raise ValueError(
            f"{op}: the input has {channels} channels but the weight of shape {tuple(weight.shape)} "
            f"expects {weight.shape[1] * groups} (weight.shape[1] * groups, groups={groups})"
        )
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"{op}: expected a bias of shape ({out_channels},), got {tuple(bias.shape)}")
    checks.same_dtype(x, weight, op, "weight")
    checks.same_dtype(x, bias, op, "bias")


def _conv2d(x, weight, bias, stride, padding, dilation, groups, op):
    """The computation itself, on checked arguments: im2col, one matmul, bias."""
    n = x.shape[0]
    out_channels, _, kh, kw = weight.shape
    cols, (oh, ow) = im2col(x, (kh, kw), stride, padding, dilation, op)  # (C*KH*KW, N*OH*OW)
    # Groups split the channels: (G, C/G*KH*KW, N*L) columns against (G, O/G, C/G*KH*KW) weights.
    cols = reshape(cols, (groups, -1, cols.shape[1]))
    w = reshape(weight, (groups, out_channels // groups, -1))
    y = reshape(matmul(w, cols), (out_channels, n, oh, ow))
    y = permute(y, (1, 0, 2, 3))  # (N, O, OH, OW): a view, no copy
    if bias is not None:
        y = y + reshape(bias, (out_channels, 1, 1))
    return y
