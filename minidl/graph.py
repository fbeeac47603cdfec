"""Export the recorded graph as Graphviz DOT text (paste into any DOT viewer)."""

from __future__ import annotations

from minidl.autograd import topological_order


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
