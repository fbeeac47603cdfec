"""minidl.graph.draw: the recorded graph as a PNG, and ``layout``, the pure function that places it.

(``to_dot``, the Graphviz text export, is tested in test_core_autograd.py.)
"""

import numpy as np
import pytest

import minidl
from minidl.autograd import topological_order
from minidl.graph import draw, layout

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def leaf(value, device="cpu"):
    return minidl.tensor(value, dtype=minidl.float64, device=device, requires_grad=True)


def lesson_graph(device="cpu"):
    """f = tanh(a*b + b**2), as in lesson 01: b feeds two ops."""
    a, b = leaf(0.5, device), leaf(-1.2, device)
    u, v = a * b, b**2
    s = u + v
    f = minidl.tanh(s)
    return a, b, u, v, s, f


def skip_graph():
    """h feeds Tanh and, one column further on, Mul: an edge that skips a column."""
    x, w, bias = leaf(np.ones((3, 4))), leaf(np.full((4, 2), 0.5)), leaf([1.0, -1.0])
    h = x @ w + bias
    return x, w, bias, (minidl.tanh(h) * h).sum()


# --------------------------------------------------------------------------- #
# The picture
# --------------------------------------------------------------------------- #
def test_draw_writes_a_png_before_backward(tmp_path, device):
    *_, f = lesson_graph(device)
    path = draw(f, tmp_path / "sub" / "graph.png", title="before backward")
    assert path == str(tmp_path / "sub" / "graph.png")
    data = (tmp_path / "sub" / "graph.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_draw_after_backward_with_retain_graph(tmp_path, device):
    a, b, u, v, s, f = lesson_graph(device)
    f.backward(retain_graph=True)
    path = draw(f, tmp_path / "graph.png", names={a: "a", b: "b", f: "f"})
    assert open(path, "rb").read(8) == PNG_SIGNATURE


def test_draw_a_bigger_graph(tmp_path):
    *_, y = skip_graph()
    y.backward(retain_graph=True)
    assert (tmp_path / "g.png").exists() is False
    draw(y, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes().startswith(PNG_SIGNATURE)


# --------------------------------------------------------------------------- #
# The layout: nodes, positions, edges
# --------------------------------------------------------------------------- #
def expected_edges(output):
    edges = set()
    for function in topological_order([output.grad_fn]):
        edges |= {(id(x), id(function)) for x in function.inputs}
        edges |= {(id(function), id(o)) for o in function.outputs if o is not None}
    return edges


@pytest.mark.parametrize("graph", [lesson_graph, skip_graph])
def test_layout_nodes_and_edges_follow_the_recorded_graph(graph):
    output = graph()[-1]
    nodes, edges = layout(output)
    functions = topological_order([output.grad_fn])
    function_nodes = [n.obj for n in nodes if n.kind == "function"]
    assert sorted(map(id, function_nodes)) == sorted(map(id, functions))  # every Function, once
    assert len({id(n.obj) for n in nodes}) == len(nodes)
    assert {(id(nodes[s].obj), id(nodes[d].obj)) for s, d in edges} == expected_edges(output)
    assert len(edges) == len(set(edges))
    for s, d in edges:
        assert nodes[d].depth > nodes[s].depth and nodes[d].x > nodes[s].x
        assert {nodes[s].kind, nodes[d].kind} == {"tensor", "function"}
    assert len({(n.x, n.y) for n in nodes}) == len(nodes)  # no two nodes on one spot
    (last,) = [n for n in nodes if n.obj is output]
    assert last.depth == max(n.depth for n in nodes)


def test_layout_of_the_lesson_graph():
    a, b, u, v, s, f = lesson_graph()
    nodes, _ = layout(f)
    by_obj = {id(n.obj): n for n in nodes}
    assert [by_obj[id(t)].depth for t in (a, b, u, v, s, f)] == [0, 0, 2, 2, 4, 6]
    assert sorted(n.name for n in nodes if n.kind == "function") == ["Add", "Mul", "PowScalar", "Tanh"]
    assert by_obj[id(a)].highlight and by_obj[id(b)].highlight
    assert not any(by_obj[id(t)].highlight for t in (u, v, s, f))


def test_a_leaf_sits_just_before_its_first_use():
    x, w, bias, y = skip_graph()
    nodes, _ = layout(y)
    by_obj = {id(n.obj): n for n in nodes}
    add = y.grad_fn.inputs[0].grad_fn.inputs[0].grad_fn.inputs[0].grad_fn  # Sum <- Mul <- Tanh <- Add
    assert add.name == "Add" and by_obj[id(bias)].depth == by_obj[id(add)].depth - 1 == 2
    assert by_obj[id(x)].depth == by_obj[id(w)].depth == 0


# --------------------------------------------------------------------------- #
# Labels: names, values, gradients
# --------------------------------------------------------------------------- #
def test_labels_name_tensors_by_argument_then_attribute_then_number():
    a, b, u, v, s, f = lesson_graph()
    b.name = "bee"
    nodes, _ = layout(f, names={a: "a", f: "f = tanh(s)"})
    names = {id(n.obj): n.name for n in nodes}
    assert names[id(a)] == "a" and names[id(b)] == "bee" and names[id(f)] == "f = tanh(s)"
    assert [names[id(t)] for t in (u, v, s)] == ["t0", "t1", "t2"]  # the order the forward pass made them
    for n in nodes:
        assert n.label.splitlines()[0] == n.name


def test_labels_show_values_and_gradients_once_they_exist(device):
    a, b, u, v, s, f = lesson_graph(device)
    labels = {id(n.obj): n.label for n in layout(f, names={a: "a", b: "b"})[0]}
    assert "value 0.5" in labels[id(a)] and "value -1.2" in labels[id(b)] and "value 1.44" in labels[id(v)]
    assert "scalar float64" in labels[id(a)]
    assert not any("grad" in label for label in labels.values())
    u.retain_grad()
    f.backward(retain_graph=True)
    labels = {id(n.obj): n.label for n in layout(f)[0]}
    assert f"grad {a.grad.item():.4g}" in labels[id(a)] and "grad -0.6356" in labels[id(a)]
    assert f"grad {u.grad.item():.4g}" in labels[id(u)]
    assert "grad" not in labels[id(v)]  # a non-leaf without retain_grad() keeps no .grad


def test_labels_of_bigger_tensors_show_shape_and_mean(device):
    x = leaf(np.arange(12.0).reshape(3, 4), device)
    small = leaf([1.0, 2.0], device)
    y = (x * 2).sum() + small.sum()
    labels = {id(n.obj): n.label for n in layout(y)[0]}
    assert "(3, 4) float64" in labels[id(x)] and "value mean 5.5" in labels[id(x)]
    assert "value [1, 2]" in labels[id(small)]


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("function", [draw, layout])
def test_bad_input_is_refused_with_the_function_name(function, tmp_path):
    name = function.__name__
    args = (tmp_path / "g.png",) if function is draw else ()
    with pytest.raises(TypeError, match=f"{name}: expected a Tensor, got int"):
        function(3, *args)
    with pytest.raises(ValueError, match=f"{name}: this tensor has no recorded graph"):
        function(leaf(1.0), *args)
    with minidl.no_grad():
        with pytest.raises(ValueError, match=f"{name}: this tensor has no recorded graph"):
            function(leaf(1.0) * 2, *args)
    *_, f = lesson_graph()
    f.backward()
    with pytest.raises(ValueError, match=f"{name}: the graph was freed by backward.*retain_graph=True"):
        function(f, *args)
    assert not (tmp_path / "g.png").exists()
