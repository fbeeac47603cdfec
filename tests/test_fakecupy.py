"""The fake GPU of minidl/fakecupy/ keeps cupy's rules, so a green fake-cuda run means something.

These run on every machine (they need no GPU and install nothing for other tests).
"""

import numpy as np
import pytest

import fakecupy as cp
import minidl
from minidl import backend


def test_device_arrays_compute_like_numpy_and_stay_on_the_device():
    host = np.arange(6.0).reshape(2, 3)
    a = cp.asarray(host)
    b = cp.exp(a) * 2 + a.T.T - 1
    assert isinstance(b, cp.ndarray) and not isinstance(b, np.ndarray)
    np.testing.assert_allclose(cp.asnumpy(b), np.exp(host) * 2 + host - 1)
    assert isinstance(a.sum(), cp.ndarray) and a.sum().shape == ()  # reductions give 0-d device arrays
    assert isinstance(a[0, 1], cp.ndarray) and float(a[0, 1]) == 1.0 and a.sum().item() == 15.0
    assert isinstance(np.pad(a, 1), cp.ndarray)  # numpy functions dispatch to the device, as with cupy
    assert a.device.id == 0 and a.get().base is None  # .get() is a host copy


@pytest.mark.parametrize(
    "mix",
    [
        lambda a: a + np.ones(3),
        lambda a: np.ones(3) * a,
        lambda a: a - np.array(1.0),  # a 0-d host array is refused too
        lambda a: a + [1.0, 2.0, 3.0],
        lambda a: cp.maximum(a, np.zeros(3)),
        lambda a: cp.concatenate([a, np.ones((1, 3))]),
        lambda a: np.asarray(a),
        lambda a: np.array([a, a]),
        lambda a: cp.exp(np.ones(3)),
        lambda a: a.sum(where=a > 0),
    ],
)
def test_host_device_mixing_is_refused_as_cupy_refuses_it(mix):
    a = cp.ones((2, 3))
    with pytest.raises(TypeError):
        mix(a)


def test_scalars_host_indices_and_explicit_moves_are_allowed():
    a = cp.zeros((2, 3))
    a += np.float32(1) + 1
    a[np.array([1]), [0, 2]] = np.array([5.0, 6.0])  # advanced indexing copies host data in
    assert a[np.array([1, 1])].shape == (2, 3)
    np.testing.assert_array_equal(a.get(), [[2, 2, 2], [5, 2, 6]])
    with pytest.raises(ValueError, match="fill"):
        a[0] = np.ones(3)  # a basic-slice assignment of host data is not


def test_random_generator_and_add_at_keep_cupys_limits():
    rng = cp.random.default_rng(0)
    assert isinstance(rng.random((2,), dtype=np.float32), cp.ndarray) and rng.integers(0, 5, (3,)).dtype == np.int64
    for missing in ("permutation", "choice", "normal"):
        assert not hasattr(rng, missing)
    target = cp.zeros(3)
    cp.add.at(target, cp.asarray(np.array([0, 0, 2])), cp.ones(3))
    np.testing.assert_array_equal(target.get(), [2, 0, 1])
    with pytest.raises(TypeError, match="scatter_add"):
        cp.add.at(cp.zeros(3, dtype=np.int64), np.array([0]), 1)


def test_installed_fake_runs_minidl_on_cuda_and_catches_a_mix(monkeypatch):
    monkeypatch.setattr(backend, "cupy", cp)
    monkeypatch.setattr(minidl.kernels.CupyBackend, "xp", cp)
    monkeypatch.setattr(minidl.random, "_default_generators", {})
    assert minidl.cuda.is_available()
    x = minidl.randn(2, 3, device="cuda", requires_grad=True)
    (x * x).sum().backward()
    assert isinstance(x.grad.data, cp.ndarray) and x.grad.device == "cuda:0"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())
    with pytest.raises(TypeError, match="Unsupported type"):
        x.data + np.ones((2, 3))  # the bug class the fake is for
