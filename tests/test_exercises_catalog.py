"""The exercise catalog: order, graded hints, no formula given away, and the new exercises
(a solution passes, an untouched stub is not done, a deliberately wrong backward fails)."""

import re
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl.exercises import EXERCISES, check
from minidl.exercises.__main__ import main
from minidl.exercises.catalog import im2col_reference
from minidl.exercises.catalog_layers import autograd_engine_reference
from minidl.exercises.checker import load_file

REPO = Path(__file__).resolve().parents[1]
STUBS = REPO / "lessons" / "exercises"
SOLUTIONS = STUBS / "solutions"

ORDER = [
    "sigmoid", "dropout", "matmul", "linear_relu", "softmax_cross_entropy", "max_pool2d",
    "im2col_col2im", "conv2d_im2col", "batch_norm", "layer_norm", "lstm_cell", "autograd_engine",
]

# The key expression of each exercise's formula: only its level-3 graded hint may contain it
FORMULA = {
    "sigmoid": "y * (1 - y)",
    "dropout": "gy * mask / (1 - p)",
    "matmul": "A^T @ gy",
    "linear_relu": "gy * (a > 0)",
    "softmax_cross_entropy": "p - onehot",
    "max_pool2d": "+= gy[n, c, i, j]",
    "im2col_col2im": "i*stride + p = h + padding",
    "conv2d_im2col": "g @ weight.reshape",
    "batch_norm": "N * g - sum_n g",
    "layer_norm": "D * g - sum_d g",
    "lstm_cell": "gh * o * (1 - tanh(c_new)**2)",
    "autograd_engine": "parent.grad += local * node.grad",
}

NEW = ["im2col_col2im", "dropout", "linear_relu", "batch_norm", "layer_norm", "autograd_engine"]


def exercises_section():
    """The exercises part of lessons/README.md (the lesson table above it teaches some formulas on purpose)."""
    text = (REPO / "lessons" / "README.md").read_text()
    start = text.index("### The exercises")
    return text[start : text.index("## ", start + 4)]


def squash(text):
    return re.sub(r"\s+", " ", text)


def test_the_catalog_order_is_the_order_of_difficulty():
    assert list(EXERCISES) == ORDER
    assert len(EXERCISES) >= 11


def test_list_and_both_readmes_give_the_same_order(capsys):
    main(["--list"])
    printed = capsys.readouterr().out
    positions = [printed.index(f"  {name} ") for name in ORDER]
    assert positions == sorted(positions)
    for readme in (STUBS / "README.md", REPO / "lessons" / "README.md"):
        text = readme.read_text()
        rows = re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.M)
        assert rows == ORDER, readme


@pytest.mark.parametrize("name", ORDER)
def test_three_graded_hints_and_the_formula_only_in_the_third(name):
    exercise = EXERCISES[name]
    assert len(exercise.graded_hints) == 3
    assert all(isinstance(h, str) and h.strip() for h in exercise.graded_hints)
    key = FORMULA[name]
    assert key in squash(exercise.graded_hints[2])
    assert key not in squash(exercise.graded_hints[0]) and key not in squash(exercise.graded_hints[1])
    seen = [exercise.title, exercise.to_write, *exercise.hints.values(), (STUBS / f"{name}.py").read_text(),
            (STUBS / "README.md").read_text(), exercises_section()]
    for text in seen:
        assert key not in squash(text)


def test_no_stub_or_readme_quotes_any_formula():
    texts = [p.read_text() for p in STUBS.glob("*.py")]
    texts += [(STUBS / "README.md").read_text(), exercises_section()]
    texts += [e.title for e in EXERCISES.values()]
    for key in FORMULA.values():
        assert not any(key in squash(t) for t in texts), key


@pytest.mark.parametrize("name", NEW)
def test_a_new_solution_passes_and_its_stub_is_not_done(name):
    assert check(name, solution=True, path=STUBS).passed
    result = check(name, path=STUBS)
    assert result.status == "not done" and "To write: " in result.text


def broken(tmp_path, name, old, new, also=()):
    source = (SOLUTIONS / f"{name}.py").read_text()
    assert old in source
    (tmp_path / f"{name}.py").write_text(source.replace(old, new))
    for other in also:
        (tmp_path / other).write_text((SOLUTIONS / other).read_text())
    return check(name, path=tmp_path)


WRONG = [  # a deliberate slip in each new backward: the checker must fail it
    ("dropout", "gy.data * mask / (1 - self.p)", "gy.data * mask"),
    ("linear_relu", "g = gy.data * (self.a > 0)", "g = gy.data"),
    ("batch_norm", "m * g - g.sum(axis=0) - xhat", "m * g - xhat"),
    ("layer_norm", "(gy * xhat).sum(axis=leading)", "gy.sum(axis=leading)"),
    ("autograd_engine", "parent.grad += local * node.grad", "parent.grad = local * node.grad"),
    ("im2col_col2im", "ow : stride] += cols[:, :, p, q]", "ow : stride] = cols[:, :, p, q]"),
]


@pytest.mark.parametrize("name, old, new", WRONG)
def test_a_wrong_backward_of_a_new_exercise_fails(tmp_path, name, old, new):
    result = broken(tmp_path, name, old, new)
    assert result.status == "wrong", result.text
    assert f"FAILED {name}" in result.text


def test_autograd_engine_reorder_is_caught(tmp_path):
    """Visiting the nodes in the wrong order passes gradients on before they are complete."""
    result = broken(tmp_path, "autograd_engine", "in reversed(topological_order(root))", "in topological_order(root)")
    assert result.status == "wrong"


def test_col2im_overwriting_fails_the_dot_product_test(tmp_path):
    result = broken(tmp_path, "im2col_col2im", "ow : stride] += cols[:, :, p, q]", "ow : stride] = cols[:, :, p, q]")
    assert "forward: WRONG: <x, col2im(y)>" in result.text


def test_a_wrong_im2col_forward_names_the_cols_element(tmp_path):
    old = "return cols.transpose(0, 4, 5, 1, 2, 3)"
    result = broken(tmp_path, "im2col_col2im", old, "return cols.transpose(0, 4, 5, 1, 3, 2)")
    assert result.status == "wrong" and "forward: WRONG: cols[" in result.text


def test_conv2d_uses_the_im2col_beside_it(tmp_path):
    """The conv2d exercise loads the learner's im2col_col2im.py: an untouched one is not done."""
    (tmp_path / "conv2d_im2col.py").write_text((SOLUTIONS / "conv2d_im2col.py").read_text())
    (tmp_path / "im2col_col2im.py").write_text((STUBS / "im2col_col2im.py").read_text())
    result = check("conv2d_im2col", path=tmp_path)
    assert result.status == "not done" and "im2col" in result.text


def test_the_im2col_reference_and_the_solution_pair_are_adjoint():
    solution = load_file(SOLUTIONS / "im2col_col2im.py")
    rng = np.random.default_rng(3)
    for shape, kh, kw, stride, padding in [((2, 3, 6, 5), 3, 2, 2, 1), ((1, 1, 4, 4), 4, 4, 1, 2)]:
        x = rng.standard_normal(shape)
        cols = solution.im2col(x, kh, kw, stride, padding)
        np.testing.assert_array_equal(cols, im2col_reference(x, kh, kw, stride, padding))
        y = rng.standard_normal(cols.shape)
        left, right = np.sum(cols * y), np.sum(x * solution.col2im(y, shape, kh, kw, stride, padding))
        assert abs(left - right) <= 1e-12 * (abs(left) + 1)


def test_the_autograd_engine_reference_agrees_with_minidl():
    for a_value, b_value in [(0.5, -1.2), (-0.7, 0.3)]:
        a = minidl.tensor(np.float64(a_value), requires_grad=True)
        b = minidl.tensor(np.float64(b_value), requires_grad=True)
        t = minidl.tanh(a * b + b * b)
        out = t * a + t * t
        out.backward()
        value, grads = autograd_engine_reference(a_value, b_value)
        np.testing.assert_allclose(out.numpy(), value, rtol=1e-12)
        np.testing.assert_allclose([a.grad.numpy(), b.grad.numpy()], grads, rtol=1e-12)


def test_the_batch_norm_walkthrough_is_linked_as_read_after():
    readme = (STUBS / "README.md").read_text()
    assert "batch_norm_walkthrough.md" in readme and "after you solved it" in readme
    assert (STUBS / "batch_norm_walkthrough.md").is_file()
