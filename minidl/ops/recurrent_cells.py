"""The gate math of the recurrent cells: RNN (tanh, relu), LSTM, GRU.

Every cell starts from the same two affine maps of one time step (computed by the caller):

    gx = x_t W_ih^T + b_ih      (B, G*H)   the input's contribution to every gate
    gh = h   W_hh^T + b_hh      (B, G*H)   the previous hidden state's contribution

with PyTorch's weight shapes W_ih (G*H, D), W_hh (G*H, H) and its gate order
(G = 1 for RNN; 4 for LSTM: i, f, g, o; 3 for GRU: r, z, n). What follows differs per
cell, and each class below writes it three times:

* ``composed(gx, gh, state)``: in Tensor ops; autograd differentiates it. Read this first.
* ``step(gx, gh, state)``: the same on raw numpy/cupy arrays, returning the new state
  and what the derivative needs (``saved``).
* ``step_backward(d_new_state, state, saved)``: the hand-written derivative on arrays.
  Given dL/d(new state) it returns (dL/dgx, dL/dgh, dL/d(old state) through the gate
  math alone). The caller adds the path through gh: dL/dh += dL/dgh @ W_hh.

A state is a tuple of arrays with the hidden state h first: (h,) or, for the LSTM, (h, c).
The fused Functions in ``minidl.ops.recurrent`` drive ``step`` and ``step_backward``.
"""

from __future__ import annotations

from minidl.backend import get_array_module
from minidl.ops.activation import relu, sigmoid, tanh
from minidl.ops.shape import chunk


def _sigmoid(a):
    """sigmoid on arrays: 1 / (1 + exp(-a)) = (1 + tanh(a / 2)) / 2 (one call, never overflows)."""
    return 0.5 * get_array_module(a).tanh(0.5 * a) + 0.5


class RNNTanhGates:
    """h' = tanh(gx + gh);  da = dh' * (1 - h'**2)"""

    mode, gates, num_states = "RNN_TANH", 1, 1

    @staticmethod
    def composed(gx, gh, state):
        return (tanh(gx + gh),)

    @staticmethod
    def step(gx, gh, state):
        h = get_array_module(gx).tanh(gx + gh)
        return (h,), h

    @staticmethod
    def step_backward(d_new_state, state, h):
        da = d_new_state[0] * (1 - h * h)
        return da, da, (None,)


class RNNReluGates:
    """h' = max(gx + gh, 0);  da = dh' where h' > 0, else 0"""

    mode, gates, num_states = "RNN_RELU", 1, 1

    @staticmethod
    def composed(gx, gh, state):
        return (relu(gx + gh),)

    @staticmethod
    def step(gx, gh, state):
        h = get_array_module(gx).maximum(gx + gh, 0)
        return (h,), h

    @staticmethod
    def step_backward(d_new_state, state, h):
        da = d_new_state[0] * (h > 0)
        return da, da, (None,)


class LSTMGates:
    """Long short-term memory (PyTorch's equations and gate order i, f, g, o):

        a = gx + gh = [a_i, a_f, a_g, a_o]       (four blocks of H columns)
        i = sigmoid(a_i)    input gate: how much of the candidate to write
        f = sigmoid(a_f)    forget gate: how much of the old cell to keep
        g = tanh(a_g)       the candidate values
        o = sigmoid(a_o)    output gate: how much of the cell to show
        c' = f * c + i * g
        h' = o * tanh(c')

    Derivative, from dh' and dc' (the gradient reaching c' from later steps):

        dc  = dc' + dh' * o * (1 - tanh(c')**2)      total gradient at c'
        di  = dc * g,   df = dc * c,   dg = dc * i,   do = dh' * tanh(c')
        da_i = di * i (1 - i),  da_f = df * f (1 - f),  da_g = dg * (1 - g**2),  da_o = do * o (1 - o)
        dc_old = dc * f                               (h reaches a only through gh)
    """

    mode, gates, num_states = "LSTM", 4, 2

    @staticmethod
    def composed(gx, gh, state):
        h, c = state
        i, f, g, o = chunk(gx + gh, 4, axis=-1)
        i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        c = f * c + i * g
        h = o * tanh(c)
        return h, c

    @staticmethod
    def step(gx, gh, state):
        xp = get_array_module(gx)
        h, c = state
        H = h.shape[-1]
        a = gx + gh
        i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H : 2 * H])
        g, o = xp.tanh(a[:, 2 * H : 3 * H]), _sigmoid(a[:, 3 * H :])
        c_new = f * c + i * g
        tanh_c = xp.tanh(c_new)
        return (o * tanh_c, c_new), (i, f, g, o, tanh_c)

    @staticmethod
    def step_backward(d_new_state, state, saved):
        xp = get_array_module(saved[0])
        dh, dc_new = d_new_state
        c = state[1]
        i, f, g, o, tanh_c = saved
        H = c.shape[-1]
        dc = dc_new + dh * o * (1 - tanh_c * tanh_c)
        da = xp.empty(c.shape[:-1] + (4 * H,), dtype=dc.dtype)
        da[:, :H] = dc * g * i * (1 - i)
        da[:, H : 2 * H] = dc * c * f * (1 - f)
        da[:, 2 * H : 3 * H] = dc * i * (1 - g * g)
        da[:, 3 * H :] = dh * tanh_c * o * (1 - o)
        return da, da, (None, dc * f)


class GRUGates:
    """Gated recurrent unit (PyTorch's equations and gate order r, z, n):

        r = sigmoid(gx_r + gh_r)          reset gate
        z = sigmoid(gx_z + gh_z)          update gate: how much of the old state to keep
        n = tanh(gx_n + r * gh_n)         the candidate (b_hn stays inside the r * (...))
        h' = (1 - z) * n + z * h

    Derivative, from dh':

        dn = dh' (1 - z),  dz = dh' (h - n),  dh_old = dh' z  (plus the path through gh)
        da_n = dn (1 - n**2);  dgx_n = da_n,  dgh_n = da_n * r,  dr = da_n * gh_n
        da_r = dr r (1 - r),   da_z = dz z (1 - z)
    """

    mode, gates, num_states = "GRU", 3, 1

    @staticmethod
    def composed(gx, gh, state):
        (h,) = state
        x_r, x_z, x_n = chunk(gx, 3, axis=-1)
        h_r, h_z, h_n = chunk(gh, 3, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = tanh(x_n + r * h_n)
        return ((1 - z) * n + z * h,)

    @staticmethod
    def step(gx, gh, state):
        xp = get_array_module(gx)
        (h,) = state
        H = h.shape[-1]
        r = _sigmoid(gx[:, :H] + gh[:, :H])
        z = _sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        gh_n = gh[:, 2 * H :]
        n = xp.tanh(gx[:, 2 * H :] + r * gh_n)
        return (n + z * (h - n),), (r, z, n, gh_n)

    @staticmethod
    def step_backward(d_new_state, state, saved):
        xp = get_array_module(saved[0])
        (dh,), (h,) = d_new_state, state
        r, z, n, gh_n = saved
        da_n = dh * (1 - z) * (1 - n * n)
        da_r = da_n * gh_n * r * (1 - r)
        da_z = dh * (h - n) * z * (1 - z)
        dgx = xp.concatenate([da_r, da_z, da_n], axis=-1)
        dgh = xp.concatenate([da_r, da_z, da_n * r], axis=-1)
        return dgx, dgh, (dh * z,)


CELLS = {cell.mode: cell for cell in (RNNTanhGates, RNNReluGates, LSTMGates, GRUGates)}
