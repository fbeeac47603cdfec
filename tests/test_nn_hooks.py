"""Module hooks (minidl.nn.hooks): forward pre-hooks and forward hooks see and replace args and
outputs; full backward hooks see dL/d(inputs) and dL/d(outputs) of one call, checked against
the gradients written out in numpy for a Linear layer (y = x W^T + b, so dL/dx = dL/dy @ W),
and may replace what flows on; remove() stops every kind of hook."""

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.nn import hooks


def linear(device="cpu", in_features=3, out_features=2):
    return nn.Linear(in_features, out_features).to(device).double()


def leaf(*shape, device="cpu", requires_grad=True):
    return minidl.tensor(np.random.standard_normal(shape), dtype=np.float64, device=device,
                         requires_grad=requires_grad)


def record_backward(module):
    """Register a backward hook that appends (grad_input, grad_output) as numpy arrays (None kept)."""
    calls = []

    def hook(m, grad_input, grad_output):
        assert m is module
        calls.append(tuple(tuple(None if g is None else g.numpy() for g in grads) for grads in (grad_input, grad_output)))

    return calls, module.register_full_backward_hook(hook)


# --------------------------------------------------------------------------- #
# Forward hooks
# --------------------------------------------------------------------------- #
def test_forward_hook_sees_args_and_output_and_may_replace_the_output(device):
    layer, x = linear(device), leaf(4, 3, device=device)
    seen = []

    def hook(module, args, output):
        seen.append((module, args, output.numpy()))
        return output * 2

    layer.register_forward_hook(hook)
    y = layer(x)
    plain = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    assert seen[0][0] is layer and len(seen[0][1]) == 1
    np.testing.assert_allclose(seen[0][1][0].numpy(), x.numpy())
    np.testing.assert_allclose(seen[0][2], plain, rtol=1e-12)
    np.testing.assert_allclose(y.numpy(), 2 * plain, rtol=1e-12)


def test_forward_pre_hook_replaces_args():
    layer, x = linear(), leaf(4, 3)
    layer.register_forward_pre_hook(lambda module, args: (args[0] * 3,))
    np.testing.assert_allclose(layer(x).numpy(), 3 * x.numpy() @ layer.weight.numpy().T + layer.bias.numpy(),
                               rtol=1e-12)
    layer.register_forward_pre_hook(lambda module, args: args[0] + 1)  # a single value becomes (value,)
    expected = (3 * x.numpy() + 1) @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-12)


def test_hooks_returning_none_change_nothing_and_kwargs_reach_forward():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    module, x = Scale(), leaf(3)
    calls = []
    module.register_forward_pre_hook(lambda m, args: calls.append("pre"))
    module.register_forward_hook(lambda m, args, out: calls.append("forward"))
    np.testing.assert_allclose(module(x, factor=4.0).numpy(), 4 * x.numpy())
    assert calls == ["pre", "forward"]


def test_remove_stops_every_kind_of_hook():
    layer, x = linear(), leaf(4, 3)
    calls = []
    handles = [
        layer.register_forward_pre_hook(lambda m, a: calls.append("pre")),
        layer.register_forward_hook(lambda m, a, o: calls.append("forward")),
        layer.register_full_backward_hook(lambda m, gi, go: calls.append("backward")),
    ]
    layer(x).sum().backward()
    assert calls == ["pre", "forward", "backward"]
    for h in handles:
        h.remove()
    h.remove()  # twice is harmless
    y = layer(x)
    y.sum().backward()
    assert calls == ["pre", "forward", "backward"]
    assert y.grad_fn.name != "OutputGate"  # no hook: no gates, the plain fast path


# --------------------------------------------------------------------------- #
# Backward hooks
# --------------------------------------------------------------------------- #
def test_backward_hook_of_a_linear_layer(device):
    layer, x = linear(device), leaf(5, 3, device=device)
    calls, _ = record_backward(layer)
    y = layer(x)
    c = np.random.standard_normal(y.shape)
    (y * y * minidl.tensor(c, device=device)).sum().backward()  # dL/dy = 2 c y
    assert len(calls) == 1
    (grad_input,), (grad_output,) = calls[0]
    gy = 2 * c * (x.numpy() @ layer.weight.numpy().T + layer.bias.numpy())
    np.testing.assert_allclose(grad_output, gy, rtol=1e-10)
    np.testing.assert_allclose(grad_input, gy @ layer.weight.numpy(), rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), grad_input, rtol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), gy.T @ x.numpy(), rtol=1e-10)


def test_grad_output_equals_minidl_grad():
    layer, x = linear(), leaf(4, 3)
    calls, _ = record_backward(layer)
    y = layer(x)
    loss = minidl.tanh(y).sum()
    (gy,) = minidl.grad(loss, y, retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(calls[0][1][0], gy.numpy(), rtol=1e-12)


def test_grad_input_sees_only_this_call():
    """x also feeds the loss directly: grad_input holds the module's part of dL/dx only."""
    layer, x = linear(), leaf(4, 3)
    calls, _ = record_backward(layer)
    (layer(x).sum() + (x * 3).sum()).backward()
    module_part = np.ones((4, 2)) @ layer.weight.numpy()
    np.testing.assert_allclose(calls[0][0][0], module_part, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), module_part + 3, rtol=1e-12)


def test_replacing_grad_input_changes_what_earlier_layers_get():
    first, second = linear(in_features=3, out_features=4), linear(in_features=4, out_features=2)
    model, x = nn.Sequential(first, second), leaf(5, 3)
    model(x).sum().backward()
    plain_w, plain_x = first.weight.grad.numpy(), x.grad.numpy()
    first.zero_grad(), second.zero_grad()
    x.grad = None
    second.register_full_backward_hook(lambda m, grad_input, grad_output: (grad_input[0] * 2,))
    model(x).sum().backward()
    np.testing.assert_allclose(first.weight.grad.numpy(), 2 * plain_w, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), 2 * plain_x, rtol=1e-12)
    np.testing.assert_allclose(second.weight.grad.numpy(), np.ones((5, 2)).T @ first(x).numpy(), rtol=1e-12)


def test_hooks_on_nested_modules():
    first, second = linear(in_features=3, out_features=4), linear(in_features=4, out_features=2)
    model, x = nn.Sequential(first, nn.Tanh(), second), leaf(5, 3)
    order = []
    outer, _ = record_backward(model)
    inner, _ = record_backward(second)
    model.register_full_backward_hook(lambda *args: order.append("model"))
    second.register_full_backward_hook(lambda *args: order.append("second"))
    model(x).sum().backward()
    assert order == ["second", "model"]  # the inner call's gradients are known first
    np.testing.assert_allclose(outer[0][1][0], np.ones((5, 2)))
    np.testing.assert_allclose(inner[0][1][0], outer[0][1][0])
    np.testing.assert_allclose(outer[0][0][0], x.grad.numpy(), rtol=1e-12)
    h = np.tanh(x.numpy() @ first.weight.numpy().T + first.bias.numpy())
    np.testing.assert_allclose(inner[0][0][0], np.ones((5, 2)) @ second.weight.numpy(), rtol=1e-12)
    np.testing.assert_allclose(first.weight.grad.numpy(),
                               ((inner[0][0][0] * (1 - h * h)).T @ x.numpy()), rtol=1e-10)


def test_input_that_does_not_require_grad():
    layer, x = linear(), leaf(4, 3, requires_grad=False)
    calls, _ = record_backward(layer)
    layer(x).sum().backward()
    assert len(calls) == 1
    assert calls[0][0] == (None,)
    np.testing.assert_allclose(calls[0][1][0], np.ones((4, 2)))
    np.testing.assert_allclose(layer.weight.grad.numpy(), np.ones((4, 2)).T @ x.numpy(), rtol=1e-12)


def test_one_call_per_module_call_and_tuple_outputs():
    class Split(nn.Module):
        def forward(self, x, scale):
            return x * 2, (x * 3, x * 5)

    module, x = Split(), leaf(3)
    calls, _ = record_backward(module)
    a, (b, _) = module(x, 7)  # the third output is never used
    (a.sum() + (b * b).sum()).backward()
    assert len(calls) == 1
    grad_input, grad_output = calls[0]
    assert grad_input[1] is None  # 7 is not a Tensor
    np.testing.assert_allclose(grad_output[0], np.ones(3))
    np.testing.assert_allclose(grad_output[1], 2 * 3 * x.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad_output[2], np.zeros(3))  # an unused output's gradient is zero
    np.testing.assert_allclose(grad_input[0], 2 + 2 * 9 * x.numpy(), rtol=1e-12)

    shared = linear()
    calls, _ = record_backward(shared)
    (shared(x) * 2 + shared(x * 0.5)).sum().backward()
    assert len(calls) == 2  # one per call, each with its own gradients
    grad_outputs = sorted(c[1][0][0] for c in calls)
    np.testing.assert_allclose(grad_outputs, [1.0, 2.0])


def test_backward_hook_returning_the_wrong_number_of_gradients_names_the_module():
    layer = linear()
    layer.register_full_backward_hook(lambda m, grad_input, grad_output: (grad_input[0], grad_input[0]))
    with pytest.raises(RuntimeError, match="Linear: a backward hook returned 2 gradients; expected 1"):
        layer(leaf(4, 3)).sum().backward()
    layer = linear()
    layer.register_full_backward_hook(lambda m, grad_input, grad_output: (grad_input[0][:2],))
    with pytest.raises(RuntimeError, match=r"Linear: .*shape \(2, 3\) as grad_input\[0\]; expected a Tensor of shape \(4, 3\)"):
        layer(leaf(4, 3)).sum().backward()


def test_gradients_of_gradients_through_a_hooked_module():
    layer = linear()
    layer.register_full_backward_hook(lambda m, grad_input, grad_output: None)
    assert minidl.gradgradcheck(lambda x: minidl.tanh(layer(x)), [leaf(4, 3)])


def test_no_backward_gates_without_grad():
    layer = linear()
    calls, _ = record_backward(layer)
    with minidl.no_grad():
        y = layer(leaf(4, 3))
    assert y.grad_fn is None and not calls
    assert isinstance(hooks.call_with_hooks(layer, (leaf(4, 3),), {}), minidl.Tensor)


# --------------------------------------------------------------------------- #
# Parameters stay themselves
# --------------------------------------------------------------------------- #
def test_to_keeps_the_parameter_objects(device):
    layer = linear()
    before = list(layer.parameters())
    layer(leaf(4, 3)).sum().backward()
    layer.to(device).to(minidl.float32)
    assert all(a is b for a, b in zip(before, layer.parameters()))
    assert all(p.device == device and p.grad.device == device for p in layer.parameters())


def test_parameter_of_a_tensor_stays_on_its_device(device):
    t = minidl.randn(3, device=device)
    assert nn.Parameter(t).device == device
