"""In-place changes (PyTorch's rules): x -= lr * g really changes x, every change bumps a
version counter, and backward refuses to use a tensor that changed after an op kept it.

References are numpy written out, and gradients derived by hand or checked numerically."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra import numpy as hnp

import minidl

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def test_the_first_training_loop_of_a_backprop_course_trains():
    """``p -= lr * p.grad`` under no_grad changes p itself (it used to rebind the name only)."""
    rng = np.random.default_rng(0)
    x, w_true = rng.standard_normal((64, 3)), np.array([[1.0], [-2.0], [0.5]])
    y = x @ w_true
    w = minidl.zeros(3, 1, dtype=np.float64, requires_grad=True)
    params, expected, losses = [w], np.zeros((3, 1)), []
    for _ in range(50):
        loss = ((minidl.tensor(x) @ w - minidl.tensor(y)) ** 2).mean()
        loss.backward()
        with minidl.no_grad():
            for p in params:
                p -= 0.1 * p.grad
                p.grad = None
        expected -= 0.1 * 2 * x.T @ (x @ expected - y) / len(x)  # the same step, written out
        losses.append(loss.item())
    assert params[0] is w and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-10)
    assert losses[-1] < 1e-3 * losses[0]


@given(shape=shapes)
def test_operators_and_underscore_methods_change_values_in_place(shape):
    a = np.random.default_rng(1).uniform(0.5, 2.0, shape)
    b = np.random.default_rng(2).uniform(0.5, 2.0, shape[-1:])  # broadcasts against a
    x = minidl.tensor(a)
    same = x
    steps = [
        (lambda t: t.__iadd__(minidl.tensor(b)), lambda v: v + b),
        (lambda t: t.__isub__(2.0), lambda v: v - 2.0),
        (lambda t: t.__imul__(minidl.tensor(b)), lambda v: v * b),
        (lambda t: t.__itruediv__(4.0), lambda v: v / 4.0),
        (lambda t: t.add_(minidl.tensor(b), alpha=3.0), lambda v: v + 3.0 * b),
        (lambda t: t.sub_(minidl.tensor(b), alpha=0.5), lambda v: v - 0.5 * b),
        (lambda t: t.mul_(-1.5), lambda v: v * -1.5),
        (lambda t: t.div_(minidl.tensor(b)), lambda v: v / b),
        (lambda t: t.clamp_(min=-1.0, max=0.25), lambda v: np.clip(v, -1.0, 0.25)),
        (lambda t: t.copy_(minidl.tensor(b)), lambda v: np.broadcast_to(b, v.shape)),
        (lambda t: t.fill_(7.0), lambda v: np.full_like(v, 7.0)),
        (lambda t: t.zero_(), np.zeros_like),
    ]
    for version, (change, reference) in enumerate(steps, start=1):
        a = reference(a)
        assert change(x) is same
        np.testing.assert_allclose(x.numpy(), a, rtol=1e-12)
        assert x._version == version and x.dtype == np.float64 and x.shape == shape


def test_random_fills_in_place():
    x = minidl.zeros(20000)
    assert x.normal_(mean=1.0, std=2.0) is x and x._version == 1
    assert abs(x.numpy().mean() - 1.0) < 0.05 and abs(x.numpy().std() - 2.0) < 0.05
    x.uniform_(-3.0, -1.0)
    assert x.numpy().min() >= -3.0 and x.numpy().max() < -1.0 and abs(x.numpy().mean() + 2.0) < 0.05
    minidl.manual_seed(5)
    first = minidl.zeros(4).normal_().numpy()
    minidl.manual_seed(5)
    np.testing.assert_array_equal(minidl.zeros(4).normal_().numpy(), first)


def test_setitem_in_place_bumps_the_version():
    x = minidl.zeros(2, 3)
    x[0, 1:] = 5.0
    x[minidl.tensor([1]), 0] = minidl.tensor([-1.0])
    np.testing.assert_array_equal(x.numpy(), [[0, 5, 5], [-1, 0, 0]])
    assert x._version == 2


def test_a_leaf_that_requires_grad_refuses_in_place_changes_outside_no_grad():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    for change in (lambda: w.add_(1.0), lambda: w.__isub__(1.0), lambda: w.zero_(), lambda: w.__setitem__(0, 3.0),
                   lambda: w.copy_(minidl.tensor([5.0, 6.0])), lambda: w.normal_()):
        with pytest.raises(RuntimeError, match=r"a leaf tensor that requires grad \(shape \(2,\)\) can't be changed"):
            change()
    assert w.tolist() == [1.0, 2.0] and w._version == 0  # nothing was changed
    with minidl.no_grad():
        w.mul_(3.0)
    assert w.tolist() == [3.0, 6.0] and w._version == 1 and w.is_leaf and w.requires_grad


def test_results_that_do_not_fit_are_refused_and_change_nothing():
    x = minidl.zeros(3)
    with pytest.raises(RuntimeError, match=r"add_: the result has shape \(2, 3\).*tensor of shape \(3,\)"):
        x.add_(minidl.ones(2, 3))
    counts = minidl.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match=r"dtype float\d+, which can't be written into .* dtype int64"):
        counts += 1.5
    assert x.tolist() == [0.0, 0.0, 0.0] and counts.tolist() == [1, 2, 3] and x._version == counts._version == 0


def test_views_and_detached_tensors_share_the_version_counter_and_the_memory():
    base = minidl.zeros(4)
    view = base[1:3]
    view += 1.0
    assert base.tolist() == [0.0, 1.0, 1.0, 0.0] and base._version == view._version == 1
    flat = minidl.arange(6.0).reshape(2, 3)
    flat.reshape(6).zero_()
    assert flat.tolist() == [[0.0] * 3] * 2 and flat._version == 1
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    d.add_(1.0)  # allowed (d does not require grad), and x sees it, as in PyTorch
    assert x.tolist() == [2.0, 3.0] and x._version == 1


# --------------------------------------------------------------------------- #
# The version check in backward
# --------------------------------------------------------------------------- #
def test_backward_refuses_a_kept_input_changed_in_place():
    x = minidl.tensor([[1.0, 2.0]])
    w = minidl.tensor([[3.0], [4.0]], requires_grad=True)
    y = (x @ w).sum()
    x += 1.0  # MatMul keeps x: dL/dw = x^T needs its old values
    with pytest.raises(RuntimeError, match=r"MatMul's input of shape \(1, 2\) is at version 1; expected version 0"):
        y.backward()


def test_an_optimizer_step_between_two_backwards_over_one_graph_is_caught():
    w = minidl.tensor([[1.0, -1.0]], requires_grad=True)
    x = minidl.tensor([[2.0], [3.0]])
    loss = (w @ x).sum()
    loss.backward(retain_graph=True)
    with minidl.no_grad():
        w -= 0.1 * w.grad
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation: MatMul's input of shape \(1, 2\)"):
        loss.backward()


def test_a_kept_output_changed_in_place_is_caught():
    x = minidl.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()
    with minidl.no_grad():
        y.mul_(2.0)  # Exp's backward is gy * y: y must still be exp(x)
    with pytest.raises(RuntimeError, match=r"Exp's output of shape \(2,\) is at version 1; expected version 0"):
        y.sum().backward()


def test_changing_what_an_op_does_not_keep_is_fine():
    """x + y keeps neither input (its gradient is 1): PyTorch allows changing them, so does minidl."""
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    out = h + 1.0
    h.detach().zero_()  # changes h's memory and version: Add kept h, but never reads its values
    out.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


# --------------------------------------------------------------------------- #
# In place while the graph is recorded: x = f(x), old x stays in the graph
# --------------------------------------------------------------------------- #
def test_recorded_in_place_changes_give_the_right_gradients():
    x = minidl.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    y = x * 2.0
    y += x * x  # y = 2x + x^2
    y *= 3.0  # y = 6x + 3x^2
    assert y.grad_fn is not None and not y.is_leaf and y._version == 2
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6.0 + 6.0 * np.array([1.0, 2.0, 3.0]))


def test_setitem_while_recording_sends_gradients_to_the_value_and_not_to_what_it_replaced():
    x = minidl.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    w = minidl.tensor([5.0, 7.0], dtype=np.float64, requires_grad=True)
    y = x * 3.0
    y[1:] = w * 2.0
    (y * minidl.tensor([1.0, 10.0, 100.0], dtype=np.float64)).sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 0.0] and w.grad.tolist() == [20.0, 200.0]
    np.testing.assert_allclose(y.detach().numpy(), [3.0, 10.0, 14.0])


def test_copy_while_recording_sends_gradients_to_the_source():
    src = minidl.tensor([2.0], dtype=np.float64, requires_grad=True)
    y = minidl.tensor([1.0, 1.0, 1.0], dtype=np.float64, requires_grad=True) * 1.0
    y.copy_(src * 4.0)  # broadcast (1,) -> (3,)
    y.sum().backward()
    assert src.grad.tolist() == [12.0]


@given(shape=shapes)
def test_a_function_with_in_place_steps_passes_gradcheck(shape):
    def fn(x, w):
        y = x * w
        y += x.tanh()
        y *= w
        y[..., 0] = (x[..., 0] * 2.0).sigmoid()
        return y

    rng = np.random.default_rng(3)
    x = minidl.tensor(rng.standard_normal(shape), requires_grad=True)
    w = minidl.tensor(rng.standard_normal(shape[-1:]), requires_grad=True)
    assert minidl.gradcheck(fn, (x, w))


def test_in_place_on_a_view_while_recording_is_refused():
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    v = y[:2]
    with pytest.raises(RuntimeError, match="add_: in-place change of a view .* write it out of place"):
        v.add_(1.0)


def test_an_in_place_change_after_a_later_use_is_caught():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    w = minidl.tensor([3.0, 4.0], requires_grad=True)
    y = x * 1.0
    z = y * w  # Mul keeps y
    y += 1.0
    with pytest.raises(RuntimeError, match=r"Mul's input of shape \(2,\) is at version 1; expected version 0"):
        z.sum().backward()


# --------------------------------------------------------------------------- #
# The rest of PyTorch's autograd attributes
# --------------------------------------------------------------------------- #
def test_grad_fn_is_leaf_detach_and_requires_grad():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    assert x.grad_fn is None and x.is_leaf and y.grad_fn.name == "Mul" and not y.is_leaf
    assert y.grad_fn.inputs[0] is x and "grad_fn=<Mul>" in repr(y)
    assert y.detach_() is y and y.is_leaf and not y.requires_grad and y.grad_fn is None
    z = minidl.tensor([1.0]).requires_grad_()
    assert z.requires_grad and z.requires_grad_(False) is z and not z.requires_grad
    with pytest.raises(TypeError, match="requires_grad_: only floating-point tensors can require grad, got int64"):
        minidl.tensor([1]).requires_grad_()


def test_backward_with_inputs_accumulates_only_into_them():
    a = minidl.tensor([1.0], requires_grad=True)
    b = minidl.tensor([2.0], requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    assert a.grad.tolist() == [2.0] and b.grad is None


def test_host_arrays_land_on_the_default_device(device):
    minidl.set_default_device(device)
    try:
        array = np.arange(3.0)
        for t in (minidl.Tensor(array), minidl.tensor(array), minidl.as_tensor(array), minidl.tensor([1.0, 2.0])):
            assert t.device == device
        assert minidl.tensor(array, device="cpu").device == "cpu"
        assert minidl.zeros(2, device="cpu").device == "cpu"
    finally:
        minidl.set_default_device("cpu")


def test_values_that_do_not_fit_the_place_are_refused_by_name_and_change_nothing():
    x = minidl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"IndexPut: .*broadcast.*\(inputs of shape \(2, 3\) and \(4,\)\)"):
        x[0] = minidl.ones(4)
    with pytest.raises(ValueError, match=r"ReplaceValues: .*broadcast.*\(inputs of shape \(2, 3\) and \(2,\)\)"):
        x.copy_(minidl.ones(2))
    assert x.tolist() == [[0.0] * 3] * 2 and x._version == 0


def test_a_stored_gradient_owns_its_array():
    """Add hands one gradient array to both inputs, and backward(gradient=g) starts from the
    caller's array: each .grad must still be its own, so changing it in place changes nothing else."""
    w1 = minidl.tensor([1.0, 2.0], requires_grad=True)
    w2 = minidl.tensor([3.0, 4.0], requires_grad=True)
    (w1 + w2).sum().backward()
    w1.grad.mul_(5.0)
    assert w1.grad.tolist() == [5.0, 5.0] and w2.grad.tolist() == [1.0, 1.0]
    g = minidl.tensor([1.0, 1.0])
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x + 0.0).backward(g)
    x.grad.zero_()
    assert g.tolist() == [1.0, 1.0]
