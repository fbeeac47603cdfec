"""Rotations and affine maps of image batches (N, C, H, W), bilinear, on the batch's device.

    rotate = RandomRotation(15)                                  # one angle per image in [-15, 15]
    jitter = RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1))

The meanings follow torchvision: angles in degrees, positive = counter-clockwise on the
screen, about the image centre (cx, cy) = ((W-1)/2, (H-1)/2) in pixel coordinates
(x = column, y = row, so y points down); ``translate=(a, b)`` moves each image by a whole
number of pixels drawn from [-a*W, a*W] and [-b*H, b*H]; ``scale=(lo, hi)`` zooms by a
factor drawn from [lo, hi].

The math. The forward map of image n takes a source pixel p = (x, y) to
    p' = R(θ) s (p - c) + c + t,      R(θ) = [[cos θ,  sin θ],
                                              [-sin θ, cos θ]]   (counter-clockwise, y down)
To fill every output pixel we run it backwards, from each output pixel p' to the place
in the source image it came from:
    p = A p' + b,    A = R(θ)^-1 / s = [[cos θ, -sin θ],
                                        [sin θ,  cos θ]] / s,    b = c - A (c + t)
so [A | b] is one (2, 3) matrix per image: ``matrices`` has shape (N, 2, 3), and the
source coordinates (x, y) of all output pixels of all images are two (N, H, W) arrays.

Bilinear sampling. With x0 = floor(x), y0 = floor(y), dx = x - x0, dy = y - y0:
    out = (1-dx)(1-dy) img[y0, x0]   + dx(1-dy) img[y0, x0+1]
        + (1-dx) dy    img[y0+1, x0] + dx dy    img[y0+1, x0+1]
A neighbour outside the image counts as ``fill``, so an image edge blends into the
fill over one pixel (as torchvision, and scipy.ndimage's mode="grid-constant"); a point
more than one pixel outside is pure ``fill``. The batch is padded with one ring of
``fill``, flattened, and the four neighbours of every output pixel of every image are
gathered with four fancy indexes: no Python loop over images or pixels.

Integer batches (uint8 images) are sampled in float32 and rounded to the nearest
integer (half to even), as torchvision does for uint8 tensors.
"""

from __future__ import annotations

import numbers

import numpy

from minidl import backend
from minidl.backend import get_array_module
from minidl.data.transforms import RandomTransform, check_batch


# --------------------------------------------------------------------------- #
# Checking arguments
# --------------------------------------------------------------------------- #
def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range(value, op: str, name: str, symmetric: bool, low=None) -> tuple:
    """A (min, max) pair of floats; a number d means (-d, d) when ``symmetric``."""
    if symmetric and _is_number(value):
        if value < 0:
            raise ValueError(f"{op}: {name} must be a non-negative number or a (min, max) pair, got {value!r}")
        return (-float(value), float(value))
    pair = tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(_is_number(v) for v in pair) or pair[0] > pair[1]:
        kind = "a non-negative number or a (min, max) pair" if symmetric else "a (min, max) pair"
        raise ValueError(f"{op}: {name} must be {kind} with min <= max, got {value!r}")
    if low is not None and pair[0] <= low:
        raise ValueError(f"{op}: {name} values must be greater than {low}, got {value!r}")
    return (float(pair[0]), float(pair[1]))


def _translate(value, op: str):
    if value is None:
        return None
    pair = tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(_is_number(v) and 0 <= v <= 1 for v in pair):
        raise ValueError(f"{op}: translate must be a pair of fractions (of width, of height) in [0, 1], got {value!r}")
    return (float(pair[0]), float(pair[1]))


def _fill(value, op: str):
    """A number, or a tuple of numbers (one per channel)."""
    if _is_number(value):
        return float(value) if isinstance(value, float) else value
    if isinstance(value, (tuple, list)) and len(value) > 0 and all(_is_number(v) for v in value):
        return tuple(value)
    raise TypeError(f"{op}: fill must be a number or a sequence of numbers (one per channel), got {value!r}")


# --------------------------------------------------------------------------- #
# The functional core: given one angle (and translation, scale) per image
# --------------------------------------------------------------------------- #
def _work_dtype(x):
    """Coordinates and sums are computed in float64 for float64 batches, else in float32."""
    return numpy.dtype(numpy.float64 if x.dtype == numpy.float64 else numpy.float32)


def _per_image(values, x, shape, op: str, name: str):
    """``values`` (numbers or an array, any device) as a float64 array of ``shape`` on the batch's device."""
    values = backend.to_device(values, backend.device_of(x))
    try:
        return get_array_module(x).broadcast_to(values.astype(numpy.float64), shape)
    except ValueError:
        raise ValueError(f"{op}: expected {name} of shape {shape} (one per image), got shape {values.shape}") from None


def inverse_affine_matrices(x, angle, translate=None, scale=None, op: str = "affine"):
    """The (N, 2, 3) matrices [A | b] taking output pixels back to source pixels (see the module docstring).

    ``angle`` (N,) in degrees, ``translate`` (N, 2) pixels (x, y), ``scale`` (N,); on the batch's device."""
    xp = get_array_module(x)
    n, _, height, width = x.shape
    theta = xp.deg2rad(_per_image(angle, x, (n,), op, "angle"))
    # Rounded to 15 decimals: cos(90 degrees) is 6e-17, not 0; exact 0 and 1 keep 90-degree turns exact.
    cos, sin = xp.round(xp.cos(theta), 15), xp.round(xp.sin(theta), 15)
    if scale is not None:
        s = _per_image(scale, x, (n,), op, "scale")
        cos, sin = cos / s, sin / s
    tx, ty = 0.0, 0.0
    if translate is not None:
        t = _per_image(translate, x, (n, 2), op, "translate")
        tx, ty = t[:, 0], t[:, 1]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    row_x = xp.stack([cos, -sin, cx - cos * (cx + tx) + sin * (cy + ty)], axis=1)  # x = row_x . (x', y', 1)
    row_y = xp.stack([sin, cos, cy - sin * (cx + tx) - cos * (cy + ty)], axis=1)  # y = row_y . (x', y', 1)
    return xp.stack([row_x, row_y], axis=1)


def affine_grid(matrices, height: int, width: int, dtype):
    """Source coordinates (x, y), each (N, height, width), of every output pixel: (x, y) = A (x', y') + b."""
    xp = get_array_module(matrices)
    m = matrices.astype(dtype)[:, :, :, None, None]  # (N, 2, 3, 1, 1): broadcast over the pixels
    out_x = xp.arange(width, dtype=dtype)[None, None, :]  # x' (column), (1, 1, W)
    out_y = xp.arange(height, dtype=dtype)[None, :, None]  # y' (row), (1, H, 1)
    source_x = m[:, 0, 0] * out_x + m[:, 0, 1] * out_y + m[:, 0, 2]
    source_y = m[:, 1, 0] * out_x + m[:, 1, 1] * out_y + m[:, 1, 2]
    return source_x, source_y


def _padded(x, fill, dtype, op: str):
    """The batch in ``dtype`` with one ring of ``fill`` around each image: (N, C, H+2, W+2)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    padded = xp.empty((n, c, h + 2, w + 2), dtype=dtype)
    if isinstance(fill, tuple):
        if len(fill) not in (1, c):
            raise ValueError(f"{op}: fill has {len(fill)} values but the batch has {c} channels (shape {x.shape})")
        padded[...] = backend.to_device(numpy.asarray(fill, dtype=dtype).reshape(-1, 1, 1), backend.device_of(x))
    else:
        padded[...] = fill
    padded[:, :, 1:-1, 1:-1] = x
    return padded


def bilinear_sample(x, source_x, source_y, fill=0, op: str = "bilinear_sample"):
    """out[n, c, i, j] = image n, channel c, sampled bilinearly at (source_x[n, i, j], source_y[n, i, j]).

    Neighbours outside the image count as ``fill`` (see the module docstring for the weights)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    dtype = source_x.dtype
    padded = _padded(x, fill, dtype, op)
    # In the padded image pixel (x, y) sits at (x + 1, y + 1); clipping to the ring of fill
    # keeps far-away points there (dx, dy in [0, 1], every index in range).
    px = xp.clip(source_x + 1, 0, w + 1)
    py = xp.clip(source_y + 1, 0, h + 1)
    x0 = xp.minimum(xp.floor(px), w)  # x0 + 1 <= w + 1, the last column of the ring
    y0 = xp.minimum(xp.floor(py), h)
    dx, dy = (px - x0)[:, None], (py - y0)[:, None]  # (N, 1, H, W): the same for every channel
    row_length, image_size = w + 2, (h + 2) * (w + 2)
    starts = (xp.arange(n * c) * image_size).reshape(n, c, 1, 1)  # where image n, channel c begins
    top_left = starts + (y0.astype(numpy.int64) * row_length + x0.astype(numpy.int64))[:, None]
    flat = padded.reshape(-1)  # every pixel of every channel of every image, one after another
    out = (1 - dx) * (1 - dy) * flat[top_left]
    out += dx * (1 - dy) * flat[top_left + 1]
    out += (1 - dx) * dy * flat[top_left + row_length]
    out += dx * dy * flat[top_left + row_length + 1]
    return out


def _as_batch_dtype(out, dtype):
    """Back to the batch's dtype; integers are rounded (half to even) and clipped to their range."""
    if dtype.kind in "iu":
        xp = get_array_module(out)
        info = numpy.iinfo(dtype)
        return xp.clip(xp.rint(out), info.min, info.max).astype(dtype)
    return out.astype(dtype, copy=False)


def affine(x, angle, translate=None, scale=None, fill=0, op: str = "affine"):
    """Each image n turned by ``angle[n]`` degrees (counter-clockwise), zoomed by ``scale[n]`` and
    moved by ``translate[n] = (tx, ty)`` pixels, about the image centre; a new batch, same device and dtype.

    ``angle`` and ``scale`` hold one number per image (or one for all), ``translate`` one (tx, ty) pair."""
    check_batch(x, op, ndim=4)
    fill = _fill(fill, op)
    dtype = _work_dtype(x)
    matrices = inverse_affine_matrices(x, angle, translate, scale, op)
    source_x, source_y = affine_grid(matrices, x.shape[2], x.shape[3], dtype)
    return _as_batch_dtype(bilinear_sample(x, source_x, source_y, fill, op), x.dtype)


def rotate(x, angle, fill=0):
    """Each image n turned by ``angle[n]`` degrees counter-clockwise about its centre ((W-1)/2, (H-1)/2)."""
    return affine(x, angle, fill=fill, op="rotate")


# --------------------------------------------------------------------------- #
# The random transforms
# --------------------------------------------------------------------------- #
class RandomAffine(RandomTransform):
    """A random rotation, translation and zoom per image (torchvision's RandomAffine without shear).

    ``degrees``: d (uniform in [-d, d]) or (min, max); ``translate``: None or (a, b), fractions of
    the width and height (tx a whole number of pixels drawn in [-a*W, a*W], ty likewise);
    ``scale``: None or (lo, hi); ``fill``: the value (or one per channel) outside the image.
    ``shear`` is not implemented: anything but None raises. Bilinear sampling; see the
    module docstring for the math. ``draw(batch)`` returns the parameters the next call uses.
    """

    def __init__(self, degrees, translate=None, scale=None, shear=None, *, fill=0, generator=None):
        super().__init__(generator)
        name = type(self).__name__
        self.degrees = _range(degrees, name, "degrees", symmetric=True)
        self.translate = _translate(translate, name)
        self.scale = None if scale is None else _range(scale, name, "scale", symmetric=False, low=0)
        if shear is not None:
            raise NotImplementedError(f"{name}: shear is not implemented; expected shear=None, got {shear!r}")
        self.fill = _fill(fill, name)

    def draw(self, x) -> dict:
        """One angle (degrees), translation (tx, ty pixels) and scale per image, from the generator."""
        n, _, height, width = x.shape
        low, high = self.degrees
        params = {"angle": low + (high - low) * self.uniform(x, (n,)), "translate": None, "scale": None}
        if self.translate is not None:
            xp = get_array_module(x)
            largest = numpy.array([self.translate[0] * width, self.translate[1] * height])
            largest = backend.to_device(largest, backend.device_of(x))
            params["translate"] = xp.rint(largest * (2 * self.uniform(x, (n, 2)) - 1))
        if self.scale is not None:
            low, high = self.scale
            params["scale"] = low + (high - low) * self.uniform(x, (n,))
        return params

    def __call__(self, x):
        name = type(self).__name__
        check_batch(x, name, ndim=4)
        return affine(x, **self.draw(x), fill=self.fill, op=name)


class RandomRotation(RandomAffine):
    """Turn each image by its own angle, uniform in [-degrees, degrees] (or in (min, max)),
    counter-clockwise about the centre ((W-1)/2, (H-1)/2), bilinear, ``fill`` outside (torchvision's
    RandomRotation with interpolation=BILINEAR, expand=False). See the module docstring for the math.

    Cost on a 2-core build machine, 2026-12-06 (numpy, a batch of 512 float32 images 3x32x32,
    median of 15 calls, the quietest of several such measurements; other jobs shared the
    cores, and busier runs took up to twice as long): RandomRotation about 40 ms (37-41 ms),
    RandomAffine with translate and scale the same; RandomCrop(32, padding=4) followed by
    RandomHorizontalFlip about 4-5 ms. A rotation costs about nine crops and flips: four gathers
    and four products over the whole batch, against one gather and one select.
    """

    def __init__(self, degrees, *, fill=0, generator=None):
        super().__init__(degrees, fill=fill, generator=generator)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees!r}, fill={self.fill!r}, generator={self.generator!r})"
