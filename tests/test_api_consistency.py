"""Public API details that follow PyTorch, and error messages that name the op and what came.

Each test pins one thing a learner carries over from (or to) PyTorch, or one message
a user mistake produces.
"""

import inspect
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
import minidl.nn.functional as F
from minidl.data.transforms import Transform

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_tensor_to_takes_a_dtype_first_as_pytorch(device):
    x = minidl.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.to(minidl.float64)
    assert y.dtype == np.float64 and y.device == device
    y.sum().backward()
    assert x.grad.dtype == np.float32 and np.allclose(x.grad.numpy(), 1.0)
    assert x.to("float32") is x  # already that dtype: no copy, as PyTorch


def test_tensor_to_rejects_what_is_neither_a_device_nor_a_dtype():
    with pytest.raises(ValueError, match="Device: expected 'cpu', 'cuda' or 'cuda:N', got 'float77'"):
        minidl.ones(2).to("float77")


def test_clamp_takes_pytorch_keywords(device):
    x = minidl.tensor([-2.0, 0.5, 3.0], device=device)
    assert x.clamp(min=0).tolist() == [0.0, 0.5, 3.0]
    assert x.clamp(max=1).tolist() == [-2.0, 0.5, 1.0]
    assert x.clip(min=0).tolist() == [0.0, 0.5, 3.0]
    assert x.clamp(-1, 1).tolist() == x.clip(-1, 1).tolist() == [-1.0, 0.5, 1.0]


def test_randint_may_leave_low_out_as_pytorch(device):
    values = minidl.randint(3, (50,), device=device)
    assert values.shape == (50,) and values.dtype == np.int64 and set(values.tolist()) <= {0, 1, 2}
    assert minidl.randint(5, 6, (2,), device=device).tolist() == [5, 5]


def test_backward_takes_gradient_as_pytorch():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(gradient=minidl.tensor([1.0, 10.0]))
    assert x.grad.tolist() == [3.0, 30.0]


def test_grad_has_torch_autograd_grads_argument_order():
    names = list(inspect.signature(minidl.grad).parameters)
    assert names == ["outputs", "inputs", "grad_outputs", "retain_graph", "create_graph", "allow_unused"]
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (slope,) = minidl.grad((x * x).sum(), x, None, False, True)  # positional create_graph=True, as in PyTorch
    assert slope.requires_grad


def test_grad_names_the_unused_input():
    x, unused = minidl.tensor([1.0], requires_grad=True), minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad: input 1 \(shape \(2,\)\) was not used"):
        minidl.grad((x * 2).sum(), [x, unused])


@pytest.mark.parametrize("make, op", [
    (lambda: minidl.zeros(2, -1), "zeros"),
    (lambda: minidl.ones((-3,)), "ones"),
    (lambda: minidl.randn(2, -1), "randn"),
    (lambda: minidl.rand(-1), "rand"),
    (lambda: minidl.randint(0, 5, (2, -1)), "randint"),
    (lambda: minidl.full((2, -1), 1.5), "full"),
])
def test_creation_names_the_function_with_a_bad_shape(make, op):
    with pytest.raises(ValueError, match=rf"^{op}: expected a shape of non-negative integers"):
        make()


def test_tensor_from_bad_data_says_what_came():
    with pytest.raises(ValueError, match=r"tensor: nested lists of different lengths .*\[\[1, 2\], \[3\]\]"):
        minidl.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="tensor: cannot make a tensor from str data 'abc'"):
        minidl.tensor("abc")


def test_argmax_checks_its_dim():
    x = minidl.ones(2, 3)
    assert x.argmax(dim=-1).tolist() == [0, 0] and x.argmax(axis=-1).tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"argmax: expected dim in \[-2, 1\] for a 2-d input, got 3"):
        x.argmax(dim=3)
    with pytest.raises(TypeError, match=r"argmin: expected dim to be None or one int, got \(0, 1\)"):
        x.argmin(dim=(0, 1))


def test_pad_per_dim_says_which_widths_it_expected():
    with pytest.raises(ValueError, match=r"pad_per_dim: expected pad_width .* 2 such pairs .* shape \(2, 3\)"):
        minidl.ops.shape.pad_per_dim(minidl.ones(2, 3), ((1, 2), (3, 4), (5, 6)))


def test_a_transform_without_call_says_what_to_write():
    class Forgotten(Transform):
        pass

    with pytest.raises(NotImplementedError, match=r"Forgotten must define __call__\(batch\)"):
        Forgotten()(np.zeros((1, 3, 2, 2)))


def test_sequential_refuses_a_non_module_in_an_ordered_dict():
    with pytest.raises(TypeError, match="Sequential: entry 'act' is a int, not a Module"):
        minidl.nn.Sequential(OrderedDict([("fc", minidl.nn.Linear(2, 2)), ("act", 5)]))


# --------------------------------------------------------------------------- #
# dim/keepdim, with numpy's axis/keepdims as aliases (as PyTorch accepts them)
# --------------------------------------------------------------------------- #
REDUCTIONS = ["sum", "mean", "amax", "amin", "var", "std", "argmax", "argmin", "softmax", "log_softmax"]
ONE_DIM_ONLY = {"argmax", "argmin", "softmax", "log_softmax"}
NO_KEEPDIM = {"softmax", "log_softmax"}


@st.composite
def shape_and_dim(draw, one_dim_only):
    """A shape of 2..8 elements per dim and a dim for it: an int (maybe negative) or a tuple."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    ndim = len(shape)
    one = st.integers(-ndim, ndim - 1)
    dim = draw(one if one_dim_only else one | st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                                         unique=True).map(tuple))
    return shape, dim


@pytest.mark.parametrize("name", REDUCTIONS)
@fixture_ok
@given(data=st.data(), keepdim=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_dim_and_axis_give_the_same_result(device, name, data, keepdim, seed):
    shape, dim = data.draw(shape_and_dim(name in ONE_DIM_ONLY))
    x = minidl.tensor(np.random.default_rng(seed).normal(size=shape), device=device)
    op = getattr(minidl, name)
    if name in NO_KEEPDIM:
        torch_style, numpy_style, method = op(x, dim=dim), op(x, axis=dim), getattr(x, name)(axis=dim)
    else:
        torch_style, numpy_style = op(x, dim=dim, keepdim=keepdim), op(x, axis=dim, keepdims=keepdim)
        method = getattr(x, name)(axis=dim, keepdim=keepdim)
    assert torch_style.shape == numpy_style.shape == method.shape
    np.testing.assert_array_equal(torch_style.numpy(), numpy_style.numpy())
    np.testing.assert_array_equal(torch_style.numpy(), method.numpy())
    np.testing.assert_array_equal(torch_style.numpy(), op(x, dim).numpy() if name in NO_KEEPDIM or not keepdim
                                  else op(x, dim, keepdim=True).numpy())  # positional dim still works


@pytest.mark.parametrize("call", [
    lambda x: minidl.sum(x, dim=0, axis=0),
    lambda x: x.mean(1, axis=0),  # dim given by position, axis by name
    lambda x: minidl.amax(x, 0, keepdim=True, keepdims=True),
    lambda x: x.var(dim=0, axis=0),
    lambda x: minidl.argmax(x, dim=0, axis=1),
    lambda x: F.softmax(x, dim=0, axis=0),
    lambda x: minidl.cat([x, x], dim=0, axis=0),
    lambda x: minidl.squeeze(x, dim=0, axis=0),
])
def test_dim_and_axis_together_is_a_type_error_naming_the_op(call):
    with pytest.raises(TypeError, match=r"^\w+: expected (dim|keepdim)= or its numpy alias (axis|keepdims)=, got both$"):
        call(minidl.ones(2, 3))


def test_the_error_names_the_op_that_got_both():
    with pytest.raises(TypeError, match="^cat: expected dim= or its numpy alias axis=, got both"):
        minidl.cat([minidl.ones(2)], dim=0, axis=0)


def test_shape_ops_take_dim_and_axis():
    x = minidl.arange(6.0).reshape(2, 3)
    for kwargs in ({"dim": 1}, {"axis": 1}):
        assert minidl.cat([x, x], **kwargs).shape == (2, 6)
        assert minidl.stack([x, x], **kwargs).shape == (2, 2, 3)
        assert [p.shape for p in minidl.split(x, 2, **kwargs)] == [(2, 2), (2, 1)]
        assert [p.shape for p in x.chunk(3, **kwargs)] == [(2, 1)] * 3
        assert x.unsqueeze(**kwargs).shape == (2, 1, 3)
        assert x[:, :1].squeeze(**kwargs).shape == (2,)


@fixture_ok
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data())
def test_max_and_min_with_a_dim_return_values_and_indices(device, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    keepdim = data.draw(st.booleans())
    values = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-3, 3, size=shape).astype(float)
    x = minidl.tensor(values, device=device)
    for name, reference, arg in (("max", np.max, np.argmax), ("min", np.min, np.argmin)):
        result = getattr(minidl, name)(x, dim, keepdim=keepdim)
        got_values, got_indices = result  # unpacks like PyTorch's torch.return_types.max
        assert got_values is result.values and got_indices is result.indices
        np.testing.assert_array_equal(got_values.numpy(), reference(values, axis=dim, keepdims=keepdim))
        np.testing.assert_array_equal(got_indices.numpy(), arg(values, axis=dim, keepdims=keepdim))  # first on ties
        assert got_indices.dtype == np.int64 and not got_indices.requires_grad
        method = getattr(x, name)(dim=dim, keepdim=keepdim)
        np.testing.assert_array_equal(method.indices.numpy(), got_indices.numpy())
        assert type(result).__name__ == ("MaxResult" if name == "max" else "MinResult")


def test_max_without_a_dim_is_the_largest_value_and_amax_gives_values_only():
    values = np.array([[1.0, 7.0, 3.0], [4.0, -5.0, 6.0]])
    x = minidl.tensor(values)
    assert minidl.max(x).item() == 7.0 and x.min().item() == -5.0 and x.max().shape == ()
    np.testing.assert_array_equal(minidl.amax(x, 1).numpy(), [7.0, 6.0])
    np.testing.assert_array_equal(x.amin(dim=(0, 1)).numpy(), -5.0)
    np.testing.assert_array_equal(x.amax(0, keepdim=True).numpy(), [[4.0, 7.0, 6.0]])


def test_elementwise_max_of_two_tensors_is_refused_with_what_to_write():
    with pytest.raises(TypeError, match=r"max: expected an int dim, got a Tensor; .* minidl.where\(a >= b, a, b\)"):
        minidl.max(minidl.ones(2), minidl.zeros(2))


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_with_a_dim_passes_gradcheck(op):
    x = minidl.tensor(np.random.default_rng(0).permutation(12).reshape(3, 4) * 0.1, dtype=np.float64,
                      requires_grad=True)
    assert minidl.gradcheck(lambda t: getattr(minidl, op)(t, 1).values, x)
    assert minidl.gradcheck(lambda t: getattr(t, op)(0, keepdim=True).values, x)
    assert minidl.gradgradcheck(lambda t: getattr(minidl, op)(t * t, 1).values, x)


@pytest.mark.parametrize("unbiased, correction", [(True, 1), (False, 0)])
def test_var_and_std_take_unbiased_or_correction(unbiased, correction):
    values = np.random.default_rng(1).normal(size=(3, 5))
    x = minidl.tensor(values, dtype=np.float64)
    expected = np.var(values, axis=1, ddof=correction)
    np.testing.assert_allclose(x.var(1, unbiased).numpy(), expected)  # torch.var(x, dim, unbiased)
    np.testing.assert_allclose(x.var(dim=1, unbiased=unbiased).numpy(), expected)
    np.testing.assert_allclose(x.var(dim=1, correction=correction).numpy(), expected)
    np.testing.assert_allclose(minidl.std(x, unbiased).item(), np.std(values, ddof=correction))  # torch.std(x, unbiased)
    with pytest.raises(TypeError, match="var: expected unbiased= or correction=, got both"):
        x.var(1, unbiased=unbiased, correction=correction)


def test_var_defaults_to_the_unbiased_estimate_as_pytorch():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    assert minidl.var(minidl.tensor(values, dtype=np.float64)).item() == pytest.approx(np.var(values, ddof=1))
    assert minidl.tensor(values).std().item() == pytest.approx(np.std(values, ddof=1), rel=1e-6)


# --------------------------------------------------------------------------- #
# transpose, permute, pad, squeeze, clamp: PyTorch's functions
# --------------------------------------------------------------------------- #
@fixture_ok
@given(shape=hnp.array_shapes(min_dims=3, max_dims=4, min_side=1, max_side=3), seed=st.integers(0, 99))
def test_transpose_swaps_two_dims_and_permute_reorders_them(device, shape, seed):
    values = np.random.default_rng(seed).normal(size=shape)
    x = minidl.tensor(values, dtype=np.float64, device=device, requires_grad=True)
    np.testing.assert_array_equal(minidl.transpose(x, 0, 2).numpy(), np.swapaxes(values, 0, 2))
    np.testing.assert_array_equal(x.transpose(-1, 0).numpy(), np.swapaxes(values, -1, 0))
    np.testing.assert_array_equal(minidl.swapaxes(x, 0, 2).numpy(), np.swapaxes(values, 0, 2))
    dims = (2, 0, 1) + tuple(range(3, len(shape)))
    np.testing.assert_array_equal(minidl.permute(x, dims).numpy(), np.transpose(values, dims))
    assert minidl.gradcheck(lambda t: minidl.transpose(t, 0, 2), x)
    assert minidl.gradcheck(lambda t: t.permute(tuple(reversed(range(t.ndim)))), x)


def test_transpose_with_a_tuple_is_an_error_pointing_to_permute():
    x = minidl.ones(2, 3, 4)
    with pytest.raises(TypeError, match=r"transpose\(\) missing 1 required positional argument: 'dim1'"):
        minidl.transpose(x, (2, 1, 0))
    with pytest.raises(ValueError, match=r"permute: expected dims to be a permutation of the 3 dims"):
        x.permute(0, 1)


@fixture_ok
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), data=st.data())
def test_minidl_pad_and_F_pad_agree_and_pad_the_last_dim_first(device, shape, data):
    pairs = data.draw(st.integers(1, len(shape)))
    pad = tuple(data.draw(st.lists(st.integers(0, 2), min_size=2 * pairs, max_size=2 * pairs)))
    values = np.random.default_rng(0).normal(size=shape)
    x = minidl.tensor(values, dtype=np.float64, device=device, requires_grad=True)
    widths = [(0, 0)] * len(shape)
    for k in range(pairs):  # written out: pair k pads dim -1 - k
        widths[len(shape) - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    expected = np.pad(values, widths, constant_values=2.5)
    np.testing.assert_array_equal(minidl.pad(x, pad, value=2.5).numpy(), expected)
    np.testing.assert_array_equal(F.pad(x, pad, value=2.5).numpy(), expected)
    np.testing.assert_array_equal(minidl.pad(x, pad).numpy(), np.pad(values, widths))
    assert minidl.gradcheck(lambda t: minidl.pad(t, pad), x)


def test_pad_of_one_pair_pads_only_the_last_dim():
    assert minidl.pad(minidl.ones(2, 3), (1, 1)).shape == F.pad(minidl.ones(2, 3), (1, 1)).shape == (2, 5)


def test_squeeze_leaves_a_dim_that_is_not_size_1_as_pytorch():
    x = minidl.ones(2, 1, 3)
    assert x.squeeze(0).shape == (2, 1, 3) and x.squeeze(1).shape == (2, 3) and x.squeeze((0, 1)).shape == (2, 3)


def test_clamp_as_a_function_takes_min_and_max(device):
    x = minidl.tensor([-2.0, 0.5, 3.0], device=device)
    assert minidl.clamp(x, min=0).tolist() == [0.0, 0.5, 3.0]
    assert minidl.clip(x, max=1).tolist() == [-2.0, 0.5, 1.0]
    assert minidl.clamp(x, -1, 1).tolist() == [-1.0, 0.5, 1.0]


def test_signatures_use_pytorch_names():
    def names(f):
        return list(inspect.signature(f).parameters)

    assert names(minidl.sum) == names(minidl.mean) == names(minidl.amax) == ["x", "dim", "keepdim"]
    assert names(minidl.max) == names(minidl.argmax) == ["x", "dim", "keepdim"]
    assert names(minidl.var) == names(minidl.std) == ["x", "dim", "unbiased", "keepdim", "correction"]
    assert names(minidl.transpose) == ["x", "dim0", "dim1"] and names(minidl.permute) == ["x", "dims"]
    assert names(minidl.cat)[1:] == names(minidl.stack)[1:] == ["dim"]
    assert names(minidl.softmax)[1:] == names(F.softmax)[1:] == ["dim"]
    assert names(minidl.flatten)[1:] == ["start_dim", "end_dim"]
    assert names(minidl.clamp)[1:] == ["min", "max"]
    assert names(minidl.pad) == names(F.pad) == ["input", "pad", "mode", "value"]


# --------------------------------------------------------------------------- #
# What the engine keeps for backward
# --------------------------------------------------------------------------- #
def _function_classes(cls=minidl.Function):
    for sub in cls.__subclasses__():
        yield sub
        yield from _function_classes(sub)


def test_every_function_that_reads_its_outputs_in_backward_keeps_them():
    classes = [c for c in set(_function_classes()) if c.__module__.startswith("minidl.ops")]
    assert len(classes) > 30  # the walk found the ops
    missing = [c.__qualname__ for c in classes
               if "backward" in vars(c) and "self.outputs" in inspect.getsource(c.backward) and not c.keeps_outputs]
    assert missing == []


def test_functions_that_read_no_input_values_say_so():
    from minidl.ops import arithmetic, indexing, reduce, shape

    for cls in (arithmetic.Add, arithmetic.Sub, arithmetic.Neg, arithmetic.Cast, arithmetic.ToDevice,
                reduce.Sum, shape.Reshape, shape.Permute, shape.BroadcastTo, shape.SumTo, shape.Cat,
                shape.Split, shape.Pad, indexing.GetItem):
        assert cls.keeps_inputs is False, cls.__name__
    for cls in (arithmetic.Mul, arithmetic.Div, arithmetic.Log, reduce.Amax):
        assert cls.keeps_inputs is True, cls.__name__
