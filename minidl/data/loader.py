"""DataLoader: batches of a dataset as minidl Tensors on a device, one epoch per ``for`` loop."""

from __future__ import annotations

import math

import numpy

from minidl import backend
from minidl.backend import Device
from minidl.data.collate import default_collate
from minidl.data.split import as_array_dataset
from minidl.random import Generator, default_generator
from minidl.tensor import Tensor


def _is_seed(value) -> bool:
    return isinstance(value, (int, numpy.integer)) and not isinstance(value, bool)


def _shuffle_generator(generator):
    """What draws the shuffles: None (the CPU default generator), a CPU minidl.Generator (an
    int seed makes one) or a numpy Generator. Orders are drawn on the host, so no GPU one."""
    if _is_seed(generator):
        if generator < 0:
            raise ValueError(f"DataLoader: a generator seed must be a non-negative int, got {generator}")
        return Generator("cpu").manual_seed(int(generator))
    if isinstance(generator, Generator) and generator.device.type != "cpu":
        raise ValueError(
            f"DataLoader: the generator must be on the CPU (shuffles are drawn on the host), "
            f"got one on '{generator.device}'; use minidl.Generator('cpu')"
        )
    if not (generator is None or isinstance(generator, (Generator, numpy.random.Generator))):
        raise TypeError(
            "DataLoader: generator must be None, a minidl.Generator, an int seed or a numpy Generator, "
            f"got {type(generator).__name__}"
        )
    return generator


def _labels_as_int64(array):
    """One integer per sample is a class label: make it int64, as losses expect (PyTorch's long)."""
    if array.ndim == 1 and array.dtype.kind in "iu" and array.dtype != numpy.int64:
        return array.astype(numpy.int64)
    return array


class DataLoader:
    """Batches from ``dataset``, as Tensors on ``device``; each ``for`` loop is one epoch.

        train = DataLoader(ArrayDataset(images, labels), batch_size=512, shuffle=True,
                           device="cuda", transform=augment, generator=0)
        for epoch in range(10):
            for x, y in train:          # x (512, 3, 32, 32) float32, y (512,) int64, on the GPU
                ...

    Every sample appears exactly once per epoch: the epoch's order is 0..N-1, or with
    ``shuffle`` a fresh permutation of it, cut into consecutive batches of ``batch_size``
    (the last one shorter, or dropped with ``drop_last``; ``len(loader)`` counts batches).
    A ``sampler`` (an iterable of indices, e.g. ``minidl.distributed.DistributedSampler``,
    not with ``shuffle=True``) gives the order instead, read anew each epoch, as PyTorch's.

    Over an ``ArrayDataset`` (and no ``collate_fn``) the whole arrays are moved to
    ``device`` once, when the loader is made; each batch is then one fancy index
    ``array[indices]`` on the device. A ``Subset`` of one (``random_split``) takes the
    same path: its rows are gathered once, when the loader is made, then moved. Any
    other dataset is read sample by sample, ``dataset[i]``, and the list is joined by
    ``collate_fn`` (``default_collate`` stacks; ``pad_collate`` pads sequences), then
    moved to ``device``.

    Each batch is a tuple of Tensors, one per field (a single Tensor when the samples
    are bare arrays of a generic dataset). One integer per sample (a class label)
    comes out as int64. ``transform`` is applied to the first field (the inputs) of
    the whole batch, on the device: see ``minidl.data.transforms``.

    Arguments
    ---------
    device     where batches go (default: minidl's default device).
    generator  the shuffle's randomness: a CPU ``minidl.Generator`` (as PyTorch's), an
               int seed (made into one: ``loader.generator``) or a numpy Generator; None
               uses the CPU default generator (``minidl.manual_seed``). Orders are drawn
               on the host, so a seed gives the same order on the CPU and on a GPU;
               each epoch continues the stream, so epochs differ.

    Resuming: an epoch's order is drawn when its ``for`` loop starts. Save
    ``loader.generator.get_state()`` (or ``minidl.get_rng_state()`` when generator is None)
    between epochs, ``set_state`` it into a fresh loader's generator, and the epochs that
    follow come in the same orders as if the run had never stopped.

    A shuffled loader needs at least one sample (ValueError otherwise, as PyTorch's
    RandomSampler); an unshuffled loader over an empty dataset yields no batches.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, *, sampler=None, drop_last: bool = False,
                 device=None, transform=None, collate_fn=None, generator=None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__, got {type(dataset).__name__}")
        if not _is_seed(batch_size) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        for name, fn in (("transform", transform), ("collate_fn", collate_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"DataLoader: {name} must be callable or None, got {type(fn).__name__}")
        if sampler is not None and not hasattr(sampler, "__iter__"):
            raise TypeError(f"DataLoader: sampler must be an iterable of indices, got {type(sampler).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler is mutually exclusive with shuffle=True (the sampler sets the "
                             "order: shuffle in the sampler), got both")
        if shuffle and len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty (0 samples); shuffle=True needs at least one sample")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.drop_last = bool(drop_last)
        self.device = backend.get_default_device() if device is None else Device(device)
        backend.check_device_usable(self.device)
        self.transform = transform
        self.collate_fn = collate_fn
        self.generator = _shuffle_generator(generator)
        self._arrays = None  # the dataset's arrays on self.device, for the fast path
        arrays = as_array_dataset(dataset) if collate_fn is None else None
        if arrays is not None:
            self._arrays = tuple(_labels_as_int64(a) for a in arrays.to(self.device).arrays)

    def __len__(self) -> int:
        return self._batches(len(self.dataset) if self.sampler is None else len(self.sampler))

    def _batches(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_order(self) -> numpy.ndarray:
        """The order of the sample indices for a new epoch (on the host)."""
        n = len(self.dataset)
        if self.sampler is not None:
            order = numpy.fromiter(self.sampler, dtype=numpy.int64)
            if order.size and not (0 <= order.min() and order.max() < n):
                raise IndexError(f"DataLoader: the sampler gave indices in [{order.min()}, {order.max()}], "
                                 f"expected them in [0, {n - 1}] for a dataset of {n} samples")
            return order
        if not self.shuffle:
            return numpy.arange(n)
        generator = default_generator("cpu") if self.generator is None else self.generator
        return generator.permutation(n)

    def __iter__(self):
        order = self.epoch_order()
        if self._arrays is not None:
            order = backend.to_device(order, self.device)  # one copy per epoch
        for start in range(0, self._batches(len(order)) * self.batch_size, self.batch_size):
            indices = order[start:start + self.batch_size]
            if self._arrays is not None:
                yield self._finish(tuple(a[indices] for a in self._arrays))
            else:
                yield self._finish(self._gather(indices))

    def _gather(self, indices):
        """The slow, general path: one ``dataset[i]`` per sample, joined by collate_fn."""
        collate = default_collate if self.collate_fn is None else self.collate_fn
        batch = collate([self.dataset[int(i)] for i in indices])
        if isinstance(batch, (tuple, list)):
            return tuple(_labels_as_int64(backend.to_device(_raw(f), self.device)) for f in batch)
        return backend.to_device(_raw(batch), self.device)

    def _finish(self, batch):
        """Apply the transform to the inputs and wrap every field as a Tensor."""
        if not isinstance(batch, tuple):
            return Tensor.wrap(batch if self.transform is None else self.transform(batch))
        if self.transform is not None:
            batch = (self.transform(batch[0]),) + batch[1:]
        return tuple(Tensor.wrap(field) for field in batch)

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, device='{self.device}', {len(self)} batches)"
        )


def _raw(field):
    return field.data if isinstance(field, Tensor) else field
