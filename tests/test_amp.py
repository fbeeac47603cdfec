"""minidl.amp: autocast's casts, op by op, against references written out in numpy (float64),
and GradScaler's skip/backoff/growth semantics (PyTorch's).

fp16 tolerance: float16 keeps 11 significant bits (epsilon 9.8e-4). Inputs rounded to
float16 and products of K <= 32 unit-scale terms summed in float16 are within
rtol = atol = 3e-2 of the float64 result; that is what "equal to fp16 accuracy" means here.
Ops that run in float32 under autocast are compared at float32's tolerance (1e-5).
"""

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
import minidl.nn.functional as F
from minidl import amp
from minidl.data.toy import spiral

FP16 = dict(rtol=3e-2, atol=3e-2)
FP32 = dict(rtol=1e-5, atol=1e-5)


def host(t):
    return minidl.backend.to_numpy(t.data).astype(np.float64)


def as_fp16_values(shape, rng, device="cpu"):
    """A float32 tensor whose values are exactly representable in float16 (so a float16 op
    and its float32 reference start from the same numbers)."""
    values = rng.standard_normal(shape).astype(np.float16).astype(np.float32)
    return minidl.tensor(values, device=device)


# --------------------------------------------------------------------------- #
# The switch
# --------------------------------------------------------------------------- #
def test_autocast_is_off_by_default_and_restored_on_exit_even_after_an_error():
    assert not amp.is_autocast_enabled()
    with pytest.raises(ZeroDivisionError):
        with amp.autocast():
            assert amp.is_autocast_enabled() and amp.get_autocast_dtype() == np.float16
            1 / 0
    assert not amp.is_autocast_enabled()


def test_autocast_nests_and_works_as_a_decorator():
    @amp.autocast()
    def inside():
        return amp.is_autocast_enabled()

    assert inside() and not amp.is_autocast_enabled()
    with amp.autocast():
        with amp.autocast(enabled=False):
            assert not amp.is_autocast_enabled()
            assert (minidl.ones(2, 3) @ minidl.ones(3, 2)).dtype == np.float32
        assert amp.is_autocast_enabled()


def test_autocast_is_per_thread():
    seen = []
    with amp.autocast():
        worker = threading.Thread(target=lambda: seen.append(amp.is_autocast_enabled()))
        worker.start()
        worker.join()
    assert seen == [False]


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(dtype="float32"), ValueError, "autocast: expected dtype 'float16'"),
    (dict(dtype="bfloat16"), ValueError, "numpy has no bfloat16"),
    (dict(enabled="yes"), TypeError, "autocast: expected enabled to be True or False, got 'yes'"),
])
def test_autocast_refuses_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        amp.autocast(**kwargs)


def test_autocast_inputs_casts_only_float32_and_float16_and_only_inside():
    x32, x64 = minidl.ones(2), minidl.ones(2, dtype="float64")
    ints = minidl.tensor([1, 2])
    assert amp.autocast_inputs(x32) is x32  # outside autocast: nothing changes
    with amp.autocast():
        low, same64, same_int, none = amp.autocast_inputs(x32, x64, ints, None)
        assert low.dtype == np.float16 and same64 is x64 and same_int is ints and none is None
        assert amp.autocast_inputs(low, to="float32").dtype == np.float32
        with pytest.raises(ValueError, match="autocast_inputs: expected to='low' or to='float32', got 'half'"):
            amp.autocast_inputs(x32, to="half")


# --------------------------------------------------------------------------- #
# float16 ops: matmul, linear, conv, recurrent
# --------------------------------------------------------------------------- #
@given(batch=st.integers(1, 6), inputs=st.integers(1, 32), outputs=st.integers(1, 8), seed=st.integers(0, 99))
def test_linear_runs_in_float16_and_matches_numpy(batch, inputs, outputs, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(inputs, outputs)
    x = as_fp16_values((batch, inputs), rng)
    with amp.autocast():
        y = layer(x)
    assert y.dtype == np.float16
    w, b = host(layer.weight), host(layer.bias)
    np.testing.assert_allclose(host(y), host(x) @ w.T + b, **FP16)


def test_matmul_operator_runs_in_float16(device):
    a, b = minidl.randn(3, 4, device=device), minidl.randn(4, 2, device=device)
    with amp.autocast():
        assert (a @ b).dtype == np.float16 and minidl.matmul(a, b).dtype == np.float16
    assert (a @ b).dtype == np.float32  # and outside, nothing changes


def conv2d_reference(x, w, b):
    """Stride 1, no padding: y[n, o] = b[o] + sum over kernel offsets (i, j) and channels c."""
    (n, _, h, width), (o, _, kh, kw) = x.shape, w.shape
    oh, ow = h - kh + 1, width - kw + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,oc->nohw", x[:, :, i:i + oh, j:j + ow], w[:, :, i, j])
    return y + b[None, :, None, None]


@given(n=st.integers(1, 2), c=st.integers(1, 3), o=st.integers(1, 4), k=st.integers(1, 3),
       size=st.integers(3, 6), seed=st.integers(0, 99))
def test_conv2d_runs_in_float16_and_matches_numpy(n, c, o, k, size, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Conv2d(c, o, k)
    x = as_fp16_values((n, c, size, size), rng)
    with amp.autocast():
        y = layer(x)
    assert y.dtype == np.float16
    np.testing.assert_allclose(host(y), conv2d_reference(host(x), host(layer.weight), host(layer.bias)), **FP16)


def test_conv1d_runs_in_float16():
    with amp.autocast():
        assert nn.Conv1d(2, 3, 3)(minidl.randn(2, 2, 8)).dtype == np.float16


@pytest.mark.parametrize("implementation", ["fused", "composed"])
def test_lstm_runs_in_float16_and_matches_float32(implementation):
    lstm = nn.LSTM(4, 5, num_layers=2, implementation=implementation)
    x = minidl.randn(6, 3, 4)
    expected, (h32, c32) = lstm(x)
    with amp.autocast():
        output, (h, c) = lstm(x)
    assert output.dtype == h.dtype == c.dtype == np.float16 and expected.dtype == np.float32
    for got, want in ((output, expected), (h, h32), (c, c32)):
        np.testing.assert_allclose(host(got), host(want), **FP16)


@pytest.mark.parametrize("cell", [nn.GRUCell, nn.RNNCell, nn.LSTMCell])
def test_recurrent_cells_run_in_float16(cell):
    layer = cell(3, 4)
    with amp.autocast():
        out = layer(minidl.randn(2, 3))
    for t in out if isinstance(out, tuple) else (out,):
        assert t.dtype == np.float16


# --------------------------------------------------------------------------- #
# float32 ops: reductions, softmax, losses, batch norm; and what follows its inputs
# --------------------------------------------------------------------------- #
FLOAT32_OPS = {
    "sum": lambda x: x.sum(),
    "mean": lambda x: minidl.mean(x, 1),
    "var": lambda x: minidl.var(x, 0),
    "std": lambda x: minidl.std(x),
    "softmax": lambda x: F.softmax(x, dim=1),
    "log_softmax": lambda x: F.log_softmax(x, dim=1),
    "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 2, 1, 0])),
    "nll_loss": lambda x: F.nll_loss(x, np.array([0, 2, 1, 0])),
    "mse_loss": lambda x: F.mse_loss(x, minidl.zeros(4, 3)),
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(x, minidl.ones(4, 3)),
    "batch_norm": lambda x: F.batch_norm(x, minidl.zeros(3), minidl.ones(3), training=True),
    "BatchNorm1d": lambda x: nn.BatchNorm1d(3)(x),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_OPS))
def test_reductions_softmax_losses_and_batch_norm_run_in_float32(name):
    op = FLOAT32_OPS[name]
    x32 = as_fp16_values((4, 3), np.random.default_rng(1))
    with amp.autocast():
        got = op(x32.astype("float16"))
    assert got.dtype == np.float32, f"{name} under autocast gave {got.dtype}"
    np.testing.assert_allclose(host(got), host(op(x32)), **FP32)  # the same numbers as in float32


def test_elementwise_ops_follow_their_inputs():
    half, single = minidl.ones(3, dtype="float16"), minidl.ones(3)
    with amp.autocast():
        assert F.relu(half).dtype == minidl.tanh(half).dtype == minidl.amax(half).dtype == np.float16
        assert (half * 2).dtype == np.float16
        assert (half + single).dtype == np.float32  # numpy's promotion, PyTorch's "promote" list
        assert F.max_pool2d(minidl.ones(1, 1, 4, 4, dtype="float16"), 2).dtype == np.float16


def test_float64_is_left_alone_so_gradients_still_check_under_autocast():
    a = minidl.randn(3, 4, dtype="float64", requires_grad=True)
    b = minidl.randn(4, 2, dtype="float64", requires_grad=True)
    with amp.autocast():
        assert (a @ b).dtype == np.float64
        assert minidl.gradcheck(lambda a, b: F.log_softmax(a @ b, dim=1), (a, b))


def test_outside_autocast_every_dtype_stays_float32():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    with amp.autocast():
        model[0](minidl.randn(1, 1, 4, 4))
    y = model(minidl.randn(1, 1, 4, 4))
    loss = F.cross_entropy(y, np.array([1]))
    loss.backward()
    assert y.dtype == loss.dtype == np.float32
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float32)}


# --------------------------------------------------------------------------- #
# Gradients: master weights stay float32
# --------------------------------------------------------------------------- #
class MLP(nn.Module):
    """2 -> 32 -> 3, the layers called through F.linear: nn.Linear checks that its input has
    the weight's dtype before the cast, so it refuses a float16 activation (see amp's docstring)."""

    def __init__(self, hidden=32):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(2, hidden), nn.Linear(hidden, 3)

    def forward(self, x):
        h = F.relu(F.linear(x, self.fc1.weight, self.fc1.bias))
        return F.linear(h, self.fc2.weight, self.fc2.bias)


def gradients(model, x, y, autocast):
    model.zero_grad()
    with amp.autocast(enabled=autocast):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    loss.backward()
    return logits, loss, [p.grad for p in model.parameters()]


def test_parameter_gradients_are_float32_and_match_the_float32_ones():
    x, y = spiral(20, seed=0)
    model = MLP()
    _, _, expected = gradients(model, minidl.tensor(x), y, autocast=False)
    logits, loss, got = gradients(model, minidl.tensor(x), y, autocast=True)
    assert logits.dtype == np.float16 and loss.dtype == np.float32
    for g, want in zip(got, expected):
        assert g.dtype == np.float32
        np.testing.assert_allclose(host(g), host(want), rtol=3e-2, atol=3e-3)  # gradients are ~0.1: fp16's 3e-2


def test_lstm_gradients_are_float32_and_match_the_float32_ones():
    lstm = nn.LSTM(3, 4)
    x = minidl.randn(5, 2, 3)
    lstm(x)[0].sum().backward()
    expected = [host(p.grad) for p in lstm.parameters()]
    lstm.zero_grad()
    with amp.autocast():
        output = lstm(x)[0]
    output.sum().backward()
    for p, want in zip(lstm.parameters(), expected):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(host(p.grad), want, **FP16)


def test_a_float16_gradient_reaching_a_float32_leaf_is_stored_as_float32():
    w = minidl.randn(3, requires_grad=True)
    (w.astype("float16") * 2).sum().backward()  # the gradient comes back through the cast
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(host(w.grad), 2.0)


# --------------------------------------------------------------------------- #
# GradScaler
# --------------------------------------------------------------------------- #
def quadratic_step(scaler, optimizer, w, poison=False):
    """One step of loss = sum(w**2) through the scaler; ``poison`` puts an inf into the gradient."""
    optimizer.zero_grad()
    scaler.scale((w * w).sum()).backward()
    if poison:
        bad = host(w.grad).astype(np.float32)
        bad[0] = np.inf
        w.grad = minidl.tensor(bad, device=w.device)
    scaler.step(optimizer)
    scaler.update()


def test_scale_multiplies_and_unscale_gives_back_the_float32_gradients(device):
    w = nn.Parameter(minidl.randn(4, device=device))
    (w * w).sum().backward()
    expected = host(w.grad)
    w.grad = None
    optimizer = minidl.optim.SGD([w], lr=0.1)
    scaler = amp.GradScaler(init_scale=1024.0)
    scaled = scaler.scale((w * w).sum())
    np.testing.assert_allclose(host(scaled), 1024.0 * host((w * w).sum()), rtol=1e-6)
    scaled.backward()
    np.testing.assert_allclose(host(w.grad), 1024.0 * expected, rtol=1e-6)
    scaler.unscale_(optimizer)
    np.testing.assert_allclose(host(w.grad), expected, rtol=1e-6)
    before = host(w)
    scaler.step(optimizer)  # already unscaled: steps with the true gradient
    np.testing.assert_allclose(host(w), before - 0.1 * expected, rtol=1e-6)


def test_scale_casts_a_float16_loss_up_first():
    scaler = amp.GradScaler()
    assert scaler.scale(minidl.full((), 2.0, dtype="float16")).dtype == np.float32  # 2 * 65536 > 65504
    pair = scaler.scale([minidl.ones(()), (minidl.ones(()),)])
    assert isinstance(pair, list) and host(pair[1][0]) == 65536.0


def test_found_inf_is_computed_on_the_gradients_device(device):
    w = nn.Parameter(minidl.randn(3, device=device))
    optimizer = minidl.optim.SGD([w], lr=0.1)
    scaler = amp.GradScaler()
    scaler.scale((w * w).sum()).backward()
    scaler.unscale_(optimizer)
    flag = scaler._optimizers[id(optimizer)]["found_inf"]  # read on the host only in step()
    assert minidl.backend.get_array_module(flag) is w.xp


def test_a_step_with_an_inf_gradient_is_skipped_and_the_scale_halves(device):
    w = nn.Parameter(minidl.randn(3, device=device))
    optimizer = minidl.optim.Adam([w], lr=0.1)
    scaler = amp.GradScaler(init_scale=256.0)
    quadratic_step(scaler, optimizer, w)  # a clean step: Adam now has state
    weights, state = host(w), {k: host(v) if isinstance(v, minidl.Tensor) else v
                               for k, v in optimizer.state[w].items()}
    quadratic_step(scaler, optimizer, w, poison=True)
    np.testing.assert_array_equal(host(w), weights)
    for key, value in optimizer.state[w].items():
        np.testing.assert_array_equal(host(value) if isinstance(value, minidl.Tensor) else value, state[key])
    assert scaler.get_scale() == 128.0


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_a_huge_scale_overflows_float16_activations_and_the_step_is_skipped():
    x, y = spiral(10, seed=0)
    model = MLP()
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.1)
    scaler = amp.GradScaler(init_scale=2.0**40)
    before = [host(p) for p in model.parameters()]
    with amp.autocast():
        loss = F.cross_entropy(model(minidl.tensor(x)), y)
    scaler.scale(loss).backward()  # 2**40 / 30 per logit's gradient: inf in float16
    assert scaler.step(optimizer) is None
    scaler.update()
    for p, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(host(p), old)
    assert scaler.get_scale() == 2.0**39


def test_the_scale_grows_after_growth_interval_clean_steps():
    w = nn.Parameter(minidl.randn(3))
    optimizer = minidl.optim.SGD([w], lr=0.01)
    scaler = amp.GradScaler(init_scale=4.0, growth_interval=3)
    scales = []
    for poison in (False, False, False, False, False, True, False):
        quadratic_step(scaler, optimizer, w, poison)
        scales.append(scaler.get_scale())
    assert scales == [4.0, 4.0, 8.0, 8.0, 8.0, 4.0, 4.0]


def test_state_dict_round_trips_through_minidl_save(tmp_path):
    scaler = amp.GradScaler(init_scale=64.0, growth_interval=5)
    w = nn.Parameter(minidl.randn(3))
    optimizer = minidl.optim.SGD([w], lr=0.01)
    for _ in range(2):
        quadratic_step(scaler, optimizer, w)
    minidl.save(scaler.state_dict(), tmp_path / "scaler.npz")
    restored = amp.GradScaler()
    restored.load_state_dict(minidl.load(tmp_path / "scaler.npz"))
    assert restored.state_dict() == scaler.state_dict() == {
        "scale": 64.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 5, "_growth_tracker": 2}


def test_a_disabled_scaler_passes_everything_through():
    w = nn.Parameter(minidl.ones(2))
    optimizer = minidl.optim.SGD([w], lr=0.5)
    scaler = amp.GradScaler(enabled=False)
    loss = (w * w).sum()
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    loss.backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    np.testing.assert_array_equal(host(w), 0.0)  # 1 - 0.5 * 2
    assert scaler.state_dict() == {}


def test_scaler_errors_name_the_method_and_what_was_expected():
    w = nn.Parameter(minidl.ones(2))
    optimizer = minidl.optim.SGD([w], lr=0.5)
    scaler = amp.GradScaler()
    with pytest.raises(RuntimeError, match=r"GradScaler.step: expected scaler.scale\(loss\)"):
        scaler.step(optimizer)
    with pytest.raises(RuntimeError, match=r"GradScaler.update: expected unscale_\(\) or step\(\)"):
        scaler.update()
    scaler.scale((w * w).sum()).backward()
    scaler.unscale_(optimizer)
    with pytest.raises(RuntimeError, match=r"GradScaler.unscale_: expected one unscale_\(\) per optimizer"):
        scaler.unscale_(optimizer)
    scaler.step(optimizer)
    with pytest.raises(RuntimeError, match=r"GradScaler.step: expected one step\(\) per optimizer"):
        scaler.step(optimizer)
    with pytest.raises(TypeError, match="GradScaler.unscale_: expected an optimizer .* got list"):
        scaler.unscale_([w])
    with pytest.raises(TypeError, match="GradScaler.scale: expected a Tensor or a list/tuple of Tensors, got float"):
        scaler.scale(1.0)
    with pytest.raises(RuntimeError, match="GradScaler.load_state_dict: expected a GradScaler's state_dict"):
        scaler.load_state_dict({})
    with pytest.raises(KeyError, match="GradScaler.load_state_dict: .* missing \\['_growth_tracker'"):
        scaler.load_state_dict({"scale": 2.0})


@pytest.mark.parametrize("kwargs, words", [
    (dict(init_scale=0.0), "init_scale to be a finite number > 0, got 0.0"),
    (dict(init_scale=float("inf")), "init_scale to be a finite number > 0, got inf"),
    (dict(growth_factor=1.0), "growth_factor to be a finite number > 1, got 1.0"),
    (dict(backoff_factor=1.5), "backoff_factor to be a number between 0 and 1, got 1.5"),
    (dict(growth_interval=0), "growth_interval to be an int >= 1, got 0"),
    (dict(growth_interval=2.5), "growth_interval to be an int >= 1, got 2.5"),
])
def test_scaler_refuses_bad_hyper_parameters(kwargs, words):
    with pytest.raises(ValueError, match=f"GradScaler: expected {words}"):
        amp.GradScaler(**kwargs)


# --------------------------------------------------------------------------- #
# Training: autocast + GradScaler reaches the float32 run's loss
# --------------------------------------------------------------------------- #
def train(mixed, device="cpu", steps=150):
    """Full-batch Adam on the 3-arm spiral; the final loss (float32 forward, for both runs)."""
    minidl.manual_seed(0)
    x, y = spiral(40, seed=0)
    x = minidl.tensor(x, device=device)
    model = MLP().to(device)
    optimizer = minidl.optim.Adam(model.parameters(), lr=0.03)
    scaler = amp.GradScaler(enabled=mixed)
    for _ in range(steps):
        optimizer.zero_grad()
        with amp.autocast(enabled=mixed):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return float(F.cross_entropy(model(x), y).item()), model


def test_mixed_precision_training_reaches_the_float32_loss(device):
    full, _ = train(False, device)
    mixed, model = train(True, device)
    assert full < 0.6, f"the float32 run should learn the spiral (loss {full:.3f})"
    assert abs(mixed - full) < 0.02, f"float32 loss {full:.4f}, mixed precision {mixed:.4f}"
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float32)}
