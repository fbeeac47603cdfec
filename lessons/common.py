"""What every lesson shares: its command-line flags, seeding, the output folder, and
honest measurements of time and peak memory. The training loops stay in the lessons,
where a learner can read them."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import minidl


def parser(description: str, epochs: int | None = None, batch_size: int | None = None, out: str = "runs/lesson"):
    """The flags every lesson takes; a lesson adds its own to the returned parser."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help=f"passes over the training set (default: {epochs})")
    if batch_size is not None:
        p.add_argument("--batch-size", type=int, default=batch_size, help=f"samples per step (default: {batch_size})")
    p.add_argument("--data", default=None, help="data root (default: $MINIDL_DATA, else ./datasets)")
    p.add_argument("--out", default=out, help=f"where plots and checkpoints go (default: {out})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--smoke", action="store_true", help="a tiny run that finishes in seconds (used by the tests)")
    return p


def setup(args) -> minidl.Device:
    """Seed everything, check the device, make the output folder; returns the device."""
    device = minidl.Device(args.device)
    minidl.backend.check_device_usable(device)
    minidl.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    print(f"minidl {minidl.__version__} | device {device} | seed {args.seed} | output {args.out}", flush=True)
    return device


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
    targets come back as host numpy arrays.
    """
    import numpy

    import minidl.nn.functional as F

    was_training = model.training
    model.eval()
    total, predicted, targets = 0.0, [], []
    with minidl.no_grad():
        for *inputs, target in loader:
            logits = model(*inputs)
            total += F.cross_entropy(logits, target, reduction="sum").item()
            predicted.append(logits.argmax(axis=1).numpy())
            targets.append(target.numpy())
    model.train(was_training)
    targets = numpy.concatenate(targets)
    return total / len(targets), numpy.concatenate(predicted), targets


def report(predicted, targets, class_names, path, title: str = "confusion matrix") -> float:
    """Print accuracy and per-class precision, recall and F1; save the confusion matrix
    as a PNG at ``path``. Returns the accuracy."""
    from minidl import metrics, plot

    matrix = metrics.confusion_matrix(predicted, targets, len(class_names))
    print(metrics.classification_report(matrix, class_names))
    print("confusion matrix (rows: true class, columns: predicted):")
    print(matrix)
    print(f"saved {plot.confusion(matrix, class_names, path, title=title)}")
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


def synthetic_spoken_digits(n: int, seed: int = 0, sample_rate: int = 8000):
    """A stand-in for FSDD when it is not on disk in a ``--smoke`` run (tests never
    download): ``n`` clips of 0.3-0.8 s, where "digit" d is a tone sweeping up from
    300 + 250 d Hz, with a little noise. Same attributes as ``datasets.FSDD``."""
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
