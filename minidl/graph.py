"""The recorded graph: as Graphviz DOT text (``to_dot``), or as a PNG drawn with matplotlib (``draw``)."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy

from minidl.autograd import topological_order
from minidl.tensor import Tensor


def to_dot(output, names=None) -> str:
    """DOT text for the graph that computed ``output``: boxes for ops, ovals for tensors.

    ``names`` maps tensors to labels ({tensor: "x"}); tensors with ``.name`` set use that.
    Call before ``backward()``, which frees the graph unless ``retain_graph=True``.
    """
    names = {id(t): n for t, n in (names or {}).items()}
    lines = ["digraph minidl {", "  rankdir=LR;", '  node [fontname="Helvetica"];']

    def tensor_node(t):
        label = names.get(id(t)) or t.name or ""
        text = f"{label}\\n{tuple(t.shape)} {t.dtype}".strip("\\n")
        style = ', style=filled, fillcolor="#dbe9f6"' if t.grad_fn is None and t.requires_grad else ""
        lines.append(f'  t{id(t)} [label="{text}", shape=ellipse{style}];')

    seen = set()

    def ensure(t):
        if id(t) not in seen:
            seen.add(id(t))
            tensor_node(t)

    ensure(output)
    for function in reversed(topological_order([output.grad_fn])):
        lines.append(f'  f{id(function)} [label="{function.name}", shape=box];')
        for x in function.inputs or ():
            ensure(x)
            lines.append(f"  t{id(x)} -> f{id(function)};")
        for out in function.outputs:
            if out is not None:
                ensure(out)
                lines.append(f"  f{id(function)} -> t{id(out)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# The graph as a picture (matplotlib only, no Graphviz, no display)
# --------------------------------------------------------------------------- #
class Node(NamedTuple):
    """One box (a tensor) or ellipse (a Function) of the picture, at (x, y) in inches."""

    kind: str  # "tensor" or "function"
    obj: object  # the Tensor or Function itself
    name: str  # "a", "t3", "Mul"
    label: str  # the text drawn on the node
    depth: int  # column: a Function 1 + its deepest input, an output 1 + its Function, a leaf 1 before its first user
    x: float
    y: float
    highlight: bool  # a leaf that requires grad


_ROW, _GAP, _CHAR, _PAD = 1.25, 0.55, 0.072, 0.45  # inches: row spacing, gap between columns, a character, padding


def _width(label: str) -> float:
    """About how wide ``label`` draws in 8.5 pt monospace, with its box (inches)."""
    return max(map(len, label.splitlines())) * _CHAR + _PAD


def _values(array) -> str:
    """A few numbers rounded, or the mean of many."""
    array = numpy.asarray(array)
    if array.size == 1:
        return f"{array.item():.4g}"
    if array.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in array.reshape(-1).tolist()) + "]"
    return f"mean {array.astype(numpy.float64).mean():.4g}"


def _tensor_label(t, name: str) -> str:
    lines = [name, f"{'scalar' if t.ndim == 0 else tuple(t.shape)} {t.dtype}", f"value {_values(t.numpy())}"]
    if t.grad is not None:
        lines.append(f"grad {_values(t.grad.numpy())}")
    return "\n".join(lines)


def _check_output(output, caller: str):
    if not isinstance(output, Tensor):
        raise TypeError(f"{caller}: expected a Tensor, got {type(output).__name__}")
    if output.grad_fn is None:
        raise ValueError(f"{caller}: this tensor has no recorded graph (grad_fn is None): it is a leaf, or it "
                         "was computed under no_grad() or from tensors that do not require grad")
    if getattr(output.grad_fn, "_released", False):
        raise ValueError(f"{caller}: the graph was freed by backward(); draw it before backward, "
                         "or call backward(retain_graph=True)")


def layout(output, names=None) -> tuple[list, list]:
    """Nodes with positions, and edges, for the graph that computed ``output`` (pure: no drawing).

    Returns ``(nodes, edges)``: ``nodes`` a list of :class:`Node`, ``edges`` pairs of indices
    into it, input tensor -> Function and Function -> output tensor. Columns go by depth
    (leaves on the left, ``output`` on the right); inside a column, nodes are ordered by the
    mean row of their neighbours, so few edges cross. Tensors are named by ``names``
    ({tensor: "x"}), else their ``.name``, else "t0", "t1", ... in the order they were made.
    """
    _check_output(output, "layout")
    names = {id(t): n for t, n in (names or {}).items()}
    functions = list(reversed(topological_order([output.grad_fn])))  # inputs before users
    depth, objects, edges = {}, {}, []

    def add_tensor(t, d):
        if id(t) not in depth:
            objects[id(t)], depth[id(t)] = t, d

    for function in functions:  # a Function sits one column right of its deepest computed input
        depth[id(function)] = 1 + max((depth.get(id(x), 0) for x in function.inputs), default=0)
        objects[id(function)] = function
        for out in function.outputs:
            if out is not None:
                add_tensor(out, depth[id(function)] + 1)
                edges.append((id(function), id(out)))
    add_tensor(output, depth[id(output.grad_fn)] + 1)
    for function in functions:  # a leaf sits just left of the first Function that uses it
        for x in function.inputs:
            if x.grad_fn is None or id(x) not in depth:
                add_tensor(x, depth[id(function)] - 1)
                depth[id(x)] = min(depth[id(x)], depth[id(function)] - 1)
            edges.append((id(x), id(function)))

    count = 0
    for t in (t for f in functions for t in (*f.inputs, *f.outputs)):  # t0, t1, ... in the order they were made
        if t is not None and not (names.get(id(t)) or t.name):
            names[id(t)], count = f"t{count}", count + 1
    columns = {}
    for key in objects:
        columns.setdefault(depth[key], []).append(key)
    neighbours = {key: [] for key in objects}
    for src, dst in edges:
        neighbours[src].append(dst)
        neighbours[dst].append(src)
    row = {key: -i for keys in columns.values() for i, key in enumerate(keys)}
    for _ in range(4):  # barycentre sweeps: each node moves towards the mean row of its neighbours
        for d in sorted(columns):
            keys = columns[d]
            keys.sort(key=lambda k: -sum(row[n] for n in neighbours[k]) / max(len(neighbours[k]), 1))
            for i, key in enumerate(keys):
                row[key] = (len(keys) - 1) / 2 - i  # centred; the first at the top
    label = {key: _tensor_label(obj, names.get(key) or obj.name) if isinstance(obj, Tensor) else obj.name
             for key, obj in objects.items()}
    half_width = {d: max(_width(label[k]) for k in keys) / 2 for d, keys in columns.items()}
    x_of_depth = {0: 0.0}
    for d in range(1, max(columns) + 1):  # columns as far apart as their widest labels need
        x_of_depth[d] = x_of_depth[d - 1] + half_width.get(d - 1, 0) + _GAP + half_width.get(d, 0)
    index, nodes = {}, []
    for key, obj in objects.items():
        tensor = isinstance(obj, Tensor)
        index[key] = len(nodes)
        nodes.append(Node("tensor" if tensor else "function", obj, label[key].split("\n")[0], label[key],
                          depth[key], x_of_depth[depth[key]], row[key] * _ROW,
                          tensor and obj.grad_fn is None and obj.requires_grad))
    return nodes, [(index[s], index[d]) for s, d in edges]


def draw(output, path, names=None, title=None) -> str:
    """Save a PNG of the graph that computed ``output`` and return ``path``.

    Tensors are boxes (name, shape and dtype, value, and ``.grad`` once backward has run;
    leaves that require grad shaded blue, ``output`` yellow), Functions are ellipses with
    their op name, arrows go input -> Function -> output. Works before backward and after
    ``backward(retain_graph=True)`` (backward frees the graph otherwise). Needs matplotlib
    only: no Graphviz, no display.
    """
    _check_output(output, "draw")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    nodes, edges = layout(output, names)
    left = min(n.x - _width(n.label) / 2 for n in nodes) - 0.3
    right = max(n.x + _width(n.label) / 2 for n in nodes) + 0.3
    ys = [n.y for n in nodes]
    fig = Figure(figsize=(right - left, max(ys) - min(ys) + 1.9))  # one unit of the axes is one inch
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(left, right)
    ax.set_ylim(min(ys) - 1.1, max(ys) + 0.8)
    ax.axis("off")
    texts = []
    for node in nodes:
        if node.kind == "function":
            box = dict(boxstyle="ellipse,pad=0.35", facecolor="#fde0c5", edgecolor="#b35806")
            weight = "bold"
        else:
            color = "#c6dbef" if node.highlight else "#fff2b3" if node.obj is output else "white"
            box = dict(boxstyle="round,pad=0.4", facecolor=color, edgecolor="#2b5d8a" if node.highlight else "0.3",
                       linewidth=1.8 if node.highlight else 1.0)
            weight = "normal"
        texts.append(ax.text(node.x, node.y, node.label, ha="center", va="center", fontsize=8.5,
                             family="monospace", fontweight=weight, bbox=box, zorder=3))
    fig.canvas.draw()  # sizes the boxes, so the arrows below can run from edge to edge
    to_data = ax.transData.inverted()
    edges_x = [to_data.transform(t.get_bbox_patch().get_window_extent())[:, 0] for t in texts]
    for src, dst in edges:
        skips = nodes[dst].depth - nodes[src].depth > 1  # arc over the columns in between
        ax.annotate("", xy=(edges_x[dst][0], nodes[dst].y), xytext=(edges_x[src][1], nodes[src].y), zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color="0.35", lw=1.2, shrinkA=1, shrinkB=1,
                                    connectionstyle="arc3,rad=-0.3" if skips else "arc3"))
    ax.legend(handles=[Patch(facecolor="#c6dbef", edgecolor="#2b5d8a", label="leaf, requires grad"),
                       Patch(facecolor="#fde0c5", edgecolor="#b35806", label="op (Function)"),
                       Patch(facecolor="#fff2b3", edgecolor="0.3", label="output")],
              loc="lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        ax.set_title(title, y=0.93, fontsize=11)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return str(path)
