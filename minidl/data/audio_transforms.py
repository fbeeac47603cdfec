"""Batch transforms for audio, on numpy or cupy batches (on the device when the batch is there).

Layouts (the first axis is always the batch):
    waveforms      (N, T)      one row of T samples per clip
    spectrograms   (N, F, T)   frequency rows, time columns, as torchaudio
Each transform acts along an ``axis`` you may change, so (N, T, F) spectrograms work too:
``TimeMasking(..., axis=-2)`` and ``FrequencyMasking(..., axis=-1)``.

As with the image transforms, every random decision is drawn per sample (a shift, an
SNR, a band) and applied to the whole batch at once with array operations; the
``generator=`` argument is explained in ``minidl.data.transforms``.
"""

from __future__ import annotations

import numpy

from minidl.backend import get_array_module
from minidl.data.transforms import RandomTransform, check_batch


def _data_axis(x, axis: int, op: str) -> int:
    """``axis`` as a non-negative index of a non-batch axis of ``x``."""
    if not -x.ndim <= axis < x.ndim or axis % x.ndim == 0:
        raise ValueError(f"{op}: axis {axis} must name a non-batch axis of a batch with shape {x.shape}")
    return axis % x.ndim


def _check_non_negative_int(value, op: str, name: str) -> int:
    if not isinstance(value, (int, numpy.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{op}: {name} must be a non-negative int, got {value!r}")
    return int(value)


class RandomTimeShift(RandomTransform):
    """Shift each clip in time by its own whole number of steps s[n], uniform in [-max_shift, max_shift]:

        y[n, ..., t] = x[n, ..., t - s[n]]

    mode 'roll': what falls off one end comes back at the other (numpy.roll per clip);
    mode 'zero': the steps shifted in are zeros.
    Done as a crop in time: pad ``max_shift`` steps at both ends (wrapped round, or
    zeros), then take each clip's window of T steps starting at max_shift - s[n].
    """

    MODES = ("roll", "zero")

    def __init__(self, max_shift: int, mode: str = "roll", axis: int = -1, generator=None):
        super().__init__(generator)
        self.max_shift = _check_non_negative_int(max_shift, "RandomTimeShift", "max_shift")
        if mode not in self.MODES:
            raise ValueError(f"RandomTimeShift: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.axis = axis

    def __call__(self, x):
        check_batch(x, "RandomTimeShift", min_ndim=2)
        xp = get_array_module(x)
        axis = _data_axis(x, self.axis, "RandomTimeShift")
        clips = xp.moveaxis(x, axis, -1)  # time last: (N, ..., T)
        n, length, m = clips.shape[0], clips.shape[-1], self.max_shift
        widths = ((0, 0),) * (clips.ndim - 1) + ((m, m),)
        padded = xp.pad(clips, widths, mode="wrap" if self.mode == "roll" else "constant")
        shift = self.integers(x, -m, m + 1, (n,))
        windows = xp.lib.stride_tricks.as_strided(  # windows[..., i, :] = padded[..., i:i+length]
            padded,
            shape=padded.shape[:-1] + (2 * m + 1, length),
            strides=padded.strides + padded.strides[-1:],
        )
        shifted = windows[xp.arange(n), ..., m - shift, :]  # (N, ..., T)
        return xp.moveaxis(shifted, -1, axis)


class AddGaussianNoise(RandomTransform):
    """Add white Gaussian noise at a signal-to-noise ratio of ``snr_db`` decibels, per clip:

        P_signal[n] = mean(x[n]**2)        P_noise[n] = P_signal[n] / 10**(snr[n] / 10)
        y[n] = x[n] + sqrt(P_noise[n]) * z,   z ~ N(0, 1)

    so 10 log10(P_signal / P_noise) = snr. ``snr_db`` is a number, or a pair (low, high)
    from which each clip draws its own SNR uniformly. A silent clip stays silent.
    """

    def __init__(self, snr_db, generator=None):
        super().__init__(generator)
        low, high = (snr_db, snr_db) if numpy.ndim(snr_db) == 0 else tuple(snr_db)
        if not (numpy.isfinite(low) and numpy.isfinite(high) and low <= high):
            raise ValueError(f"AddGaussianNoise: snr_db must be a finite number or a pair low <= high, got {snr_db!r}")
        self.snr_db = (float(low), float(high))

    def __call__(self, x):
        check_batch(x, "AddGaussianNoise", min_ndim=2)
        if x.dtype.kind != "f":
            raise TypeError(f"AddGaussianNoise: expected a floating-point batch, got {x.dtype}")
        xp = get_array_module(x)
        n = x.shape[0]
        low, high = self.snr_db
        snr = low + (high - low) * self.uniform(x, (n,)) if high > low else xp.full((n,), low, dtype=numpy.float32)
        signal_power = xp.mean(x * x, axis=tuple(range(1, x.ndim)))
        noise_power = signal_power / 10 ** (snr / 10)
        scale = xp.sqrt(noise_power).astype(x.dtype).reshape((n,) + (1,) * (x.ndim - 1))
        return x + scale * self.normal(x, x.shape, x.dtype)


class _BandMasking(RandomTransform):
    """Set ``num_masks`` random bands along ``axis`` to ``mask_value``, per sample (SpecAugment):

        width ~ uniform integer in [0, mask_param]      start ~ uniform integer in [0, size - width]
        y[n, ..., k, ...] = mask_value  where start <= k < start + width,  else x

    The band of each sample is found by comparing positions 0..size-1 with its start and
    end (broadcasting), so the whole batch is masked in one ``where``. A mask_param
    larger than the axis is capped at the axis length.
    """

    def __init__(self, mask_param: int, num_masks: int = 1, mask_value: float = 0.0, axis: int = -1, generator=None):
        super().__init__(generator)
        name = type(self).__name__
        self.mask_param = _check_non_negative_int(mask_param, name, "mask_param")
        self.num_masks = _check_non_negative_int(num_masks, name, "num_masks")
        self.mask_value = float(mask_value)
        self.axis = axis

    def band_mask(self, x, axis: int):
        """Boolean (N, size): True where sample n is masked along ``axis``."""
        xp = get_array_module(x)
        n, size = x.shape[0], x.shape[axis]
        max_width = min(self.mask_param, size)
        width = self.integers(x, 0, max_width + 1, (n, self.num_masks))
        start = self.integers(x, 0, (size + 1) - width, (n, self.num_masks))
        position = xp.arange(size)
        inside = (position >= start[..., None]) & (position < (start + width)[..., None])  # (N, masks, size)
        return inside.any(axis=1)

    def __call__(self, x):
        name = type(self).__name__
        check_batch(x, name, min_ndim=2)
        xp = get_array_module(x)
        axis = _data_axis(x, self.axis, name)
        shape = [1] * x.ndim
        shape[0], shape[axis] = x.shape[0], x.shape[axis]
        masked = self.band_mask(x, axis).reshape(shape)
        return xp.where(masked, x.dtype.type(self.mask_value), x)  # a scalar: nothing to upload


class TimeMasking(_BandMasking):
    """SpecAugment time masks: up to ``time_mask_param`` consecutive time steps set to ``mask_value``,
    ``num_masks`` times per sample. Time is axis -1 of (N, F, T); pass axis=-2 for (N, T, F).
    (torchaudio's TimeMasking with iid_masks=True: here masks always differ per sample.)"""

    def __init__(self, time_mask_param: int, num_masks: int = 1, mask_value: float = 0.0, axis: int = -1,
                 generator=None):
        super().__init__(time_mask_param, num_masks, mask_value, axis, generator)


class FrequencyMasking(_BandMasking):
    """SpecAugment frequency masks: up to ``freq_mask_param`` consecutive frequency bins set to
    ``mask_value``, ``num_masks`` times per sample. Frequency is axis -2 of (N, F, T); pass
    axis=-1 for (N, T, F). (torchaudio's FrequencyMasking with iid_masks=True.)"""

    def __init__(self, freq_mask_param: int, num_masks: int = 1, mask_value: float = 0.0, axis: int = -2,
                 generator=None):
        super().__init__(freq_mask_param, num_masks, mask_value, axis, generator)
