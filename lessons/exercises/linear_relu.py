"""Exercise: the backward of a linear layer followed by a ReLU.

The forward is written for you (PyTorch's F.relu(F.linear(x, weight, bias))):

    a = x @ weight.T + bias          (N, O)    kept on ``self.a``
    y = relu(a) = max(a, 0)          (N, O)

Derive the gradients for x, weight and bias from gy = dL/dy, then write
``LinearReLU.backward``: it returns (dx, dweight, dbias), Tensors shaped like the inputs.

Shapes: x (N, I); weight (O, I); bias (O,); a, y and gy (N, O).
``self.inputs`` is (x, weight, bias) as Tensors (``.data`` is the array). Work on
arrays (``gy.data``) and wrap with ``Tensor(array)``, or use Tensor ops.

Check it:  python -m minidl.exercises check linear_relu
"""

from minidl import Function, Tensor  # noqa: F401  (Tensor: to wrap the gradients you compute)
from minidl.backend import get_array_module


class LinearReLU(Function):
    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        self.a = x @ weight.T + bias
        return xp.maximum(self.a, 0)

    def backward(self, gy):
        raise NotImplementedError(
            "LinearReLU.backward: return (dx, dweight, dbias), Tensors shaped (N, I), (O, I) and (O,): "
            "first through the ReLU (self.a is its input), then through the linear map"
        )


def linear_relu(x, weight, bias):
    return LinearReLU()(x, weight, bias)
