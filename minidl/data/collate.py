"""Collating: turning a list of samples into one batch.

A ``DataLoader`` over a generic ``Dataset`` fetches samples one by one and hands the
list to a ``collate_fn``. ``default_collate`` stacks samples of equal shape;
``pad_collate`` pads sequences of different lengths and says how long each one was.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.backend import get_array_module
from minidl.tensor import Tensor


def _is_array(x) -> bool:
    return isinstance(x, (numpy.ndarray, Tensor)) or backend.is_cupy_array(x)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def default_collate(samples):
    """Stack a list of samples into a batch, field by field:

        [(x0, y0), (x1, y1), ...]  ->  (stack([x0, x1, ...]), array([y0, y1, ...]))

    Arrays (numpy, cupy or Tensors) are stacked along a new first axis; Python ints
    become int64, floats float32, bools bool (as minidl.tensor would make them).
    """
    if len(samples) == 0:
        raise ValueError("default_collate: expected a non-empty list of samples, got an empty one")
    first = samples[0]
    if isinstance(first, (tuple, list)):
        if any(not isinstance(s, (tuple, list)) or len(s) != len(first) for s in samples):
            raise ValueError(f"default_collate: every sample must be a tuple of {len(first)} fields, like the first")
        return tuple(default_collate([s[k] for s in samples]) for k in range(len(first)))
    if _is_array(first):
        arrays = [_raw(s) for s in samples]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(
                f"default_collate: cannot stack samples of different shapes {sorted(shapes)[:4]}; "
                "for sequences of different lengths use collate_fn=minidl.data.pad_collate"
            )
        return get_array_module(*arrays).stack(arrays)
    values = numpy.asarray(samples)
    if values.dtype.kind == "f" and all(isinstance(s, float) for s in samples):
        return values.astype(numpy.float32)
    if values.dtype.kind in "iu" and all(isinstance(s, int) for s in samples):
        return values.astype(numpy.int64)
    if values.dtype == object or values.dtype.kind in "USV":
        raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; write a collate_fn")
    return values


def pad_sequences(sequences, batch_first: bool = True, padding_value: float = 0.0):
    """Pad sequences of different lengths to the longest one; also return their lengths.

        sequences: a list of N arrays (T_i, *F) (numpy, cupy or Tensors; same trailing shape F)
        returns    padded (N, T_max, *F) (batch_first) or (T_max, N, *F), and lengths (N,) int64

        padded[i, t] = sequences[i][t]  for t < T_i,   padding_value  for T_i <= t < T_max

    All sequences are joined end to end, then written into the padded block with one
    scatter: row i, columns 0..T_i-1 (no Python loop over samples).
    PyTorch's nn.utils.rnn.pad_sequence does the padding (its batch_first defaults to
    False) but returns no lengths.
    """
    if len(sequences) == 0:
        raise ValueError("pad_sequences: expected a non-empty list of sequences, got an empty one")
    arrays = [_raw(s) for s in sequences]
    for i, a in enumerate(arrays):
        if not _is_array(a) or a.ndim == 0:
            what = f"shape {a.shape}" if _is_array(a) else type(a).__name__
            raise ValueError(
                f"pad_sequences: sequence {i} must be an array with a time axis first (T, ...), got {what}"
            )
    trailing = {a.shape[1:] for a in arrays}
    if len(trailing) > 1:
        raise ValueError(
            f"pad_sequences: every sequence must have the same shape after its time axis, got {sorted(trailing)}"
        )
    xp = get_array_module(*arrays)
    lengths = numpy.array([len(a) for a in arrays], dtype=numpy.int64)
    count, longest, total = len(arrays), int(lengths.max()), int(lengths.sum())
    values = xp.concatenate(arrays)  # (sum of T_i, *F)
    padded = xp.full((count, longest) + values.shape[1:], padding_value, dtype=values.dtype)
    starts = numpy.cumsum(lengths) - lengths
    row = numpy.repeat(numpy.arange(count), lengths)  # which sequence each joined step came from
    column = numpy.arange(total) - numpy.repeat(starts, lengths)  # its time inside that sequence
    padded[xp.asarray(row), xp.asarray(column)] = values
    if not batch_first:
        padded = xp.ascontiguousarray(padded.swapaxes(0, 1))
    return padded, xp.asarray(lengths)


def pad_collate(samples, batch_first: bool = True, padding_value: float = 0.0):
    """A collate_fn for samples (sequence, label, ...) whose sequences differ in length:

        [(seq0, y0), (seq1, y1), ...]  ->  (padded, lengths, labels)

    The first field is padded with ``pad_sequences``; the other fields are batched with
    ``default_collate``. Samples that are bare sequences give (padded, lengths).
    Other settings: ``functools.partial(pad_collate, padding_value=-1.0)``.
    """
    if len(samples) == 0:
        raise ValueError("pad_collate: expected a non-empty list of samples, got an empty one")
    if not isinstance(samples[0], (tuple, list)):
        return pad_sequences(samples, batch_first, padding_value)
    fields = default_collate([tuple(s[1:]) for s in samples]) if len(samples[0]) > 1 else ()
    return pad_sequences([s[0] for s in samples], batch_first, padding_value) + tuple(fields)


__all__ = ["default_collate", "pad_sequences", "pad_collate"]
