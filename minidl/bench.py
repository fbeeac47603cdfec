"""``python -m minidl.bench``: training-step throughput of minidl, side by side with PyTorch.

Three reference jobs, each trained on one fixed random batch (so only the training step
is timed: forward, cross-entropy, backward, optimizer step):

* **cnn** -- lesson 05's classic small CIFAR-10 CNN on 32x32x3 images, Adam (lr 1e-3):
  conv 3->32 3x3, relu, maxpool 2, conv 32->64 3x3, relu, maxpool 2, flatten,
  linear 2304->64, relu, linear 64->10. Batch 64 (and 512 on a GPU).
* **lstm** -- LSTM(40 -> 128) over 60 time steps, batch 32; the last hidden state goes
  into linear 128->10 (the spoken-digit model's shape), Adam (lr 1e-3).
* **resnet9** -- lesson 06's ResNet-9 (width 1; minidl's fused BatchNormReLU2d as in the lesson,
  BatchNorm2d + ReLU in PyTorch, which has no fused module), SGD with nesterov momentum
  0.9, lr 0.05, weight decay 5e-4. Batch 32 (and 512 on a GPU).

When PyTorch is importable (``pip install minidl[bench]``) the same job -- same shapes, same
batch, same optimizer settings -- is built in PyTorch too, and the two run in interleaved
rounds (minidl, torch, minidl, torch, ...) after warm-up, so that a noisy machine slows both
alike. The printed ratio is median minidl throughput / median PyTorch throughput. With
``OPENBLAS_NUM_THREADS`` set, PyTorch gets as many threads. Without torch only minidl's
throughput is printed. Each framework's loss at the start and at the end is printed too: it
must fall.

    python -m minidl.bench                       # all jobs on the CPU
    OPENBLAS_NUM_THREADS=1 python -m minidl.bench --repeats 4
    python -m minidl.bench --device cuda         # adds the batch-512 cnn and resnet9 steps
    python -m minidl.bench --smoke               # a few tiny steps: does it run?
    python -m minidl.bench --gpu-cost --json     # no timing: each lesson model's GPU cost per step,
                                                 # counted without a GPU (minidl.gpu_cost)

This is a benchmark, not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import time

import numpy as np

import minidl
from minidl import nn
from minidl.nn import functional as F
from minidl.optim import SGD, Adam

# (model, batch size) per device; --which picks models, --batch-size replaces every batch size
JOBS = {
    "cpu": [("cnn", 64), ("lstm", 32), ("resnet9", 32)],
    "cuda": [("cnn", 64), ("lstm", 32), ("resnet9", 32), ("cnn", 512), ("resnet9", 512)],
}
OPTIMIZER = {  # the same settings for both frameworks
    "cnn": ("adam", {"lr": 1e-3}),
    "lstm": ("adam", {"lr": 1e-3}),
    "resnet9": ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}),
}
UNIT = {"cnn": "img/s", "lstm": "seq/s", "resnet9": "img/s"}
INSTALL_HINT = "pip install 'minidl[bench]' (or pip install torch)"


def make_models(nn):
    """The benchmarked models, written once against a framework's ``nn`` module: ``minidl.nn`` here,
    ``torch.nn`` in bench_torch (minidl's layers take PyTorch's names and arguments, so the same
    code builds both). Returns {name: a function that makes the model}."""

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

    # Lesson 06 fuses batch norm, ReLU and the residual add (minidl's nn.BatchNormReLU2d); PyTorch has
    # no such module, so there the same math is BatchNorm2d, ReLU and a plain add.
    fused = getattr(nn, "BatchNormReLU2d", None)

    def conv_bn(c_in, c_out):
        conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        return nn.Sequential(conv, fused(c_out)) if fused else nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())

    class Residual(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.f = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

        def forward(self, x):
            if fused is None:
                return x + self.f(x)
            first, (conv, bn_relu) = self.f[0], self.f[1]
            return bn_relu(conv(first(x)), residual=x)  # x + relu(bn(conv(...))) in one fused op

    class ResNet9(nn.Module):
        """Lesson 06's ResNet-9 (width 1): prep conv, three stages (two with a residual), global max."""

        def __init__(self, num_classes=10):
            super().__init__()
            self.prep = conv_bn(3, 64)
            self.layer1 = nn.Sequential(conv_bn(64, 128), nn.MaxPool2d(2), Residual(128))
            self.layer2 = nn.Sequential(conv_bn(128, 256), nn.MaxPool2d(2))
            self.layer3 = nn.Sequential(conv_bn(256, 512), nn.MaxPool2d(2), Residual(512))
            self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
            self.classifier = nn.Linear(512, num_classes, bias=False)

        def forward(self, x):
            x = self.layer3(self.layer2(self.layer1(self.prep(x))))
            return self.classifier(self.pool(x)) * 0.125

    return {"cnn": small_cnn, "lstm": LastStateLSTM, "resnet9": ResNet9}


MODELS = make_models(nn)


def make_batch(which: str, batch_size: int, seed: int = 0):
    """One fixed random batch as numpy arrays (inputs float32, labels int64), shared by both frameworks."""
    rng = np.random.default_rng(seed)
    shape = (60, batch_size, 40) if which == "lstm" else (batch_size, 3, 32, 32)
    return rng.standard_normal(shape, dtype=np.float32), rng.integers(0, 10, batch_size, dtype=np.int64)


def make_job(which: str, x, y, device: str):
    """The minidl model, its optimizer and the batch on ``device``."""
    model = MODELS[which]().to(device)
    kind, settings = OPTIMIZER[which]
    optimizer = (Adam if kind == "adam" else SGD)(model.parameters(), **settings)
    return model, optimizer, minidl.tensor(x, device=device), minidl.tensor(y, device=device)


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def import_torch_side():
    """minidl.bench_torch when PyTorch is importable, else None (minidl never needs torch)."""
    try:
        return importlib.import_module("minidl.bench_torch")
    except ImportError:
        return None


def ratio_of_medians(minidl_rounds, torch_rounds) -> float:
    """median(minidl throughputs) / median(PyTorch throughputs) over interleaved rounds."""
    return statistics.median(minidl_rounds) / statistics.median(torch_rounds)


class Runner:
    """One framework's job: warm-up, then one timed round of ``steps`` steps per call."""

    def __init__(self, step, sync, job, batch_size):
        self.step, self.sync, self.job, self.batch_size = step, sync, job, batch_size
        self.rounds, self.losses = [], []

    def warmup(self, steps):
        for i in range(steps):
            loss = self.step(*self.job)
            if i == 0:
                self.losses.append(float(loss.item()))

    def timed_round(self, steps):
        self.sync()
        start = time.perf_counter()
        for _ in range(steps):
            loss = self.step(*self.job)
        self.sync()
        self.rounds.append(self.batch_size * steps / (time.perf_counter() - start))
        return loss

    def finish(self, last_loss):
        self.losses.append(float(last_loss.item()))


def measure(which, device, batch_size, steps, warmup, repeats, torch_side=None) -> dict:
    """Interleaved rounds of minidl and (if given) PyTorch on the same job; throughputs per round."""
    x, y = make_batch(which, batch_size)
    runners = {"minidl": Runner(train_step, minidl.cuda.synchronize, make_job(which, x, y, device), batch_size)}
    if torch_side is not None:
        job = torch_side.make_job(which, x, y, device, OPTIMIZER[which])
        runners["torch"] = Runner(torch_side.train_step, lambda: torch_side.synchronize(device), job, batch_size)
    for runner in runners.values():
        runner.warmup(max(warmup, 1))
    last = {}
    for _ in range(repeats):
        for name, runner in runners.items():
            last[name] = runner.timed_round(steps)
    for name, runner in runners.items():
        runner.finish(last[name])
    result = {name: {"rounds": r.rounds, "median": statistics.median(r.rounds), "loss": tuple(r.losses)}
              for name, r in runners.items()}
    if "torch" in runners:
        result["ratio"] = ratio_of_medians(runners["minidl"].rounds, runners["torch"].rounds)
    return result


def _loss(losses) -> str:
    first, last = losses
    return f"loss {first:.3f}->{last:.3f}" + ("" if last < first else " NOT FALLING")


def report(which: str, batch_size: int, result: dict) -> str:
    unit = UNIT[which]
    line = f"{which:<7} batch {batch_size:>4}: minidl {result['minidl']['median']:>9,.0f} {unit}"
    if "torch" in result:
        line += (f" | PyTorch {result['torch']['median']:>9,.0f} {unit} | ratio {result['ratio']:.2f}x"
                 f"  (minidl {_loss(result['minidl']['loss'])}; PyTorch {_loss(result['torch']['loss'])})")
    else:
        line += f"  ({_loss(result['minidl']['loss'])})"
    return line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidl.bench",
                                     description="Training-step throughput of minidl, side by side with PyTorch.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--which", choices=["cnn", "lstm", "resnet9", "all"], default="all")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 10 CPU, 50 GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="replaces every job's batch size")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CPU, 10 GPU)")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved timed rounds; medians are compared")
    parser.add_argument("--no-torch", action="store_true", help="minidl only, even if PyTorch is importable")
    parser.add_argument("--smoke", action="store_true", help="a few tiny steps, to check that it runs")
    parser.add_argument("--gpu-cost", action="store_true",
                        help="instead of timing: count one training step's GPU launches, syncs, transfers and peak "
                             "memory per lesson model, on the CPU stand-in for cupy (minidl.gpu_cost)")
    parser.add_argument("--json", action="store_true", help="with --gpu-cost: print one JSON object")
    args = parser.parse_args(argv)
    if args.json and not args.gpu_cost:
        parser.error("--json goes with --gpu-cost")
    for name in ("steps", "batch_size", "warmup", "repeats"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def main(argv=None) -> dict:
    """Run the benchmark; print one line per job and return {(model, batch size): result}."""
    args = parse_args(argv)
    if args.gpu_cost:
        from minidl import gpu_cost

        return gpu_cost.main(["--json"] if args.json else [])
    device = minidl.Device(args.device)
    minidl.backend.check_device_usable(device)
    gpu = device.type == "cuda"
    if args.smoke:
        steps, warmup, repeats = 2, 1, 1
    else:
        steps = args.steps or (50 if gpu else 10)
        warmup = args.warmup if args.warmup is not None else (10 if gpu else 3)
        repeats = args.repeats
    backend = "cupy" if gpu else "numpy"
    print(f"minidl {minidl.__version__} bench on {device} ({backend}, {os.cpu_count()} CPU cores, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}), "
          f"python {platform.python_version()}, "
          f"{steps} steps x {repeats} interleaved rounds after {warmup} warm-up" + (" [smoke]" if args.smoke else ""))
    torch_side = None if args.no_torch else import_torch_side()
    why = "--no-torch" if args.no_torch else "torch is not importable"
    if torch_side is not None and not torch_side.usable_on(str(device)):
        torch_side, why = None, f"this PyTorch build cannot run on {device}"
    if torch_side is None:
        print(f"PyTorch side skipped ({why}): minidl's throughput only; to compare, {INSTALL_HINT}")
    else:
        torch_side.set_threads_like_numpy()
        print(f"side by side with {torch_side.describe()}; ratio = median minidl / median PyTorch throughput")
    minidl.manual_seed(0)
    results = {}
    for which, batch_size in JOBS[device.type]:
        if args.which not in ("all", which):
            continue
        batch_size = args.batch_size or (4 if args.smoke else batch_size)
        if (which, batch_size) in results:
            continue
        results[(which, batch_size)] = measure(which, str(device), batch_size, steps, warmup, repeats, torch_side)
        print(report(which, batch_size, results[(which, batch_size)]), flush=True)
    return results


if __name__ == "__main__":
    main()
