"""The datasets of the lessons, in one namespace: ``from minidl import datasets``.

    train = datasets.CIFAR10(train=True)         # .data uint8 (N, 32, 32, 3), .targets int64
    digits = datasets.FSDD(split="train")        # .waveforms float32, .targets, .speakers
    X, y = datasets.spiral(100, classes=3)       # toy 2-D points
    X, Y = datasets.sine_waves(1000, length=50)  # toy sequences
    X, y = datasets.marked_sign(64, length=40)   # a long-range memory task

Data root: the ``root`` argument, else ``$MINIDL_DATA``, else ``./datasets`` (its
README says how to fetch each dataset). Everything here lives in ``minidl.data.*``.
"""

from minidl.data.cifar10 import CIFAR10
from minidl.data.download import (
    ChecksumError,
    CorruptFileError,
    DatasetNotFoundError,
    DownloadError,
    cache_dir,
    data_root,
)
from minidl.data.fsdd import FSDD
from minidl.data.toy import marked_sign, sine_waves, spiral

__all__ = [
    "CIFAR10",
    "FSDD",
    "ChecksumError",
    "CorruptFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "cache_dir",
    "data_root",
    "marked_sign",
    "sine_waves",
    "spiral",
]
