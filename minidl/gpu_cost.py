"""``python -m minidl.gpu_cost``: what one training step of each lesson's model costs on a GPU,
counted on the CPU stand-in for cupy (minidl.fakecupy), so it needs no GPU.

Five jobs, each the model, optimizer, loss, schedule and on-device batch transforms of its lesson,
on random data of the lesson's shapes (no dataset needed):

    cnn_b32       lesson 05: the classic CNN, Adam 1e-3, uint8 CIFAR batches scaled on the device, batch 32
    cnn_b512      the same at batch 512
    resnet9_b512  lesson 06: ResNet-9 (fused batch norm + ReLU), SGD nesterov + weight decay, one-cycle
                  LambdaLR, label smoothing 0.2, reflect-pad crop + flip + normalise on the device, batch 512
    lstm_fsdd     lesson 10: LSTM(40 -> 128) over 76 log-mel frames of varied lengths, dropout, linear;
                  Adam 3e-3 + OneCycleLR, gradient clipping, SpecAugment masking, batch 64
    conv1d_fsdd   lesson 11: three Conv1d-BatchNorm1d-ReLU blocks, masked mean over frames;
                  AdamW + OneCycleLR, SpecAugment masking, batch 64

A step is what the lesson's training loop does per batch: the loader's gather and transforms, the
forward pass, the loss, ``zero_grad``, backward, (clipping,) the optimizer and scheduler steps.
One warm-up step runs first (it uploads the epoch's order and makes the optimizer state), then
one step is measured with ``minidl.fakecupy.meter`` (see there for what each count means).

    python -m minidl.gpu_cost                      # a table of the five
    python -m minidl.gpu_cost --json               # one JSON object keyed by model
    python -m minidl.gpu_cost --model cnn_b32 --sites   # and where the launches come from
    python -m minidl.bench --gpu-cost --json       # the same, from the benchmark's entry point

The numbers are counts, not times: a launch costs about 5-10 us of CPU and GPU latency whatever
it does, so at these sizes the launch count bounds the step time from below. The arrays are the
numpy payloads of the stand-in: real numpy math runs (resnet9_b512 takes tens of seconds and a few
GB of host memory). Peak memory counts live device buffers from the step's start (parameters,
optimizer state and the on-device training set included); cupy's memory pool may hold more.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time

import numpy as np

MODELS = ("cnn_b32", "cnn_b512", "resnet9_b512", "lstm_fsdd", "conv1d_fsdd")
N_MELS, N_FRAMES, CLASSES = 40, 76, 10  # FSDD log-mel: 8 kHz, n_fft 256, hop 128, clips cut to 1.2 s
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)  # lesson 06 measures these on its training set
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def install_stand_in():
    """Put minidl on the CPU stand-in for cupy; refuse where a real GPU is in use."""
    from minidl import backend

    fake = sys.modules.get("minidl.fakecupy")
    if backend.cupy is not None and backend.cupy is not fake and backend.cuda_is_available():
        raise SystemExit("minidl.gpu_cost counts on the CPU stand-in for cupy, but a real GPU is in use here: "
                         "run it on a machine (or in a process) without one, or time the GPU with minidl.bench")
    import minidl.fakecupy

    minidl.fakecupy.install()
    return minidl.fakecupy.meter


# --------------------------------------------------------------------------- #
# the lessons' models (copied from lessons/05, 06, 10, 11: a lesson is a script, not a module;
# lesson 05's CNN and lesson 06's ResNet-9 are the benchmark's, minidl.bench.make_models)
# --------------------------------------------------------------------------- #
def lesson05_cnn(nn):
    from minidl.bench import make_models

    return make_models(nn)["cnn"]()


def lesson06_resnet9(nn):
    """Lesson 06's ResNet-9 as the lesson builds it: Conv2d + fused BatchNormReLU2d, the residual add
    fused into the second block's batch norm."""
    from minidl.bench import make_models

    return make_models(nn)["resnet9"]()


def lesson10_lstm(nn, hidden=128):
    class DigitLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, hidden, batch_first=True)
            self.dropout = nn.Dropout(0.3)
            self.classifier = nn.Linear(hidden, CLASSES)

        def forward(self, x, lengths):
            _, (h_n, _) = self.lstm(x, lengths=lengths)
            return self.classifier(self.dropout(h_n[-1]))

    return DigitLSTM()


def lesson11_conv1d(nn, minidl, width=128):
    def conv_block(c_in, c_out, kernel_size):
        return nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                             nn.BatchNorm1d(c_out), nn.ReLU())

    class DigitCNN(nn.Module):
        POOLING = 4

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(conv_block(N_MELS, width // 2, 5), nn.MaxPool1d(2),
                                          conv_block(width // 2, width, 5), nn.MaxPool1d(2),
                                          conv_block(width, width, 3))
            self.dropout = nn.Dropout(0.3)
            self.classifier = nn.Linear(width, CLASSES)

        def forward(self, x, lengths):
            h = self.features(x)
            xp, frames = lengths.xp, h.shape[-1]
            covered = xp.clip(-(-lengths.data // self.POOLING), 1, frames)
            mask = (xp.arange(frames) < covered[:, None])[:, None, :].astype(h.dtype)
            pooled = (h * minidl.Tensor(mask)).sum(dim=2) / minidl.Tensor(covered[:, None].astype(h.dtype))
            return self.classifier(self.dropout(pooled))

    return DigitCNN()


# --------------------------------------------------------------------------- #
# the jobs: model, data, and one training step
# --------------------------------------------------------------------------- #
def _forever(loader):
    while True:
        yield from loader


def build(name: str, seed: int = 0):
    """The job ``name``: returns ``(step, info)``; ``step()`` runs one training step of the lesson."""
    import minidl
    import minidl.nn.functional as F
    from minidl import nn, optim
    from minidl.data import ArrayDataset, DataLoader
    from minidl.data import audio_transforms as AT
    from minidl.data import transforms as T

    minidl.manual_seed(seed)
    rng = np.random.default_rng(seed)
    clip, scheduler, smoothing, info = False, None, 0.0, {}
    if name.startswith(("cnn_", "resnet9_")):
        batch = int(name.rsplit("_b", 1)[1])
        images = rng.integers(0, 256, (2 * batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, CLASSES, 2 * batch)
        if name.startswith("cnn_"):  # lesson 05: the bytes scaled to [0, 1] on the device
            model, transform = lesson05_cnn(nn).to("cuda"), T.ToDtype("float32", scale=True)
            optimizer = optim.Adam(model.parameters(), lr=1e-3)
        else:  # lesson 06
            model = lesson06_resnet9(nn).to("cuda")
            transform = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(),
                                   T.ToDtype("float32", scale=True), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
            optimizer = optim.SGD(model.parameters(), lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4)
            scheduler = optim.lr_scheduler.LambdaLR(optimizer, lambda step: float(np.interp(step + 1, [0, 50, 240],
                                                                                           [0.0, 1.0, 0.0])))
            smoothing = 0.2
        loader = DataLoader(ArrayDataset(images, labels), batch_size=batch, shuffle=True, drop_last=True,
                            device="cuda", transform=transform, generator=seed)
    elif name in ("lstm_fsdd", "conv1d_fsdd"):
        batch = 64
        frames = rng.standard_normal((4 * batch, N_MELS, N_FRAMES)).astype(np.float32)  # (N, bands, time)
        lengths = rng.integers(N_FRAMES // 2, N_FRAMES + 1, 4 * batch)
        lengths[::4] = N_FRAMES  # every batch has a full-length clip: the LSTM runs all N_FRAMES steps
        labels = rng.integers(0, CLASSES, 4 * batch)
        if name == "lstm_fsdd":  # lesson 10: (N, time, bands), masks on the last two axes
            frames = np.ascontiguousarray(frames.swapaxes(1, 2))
            model = lesson10_lstm(nn).to("cuda")
            transform = T.Compose([AT.FrequencyMasking(8, axis=-1), AT.TimeMasking(10, axis=-2)])
            optimizer, clip = optim.Adam(model.parameters(), lr=3e-3), True
            info["timesteps"] = N_FRAMES
        else:  # lesson 11
            model = lesson11_conv1d(nn, minidl).to("cuda")
            transform = T.Compose([AT.FrequencyMasking(8), AT.TimeMasking(10)])
            optimizer = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
        scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, epochs=15, steps_per_epoch=4)
        loader = DataLoader(ArrayDataset(minidl.backend.to_device(frames, "cuda"), lengths, labels), batch_size=batch,
                            shuffle=True, device="cuda", transform=transform, generator=seed)
    else:
        raise ValueError(f"minidl.gpu_cost: unknown model {name!r}; choose from {', '.join(MODELS)}")
    batches = _forever(loader)
    model.train()

    def step():
        *inputs, y = next(batches)
        logits = model(*inputs)
        loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
        optimizer.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    info["batch_size"] = batch
    return step, info


def measure(name: str, sites: int = 0) -> dict:
    """One job's counts per training step (after one warm-up step), as the JSON reports them."""
    meter = install_stand_in()
    start = time.perf_counter()
    step, info = build(name)
    step()  # warm-up: the epoch's order goes up, the optimizer makes its state
    gc.collect()
    with meter.measure() as m:
        step()
    cost = m.report()
    result = {
        "launches_per_step": cost["launches"],
        "syncs_per_step": cost["syncs"],
        "float64_per_step": cost["float64_arrays"],
        "h2d_bytes_per_step": cost["h2d_bytes"],
        "uploads_per_step": cost["uploads"],
        "d2h_bytes_per_step": cost["d2h_bytes"],
        "peak_device_mib": round(cost["peak_live_bytes"] / 2**20, 1),
        "matmuls_per_step": cost["matmuls"],
        "kernels_per_step": cost["kernels"],
    }
    if "timesteps" in info:
        result["launches_per_timestep"] = round(cost["launches"] / info["timesteps"], 2)
    result["batch_size"] = info["batch_size"]
    result["host_seconds"] = round(time.perf_counter() - start, 1)  # build + two steps of numpy math
    if sites:
        result["sites"] = m.sites(sites)
        result["sync_sites"] = m.sites(sites, what="syncs")
        result["h2d_sites"] = m.sites(sites, what="h2d_bytes")
    return result


def table(results: dict) -> str:
    columns = ("launches_per_step", "syncs_per_step", "float64_per_step", "matmuls_per_step", "kernels_per_step",
               "h2d_bytes_per_step", "d2h_bytes_per_step", "peak_device_mib", "host_seconds")
    heads = ("launches", "syncs", "float64", "matmuls", "kernels", "h2d B", "d2h B", "peak MiB", "host s")
    lines = [f"{'model':<14}" + "".join(f"{h:>10}" for h in heads)]
    for name, result in results.items():
        lines.append(f"{name:<14}" + "".join(f"{result[c]:>10}" for c in columns))
        if "launches_per_timestep" in result:
            lines[-1] += f"   ({result['launches_per_timestep']} launches per timestep)"
    for name, result in results.items():
        for key, title in (("sites", "launch"), ("sync_sites", "sync"), ("h2d_sites", "upload (bytes)")):
            if result.get(key):
                lines.append(f"\n{name}: top {title} sites")
                lines += [f"{count:>6}  {site}" for site, count in result[key]]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m minidl.gpu_cost",
                                     description="GPU cost of one training step per lesson model, counted without a GPU.")
    parser.add_argument("--json", action="store_true", help="print one JSON object keyed by model")
    parser.add_argument("--model", action="append", choices=MODELS, help="only this model (repeatable)")
    parser.add_argument("--sites", nargs="?", type=int, const=15, default=0,
                        help="also list the top N places in minidl that launch (default N: 15)")
    args = parser.parse_args(argv)
    results = {}
    for name in args.model or MODELS:
        results[name] = measure(name, args.sites)
        if not args.json:
            print(f"{name}: done in {results[name]['host_seconds']} s", file=sys.stderr, flush=True)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(results) if args.json else table(results) + f"\n\nhost peak RSS {peak_rss:.0f} MiB")
    return results


if __name__ == "__main__":
    main()
