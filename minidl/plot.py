"""Plots the lessons save: training curves, image grids, filters, confusion matrices, audio.

Every function draws on a matplotlib ``Figure`` (no pyplot, so it works without a display),
saves a PNG to ``path`` and returns the path.
"""

from __future__ import annotations

import os

import numpy
from matplotlib.figure import Figure

from minidl import backend
from minidl.tensor import Tensor


def _save(fig: Figure, path) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return str(path)


def _host(x):
    return backend.to_numpy(x.data if isinstance(x, Tensor) else x)


def training_curves(history: dict, path, title: str = "") -> str:
    """``history`` maps names like 'train_loss', 'test_acc' to per-epoch lists: losses on
    the left panel, accuracies (names containing 'acc') on the right."""
    fig = Figure(figsize=(10, 3.6))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for name, values in history.items():
        ax = acc_ax if "acc" in name else loss_ax
        ax.plot(range(1, len(values) + 1), _host(values), marker="o", markersize=3, label=name)
    for ax, label in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def image_grid(images, path, titles=None, columns: int = 8, title: str = "", colors=None,
               channels_first: bool | None = None) -> str:
    """Images as (N, C, H, W) or (N, H, W, C) floats in [0, 1] (or uint8), with optional titles.

    ``channels_first`` says which layout; left as None it is guessed (C is 1 or 3, H and W are not).
    """
    images = _host(images)
    if channels_first is None:
        channels_first = images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3)
    if channels_first:
        images = images.transpose(0, 2, 3, 1)
    images = images.astype(numpy.float32) / (255.0 if images.dtype == numpy.uint8 else 1.0)
    rows = -(-len(images) // columns)
    fig = Figure(figsize=(1.4 * columns, 1.55 * rows))
    axes = numpy.atleast_1d(fig.subplots(rows, columns)).reshape(-1)
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(images):
            ax.imshow(numpy.clip(images[i].squeeze(), 0, 1), cmap="gray" if images[i].shape[-1] == 1 else None)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7, color="black" if colors is None else colors[i])
    fig.suptitle(title)
    return _save(fig, path)


def filters(weight, path, title: str = "first-layer filters") -> str:
    """Conv filters (O, C, kh, kw), each rescaled to [0, 1] so its pattern is visible."""
    w = _host(weight).astype(numpy.float64)
    low = w.min(axis=(1, 2, 3), keepdims=True)
    high = w.max(axis=(1, 2, 3), keepdims=True)
    w = (w - low) / numpy.maximum(high - low, 1e-12)
    if w.shape[1] not in (1, 3):
        w = w[:, :1]
    return image_grid(w, path, columns=min(8, len(w)), title=title, channels_first=True)


def confusion(matrix, class_names, path, title: str = "confusion matrix") -> str:
    matrix = _host(matrix)
    fig = Figure(figsize=(0.55 * len(class_names) + 2, 0.55 * len(class_names) + 1.5))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), [str(n) for n in class_names], rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), [str(n) for n in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in numpy.ndenumerate(matrix):
        ax.text(j, i, int(count), ha="center", va="center", fontsize=7,
                color="white" if count > matrix.max() / 2 else "black")
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    return _save(fig, path)


def audio_panels(waveform, sample_rate: int, panels: dict, path, title: str = "") -> str:
    """A waveform on top, then one image per entry of ``panels`` ({name: (frames, bins) array})."""
    waveform = _host(waveform)
    fig = Figure(figsize=(9, 2.2 * (1 + len(panels))))
    axes = numpy.atleast_1d(fig.subplots(1 + len(panels), 1))
    axes[0].plot(numpy.arange(len(waveform)) / sample_rate, waveform, linewidth=0.6)
    axes[0].set_xlabel("time (s)")
    axes[0].set_title("waveform")
    for ax, (name, values) in zip(axes[1:], panels.items()):
        values = _host(values)
        image = ax.imshow(values.T, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(name)
        ax.set_xlabel("frame")
        fig.colorbar(image, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def lines(series: dict, path, xlabel: str = "", ylabel: str = "", title: str = "", logy: bool = False) -> str:
    """Several named 1-D series on one set of axes (loss curves, gradient norms, ...)."""
    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    for name, values in series.items():
        ax.plot(_host(values), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)
