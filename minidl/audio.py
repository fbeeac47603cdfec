"""Audio features from scratch: frames, windows, STFT, mel filterbank, log-mel, MFCC.

Every function works on numpy or cupy arrays (``xp = get_array_module(x)``) and on a
batch: a signal is an array (..., T) and the leading axes are kept. Layouts follow
torch / torchaudio: ``stft`` gives (..., n_freqs, n_frames), mel features
(..., n_mels, n_frames), MFCCs (..., n_mfcc, n_frames); time is always the last axis.
scipy is used only to read WAV files. These are pre-processing functions on raw
arrays, not differentiable ops.
"""

from __future__ import annotations

import math
import warnings

import numpy

from minidl.backend import Device, array_module_for, get_array_module, to_numpy


# --------------------------------------------------------------------------- #
# Reading audio
# --------------------------------------------------------------------------- #
def load_wav(path):
    """``(waveform, sample_rate)`` from a PCM WAV file; waveform float32 in [-1, 1].

    int16 samples are divided by 32768 (int32 by 2**31; uint8 are centred on 128 then
    divided by 128); float files are returned as they are. Mono gives (T,), more
    channels (C, T). A corrupt or truncated file raises ``ValueError`` naming it.
    """
    from scipy.io import wavfile

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", wavfile.WavFileWarning)
        try:
            sample_rate, samples = wavfile.read(path)
        except Exception as error:  # scipy raises ValueError, struct.error, EOFError...
            raise ValueError(f"{path}: not a readable WAV file ({error})") from error
    problems = [str(w.message) for w in caught if "not understood" not in str(w.message)]
    if problems:  # e.g. "Reached EOF prematurely": a truncated file
        raise ValueError(f"{path}: damaged WAV file ({'; '.join(problems)})")
    if samples.shape[0] == 0:
        raise ValueError(f"{path}: expected audio samples, got an empty WAV file (a header and no samples)")
    scale = {numpy.dtype(numpy.int16): 2.0**15, numpy.dtype(numpy.int32): 2.0**31}
    if samples.dtype == numpy.uint8:
        waveform = (samples.astype(numpy.float32) - 128) / 128
    elif samples.dtype in scale:
        waveform = samples.astype(numpy.float32) / numpy.float32(scale[samples.dtype])
    elif samples.dtype.kind == "f":
        waveform = samples.astype(numpy.float32)
    else:
        raise ValueError(f"{path}: unsupported WAV sample type {samples.dtype}")
    return (waveform.T if waveform.ndim == 2 else waveform), int(sample_rate)


# --------------------------------------------------------------------------- #
# Frames and windows
# --------------------------------------------------------------------------- #
def frame(x, frame_length: int, hop_length: int):
    """Overlapping frames: (..., T) -> (..., n_frames, frame_length).

    frame m is ``x[..., m*hop_length : m*hop_length + frame_length]`` and
    n_frames = 1 + (T - frame_length) // hop_length (a tail too short for a whole
    frame is dropped), as ``torch.Tensor.unfold(-1, frame_length, hop_length)``.
    """
    xp = get_array_module(x)
    length = x.shape[-1]
    if frame_length < 1 or hop_length < 1:
        raise ValueError(f"frame: frame_length and hop_length must be >= 1, got {frame_length}, {hop_length}")
    if length < frame_length:
        raise ValueError(f"frame: the signal has {length} samples, fewer than frame_length={frame_length}")
    n_frames = 1 + (length - frame_length) // hop_length
    index = hop_length * xp.arange(n_frames)[:, None] + xp.arange(frame_length)[None, :]
    return x[..., index]


def _cosine_window(length: int, a0: float, periodic: bool, xp, dtype):
    """w[n] = a0 - (1 - a0) cos(2 pi n / D), D = length (periodic) or length - 1 (symmetric)."""
    if length == 1:
        return xp.ones(1, dtype=dtype)
    denominator = length if periodic else length - 1
    n = xp.arange(length, dtype=numpy.float64)
    return (a0 - (1 - a0) * xp.cos(2 * math.pi * n / denominator)).astype(dtype)


def hann_window(window_length: int, periodic: bool = True, dtype=numpy.float32, device="cpu"):
    """Hann: w[n] = 0.5 - 0.5 cos(2 pi n / D).

    periodic=True (the default, as torch.hann_window and scipy.signal.get_window):
    D = N, the window of an N+1 symmetric one without its last point, right for
    spectral analysis with overlapping frames. periodic=False: D = N - 1, symmetric,
    both ends zero (numpy.hanning), right for filter design.
    """
    return _cosine_window(window_length, 0.5, periodic, array_module_for(Device(device)), dtype)


def hamming_window(window_length: int, periodic: bool = True, dtype=numpy.float32, device="cpu"):
    """Hamming: w[n] = 0.54 - 0.46 cos(2 pi n / D); ``periodic`` as in ``hann_window``."""
    return _cosine_window(window_length, 0.54, periodic, array_module_for(Device(device)), dtype)


def _window_array(window, win_length: int, n_fft: int, xp, dtype):
    """The window as an array of n_fft samples: a name or an array of win_length,
    zero-padded on both sides to n_fft (as torch.stft)."""
    if isinstance(window, str):
        a0 = {"hann": 0.5, "hamming": 0.54, "rectangular": 1.0, "boxcar": 1.0}.get(window)
        if a0 is None:
            raise ValueError(f"stft: unknown window {window!r}; expected 'hann', 'hamming', "
                             "'rectangular' or an array")
        window = _cosine_window(win_length, a0, True, xp, dtype)
    window = xp.asarray(window, dtype=dtype)
    if window.shape != (win_length,):
        raise ValueError(f"stft: the window has shape {window.shape}, expected ({win_length},)")
    left = (n_fft - win_length) // 2
    return xp.pad(window, (left, n_fft - win_length - left))


# --------------------------------------------------------------------------- #
# Short-time Fourier transform and spectrograms
# --------------------------------------------------------------------------- #
def stft(x, n_fft: int = 400, hop_length: int | None = None, win_length: int | None = None,
         window="hann", center: bool = True, pad_mode: str = "reflect"):
    """Short-time Fourier transform: (..., T) -> complex (..., n_fft//2 + 1, n_frames).

        X[..., k, m] = sum_{n=0}^{n_fft-1} w[n] x[m*hop + n] exp(-2 pi i k n / n_fft)

    Unnormalised, as torch.stft and librosa (scipy.signal.stft divides this by sum(w)).
    hop_length defaults to n_fft // 4, win_length to n_fft; a shorter window is
    zero-padded on both sides to n_fft. ``window``: 'hann' (periodic, the default;
    torch's own default is rectangular), 'hamming', 'rectangular' or an array.
    center=True pads n_fft//2 samples on each side (``pad_mode`` 'reflect' or
    'constant' for zeros) so frame m is centred on sample m*hop;
    n_frames = 1 + T // hop then.
    """
    xp = get_array_module(x)
    x = x if x.dtype.kind == "f" else x.astype(numpy.float32)
    hop_length = n_fft // 4 if hop_length is None else hop_length
    win_length = n_fft if win_length is None else win_length
    if not 0 < win_length <= n_fft:
        raise ValueError(f"stft: win_length must be in 1..n_fft={n_fft}, got {win_length}")
    if center:
        if pad_mode == "reflect" and x.shape[-1] <= n_fft // 2:
            raise ValueError(f"stft: reflect padding needs more than n_fft//2={n_fft // 2} samples, "
                             f"got {x.shape[-1]}; use pad_mode='constant' or a smaller n_fft")
        x = xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)], mode=pad_mode)
    frames = frame(x, n_fft, hop_length) * _window_array(window, win_length, n_fft, xp, x.dtype)
    spectrum = xp.fft.rfft(frames, axis=-1).astype(xp.result_type(x.dtype, numpy.complex64))
    return xp.swapaxes(spectrum, -1, -2)


def spectrogram(x, n_fft: int = 400, hop_length: int | None = None, win_length: int | None = None,
                window="hann", center: bool = True, pad_mode: str = "reflect", power: float = 2.0):
    """|stft(x)| ** power: power=2 the power spectrogram, power=1 the magnitude one
    (as torchaudio.transforms.Spectrogram). Shape (..., n_fft//2 + 1, n_frames)."""
    spectrum = stft(x, n_fft, hop_length, win_length, window, center, pad_mode)
    if power == 2.0:
        return spectrum.real ** 2 + spectrum.imag ** 2
    return abs(spectrum) ** power


# --------------------------------------------------------------------------- #
# The mel scale
# --------------------------------------------------------------------------- #
_F_SP = 200.0 / 3  # Slaney: 66.67 Hz per mel below 1 kHz
_MIN_LOG_HZ, _MIN_LOG_MEL = 1000.0, 15.0  # where Slaney's scale turns logarithmic
_LOGSTEP = math.log(6.4) / 27  # Slaney: 27 mels per factor 6.4 above 1 kHz


def hz_to_mel(frequencies, htk: bool = False):
    """Hz -> mel.  HTK: m = 2595 log10(1 + f / 700).
    Slaney (htk=False, librosa's default): m = f / (200/3) below 1 kHz, then
    m = 15 + ln(f / 1000) / (ln(6.4) / 27) (linear to 1 kHz, logarithmic above)."""
    xp = get_array_module(frequencies)
    f = xp.asarray(frequencies, dtype=numpy.float64)
    if htk:
        return 2595.0 * xp.log10(1.0 + f / 700.0)
    logarithmic = _MIN_LOG_MEL + xp.log(xp.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return xp.where(f >= _MIN_LOG_HZ, logarithmic, f / _F_SP)


def mel_to_hz(mels, htk: bool = False):
    """mel -> Hz, the inverse of ``hz_to_mel``.  HTK: f = 700 (10**(m / 2595) - 1).
    Slaney: f = (200/3) m below 15 mel, else f = 1000 exp((ln(6.4) / 27) (m - 15))."""
    xp = get_array_module(mels)
    m = xp.asarray(mels, dtype=numpy.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    logarithmic = _MIN_LOG_HZ * xp.exp(_LOGSTEP * (xp.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return xp.where(m >= _MIN_LOG_MEL, logarithmic, _F_SP * m)


def mel_filterbank(n_mels: int = 128, n_fft: int = 400, sample_rate: int = 16000, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | None = "slaney",
                   dtype=numpy.float32, device="cpu"):
    """Triangular mel filters, (n_mels, n_fft//2 + 1): ``mel = filters @ spectrogram``.

    n_mels + 2 points equally spaced in mel between fmin and fmax (default
    sample_rate / 2) give the edges: filter i rises linearly from point i to 1 at
    point i+1 and falls to 0 at point i+2, evaluated at the FFT bin frequencies
    k * sample_rate / n_fft. ``htk`` picks the mel scale (see ``hz_to_mel``).
    norm='slaney' scales filter i by 2 / (f[i+2] - f[i]) so each has unit area
    (librosa's default); norm=None leaves peaks of 1 (torchaudio's default, with htk=True).
    """
    if norm not in ("slaney", None):
        raise ValueError(f"mel_filterbank: norm must be 'slaney' or None, got {norm!r}")
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"mel_filterbank: need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}")
    bins = numpy.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(numpy.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    filters = numpy.maximum(0, numpy.minimum(rising, falling))
    if norm == "slaney":
        filters *= 2.0 / (upper - lower)
    empty = numpy.flatnonzero(filters.max(axis=1) == 0)
    if empty.size:
        warnings.warn(f"mel_filterbank: filters {empty.tolist()} are empty (no FFT bin falls inside); "
                      "use fewer mels or a larger n_fft", stacklevel=2)
    return array_module_for(Device(device)).asarray(filters.astype(dtype))


def melspectrogram(x, sample_rate: int = 16000, n_fft: int = 400, hop_length: int | None = None,
                   win_length: int | None = None, window="hann", center: bool = True,
                   pad_mode: str = "reflect", power: float = 2.0, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | None = "slaney"):
    """mel_filterbank @ spectrogram(x): (..., T) -> (..., n_mels, n_frames)."""
    xp = get_array_module(x)
    spec = spectrogram(x, n_fft, hop_length, win_length, window, center, pad_mode, power)
    filters = mel_filterbank(n_mels, n_fft, sample_rate, fmin, fmax, htk, norm, dtype=spec.dtype)
    return xp.matmul(xp.asarray(filters), spec)


def power_to_db(spec, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0):
    """Decibels: 10 log10(max(S, amin) / ref), then (top_db) floored at max - top_db.

    The floor is taken per spectrogram, over the last two axes, so a batch gives the
    same values as its items one by one (librosa takes it over the whole array)."""
    xp = get_array_module(spec)
    db = 10.0 * xp.log10(xp.maximum(spec, amin)) - 10.0 * math.log10(max(amin, ref))
    if top_db is not None:
        peak = db.max(axis=tuple(range(-min(db.ndim, 2), 0)), keepdims=True)
        db = xp.maximum(db, peak - top_db)
    return db


def log_mel(x, sample_rate: int = 16000, *, amin: float = 1e-10, top_db: float | None = 80.0, **mel_options):
    """power_to_db(melspectrogram(x, sample_rate, **mel_options)): log-mel energies in dB,
    (..., n_mels, n_frames). ``mel_options`` are those of ``melspectrogram``."""
    return power_to_db(melspectrogram(x, sample_rate, **mel_options), amin=amin, top_db=top_db)


# --------------------------------------------------------------------------- #
# MFCC and deltas
# --------------------------------------------------------------------------- #
def dct_matrix(n_out: int, n_in: int, norm: str | None = "ortho", dtype=numpy.float64, device="cpu"):
    """The DCT-II as a matrix D (n_out, n_in), so ``D @ v`` is scipy.fft.dct(v, type=2)[:n_out]:

        D[k, n] = s_k cos(pi k (2n + 1) / (2 N)),  N = n_in,
        s_k = sqrt(1/N) for k = 0 and sqrt(2/N) otherwise (norm='ortho'), or 2 (norm=None).
    """
    if norm not in ("ortho", None):
        raise ValueError(f"dct_matrix: norm must be 'ortho' or None, got {norm!r}")
    k, n = numpy.arange(n_out)[:, None], numpy.arange(n_in)[None, :]
    matrix = numpy.cos(numpy.pi * k * (2 * n + 1) / (2 * n_in))
    if norm == "ortho":
        matrix *= numpy.where(k == 0, math.sqrt(1 / n_in), math.sqrt(2 / n_in))
    else:
        matrix *= 2
    return array_module_for(Device(device)).asarray(matrix.astype(dtype))


def mfcc(x, sample_rate: int = 16000, n_mfcc: int = 40, dct_norm: str | None = "ortho", **log_mel_options):
    """Mel-frequency cepstral coefficients: the DCT-II of the log-mel energies (dB)
    over the mel axis, first n_mfcc kept (as librosa and torchaudio.transforms.MFCC).
    (..., T) -> (..., n_mfcc, n_frames). ``log_mel_options`` go to ``log_mel``."""
    xp = get_array_module(x)
    energies = log_mel(x, sample_rate, **log_mel_options)
    n_mels = energies.shape[-2]
    if not 0 < n_mfcc <= n_mels:
        raise ValueError(f"mfcc: n_mfcc must be in 1..n_mels={n_mels}, got {n_mfcc}")
    return xp.matmul(xp.asarray(dct_matrix(n_mfcc, n_mels, dct_norm, energies.dtype)), energies)


def deltas(features, width: int = 9, order: int = 1):
    """Time derivatives by the regression formula, along the last axis:

        d[t] = sum_{n=1}^{N} n (c[t+n] - c[t-n]) / (2 sum_{n=1}^{N} n**2),  N = (width - 1) / 2

    with c repeated at its first and last frame beyond the ends (as HTK and
    torchaudio.functional.compute_deltas). order=2 applies it twice (delta-deltas).
    In the interior, order 1 equals librosa.feature.delta (which treats the edges
    differently and computes order 2 as one second-derivative fit)."""
    if width < 3 or width % 2 == 0:
        raise ValueError(f"deltas: width must be an odd number >= 3, got {width}")
    xp = get_array_module(features)
    half = (width - 1) // 2
    denominator = 2 * sum(n * n for n in range(1, half + 1))
    for _ in range(order):
        padded = xp.pad(features, [(0, 0)] * (features.ndim - 1) + [(half, half)], mode="edge")
        length = features.shape[-1]
        features = sum(n * (padded[..., half + n: half + n + length] - padded[..., half - n: half - n + length])
                       for n in range(1, half + 1)) / denominator
    return features


def add_deltas(features, order: int = 2, width: int = 9):
    """[c; delta c; delta-delta c ...] stacked on the feature axis: (..., F, T) -> (..., F*(order+1), T)."""
    xp = get_array_module(features)
    return xp.concatenate([features] + [deltas(features, width, k) for k in range(1, order + 1)], axis=-2)


# --------------------------------------------------------------------------- #
# Normalisation and fixed lengths
# --------------------------------------------------------------------------- #
def normalize_utterance(features, eps: float = 1e-5):
    """Per-utterance mean and variance normalisation (CMVN) over time, per feature:
    (c - mean_t c) / sqrt(var_t c + eps) along the last axis."""
    mean = features.mean(axis=-1, keepdims=True)
    var = features.var(axis=-1, keepdims=True)
    return (features - mean) / (var + eps) ** 0.5


class FeatureNormalizer:
    """Dataset normalisation: per-feature mean and std over every frame of every
    training utterance (``fit``), then ``(c - mean) / std`` for any utterance (``apply``).

    ``fit`` takes an array (..., F, T) or a list of (F, T_i) arrays (lengths may
    differ); ``mean`` and ``std`` are numpy float64 arrays (F,), easy to save.
    """

    def __init__(self, eps: float = 1e-5):
        self.eps = eps
        self.mean = self.std = None

    def fit(self, features) -> "FeatureNormalizer":
        items = features if isinstance(features, (list, tuple)) else [features]
        count, total, squares = 0, 0.0, 0.0
        for item in items:
            xp = get_array_module(item)
            item = xp.moveaxis(item, -2, 0).reshape(item.shape[-2], -1).astype(numpy.float64)
            count += item.shape[1]
            total = total + to_numpy(item.sum(axis=1))
            squares = squares + to_numpy((item * item).sum(axis=1))
        self.mean = total / count
        self.std = numpy.sqrt(numpy.maximum(squares / count - self.mean ** 2, 0) + self.eps)
        return self

    def apply(self, features):
        if self.mean is None:
            raise RuntimeError("FeatureNormalizer: call fit(training_features) before apply")
        if isinstance(features, (list, tuple)):
            return [self.apply(item) for item in features]
        xp = get_array_module(features)
        if features.shape[-2] != self.mean.shape[0]:
            raise ValueError(f"FeatureNormalizer: fitted on {self.mean.shape[0]} features, "
                             f"got an array of shape {features.shape} (features on axis -2)")
        mean = xp.asarray(self.mean[:, None], dtype=features.dtype)
        std = xp.asarray(self.std[:, None], dtype=features.dtype)
        return (features - mean) / std

    __call__ = apply


def pad_or_trim(features, n_frames: int, value: float = 0.0):
    """Exactly n_frames along the last axis: extra frames cut from the end, missing
    ones appended as ``value``. A list of (..., T_i) arrays gives one stacked array."""
    if isinstance(features, (list, tuple)):
        xp = get_array_module(*features)
        return xp.stack([pad_or_trim(item, n_frames, value) for item in features])
    xp = get_array_module(features)
    length = features.shape[-1]
    if length >= n_frames:
        return features[..., :n_frames]
    return xp.pad(features, [(0, 0)] * (features.ndim - 1) + [(0, n_frames - length)], constant_values=value)
