"""The PyTorch side of ``python -m minidl.bench``: the same models, built with torch.

Imported by :mod:`minidl.bench` only when ``import torch`` works (``pip install minidl[bench]``);
nothing else in minidl imports this module or torch.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from minidl.bench import make_models


MODELS = make_models(nn)  # the same model code as minidl's side, on torch.nn


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
