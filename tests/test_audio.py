"""minidl.audio against scipy, closed-form formulas and small hand-computed cases."""

import math

import numpy as np
import pytest
import scipy.fft
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st
from scipy.io import wavfile

from minidl import audio
from minidl.backend import to_device, to_numpy

batch_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


def signal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------- #
# framing and windows
# --------------------------------------------------------------------------- #
@given(batch=batch_shapes, length=st.integers(1, 40), frame_length=st.integers(1, 12), hop=st.integers(1, 7))
def test_frame_matches_slicing(batch, length, frame_length, hop):
    x = signal(batch + (length,))
    if length < frame_length:
        with pytest.raises(ValueError, match="fewer than frame_length"):
            audio.frame(x, frame_length, hop)
        return
    frames = audio.frame(x, frame_length, hop)
    starts = range(0, length - frame_length + 1, hop)
    expected = np.stack([x[..., s:s + frame_length] for s in starts], axis=-2)
    np.testing.assert_array_equal(frames, expected)


def test_frame_on_device(device):
    x = to_device(np.arange(10.0), device)
    np.testing.assert_array_equal(to_numpy(audio.frame(x, 4, 3)), [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_windows_match_scipy(n):
    for name, ours in (("hann", audio.hann_window), ("hamming", audio.hamming_window)):
        np.testing.assert_allclose(ours(n, dtype=np.float64), scipy.signal.get_window(name, n, fftbins=True),
                                   atol=1e-12)
        np.testing.assert_allclose(ours(n, periodic=False, dtype=np.float64),
                                   scipy.signal.get_window(name, n, fftbins=False), atol=1e-12)
    np.testing.assert_allclose(audio.hann_window(n, periodic=False, dtype=np.float64), np.hanning(n), atol=1e-12)


# --------------------------------------------------------------------------- #
# STFT
# --------------------------------------------------------------------------- #
def reference_stft(x, n_fft, hop, window_n_fft, center, pad_mode):
    """The DFT sum written out, one frame at a time (1-D x)."""
    if center:
        x = np.pad(x, n_fft // 2, mode=pad_mode)
    n_frames = 1 + (len(x) - n_fft) // hop
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    basis = np.exp(-2j * np.pi * k * n / n_fft)
    return np.stack([basis @ (window_n_fft * x[m * hop: m * hop + n_fft]) for m in range(n_frames)], axis=1)


@given(batch=batch_shapes, length=st.integers(32, 90), n_fft=st.sampled_from([8, 16, 32]), hop=st.integers(1, 9))
def test_stft_matches_scipy_up_to_its_scaling(batch, length, n_fft, hop):
    x = signal(batch + (length,))
    ours = audio.stft(x, n_fft, hop, center=True, pad_mode="constant")
    window = scipy.signal.get_window("hann", n_fft)
    _, _, theirs = scipy.signal.stft(x, window=window, nperseg=n_fft, noverlap=n_fft - hop,
                                     boundary="zeros", padded=True)
    assert ours.shape == batch + (n_fft // 2 + 1, 1 + length // hop)
    assert theirs.shape[-1] >= ours.shape[-1]
    np.testing.assert_allclose(ours / window.sum(), theirs[..., : ours.shape[-1]], atol=1e-10)


@pytest.mark.parametrize("center,pad_mode", [(True, "reflect"), (True, "constant"), (False, "reflect")])
@pytest.mark.parametrize("window", ["hann", "hamming", "rectangular"])
def test_stft_matches_the_written_out_sum(device, center, pad_mode, window):
    n_fft, win_length, hop = 16, 10, 5
    x = signal(57)
    short = {"hann": scipy.signal.get_window("hann", win_length), "rectangular": np.ones(win_length),
             "hamming": scipy.signal.get_window("hamming", win_length)}[window]
    padded = np.pad(short, (3, 3))  # centred in n_fft, as torch.stft
    expected = reference_stft(x, n_fft, hop, padded, center, pad_mode)
    ours = audio.stft(to_device(x, device), n_fft, hop, win_length, window, center, pad_mode)
    np.testing.assert_allclose(to_numpy(ours), expected, atol=1e-10)
    custom = audio.stft(x, n_fft, hop, win_length, short, center, pad_mode)  # an array window
    np.testing.assert_allclose(custom, expected, atol=1e-10)


def test_stft_dtypes_defaults_and_errors():
    x = signal(400).astype(np.float32)
    spec = audio.stft(x)  # n_fft 400, hop 100
    assert spec.dtype == np.complex64 and spec.shape == (201, 5)
    assert audio.stft(x.astype(np.float64), 64).dtype == np.complex128
    with pytest.raises(ValueError, match="reflect padding needs more than"):
        audio.stft(x[:8], 64)
    with pytest.raises(ValueError, match="win_length must be in"):
        audio.stft(x, 64, win_length=65)
    with pytest.raises(ValueError, match="unknown window 'kaiser'"):
        audio.stft(x, 64, window="kaiser")
    with pytest.raises(ValueError, match=r"window has shape \(3,\), expected \(64,\)"):
        audio.stft(x, 64, window=np.ones(3))


def test_spectrograms_power_and_magnitude(device):
    x = to_device(signal((2, 100)), device)
    spec = to_numpy(audio.stft(x, 32, 8))
    np.testing.assert_allclose(to_numpy(audio.spectrogram(x, 32, 8)), np.abs(spec) ** 2, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(audio.spectrogram(x, 32, 8, power=1.0)), np.abs(spec), rtol=1e-10)


def test_stft_of_a_pure_tone_peaks_at_its_bin():
    n_fft, sample_rate = 64, 8000
    tone = np.sin(2 * np.pi * (10 * sample_rate / n_fft) * np.arange(1024) / sample_rate)
    power = audio.spectrogram(tone, n_fft, 16, center=False)
    assert (power.argmax(axis=0) == 10).all()


# --------------------------------------------------------------------------- #
# mel scale and filterbank
# --------------------------------------------------------------------------- #
def test_mel_scales_closed_form():
    f = np.array([0.0, 440.0, 1000.0, 4000.0])
    np.testing.assert_allclose(audio.hz_to_mel(f, htk=True), 2595 * np.log10(1 + f / 700))
    # Slaney: 3 mels per 200 Hz to 1 kHz (15 mels), then 27 mels per factor 6.4
    np.testing.assert_allclose(audio.hz_to_mel(np.array([0.0, 200.0, 500.0, 1000.0, 6400.0])), [0, 3, 7.5, 15, 42])
    np.testing.assert_allclose(audio.hz_to_mel(4000.0), 15 + 27 * math.log(4) / math.log(6.4))
    np.testing.assert_allclose(audio.mel_to_hz(np.array([3.0, 15.0, 42.0])), [200, 1000, 6400])


@given(f=st.floats(0, 20000), htk=st.booleans())
def test_mel_round_trip(f, htk):
    assert audio.mel_to_hz(audio.hz_to_mel(f, htk), htk) == pytest.approx(f, rel=1e-9, abs=1e-9)


def reference_filterbank(n_mels, n_fft, sample_rate, fmin, fmax, htk, norm):
    """librosa's construction, one filter and one bin at a time."""
    if htk:
        to_mel, to_hz = (lambda f: 2595 * math.log10(1 + f / 700)), (lambda m: 700 * (10 ** (m / 2595) - 1))
    else:
        def to_mel(f):
            return f / (200 / 3) if f < 1000 else 15 + math.log(f / 1000) * 27 / math.log(6.4)

        def to_hz(m):
            return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)
    lo, hi = to_mel(fmin), to_mel(fmax)
    edges = [to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    filters = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        a, b, c = edges[i], edges[i + 1], edges[i + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sample_rate / n_fft
            filters[i, k] = max(0.0, min((f - a) / (b - a), (c - f) / (c - b)))
        if norm == "slaney":
            filters[i] *= 2 / (c - a)
    return filters


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
@pytest.mark.parametrize("n_mels,n_fft,sample_rate,fmin,fmax",
                         [(10, 256, 8000, 0.0, None), (40, 512, 16000, 20.0, 7600.0)])
def test_mel_filterbank_matches_the_formula(htk, norm, n_mels, n_fft, sample_rate, fmin, fmax):
    ours = audio.mel_filterbank(n_mels, n_fft, sample_rate, fmin, fmax, htk=htk, norm=norm, dtype=np.float64)
    fmax_hz = sample_rate / 2 if fmax is None else fmax
    expected = reference_filterbank(n_mels, n_fft, sample_rate, fmin, fmax_hz, htk, norm)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-14)


def test_mel_filterbank_errors_and_empty_filters():
    with pytest.raises(ValueError, match="norm must be 'slaney' or None"):
        audio.mel_filterbank(10, 256, 8000, norm="area")
    with pytest.raises(ValueError, match="fmin < fmax <= sample_rate/2"):
        audio.mel_filterbank(10, 256, 8000, fmax=5000)
    with pytest.warns(UserWarning, match="are empty"):
        audio.mel_filterbank(128, 64, 8000)


def test_melspectrogram_is_filterbank_times_power(device):
    x = signal((2, 800))
    ours = to_numpy(audio.melspectrogram(to_device(x, device), 8000, n_fft=128, hop_length=40, n_mels=20))
    expected = audio.mel_filterbank(20, 128, 8000, dtype=np.float64) @ audio.spectrogram(x, 128, 40)
    assert ours.shape == (2, 20, 1 + 800 // 40)
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


# --------------------------------------------------------------------------- #
# decibels, DCT, MFCC
# --------------------------------------------------------------------------- #
def test_power_to_db_hand_values():
    np.testing.assert_allclose(audio.power_to_db(np.array([[1.0, 10.0, 100.0]]), top_db=None), [[0, 10, 20]])
    np.testing.assert_allclose(audio.power_to_db(np.array([[1e-12, 1.0]])), [[-80, 0]])  # floored at max - 80 dB
    np.testing.assert_allclose(audio.power_to_db(np.array([[1e-12, 1.0]]), top_db=None), [[-100, 0]])  # amin
    np.testing.assert_allclose(audio.power_to_db(np.array([[4.0]]), ref=2.0), [[10 * math.log10(2)]])
    batch = np.array([[[1.0, 1e-9]], [[1e-3, 1e-12]]])  # the floor is per spectrogram
    np.testing.assert_allclose(audio.power_to_db(batch, top_db=50), [[[0, -50]], [[-30, -80]]])


@pytest.mark.parametrize("norm", ["ortho", None])
@pytest.mark.parametrize("n_out,n_in", [(1, 1), (13, 40), (5, 5)])
def test_dct_matrix_matches_scipy(norm, n_out, n_in):
    v = signal((3, n_in))
    expected = scipy.fft.dct(v, type=2, norm=norm, axis=-1)[:, :n_out]
    np.testing.assert_allclose(v @ audio.dct_matrix(n_out, n_in, norm).T, expected, atol=1e-12)


def test_mfcc_is_the_dct_of_log_mel(device):
    x = signal((2, 1600))
    options = dict(n_fft=256, hop_length=80, n_mels=40)
    ours = to_numpy(audio.mfcc(to_device(x, device), 8000, n_mfcc=13, **options))
    log_mel = audio.log_mel(x, 8000, **options)
    expected = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-2)[..., :13, :]
    assert ours.shape == (2, 13, 21)
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    with pytest.raises(ValueError, match="n_mfcc must be in 1..n_mels=40"):
        audio.mfcc(x, 8000, n_mfcc=41, **options)


def test_mfcc_float32_in_float32_out():
    out = audio.mfcc(signal(800).astype(np.float32), 8000, n_mfcc=13, n_fft=128, n_mels=26)
    assert out.dtype == np.float32 and out.shape == (13, 1 + 800 // 32)


# --------------------------------------------------------------------------- #
# deltas, normalisation, fixed lengths
# --------------------------------------------------------------------------- #
def reference_deltas(c, width):
    half = (width - 1) // 2
    out = np.zeros_like(c)
    length = c.shape[-1]
    for t in range(length):
        for n in range(1, half + 1):
            out[..., t] += n * (c[..., min(t + n, length - 1)] - c[..., max(t - n, 0)])
    return out / (2 * sum(n * n for n in range(1, half + 1)))


@given(batch=batch_shapes, length=st.integers(1, 20), width=st.sampled_from([3, 5, 9]))
def test_deltas_match_the_regression_formula(batch, length, width):
    c = signal(batch + (4, length))
    np.testing.assert_allclose(audio.deltas(c, width), reference_deltas(c, width), atol=1e-12)
    twice = reference_deltas(reference_deltas(c, width), width)
    np.testing.assert_allclose(audio.deltas(c, width, order=2), twice, atol=1e-12)


def test_deltas_hand_case_and_stacking(device):
    ramp = to_device(np.arange(12.0)[None, :], device)  # slope 1: delta is 1 away from the edges
    d = to_numpy(audio.deltas(ramp, width=5))
    np.testing.assert_allclose(d[0, 2:-2], 1.0)
    np.testing.assert_allclose(d[0, 0], (1 * (1 - 0) + 2 * (2 - 0)) / 10)  # edges repeat c[0]
    stacked = audio.add_deltas(to_device(signal((2, 13, 30)), device), order=2)
    assert stacked.shape == (2, 39, 30)
    with pytest.raises(ValueError, match="odd number >= 3"):
        audio.deltas(np.zeros((2, 5)), width=4)


def test_normalize_utterance(device):
    x = to_device(signal((3, 5, 50)) * 4 + 7, device)
    y = to_numpy(audio.normalize_utterance(x))
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-10)
    np.testing.assert_allclose(y.var(axis=-1), 1, atol=1e-5)


def test_feature_normalizer_on_utterances_of_different_lengths(device):
    utterances = [signal((6, n), seed=n) * 3 + np.arange(6)[:, None] for n in (5, 17, 40)]
    normalizer = audio.FeatureNormalizer(eps=0).fit([to_device(u, device) for u in utterances])
    frames = np.concatenate(utterances, axis=1)
    np.testing.assert_allclose(normalizer.mean, frames.mean(axis=1))
    np.testing.assert_allclose(normalizer.std, frames.std(axis=1))
    out = normalizer([to_device(u, device) for u in utterances])
    np.testing.assert_allclose(np.concatenate([to_numpy(o) for o in out], axis=1).mean(axis=1), 0, atol=1e-10)
    batch = audio.FeatureNormalizer(eps=0).fit(signal((4, 6, 9)))  # an array (N, F, T) works too
    assert batch.mean.shape == (6,)
    with pytest.raises(ValueError, match="fitted on 6 features"):
        normalizer(np.zeros((5, 10)))
    with pytest.raises(RuntimeError, match="call fit"):
        audio.FeatureNormalizer()(np.zeros((5, 10)))


def test_pad_or_trim(device):
    x = to_device(np.arange(6.0).reshape(2, 3), device)
    np.testing.assert_array_equal(to_numpy(audio.pad_or_trim(x, 5, value=-1)), [[0, 1, 2, -1, -1], [3, 4, 5, -1, -1]])
    np.testing.assert_array_equal(to_numpy(audio.pad_or_trim(x, 2)), [[0, 1], [3, 4]])
    stacked = audio.pad_or_trim([np.ones((4, 3)), np.ones((4, 9))], 6)
    assert stacked.shape == (2, 4, 6) and stacked[0, :, 3:].sum() == 0 and stacked[1].sum() == 24


# --------------------------------------------------------------------------- #
# WAV files
# --------------------------------------------------------------------------- #
def test_load_wav_scales_integer_pcm(tmp_path):
    samples = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    wavfile.write(tmp_path / "a.wav", 8000, samples)
    waveform, rate = audio.load_wav(tmp_path / "a.wav")
    assert rate == 8000 and waveform.dtype == np.float32
    np.testing.assert_allclose(waveform, samples / 32768)
    wavfile.write(tmp_path / "b.wav", 8000, np.array([0, 128, 255], dtype=np.uint8))
    np.testing.assert_allclose(audio.load_wav(tmp_path / "b.wav")[0], [-1, 0, 127 / 128])
    wavfile.write(tmp_path / "c.wav", 8000, np.zeros((10, 2), dtype=np.int16))
    assert audio.load_wav(tmp_path / "c.wav")[0].shape == (2, 10)  # channels first


def test_load_wav_names_a_damaged_file(tmp_path):
    wavfile.write(tmp_path / "good.wav", 8000, np.ones(1000, dtype=np.int16))
    data = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match=r"cut\.wav: damaged WAV file"):
        audio.load_wav(tmp_path / "cut.wav")
    with pytest.raises(ValueError, match=r"junk\.wav: not a readable WAV file"):
        audio.load_wav(tmp_path / "junk.wav")


def test_load_wav_names_an_empty_file(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.wav: not a readable WAV file"):
        audio.load_wav(tmp_path / "zero.wav")
    wavfile.write(tmp_path / "header_only.wav", 8000, np.zeros(0, dtype=np.int16))
    with pytest.raises(ValueError, match=r"header_only\.wav: expected audio samples, got an empty WAV file"):
        audio.load_wav(tmp_path / "header_only.wav")
