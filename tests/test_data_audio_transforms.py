"""Audio batch transforms: time shifts against numpy.roll / a zero-filled shift per clip, noise
at the requested SNR, SpecAugment masks of the requested widths, on either spectrogram layout."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl import backend
from minidl.data import audio_transforms as A


def on(device, array):
    return backend.to_device(np.asarray(array), device)


def shifted(row, s, mode):
    """A plain reference: row moved right by s steps (left when s < 0)."""
    if mode == "roll":
        return np.roll(row, s, axis=-1)
    out = np.zeros_like(row)
    for t in range(row.shape[-1]):
        if 0 <= t - s < row.shape[-1]:
            out[..., t] = row[..., t - s]
    return out


def find_shift(out_row, row, max_shift, mode):
    matches = [s for s in range(-max_shift, max_shift + 1) if np.array_equal(out_row, shifted(row, s, mode))]
    assert matches, "the output is not a shift of the input by at most max_shift"
    return matches[0]


# --------------------------------------------------------------------------- #
# RandomTimeShift
# --------------------------------------------------------------------------- #
@given(
    n=st.integers(1, 4), length=st.integers(1, 9), max_shift=st.integers(0, 12),
    mode=st.sampled_from(["roll", "zero"]), seed=st.integers(0, 50),
)
def test_time_shift_of_waveforms_matches_a_reference(n, length, max_shift, mode, seed):
    x = np.random.default_rng(seed).permutation(n * length).reshape(n, length).astype(np.float32) + 1
    out = A.RandomTimeShift(max_shift, mode=mode, generator=seed)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(n):
        find_shift(out[i], x[i], max_shift, mode)


@pytest.mark.parametrize("mode", ["roll", "zero"])
def test_time_shift_covers_every_shift_on_device(device, mode):
    x = np.tile(np.arange(1, 11, dtype=np.float32), (300, 1))
    out = backend.to_numpy(A.RandomTimeShift(3, mode=mode, generator=0)(on(device, x)))
    shifts = {find_shift(out[i], x[i], 3, mode) for i in range(len(x))}
    assert shifts == set(range(-3, 4))


@pytest.mark.parametrize("layout, axis", [("NFT", -1), ("NTF", -2)])
def test_time_shift_moves_every_frequency_row_of_a_spectrogram_together(layout, axis):
    spec = np.random.default_rng(0).permutation(5 * 4 * 8).reshape(5, 4, 8).astype(np.float32)  # (N, F, T)
    x = spec if layout == "NFT" else spec.transpose(0, 2, 1)
    out = A.RandomTimeShift(3, axis=axis, generator=0)(x)
    out = out if layout == "NFT" else out.transpose(0, 2, 1)
    for i in range(5):
        find_shift(out[i], spec[i], 3, "roll")  # one shift for the whole (F, T) clip


def test_time_shift_errors():
    with pytest.raises(ValueError, match="RandomTimeShift: max_shift must be a non-negative int, got -1"):
        A.RandomTimeShift(-1)
    with pytest.raises(ValueError, match="RandomTimeShift: mode must be one of"):
        A.RandomTimeShift(2, mode="wrap")
    with pytest.raises(ValueError, match=r"RandomTimeShift: axis 0 must name a non-batch axis of .* \(2, 3\)"):
        A.RandomTimeShift(1, axis=0)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="RandomTimeShift: expected a batch with at least 2 dimensions"):
        A.RandomTimeShift(1)(np.zeros(3, np.float32))


# --------------------------------------------------------------------------- #
# AddGaussianNoise
# --------------------------------------------------------------------------- #
def measured_snr_db(clean, noisy):
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2, axis=-1) / np.mean(noise**2, axis=-1))


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 20.0])
def test_noise_has_the_requested_snr(device, snr_db):
    t = np.arange(20000)
    amplitudes = np.array([0.01, 1.0, 30.0])[:, None]  # the noise follows each clip's own power
    x = (amplitudes * np.sin(2 * np.pi * t / 50)).astype(np.float32)
    out = A.AddGaussianNoise(snr_db, generator=0)(on(device, x))
    assert out.dtype == np.float32 and backend.device_of(out) == device
    np.testing.assert_allclose(measured_snr_db(x, backend.to_numpy(out)), snr_db, atol=0.15)


def test_noise_snr_drawn_per_clip_from_a_range_and_silence_stays_silent():
    x = np.tile(np.sin(np.arange(8000) / 7.0), (200, 1)).astype(np.float32)
    snr = measured_snr_db(x, A.AddGaussianNoise((0.0, 30.0), generator=1)(x))
    assert snr.min() > -0.3 and snr.max() < 30.3 and snr.std() > 5  # spread over the range
    assert np.all(A.AddGaussianNoise(10.0)(np.zeros((2, 5), np.float32)) == 0)
    spectrogram = np.ones((3, 4, 500), np.float64)  # (N, F, T): power over the whole clip
    noise = A.AddGaussianNoise(6.0, generator=2)(spectrogram) - spectrogram
    assert noise.dtype == np.float64
    np.testing.assert_allclose(10 * np.log10(1 / np.mean(noise**2, axis=(1, 2))), 6.0, atol=0.3)


def test_noise_is_reproducible_per_seed_and_errors():
    x = np.ones((2, 50), np.float32)
    np.testing.assert_array_equal(A.AddGaussianNoise(5, generator=3)(x), A.AddGaussianNoise(5, generator=3)(x))
    assert not np.array_equal(A.AddGaussianNoise(5, generator=3)(x), A.AddGaussianNoise(5, generator=4)(x))
    with pytest.raises(TypeError, match="AddGaussianNoise: expected a floating-point batch, got int64"):
        A.AddGaussianNoise(5)(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match="AddGaussianNoise: snr_db must be a finite number or a pair low <= high"):
        A.AddGaussianNoise((10, 0))


# --------------------------------------------------------------------------- #
# TimeMasking and FrequencyMasking
# --------------------------------------------------------------------------- #
def masked_bands(out, value):
    """For each sample (N, size) of masked flags: the masked positions."""
    return [np.flatnonzero(row == value) for row in out]


def assert_one_band_per_sample(flags, mask_param):
    widths = []
    for positions in masked_bands(flags, True):
        if len(positions):
            assert np.all(np.diff(positions) == 1), "a mask must be one contiguous band"
        widths.append(len(positions))
    assert max(widths) <= mask_param
    return widths


@pytest.mark.parametrize("cls, axis, param", [(A.TimeMasking, -1, 5), (A.FrequencyMasking, -2, 3)])
def test_masks_have_the_requested_widths_on_device(device, cls, axis, param):
    spec = np.ones((500, 6, 12), np.float32)  # (N, F, T)
    out = backend.to_numpy(cls(param, mask_value=-2.0, generator=0)(on(device, spec)))
    assert set(np.unique(out).tolist()) <= {1.0, -2.0}
    masked = out == -2.0
    other = -1 if axis == -2 else -2
    assert np.all(masked == masked.take([0], axis=other))  # a band spans the whole other axis
    flags = masked.take(0, axis=other)
    widths = assert_one_band_per_sample(flags, param)
    assert set(widths) == set(range(param + 1))  # every width from 0 to mask_param occurs
    starts = {int(p[0]) for p in masked_bands(flags, True) if len(p)}
    assert 0 in starts and max(starts) == flags.shape[1] - 1  # bands reach both ends


@given(
    n=st.integers(1, 4), f=st.integers(1, 6), t=st.integers(1, 10),
    param=st.integers(0, 12), num_masks=st.integers(0, 3), seed=st.integers(0, 50),
)
def test_time_masks_on_an_n_t_f_batch(n, f, t, param, num_masks, seed):
    x = np.random.default_rng(seed).random((n, t, f)) + 1  # (N, T, F): time is axis -2
    out = A.TimeMasking(param, num_masks=num_masks, axis=-2, generator=seed)(x)
    masked = out == 0
    np.testing.assert_array_equal(out[~masked], x[~masked])
    flags = masked[:, :, 0]
    assert np.all(masked == flags[:, :, None])
    assert np.all(flags.sum(axis=1) <= min(param, t) * num_masks)
    if num_masks == 1:
        assert_one_band_per_sample(flags, min(param, t))


def test_masks_are_reproducible_and_validate():
    x = np.ones((8, 5, 20), np.float32)
    np.testing.assert_array_equal(A.TimeMasking(6, generator=1)(x), A.TimeMasking(6, generator=1)(x))
    assert "TimeMasking(" in repr(A.TimeMasking(6))
    with pytest.raises(ValueError, match="FrequencyMasking: mask_param must be a non-negative int, got -3"):
        A.FrequencyMasking(-3)
    with pytest.raises(ValueError, match="TimeMasking: num_masks must be a non-negative int"):
        A.TimeMasking(3, num_masks=1.5)
    with pytest.raises(ValueError, match=r"TimeMasking: axis 3 must name a non-batch axis"):
        A.TimeMasking(3, axis=3)(x)
