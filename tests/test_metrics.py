import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.metrics import accuracy, classification_report, confusion_matrix, precision_recall_f1


@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=40))
def test_confusion_matrix_counts_pairs(extra, pairs):
    k = 6 + extra
    target = np.array([t for t, _ in pairs])
    predicted = np.array([p for _, p in pairs])
    expected = np.zeros((k, k), dtype=np.int64)
    for t, p in pairs:  # the plain loop the vectorised version must match
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(predicted, target, k), expected)
    assert accuracy(predicted, target) == pytest.approx(np.mean(predicted == target))


def test_precision_recall_f1_by_hand():
    # class 0: 2 right, 1 predicted as 1; class 1: 1 right; class 2 never predicted
    m = np.array([[2, 1, 0], [0, 1, 0], [0, 1, 0]])
    p, r, f = precision_recall_f1(m)
    np.testing.assert_allclose(p, [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(r, [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(f, [0.8, 0.5, 0.0])
    text = classification_report(m, ["a", "b", "c"])
    assert "precision" in text and "accuracy" in text


def test_accepts_tensors_and_rejects_bad_labels():
    assert accuracy(minidl.tensor([1, 2, 3]), np.array([1, 2, 0])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"confusion_matrix: target labels must lie in \[0, 2\)"):
        confusion_matrix(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="accuracy: predicted has 2 labels, target has 3"):
        accuracy(np.array([0, 1]), np.array([0, 1, 1]))
