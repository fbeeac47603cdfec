"""The PyTorch side of ``python -m minidl.bench``: the same models, built with torch.

Imported by :mod:`minidl.bench` only when ``import torch`` works (``pip install minidl[bench]``);
nothing else in minidl imports this module or torch.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2304, 64), nn.ReLU(), nn.Linear(64, 10),
    )


class LastStateLSTM(nn.Module):
    def __init__(self, input_size=40, hidden_size=128, num_classes=10):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def conv_bn(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.f = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return x + self.f(x)


class ResNet9(nn.Module):
    """Lesson 06's ResNet-9 (width 1)."""

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


MODELS = {"cnn": small_cnn, "lstm": LastStateLSTM, "resnet9": ResNet9}


def describe() -> str:
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def usable_on(device: str) -> bool:
    """Whether this PyTorch build can run on ``device`` (a CPU-only build cannot use cuda)."""
    return not device.startswith("cuda") or torch.cuda.is_available()


def set_threads_like_numpy():
    """With OPENBLAS_NUM_THREADS set, PyTorch gets as many intra-op threads (a fair comparison)."""
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    if threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


def make_job(which: str, x, y, device: str, optimizer: tuple):
    """The model, its optimizer and the batch (numpy arrays ``x``, ``y``) on ``device``."""
    torch.manual_seed(0)
    model = MODELS[which]().to(device)
    kind, settings = optimizer
    opt = (torch.optim.Adam if kind == "adam" else torch.optim.SGD)(model.parameters(), **settings)
    return model, opt, torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def synchronize(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
