"""Training throughput of the benchmark model: LSTM(40 -> 128) over 60 steps, batch 32,
last hidden state -> Linear(128 -> 10), cross-entropy, Adam.  Prints sequences/second.

    python .notes/lstm_timing.py [--batches 30] [--implementation fused composed]
"""

import argparse
import time

import numpy as np

import minidl
from minidl import nn, optim
from minidl.nn import functional as F


class Model(nn.Module):
    """'fused' / 'composed': nn.LSTM; 'fused-cell': nn.LSTMCell (fused) called once per step."""

    def __init__(self, implementation):
        super().__init__()
        self.per_step = implementation == "fused-cell"
        if self.per_step:
            self.cell = nn.LSTMCell(40, 128)
        else:
            self.lstm = nn.LSTM(40, 128, implementation=implementation)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        if self.per_step:
            state = None
            for t in range(x.shape[0]):
                state = self.cell(x[t], state)
            return self.head(state[0])
        _, (h_n, _) = self.lstm(x)
        return self.head(h_n[-1])


def throughput(implementation, batches, steps=60, batch=32, seed=0):
    minidl.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Model(implementation)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    xs = [minidl.tensor(rng.standard_normal((steps, batch, 40)).astype(np.float32)) for _ in range(4)]
    ys = [minidl.tensor(rng.integers(0, 10, batch)) for _ in range(4)]

    def train_step(i):
        opt.zero_grad()
        loss = F.cross_entropy(model(xs[i % 4]), ys[i % 4])
        loss.backward()
        opt.step()
        return loss

    for i in range(3):  # warm up
        train_step(i)
    start, start_cpu = time.perf_counter(), time.process_time()
    for i in range(batches):
        train_step(i)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return batches * batch / elapsed, elapsed / batches, batches * batch / cpu


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--implementation", nargs="+", default=["fused", "fused-cell", "composed"])
    args = parser.parse_args()
    for impl in args.implementation:
        seq_per_s, per_batch, per_cpu_s = throughput(impl, args.batches)
        print(f"{impl:10s} {seq_per_s:8.0f} seq/s   {per_batch * 1e3:7.1f} ms per batch of 32   "
              f"({per_cpu_s:.0f} seq per CPU-second: less sensitive to a busy machine)")
