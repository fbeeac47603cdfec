"""im2col and col2im: the conv family of the backend table, padding included.

For an image x (N, C, H, W), a KH x KW kernel, stride s, dilation d and padding
((top, bottom), (left, right)) whose border holds ``pad_value``:

    cols[(c, i, j), (n, p, q)] = x_pad[n, c, p*sh + i*dh, q*sw + j*dw]         (im2col)
    image[n, c, h, w] = sum of cols[(c, i, j), (n, p, q)] over the (i, j, p, q)
                        with p*sh + i*dh = h + top and q*sw + j*dw = w + left    (col2im)

cols is (C*KH*KW, N*OH*OW): channel-major, one column per window. col2im is im2col's
adjoint (<im2col(x), y> = <x, col2im(y)> with zero padding): each column entry goes back
onto the pixel it was copied from, entries that came from the border are dropped, and a
pixel that lies in several windows receives their sum. Its image comes back as a
(N, C, H, W) view of channel-major (C, N, H, W) memory, the layout conv2d's outputs have.

* NumPy twins: im2col is a strided view of the padded image and one copy; col2im is one
  strided add per kernel offset (KH*KW of them) into a padded image, whose border is then cut off.
* CUDA kernels (conv.cu), float32, one launch each. im2col_f32 runs one thread per column
  entry and reads x through its strides, so the channel-major memory of conv outputs is read
  as it lies (an x whose memory is not one dense block is copied first); a border pixel
  is ``pad_value``, never stored in a padded copy. col2im_f32 is a gather: one thread per
  image pixel sums the (at most KH*KW) column entries that came from it, in a fixed order:
  no atomics, and the result is the same on every run.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.kernels.launch import launch


def count_windows(size: int, kernel: int, stride: int, dilation: int) -> int:
    """How many windows of a (dilated) kernel fit in ``size`` (already padded) pixels."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def output_size(image_hw, kernel_size, stride, padding, dilation) -> tuple:
    """(OH, OW): the windows that fit in the padded image."""
    return tuple(count_windows(size + before + after, k, s, d)
                 for size, k, s, (before, after), d in zip(image_hw, kernel_size, stride, padding, dilation))


class NumpyConv:
    keeps_columns = True  # the convolution keeps its im2col columns for dW (memory is plenty on the CPU)

    @staticmethod
    def im2col(x, kernel_size, stride, padding, dilation, pad_value=0.0):
        """The windows of x (N, C, H, W) as columns (C*KH*KW, N*OH*OW), the border holding ``pad_value``."""
        xp = backend.get_array_module(x)
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        (top, bottom), (left, right) = padding
        oh, ow = output_size((h, w), kernel_size, stride, padding, dilation)
        if top or bottom or left or right:  # the padded image, channel-major like the columns
            padded = xp.full((c, n, top + h + bottom, left + w + right), pad_value, dtype=x.dtype)
            padded[:, :, top:top + h, left:left + w] = x.transpose(1, 0, 2, 3)
            x = padded.transpose(1, 0, 2, 3)
        step_n, step_c, step_h, step_w = x.strides  # bytes from one element to the next, per axis
        # A view (no copy) with axes (c, i, j, n, p, q): one kernel offset i moves dh rows,
        # one window p moves sh rows; likewise for the columns j and q.
        windows = xp.lib.stride_tricks.as_strided(
            x,
            shape=(c, kh, kw, n, oh, ow),
            strides=(step_c, dh * step_h, dw * step_w, step_n, sh * step_h, sw * step_w),
        )
        return windows.reshape(c * kh * kw, n * oh * ow)  # the reshape is the one copy

    @staticmethod
    def col2im(cols, image_shape, kernel_size, stride, padding, dilation):
        """Columns (C*KH*KW, N*OH*OW) summed back onto the image (N, C, H, W) they came from."""
        xp = backend.get_array_module(cols)
        (n, c, h, w), (kh, kw), (sh, sw), (dh, dw) = image_shape, kernel_size, stride, dilation
        (top, bottom), (left, right) = padding
        oh, ow = output_size((h, w), kernel_size, stride, padding, dilation)
        cols = cols.reshape(c, kh, kw, n, oh, ow)
        image = xp.zeros((c, n, top + h + bottom, left + w + right), dtype=cols.dtype)  # channel-major, padded
        for i in range(kh):  # one strided add per kernel offset, never a loop over pixels
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
                image[:, :, rows, columns] += cols[:, i, j]
        image = image[:, :, top:top + h, left:left + w]  # the border's entries are dropped
        return image.transpose(1, 0, 2, 3)  # (N, C, H, W), a view


def dense_block(x):
    """x's memory as one C-contiguous array, and x's strides in elements into it.

    When x's elements fill one block of memory (NCHW, or the channel-major (C, N, H, W) of
    conv outputs), the block is x itself with its axes sorted by stride: no copy. Otherwise
    (a slice, a broadcast) x is copied into a C-contiguous array first.
    """
    order = sorted(range(x.ndim), key=lambda axis: -x.strides[axis])
    block = x.transpose(order)
    if not block.flags.c_contiguous:
        x = block = backend.cupy.ascontiguousarray(x)
    return block, tuple(step // x.itemsize for step in x.strides)


class CupyConv(NumpyConv):  # pragma: no cover - GPU (or fakecupy)
    keeps_columns = False  # GPU memory is the limit: backward builds the columns again (one launch)

    @staticmethod
    def im2col(x, kernel_size, stride, padding, dilation, pad_value=0.0):
        """im2col_f32: one launch, one thread per column entry (float32; other dtypes run the twin)."""
        n, c, h, w = x.shape
        (kh, kw), (oh, ow) = kernel_size, output_size((h, w), kernel_size, stride, padding, dilation)
        if not _kernel_fits(x.dtype, n * oh * ow, c * kh * kw, c * n, h * w):
            return NumpyConv.im2col(x, kernel_size, stride, padding, dilation, pad_value)
        cols = backend.cupy.empty((c * kh * kw, n * oh * ow), dtype=numpy.float32)
        if cols.size:
            block, steps = dense_block(x)
            geometry = _geometry(kernel_size, (oh, ow), stride, padding, dilation)
            launch("conv.cu", "im2col_f32", cols.size, (block, cols, *_ints(n, c, h, w),
                                                        *(numpy.int64(s) for s in steps), *geometry,
                                                        numpy.float32(pad_value)))
        return cols

    @staticmethod
    def col2im(cols, image_shape, kernel_size, stride, padding, dilation):
        """col2im_f32: one launch, one thread per image pixel gathering its column entries."""
        n, c, h, w = image_shape
        oh, ow = output_size((h, w), kernel_size, stride, padding, dilation)
        if not _kernel_fits(cols.dtype, n * oh * ow, cols.shape[0], c * n, h * w):
            return NumpyConv.col2im(cols, image_shape, kernel_size, stride, padding, dilation)
        image = backend.cupy.empty((c, n, h, w), dtype=numpy.float32)  # channel-major, like the columns
        if image.size:
            cols = backend.cupy.ascontiguousarray(cols)
            geometry = _geometry(kernel_size, (oh, ow), stride, padding, dilation)
            launch("conv.cu", "col2im_f32", image.size, (cols, image, *_ints(n, c, h, w), *geometry))
        return image.transpose(1, 0, 2, 3)


def _kernel_fits(dtype, *sizes) -> bool:
    """The kernels take float32, and index within a row or plane with 32-bit ints."""
    return dtype == numpy.float32 and max(sizes) < 2**31


def _ints(*values):
    return tuple(numpy.int32(v) for v in values)


def _geometry(kernel_size, windows, stride, padding, dilation):
    """The kernels' shared int arguments: KH, KW, OH, OW, stride, top and left padding, dilation."""
    (top, _), (left, _) = padding
    return _ints(*kernel_size, *windows, *stride, top, left, *dilation)


# --------------------------------------------------------------------------- #
# The CPU stand-in runs the kernels through the twins
# --------------------------------------------------------------------------- #
def _reach(size, before, windows, kernel, stride, dilation):
    """(image rows the windows reach, padding after them): the kernels get no bottom/right padding,
    only the window count, so the twin gets the image cut (or padded) to what the windows read."""
    last = (windows - 1) * stride + dilation * (kernel - 1) + 1 - before  # past the last row read
    return max(0, min(size, last)), max(0, last - size)


def _emulate_im2col(x, cols, n, c, h, w, sn, sc, sh, sw, kh, kw, oh, ow, stride_h, stride_w,
                    top, left, dilation_h, dilation_w, pad_value):
    image = numpy.lib.stride_tricks.as_strided(x, (n, c, h, w), tuple(s * x.itemsize for s in (sn, sc, sh, sw)))
    (rows, bottom), (columns, right) = (_reach(h, top, oh, kh, stride_h, dilation_h),
                                        _reach(w, left, ow, kw, stride_w, dilation_w))
    cols[...] = NumpyConv.im2col(image[:, :, :rows, :columns], (kh, kw), (stride_h, stride_w),
                                 ((top, bottom), (left, right)), (dilation_h, dilation_w), pad_value)


def _emulate_col2im(cols, image, n, c, h, w, kh, kw, oh, ow, stride_h, stride_w, top, left, dilation_h, dilation_w):
    (rows, bottom), (columns, right) = (_reach(h, top, oh, kh, stride_h, dilation_h),
                                        _reach(w, left, ow, kw, stride_w, dilation_w))
    image[...] = 0
    part = NumpyConv.col2im(cols, (n, c, rows, columns), (kh, kw), (stride_h, stride_w),
                            ((top, bottom), (left, right)), (dilation_h, dilation_w))
    image[:, :, :rows, :columns] = part.transpose(1, 0, 2, 3)


EMULATE = {"im2col_f32": _emulate_im2col, "col2im_f32": _emulate_col2im}
