"""Tensor hooks (see and replace a gradient) and anomaly mode (name the op behind a NaN),
plus the size budget that keeps the engine readable in one sitting."""

import threading
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl.autograd import detect_anomaly, is_anomaly_enabled, set_detect_anomaly


# --------------------------------------------------------------------------- #
# Tensor.register_hook
# --------------------------------------------------------------------------- #
def test_a_hook_sees_the_whole_gradient_once_and_may_replace_it():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    y.register_hook(lambda g: g * 10.0)  # replaces what flows on to x
    (y * y).sum().backward()  # y is used twice: the hook sees the sum, 2y
    assert seen == [[6.0, 12.0]]
    np.testing.assert_allclose(x.grad.numpy(), [180.0, 360.0])  # 2y * 10 * 3


def test_a_hook_on_a_leaf_changes_what_is_stored_and_remove_stops_it():
    x = minidl.tensor([1.0, -1.0], requires_grad=True)
    handle = x.register_hook(lambda g: g.clamp(min=0.0))
    (x * minidl.tensor([2.0, -3.0])).sum().backward()
    assert x.grad.tolist() == [2.0, 0.0]
    handle.remove()
    handle.remove()  # twice is harmless
    x.grad = None
    (x * minidl.tensor([2.0, -3.0])).sum().backward()
    assert x.grad.tolist() == [2.0, -3.0]


def test_hooks_run_for_minidl_grad_and_retain_grad_stores_the_hooked_gradient():
    x = minidl.tensor([2.0], requires_grad=True)
    y = x * x
    y.retain_grad()
    y.register_hook(lambda g: g + 1.0)
    (gx,) = minidl.grad(y * 5.0, [x], retain_graph=True)
    assert gx.tolist() == [24.0]  # (5 + 1) * 2x
    (y * 5.0).sum().backward()
    assert y.grad.tolist() == [6.0]


def test_a_hook_needs_a_tensor_that_requires_grad():
    with pytest.raises(RuntimeError, match="register_hook: can't register a hook on a tensor that does not require"):
        minidl.tensor([1.0]).register_hook(print)


# --------------------------------------------------------------------------- #
# Anomaly mode
# --------------------------------------------------------------------------- #
def test_anomaly_mode_names_the_op_whose_backward_made_an_inf_and_where_it_was_called():
    x = minidl.tensor([0.0, 1.0], requires_grad=True)
    with detect_anomaly():
        y = x.sqrt()  # the line the error must point at
        loss = (y * 2.0).sum()
        with pytest.raises(RuntimeError) as error:
            loss.backward()
    message = str(error.value)
    assert "detect_anomaly: Sqrt's backward returned inf values in its gradient 0" in message
    assert "test_core_hooks_anomaly.py" in message and "y = x.sqrt()" in message


def test_anomaly_mode_finds_the_log_behind_a_nan_loss():
    """The lesson's example: a softmax that underflows to 0, then log: the loss is -inf,
    its gradient NaN; anomaly mode names Log and the line, not the loss many ops later."""
    logits = minidl.tensor([[0.0, 200.0]], requires_grad=True)
    with detect_anomaly():
        probabilities = logits.softmax(-1)
        loss = -(probabilities.log() * minidl.tensor([[1.0, 0.0]])).sum()
        with pytest.raises(RuntimeError, match=r"Log's backward returned (inf|NaN)[\s\S]*probabilities.log\(\)"):
            loss.backward()


def test_anomaly_mode_reports_a_nan_made_in_forward():
    with detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(RuntimeError, match=r"Log's forward returned NaN values in its output 0[\s\S]*minidl.log"):
            minidl.log(minidl.tensor([-1.0, 1.0]))


def test_without_anomaly_mode_nothing_is_checked_or_kept():
    x = minidl.tensor([0.0], requires_grad=True)
    y = x.sqrt()
    assert not hasattr(y.grad_fn, "stack")
    y.sum().backward()
    assert np.isinf(x.grad.numpy()).all()


def test_set_detect_anomaly_and_the_decorator_and_threads():
    assert not is_anomaly_enabled()
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled()
        other = []
        thread = threading.Thread(target=lambda: other.append(is_anomaly_enabled()))
        thread.start()
        thread.join()
        assert other == [False]  # per thread, like grad mode
    finally:
        set_detect_anomaly(False)

    @detect_anomaly()
    def inside():
        return is_anomaly_enabled()

    assert inside() and not is_anomaly_enabled()


# --------------------------------------------------------------------------- #
# The engine stays short enough to read in one sitting
# --------------------------------------------------------------------------- #
PACKAGE = Path(minidl.__file__).parent


def _lines(path):
    return len(path.read_text().splitlines())


def test_the_engine_core_fits_in_750_lines():
    core = {name: _lines(PACKAGE / name) for name in ("backend.py", "autograd.py", "tensor.py")}
    assert sum(core.values()) <= 750, f"backend + autograd + tensor: {core}"


def test_no_file_in_the_package_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): _lines(p) for p in PACKAGE.rglob("*.py") if _lines(p) > 400}
    assert not long, f"files over 400 lines (split them): {long}"
