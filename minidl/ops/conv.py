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

Backward: dW = dY @ cols^T, dcols = W^T @ dY, and dx = col2im(dcols): im2col's adjoint adds
every column entry back onto the pixel it was copied from (a pixel that lies in several
windows receives the sum). Padding lives inside im2col (the border is read as zeros) and
col2im (the border's entries are dropped), so x is never copied into a padded image.

With groups = 1 (nearly every convolution) ``conv2d`` is one fused Function, Convolution:
forward is im2col, one 2-D product and the bias; it keeps x and W but not the columns,
which are KH*KW times the size of x, and backward builds them again for dW. Its ``composed``
twin is the chain Im2Col -> matmul -> reshape -> bias, which the engine differentiates for
gradients of gradients. Groups > 1 run that chain with a batched (grouped) product.

im2col and col2im themselves sit in the backend table (minidl.kernels.conv): on the CPU a
strided view and one copy, and one strided add per kernel offset (never a loop over pixels);
on a GPU one CUDA launch each.
"""

from __future__ import annotations

from minidl import amp, backend, checks, kernels
from minidl.autograd import Function
from minidl.kernels.conv import count_windows, output_size
from minidl.ops.linalg import matmul
from minidl.ops.shape import permute, reshape, squeeze, unsqueeze
from minidl.tensor import Tensor

NO_PADDING = ((0, 0), (0, 0))


# --------------------------------------------------------------------------- #
# The Functions: im2col, its adjoint col2im, and the convolution built on them
# --------------------------------------------------------------------------- #
class Im2Col(Function):
    """cols[(c, i, j), (n, p, q)] = x_pad[n, c, p*sh + i*dh, q*sw + j*dw]  (one column per window;
    x_pad: x inside a border of ``pad_value``);  gx = col2im(gcols): each column entry goes
    back onto the pixel it came from (the border's entries are dropped)"""

    def __init__(self, kernel_size, stride, dilation, padding=NO_PADDING, pad_value=0.0):
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding, self.pad_value = padding, pad_value

    def forward(self, x):
        table = kernels.backend_for(backend.get_array_module(x))
        return table.im2col(x, self.kernel_size, self.stride, self.padding, self.dilation, self.pad_value)

    def backward(self, gcols):
        x = self.inputs[0]
        return Col2Im(x.shape, self.kernel_size, self.stride, self.dilation, self.padding)(gcols)


class Col2Im(Function):
    """x_pad[n, c, p*sh + i*dh, q*sw + j*dw] += cols[(c, i, j), (n, p, q)] for every window, then
    the border is cut off (overlapping windows add up: the adjoint of im2col);  gcols = im2col(gx)"""

    def __init__(self, image_shape, kernel_size, stride, dilation, padding=NO_PADDING):
        self.image_shape = tuple(image_shape)
        self.kernel_size, self.stride, self.dilation, self.padding = kernel_size, stride, dilation, padding

    def forward(self, cols):
        table = kernels.backend_for(backend.get_array_module(cols))
        return table.col2im(cols, self.image_shape, self.kernel_size, self.stride, self.padding, self.dilation)

    def backward(self, gimage):
        return Im2Col(self.kernel_size, self.stride, self.dilation, self.padding)(gimage)


class Convolution(Function):
    """y[n, o, p, q] = b[o] + sum_(c, i, j) W[o, c, i, j] x_pad[n, c, p*sh + i*dh, q*sw + j*dw]  (groups = 1)
    as one product Y = W @ cols (W seen as (O, C*KH*KW), cols = im2col(x) as (C*KH*KW, N*OH*OW));
    dW = dY @ cols^T,  dx = col2im(W^T @ dY),  db[o] = sum of dY[o, (n, p, q)]

    A fused op: it keeps x and W; the columns (KH*KW times the size of x) only where the
    backend table says ``keeps_columns`` (the CPU, where memory is plenty and an im2col costs as
    much as a tenth of the step). On a GPU memory is the limit (3.7 GB of columns at ResNet-9
    batch 512), so backward builds them again there, one launch, for dW. ``composed`` is the same forward as a chain of
    Functions (Im2Col, matmul, reshape, permute, add), which the engine differentiates for
    gradients of gradients (create_graph=True).
    """

    def __init__(self, stride, padding, dilation):
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x, weight, bias=None):
        table = kernels.backend_for(backend.get_array_module(x))
        n, out = x.shape[0], weight.shape[0]
        oh, ow = output_size(x.shape[2:], weight.shape[2:], self.stride, self.padding, self.dilation)
        cols = table.im2col(x, weight.shape[2:], self.stride, self.padding, self.dilation)
        self.cols = cols if table.keeps_columns else None
        y = table.matmul(weight.reshape(out, -1), cols)  # (O, N*OH*OW)
        if bias is not None:
            y += bias.reshape(out, 1)
        return y.reshape(out, n, oh, ow).transpose(1, 0, 2, 3)  # (N, O, OH, OW): a view of channel-major memory

    def backward(self, gy):
        x, weight = self.inputs[:2]
        table = kernels.backend_for(backend.get_array_module(gy.data))
        kernel, out = weight.shape[2:], weight.shape[0]
        g = gy.data.transpose(1, 0, 2, 3).reshape(out, -1)  # dY (O, N*OH*OW): a view when gy is channel-major
        gx = gw = None
        if x.requires_grad:
            gcols = table.matmul(weight.data.reshape(out, -1).T, g)  # W^T @ dY
            gx = Tensor.wrap(table.col2im(gcols, x.shape, kernel, self.stride, self.padding, self.dilation))
        if weight.requires_grad:
            cols = self.cols
            if cols is None:  # not kept: built again
                cols = table.im2col(x.data, kernel, self.stride, self.padding, self.dilation)
            gw = Tensor.wrap(table.matmul(g, cols.T).reshape(weight.shape))  # dY @ cols^T
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, Tensor.wrap(g.sum(axis=1)) if self.inputs[2].requires_grad else None

    def composed(self, x, weight, bias=None):
        """The same forward in Tensor ops: im2col, one matmul, reshape to (N, O, OH, OW), bias."""
        n, out = x.shape[0], weight.shape[0]
        oh, ow = output_size(x.shape[2:], weight.shape[2:], self.stride, self.padding, self.dilation)
        cols = Im2Col(weight.shape[2:], self.stride, self.dilation, self.padding)(x)
        y = permute(reshape(matmul(reshape(weight, (out, -1)), cols), (out, n, oh, ow)), (1, 0, 2, 3))
        return y if bias is None else y + reshape(bias, (out, 1, 1))


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


def check_fits(x_shape, kernel_size, padding, dilation, op: str) -> None:
    """Refuse a (dilated) kernel wider than the padded input."""
    (h, w) = (size + before + after for size, (before, after) in zip(x_shape[2:], padding))
    (kh, kw), (dh, dw) = kernel_size, dilation
    if dh * (kh - 1) + 1 > h or dw * (kw - 1) + 1 > w:
        raise ValueError(
            f"{op}: the kernel ({kh}x{kw}, dilation {dh}x{dw}, so {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1} wide) "
            f"does not fit in the padded input ({h}x{w})"
        )


def im2col(x, kernel_size, stride, padding, dilation, op: str, pad_value=0.0):
    """The windows of x (N, C, H, W) as columns (C*KH*KW, N*OH*OW), and (OH, OW).

    ``padding`` is ((top, bottom), (left, right)); the padded border holds ``pad_value``
    (read as such, never stored in a padded copy of x).
    """
    check_fits(x.shape, kernel_size, padding, dilation, op)
    cols = Im2Col(kernel_size, stride, dilation, padding, pad_value)(x)
    return cols, output_size(x.shape[2:], kernel_size, stride, padding, dilation)


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
    return Col2Im((n, rows // (kh * kw), h, w), (kh, kw), (sh, sw), (dh, dw), ((ph, ph), (pw, pw)))(cols)


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
    kernel_size = weight.shape[2:]
    check_fits(x.shape, kernel_size, padding, dilation, op)
    if groups == 1:  # one plain 2-D product, the columns not kept for backward
        convolve = Convolution(stride, padding, dilation)
        return convolve(x, weight) if bias is None else convolve(x, weight, bias)
    n = x.shape[0]
    out_channels = weight.shape[0]
    cols, (oh, ow) = im2col(x, kernel_size, stride, padding, dilation, op)  # (C*KH*KW, N*OH*OW)
    # Groups split the channels: (G, C/G*KH*KW, N*L) columns against (G, O/G, C/G*KH*KW) weights.
    cols = reshape(cols, (groups, -1, cols.shape[1]))
    w = reshape(weight, (groups, out_channels // groups, -1))
    y = reshape(matmul(w, cols), (out_channels, n, oh, ow))
    y = permute(y, (1, 0, 2, 3))  # (N, O, OH, OW): a view, no copy
    if bias is not None:
        y = y + reshape(bias, (out_channels, 1, 1))
    return y
