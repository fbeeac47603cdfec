"""Optimizer errors a user can cause: wrong hyper-parameter types, another kind's state dict,
state left on another device, and a parameter changed by step() under a retained graph."""

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.nn import Parameter
from minidl.optim import SGD, Adam, AdamW

needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs cupy and a GPU")]


@pytest.mark.parametrize(
    "cls, kwargs, error, message",
    [
        (SGD, dict(lr="0.1"), TypeError, r"SGD: expected lr to be a finite number .*, got '0.1'"),
        (SGD, dict(lr=[0.1]), TypeError, r"SGD: expected lr to be a finite number .*, got \[0.1\]"),
        (SGD, dict(momentum="0.9"), TypeError, "SGD: expected momentum to be a finite number"),
        (SGD, dict(weight_decay=None), TypeError, "SGD: expected weight_decay to be a finite number .*, got None"),
        (Adam, dict(lr="1e-3"), TypeError, "Adam: expected lr to be a finite number .*, got '1e-3'"),
        (Adam, dict(eps="1e-8"), TypeError, "Adam: expected eps to be a finite number .*, got '1e-8'"),
        (AdamW, dict(betas=(0.9, 0.99, 0.999)), ValueError, r"AdamW: expected betas to be a pair \(beta1, beta2\)"),
        (Adam, dict(betas="0.9"), ValueError, "Adam: expected betas to be a pair .*, got '0.9'"),
        (Adam, dict(weight_decay=float("nan")), ValueError, "Adam: expected weight_decay to be a finite .*, got nan"),
    ],
)
def test_hyperparameters_of_the_wrong_type_are_named(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls([Parameter(minidl.ones(1))], **kwargs)


def _stepped(cls, **kwargs):
    p = Parameter(minidl.ones(3))
    opt = cls([p], **kwargs)
    p.grad = minidl.ones(3)
    opt.step()
    return p, opt


def test_adam_state_does_not_load_into_sgd_and_back():
    _, adam = _stepped(Adam)
    _, sgd = _stepped(SGD, momentum=0.9)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: expected the state dict of a SGD .* got group 0 without "
                                         r"\['dampening', 'momentum', 'nesterov'\]: it comes from Adam or AdamW"):
        sgd.load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: .* without \['amsgrad', 'betas', 'eps'\]: it comes "
                                         r"from SGD"):
        Adam([Parameter(minidl.ones(3))]).load_state_dict(sgd.state_dict())
    state = sgd.state_dict()
    state["state"][0]["exp_avg"] = minidl.zeros(3)  # a group that looks right, a state that does not
    with pytest.raises(ValueError, match=r"expected the per-parameter state of a SGD .*got state\[0\] with \['exp_avg'\]"):
        SGD([Parameter(minidl.ones(3))], momentum=0.9).load_state_dict(state)
    AdamW([Parameter(minidl.ones(3))]).load_state_dict(adam.state_dict())  # same hyper-parameters: fine, as PyTorch


@pytest.mark.parametrize("cls, kwargs", [(SGD, dict(momentum=0.9)), (Adam, {}), (AdamW, dict(amsgrad=True))])
def test_step_bumps_the_version_of_parameters_and_state(cls, kwargs):
    p, opt = _stepped(cls, **kwargs)
    before = {k: v._version for k, v in opt.state[p].items() if isinstance(v, minidl.Tensor)}
    version = p._version
    opt.step()
    assert p._version > version
    assert all(opt.state[p][k]._version > v for k, v in before.items())


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_a_step_between_two_backwards_over_one_graph_is_caught(cls):
    w = Parameter(minidl.tensor([1.0, 2.0]))
    opt = cls([w], lr=0.1)
    loss = (w * w).sum()  # backward needs w as it was
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="version"):
        loss.backward()


def test_zero_grad_keeps_the_grad_tensor_and_zeroes_it():
    p, opt = _stepped(SGD)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and np.array_equal(grad.numpy(), np.zeros(3))
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("cls", [SGD, Adam])
@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_gpu)])
def test_state_left_on_the_cpu_by_model_to_is_named_and_a_reload_moves_it(cls, _):
    model = nn.Linear(2, 1)
    opt = cls(model.parameters(), lr=0.1, **({"momentum": 0.9} if cls is SGD else {}))
    model(minidl.ones(4, 2)).sum().backward()
    opt.step()
    model.to("cuda")
    opt.zero_grad()
    model(minidl.ones(4, 2, device="cuda")).sum().backward()
    key = "momentum_buffer" if cls is SGD else "exp_avg"
    with pytest.raises(RuntimeError, match=rf"{cls.__name__}.step: expected the state of parameter 0 on cuda.* like "
                                           rf"the parameter, got state\[0\]\['{key}'\] on cpu"):
        opt.step()
    opt.load_state_dict(opt.state_dict())  # PyTorch's behaviour on load: the state follows its parameter
    opt.step()
    assert all(v.device == "cuda" for s in opt.state.values() for v in s.values() if isinstance(v, minidl.Tensor))
