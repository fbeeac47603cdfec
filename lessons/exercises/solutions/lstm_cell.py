"""Solution: the backward of one LSTM cell step (gate order i, f, g, o).

Walk the forward backwards. h_new = o * tanh(c_new) sends gh to o (times tanh(c_new))
and to c_new (times o * (1 - tanh(c_new)**2)), where it joins gc. c_new = f * c + i * g
is a sum of products: each factor's gradient is dc_new times the other factor. Each gate
then passes its gradient through its own nonlinearity (sigmoid' = s (1 - s),
tanh' = 1 - t**2), and the four preactivation gradients, joined, go through the affine
map a = x W_ih^T + h W_hh^T + b by the matmul rule.
"""

from minidl import Function, cat
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
        x, h, c, weight_ih, weight_hh, _ = self.inputs
        i, f, g, o = self.i, self.f, self.g, self.o
        dc_new = gc + gh * o * (1 - self.tanh_c**2)
        do = gh * self.tanh_c
        di, df, dg = dc_new * g, dc_new * c, dc_new * i
        da = cat([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], dim=1)
        return da @ weight_ih, da @ weight_hh, dc_new * f, da.T @ x, da.T @ h, da.sum(dim=0)


def lstm_cell(x, h, c, weight_ih, weight_hh, bias):
    """One step: returns (h_new, c_new)."""
    return LSTMCell()(x, h, c, weight_ih, weight_hh, bias)
