"""Exercise: the backward of the sigmoid.

The forward is written for you:

    y = sigmoid(x) = 1 / (1 + exp(-x))

Derive, on paper first, dy/dx, and write it through y alone (no exp of anything):
forward has already computed y, so the backward can reuse it.

Then write ``Sigmoid.backward``. It receives gy = dL/dy and returns dL/dx = gy * dy/dx.

Shapes: x, y, gy and the gradient you return all have the same shape (any shape).
``gy`` is a Tensor; ``self.outputs[0]`` is y and ``self.inputs[0]`` is x (Tensors too),
so ``gy * y * 2`` and friends are Tensor ops.

Check it:  python -m minidl.exercises check sigmoid
"""

from minidl import Function
from minidl.backend import get_array_module


class Sigmoid(Function):
    def forward(self, x):
        xp = get_array_module(x)
        return 1 / (1 + xp.exp(-x))

    def backward(self, gy):
        raise NotImplementedError(
            "Sigmoid.backward: return dL/dx, a Tensor shaped like x: gy times dy/dx, "
            "with dy/dx derived by you and written through y = self.outputs[0]"
        )


def sigmoid(x):
    return Sigmoid()(x)
