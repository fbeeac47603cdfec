"""Gradient clipping against a plain numpy reference."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.nn.utils import clip_grad_norm_, clip_grad_value_

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
shape_lists = st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), min_size=1, max_size=4)


def params_with_grads(grads, device):
    params = []
    for g in grads:
        p = Parameter(minidl.zeros(*g.shape, dtype="float64", device=device))
        p.grad = minidl.tensor(g, device=device)
        params.append(p)
    return params


@fixture_ok
@given(shapes=shape_lists, norm_type=st.sampled_from([1.0, 2.0, 3.0, math.inf]), max_norm=st.floats(0.01, 10.0),
       seed=st.integers(0, 2**16))
def test_clip_grad_norm_matches_the_reference(device, shapes, norm_type, max_norm, seed):
    rng = np.random.default_rng(seed)
    grads = [rng.normal(size=s) * 3 for s in shapes]
    flat = np.concatenate([g.ravel() for g in grads])
    total = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    coef = min(1.0, max_norm / (total + 1e-6))

    params = params_with_grads(grads, device)
    returned = clip_grad_norm_(params, max_norm, norm_type)
    assert isinstance(returned, minidl.Tensor) and returned.shape == ()
    np.testing.assert_allclose(returned.item(), total, rtol=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-12)


def test_clip_grad_norm_by_hand():
    p = Parameter(minidl.zeros(2))
    p.grad = minidl.tensor([3.0, 4.0])  # norm 5
    assert clip_grad_norm_(p, max_norm=1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    assert p.grad.dtype == np.float32
    assert clip_grad_norm_([p], max_norm=10.0).item() == pytest.approx(1.0, rel=1e-5)  # below max: unchanged
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)


def test_grads_sharing_one_array_are_each_scaled_once():
    a, b = Parameter(minidl.zeros(2)), Parameter(minidl.zeros(2))
    (a + b).sum().backward()  # Add's backward may hand both leaves the same array
    clip_grad_norm_([a, b], max_norm=1.0)
    expected = 1.0 / (2.0 + 1e-6)
    np.testing.assert_allclose(a.grad.numpy(), [expected] * 2, rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), [expected] * 2, rtol=1e-6)


def test_parameters_without_grads_are_skipped():
    a, b = Parameter(minidl.zeros(2)), Parameter(minidl.zeros(2))
    assert clip_grad_norm_([a, b], 1.0).item() == 0.0
    a.grad = minidl.tensor([0.0, 2.0])
    assert clip_grad_norm_(iter([a, b]), 1.0).item() == pytest.approx(2.0)
    assert b.grad is None


def test_error_if_nonfinite():
    p = Parameter(minidl.zeros(2))
    p.grad = minidl.tensor([1.0, float("nan")])
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0 .* is non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isnan(clip_grad_norm_([p], 1.0).item())


def test_clip_grad_value_(device):
    p = Parameter(minidl.zeros(4, device=device))
    p.grad = minidl.tensor([-3.0, -0.5, 0.5, 3.0], device=device)
    assert clip_grad_value_([p], 1.0) is None
    np.testing.assert_array_equal(p.grad.numpy(), [-1.0, -0.5, 0.5, 1.0])


def test_bad_arguments_are_named():
    p = Parameter(minidl.zeros(2))
    p.grad = minidl.ones(2)
    with pytest.raises(ValueError, match="clip_grad_norm_: expected norm_type to be a positive number or inf, got -1"):
        clip_grad_norm_([p], 1.0, norm_type=-1)
    with pytest.raises(TypeError, match="clip_grad_norm_: expected Tensors \\(parameters\\), got a str"):
        clip_grad_norm_(["w"], 1.0)
    with pytest.raises(ValueError, match=r"clip_grad_value_: expected clip_value to be a finite number in \[0, inf\], got -1.0"):
        clip_grad_value_([p], -1.0)
