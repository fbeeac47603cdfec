"""Recurrent ops (minidl.ops.recurrent): every cell against its equations written out in
numpy, fused against composed (values and gradients to 1e-10 in float64), gradcheck and
gradgradcheck of both, padded batches, a 500-step backward, and the error messages."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl import ops
from minidl.ops.recurrent import recurrence

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
STATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 2, "GRU": 1}
CELL_OPS = {"RNN_TANH": ops.rnn_tanh_cell, "RNN_RELU": ops.rnn_relu_cell, "LSTM": ops.lstm_cell, "GRU": ops.gru_cell}


# --------------------------------------------------------------------------- #
# The equations, written out in numpy (PyTorch's definitions)
# --------------------------------------------------------------------------- #
def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """i, f, g, o gates, each from its own block of rows of W_ih, W_hh."""
    W_ii, W_if, W_ig, W_io = np.split(w_ih, 4)
    W_hi, W_hf, W_hg, W_ho = np.split(w_hh, 4)
    b_ii, b_if, b_ig, b_io = np.split(b_ih, 4)
    b_hi, b_hf, b_hg, b_ho = np.split(b_hh, 4)
    i = np_sigmoid(x @ W_ii.T + b_ii + h @ W_hi.T + b_hi)
    f = np_sigmoid(x @ W_if.T + b_if + h @ W_hf.T + b_hf)
    g = np.tanh(x @ W_ig.T + b_ig + h @ W_hg.T + b_hg)
    o = np_sigmoid(x @ W_io.T + b_io + h @ W_ho.T + b_ho)
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, c_new


def np_gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
    W_ir, W_iz, W_in = np.split(w_ih, 3)
    W_hr, W_hz, W_hn = np.split(w_hh, 3)
    b_ir, b_iz, b_in = np.split(b_ih, 3)
    b_hr, b_hz, b_hn = np.split(b_hh, 3)
    r = np_sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = np_sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = np.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return ((1 - z) * n + z * h,)


def np_step(mode, x, state, w_ih, w_hh, b_ih, b_hh):
    if mode == "LSTM":
        return np_lstm_step(x, *state, w_ih, w_hh, b_ih, b_hh)
    if mode == "GRU":
        return np_gru_step(x, *state, w_ih, w_hh, b_ih, b_hh)
    a = x @ w_ih.T + b_ih + state[0] @ w_hh.T + b_hh
    return (np.tanh(a) if mode == "RNN_TANH" else np.maximum(a, 0),)


def np_recurrence(mode, x, state, weights, lengths):
    """Each sequence on its own, for its own number of steps (plain loops)."""
    steps, batch, _ = x.shape
    hidden = weights[1].shape[1]
    output = np.zeros((steps, batch, hidden))
    finals = [np.zeros((batch, hidden)) for _ in state]
    for b in range(batch):
        s = tuple(part[b : b + 1] for part in state)
        for t in range(lengths[b]):
            s = np_step(mode, x[t, b : b + 1], s, *weights)
            output[t, b] = s[0][0]
        for k, part in enumerate(s):
            finals[k][b] = part[0]
    return output, finals


def draw(mode, seed, steps, batch, inputs, hidden):
    """Float64 arrays: x (T, B, D), the state, and W_ih, W_hh, b_ih, b_hh."""
    rng = np.random.default_rng(seed)
    rows = GATES[mode] * hidden
    x = rng.uniform(-1, 1, (steps, batch, inputs))
    state = tuple(rng.uniform(-1, 1, (batch, hidden)) for _ in range(STATES[mode]))
    bound = 1 / np.sqrt(hidden)
    weights = tuple(rng.uniform(-bound, bound, shape) for shape in ((rows, inputs), (rows, hidden), (rows,), (rows,)))
    return x, state, weights


def leaves(arrays, device):
    return [minidl.tensor(a, dtype=np.float64, device=device, requires_grad=True) for a in arrays]


def run(mode, implementation, x, state, weights, lengths=None):
    """(output, *final state) of one layer, as a flat tuple (what gradcheck wants)."""
    output, final = recurrence(mode, x, tuple(state), *weights, lengths=lengths, implementation=implementation)
    return (output, *final)


# --------------------------------------------------------------------------- #
# Forward against the written-out equations
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("implementation", ["fused", "composed"])
@fixture_ok
@given(seed=seeds, batch=st.integers(1, 3), inputs=st.integers(1, 4), hidden=st.integers(1, 4))
def test_cell_matches_equations(device, mode, implementation, seed, batch, inputs, hidden):
    x, state, weights = draw(mode, seed, 1, batch, inputs, hidden)
    expected = np_step(mode, x[0], state, *weights)
    xt, *rest = leaves((x[0], *state, *weights), device)
    n = STATES[mode]
    hx = tuple(rest[:n]) if mode == "LSTM" else rest[0]
    got = CELL_OPS[mode](xt, hx, *rest[n:], implementation=implementation)
    got = got if mode == "LSTM" else (got,)
    for g, e in zip(got, expected):
        assert g.shape == (batch, hidden)
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("implementation", ["fused", "composed"])
@fixture_ok
@given(seed=seeds, steps=st.integers(1, 5), batch=st.integers(1, 3), hidden=st.integers(1, 3), data=st.data())
def test_sequence_matches_equations_with_lengths(device, mode, implementation, seed, steps, batch, hidden, data):
    lengths = data.draw(st.lists(st.integers(0, steps), min_size=batch, max_size=batch) | st.just([steps] * batch))
    x, state, weights = draw(mode, seed, steps, batch, 2, hidden)
    expected_output, expected_final = np_recurrence(mode, x, state, weights, lengths)
    tensors, n = leaves((x, *state, *weights), device), len(state)
    got = run(mode, implementation, tensors[0], tensors[1 : 1 + n], tensors[1 + n :], lengths=lengths)
    np.testing.assert_allclose(got[0].numpy(), expected_output, rtol=1e-12, atol=1e-12)  # zero past each length
    for g, e in zip(got[1:], expected_final):  # the state at each sequence's last valid step
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-12, atol=1e-12)


def test_lstm_gate_order_is_i_f_g_o():
    """Only the forget gate's bias open, the others shut: the cell keeps c and shows nothing."""
    hidden, big = 2, 50.0
    w_ih, w_hh = np.zeros((4 * hidden, 1)), np.zeros((4 * hidden, hidden))
    bias = np.concatenate([[-big] * hidden, [big] * hidden, [0.0] * hidden, [-big] * hidden])  # i, f, g, o
    c = np.array([[0.3, -0.7]])
    for implementation in ("fused", "composed"):
        x, h = minidl.tensor(np.ones((1, 1))), minidl.tensor(np.zeros((1, 2)))
        weights = minidl.tensor(w_ih), minidl.tensor(w_hh), minidl.tensor(bias)
        h_new, c_new = ops.lstm_cell(x, (h, minidl.tensor(c)), *weights, implementation=implementation)
        np.testing.assert_allclose(c_new.numpy(), c, atol=1e-12)
        np.testing.assert_allclose(h_new.numpy(), 0.0, atol=1e-12)


# --------------------------------------------------------------------------- #
# Fused against composed: values and gradients
# --------------------------------------------------------------------------- #
def values_and_grads(mode, implementation, arrays, n_states, lengths, device, x_grad=True):
    tensors = leaves(arrays, device)
    tensors[0].requires_grad = x_grad
    outs = run(mode, implementation, tensors[0], tensors[1 : 1 + n_states], tensors[1 + n_states :], lengths)
    rng = np.random.default_rng(1)
    loss = sum((o * minidl.tensor(rng.standard_normal(o.shape), device=device)).sum() for o in outs[:-1])  # last unused
    loss.backward()
    return [o.numpy() for o in outs] + [t.grad.numpy() for t in tensors if t.requires_grad]


@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("lengths", [None, [4, 1, 0]])
def test_fused_and_composed_agree(device, mode, lengths):
    x, state, weights = draw(mode, 7, 4, 3, 3, 5)
    for x_grad in (True, False):
        fused = values_and_grads(mode, "fused", (x, *state, *weights), len(state), lengths, device, x_grad)
        composed = values_and_grads(mode, "composed", (x, *state, *weights), len(state), lengths, device, x_grad)
        assert len(fused) == len(composed)
        for f, c in zip(fused, composed):
            np.testing.assert_allclose(f, c, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", list(GATES))
def test_fused_cell_and_composed_cell_agree(device, mode):
    x, state, weights = draw(mode, 3, 1, 4, 3, 5)
    results = []
    for implementation in ("fused", "composed"):
        xt, *rest = leaves((x[0], *state, *weights), device)
        n = STATES[mode]
        hx = tuple(rest[:n]) if mode == "LSTM" else rest[0]
        out = CELL_OPS[mode](xt, hx, *rest[n:], implementation=implementation)
        out = out if mode == "LSTM" else (out,)
        (sum(o * o for o in out)).sum().backward()
        results.append([o.numpy() for o in out] + [t.grad.numpy() for t in (xt, *rest)])
    for f, c in zip(*results):
        np.testing.assert_allclose(f, c, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- #
# Gradient checks
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("implementation", ["fused", "composed"])
def test_cell_gradcheck(device, mode, implementation):
    x, state, weights = draw(mode, 11, 1, 2, 3, 2)
    n = STATES[mode]

    def cell(x, *rest):
        hx = tuple(rest[:n]) if mode == "LSTM" else rest[0]
        return CELL_OPS[mode](x, hx, *rest[n:], implementation=implementation)

    assert minidl.gradcheck(cell, leaves((x[0], *state, *weights), device))


@pytest.mark.parametrize("mode", list(GATES))
@pytest.mark.parametrize("implementation", ["fused", "composed"])
def test_sequence_gradcheck_with_lengths(device, mode, implementation):
    x, state, weights = draw(mode, 5, 3, 3, 2, 2)
    n = STATES[mode]

    def layer(x, *rest):
        return run(mode, implementation, x, rest[:n], rest[n:], lengths=[3, 1, 2])

    assert minidl.gradcheck(layer, leaves((x, *state, *weights), device))


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_fused_double_backward(device, mode):
    """The fused Functions support create_graph=True (by differentiating the composed form)."""
    x, state, weights = draw(mode, 2, 2, 2, 2, 2)
    n = STATES[mode]

    def layer(x, *rest):
        return run(mode, "fused", x, rest[:n], rest[n:], lengths=[2, 1])

    def cell(x, *rest):
        hx = tuple(rest[:n]) if mode == "LSTM" else rest[0]
        return CELL_OPS[mode](x, hx, *rest[n:])

    assert minidl.gradgradcheck(layer, leaves((x, *state, *weights), device))
    assert minidl.gradgradcheck(cell, leaves((x[0], *state, *weights), device))


def test_double_backward_through_stacked_layers_and_a_shared_state(device):
    """Second derivatives through two fused layers (the second's input is not a leaf) and a
    cell whose h and c are one tensor agree with the composed form's."""
    x, state, weights = draw("LSTM", 4, 3, 2, 3, 3)
    _, _, weights2 = draw("LSTM", 5, 3, 2, 3, 3)

    def second_derivative(implementation):
        xt, h, *w = leaves((x, state[0], *weights, *weights2), device)
        out, _ = recurrence("LSTM", xt, (h, h), *w[:4], implementation=implementation)
        out, (h_n, c_n) = recurrence("LSTM", out, (h, h), *w[4:], implementation=implementation)
        loss = (out * out).sum() + (c_n * h_n).sum()
        grads = minidl.grad(loss, [xt, h, *w], create_graph=True)
        total = sum((g * g).sum() for g in grads)
        return [g.numpy() for g in minidl.grad(total, [xt, h, *w])]

    for f, c in zip(second_derivative("fused"), second_derivative("composed")):
        np.testing.assert_allclose(f, c, rtol=0, atol=1e-10)


@pytest.mark.parametrize("implementation", ["fused", "composed"])
def test_lstm_of_500_steps_backward(implementation):
    """A long chain: iterative autograd, no recursion limit (one cell call per step)."""
    x, state, weights = draw("LSTM", 9, 500, 2, 2, 3)
    xt, h, c, *w = leaves((x, *state, *weights), "cpu")
    for t in range(500):
        h, c = ops.lstm_cell(xt[t], (h, c), *w, implementation=implementation)
    (h.sum() + c.sum()).backward()
    fused_sequence = leaves((x, *state, *weights), "cpu")
    out = run("LSTM", "fused", fused_sequence[0], fused_sequence[1:3], fused_sequence[3:])
    (out[1].sum() + out[2].sum()).backward()
    for a, b in zip([xt, *w], [fused_sequence[0], *fused_sequence[3:]]):
        assert np.isfinite(a.grad.numpy()).all()
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_float32_and_missing_biases(device):
    x, state, weights = draw("LSTM", 1, 3, 2, 2, 3)
    results = []
    for implementation in ("fused", "composed"):
        xt, h, c, w_ih, w_hh = (
            minidl.tensor(a, dtype=np.float32, device=device, requires_grad=True) for a in (x, *state, *weights[:2])
        )
        out, (h_n, c_n) = recurrence("LSTM", xt, (h, c), w_ih, w_hh, implementation=implementation)
        assert out.dtype == np.float32 and c_n.dtype == np.float32
        (out.sum() + c_n.sum()).backward()
        assert w_hh.grad.dtype == np.float32
        results.append([out.numpy(), w_ih.grad.numpy(), h.grad.numpy()])
    zero = np.zeros_like(weights[2])
    np.testing.assert_allclose(results[0][0], np_recurrence("LSTM", x, state, (*weights[:2], zero, zero), [3, 3])[0],
                               atol=1e-5)
    for f, c in zip(*results):
        np.testing.assert_allclose(f, c, atol=1e-5)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
def lstm_args(steps=3, batch=2, inputs=3, hidden=4):
    x, state, weights = draw("LSTM", 0, steps, batch, inputs, hidden)
    return minidl.tensor(x), tuple(minidl.tensor(s) for s in state), [minidl.tensor(w) for w in weights]


def zeros64(*shape):
    return minidl.zeros(*shape, dtype=np.float64)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, s, w: (x[0], s, w), r"expected the input to have shape \(T, B, input_size\)"),
        (lambda x, s, w: (x, s, [zeros64(15, 3), *w[1:]]), r"expected w_ih of shape \(4 \* hidden"),
        (lambda x, s, w: (x, s, [zeros64(16, 2), *w[1:]]), r"expected w_ih of shape .*input_size=3\), got \(16, 2\)"),
        (lambda x, s, w: (x, s, [w[0], zeros64(16, 3), *w[2:]]), r"expected w_hh of shape \(16, 4\)"),
        (lambda x, s, w: (x, s, [*w[:2], zeros64(4), w[3]]), r"expected b_ih of shape \(16,\)"),
        (lambda x, s, w: (x, s[:1], w), r"expected a state of 2 tensor\(s\), got 1"),
        (lambda x, s, w: (x, (s[0], zeros64(3, 4)), w), r"expected each state tensor of shape \(B=2, H=4\), got \(3, 4\)"),
        (lambda x, s, w: (x.float(), s, w), r"expected the input, state, .* one floating dtype, got float32, float64"),
    ],
)
def test_bad_arguments_are_explained(change, message):
    x, s, w = change(*lstm_args())
    with pytest.raises((ValueError, TypeError), match=r"recurrence\('LSTM'\): " + message):
        recurrence("LSTM", x, s, *w)


def test_bad_mode_implementation_lengths_and_cell_input():
    x, s, w = lstm_args()
    with pytest.raises(ValueError, match="recurrence: mode must be one of"):
        recurrence("LSTMX", x, s, *w)
    with pytest.raises(ValueError, match="implementation must be 'fused' or 'composed', got 'fast'"):
        recurrence("LSTM", x, s, *w, implementation="fast")
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        recurrence("LSTM", x, s, *w, lengths=[3])
    with pytest.raises(ValueError, match="lengths must be 2 integers .* got float64"):
        recurrence("LSTM", x, s, *w, lengths=[3.0, 1.0])
    with pytest.raises(ValueError, match=r"lengths must lie between 0 and the 3 time steps, got \[4, 1\]"):
        recurrence("LSTM", x, s, *w, lengths=minidl.tensor([4, 1]))
    with pytest.raises(ValueError, match="expected at least one time step"):
        recurrence("LSTM", x[:0], s, *w)
    with pytest.raises(ValueError, match=r"lstm_cell: expected the input to have shape \(B, input_size\)"):
        ops.lstm_cell(x, s, *w)
    with pytest.raises(ValueError, match=r"gru_cell: expected w_ih of shape \(3 \* hidden_size"):
        ops.gru_cell(x[0], s[0], *w)
