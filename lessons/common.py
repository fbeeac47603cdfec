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
