"""Every fused Function's ``composed`` twin computes what the Function computes.

A fused Function (forward on arrays, hand-written backward on arrays) records nothing in
its backward, so for create_graph=True the engine differentiates its ``composed`` twin
instead. If the two disagree, second derivatives are silently wrong. This file finds every
Function subclass in minidl that defines ``composed`` and checks, in float64, over shapes
that hypothesis draws:

* forward: the Function's outputs equal the twin's;
* backward: the Function's hand-written gradients equal autograd's gradients of the twin;
* gradgradcheck through the Function (which goes through the twin) passes.

A class with ``composed`` but no entry in ``CASES`` fails ``test_every_twin_is_tested``:
a new fused op can't be forgotten here.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.autograd import Function
from minidl.ops import norm, recurrent
from minidl.ops.conv import Convolution
from minidl.ops.recurrent_cells import CELLS
from test_kernels_conv import convolution_case  # noqa: E402 (tests/ is on sys.path)

small = st.integers(1, 3)
seeds = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------- #
# Finding the twins
# --------------------------------------------------------------------------- #
def function_classes():
    """Every subclass of Function defined so far, at any depth."""
    found, stack = [], list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def classes_with_twins(classes):
    return [cls for cls in classes if getattr(cls, "composed", None) is not None]


def missing_cases(classes, cases):
    """Names of the classes with a ``composed`` twin that ``cases`` has no factory for."""
    return sorted(cls.__qualname__ for cls in classes_with_twins(classes) if cls not in cases)


# --------------------------------------------------------------------------- #
# Input factories: each draws (a maker of a fresh Function on ``device``, float64 input arrays)
# --------------------------------------------------------------------------- #
def batch_norm_case(data, device):
    shape = (data.draw(st.integers(2, 4)), data.draw(small), *data.draw(st.lists(small, max_size=2)))
    rng = np.random.default_rng(data.draw(seeds))
    eps = data.draw(st.sampled_from([1e-5, 0.1]))
    arrays = [rng.standard_normal(shape), rng.standard_normal(shape[1]), rng.standard_normal(shape[1])]
    return (lambda: norm.BatchNorm(eps)), arrays


def _recurrent_arrays(data, cell, sequence):
    """x ((T,) B, D), the state, W_ih, W_hh, b_ih, b_hh for ``cell``."""
    steps, batch, inputs, hidden = (data.draw(small) for _ in range(4))
    rng = np.random.default_rng(data.draw(seeds))
    rows = cell.gates * hidden
    x = rng.uniform(-1, 1, ((steps,) if sequence else ()) + (batch, inputs))
    state = [rng.uniform(-1, 1, (batch, hidden)) for _ in range(cell.num_states)]
    weights = [rng.uniform(-1, 1, shape) for shape in ((rows, inputs), (rows, hidden), (rows,), (rows,))]
    return [x, *state, *weights]


def fused_cell_case(data, device):
    cell = CELLS[data.draw(st.sampled_from(sorted(CELLS)))]
    return (lambda: recurrent.FusedCell(cell)), _recurrent_arrays(data, cell, sequence=False)


def fused_recurrence_case(data, device):
    cell = CELLS[data.draw(st.sampled_from(sorted(CELLS)))]
    arrays = _recurrent_arrays(data, cell, sequence=True)
    steps, batch = arrays[0].shape[:2]
    lengths = data.draw(st.lists(st.integers(0, steps), min_size=batch, max_size=batch))
    mask = recurrent.lengths_to_mask(lengths, steps, batch, minidl.tensor(arrays[0], device=device))  # None: no padding
    return (lambda: recurrent.FusedRecurrence(cell, mask)), arrays


CASES = {
    norm.BatchNorm: batch_norm_case,
    Convolution: convolution_case,
    recurrent.FusedCell: fused_cell_case,
    recurrent.FusedRecurrence: fused_recurrence_case,
}


# --------------------------------------------------------------------------- #
# The checks
# --------------------------------------------------------------------------- #
def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def test_every_twin_is_tested():
    missing = missing_cases(function_classes(), CASES)
    assert not missing, f"Functions with a composed twin but no input factory in CASES: {missing}"


def test_the_table_check_can_fail():
    class Fused(Function):
        def composed(self, x):
            return x

    assert missing_cases([norm.BatchNorm, Fused], CASES) == [Fused.__qualname__]
    assert missing_cases([norm.BatchNorm], CASES) == []


def draw_case(data, cls, device):
    """A fresh-Function maker and float64 leaves on ``device``; at least one requires grad."""
    make, arrays = CASES[cls](data, device)
    needs = data.draw(st.lists(st.booleans(), min_size=len(arrays), max_size=len(arrays)).filter(any))
    leaves = [minidl.tensor(a, dtype=np.float64, device=device, requires_grad=n) for a, n in zip(arrays, needs)]
    return make, leaves


def gradients(outputs, leaves, cotangents):
    wanted = [t for t in leaves if t.requires_grad]
    grads = minidl.grad(outputs, wanted, cotangents, allow_unused=True)
    return [np.zeros(t.shape) if g is None else g.numpy() for g, t in zip(grads, wanted)]


@pytest.mark.parametrize("cls", list(CASES), ids=lambda cls: cls.__name__)
@settings(max_examples=12)
@given(data=st.data())
def test_function_equals_its_twin(device, cls, data):
    make, leaves = draw_case(data, cls, device)
    fused = as_tuple(make()(*leaves))
    twin = as_tuple(make().composed(*leaves))
    assert len(fused) == len(twin), f"{cls.__name__}: {len(fused)} outputs, its twin {len(twin)}"
    for i, (f, c) in enumerate(zip(fused, twin)):
        assert f.shape == c.shape, f"{cls.__name__} output {i}: shape {f.shape}, twin's {c.shape}"
        np.testing.assert_allclose(f.numpy(), c.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"output {i}")

    rng = np.random.default_rng(0)
    cotangents = [minidl.tensor(rng.standard_normal(f.shape), dtype=np.float64, device=device) for f in fused]
    for i, (f, c) in enumerate(zip(gradients(fused, leaves, cotangents), gradients(twin, leaves, cotangents))):
        np.testing.assert_allclose(f, c, rtol=1e-9, atol=1e-11, err_msg=f"{cls.__name__}: gradient of input {i}")


@pytest.mark.parametrize("cls", list(CASES), ids=lambda cls: cls.__name__)
@settings(max_examples=6)
@given(data=st.data())
def test_second_derivatives_through_the_function(device, cls, data):
    make, leaves = draw_case(data, cls, device)
    assert minidl.gradgradcheck(lambda *inputs: make()(*inputs), leaves)
