"""The optim family of the backend table: SGD and Adam over lists of arrays, in place.

* the NumPy twin against PyTorch's update formulas written out per parameter in float64
  (hypothesis draws the shapes, the hyper-parameters and the number of steps);
* on the fake GPU (``-m gpu`` with MINIDL_FAKE_CUDA=1): the multi-tensor kernels, run through their
  emulation, equal the twin; one launch per step for a whole group; versions bumped; the classic
  CNN's ``opt.step()`` counted with the stand-in's meter.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl import backend, kernels
from minidl.kernels import optim as optim_kernels
from minidl.nn import Parameter
from minidl.optim import SGD, Adam, AdamW

shapes = st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple), min_size=1, max_size=4)
FAKE = backend.cupy is not None and getattr(backend.cupy, "array_at", None) is not None
needs_fake = pytest.mark.skipif(not FAKE, reason="needs the CPU stand-in for cupy (MINIDL_FAKE_CUDA=1): "
                                "it counts launches and runs the kernels through their emulation")


# --------------------------------------------------------------------------- #
# References: PyTorch's equations, one parameter, float64, written out
# --------------------------------------------------------------------------- #
def sgd_reference(p, grads, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """torch.optim.SGD's update for a sequence of gradients."""
    p, b = p.copy(), None
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        if momentum != 0:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p, b


def adam_reference(p, grads, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    """torch.optim.Adam / AdamW for a sequence of gradients: returns p, m, v, v_max."""
    p = p.copy()
    m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = np.maximum(v_max, v)
        m_hat, v_hat = m / (1 - beta1**t), (v_max if amsgrad else v) / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v, v_max


sgd_hyper = st.fixed_dictionaries(dict(
    lr=st.floats(0.0, 0.5), momentum=st.sampled_from([0.0, 0.5, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
    weight_decay=st.sampled_from([0.0, 0.01, 0.5]), nesterov=st.booleans(), maximize=st.booleans()))
adam_hyper = st.fixed_dictionaries(dict(
    lr=st.floats(1e-4, 0.3), beta1=st.sampled_from([0.0, 0.5, 0.9]), beta2=st.sampled_from([0.9, 0.999]),
    eps=st.sampled_from([1e-8, 1e-3]), weight_decay=st.sampled_from([0.0, 0.01, 0.3]), decoupled=st.booleans(),
    amsgrad=st.booleans(), maximize=st.booleans()))


def draw_arrays(shapes, steps, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return params, grads


def sgd_fix(hyper):
    if hyper["nesterov"] and (hyper["momentum"] == 0 or hyper["dampening"] != 0):
        hyper["nesterov"] = False
    return hyper


def run_sgd(table, params, grads_per_step, hyper):
    """``table.sgd_step`` over the steps, buffers allocated uninitialised as SGD does."""
    xp = backend.get_array_module(params[0])
    buffers = [xp.empty(p.shape, p.dtype) for p in params] if hyper["momentum"] else [None] * len(params)
    for step, grads in enumerate(grads_per_step):
        table.sgd_step(params, grads, buffers, **hyper, first_step=step == 0)
    return buffers


def run_adam(table, params, grads_per_step, hyper):
    xp = backend.get_array_module(params[0])
    m, v, v_max = ([xp.zeros(p.shape, p.dtype) for p in params] for _ in range(3))
    for t, grads in enumerate(grads_per_step, start=1):
        table.adam_step(params, grads, m, v, v_max, t, **hyper)
    return m, v, v_max


# --------------------------------------------------------------------------- #
# The twin against the references
# --------------------------------------------------------------------------- #
@settings(deadline=None, max_examples=60)
@given(shapes=shapes, steps=st.integers(1, 5), hyper=sgd_hyper, seed=st.integers(0, 2**16))
def test_sgd_twin_matches_pytorchs_equations(shapes, steps, hyper, seed):
    hyper = sgd_fix(hyper)
    params, grads = draw_arrays(shapes, steps, seed)
    expected = [sgd_reference(p, [g[i] for g in grads], **hyper) for i, p in enumerate(params)]
    buffers = run_sgd(kernels.NumpyBackend, params, grads, hyper)
    for p, b, (p_ref, b_ref) in zip(params, buffers, expected):
        np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-12)
        if hyper["momentum"]:
            np.testing.assert_allclose(b, b_ref, rtol=1e-12, atol=1e-12)


@settings(deadline=None, max_examples=60)
@given(shapes=shapes, steps=st.integers(1, 6), hyper=adam_hyper, seed=st.integers(0, 2**16))
def test_adam_twin_matches_pytorchs_equations(shapes, steps, hyper, seed):
    params, grads = draw_arrays(shapes, steps, seed)
    expected = [adam_reference(p, [g[i] for g in grads], **hyper) for i, p in enumerate(params)]
    m, v, v_max = run_adam(kernels.NumpyBackend, params, grads, hyper)
    for i, (p_ref, m_ref, v_ref, v_max_ref) in enumerate(expected):
        np.testing.assert_allclose(params[i], p_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m[i], m_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(v[i], v_ref, rtol=1e-12, atol=1e-14)
        if hyper["amsgrad"]:
            np.testing.assert_allclose(v_max[i], v_max_ref, rtol=1e-12, atol=1e-14)


def test_adam_scalars_are_the_bias_corrections():
    decay, step_size, bc2 = optim_kernels.adam_scalars(3, 0.1, 0.9, 0.999, 0.01)
    assert decay == pytest.approx(1 - 0.001)
    assert step_size == pytest.approx(0.1 / (1 - 0.9**3))
    assert bc2 == pytest.approx(math.sqrt(1 - 0.999**3))


# --------------------------------------------------------------------------- #
# The kernels (emulated on the fake GPU) against the twin
# --------------------------------------------------------------------------- #
def on_device(arrays):
    return [backend.cupy.asarray(a) for a in arrays]


def host(arrays):
    return [None if a is None else backend.cupy.asnumpy(a) for a in arrays]


@settings(deadline=None, max_examples=25)
@given(shapes=shapes, steps=st.integers(1, 4), hyper=sgd_hyper, seed=st.integers(0, 2**16))
@pytest.mark.gpu
@needs_fake
def test_sgd_kernel_equals_the_twin(shapes, steps, hyper, seed):
    hyper = sgd_fix(hyper)
    params, grads = draw_arrays(shapes, steps, seed, np.float32)
    twin_params = [p.copy() for p in params]
    twin_buffers = run_sgd(kernels.NumpyBackend, twin_params, grads, hyper)
    device_params = on_device(params)
    device_buffers = run_sgd(kernels.CupyBackend, device_params, [on_device(g) for g in grads], hyper)
    for got, want in zip(host(device_params) + host(device_buffers), twin_params + twin_buffers):
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


@settings(deadline=None, max_examples=25)
@given(shapes=shapes, steps=st.integers(1, 4), hyper=adam_hyper, seed=st.integers(0, 2**16))
@pytest.mark.gpu
@needs_fake
def test_adam_kernel_equals_the_twin(shapes, steps, hyper, seed):
    params, grads = draw_arrays(shapes, steps, seed, np.float32)
    twin_params = [p.copy() for p in params]
    twin_states = run_adam(kernels.NumpyBackend, twin_params, grads, hyper)
    device_params = on_device(params)
    device_states = run_adam(kernels.CupyBackend, device_params, [on_device(g) for g in grads], hyper)
    for got, want in zip(host(device_params), twin_params):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-5)
    for got_row, want_row in zip(device_states, twin_states):
        for got, want in zip(host(got_row), want_row):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


# --------------------------------------------------------------------------- #
# The optimizers on the table: versions, special cases, launches
# --------------------------------------------------------------------------- #
OPTIMIZERS = {
    "sgd": lambda ps: SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw_amsgrad": lambda ps: AdamW(ps, lr=0.01, amsgrad=True, maximize=True),
}


def parameters(device, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(minidl.tensor(rng.standard_normal(shape), dtype=dtype, device=device))
            for shape in [(3, 4), (4,), (), (2, 1, 3)]]


def give_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = minidl.tensor(rng.standard_normal(p.shape), dtype=p.dtype, device=p.device)


def state_tensors(optimizer):
    return [t for s in optimizer.state.values() for t in s.values() if isinstance(t, minidl.Tensor)]


@pytest.mark.parametrize("which", OPTIMIZERS)
def test_step_bumps_the_versions_of_parameters_and_states(device, which):
    params = parameters(device)
    optimizer = OPTIMIZERS[which](params)
    for seed in range(2):
        give_grads(params, seed)
        before = [p._version for p in params]
        states_before = [t._version for t in state_tensors(optimizer)]
        optimizer.step()
        assert all(p._version > b for p, b in zip(params, before))
        assert all(t._version > b for t, b in zip(state_tensors(optimizer), states_before))


def test_a_saved_parameter_changed_by_step_makes_backward_refuse(device):
    p = parameters(device)[0]
    loss = (p * p).sum()  # keeps p for its backward
    p.grad = minidl.ones_like(p)
    Adam([p], lr=0.1).step()
    with pytest.raises(RuntimeError):
        loss.backward()


@pytest.mark.parametrize("which", OPTIMIZERS)
def test_float32_float64_and_per_parameter_paths_agree(device, which):
    """The group path (one kernel on a GPU) equals the one-parameter-at-a-time path and float64."""
    grouped, single, wide = parameters(device), parameters(device), parameters(device, "float64")
    opt_grouped = OPTIMIZERS[which](grouped)
    opt_single = [OPTIMIZERS[which]([p]) for p in single]
    opt_wide = OPTIMIZERS[which](wide)
    for seed in range(3):
        for ps in (grouped, single, wide):
            give_grads(ps, seed)
        opt_grouped.step()
        opt_wide.step()
        for opt in opt_single:
            opt.step()
    for a, b, c in zip(grouped, single, wide):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-4, atol=1e-5)


def test_adam_parameters_at_different_step_counts(device):
    """A parameter without a gradient skips a step: its own step count (bias correction) goes on."""
    a, b = parameters(device)[:2]
    ref_a, ref_b = (Parameter(minidl.tensor(p.numpy(), dtype="float64")) for p in (a, b))
    optimizer, reference = Adam([a, b], lr=0.1), [Adam([ref_a], lr=0.1), Adam([ref_b], lr=0.1)]
    for seed in range(3):
        give_grads([a, b], seed)
        ref_a.grad, ref_b.grad = (minidl.tensor(p.grad.numpy(), dtype="float64") for p in (a, b))
        if seed == 0:
            b.grad = ref_b.grad = None
        optimizer.step()
        for opt in reference:
            opt.step()
    assert optimizer.state[a]["step"] == 3 and optimizer.state[b]["step"] == 2
    np.testing.assert_allclose(a.numpy(), ref_a.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.numpy(), ref_b.numpy(), rtol=1e-5, atol=1e-5)


def test_a_subclass_that_changes_update_is_honoured(device):
    """Lesson 13 adds an L2 penalty in ``update``: the group path must go through it."""
    lam = 0.5

    class L2SGD(SGD):
        def update(self, p, grad, state, group):
            super().update(p, grad + lam * p.data, state, group)

    p, q = parameters(device)[:2], parameters(device)[:2]
    for ps, opt in ((p, L2SGD(p, lr=0.1)), (q, SGD(q, lr=0.1, weight_decay=lam))):
        give_grads(ps, 0)
        opt.step()
    for a, b in zip(p, q):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


@pytest.mark.gpu
@needs_fake
def test_non_contiguous_gradients_and_other_dtypes_on_the_gpu():
    """A transposed float32 gradient is copied once and joins the kernel; a float16 parameter takes the twin."""
    from minidl.fakecupy import meter

    xp = backend.cupy
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal(4).astype(np.float16)]
    transposed = rng.standard_normal((5, 3)).astype(np.float32)
    grads = [transposed.T, rng.standard_normal(4).astype(np.float16)]
    device_params = [xp.asarray(w) for w in weights]
    device_grads = [xp.asarray(transposed).T, xp.asarray(grads[1])]
    assert not device_grads[0].flags.c_contiguous
    with meter.measure() as m:
        kernels.CupyBackend.sgd_step(device_params, device_grads, [None, None], 0.1, 0.0, 0.0, 0.0, False, False)
    kernels.NumpyBackend.sgd_step(weights, grads, [None, None], 0.1, 0.0, 0.0, 0.0, False, False)
    for got, want in zip(device_params, weights):
        np.testing.assert_allclose(xp.asnumpy(got), want, rtol=1e-3)
    assert m.report()["kernels"] == 1


def classic_cnn_step_launches(make_optimizer, steps=3):
    """Launches of ``opt.step()`` and of ``opt.zero_grad()`` for the classic CNN (its 8 parameters) after
    ``steps - 1`` steps, with the address tables uploaded in the measured step."""
    from minidl import nn
    from minidl.bench import MODELS
    from minidl.fakecupy import meter

    model = MODELS["cnn"]().to("cuda")
    assert len(list(model.parameters())) == 8
    optimizer = make_optimizer(model.parameters())
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((2, 3, 32, 32)), dtype="float32", device="cuda")
    y = minidl.tensor(np.array([1, 7]), device="cuda")
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with meter.measure() as step:
            optimizer.step()
    with meter.measure() as zero:
        optimizer.zero_grad()
    return step.report(), zero.report()


@pytest.mark.gpu
@needs_fake
@pytest.mark.parametrize("which", OPTIMIZERS)
def test_classic_cnn_optimizer_step_is_one_launch(which):
    """Before the multi-tensor kernels: Adam 144 launches a step, AdamW+amsgrad 184, SGD+momentum 88,
    plain SGD 24. Now one kernel and one small upload of the address table (the gradients are new
    arrays every step), no sync, no float64; zero_grad sets the gradients to None (nothing launched)."""
    step, zero = classic_cnn_step_launches(OPTIMIZERS[which])
    assert step["launches"] == step["kernels"] == 1
    assert step["syncs"] == 0 and step["float64_arrays"] == 0
    assert step["h2d_bytes"] <= 5 * 8 * 8 + 9 * 8
    assert step["uploads"] <= 1  # the address table, when an address changed (launch.upload: no sync)
    assert zero["launches"] == 0 and zero["syncs"] == 0


@pytest.mark.gpu
@needs_fake
def test_the_address_table_is_uploaded_only_when_an_address_changes():
    xp = backend.cupy
    params = [xp.ones(3, dtype=np.float32), xp.ones(5, dtype=np.float32)]
    grads = [xp.ones(3, dtype=np.float32), xp.ones(5, dtype=np.float32)]
    kernels.CupyBackend.sgd_step(params, grads, [None, None], 0.1, 0.0, 0.0, 0.0, False, False)
    before = optim_kernels.upload_count
    kernels.CupyBackend.sgd_step(params, grads, [None, None], 0.1, 0.0, 0.0, 0.0, False, False)
    assert optim_kernels.upload_count == before
    kernels.CupyBackend.sgd_step(params, [g * 1 for g in grads], [None, None], 0.1, 0.0, 0.0, 0.0, False, False)
    assert optim_kernels.upload_count == before + 1
    np.testing.assert_allclose(xp.asnumpy(params[1]), 0.7, rtol=1e-6)


@pytest.mark.gpu
@needs_fake
def test_the_address_table_goes_up_through_launch_upload_without_a_sync(monkeypatch):
    """The table is copied with launch.upload (CuPy's asynchronous path through pinned memory), never with
    blocking=True; a step whose addresses are unchanged uploads nothing."""
    from minidl.fakecupy import meter
    from minidl.kernels import launch

    xp, uploaded = backend.cupy, []
    real_upload = launch.upload
    monkeypatch.setattr(launch, "upload", lambda host: uploaded.append(host.copy()) or real_upload(host))
    params = [xp.ones(4, dtype=np.float32), xp.ones((2, 3), dtype=np.float32)]
    m, v = [xp.zeros_like(p) for p in params], [xp.zeros_like(p) for p in params]
    kept = []  # every step's gradients stay alive: their addresses are new each step
    for t in (1, 2):
        grads = [xp.full(p.shape, 0.5, dtype=np.float32) for p in params]
        kept.append(grads)
        before = len(uploaded)
        with meter.measure() as step:
            kernels.CupyBackend.adam_step(params, grads, m, v, [None, None], t, 0.1, 0.9, 0.999, 1e-8, 0.0, False,
                                          False, False)
        assert len(uploaded) > before and step.report()["uploads"] == len(uploaded) - before
        assert step.report()["syncs"] == 0
    assert uploaded[-1].dtype == np.int64 and uploaded[-1][2] == grads[0].data.ptr  # rows: params, grads, m, v
    with meter.measure() as again:
        kernels.CupyBackend.adam_step(params, grads, m, v, [None, None], 3, 0.1, 0.9, 0.999, 1e-8, 0.0, False,
                                      False, False)
    assert again.report()["uploads"] == again.report()["syncs"] == 0 and again.report()["kernels"] == 1
