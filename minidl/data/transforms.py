"""Batch transforms for images, layout (N, C, H, W) like PyTorch, on numpy or cupy batches.

A transform is a callable that takes a whole batch array and returns a new one on the
same device (the input is never modified). Random transforms draw their decisions per
sample (one crop offset, one coin per image) and then apply them all at once with
whole-batch array operations: no Python loop over samples, so the same code is fast
on a GPU.

    train_transform = Compose([
        ToDtype("float32", scale=True),                          # uint8 0..255 -> float 0..1
        RandomCrop(32, padding=4, padding_mode="reflect"),
        RandomHorizontalFlip(),
        Normalize(mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)),
    ])

Where the random numbers come from (``generator=`` of every random transform):
    None              the default generator of the batch's device, seeded by
                      ``minidl.manual_seed`` (the default: reproducible per seed)
    an int            a private ``minidl.Generator`` seeded with it, made on first use on
                      each device
    a Generator       a ``minidl.Generator`` (its state can be saved: ``get_state()``),
                      or a numpy or cupy generator, used as it is (its draws are moved to
                      the batch's device)
The same seed gives the same decisions every run; CPU and GPU generators differ, so
a seed gives different (equally valid) decisions on the CPU and on a GPU.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.backend import get_array_module
from minidl.random import Generator, default_generator


def check_batch(x, op: str, ndim: int | None = None, min_ndim: int = 1):
    """Raise a clear error unless ``x`` is a numpy or cupy array of the expected rank."""
    if not (isinstance(x, numpy.ndarray) or backend.is_cupy_array(x)):
        hint = " (pass tensor.data)" if hasattr(x, "data") and hasattr(x, "grad_fn") else ""
        raise TypeError(f"{op}: expected a numpy or cupy array batch, got {type(x).__name__}{hint}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: expected a batch with {ndim} dimensions, got shape {x.shape}")
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: expected a batch with at least {min_ndim} dimensions, got shape {x.shape}")


def _pair(value, op: str, name: str) -> tuple:
    """An int or a pair of ints as a pair (height, width)."""
    pair = (value, value) if isinstance(value, (int, numpy.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, numpy.integer)) and v >= 0 for v in pair):
        raise ValueError(f"{op}: {name} must be a non-negative int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class Transform:
    """Base class: a callable on a batch, printed with its settings."""

    def __call__(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(batch) -> the transformed batch")

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({settings})"


class Compose(Transform):
    """Apply ``transforms`` one after the other: Compose([a, b])(x) = b(a(x))."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {type(t).__name__}")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose([\n" + "".join(f"    {t!r},\n" for t in self.transforms) + "])"


# --------------------------------------------------------------------------- #
# Random numbers for random transforms
# --------------------------------------------------------------------------- #
class RandomTransform(Transform):
    """Base class of the random transforms: draws numbers on the batch's device.

    ``generator`` is None (the device's default generator), an int seed, a
    ``minidl.Generator`` or a numpy/cupy Generator; see the module docstring.
    """

    def __init__(self, generator=None):
        is_seed = isinstance(generator, (int, numpy.integer)) and not isinstance(generator, bool)
        if not (generator is None or is_seed or hasattr(generator, "standard_normal")):
            raise TypeError(
                f"{type(self).__name__}: generator must be None, an int seed, a minidl.Generator "
                "or a numpy/cupy Generator, "
                f"got {type(generator).__name__}"
            )
        if is_seed and generator < 0:
            raise ValueError(f"{type(self).__name__}: a seed must be non-negative, got {generator}")
        self.generator = generator
        self._seeded = {}  # device -> the generator made from an int seed on that device

    def generator_for(self, batch):
        """The generator that draws this batch's random numbers."""
        device = backend.device_of(batch)
        if self.generator is None:
            return default_generator(device)
        if isinstance(self.generator, (int, numpy.integer)):
            if str(device) not in self._seeded:
                self._seeded[str(device)] = Generator(device).manual_seed(int(self.generator))
            return self._seeded[str(device)]
        return self.generator

    def uniform(self, batch, shape):
        """Samples of U[0, 1) with ``shape``, on the batch's device: float64 for a float64 batch, else
        float32 (not numpy's float64 default: a GPU computes float64 many times slower, and a coin
        or an offset needs no more than float32's 24 bits)."""
        generator = self.generator_for(batch)
        dtype = numpy.float64 if batch.dtype == numpy.float64 else numpy.float32
        draw = generator.random if hasattr(generator, "random") else generator.random_sample
        try:
            values = draw(shape, dtype=dtype)
        except TypeError:  # numpy's legacy RandomState.random_sample takes no dtype: it draws on the host,
            below_one = numpy.nextafter(dtype(1), dtype(0))  # and 1 - 2**-30 would round up to 1 in float32
            values = numpy.minimum(draw(shape).astype(dtype), below_one)
        return backend.to_device(values, backend.device_of(batch))

    def integers(self, batch, low, high, shape):
        """int64 samples uniform over [low, high) (high excluded, as numpy's); ``low`` and ``high``
        may be int arrays on the batch's device that broadcast to ``shape`` (a range per sample):

            k = low + floor(u * (high - low)),   u ~ U[0, 1) (``uniform``: float32, or float64)

        Uniform to within float32's rounding for ranges below 2**24 values (far more than the
        pixels or frames an offset runs over), and never ``high``: u is at most 1 - 2**-24, and
        that times any span below 2**24 rounds to less than the span (checked for every one).
        It all stays on the device: u's dtype, then int64, no guard against rounding up."""
        u = self.uniform(batch, shape)
        starts_at_zero = isinstance(low, int) and low == 0
        span = high if starts_at_zero else high - low
        span = span.astype(u.dtype) if hasattr(span, "astype") else u.dtype.type(span)
        offsets = (u * span).astype(numpy.int64)  # truncation = floor, as u * span >= 0
        return offsets if starts_at_zero else offsets + low

    def normal(self, batch, shape, dtype):
        """Samples of the standard normal N(0, 1) with ``shape`` and ``dtype``, on the batch's device."""
        generator = self.generator_for(batch)
        draw_dtype = numpy.float32 if numpy.dtype(dtype) == numpy.float32 else numpy.float64
        try:
            values = generator.standard_normal(shape, dtype=draw_dtype)
        except TypeError:  # the legacy RandomState API takes no dtype
            values = generator.standard_normal(shape)
        return backend.to_device(values.astype(dtype, copy=False), backend.device_of(batch))


# --------------------------------------------------------------------------- #
# Deterministic transforms
# --------------------------------------------------------------------------- #
class ToDtype(Transform):
    """Cast a batch to ``dtype``; with ``scale=True`` integers become floats in [0, 1]:
    y = x / max(x.dtype), e.g. uint8 pixels 0..255 -> 0.0..1.0 (torchvision's v2.ToDtype).

    Keep images as uint8 on the device (4x less memory) and convert each batch with this.
    """

    def __init__(self, dtype, scale: bool = False):
        self.dtype = numpy.dtype(dtype)
        self.scale = bool(scale)

    def __call__(self, x):
        check_batch(x, "ToDtype")
        if self.scale and x.dtype.kind in "iu" and self.dtype.kind == "f":  # cast and divide in one pass
            return get_array_module(x).divide(x, self.dtype.type(numpy.iinfo(x.dtype).max), dtype=self.dtype)
        return x.astype(self.dtype)


class Normalize(Transform):
    """Per-channel standardisation: y[n, c] = (x[n, c] - mean[c]) / std[c].

    The channel axis is -3: (N, C, H, W) batches or single (C, H, W) images.
    ``mean`` and ``std`` hold one number per channel (or one for all channels).
    """

    def __init__(self, mean, std, inplace: bool = False):
        self.mean = tuple(float(m) for m in numpy.atleast_1d(mean))
        self.std = tuple(float(s) for s in numpy.atleast_1d(std))
        self.inplace = bool(inplace)
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean has {len(self.mean)} values but std has {len(self.std)}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must not contain zeros, got {self.std}")
        self._columns = {}  # (device, dtype) -> (mean, std) shaped (C, 1, 1) on that device

    def _mean_std(self, x):
        device = backend.device_of(x)
        key = (str(device), x.dtype)
        if key not in self._columns:
            mean, std = (numpy.asarray(v, dtype=x.dtype).reshape(-1, 1, 1) for v in (self.mean, self.std))
            self._columns[key] = backend.to_device(mean, device), backend.to_device(std, device)
        return self._columns[key]

    def __call__(self, x):
        check_batch(x, "Normalize", min_ndim=3)
        if x.dtype.kind != "f":
            raise TypeError(
                f"Normalize: expected a floating-point batch, got {x.dtype}; "
                "convert it first, e.g. with ToDtype('float32', scale=True)"
            )
        channels = x.shape[-3]
        if len(self.mean) not in (1, channels):
            raise ValueError(
                f"Normalize: mean/std have {len(self.mean)} values but the batch has {channels} channels "
                f"(shape {x.shape}, channels on axis -3)"
            )
        mean, std = self._mean_std(x)
        if self.inplace:
            x -= mean
            x /= std
            return x
        y = x - mean
        y /= std  # in place on the new array: one allocation, not two
        return y


# --------------------------------------------------------------------------- #
# Random transforms
# --------------------------------------------------------------------------- #
class RandomHorizontalFlip(RandomTransform):
    """Mirror each image left-right with probability ``p``: y[n] = x[n, ..., ::-1] if coin[n] < p else x[n]."""

    def __init__(self, p: float = 0.5, generator=None):
        super().__init__(generator)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x):
        check_batch(x, "RandomHorizontalFlip", ndim=4)
        xp = get_array_module(x)
        flip = self.uniform(x, (x.shape[0],)) < self.p
        return xp.where(flip[:, None, None, None], x[..., ::-1], x)


def sliding_windows(x, height: int, width: int):
    """Every (height, width) window of a (N, C, H, W) array, as a view (nothing is copied):
    windows[n, c, i, j] = x[n, c, i:i+height, j:j+width], shape (N, C, H-height+1, W-width+1, height, width).

    Moving one window down reuses the row stride; moving inside a window does too.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    stride_n, stride_c, stride_h, stride_w = x.strides
    return xp.lib.stride_tricks.as_strided(
        x,
        shape=(n, c, h - height + 1, w - width + 1, height, width),
        strides=(stride_n, stride_c, stride_h, stride_w, stride_h, stride_w),
    )


class RandomCrop(RandomTransform):
    """Pad every image, then cut a ``size`` crop at a random place, a different place per image:
    y[n, c, i, j] = padded[n, c, top[n] + i, left[n] + j], top and left uniform over all crops that fit.

    ``padding``: an int (all sides), (left/right, top/bottom) or (left, top, right, bottom),
    as torchvision. ``padding_mode``: 'constant' (filled with ``fill``), 'edge', 'reflect'
    (mirror without repeating the edge: numpy.pad's 'reflect') or 'symmetric'.
    The batch is padded once, and the crops are gathered with one fancy index into a
    strided view of all windows.
    """

    MODES = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, size, padding=None, fill=0, padding_mode: str = "constant", generator=None):
        super().__init__(generator)
        self.size = _pair(size, "RandomCrop", "size")
        self.padding = self._padding(padding)
        self.fill = fill
        self.padding_mode = padding_mode
        if padding_mode not in self.MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {self.MODES}, got {padding_mode!r}")
        if min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be positive, got {size!r}")

    @staticmethod
    def _padding(padding) -> tuple:
        """(left, top, right, bottom)"""
        if padding is None:
            return (0, 0, 0, 0)
        values = (padding,) if isinstance(padding, (int, numpy.integer)) else tuple(padding)
        if len(values) not in (1, 2, 4) or not all(isinstance(v, (int, numpy.integer)) and v >= 0 for v in values):
            raise ValueError(
                "RandomCrop: padding must be a non-negative int, (left/right, top/bottom) "
                f"or (left, top, right, bottom), got {padding!r}"
            )
        if len(values) == 1:
            return tuple(int(values[0]) for _ in range(4))
        if len(values) == 2:
            return (int(values[0]), int(values[1])) * 2
        return tuple(int(v) for v in values)

    def pad(self, x):
        """The batch with ``padding`` added around each image."""
        left, top, right, bottom = self.padding
        if not any(self.padding):
            return x
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        xp = get_array_module(x)
        if self.padding_mode == "constant":
            return xp.pad(x, widths, mode="constant", constant_values=self.fill)
        return xp.pad(x, widths, mode=self.padding_mode)

    def __call__(self, x):
        check_batch(x, "RandomCrop", ndim=4)
        xp = get_array_module(x)
        padded = self.pad(x)
        height, width = self.size
        n, _, padded_height, padded_width = padded.shape
        if height > padded_height or width > padded_width:
            raise ValueError(
                f"RandomCrop: crop size {self.size} is larger than the padded images "
                f"({padded_height}, {padded_width}) from a batch of shape {x.shape}; add padding or crop less"
            )
        top = self.integers(x, 0, padded_height - height + 1, (n,))
        left = self.integers(x, 0, padded_width - width + 1, (n,))
        windows = sliding_windows(padded, height, width)
        return windows[xp.arange(n), :, top, left]  # (N, C, height, width), a fresh array


from minidl.data.affine import RandomAffine, RandomRotation  # noqa: E402,F401  (last: affine.py imports this file)
