"""What every lesson shares: its command-line flags, seeding, the output folder, and
honest measurements of time and peak memory. The training loops stay in the lessons,
where a learner can read them."""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import minidl

REPO = Path(__file__).resolve().parents[1]  # the repository root: relative default paths mean folders here
LESSON_ARGS_ENV = "MINIDL_LESSON_ARGS"  # a lesson's flags when it runs as a notebook, e.g. "--smoke --out /tmp/x"


# --------------------------------------------------------------------------- #
# Running as a script or as a notebook (jupytext opens every lesson as one)
# --------------------------------------------------------------------------- #
def in_notebook() -> bool:
    """True inside a Jupyter (IPython) kernel, False in a plain ``python lessons/NN_x.py`` run."""
    return "ipykernel" in sys.modules


def use_agg_unless_notebook() -> None:
    """Draw to files with matplotlib's Agg backend (no window) in a script; in a notebook,
    leave the kernel's inline backend alone."""
    if not in_notebook():
        import matplotlib

        matplotlib.use("Agg")


def show(path):
    """Display a saved figure (a PNG file) inline in a notebook; in a script, do nothing.
    Returns ``path``, so ``print(f"saved {common.show(path)}")`` works in both."""
    if in_notebook():
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    return path


def _resolve(path):
    """A relative path as a folder of the repository root (absolute paths are kept)."""
    return str(path if Path(path).is_absolute() else REPO / path)


class LessonParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` for lessons that also works in a notebook.

    * In a notebook the kernel's ``sys.argv`` is not the lesson's: the flags come from
      ``$MINIDL_LESSON_ARGS`` instead (none when it is unset).
    * Unknown flags are ignored (``parse_known_args``), so a lesson's cells run anywhere.
    * The defaults of ``--out`` and ``--data`` are folders of the repository root
      (``runs/...``, ``datasets``), wherever the lesson is run or the notebook opened;
      paths given on the command line keep their usual meaning (relative to the
      current directory).
    """

    def parse_known_args(self, args=None, namespace=None):
        if args is None and in_notebook():
            args = shlex.split(os.environ.get(LESSON_ARGS_ENV, ""))
        parsed, unknown = super().parse_known_args(args, namespace)
        for name in ("out", "data"):
            given = getattr(parsed, name, None)
            if given is not None and given == self.get_default(name) and not Path(given).is_absolute():
                setattr(parsed, name, _resolve(given))
        if getattr(parsed, "data", False) is None and not os.environ.get("MINIDL_DATA"):
            parsed.data = _resolve("datasets")  # what ./datasets means when run from the repository root
        return parsed, unknown


def parser(description: str, epochs: int | None = None, batch_size: int | None = None, out: str = "runs/lesson"):
    """The flags every lesson takes; a lesson adds its own to the returned parser."""
    p = LessonParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help=f"passes over the training set (default: {epochs})")
    if batch_size is not None:
        p.add_argument("--batch-size", type=int, default=batch_size, help=f"samples per step (default: {batch_size})")
    p.add_argument("--data", default=None, help="data root (default: $MINIDL_DATA, else ./datasets)")
    p.add_argument("--out", default=out, help=f"where plots and checkpoints go (default: {out})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--smoke", action="store_true", help="a tiny run that finishes in seconds (used by the tests)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads for numpy's matrix products (default 1: the same numbers and a steady time "
                        "on a shared machine; 0 keeps the library's own choice)")
    return p


def setup(args, tf32: bool = False) -> minidl.Device:
    """Seed everything, check the device, make the output folder; returns the device.

    ``tf32=True``: on a GPU, let float32 matrix products (and so convolutions) run in TF32, as
    ``torch.backends.cuda.matmul.allow_tf32 = True`` does: inputs rounded to 10 mantissa bits,
    float32 sums, several times the float32 speed on tensor cores. The CPU ignores it."""
    device = minidl.Device(args.device)
    minidl.backend.check_device_usable(device)
    if tf32 and device.type == "cuda":
        minidl.cuda.matmul.allow_tf32 = True
        print("float32 matmuls and convolutions run in TF32 on the GPU (minidl.cuda.matmul.allow_tf32 = True)")
    minidl.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    threads = limit_blas_threads(getattr(args, "threads", 1))
    print(f"minidl {minidl.__version__} | device {device} | seed {args.seed} | BLAS threads {threads} | "
          f"output {args.out}", flush=True)
    return device


_blas_limit = None  # threadpoolctl's limiter: it holds the limit while it lives


def limit_blas_threads(threads: int):
    """Fix how many threads numpy's BLAS uses (threadpoolctl, the `lessons` extra). With the default
    threads, a lesson's time and even its result moved from run to run on a busy 2-core machine
    (lesson 07: 15 s or 124 s). Returns what was set, as text."""
    global _blas_limit
    if threads <= 0:
        return "library default"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "library default (pip install -e '.[lessons]' to fix them)"
    _blas_limit = threadpool_limits(limits=threads, user_api="blas")
    return str(threads)


def synchronize(device) -> None:
    """Wait for the GPU before reading a clock (its work is queued, not done, when a call returns)."""
    if minidl.Device(device).type == "cuda":
        minidl.cuda.synchronize()


class Stopwatch:
    """Wall time of a block, with the device synchronised at both ends."""

    def __init__(self, device):
        self.device = device
        self.seconds = 0.0

    def __enter__(self):
        synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        self.seconds += time.perf_counter() - self.start
        return False


def peak_memory(device) -> str:
    """Peak memory as text: the GPU memory pool's size on cuda, the process' peak RSS on cpu."""
    if minidl.Device(device).type == "cuda":
        return f"{minidl.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return f"{peak / (2**20 if sys.platform == 'darwin' else 2**10):.0f} MiB host RSS"


# --------------------------------------------------------------------------- #
# Evaluating a classifier, reporting it, and checking its checkpoint
# --------------------------------------------------------------------------- #
def evaluate(model, loader):
    """Mean cross-entropy, predicted classes and true classes over a whole loader.

    Each batch is ``(*inputs, target)`` and the model is called as ``model(*inputs)``,
    so ``(x, y)`` and ``(x, lengths, y)`` batches both work. Runs in eval mode (dropout
    off, batch-norm running statistics) without recording a graph; predictions and
    targets come back as host numpy arrays. Everything stays on the device until the
    end (one copy to the host, not three waits per batch).
    """
    import minidl.nn.functional as F
    from minidl.backend import get_array_module, to_numpy

    was_training = model.training
    model.eval()
    total, predicted, targets = 0.0, [], []
    with minidl.no_grad():
        for *inputs, target in loader:
            logits = model(*inputs)
            total = total + F.cross_entropy(logits, target, reduction="sum")
            predicted.append(logits.argmax(dim=1).data)
            targets.append(target.data)
    model.train(was_training)
    xp = get_array_module(*targets)
    targets = to_numpy(xp.concatenate(targets))
    return float(total) / len(targets), to_numpy(xp.concatenate(predicted)), targets


def report(predicted, targets, class_names, path, title: str = "confusion matrix") -> float:
    """Print accuracy and per-class precision, recall and F1; save the confusion matrix
    as a PNG at ``path``. Returns the accuracy."""
    from minidl import metrics, plot

    matrix = metrics.confusion_matrix(predicted, targets, len(class_names))
    print(metrics.classification_report(matrix, class_names))
    print("confusion matrix (rows: true class, columns: predicted):")
    print(matrix)
    print(f"saved {show(plot.confusion(matrix, class_names, path, title=title))}")
    return metrics.accuracy(predicted, targets)


def checkpoint_roundtrip(model, make_model, loader, path, extra=None) -> float:
    """Save ``model`` (plus ``extra``, e.g. the feature statistics) to ``path``, load the
    file into a fresh ``make_model()`` and evaluate that copy on ``loader``: it must
    predict exactly what the original predicts. Returns the reloaded model's accuracy."""
    from minidl import metrics

    _, before, targets = evaluate(model, loader)
    minidl.save({"model": model.state_dict(), **(extra or {})}, path)
    device = next(iter(model.parameters())).device
    checkpoint = minidl.load(path, map_location=device)
    fresh = make_model()
    fresh.load_state_dict(checkpoint["model"])
    _, after, _ = evaluate(fresh, loader)
    size = os.path.getsize(path) / 2**20
    same = bool((before == after).all())
    print(f"checkpoint {path} ({size:.1f} MiB) reloaded: test accuracy {metrics.accuracy(after, targets):.2%}, "
          f"{'the same predictions as before saving' if same else 'DIFFERENT predictions from before saving'}")
    if not same:
        raise RuntimeError(f"checkpoint_roundtrip: the model reloaded from {path} predicts differently "
                           f"on {int((before != after).sum())} of {len(targets)} samples")
    return metrics.accuracy(after, targets)


# --------------------------------------------------------------------------- #
# Spoken digits (lessons 10 and 11)
# --------------------------------------------------------------------------- #
def spoken_digits(args, device, n_fft: int = 256, hop_length: int = 128, n_mels: int = 40,
                  max_seconds: float = 1.2):
    """FSDD as normalised log-mel frames, for lessons 10 and 11, computed once and kept on ``device``.

    Returns a namespace with ``train_x``, ``test_x`` (N, n_mels, n_frames) float32 (the
    torchaudio layout: bands, then time), ``train_len``, ``test_len`` (N,) valid frames
    per clip, ``train_y``, ``test_y``, ``classes``, ``sample_rate``, the training-set
    ``mean`` and ``std`` per band, the settings, and ``test_waves`` (host waveforms).

    * Every clip is cut to ``max_seconds`` and zero-padded to that length, so the whole
      split is one array that ``audio.log_mel`` turns into features in one go (512 clips
      at a time, to bound memory): no loop over clips.
    * Frame m is centred on sample m * hop_length, so a clip of L samples has
      ceil(L / hop_length) valid frames; the rest is padding.
    * Each band is normalised by the mean and std of its values over the valid frames
      of the *training* clips (the test set never informs them); padded frames are then
      set to 0, the mean.

    Data: ``--data``, else $MINIDL_DATA, else ./datasets, else downloaded; a ``--smoke``
    run never downloads, keeps every 9th training and every 3rd test clip, and falls back
    to synthetic clips (saying so) when FSDD is not on disk.
    """
    from types import SimpleNamespace

    import numpy

    from minidl import audio, backend, datasets

    try:
        train = datasets.FSDD(args.data, split="train", download=not args.smoke)
        test = datasets.FSDD(args.data, split="test", download=not args.smoke)
        source = f"FSDD ({train.folder})"
    except datasets.DatasetNotFoundError:
        if not args.smoke:
            raise
        print("FSDD not found: this --smoke run uses SYNTHETIC clips (a tone sweep per digit) instead.")
        train, test = _synthetic_spoken_digits(300, args.seed), _synthetic_spoken_digits(100, args.seed + 1)
        source = "synthetic"
    train_waves, train_y, test_waves, test_y = train.waveforms, train.targets, test.waveforms, test.targets
    if args.smoke:  # all digits and speakers, a fraction of the takes
        train_waves, train_y, test_waves, test_y = train_waves[::9], train_y[::9], test_waves[::3], test_y[::3]
    rate = train.sample_rate
    max_samples = int(max_seconds * rate)
    n_frames = 1 + max_samples // hop_length

    def log_mel_frames(waves):
        lengths = numpy.minimum([len(w) for w in waves], max_samples)
        padded = backend.to_device(audio.pad_or_trim([w[:max_samples] for w in waves], max_samples), device)
        xp = backend.get_array_module(padded)
        features = xp.concatenate([audio.log_mel(padded[i:i + 512], rate, n_fft=n_fft, hop_length=hop_length,
                                                 n_mels=n_mels) for i in range(0, len(padded), 512)])
        return features, numpy.minimum(-(-lengths // hop_length), n_frames)

    with Stopwatch(device) as clock:
        (train_x, train_len), (test_x, test_len) = log_mel_frames(train_waves), log_mel_frames(test_waves)
        xp = backend.get_array_module(train_x)
        valid = xp.asarray(numpy.arange(n_frames) < train_len[:, None])[:, None, :]  # (N, 1, T)
        count = valid.sum() * 1.0
        mean = (train_x * valid).sum(axis=(0, 2), keepdims=True) / count  # (1, n_mels, 1)
        std = xp.sqrt((((train_x - mean) * valid) ** 2).sum(axis=(0, 2), keepdims=True) / count) + 1e-5

        def normalise(x, lengths):
            inside = xp.asarray(numpy.arange(n_frames) < lengths[:, None])[:, None, :]
            return xp.where(inside, (x - mean) / std, 0).astype(numpy.float32)

        train_x, test_x = normalise(train_x, train_len), normalise(test_x, test_len)
    seconds = numpy.array([len(w) for w in train_waves]) / rate
    print(f"{source}: {len(train_y)} training and {len(test_y)} test clips at {rate} Hz, "
          f"{seconds.min():.2f}-{seconds.max():.2f} s long (median {numpy.median(seconds):.2f} s)")
    print(f"features: {n_mels} log-mel bands of a {n_fft}-point STFT ({1000 * n_fft / rate:.0f} ms window) every "
          f"{hop_length} samples ({1000 * hop_length / rate:.0f} ms), clips cut/padded to {max_seconds} s = "
          f"{n_frames} frames: {tuple(train_x.shape)} and {tuple(test_x.shape)} on {device} in {clock.seconds:.1f} s")
    return SimpleNamespace(
        train_x=train_x, train_len=train_len, train_y=train_y, test_x=test_x, test_len=test_len, test_y=test_y,
        classes=list(train.classes), sample_rate=rate, mean=mean.reshape(-1), std=std.reshape(-1),
        n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, n_frames=n_frames, test_waves=test_waves)


def plot_spoken_digit(data, index: int, path) -> str:
    """One test clip as lessons 10 and 11 see it: waveform, spectrogram, log-mel, normalised log-mel."""
    from minidl import audio, plot

    wave, length = data.test_waves[index], int(data.test_len[index])
    options = {"n_fft": data.n_fft, "hop_length": data.hop_length}
    panels = {  # audio_panels wants (frames, bins)
        "spectrogram (dB)": audio.power_to_db(audio.spectrogram(wave, **options)).T,
        f"log-mel, {data.n_mels} bands (dB)": audio.log_mel(wave, data.sample_rate, n_mels=data.n_mels, **options).T,
        "log-mel, normalised (the model's input)": data.test_x[index, :, :length].T,
    }
    return plot.audio_panels(wave, data.sample_rate, panels, path,
                             title=f"test clip {index}: the digit {data.classes[int(data.test_y[index])]}")


def _synthetic_spoken_digits(n: int, seed: int = 0, sample_rate: int = 8000):
    """``n`` clips of 0.3-0.8 s where "digit" d is a tone sweeping up from 300 + 250 d Hz,
    plus a little noise: learnable, not speech. Same attributes as ``datasets.FSDD``."""
    from types import SimpleNamespace

    import numpy

    rng = numpy.random.default_rng(seed)
    targets = numpy.arange(n, dtype=numpy.int64) % 10
    waveforms = []
    for digit in targets:  # a few hundred short clips, made once
        t = numpy.arange(int(rng.uniform(0.3, 0.8) * sample_rate)) / sample_rate
        phase = 2 * numpy.pi * (300 + 250 * digit) * (t + 0.5 * t * t)
        clip = rng.uniform(0.2, 0.8) * numpy.sin(phase) + 0.02 * rng.standard_normal(len(t))
        waveforms.append(clip.astype(numpy.float32))
    return SimpleNamespace(waveforms=waveforms, targets=targets, sample_rate=sample_rate,
                           classes=[str(d) for d in range(10)])


def cifar10(args, train_size=None, test_size=None):
    """CIFAR-10 for lessons 05 and 06: ``(train_x, train_y, test_x, test_y, classes)``.

    Images stay uint8 (N, 3, 32, 32) (NCHW, the layers' layout; 4x smaller than float32),
    to be scaled to [0, 1] on the device, batch by batch. ``train_size`` / ``test_size``
    keep a random subset (seeded by ``--seed``). The data is found via ``--data``, else
    $MINIDL_DATA, else ./datasets, else downloaded (163 MB); a ``--smoke`` run never
    downloads and uses synthetic images (saying so) when CIFAR-10 is not on disk.
    """
    import numpy

    from minidl import datasets

    try:
        train = datasets.CIFAR10(args.data, train=True, download=not args.smoke)
        test = datasets.CIFAR10(args.data, train=False, download=not args.smoke)
        splits = [(train.data.transpose(0, 3, 1, 2), train.targets), (test.data.transpose(0, 3, 1, 2), test.targets)]
        classes, source = list(train.classes), f"{train.source[0]} copy at {train.source[1]}"
    except datasets.DatasetNotFoundError:
        if not args.smoke:
            raise
        print("CIFAR-10 not found: this --smoke run uses SYNTHETIC images (noise tinted by class) instead.")
        splits = [_synthetic_cifar(512, args.seed), _synthetic_cifar(256, args.seed + 1)]
        classes, source = [f"class{k}" for k in range(10)], "synthetic"
    rng = numpy.random.default_rng(args.seed)
    for k, size in enumerate((train_size, test_size)):
        x, y = splits[k]
        keep = numpy.sort(rng.permutation(len(y))[:size]) if size is not None and size < len(y) else slice(None)
        splits[k] = numpy.ascontiguousarray(x[keep]), y[keep]
    (train_x, train_y), (test_x, test_y) = splits
    print(f"CIFAR-10 ({source}): {len(train_y):,} training and {len(test_y):,} test images, "
          f"{train_x.dtype} {tuple(train_x.shape[1:])} (C, H, W), {len(classes)} classes")
    return train_x, train_y, test_x, test_y, classes


def _synthetic_cifar(n: int, seed: int):
    """``n`` uint8 noise images whose mean colour depends on the class: learnable, not CIFAR."""
    import numpy

    rng = numpy.random.default_rng(seed)
    labels = numpy.arange(n, dtype=numpy.int64) % 10
    tint = rng.uniform(40, 215, size=(10, 3, 1, 1))
    images = tint[labels] + rng.normal(0, 40, size=(n, 3, 32, 32))
    return numpy.clip(images, 0, 255).astype(numpy.uint8), labels


def smooth(values, width: int = 20):
    """A running mean of a loss curve, to see the trend through the noise of single batches."""
    width = min(width, len(values))
    return np.convolve(values, np.ones(width) / width, mode="valid")
