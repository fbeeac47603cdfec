"""Module, Parameter, Sequential, ModuleList: registration, traversal order, modes, devices,
state dicts (with their errors), repr."""

from collections import OrderedDict

import numpy as np
import pytest

import minidl
import minidl.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.scale = nn.Parameter(minidl.ones(1))
        self.norm = nn.BatchNorm1d(4)
        self.fc2 = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.fc2(self.norm(self.fc1(x)) * self.scale)


def test_parameters_in_definition_order():
    names = [n for n, _ in Block().named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight"]
    block = Block()
    assert [id(p) for p in block.parameters()] == [id(p) for _, p in block.named_parameters()]


def test_own_parameters_then_children_like_pytorch():
    """PyTorch lists a module's own parameters before its children's, whatever the assignment order."""
    block = Block()
    assert [n for n, _ in block.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in block.named_children()] == ["fc1", "norm", "fc2"]
    assert [n for n, _ in block.named_modules()] == ["", "fc1", "norm", "fc2"]


def test_shared_parameters_and_modules_appear_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias"]


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(minidl.zeros(2, 3))
    assert isinstance(p, minidl.Tensor) and p.requires_grad and p.is_leaf
    assert "Parameter containing" in repr(p)
    assert not nn.Parameter(minidl.zeros(1), requires_grad=False).requires_grad


def test_buffers_are_state_not_parameters():
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert all(not isinstance(b, nn.Parameter) for b in bn.buffers())
    assert len(list(bn.parameters())) == 2


def test_train_eval_reaches_every_descendant():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    assert model.eval() is model
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_to_dtype_and_device(device):
    model = Block().to(device)
    assert all(p.device == device for p in model.parameters())
    assert all(b.device == device for b in model.buffers())
    model.to(minidl.float64)  # a dtype may come first, as in PyTorch
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.norm.running_mean.dtype == np.float64
    assert model.norm.num_batches_tracked.dtype == np.int64  # integer buffers keep their dtype
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())
    y = model(minidl.randn(5, 3, device=device))
    assert y.device == device


def test_to_unknown_device_names_it():
    with pytest.raises(ValueError, match="Device"):
        nn.Linear(2, 2).to("tpu")


def test_zero_grad():
    model = nn.Linear(3, 2)
    model(minidl.randn(4, 3)).sum().backward()
    assert model.weight.grad is not None
    model.zero_grad(set_to_none=False)
    assert np.all(model.weight.grad.numpy() == 0)
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None


def test_state_dict_roundtrip():
    a, b = Block(), Block()
    a.norm.running_mean.data[...] = 3.0
    keys = list(a.state_dict())
    assert keys == [
        "scale", "fc1.weight", "fc1.bias", "norm.weight", "norm.bias",
        "norm.running_mean", "norm.running_var", "norm.num_batches_tracked", "fc2.weight",
    ]
    missing, unexpected = b.load_state_dict(a.state_dict())
    assert missing == [] and unexpected == []
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key].numpy(), value.numpy())
    # loading copies: changing the source afterwards does not change b
    a.fc1.weight.data[...] = 7.0
    assert not np.any(b.fc1.weight.numpy() == 7.0)


def test_state_dict_tensors_share_memory_and_have_no_graph():
    model = nn.Linear(2, 2)
    state = model.state_dict()
    assert not state["weight"].requires_grad
    state["weight"].data[0, 0] = 42.0
    assert model.weight.numpy()[0, 0] == 42.0


def test_load_state_dict_accepts_numpy_arrays():
    model = nn.Linear(2, 3)
    state = {k: v.numpy() * 0 + 1.5 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert np.all(model.weight.numpy() == 1.5) and model.weight.dtype == np.float32


def test_load_state_dict_shape_mismatch_names_key_and_both_shapes():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2)).state_dict()
    before = model[0].weight.numpy().copy()
    with pytest.raises(ValueError, match=r"'1\.weight'.*\(2, 3\).*\(1, 3\)"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model[0].weight.numpy(), before)  # nothing was copied


def test_load_state_dict_missing_and_unexpected_keys():
    model = nn.Linear(2, 3)
    state = model.state_dict()
    del state["bias"]
    state["extra"] = minidl.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['bias'\].*unexpected keys \['extra'\]"):
        model.load_state_dict(state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["bias"] and unexpected == ["extra"]


def test_assigning_a_plain_tensor_to_a_parameter_is_an_error():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'.*Parameter or None"):
        model.weight = model.weight * 2
    assert "weight" in dict(model.named_parameters())
    model.bias = None  # allowed: like bias=False
    assert [n for n, _ in model.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match="sub-module 'fc1'"):
        Block().fc1 = 3


def test_register_errors():
    m = nn.Module()
    with pytest.raises(TypeError, match="register_buffer.*must be a Tensor"):
        m.register_buffer("stats", [1, 2])
    with pytest.raises(KeyError, match="without '.'"):
        m.register_buffer("a.b", minidl.zeros(1))
    with pytest.raises(TypeError, match="register_parameter.*Parameter"):
        m.register_parameter("w", minidl.zeros(1))
    m.register_parameter("w", nn.Parameter(minidl.zeros(1)))
    with pytest.raises(KeyError, match="already a parameter"):
        m.register_buffer("w", minidl.zeros(1))


def test_forgetting_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_missing_attribute_names_the_class():
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'wieght'"):
        nn.Linear(1, 1).wieght


def test_repr_is_readable():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Flatten()))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "  )\n"
        ")"
    )


def test_sequential_and_modulelist():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.Tanh())]))
    assert [n for n, _ in seq.named_children()] == ["fc", "act"]
    assert isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.Tanh) and len(seq) == 2
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1
    x = minidl.randn(4, 2)
    np.testing.assert_allclose(seq(x).numpy(), np.tanh(seq.fc(x).numpy()), rtol=1e-6)
    seq.append(nn.Identity())
    assert len(seq) == 3
    with pytest.raises(TypeError, match="Module"):
        seq.append(lambda v: v)
    with pytest.raises(TypeError, match="argument 1"):
        nn.Sequential(nn.ReLU(), "relu")

    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    holder = nn.Module()
    holder.layers = layers
    assert len(list(holder.parameters())) == 6
    assert [n for n, _ in holder.named_parameters()][:2] == ["layers.0.weight", "layers.0.bias"]
    assert len(layers[1:]) == 2 and list(iter(layers))[0] is layers[0]
    with pytest.raises(TypeError, match="ModuleList"):
        layers.append(3)


def test_apply_visits_children_first():
    order = []
    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU())
    model.apply(lambda m: order.append(type(m).__name__))
    assert order[-1] == "Sequential" and sorted(order[:-1]) == ["Linear", "ReLU"]


def test_gradients_reach_every_parameter():
    model = Block()
    model(minidl.randn(6, 3)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
