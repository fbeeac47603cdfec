"""Holding data out: ``Subset`` (some samples of a dataset) and ``random_split``, as PyTorch's.

    train_set, val_set = random_split(ArrayDataset(images, labels), [0.9, 0.1], generator=0)
    train = DataLoader(train_set, batch_size=512, shuffle=True, device="cuda")
    val = DataLoader(val_set, batch_size=1024, device="cuda")

A Subset of an ``ArrayDataset`` stays on the DataLoader's fast path: the loader gathers
the subset's rows once, when it is made (one fancy index per array), moves them to its
device, and cuts every batch out of them as it does for an ArrayDataset.
"""

from __future__ import annotations

import math

import numpy

from minidl import backend, checks
from minidl.data.dataset import ArrayDataset
from minidl.random import Generator, default_generator
from minidl.tensor import Tensor


class Subset:
    """The samples of ``dataset`` at ``indices``: ``subset[i] = dataset[indices[i]]``.

    ``indices`` is a sequence (or 1-d array) of ints in [0, len(dataset)), kept as an int64
    numpy array (``subset.indices``); ``subset.dataset`` is the dataset it reads from.
    """

    def __init__(self, dataset, indices):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            checks.fail("Subset", "a dataset (with __len__ and __getitem__)", type(dataset).__name__, TypeError)
        self.dataset = dataset
        self.indices = _as_indices(indices, len(dataset))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        if checks.is_int(index):
            if not -len(self) <= index < len(self):
                raise IndexError(f"Subset: index {index} is out of range for {len(self)} samples")
            return self.dataset[int(self.indices[index])]
        return self.dataset[self.indices[index]]  # a slice or an index array: one index into the dataset

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.dataset!r})"


def _as_indices(indices, n: int) -> numpy.ndarray:
    """``indices`` as a 1-d int64 numpy array of positions in [0, n)."""
    if isinstance(indices, Tensor):
        indices = indices.data
    array = numpy.asarray(backend.to_numpy(indices) if backend.is_cupy_array(indices) else indices)
    if array.size == 0:
        return numpy.zeros(0, dtype=numpy.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        got = f"an array of dtype {array.dtype} and shape {array.shape}"
        raise TypeError(f"Subset: expected indices to be a 1-d sequence of ints, got {got}")
    if array.min() < 0 or array.max() >= n:
        bad = int(array[(array < 0) | (array >= n)][0])
        raise IndexError(f"Subset: expected indices in [0, {n}) (the dataset's samples), got {bad}")
    return array.astype(numpy.int64)


def as_array_dataset(dataset):
    """An ArrayDataset with the samples of ``dataset``, when it is an ArrayDataset (itself)
    or a Subset (of a Subset ...) of one (the rows gathered once, on the arrays' device);
    None for any other dataset."""
    rows = None
    while isinstance(dataset, Subset):
        rows = dataset.indices if rows is None else dataset.indices[rows]
        dataset = dataset.dataset
    if not isinstance(dataset, ArrayDataset):
        return None
    if rows is None:
        return dataset
    return ArrayDataset(*(a[backend.to_device(rows, backend.device_of(a))] for a in dataset.arrays))


def random_split(dataset, lengths, generator=None) -> list:
    """Split ``dataset`` into disjoint Subsets of the given ``lengths``, at random.

    ``lengths`` are counts that add up to ``len(dataset)``, or fractions that add up to 1:
    each subset then gets ``floor(fraction * len(dataset))`` samples, and the samples left
    over go one each to the first subsets (round robin), as in PyTorch. (Counts are ints;
    any float makes them fractions, where PyTorch reads ``[1, 0]`` as fractions too.)

    The split is one permutation of ``range(len(dataset))`` cut into consecutive pieces:
    disjoint, together every sample once. ``generator`` draws it: a CPU ``minidl.Generator``,
    an int seed (the same seed, the same split) or None (the CPU default generator, seeded
    by ``minidl.manual_seed``).
    """
    n = len(dataset)
    counts = _counts(lengths, n)
    order = _split_generator(generator).permutation(n)
    ends = numpy.cumsum(counts)
    return [Subset(dataset, order[end - count:end]) for count, end in zip(counts, ends)]


def _counts(lengths, n: int) -> list:
    """The number of samples in each subset, from counts or fractions (see random_split)."""
    if not isinstance(lengths, (list, tuple)) or not lengths or not all(checks.is_real(x) for x in lengths):
        checks.fail("random_split", "lengths to be a non-empty list of counts or fractions", lengths, TypeError)
    if all(checks.is_int(x) for x in lengths):
        counts = [int(x) for x in lengths]
        if min(counts) < 0 or sum(counts) != n:
            checks.fail("random_split", f"non-negative counts that add up to the dataset's {n} samples", lengths)
        return counts
    if not all(0 <= x <= 1 for x in lengths) or not math.isclose(sum(lengths), 1):
        checks.fail("random_split", "fractions in [0, 1] that add up to 1 (or int counts)", lengths)
    counts = [math.floor(n * fraction) for fraction in lengths]
    for i in range(n - sum(counts)):  # what flooring left over: one each, round robin
        counts[i % len(counts)] += 1
    return counts


def _split_generator(generator):
    """None (the CPU default generator), a CPU minidl.Generator, an int seed or a numpy Generator."""
    if checks.is_int(generator):
        if generator < 0:
            checks.fail("random_split", "a non-negative int as the generator seed", generator)
        return Generator("cpu").manual_seed(int(generator))
    if generator is None:
        return default_generator("cpu")
    if isinstance(generator, Generator) and generator.device.type != "cpu":
        checks.fail("random_split", "a CPU generator (the permutation is drawn on the host)",
                    f"one on '{generator.device}'")
    if not isinstance(generator, (Generator, numpy.random.Generator)):
        checks.fail("random_split", "None, a minidl.Generator, an int seed or a numpy Generator",
                    type(generator).__name__, TypeError)
    return generator
