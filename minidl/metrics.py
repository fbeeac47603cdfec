"""Classification metrics: accuracy, confusion matrix, per-class precision / recall / F1.

All take integer class labels (numpy or cupy arrays, or Tensors) and return host numpy
values, so they can be printed and plotted directly.
"""

from __future__ import annotations

import numpy

from minidl import backend
from minidl.tensor import Tensor


def _labels(x):
    x = x.data if isinstance(x, Tensor) else x
    return backend.to_numpy(x).astype(numpy.int64).reshape(-1)


def accuracy(predicted, target) -> float:
    """Fraction of positions where ``predicted == target``."""
    predicted, target = _labels(predicted), _labels(target)
    if predicted.shape != target.shape:
        raise ValueError(f"accuracy: predicted has {predicted.size} labels, target has {target.size}")
    return float((predicted == target).mean()) if target.size else float("nan")


def confusion_matrix(predicted, target, num_classes: int) -> numpy.ndarray:
    """M[i, j] = number of samples of true class i predicted as class j."""
    predicted, target = _labels(predicted), _labels(target)
    if predicted.shape != target.shape:
        raise ValueError(f"confusion_matrix: predicted has {predicted.size} labels, target has {target.size}")
    for name, labels in (("predicted", predicted), ("target", target)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    return numpy.bincount(target * num_classes + predicted, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def precision_recall_f1(matrix: numpy.ndarray):
    """Per-class precision TP/(TP+FP), recall TP/(TP+FN) and F1 = 2PR/(P+R) from a confusion matrix.

    A class never predicted (or never present) gets 0 rather than a division by zero.
    """
    matrix = numpy.asarray(matrix, dtype=numpy.float64)
    true_positive = numpy.diag(matrix)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = numpy.divide(true_positive, predicted, out=numpy.zeros_like(true_positive), where=predicted > 0)
    recall = numpy.divide(true_positive, actual, out=numpy.zeros_like(true_positive), where=actual > 0)
    total = precision + recall
    f1 = numpy.divide(2 * precision * recall, total, out=numpy.zeros_like(total), where=total > 0)
    return precision, recall, f1


def classification_report(matrix: numpy.ndarray, class_names) -> str:
    """A plain-text table: class, precision, recall, F1, support; then accuracy."""
    precision, recall, f1 = precision_recall_f1(matrix)
    support = numpy.asarray(matrix).sum(axis=1)
    width = max(len("class"), *(len(str(n)) for n in class_names))
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name, p, r, f, s in zip(class_names, precision, recall, f1, support):
        lines.append(f"{str(name):<{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {int(s):7d}")
    total = numpy.asarray(matrix).sum()
    accuracy_value = numpy.trace(matrix) / total if total else float("nan")
    lines.append(f"{'accuracy':<{width}}  {accuracy_value:.4f} over {int(total)} samples")
    lines.append(f"{'macro F1':<{width}}  {f1.mean():.4f}")
    return "\n".join(lines)
