"""Exercise: the backward of one LSTM cell step (PyTorch's nn.LSTMCell, gate order i, f, g, o).

The forward is written for you:

    a = x @ weight_ih.T + h @ weight_hh.T + bias         (N, 4H)   the gate preactivations
    a_i, a_f, a_g, a_o = the four (N, H) column blocks of a, in this order
    i = sigmoid(a_i)    f = sigmoid(a_f)    g = tanh(a_g)    o = sigmoid(a_o)
    c_new = f * c + i * g
    h_new = o * tanh(c_new)

(``bias`` is PyTorch's bias_ih + bias_hh as one vector.) forward kept i, f, g, o and
tanh(c_new) for you on ``self`` (arrays, each (N, H)).

backward receives TWO gradients, gh = dL/dh_new and gc = dL/dc_new (each (N, H)), and
returns six, one per input: (dx, dh, dc, dweight_ih, dweight_hh, dbias). Derive, in order:

    dc_new = gc + gh * o * (1 - tanh(c_new)**2)    c_new reaches L directly and through h_new
    do = gh * tanh(c_new)
    di = dc_new * g      df = dc_new * c      dg = dc_new * i
    dc = dc_new * f                                       the gradient for the old cell state
    da_i = di * i * (1 - i)   da_f = df * f * (1 - f)   da_g = dg * (1 - g**2)   da_o = do * o * (1 - o)
    da = [da_i, da_f, da_g, da_o] joined along dim 1        (N, 4H)
    dx = da @ weight_ih     dh = da @ weight_hh     dweight_ih = da.T @ x
    dweight_hh = da.T @ h   dbias = da summed over the batch axis

Shapes: x (N, I); h, c (N, H); weight_ih (4H, I); weight_hh (4H, H); bias (4H,).
``self.inputs`` is (x, h, c, weight_ih, weight_hh, bias), as Tensors. Tensor ops mix
with arrays (``gh * self.o``); ``minidl.cat([...], dim=1)`` joins Tensors.

Check it:  python -m minidl.exercises check lstm_cell
"""

from minidl import Function
from minidl.backend import get_array_module


class LSTMCell(Function):
    def forward(self, x, h, c, weight_ih, weight_hh, bias):
        xp = get_array_module(x)
        a = x @ weight_ih.T + h @ weight_hh.T + bias
        a_i, a_f, a_g, a_o = xp.split(a, 4, axis=1)
        self.i, self.f, self.o = (1 / (1 + xp.exp(-t)) for t in (a_i, a_f, a_o))
        self.g = xp.tanh(a_g)
        c_new = self.f * c + self.i * self.g
        self.tanh_c = xp.tanh(c_new)
        return self.o * self.tanh_c, c_new

    def backward(self, gh, gc):
        raise NotImplementedError(
            "LSTMCell.backward: from gh and gc compute dc_new, then the gate gradients di, df, dg, do, "
            "then da (N, 4H) through each gate's nonlinearity; return (da @ weight_ih, da @ weight_hh, "
            "dc_new * f, da.T @ x, da.T @ h, da summed over dim 0)"
        )


def lstm_cell(x, h, c, weight_ih, weight_hh, bias):
    """One step: returns (h_new, c_new)."""
    return LSTMCell()(x, h, c, weight_ih, weight_hh, bias)
