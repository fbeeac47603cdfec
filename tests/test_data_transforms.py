"""Image batch transforms (N, C, H, W): Normalize and ToDtype against the formula, RandomCrop
against numpy.pad plus a per-sample slice, flip probability, reproducibility, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import backend
from minidl.data import transforms as T


def on(device, array):
    return backend.to_device(np.asarray(array), device)


def distinct_images(n, c, h, w, seed=0):
    """Images whose every value differs, so a crop or flip can be told apart from any other."""
    return np.random.default_rng(seed).permutation(n * c * h * w).reshape(n, c, h, w).astype(np.float32)


# --------------------------------------------------------------------------- #
# Deterministic transforms
# --------------------------------------------------------------------------- #
@given(n=st.integers(1, 3), c=st.integers(1, 4), hw=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_normalize_is_per_channel(n, c, hw):
    x = np.random.default_rng(c).standard_normal((n, c, *hw)).astype(np.float32)
    mean, std = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
    y = T.Normalize(mean, std)(x)
    for ch in range(c):
        np.testing.assert_allclose(y[:, ch], (x[:, ch] - mean[ch]) / std[ch], rtol=1e-6, atol=1e-6)
    assert y.dtype == np.float32


def test_normalize_on_device_single_image_one_value_and_inplace(device):
    x = on(device, np.arange(12, dtype=np.float32).reshape(3, 2, 2))
    y = T.Normalize(1.0, 2.0)(x)  # one value for every channel, a single (C, H, W) image
    assert backend.device_of(y) == device
    np.testing.assert_allclose(backend.to_numpy(y), (np.arange(12).reshape(3, 2, 2) - 1.0) / 2.0)
    batch = on(device, np.ones((2, 3, 1, 1), np.float32))
    out = T.Normalize([1, 0, 1], [1, 1, 0.5], inplace=True)(batch)
    assert out is batch and backend.to_numpy(batch)[0, :, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_normalize_errors():
    with pytest.raises(TypeError, match=r"Normalize: expected a floating-point batch, got uint8.*ToDtype"):
        T.Normalize([0.5], [0.5])(np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"Normalize: mean/std have 3 values but the batch has 2 channels"):
        T.Normalize([0, 0, 0], [1, 1, 1])(np.zeros((1, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="Normalize: std must not contain zeros"):
        T.Normalize([0], [0])
    with pytest.raises(ValueError, match="Normalize: mean has 2 values but std has 1"):
        T.Normalize([0, 0], [1])
    with pytest.raises(ValueError, match=r"Normalize: expected a batch with at least 3 dimensions, got shape \(2, 2\)"):
        T.Normalize([0], [1])(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match=r"Normalize: expected a numpy or cupy array batch, got Tensor \(pass tensor"):
        T.Normalize([0], [1])(minidl.zeros(1, 1, 1))


def test_to_dtype_scales_integers_to_unit_range(device):
    x = on(device, np.array([[0, 51, 255]], np.uint8))
    np.testing.assert_allclose(backend.to_numpy(T.ToDtype("float32", scale=True)(x)), [[0, 0.2, 1]], rtol=1e-6)
    assert T.ToDtype(np.float32)(x).dtype == np.float32
    np.testing.assert_array_equal(backend.to_numpy(T.ToDtype("float64")(x)), [[0, 51, 255]])
    assert T.ToDtype("float32", scale=True)(on(device, np.array([2.0]))).tolist() == [2.0]  # floats are not rescaled


def test_compose_applies_in_order_and_prints():
    pipeline = T.Compose([T.Normalize(1.0, 1.0), T.Normalize(0.0, 0.5)])
    np.testing.assert_allclose(pipeline(np.full((1, 1, 1, 1), 3.0, np.float32)), 4.0)
    assert "Normalize(mean=(1.0,)" in repr(pipeline) and repr(pipeline).startswith("Compose([")
    with pytest.raises(TypeError, match="Compose: every transform must be callable, got int"):
        T.Compose([1])


# --------------------------------------------------------------------------- #
# RandomCrop
# --------------------------------------------------------------------------- #
def reference_pad(x, padding, mode, fill=0):
    left, top, right, bottom = padding
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    return np.pad(x, widths, mode=mode, constant_values=fill) if mode == "constant" else np.pad(x, widths, mode=mode)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("padding, as_ltrb", [(2, (2, 2, 2, 2)), ((1, 3), (1, 3, 1, 3)), ((0, 1, 2, 3), (0, 1, 2, 3))])
def test_crop_of_the_whole_padded_image_is_numpy_pad(device, mode, padding, as_ltrb):
    x = distinct_images(2, 2, 5, 6)
    padded = reference_pad(x, as_ltrb, mode, fill=-7)
    crop = T.RandomCrop(padded.shape[2:], padding=padding, fill=-7, padding_mode=mode)
    out = crop(on(device, x))
    assert backend.device_of(out) == device
    np.testing.assert_array_equal(backend.to_numpy(out), padded)


@given(
    n=st.integers(1, 4),
    c=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    padding=st.integers(0, 3),
    mode=st.sampled_from(["constant", "reflect"]),
    seed=st.integers(0, 100),
)
def test_each_crop_is_a_window_of_its_own_padded_image(n, c, hw, padding, mode, seed):
    h, w = hw
    if mode == "reflect":
        padding = min(padding, h - 1, w - 1)  # numpy's reflect needs a pixel to mirror
    x = distinct_images(n, c, h, w, seed)
    size = (max(1, h - 1), w)  # a crop that can move vertically by up to 2 * padding + 1
    out = T.RandomCrop(size, padding=padding, padding_mode=mode, generator=seed)(x)
    assert out.shape == (n, c, *size) and out.dtype == x.dtype
    padded = reference_pad(x, (padding,) * 4, mode)
    for i in range(n):  # the crop of image i must be one of the windows of padded image i
        windows = [
            padded[i, :, top:top + size[0], left:left + size[1]]
            for top in range(padded.shape[2] - size[0] + 1)
            for left in range(padded.shape[3] - size[1] + 1)
        ]
        assert any(np.array_equal(out[i], window) for window in windows)


def test_crop_offsets_cover_every_position_and_differ_per_image():
    x = distinct_images(400, 1, 3, 3)
    out = T.RandomCrop(3, padding=1, generator=0)(x)  # 3x3 crops of 5x5 padded images: 9 offsets
    offsets = set()
    padded = reference_pad(x, (1, 1, 1, 1), "constant")
    for i in range(len(x)):
        for top in range(3):
            for left in range(3):
                if np.array_equal(out[i], padded[i, :, top:top + 3, left:left + 3]):
                    offsets.add((top, left))
    assert offsets == {(t, l) for t in range(3) for l in range(3)}


def test_crop_errors():
    with pytest.raises(ValueError, match=r"RandomCrop: crop size \(9, 9\) is larger than the padded images \(6, 6\)"):
        T.RandomCrop(9, padding=1)(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="RandomCrop: padding_mode must be one of"):
        T.RandomCrop(4, padding_mode="circular")
    with pytest.raises(ValueError, match="RandomCrop: padding must be a non-negative int"):
        T.RandomCrop(4, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="RandomCrop: size must be a non-negative int or a pair"):
        T.RandomCrop((4, 4, 4))
    with pytest.raises(ValueError, match="RandomCrop: size must be positive"):
        T.RandomCrop(0)
    with pytest.raises(ValueError, match=r"RandomCrop: expected a batch with 4 dimensions, got shape \(4, 4\)"):
        T.RandomCrop(2)(np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match="RandomCrop: generator must be None, an int seed, a minidl.Generator or a numpy/cupy"):
        T.RandomCrop(2, generator="seed")


# --------------------------------------------------------------------------- #
# RandomHorizontalFlip
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_flip_happens_with_probability_p(device, p):
    x = distinct_images(4000, 1, 1, 3)
    out = backend.to_numpy(T.RandomHorizontalFlip(p, generator=1)(on(device, x)))
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped ^ kept)  # each image is either mirrored or untouched
    tolerance = 4 * np.sqrt(p * (1 - p) / len(x))  # four standard deviations of the observed fraction
    assert abs(flipped.mean() - p) <= tolerance


# --------------------------------------------------------------------------- #
# Randomness: reproducible, per sample, never touching the input
# --------------------------------------------------------------------------- #
def pipeline(generator):
    return T.Compose(
        [T.RandomCrop(4, padding=2, padding_mode="reflect", generator=generator),
         T.RandomHorizontalFlip(generator=generator)]
    )


def test_random_transforms_are_reproducible_per_seed(device):
    x = on(device, distinct_images(16, 3, 4, 4))
    before = backend.to_numpy(x).copy()
    first = backend.to_numpy(pipeline(11)(x))
    np.testing.assert_array_equal(backend.to_numpy(pipeline(11)(x)), first)
    assert not np.array_equal(backend.to_numpy(pipeline(12)(x)), first)
    np.testing.assert_array_equal(backend.to_numpy(x), before)  # the input is never modified
    seeded = pipeline(11)
    assert not np.array_equal(backend.to_numpy(seeded(x)), backend.to_numpy(seeded(x)))  # the stream moves on


def test_default_generator_follows_manual_seed_and_numpy_generators_work(device):
    x = on(device, distinct_images(16, 1, 4, 4))
    minidl.manual_seed(2)
    first = backend.to_numpy(pipeline(None)(x))
    minidl.manual_seed(2)
    np.testing.assert_array_equal(backend.to_numpy(pipeline(None)(x)), first)
    out = pipeline(np.random.default_rng(0))(x)  # a host generator drives a batch on any device
    assert backend.device_of(out) == device


def test_a_minidl_generator_drives_augmentation_and_its_state_repeats_it(device):
    x = on(device, distinct_images(16, 1, 4, 4))
    generator = minidl.Generator(device).manual_seed(5)
    augment = pipeline(generator)
    state = generator.get_state()
    first = backend.to_numpy(augment(x))
    assert not np.array_equal(backend.to_numpy(augment(x)), first)  # the stream moved on
    generator.set_state(state)
    np.testing.assert_array_equal(backend.to_numpy(augment(x)), first)
    flip = T.RandomHorizontalFlip(generator=5)  # an int seed: a private minidl.Generator per device
    made = flip.generator_for(x)
    assert isinstance(made, minidl.Generator) and made.initial_seed() == 5 and made.device == device


def test_large_batch_of_cifar_sized_images(device):
    images = on(device, np.random.default_rng(0).integers(0, 256, (512, 3, 32, 32), dtype=np.uint8))
    augment = T.Compose([
        T.ToDtype("float32", scale=True),
        T.RandomCrop(32, padding=4, padding_mode="reflect", generator=0),
        T.RandomHorizontalFlip(generator=0),
        T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26)),
    ])
    out = augment(images)
    assert out.shape == (512, 3, 32, 32) and out.dtype == np.float32 and backend.device_of(out) == device
