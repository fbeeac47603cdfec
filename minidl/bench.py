"""``python -m minidl.bench``: how many training examples per second minidl gets through.

Two reference models, each trained with Adam on a fixed random batch (so only the
training step is timed: forward, cross-entropy, backward, optimizer step):

* **cnn** -- the classic small CIFAR-10 CNN on 32x32x3 images, batch 64 on the CPU
  and 512 on a GPU: conv 3->32 3x3, relu, maxpool 2, conv 32->64 3x3, relu,
  maxpool 2, flatten, linear 2304->64, relu, linear 64->10.
* **lstm** -- LSTM(40 -> 128) over 60 time steps, batch 32; the last hidden state
  goes into linear 128->10 (the spoken-digit model's shape).

Each measurement runs warm-up steps, then ``--repeats`` rounds of ``--steps`` timed
steps (the GPU is synchronised before and after each round) and reports the median
round, next to what PyTorch does on the same job.

    python -m minidl.bench                       # both models on the CPU
    python -m minidl.bench --device cuda --which cnn
    python -m minidl.bench --smoke               # a few tiny steps: does it run?

This is a benchmark, not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import minidl
from minidl import nn
from minidl.nn import functional as F
from minidl.optim import Adam

# PyTorch's figures for the same jobs: eager mode, 2-core build machine / one H100.
REFERENCE = {
    ("cnn", "cpu"): (1904, "PyTorch CPU, 2 cores"),
    ("lstm", "cpu"): (2764, "PyTorch CPU, 2 cores"),
    ("cnn", "cuda"): (279000, "PyTorch eager, one H100, batch 512"),
}
TARGET = {"cpu": 0.35, "cuda": 0.25}  # the share of the reference minidl aims for
DEFAULT_BATCH = {("cnn", "cpu"): 64, ("cnn", "cuda"): 512, ("lstm", "cpu"): 32, ("lstm", "cuda"): 32}
UNIT = {"cnn": "img/s", "lstm": "seq/s"}


def small_cnn():
    """The classic small CIFAR-10 CNN (Conv-ReLU-Pool twice, then two Linear layers)."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2304, 64), nn.ReLU(), nn.Linear(64, 10),
    )


class LastStateLSTM(nn.Module):
    """LSTM over a (time, batch, features) sequence; the last hidden state is classified."""

    def __init__(self, input_size=40, hidden_size=128, num_classes=10):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def make_job(which: str, batch_size: int, device: str):
    """The model, its optimizer and one fixed random batch (inputs, class labels) on ``device``."""
    if which == "cnn":
        model, x = small_cnn(), minidl.randn(batch_size, 3, 32, 32, device=device)
    else:
        model, x = LastStateLSTM(), minidl.randn(60, batch_size, 40, device=device)
    model.to(device)
    y = minidl.randint(0, 10, (batch_size,), device=device)
    return model, Adam(model.parameters(), lr=1e-3), x, y


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def measure(which: str, device: str, batch_size: int, steps: int, warmup: int, repeats: int) -> float:
    """Examples per second: batch_size * steps / (median seconds of one round of ``steps`` steps)."""
    model, optimizer, x, y = make_job(which, batch_size, device)
    for _ in range(warmup):
        train_step(model, optimizer, x, y)
    seconds = []
    for _ in range(repeats):
        minidl.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, optimizer, x, y)
        minidl.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return batch_size * steps / statistics.median(seconds)


def report(which: str, device: str, batch_size: int, throughput: float) -> str:
    line = f"{which:<5} batch {batch_size:>4}: {throughput:>10,.0f} {UNIT[which]}"
    if (which, device) in REFERENCE:
        figure, source = REFERENCE[(which, device)]
        share, target = throughput / figure, TARGET[device]
        verdict = "meets" if share >= target else "below"
        line += f"  = {share:6.1%} of {figure:,} ({source}); target {target:.0%}: {verdict}"
    return line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidl.bench", description="Training-step throughput of minidl's reference CNN and LSTM.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--which", choices=["cnn", "lstm", "all"], default="all")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 20 CPU, 50 GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 / 512 (cnn CPU / GPU), 32 (lstm)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CPU, 10 GPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported")
    parser.add_argument("--smoke", action="store_true", help="a few tiny steps, to check that it runs")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "warmup", "repeats"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def main(argv=None) -> dict:
    """Run the benchmark; print one line per model and return {model: examples per second}."""
    args = parse_args(argv)
    device = minidl.Device(args.device)
    minidl.backend.check_device_usable(device)
    gpu = device.type == "cuda"
    if args.smoke:
        steps, warmup, repeats = 2, 1, 1
    else:
        steps = args.steps or (50 if gpu else 20)
        warmup = args.warmup if args.warmup is not None else (10 if gpu else 3)
        repeats = args.repeats
    backend = "cupy" if gpu else "numpy"
    print(f"minidl {minidl.__version__} bench on {device} ({backend}, {os.cpu_count()} CPU cores), "
          f"python {platform.python_version()}, "
          f"{steps} steps x {repeats} rounds after {warmup} warm-up" + (" [smoke]" if args.smoke else ""))
    minidl.manual_seed(0)
    results = {}
    for which in (["cnn", "lstm"] if args.which == "all" else [args.which]):
        batch_size = args.batch_size or (4 if args.smoke else DEFAULT_BATCH[(which, device.type)])
        results[which] = measure(which, str(device), batch_size, steps, warmup, repeats)
        print(report(which, device.type, batch_size, results[which]), flush=True)
    return results


if __name__ == "__main__":
    main()
