"""Recurrent layers (minidl.nn.RNN, LSTM, GRU and their cells): PyTorch's parameter names,
shapes and initialisation; stacked and bidirectional layers against the equations run
sequence by sequence in numpy; padded batches; fused against composed; errors."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl import nn

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LAYERS = {"RNN_TANH": lambda *a, **k: nn.RNN(*a, **k), "RNN_RELU": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
          "LSTM": nn.LSTM, "GRU": nn.GRU}


# --------------------------------------------------------------------------- #
# Reference: PyTorch's equations, one sequence and one step at a time
# --------------------------------------------------------------------------- #
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_step(mode, x, state, w_ih, w_hh, b_ih, b_hh):
    gx, gh = x @ w_ih.T + b_ih, state[0] @ w_hh.T + b_hh
    if mode == "LSTM":
        i, f, g, o = np.split(gx + gh, 4, axis=-1)
        c = sigmoid(f) * state[1] + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c), c
    if mode == "GRU":
        (x_r, x_z, x_n), (h_r, h_z, h_n) = np.split(gx, 3, axis=-1), np.split(gh, 3, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * h_n)
        return ((1 - z) * n + z * state[0],)
    return (np.tanh(gx + gh) if mode == "RNN_TANH" else np.maximum(gx + gh, 0),)


def np_layer_stack(module, x, lengths, initial):
    """x (T, B, D); initial[k] = state tuple of (layer, direction) k; returns output and finals."""
    steps, batch, _ = x.shape
    params = {name: p.numpy() for name, p in module.named_parameters()}
    directions = 2 if module.bidirectional else 1
    finals = [None] * (module.num_layers * directions)
    for layer in range(module.num_layers):
        outputs = []
        for d, suffix in enumerate(["", "_reverse"][:directions]):
            k = layer * directions + d
            names = [f"{kind}_{part}_l{layer}{suffix}" for kind, part in
                     (("weight", "ih"), ("weight", "hh"), ("bias", "ih"), ("bias", "hh"))]
            w = [params[n] if n in params else 0.0 for n in names]
            out = np.zeros((steps, batch, module.hidden_size))
            final = [s.copy() for s in initial[k]]
            for b in range(batch):
                s = tuple(part[b : b + 1] for part in initial[k])
                order = range(lengths[b]) if d == 0 else reversed(range(lengths[b]))
                for t in order:
                    s = np_step(module.mode, x[t, b : b + 1], s, *w)
                    out[t, b] = s[0][0]
                for j, part in enumerate(s):
                    final[j][b] = part[0]
            outputs.append(out)
            finals[k] = final
        x = np.concatenate(outputs, axis=-1)
    return x, finals


# --------------------------------------------------------------------------- #
# Parameters
# --------------------------------------------------------------------------- #
def test_parameter_names_shapes_and_order_follow_pytorch():
    lstm = nn.LSTM(5, 3, num_layers=2, bidirectional=True)
    expected = []
    for layer, inputs in ((0, 5), (1, 6)):
        for suffix in ("", "_reverse"):
            expected += [(f"weight_ih_l{layer}{suffix}", (12, inputs)), (f"weight_hh_l{layer}{suffix}", (12, 3)),
                         (f"bias_ih_l{layer}{suffix}", (12,)), (f"bias_hh_l{layer}{suffix}", (12,))]
    assert [(n, p.shape) for n, p in lstm.named_parameters()] == expected
    assert [(n, p.shape) for n, p in nn.GRU(4, 2, bias=False).named_parameters()] == [
        ("weight_ih_l0", (6, 4)), ("weight_hh_l0", (6, 2))]
    assert [(n, p.shape) for n, p in nn.RNN(4, 2).named_parameters()] == [
        ("weight_ih_l0", (2, 4)), ("weight_hh_l0", (2, 2)), ("bias_ih_l0", (2,)), ("bias_hh_l0", (2,))]
    assert [(n, p.shape) for n, p in nn.LSTMCell(4, 2).named_parameters()] == [
        ("weight_ih", (8, 4)), ("weight_hh", (8, 2)), ("bias_ih", (8,)), ("bias_hh", (8,))]
    assert list(nn.GRUCell(4, 2, bias=False).state_dict()) == ["weight_ih", "weight_hh"]
    assert repr(lstm) == "LSTM(5, 3, num_layers=2, bidirectional=True)"
    assert repr(nn.RNNCell(2, 3, nonlinearity="relu")) == "RNNCell(2, 3, nonlinearity='relu')"


def test_initialisation_is_uniform_within_one_over_sqrt_hidden():
    minidl.manual_seed(0)
    hidden = 16
    for layer in (nn.LSTM(8, hidden, num_layers=2), nn.GRUCell(8, hidden), nn.RNN(8, hidden)):
        values = np.concatenate([p.numpy().ravel() for p in layer.parameters()])
        assert all(p.dtype == np.float32 and p.requires_grad for p in layer.parameters())
        bound = 1 / np.sqrt(hidden)
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound and abs(values.mean()) < 0.02  # spread over the whole range
        assert abs(values.var() - bound**2 / 3) < 0.1 * bound**2 / 3  # U(-b, b) has variance b^2 / 3


# --------------------------------------------------------------------------- #
# Forward against the reference
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("mode", list(LAYERS))
@fixture_ok
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_layers_match_the_equations(device, mode, data, seed):
    steps, batch = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    num_layers, bidirectional = data.draw(st.integers(1, 2)), data.draw(st.booleans())
    batch_first, implementation = data.draw(st.booleans()), data.draw(st.sampled_from(["fused", "composed"]))
    lengths = data.draw(st.none() | st.lists(st.integers(0, steps), min_size=batch, max_size=batch))
    with_state = data.draw(st.booleans())
    minidl.manual_seed(seed % 1000)
    module = LAYERS[mode](3, 2, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                          implementation=implementation).double().to(device)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (steps, batch, 3))
    count = num_layers * (2 if bidirectional else 1)
    states = [rng.uniform(-1, 1, (count, batch, 2)) for _ in range(2 if mode == "LSTM" else 1)]
    initial = [tuple(s[k] for s in states) for k in range(count)] if with_state else [
        tuple(np.zeros((batch, 2)) for _ in states)] * count
    expected_output, expected_finals = np_layer_stack(module, x, lengths or [steps] * batch, initial)

    xt = minidl.tensor(x.transpose(1, 0, 2) if batch_first else x, device=device)
    hx = None
    if with_state:
        hx = tuple(minidl.tensor(s, device=device) for s in states)
        hx = hx if mode == "LSTM" else hx[0]
    output, h_n = module(xt, hx, lengths=lengths)
    got_output = output.numpy().transpose(1, 0, 2) if batch_first else output.numpy()
    np.testing.assert_allclose(got_output, expected_output, rtol=1e-10, atol=1e-12)
    for j, final in enumerate(h_n if mode == "LSTM" else (h_n,)):
        assert final.shape == (count, batch, 2)
        np.testing.assert_allclose(final.numpy(), np.stack([f[j] for f in expected_finals]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", list(LAYERS))
def test_padded_batch_gives_each_sequence_its_own_result(device, mode):
    """Each sequence of a padded batch, run alone and unpadded, gives the same outputs and final state."""
    module = LAYERS[mode](3, 4, num_layers=2, bidirectional=True, batch_first=True).double().to(device)
    lengths = [5, 2, 4]
    x = minidl.tensor(np.random.default_rng(0).standard_normal((3, 5, 3)), device=device)
    output, h_n = module(x, lengths=lengths)
    h_n = h_n if mode == "LSTM" else (h_n,)
    for b, length in enumerate(lengths):
        alone, alone_final = module(x[b, :length])  # unbatched (T, D)
        np.testing.assert_allclose(output.numpy()[b, :length], alone.numpy(), rtol=1e-12, atol=1e-12)
        assert not output.numpy()[b, length:].any()  # zero past the sequence's length
        for part, alone_part in zip(h_n, alone_final if mode == "LSTM" else (alone_final,)):
            np.testing.assert_allclose(part.numpy()[:, b], alone_part.numpy(), rtol=1e-12, atol=1e-12)


def test_cells_match_the_equations_and_the_layers(device):
    rng = np.random.default_rng(1)
    x, h, c = rng.standard_normal((4, 3)), rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    for cell, mode in ((nn.LSTMCell(3, 2), "LSTM"), (nn.GRUCell(3, 2), "GRU"), (nn.RNNCell(3, 2), "RNN_TANH"),
                       (nn.RNNCell(3, 2, nonlinearity="relu", bias=False), "RNN_RELU")):
        cell = cell.double().to(device)
        w = [p.numpy() for p in cell.parameters()] + [0.0] * (0 if cell.bias else 2)
        state = (h, c) if mode == "LSTM" else (h,)
        expected = np_step(mode, x, state, *w)
        for implementation in ("fused", "composed"):
            cell.implementation = implementation
            args = tuple(minidl.tensor(s, device=device) for s in state)
            got = cell(minidl.tensor(x, device=device), args if mode == "LSTM" else args[0])
            for g, e in zip(got if mode == "LSTM" else (got,), expected):
                np.testing.assert_allclose(g.numpy(), e, rtol=1e-12, atol=1e-12)
            alone = cell(minidl.tensor(x[0], device=device))  # unbatched, zero state
            zero_start = np_step(mode, x[:1], tuple(np.zeros((1, 2)) for _ in state), *w)
            np.testing.assert_allclose((alone[0] if mode == "LSTM" else alone).numpy(), zero_start[0][0], atol=1e-12)


# --------------------------------------------------------------------------- #
# Gradients
# --------------------------------------------------------------------------- #
def test_fused_and_composed_layers_agree_on_values_and_gradients(device):
    results = []
    for implementation in ("fused", "composed"):
        minidl.manual_seed(3)
        lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, implementation=implementation).double().to(device)
        rng = np.random.default_rng(3)
        x = minidl.tensor(rng.standard_normal((5, 3, 3)), device=device, requires_grad=True)
        h0, c0 = (minidl.tensor(rng.standard_normal((4, 3, 4)), device=device, requires_grad=True) for _ in range(2))
        output, (h_n, c_n) = lstm(x, (h0, c0), lengths=[5, 3, 1])
        ((output * output).sum() + (h_n * c_n).sum()).backward()
        results.append([output.numpy(), h_n.numpy(), c_n.numpy(), x.grad.numpy(), h0.grad.numpy(), c0.grad.numpy()]
                       + [p.grad.numpy() for p in lstm.parameters()])
    for f, c in zip(*results):
        np.testing.assert_allclose(f, c, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_layer_gradcheck_wrt_input_and_initial_state(device, mode):
    module = LAYERS[mode](2, 2, num_layers=2, batch_first=True).double().to(device)
    rng = np.random.default_rng(4)
    x = minidl.tensor(rng.standard_normal((2, 3, 2)), device=device, requires_grad=True)
    states = [minidl.tensor(rng.standard_normal((2, 2, 2)), device=device, requires_grad=True)
              for _ in range(2 if mode == "LSTM" else 1)]

    def run(x, *state):
        output, h_n = module(x, tuple(state) if mode == "LSTM" else state[0], lengths=[3, 2])
        return (output, *(h_n if mode == "LSTM" else (h_n,)))

    assert minidl.gradcheck(run, [x, *states])


@pytest.mark.parametrize("implementation", ["fused", "composed"])
def test_lstm_layer_of_500_steps_trains(implementation):
    lstm = nn.LSTM(2, 3, implementation=implementation)
    x = minidl.randn(500, 2, 2)
    output, (h_n, c_n) = lstm(x)
    (h_n.sum() + output[0].sum()).backward()
    grads = [p.grad.numpy() for p in lstm.parameters()]
    assert all(np.isfinite(g).all() and g.any() for g in grads)


def test_dropout_between_layers_only_in_training():
    minidl.manual_seed(0)
    lstm = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = minidl.randn(4, 2, 3)
    train_a, train_b = lstm(x)[0].numpy(), lstm(x)[0].numpy()
    assert not np.allclose(train_a, train_b)
    lstm.eval()
    np.testing.assert_array_equal(lstm(x)[0].numpy(), lstm(x)[0].numpy())


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
def test_bad_constructor_arguments_are_explained():
    with pytest.raises(ValueError, match="LSTM: expected hidden_size to be a positive int, got 0"):
        nn.LSTM(3, 0)
    with pytest.raises(ValueError, match="GRU: expected num_layers to be a positive int, got 1.5"):
        nn.GRU(3, 2, num_layers=1.5)
    with pytest.raises(ValueError, match="RNN: expected nonlinearity to be one of 'tanh', 'relu', got 'sigmoid'"):
        nn.RNN(3, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"LSTM: expected dropout to be a finite number in \[0, 1\], got 2"):
        nn.LSTM(3, 2, dropout=2)
    with pytest.raises(ValueError, match="LSTMCell: expected implementation to be one of 'fused', 'composed', got 'cudnn'"):
        nn.LSTMCell(3, 2, implementation="cudnn")


def test_bad_forward_arguments_are_explained():
    lstm = nn.LSTM(3, 2, num_layers=2)
    x = minidl.randn(4, 5, 3)
    with pytest.raises(ValueError, match=r"LSTM: expected input of shape \(T, B, input_size\) .*=3, got shape \(4, 5, 2\)"):
        lstm(minidl.randn(4, 5, 2))
    with pytest.raises(ValueError, match=r"LSTM: expected hx = \(h0, c0\), got 1 tensor"):
        lstm(x, (minidl.zeros(2, 5, 2),))
    with pytest.raises(ValueError, match=r"LSTM: expected each initial state of shape \(2, 5, 2\) .* got \(1, 5, 2\)"):
        lstm(x, (minidl.zeros(1, 5, 2), minidl.zeros(1, 5, 2)))
    with pytest.raises(ValueError, match=r"GRU: lengths must lie between 0 and the 4 time steps, got \[9, 1, 1, 1, 1"):
        nn.GRU(3, 2)(x, lengths=[9, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="RNN: lengths must be 5 integers"):
        nn.RNN(3, 2)(x, lengths=[4, 4])
    with pytest.raises(ValueError, match=r"GRUCell: expected input of shape \(B, 3\) or \(3,\)"):
        nn.GRUCell(3, 2)(x)
    with pytest.raises(ValueError, match=r"LSTMCell: expected each hidden state of shape \(5, 2\), got \(5, 3\)"):
        nn.LSTMCell(3, 2)(x[0], (minidl.zeros(5, 3), minidl.zeros(5, 3)))
