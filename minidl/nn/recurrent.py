"""Recurrent layers: RNNCell, LSTMCell, GRUCell (one time step) and RNN, LSTM, GRU (whole
sequences, stacked layers, optionally bidirectional).

Names, argument orders, parameter names and shapes follow PyTorch: layer k holds
weight_ih_l{k} (G*H, D_k), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H,)
(suffix ``_reverse`` for the backward direction), with the gates stacked in PyTorch's
order (LSTM: i, f, g, o; GRU: r, z, n) and every weight and bias drawn from
U(-1/sqrt(H), 1/sqrt(H)). The equations are in ``minidl.ops.recurrent_cells``.

``implementation`` picks how the cell runs; both give the same numbers:

* 'composed': Tensor ops, one step after another, differentiated by autograd (read this);
* 'fused' (default): hand-written forward and backward on arrays; in RNN/LSTM/GRU the
  whole loop over time of a layer is one Function (``minidl.ops.recurrent``). Much faster.

Where we differ from PyTorch: a padded batch is described by ``forward(x, hx, lengths)``
(each sequence's number of valid steps) instead of a PackedSequence. Outputs past a
sequence's length are zero and h_n (c_n) hold each sequence's state at its last valid
step, as pad_packed_sequence would give. ``proj_size`` is not supported. Lengths on the GPU (a
Tensor from the DataLoader) are used where they are, never read back, so a training step need not
wait for the device; their values (0 <= L <= T) are then checked only in anomaly mode.
"""

from __future__ import annotations

import math

import numpy

from minidl import backend, checks
from minidl.creation import zeros
from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.module import Module, Parameter
from minidl.ops.recurrent import check_lengths, gru_cell, lstm_cell, recurrence, rnn_relu_cell, rnn_tanh_cell
from minidl.ops.recurrent_cells import CELLS
from minidl.ops.shape import cat, getitem, squeeze, stack, swapaxes, unsqueeze
from minidl.tensor import Tensor

_IMPLEMENTATIONS = ("fused", "composed")
_CELL_OPS = {"RNN_TANH": rnn_tanh_cell, "RNN_RELU": rnn_relu_cell, "LSTM": lstm_cell, "GRU": gru_cell}


# --------------------------------------------------------------------------- #
# One time step
# --------------------------------------------------------------------------- #
class RNNCellBase(Module):
    """The parameters and the call shared by RNNCell, LSTMCell and GRUCell.

    ``forward(input, hx=None)``: input (B, input_size) or unbatched (input_size,); hx the
    state ((B, H), or (h, c) for the LSTM), zeros when left out.
    """

    def __init__(self, mode, input_size, hidden_size, bias=True, implementation="fused", device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = checks.positive_int(input_size, name, "input_size")
        self.hidden_size = checks.positive_int(hidden_size, name, "hidden_size")
        self.implementation = checks.choice(implementation, _IMPLEMENTATIONS, name, "implementation")
        self.mode, self.bias = mode, bool(bias)
        rows, dtype = CELLS[mode].gates * self.hidden_size, numpy.float32 if dtype is None else dtype
        self.weight_ih = Parameter(zeros(rows, self.input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(zeros(rows, self.hidden_size, dtype=dtype, device=device))
        self.register_parameter("bias_ih", Parameter(zeros(rows, dtype=dtype, device=device)) if bias else None)
        self.register_parameter("bias_hh", Parameter(zeros(rows, dtype=dtype, device=device)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def forward(self, input, hx=None):
        name, lstm = type(self).__name__, self.mode == "LSTM"
        checks.tensor_input(input, name)
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: expected input of shape (B, {self.input_size}) or ({self.input_size},) "
                f"(input_size={self.input_size}), got shape {input.shape}"
            )
        batched = input.ndim == 2
        x = input if batched else unsqueeze(input, 0)
        if hx is None:
            h = zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
            state = (h, h) if lstm else (h,)
        else:
            state = tuple(hx) if lstm else (hx,)
            if lstm and len(state) != 2:
                raise ValueError(f"{name}: expected hx = (h, c), got {len(state)} tensor(s)")
            expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            for s in state:
                if tuple(s.shape) != expected:
                    raise ValueError(f"{name}: expected each hidden state of shape {expected}, got {tuple(s.shape)}")
            state = state if batched else tuple(unsqueeze(s, 0) for s in state)
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        new_state = _CELL_OPS[self.mode](x, state if lstm else state[0], *weights, implementation=self.implementation)
        if batched:
            return new_state
        return tuple(squeeze(s, 0) for s in new_state) if lstm else squeeze(new_state, 0)

    def extra_repr(self) -> str:
        extra = "" if self.bias else ", bias=False"
        if self.mode == "RNN_RELU":
            extra += ", nonlinearity='relu'"
        if self.implementation != "fused":
            extra += f", implementation={self.implementation!r}"
        return f"{self.input_size}, {self.hidden_size}{extra}"


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)  (or relu with ``nonlinearity='relu'``)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", implementation="fused",
                 device=None, dtype=None):
        checks.choice(nonlinearity, ("tanh", "relu"), "RNNCell", "nonlinearity")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, bias, implementation, device, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step: ``h', c' = cell(x, (h, c))`` (gates i, f, g, o; see ops.recurrent_cells.LSTMGates)."""

    def __init__(self, input_size, hidden_size, bias=True, implementation="fused", device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, implementation, device, dtype)


class GRUCell(RNNCellBase):
    """One GRU step: ``h' = cell(x, h)`` (gates r, z, n; see ops.recurrent_cells.GRUGates)."""

    def __init__(self, input_size, hidden_size, bias=True, implementation="fused", device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, implementation, device, dtype)


# --------------------------------------------------------------------------- #
# Whole sequences
# --------------------------------------------------------------------------- #
class RNNBase(Module):
    """The parameters and the forward shared by RNN, LSTM and GRU.

    ``forward(input, hx=None, lengths=None)``
      input   (T, B, input_size), or (B, T, input_size) with batch_first, or unbatched (T, input_size)
      hx      initial state (num_layers * num_directions, B, H), for the LSTM a pair (h0, c0);
              zeros when left out
      lengths optional, B integers: the valid steps of each sequence of a padded batch
    returns output (T, B, num_directions * H) (batch first if batch_first) and h_n, or
    (h_n, c_n) for the LSTM, each (num_layers * num_directions, B, H).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, implementation="fused", device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = checks.positive_int(input_size, name, "input_size")
        self.hidden_size = checks.positive_int(hidden_size, name, "hidden_size")
        self.num_layers = checks.positive_int(num_layers, name, "num_layers")
        self.dropout = checks.probability(dropout, name, "dropout")
        self.implementation = checks.choice(implementation, _IMPLEMENTATIONS, name, "implementation")
        self.mode, self.bias, self.batch_first = mode, bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        directions = 2 if bidirectional else 1
        rows, dtype = CELLS[mode].gates * self.hidden_size, numpy.float32 if dtype is None else dtype
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.hidden_size * directions
            shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, self.hidden_size)}
            if bias:
                shapes.update(bias_ih=(rows,), bias_hh=(rows,))
            for suffix in ("", "_reverse")[:directions]:
                for kind, shape in shapes.items():
                    setattr(self, f"{kind}_l{layer}{suffix}", Parameter(zeros(*shape, dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """Nothing to do here (PyTorch packs weights for cuDNN); kept so PyTorch code runs."""

    def _weights(self, layer, suffix):
        names = (f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}")
        biases = (f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}")
        return tuple(getattr(self, n) for n in names) + tuple(getattr(self, n) if self.bias else None for n in biases)

    def forward(self, input, hx=None, lengths=None):
        name, lstm = type(self).__name__, self.mode == "LSTM"
        checks.tensor_input(input, name)
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ValueError(
                f"{name}: expected input of shape {layout} or unbatched (T, input_size) with "
                f"input_size={self.input_size}, got shape {input.shape}"
            )
        batched = input.ndim == 3
        if not batched:
            x = unsqueeze(input, 1)  # (T, 1, D)
        else:  # time-major inside: (T, B, D)
            x = swapaxes(input, 0, 1) if self.batch_first else input
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError(f"{name}: expected at least one time step, got input of shape {input.shape}")
        if lengths is not None:
            lengths = check_lengths(lengths, steps, batch, name)
        directions = 2 if self.bidirectional else 1
        initial = self._initial_state(hx, x, batched, directions)
        flip = _reversal_index(steps, batch, lengths, x) if self.bidirectional else None

        finals = []  # one state tuple per (layer, direction), in PyTorch's h_n order
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            outputs = []
            for direction, suffix in enumerate(("", "_reverse")[:directions]):
                k = layer * directions + direction
                weights = self._weights(layer, suffix)
                if direction == 0:
                    output, final = recurrence(self.mode, x, initial[k], *weights, lengths, self.implementation)
                else:  # run over each sequence reversed (within its length), then put the steps back in order
                    output, final = recurrence(self.mode, getitem(x, flip), initial[k], *weights, lengths,
                                               self.implementation)
                    output = getitem(output, flip)
                outputs.append(output)
                finals.append(final)
            x = outputs[0] if directions == 1 else cat(outputs, axis=-1)

        h_n = tuple(stack([f[i] for f in finals]) for i in range(len(finals[0])))
        if not batched:
            output, h_n = squeeze(x, 1), tuple(squeeze(h, 1) for h in h_n)
        else:
            output = swapaxes(x, 0, 1) if self.batch_first else x
        return output, (h_n if lstm else h_n[0])

    def _initial_state(self, hx, x, batched, directions):
        """The initial state of each (layer, direction): a tuple of (B, H) tensors."""
        name, lstm = type(self).__name__, self.mode == "LSTM"
        count = self.num_layers * directions
        if hx is None:
            h = zeros(x.shape[1], self.hidden_size, dtype=x.dtype, device=x.device)
            return [(h, h) if lstm else (h,)] * count
        state = tuple(hx) if lstm else (hx,)
        if lstm and len(state) != 2:
            raise ValueError(f"{name}: expected hx = (h0, c0), got {len(state)} tensor(s)")
        expected = (count, x.shape[1], self.hidden_size) if batched else (count, self.hidden_size)
        for s in state:
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                got = tuple(s.shape) if hasattr(s, "shape") else type(s).__name__
                raise ValueError(
                    f"{name}: expected each initial state of shape {expected} "
                    f"(num_layers * num_directions, batch, hidden_size), got {got}"
                )
        state = state if batched else tuple(unsqueeze(s, 1) for s in state)
        return [tuple(getitem(s, k) for s in state) for k in range(count)]

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False,
                    "implementation": "fused"}
        for key, default in defaults.items():
            if getattr(self, key) != default:
                text += f", {key}={getattr(self, key)!r}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        return text


def _reversal_index(steps, batch, lengths, like):
    """An index that reverses each sequence within its own length: step t of sequence b
    reads step L_b - 1 - t (t < L_b); padding stays where it is. It is its own inverse.
    Built where the lengths are (host lengths: a plain reversal when nothing is padded;
    device lengths: on the device, without reading them)."""
    if lengths is None or (not backend.is_cupy_array(lengths) and (lengths == steps).all()):
        return slice(None, None, -1)
    valid = backend.to_device(lengths, like.device)[None, :]
    t = like.xp.arange(steps)[:, None]
    time = like.xp.where(t < valid, valid - 1 - t, t)
    return time, like.xp.arange(batch)[None, :]


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), for each layer."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, implementation="fused", device=None, dtype=None):
        checks.choice(nonlinearity, ("tanh", "relu"), "RNN", "nonlinearity")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, implementation, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory over sequences; returns (output, (h_n, c_n)). Gates i, f, g, o."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, implementation="fused", device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         implementation, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit over sequences; returns (output, h_n). Gates r, z, n."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, implementation="fused", device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         implementation, device, dtype)
