"""Datasets: anything with ``len(dataset)`` and ``dataset[i]`` (one sample).

``ArrayDataset`` is the fast one: whole arrays in memory (host or GPU), so a
``DataLoader`` can cut a batch out of them with a single fancy index.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.tensor import Tensor


class Dataset:
    """The protocol every dataset follows, as PyTorch's ``torch.utils.data.Dataset``:

        len(dataset)   the number of samples
        dataset[i]     sample i (an array, or a tuple such as (input, label)), 0 <= i < len

    Subclass it (or write any class with these two methods) for data that is not one
    array in memory, e.g. clips of different lengths; pair it with a ``collate_fn``.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) -> one sample")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__() -> the number of samples")


def _as_array(a, position: int):
    if isinstance(a, Tensor):
        return a.data
    if isinstance(a, numpy.ndarray) or backend.is_cupy_array(a):
        return a
    try:
        array = numpy.asarray(a)
    except ValueError:  # ragged nested lists
        array = None
    if array is None or array.dtype == object:
        raise TypeError(f"ArrayDataset: array {position} ({type(a).__name__}) is not a regular numeric array")
    return array


class ArrayDataset(Dataset):
    """Samples are rows of equally long arrays: ``dataset[i] = (arrays[0][i], arrays[1][i], ...)``.

        train = ArrayDataset(images, labels)   # images (N, 3, 32, 32) uint8, labels (N,) int
        x, y = train[0]

    The arrays may be numpy or cupy arrays (or Tensors, or lists); they are kept as they
    are. (PyTorch's TensorDataset is the same idea.)
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset: expected at least one array, got none")
        self.arrays = tuple(_as_array(a, i) for i, a in enumerate(arrays))
        for i, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"ArrayDataset: array {i} is a scalar; every array needs a first (sample) axis")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(
                f"ArrayDataset: all arrays must have the same first dimension (one row per sample), got shapes {shapes}"
            )

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        if isinstance(index, (int, numpy.integer)) and not -len(self) <= index < len(self):
            raise IndexError(f"ArrayDataset: index {index} is out of range for {len(self)} samples")
        return tuple(a[index] for a in self.arrays)

    def to(self, device) -> "ArrayDataset":
        """The same dataset with every array on ``device`` (no copy for arrays already there)."""
        return ArrayDataset(*(backend.to_device(a, device) for a in self.arrays))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"ArrayDataset({len(self)} samples: {shapes})"
