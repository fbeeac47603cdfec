# %% [markdown]
# # Lesson 09: from a waveform to the features a speech model reads: STFT, mel, log-mel, MFCC.
#
# A spoken digit is a few thousand numbers (air pressure, 8000 per second in FSDD). Speech
# models usually read, instead, a picture of which frequencies are present when, built in
# steps that each have a reason:
#
# | step | shape | what it is, and why |
# |---|---|---|
# | waveform | `(T,)` | what the microphone measured |
# | frames | `(n_frames, 200)` | 25 ms slices every 10 ms: speech barely changes in 25 ms |
# | $\times$ window | | taper each slice to 0 at its ends, or its edges smear every peak |
# | STFT | `(129, n_frames)`, complex | the FFT of every windowed frame ($n_\text{fft} = 256 \ge 200$ samples) |
# | power $\lvert X \rvert^2$ | | the energy at each frequency; the phase is dropped |
# | mel filterbank | `(40, 129)` | 40 triangular bands, narrow at low frequencies, wide at high ones, as our ears resolve pitch (and fewer numbers) |
# | log-mel | `(40, n_frames)` | decibels: loudness is heard logarithmically, and the log turns a volume change into an offset |
# | MFCC | `(13, n_frames)` | DCT of each log-mel column, first 13 kept: the smooth shape of the spectrum (the vocal tract), not its fine ripples (pitch) |
# | + deltas | `(39, n_frames)` | how each coefficient changes over time |
#
# This lesson runs each step on a real FSDD recording, prints the shapes, plots every stage,
# checks two steps against independent references (numpy's FFT of one frame; scipy's DCT),
# shows what 13 MFCCs keep of the log-mel spectrum, and times the whole pipeline on a batch.
# Every function is in `minidl.audio` and works on numpy or cupy arrays of any batch shape.
#
# Choices: 25 ms Hann windows every 10 ms and 40 mel bands (Slaney's mel scale with unit-area
# filters, librosa's defaults); 13 MFCCs plus deltas and delta-deltas, the classic 39 features
# of speech recognition. Layouts follow torchaudio: frequency before time, (..., n_freqs, n_frames).
#
# Data: FSDD under --data, else `$MINIDL_DATA`, else `./datasets` (`<root>/fsdd/recordings`). If it
# is not there, the lesson still runs, on a synthetic tone and chirp, and says so.
#
# Run:  python lessons/09_audio_features.py [--data /work/shared/datasets] [--digit 7] [--smoke] [--out DIR]

# %% [markdown]
# ## Setup: arguments, device, output folder

# %%
import time
from pathlib import Path

import matplotlib

import common  # noqa: E402  (lessons/common.py: the flags and set-up every lesson shares)

common.use_agg_unless_notebook()  # Agg (image files, no window) in a script; inline figures in a notebook
import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from minidl import audio, datasets  # noqa: E402
from minidl.backend import to_device, to_numpy  # noqa: E402

p = common.parser("Lesson 09: waveform -> STFT -> mel -> log-mel -> MFCC, step by step", out="runs/09_audio_features")
p.add_argument("--digit", type=int, default=7, choices=range(10), help="which spoken digit to follow (default: 7)")
args, _ = p.parse_known_args()
device = common.setup(args)  # seeds, checks the device, makes --out
out = Path(args.out)
lesson_start = time.perf_counter()

SAMPLE_RATE = 8000
WIN, HOP, N_FFT, N_MELS, N_MFCC = 200, 80, 256, 40, 13  # 25 ms, 10 ms, FFT size, mel bands, cepstra


# %% [markdown]
# ## 1. The waveform

# %%
try:
    digits = datasets.FSDD(root=args.data, split="test")
    index = int(np.flatnonzero(digits.targets == args.digit)[0])
    waveform, source = digits.waveforms[index], f"FSDD {Path(digits.files[index]).name}"
    print(f"\nFSDD found at {digits.folder}: {len(digits.targets)} test recordings")
except datasets.DatasetNotFoundError as missing:
    digits = None
    print("\n" + str(missing))
    print("\nSO THIS RUN USES A SYNTHETIC SIGNAL, not speech: 0.4 s of a 220 Hz tone with harmonics, then 0.4 s")
    print("of a chirp from 300 to 3000 Hz. Run with --data <root> for a real spoken digit.")
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8))
    chirp = np.sin(2 * np.pi * (300 * t + (3000 - 300) / (2 * 0.4) * t ** 2))
    noise = 0.01 * np.random.default_rng(args.seed).standard_normal(2 * t.size)
    waveform = (0.5 * np.concatenate([tone / np.abs(tone).max(), chirp]) + noise).astype(np.float32)
    source = "synthetic tone + chirp"

x = to_device(waveform, device)  # every minidl.audio function runs where its input lives
print(f"{source}: waveform {x.shape} {x.dtype}, {x.shape[0] / SAMPLE_RATE:.2f} s at {SAMPLE_RATE} Hz, "
      f"peak |x| {float(abs(x).max()):.2f}")


# %% [markdown]
# ## 2. Frames and the window

# %%
frames = audio.frame(x, WIN, HOP)  # (n_frames, 200), no padding: frame m starts at sample m * 80
window = audio.hann_window(WIN, device=device)
windowed = frames * window
print(f"frames: frame(x, {WIN}, {HOP}) -> {frames.shape} ({WIN / SAMPLE_RATE * 1e3:.0f} ms frames every "
      f"{HOP / SAMPLE_RATE * 1e3:.0f} ms); Hann window {window.shape}")

# Why a window: a rectangular cut makes the frame's ends jump, and that jump spreads energy
# over all frequencies ("leakage"). Compare the spectrum of the loudest frame both ways.
loudest = int(to_numpy((frames ** 2).sum(axis=1)).argmax())
frequencies = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
spectrum_db = {name: 20 * np.log10(np.abs(np.fft.rfft(to_numpy(f[loudest]), N_FFT)) + 1e-10)
               for name, f in (("rectangular", frames), ("Hann", windowed))}
fig = Figure(figsize=(11, 3.6))
wave_ax, frame_ax, spec_ax = fig.subplots(1, 3)
wave_ax.plot(np.arange(len(waveform)) / SAMPLE_RATE, to_numpy(x), linewidth=0.5)
wave_ax.axvspan(loudest * HOP / SAMPLE_RATE, (loudest * HOP + WIN) / SAMPLE_RATE, color="tab:orange", alpha=0.4)
wave_ax.set(xlabel="time (s)", title=f"{source}\n(orange: frame {loudest}, the loudest)")
frame_ax.plot(to_numpy(frames[loudest]), label="frame", linewidth=0.8)
frame_ax.plot(to_numpy(windowed[loudest]), label="frame x Hann window", linewidth=0.8)
frame_ax.plot(to_numpy(window) * float(abs(frames[loudest]).max()), "k:", label="window (scaled)")
frame_ax.set(xlabel="sample in frame", title="One 25 ms frame\n(200 samples)")
frame_ax.legend(fontsize=7)
for name, db in spectrum_db.items():
    spec_ax.plot(frequencies, db, label=name, linewidth=0.8)
spec_ax.set(xlabel="frequency (Hz)", ylabel="|FFT| (dB)", title="Its spectrum:\nthe window cuts the leakage")
spec_ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out / "1_frame_and_window.png", dpi=110)
print(f"saved {common.show(out / '1_frame_and_window.png')}")


# %% [markdown]
# ## 3. STFT and the power spectrogram
#
# `center=True` pads 128 samples on each side (reflected), so frame $m$ is centred on sample $80\,m$.
# With $x$ the padded signal and $w$ the 200-sample Hann window zero-padded to $n_\text{fft} = 256$,
#
# $$X_{k,m} = \sum_{n=0}^{255} w_n\, x_{80m + n}\, e^{-2\pi i k n / 256}, \qquad k = 0, \dots, 128, \qquad P_{k,m} = \lvert X_{k,m} \rvert^2 .$$

# %%
spectrum = audio.stft(x, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann")
power = spectrum.real ** 2 + spectrum.imag ** 2  # = audio.spectrogram(x, ..., power=2)
print(f"\nSTFT: stft(x, n_fft={N_FFT}, hop_length={HOP}, win_length={WIN}) -> {spectrum.shape} {spectrum.dtype} "
      f"(n_fft/2 + 1 = {N_FFT // 2 + 1} frequencies, 0 to {SAMPLE_RATE // 2} Hz every {SAMPLE_RATE / N_FFT:.2f} Hz; "
      f"1 + T // hop = {spectrum.shape[1]} frames)")

# The same thing by hand, for one frame: pad, cut, window (zero-padded to n_fft, centred), FFT.
m = spectrum.shape[1] // 2
padded = np.pad(to_numpy(x), N_FFT // 2, mode="reflect")
left = (N_FFT - WIN) // 2
by_hand = np.fft.rfft(padded[m * HOP: m * HOP + N_FFT] * np.pad(to_numpy(window), (left, N_FFT - WIN - left)))
print(f"check: numpy.fft.rfft of frame {m} by hand vs stft[:, {m}]: max |difference| "
      f"{np.abs(by_hand - to_numpy(spectrum[:, m])).max():.1e} (largest |X| {np.abs(by_hand).max():.1f})")
power_np = to_numpy(power)
print(f"power |X|^2: {power.shape}; from {power_np[power_np > 0].min():.1e} to {power_np.max():.1e}, "
      f"a range of {10 * np.log10(power_np.max() / power_np[power_np > 0].min()):.0f} dB: "
      "only a logarithm makes that visible")


# %% [markdown]
# ## 4. The mel filterbank
#
# Two mel scales are in use. HTK's: $m = 2595 \log_{10}(1 + f / 700)$. Slaney's (librosa's default, used here):
# linear to 1 kHz, logarithmic above,
#
# $$m = \begin{cases} f \,/\, (200/3) & f < 1000 \text{ Hz} \\ 15 + \ln(f / 1000) \,/\, (\ln(6.4) / 27) & f \ge 1000 \text{ Hz.} \end{cases}$$
#
# The mel energies are the filterbank matrix $F$ `(40, 129)` times the power spectrogram: $M = F P$.

# %%
filters = audio.mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE, device=device)  # (40, 129)
mel = filters @ power
filters_np = to_numpy(filters)
edges = audio.mel_to_hz(np.linspace(0.0, float(audio.hz_to_mel(SAMPLE_RATE / 2)), N_MELS + 2))  # Hz
print(f"\nmel filterbank: mel_filterbank({N_MELS}, {N_FFT}, {SAMPLE_RATE}) -> {filters.shape}; "
      f"mel = filters @ power -> {mel.shape}")
hz = (500.0, 1000.0, 2000.0, 4000.0)
print("mel scale, Slaney's (linear to 1 kHz, logarithmic above): "
      + ", ".join(f"{f:.0f} Hz = {float(audio.hz_to_mel(f)):.1f}" for f in hz) + " mel")
print("          HTK's (2595 log10(1 + f / 700)):                 "
      + ", ".join(f"{f:.0f} Hz = {float(audio.hz_to_mel(f, htk=True)):.0f}" for f in hz) + " mel")
ratios = [float(audio.hz_to_mel(4000.0, htk=k) / audio.hz_to_mel(1000.0, htk=k)) for k in (False, True)]
print("The two 'mel' are different units (1 kHz is 15 of Slaney's, 1000 of HTK's): compare their shapes, not their")
print(f"numbers. E.g. 4 kHz is {ratios[0]:.2f} x the mel of 1 kHz on Slaney's scale, {ratios[1]:.2f} x on HTK's. "
      "This lesson uses Slaney's.")
print(f"{N_MELS + 2} edges equally spaced in mel: the lowest filter rises from {edges[0]:.0f} Hz to its peak at "
      f"{edges[1]:.0f} Hz and ends at {edges[2]:.0f} Hz;\nthe highest runs {edges[-3]:.0f} - {edges[-2]:.0f} - "
      f"{edges[-1]:.0f} Hz, {(edges[-1] - edges[-3]) / (edges[2] - edges[0]):.0f} times as wide "
      f"(FFT bins are {SAMPLE_RATE / N_FFT:.2f} Hz apart)")
fig = Figure(figsize=(9, 3.4))
ax = fig.subplots()
for row in filters_np:
    ax.plot(frequencies, row, linewidth=0.8)
ax.set(xlabel="frequency (Hz)", ylabel="weight (unit area: Slaney norm)",
       title=f"{N_MELS} mel filters for n_fft = {N_FFT} at {SAMPLE_RATE} Hz: equally spaced in (Slaney's) mel, "
             "not in Hz")
fig.tight_layout()
fig.savefig(out / "2_mel_filterbank.png", dpi=110)
print(f"saved {common.show(out / '2_mel_filterbank.png')}")


# %% [markdown]
# ## 5. Log-mel, MFCC, deltas
#
# Log-mel in decibels, floored 80 dB below the peak: with $\ell = 10 \log_{10} \max(M, 10^{-10})$, $L = \max(\ell,\; \max \ell - 80)$.
# MFCCs: the orthonormal DCT-II of each column of $L$ ($N = 40$ bands), first 13 kept:
#
# $$c_k = s_k \sum_{n=0}^{N-1} L_n \cos\frac{\pi k (2n + 1)}{2N}, \qquad s_0 = \sqrt{1/N},\; s_k = \sqrt{2/N} \;(k > 0).$$
#
# Deltas by the regression formula over $\pm 4$ frames (width 9, edge frames repeated); delta-deltas apply it twice:
#
# $$d_t = \frac{\sum_{n=1}^{4} n\, (c_{t+n} - c_{t-n})}{2 \sum_{n=1}^{4} n^2}.$$

# %%
log_mel = audio.power_to_db(mel, top_db=80.0)  # 10 log10(mel), floored 80 dB below the peak
mfcc = audio.dct_matrix(N_MFCC, N_MELS, device=device, dtype=log_mel.dtype) @ log_mel  # = audio.mfcc(x, ...)
with_deltas = audio.add_deltas(mfcc, order=2)
reference = scipy.fft.dct(to_numpy(log_mel), type=2, norm="ortho", axis=0)[:N_MFCC]
same = audio.mfcc(x, SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, win_length=WIN, n_mels=N_MELS)
print(f"\nlog-mel: power_to_db(mel, top_db=80) -> {log_mel.shape}, {float(log_mel.min()):.1f} to "
      f"{float(log_mel.max()):.1f} dB")
print(f"MFCC: dct_matrix({N_MFCC}, {N_MELS}) @ log_mel -> {mfcc.shape}; vs scipy.fft.dct(type=2, norm='ortho'): "
      f"max |difference| {np.abs(to_numpy(mfcc) - reference).max():.1e}; vs audio.mfcc(x, ...) in one call: "
      f"{float(abs(same - mfcc).max()):.1e}")
print(f"deltas: add_deltas(mfcc, order=2) -> {with_deltas.shape} (c, delta c, delta-delta c, each {N_MFCC} rows)")
mfcc_np = to_numpy(mfcc)
print(f"c0 (the mean of the log-mel column, scaled: the loudness) runs {mfcc_np[0].min():.0f} to "
      f"{mfcc_np[0].max():.0f}; c1..c{N_MFCC - 1} stay within +-{np.abs(mfcc_np[1:]).max():.0f}: "
      "so the plot standardises each coefficient")

# What 13 MFCCs keep: invert the (orthonormal) DCT from the first 13 coefficients alone.
smooth = to_numpy(audio.dct_matrix(N_MFCC, N_MELS, device=device, dtype=mfcc.dtype).T @ mfcc)
kept = 1 - np.sum((to_numpy(log_mel) - smooth) ** 2) / np.sum((to_numpy(log_mel) - to_numpy(log_mel).mean()) ** 2)
print(f"the first {N_MFCC} of {N_MELS} cepstral coefficients rebuild the log-mel spectrogram to within "
      f"{np.sqrt(np.mean((to_numpy(log_mel) - smooth) ** 2)):.1f} dB RMS ({kept:.1%} of its variance): "
      "the envelope stays, the fine ripples go")

# Axes in seconds and Hz: frame m is centred on sample m * HOP (center=True), FFT bin k is k * 31.25 Hz,
# and mel band b is labelled with the frequency where its filter peaks (edges[b + 1]).
def time_extent(n_frames):
    return [-0.5 * HOP / SAMPLE_RATE, (n_frames - 0.5) * HOP / SAMPLE_RATE]


def label_mel_axis(ax, n_mels=N_MELS):
    bands = np.linspace(0, n_mels - 1, 5).round().astype(int)
    ax.set_yticks(bands, [f"{edges[b + 1]:.0f}" for b in bands])
    ax.set_ylabel("mel band peak (Hz)")


bin_hz = SAMPLE_RATE / N_FFT
panels = [  # (title, image (rows, frames), y extent, y label)
    (f"power spectrogram in dB ({power.shape[0]} FFT bins)", audio.power_to_db(power), [-bin_hz / 2,
     SAMPLE_RATE / 2 + bin_hz / 2], "frequency (Hz)"),
    (f"log-mel in dB ({N_MELS} bands)", log_mel, None, "mel"),
    (f"log-mel rebuilt from {N_MFCC} MFCCs", smooth, None, "mel"),
    (f"MFCC ({N_MFCC}), each coefficient standardised over time", audio.normalize_utterance(mfcc), None,
     "coefficient"),
    (f"MFCC + deltas + delta-deltas ({with_deltas.shape[0]}), standardised", audio.normalize_utterance(with_deltas),
     None, "coefficient"),
]
fig = Figure(figsize=(9, 2.2 * (1 + len(panels))), layout="constrained")
axes = fig.subplots(1 + len(panels), 1, sharex=True)
axes[0].plot(np.arange(len(waveform)) / SAMPLE_RATE, to_numpy(x), linewidth=0.6)
axes[0].set(title="waveform", ylabel="amplitude")
for ax, (name, image, y_extent, y_label) in zip(axes[1:], panels):
    image = to_numpy(image)
    y_extent = y_extent or [-0.5, image.shape[0] - 0.5]
    shown = ax.imshow(image, origin="lower", aspect="auto", cmap="magma",
                      extent=time_extent(image.shape[1]) + y_extent)
    if y_label == "mel":
        label_mel_axis(ax)
    else:
        ax.set_ylabel(y_label)
        ax.locator_params(axis="y", integer=True)
    ax.set_title(name)
    fig.colorbar(shown, ax=ax)
axes[-1].set_xlabel("time (s)")
fig.suptitle(f"{source}: each step of the pipeline")
fig.savefig(out / "3_features.png", dpi=110)
print(f"saved {common.show(out / '3_features.png')}")


# %% [markdown]
# ## 6. Ten digits, and the pipeline on a whole batch

# %%
if digits is not None:
    speaker = digits.speakers[index]
    picks = [int(np.flatnonzero((digits.targets == d) & (np.array(digits.speakers) == speaker))[0]) for d in range(10)]
    fig = Figure(figsize=(15, 3.4), layout="constrained")
    for n, (ax, i) in enumerate(zip(fig.subplots(1, 10, sharey=True), picks)):
        features = audio.log_mel(to_device(digits.waveforms[i], device), SAMPLE_RATE, n_fft=N_FFT,
                                 hop_length=HOP, win_length=WIN, n_mels=N_MELS)
        ax.imshow(to_numpy(features), origin="lower", aspect="auto", cmap="magma",
                  extent=time_extent(features.shape[1]) + [-0.5, N_MELS - 0.5])
        ax.set_title(f"'{digits.targets[i]}'", fontsize=9)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.tick_params(labelsize=7)
        if n == 0:
            label_mel_axis(ax)
    fig.suptitle(f"Log-mel spectrograms of the ten digits, speaker {speaker}: what a spoken-digit model reads")
    fig.savefig(out / "4_ten_digits_log_mel.png", dpi=110)
    print(f"\nsaved {common.show(out / '4_ten_digits_log_mel.png')}")

    # All test recordings at once: pad or trim to 1 s, then one call computes every MFCC (no loop).
    count = 20 if args.smoke else len(digits.waveforms)
    batch = to_device(audio.pad_or_trim(digits.waveforms[:count], SAMPLE_RATE), device)
    with common.Stopwatch(device) as watch:
        features = audio.add_deltas(audio.mfcc(batch, SAMPLE_RATE, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP,
                                               win_length=WIN, n_mels=N_MELS))
    print(f"batch: {count} recordings padded/trimmed to {batch.shape} -> MFCC + deltas {features.shape} "
          f"in {watch.seconds * 1e3:.0f} ms on {device}")

# %% [markdown]
# ## Measurements for the results table

# %%
common.synchronize(device)
print(f"\nlesson 09 | {source} | wall time {time.perf_counter() - lesson_start:.1f} s | "
      f"peak memory {common.peak_memory(device)} | device {device}")
