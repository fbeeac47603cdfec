"""The checker diagnoses: each named mistake is said when its pattern is there, and only then.

Every test plants one mistake in a copy of a reference solution and checks what the checker says.
"""

import shutil
from pathlib import Path

import pytest

from minidl.exercises import check
from minidl.exercises.checker import parameters_first
from minidl.exercises.diagnose import coverage

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "lessons" / "exercises" / "solutions"


def broken(tmp_path, name, old, new):
    """Every solution copied to tmp_path (an exercise may load a sibling file), with ``old``
    replaced by ``new`` in the one file that holds it; then the checker's verdict on ``name``."""
    for file in SOLUTIONS.glob("*.py"):
        shutil.copy(file, tmp_path / file.name)
    holders = [f for f in tmp_path.glob("*.py") if old in f.read_text()]
    assert holders, f"{old!r} is in no solution"
    holder = (tmp_path / f"{name}.py") if (tmp_path / f"{name}.py") in holders else holders[0]
    holder.write_text(holder.read_text().replace(old, new))
    return check(name, path=tmp_path)


SIGN = "Diagnosis: sign error"
FACTOR = "times too"
ZERO = "whose true gradient is 0"
OVERLAP = "wrong only where windows overlap"
GATE = "the block of gate"
DIAGNOSES = (SIGN, FACTOR, ZERO, OVERLAP, GATE, "a constant factor")


def diagnoses_in(text):
    return [d for d in DIAGNOSES if d in text]


def test_the_report_says_what_is_compared(tmp_path):
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return gy * y")
    assert result.status == "wrong"
    assert "L = sum(v * y)" in result.text
    assert "v at the worst element [" in result.text
    assert "implied local derivative there: numerical / v = " in result.text
    assert diagnoses_in(result.text) == []  # y instead of y (1 - y): no pattern to name


def test_a_sign_error_is_named(tmp_path):
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return -gy * y * (1 - y)")
    assert result.status == "wrong" and diagnoses_in(result.text) == [SIGN]


def test_an_extra_division_by_n_is_named(tmp_path):
    result = broken(tmp_path, "softmax_cross_entropy", "(self.p - onehot) / n", "(self.p - onehot) / n / n")
    assert result.status == "wrong" and diagnoses_in(result.text) == [FACTOR]
    assert "5 times too small" in result.text and "N, the batch size" in result.text
    assert "v = " in result.text  # a scalar loss: v is one number


def test_a_missing_mean_is_named(tmp_path):
    result = broken(tmp_path, "softmax_cross_entropy", "(self.p - onehot) / n", "(self.p - onehot)")
    assert result.status == "wrong" and "5 times too large" in result.text and "missing mean" in result.text


def test_another_constant_factor_is_not_called_a_mean(tmp_path):
    result = broken(tmp_path, "sigmoid", "return gy * y * (1 - y)", "return 2 * gy * y * (1 - y)")
    assert result.status == "wrong"
    assert "times 2 on every element" in result.text and "N, the batch size" not in result.text


def test_max_pooling_to_every_element_is_named(tmp_path):
    result = broken(tmp_path, "max_pool2d", "s] += gy.data * won", "s] += gy.data")
    assert result.status == "wrong" and diagnoses_in(result.text) == [ZERO]


def test_overwriting_in_max_pooling_is_named(tmp_path):
    result = broken(tmp_path, "max_pool2d", "s] += gy.data * won", "s] = gy.data * won")
    assert result.status == "wrong" and "case 2 of" in result.text  # case 1 has no overlaps
    assert diagnoses_in(result.text) == [OVERLAP]


def test_overwriting_in_col2im_is_named(tmp_path):
    result = broken(tmp_path, "conv2d_im2col", "+= cols[:, :, p, q]", "= cols[:, :, p, q]")
    assert result.status == "wrong" and "d/dx: WRONG" in result.text
    assert diagnoses_in(result.text) == [OVERLAP]


def test_a_sign_error_in_max_pooling_is_not_called_an_overlap(tmp_path):
    result = broken(tmp_path, "max_pool2d", "s] += gy.data * won", "s] -= gy.data * won")
    assert result.status == "wrong" and diagnoses_in(result.text) == [SIGN]


def test_a_wrong_lstm_gate_is_named_in_the_weights_first(tmp_path):
    result = broken(tmp_path, "lstm_cell", "dg * (1 - g**2)", "dg * (1 - g)")
    assert result.status == "wrong"
    assert "backward, d/dweight_ih: WRONG" in result.text  # the parameters are checked before x
    assert "the block of gate g" in result.text and diagnoses_in(result.text) == [GATE]


def test_a_mistake_shared_by_several_gates_names_no_gate(tmp_path):
    result = broken(tmp_path, "lstm_cell", "dc_new = gc + gh * o * (1 - self.tanh_c**2)", "dc_new = gc")
    assert result.status == "wrong" and GATE not in result.text


def test_the_lstm_cell_state_mistake_names_no_pattern(tmp_path):
    result = broken(tmp_path, "lstm_cell", "dc_new * f, da.T @ x", "dc_new, da.T @ x")
    assert result.status == "wrong" and "backward, d/dc: WRONG" in result.text
    assert diagnoses_in(result.text) == []


@pytest.mark.parametrize("name", ["sigmoid", "max_pool2d", "lstm_cell", "softmax_cross_entropy"])
def test_a_correct_solution_gets_no_diagnosis(name, tmp_path):
    result = broken(tmp_path, name, "def ", "def ")
    assert result.passed, result.text
    assert "Diagnosis" not in result.text and "REFUSED" not in result.text


def test_a_backward_that_calls_minidl_grad_is_refused(tmp_path):
    cheat = (
        "x = self.inputs[0]\n"
        "        import minidl\n"
        "        with minidl.enable_grad():\n"
        "            x2 = x.detach().requires_grad_()\n"
        "            (g,) = minidl.grad(minidl.sigmoid(x2), x2, gy)\n"
        "        return g"
    )
    result = broken(tmp_path, "sigmoid", "y = self.outputs[0]\n        return gy * y * (1 - y)", cheat)
    assert result.status == "refused" and not result.passed
    assert "REFUSED: that is not a derivation: your backward runs minidl's autograd" in result.text


def test_a_backward_that_calls_tensor_backward_is_refused(tmp_path):
    cheat = (
        "x = self.inputs[0]\n"
        "        import minidl\n"
        "        with minidl.enable_grad():\n"
        "            x2 = x.detach().requires_grad_()\n"
        "            minidl.sigmoid(x2).backward(gy)\n"
        "        return x2.grad"
    )
    result = broken(tmp_path, "sigmoid", "y = self.outputs[0]\n        return gy * y * (1 - y)", cheat)
    assert result.status == "refused" and "not a derivation" in result.text


def test_an_entry_that_uses_the_library_op_is_refused(tmp_path):
    result = broken(tmp_path, "sigmoid", "return Sigmoid()(x)", "import minidl\n    return minidl.sigmoid(x)")
    assert result.status == "refused"
    assert "Sigmoid.backward is not in your file" in result.text


def test_tensor_ops_in_a_backward_are_not_refused(tmp_path):
    # the solutions of matmul and lstm_cell compute with @, cat and sum (minidl ops): allowed
    for name in ("matmul", "lstm_cell"):
        assert broken(tmp_path, name, "def ", "def ").passed


def test_parameters_are_checked_before_inputs():
    names = ("x", "h", "c", "weight_ih", "weight_hh", "bias")
    assert [names[k] for k in parameters_first(names)] == ["weight_ih", "weight_hh", "bias", "x", "h", "c"]


def test_coverage_counts_windows():
    assert coverage((5, 5), (3, 3), 2).tolist()[2] == [2, 2, 4, 2, 2]
    assert coverage((4, 4), (2, 2), 2).max() == 1
