"""RandomRotation and RandomAffine (minidl/data/affine.py) against scipy.ndimage and numpy.

scipy.ndimage.rotate(image, angle, reshape=False, order=1) turns counter-clockwise (as numpy.rot90
and torchvision) about ((W-1)/2, (H-1)/2), our convention. Its mode="grid-constant" treats every
neighbour outside the image as cval, as we do (and torchvision does): the two agree at every pixel,
border included. Its mode="constant" instead gives cval to every point outside [0, W-1] x [0, H-1]
and never blends: it agrees with us wherever the source point lies inside the image; elsewhere
(a one-pixel band along the turned edge) we blend the edge pixels with the fill.
"""

import re

import numpy as np
import pytest
import scipy.ndimage as ndimage
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import backend
from minidl.data import transforms as T
from minidl.data.affine import affine, rotate


def on(device, array):
    return backend.to_device(np.asarray(array), device)


def images(n, c, h, w, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(dtype)


def scipy_rotate(batch, angles, fill, mode="grid-constant"):
    """The reference: scipy turns each (H, W) plane of each image by that image's angle."""
    return np.stack([
        np.stack([ndimage.rotate(plane, angle, reshape=False, order=1, mode=mode, cval=fill) for plane in image])
        for image, angle in zip(batch, angles)
    ])


# --------------------------------------------------------------------------- #
# rotate: the sampling against scipy, rot90 and the identity
# --------------------------------------------------------------------------- #
def test_rotate_matches_scipy_at_every_pixel(device):
    x = images(5, 3, 9, 12)
    angles = np.array([0.0, 17.5, -63.0, 135.0, 271.3])
    out = rotate(on(device, x), on(device, angles), fill=-2.0)
    assert backend.device_of(out) == device and out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_allclose(backend.to_numpy(out), scipy_rotate(x, angles, -2.0), rtol=0, atol=1e-10)


def test_rotate_agrees_with_scipy_constant_mode_where_the_source_is_inside():
    x = images(3, 2, 10, 10, seed=1)
    angles = [20.0, -45.0, 100.0]
    out = rotate(x, angles, fill=5.0)
    plain = scipy_rotate(x, angles, 5.0, mode="constant")
    # scipy's own mask: 1 where the source point lies inside the image, 0 where it is outside.
    inside = scipy_rotate(np.ones_like(x), angles, 0.0, mode="constant") == 1
    blended = scipy_rotate(np.ones_like(x), angles, 0.0, mode="grid-constant")
    assert inside.mean() > 0.6 and (~inside).any()
    np.testing.assert_allclose(out[inside], plain[inside], rtol=0, atol=1e-10)
    far = blended == 0  # no neighbour inside: pure fill in both
    np.testing.assert_array_equal(out[far], 5.0)
    assert far.any() and (~inside & ~far).any()  # the band where the edge blends with the fill


@given(
    n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
    angle=st.floats(-360, 360), fill=st.floats(-3, 3), seed=st.integers(0, 50),
)
def test_rotate_matches_scipy_for_any_shape_and_angle(n, c, h, w, angle, fill, seed):
    x = images(n, c, h, w, seed)
    angles = angle + 10.0 * np.arange(n)  # a different angle per image
    np.testing.assert_allclose(rotate(x, angles, fill=fill), scipy_rotate(x, angles, fill), rtol=0, atol=1e-9)


@pytest.mark.parametrize("turns", [1, 2, 3, -1])
def test_quarter_turns_equal_rot90_exactly(device, turns):
    x = images(2, 3, 6, 6, seed=turns + 5, dtype=np.float32)
    out = rotate(on(device, x), 90.0 * turns)
    np.testing.assert_array_equal(backend.to_numpy(out), np.rot90(x, turns, axes=(2, 3)))


def test_angle_zero_is_the_identity(device):
    x = images(3, 2, 5, 7, dtype=np.float32)
    for transform in (T.RandomRotation(0), T.RandomAffine(0), T.RandomAffine((0, 0), scale=(1, 1))):
        out = transform(on(device, x))
        np.testing.assert_array_equal(backend.to_numpy(out), x)
        assert out.dtype == np.float32 and backend.device_of(out) == device


def test_the_input_is_never_modified(device):
    x = on(device, images(4, 3, 8, 8))
    before = backend.to_numpy(x).copy()
    T.RandomAffine(30, translate=(0.2, 0.2), scale=(0.5, 2), fill=1.0)(x)
    np.testing.assert_array_equal(backend.to_numpy(x), before)


# --------------------------------------------------------------------------- #
# affine: translation, scale, fill
# --------------------------------------------------------------------------- #
def test_whole_pixel_translation_shifts_the_image(device):
    x = images(2, 1, 6, 7)
    out = backend.to_numpy(affine(on(device, x), 0.0, translate=[[2, -1], [-3, 0]], fill=9.0))
    shifted = np.full_like(x, 9.0)
    shifted[0, :, 0:5, 2:7] = x[0, :, 1:6, 0:5]  # tx = 2 moves right, ty = -1 moves up
    shifted[1, :, :, 0:4] = x[1, :, :, 3:7]  # tx = -3 moves left
    np.testing.assert_array_equal(out, shifted)


def test_affine_matches_scipy_affine_transform_with_the_matrix_written_out():
    x = images(4, 2, 9, 11, seed=3)
    angle, scale = np.array([10.0, -35.0, 80.0, 0.0]), np.array([1.0, 0.7, 1.3, 2.0])
    translate = np.array([[0.0, 0.0], [1.0, -2.0], [-3.0, 1.0], [0.5, 0.25]])
    out = affine(x, angle, translate=translate, scale=scale, fill=0.5)
    cy, cx = (9 - 1) / 2, (11 - 1) / 2
    for n in range(4):
        # In scipy's (row, col) order the output-to-source map is  source = M out + offset:
        # row = ( sin(col' - cx - tx) + cos(row' - cy - ty)) / s + cy
        # col = ( cos(col' - cx - tx) - sin(row' - cy - ty)) / s + cx
        cos, sin = np.cos(np.radians(angle[n])), np.sin(np.radians(angle[n]))
        matrix = np.array([[cos, sin], [-sin, cos]]) / scale[n]
        tx, ty = translate[n]
        offset = np.array([cy, cx]) - matrix @ np.array([cy + ty, cx + tx])
        for c in range(2):
            expected = ndimage.affine_transform(x[n, c], matrix, offset, order=1, mode="grid-constant", cval=0.5)
            np.testing.assert_allclose(out[n, c], expected, rtol=0, atol=1e-10)


def test_fill_value_outside_one_per_channel(device):
    x = on(device, np.zeros((2, 3, 8, 8), np.float32))
    out = backend.to_numpy(rotate(x, 45.0, fill=(1.0, 2.0, 3.0)))
    for c, value in enumerate((1.0, 2.0, 3.0)):
        assert out[:, c, 0, 0].tolist() == [value, value]  # the corners turn out of view
        assert out[:, c, 4, 4].tolist() == [0.0, 0.0]  # the centre stays inside
    out = backend.to_numpy(T.RandomAffine(0, scale=(0.25, 0.25), fill=7)(x))  # shrunk: the border is all fill
    assert np.all(out[:, :, 0, :] == 7) and np.all(out[:, :, 3:5, 3:5] == 0)


# --------------------------------------------------------------------------- #
# uint8 images: sampled in float32, rounded half to even (as torchvision does for uint8 tensors)
# --------------------------------------------------------------------------- #
def test_uint8_images_are_rounded_to_the_nearest_integer(device):
    x = np.random.default_rng(4).integers(0, 256, (3, 3, 12, 12), dtype=np.uint8)
    angles = np.array([13.0, -71.0, 90.0])
    out = backend.to_numpy(rotate(on(device, x), on(device, angles), fill=255))
    assert out.dtype == np.uint8
    exact = scipy_rotate(x.astype(np.float64), angles, 255.0)
    clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-3  # float32 may round a near-tie either way
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(out[clear], np.rint(exact[clear]))
    assert np.abs(out.astype(np.int64) - np.rint(exact)).max() <= 1
    np.testing.assert_array_equal(out[2], np.rot90(x[2], 1, axes=(1, 2)))


# --------------------------------------------------------------------------- #
# The random draws: one angle per image, in range, reproducible
# --------------------------------------------------------------------------- #
def test_each_image_gets_its_own_angle_in_range(device):
    x = on(device, np.broadcast_to(images(1, 1, 8, 8), (64, 1, 8, 8)).copy())
    out = backend.to_numpy(T.RandomRotation((10, 20), generator=0)(x))
    assert len({image.tobytes() for image in out}) == 64  # copies of one image all come out different
    many = on(device, np.zeros((4000, 1, 2, 2)))
    angles = backend.to_numpy(T.RandomRotation((10, 20), generator=1).draw(many)["angle"])
    assert angles.min() >= 10 and angles.max() < 20 and abs(angles.mean() - 15) < 0.2
    symmetric = backend.to_numpy(T.RandomRotation(30, generator=2).draw(many)["angle"])
    assert symmetric.min() >= -30 and symmetric.max() < 30 and symmetric.min() < -29 and symmetric.max() > 29


def test_random_affine_draws_whole_pixel_translations_and_scales_in_range(device):
    x = on(device, np.zeros((4000, 1, 10, 20)))
    params = T.RandomAffine(0, translate=(0.1, 0.3), scale=(0.8, 1.2), generator=0).draw(x)
    translate, scale = backend.to_numpy(params["translate"]), backend.to_numpy(params["scale"])
    assert translate.shape == (4000, 2) and np.array_equal(translate, np.rint(translate))
    assert set(np.unique(translate[:, 0])) == {-2, -1, 0, 1, 2}  # |tx| <= 0.1 * 20
    assert set(np.unique(translate[:, 1])) == {-3, -2, -1, 0, 1, 2, 3}  # |ty| <= 0.3 * 10
    assert scale.min() >= 0.8 and scale.max() < 1.2


def test_the_transform_applies_the_drawn_angles(device):
    x = images(6, 2, 7, 7, seed=8)
    generator = minidl.Generator(device).manual_seed(3)
    transform = T.RandomRotation(180, fill=-1.0, generator=generator)
    state = generator.get_state()
    angles = backend.to_numpy(transform.draw(on(device, x))["angle"])
    generator.set_state(state)
    out = backend.to_numpy(transform(on(device, x)))
    np.testing.assert_allclose(out, scipy_rotate(x, angles, -1.0), rtol=0, atol=1e-10)


def test_a_saved_generator_state_repeats_the_rotation(device):
    x = on(device, images(8, 3, 6, 6, dtype=np.float32))
    generator = minidl.Generator(device).manual_seed(5)
    transform = T.RandomAffine(45, translate=(0.2, 0.2), scale=(0.8, 1.2), generator=generator)
    state = generator.get_state()
    first = backend.to_numpy(transform(x))
    assert not np.array_equal(backend.to_numpy(transform(x)), first)  # the stream moved on
    generator.set_state(state)
    np.testing.assert_array_equal(backend.to_numpy(transform(x)), first)
    np.testing.assert_array_equal(backend.to_numpy(T.RandomRotation(45, generator=9)(x)),
                                  backend.to_numpy(T.RandomRotation(45, generator=9)(x)))  # an int seed
    minidl.manual_seed(1)
    default = backend.to_numpy(T.RandomRotation(45)(x))
    minidl.manual_seed(1)
    np.testing.assert_array_equal(backend.to_numpy(T.RandomRotation(45)(x)), default)


def test_cpu_and_device_agree_for_the_same_angles(device):
    x = images(4, 3, 16, 16, seed=2, dtype=np.float32)
    angles = np.array([5.0, -40.0, 123.0, 0.5])
    expected = scipy_rotate(x.astype(np.float64), angles, 0.0)
    out = backend.to_numpy(rotate(on(device, x), on(device, angles)))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-5)  # float32 coordinates and sums


def test_cifar_sized_batch_in_a_pipeline(device):
    images_u8 = on(device, np.random.default_rng(0).integers(0, 256, (512, 3, 32, 32), dtype=np.uint8))
    augment = T.Compose([T.ToDtype("float32", scale=True), T.RandomRotation(15, generator=0),
                         T.RandomCrop(32, padding=4, generator=0), T.RandomHorizontalFlip(generator=0)])
    out = augment(images_u8)
    assert out.shape == (512, 3, 32, 32) and out.dtype == np.float32 and backend.device_of(out) == device


# --------------------------------------------------------------------------- #
# Errors name the class, what was expected and what came
# --------------------------------------------------------------------------- #
def test_errors():
    degrees = r"RandomRotation: degrees must be a non-negative number or a \(min, max\) pair"
    with pytest.raises(ValueError, match=degrees + ".*got -5"):
        T.RandomRotation(-5)
    for wrong in [(10, 5), (1, 2, 3), "10", (1, "2")]:
        with pytest.raises(ValueError, match=degrees + " with min <= max, got " + re.escape(repr(wrong))):
            T.RandomRotation(wrong)
    with pytest.raises(TypeError, match=r"RandomRotation: fill must be a number or a sequence of numbers .*got 'red'"):
        T.RandomRotation(10, fill="red")
    with pytest.raises(TypeError, match="RandomRotation: fill must be a number .*got True"):
        T.RandomRotation(10, fill=True)
    with pytest.raises(ValueError, match=r"RandomRotation: expected a batch with 4 dimensions, got shape \(3, 4, 4\)"):
        T.RandomRotation(10)(np.zeros((3, 4, 4)))
    with pytest.raises(TypeError, match="RandomRotation: expected a numpy or cupy array batch, got Tensor"):
        T.RandomRotation(10)(minidl.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"RandomRotation: fill has 2 values but the batch has 3 channels"):
        T.RandomRotation(10, fill=(1, 2))(np.zeros((1, 3, 4, 4)))
    with pytest.raises(TypeError, match="RandomRotation: generator must be None, an int seed"):
        T.RandomRotation(10, generator="seed")
    translate = r"RandomAffine: translate must be a pair of fractions .* in \[0, 1\], got \(0.1, 2\)"
    with pytest.raises(ValueError, match=translate):
        T.RandomAffine(0, translate=(0.1, 2))
    with pytest.raises(ValueError, match=r"RandomAffine: scale values must be greater than 0, got \(0, 1\)"):
        T.RandomAffine(0, scale=(0, 1))
    with pytest.raises(ValueError, match=r"RandomAffine: scale must be a \(min, max\) pair with min <= max, got 1.5"):
        T.RandomAffine(0, scale=1.5)
    with pytest.raises(NotImplementedError, match="RandomAffine: shear is not implemented; expected shear=None, got 1"):
        T.RandomAffine(0, shear=10)
    with pytest.raises(ValueError, match=r"rotate: expected angle of shape \(2,\) \(one per image\), got shape \(3,\)"):
        rotate(np.zeros((2, 1, 3, 3)), [1.0, 2.0, 3.0])


def test_repr_shows_the_settings():
    assert repr(T.RandomRotation(10, fill=1.5)) == "RandomRotation(degrees=(-10.0, 10.0), fill=1.5, generator=None)"
    assert "translate=(0.1, 0.2)" in repr(T.RandomAffine(5, translate=(0.1, 0.2)))
