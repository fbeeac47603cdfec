"""Exercise: the heart of an autograd engine, on scalars.

Every backward you wrote in the other exercises was run by minidl's engine. Here you
write that engine's two essential parts, for a tiny scalar one (micrograd-sized).

A ``Value`` (given) holds a number ``data``, its ``parents`` (the Values it was computed
from) and ``local_grads``: for each parent, d(self)/d(parent) at the current values.
For example ``z = x * y`` has parents (x, y) and local_grads (y.data, x.data); ``b * b``
has parents (b, b). Each Value also has ``grad``, 0.0 until backward fills it.

Write

* ``topological_order(root)``: a list of every Value that root was computed from
  (root included), each listed once and AFTER all of its parents;
* ``backward(root)``: set every node's ``grad`` to d(root)/d(node). Use the chain rule,
  and think about the order the nodes must be visited in, and about a Value used more
  than once (as in lesson 01, where b appears in a*b and in b**2).

The checker calls ``autograd_engine(a, b)`` below: it builds

    t = tanh(a*b + b*b)        out = t*a + t*t

with your engine (b is used three times, a and t twice each) and compares out and your
[d out/da, d out/db] with the chain rule worked out by hand.

Check it:  python -m minidl.exercises check autograd_engine
"""

import math

import numpy as np

from minidl import Tensor


class Value:
    """A scalar that remembers how it was made: its parents and d(self)/d(parent) for each."""

    def __init__(self, data, parents=(), local_grads=()):
        self.data, self.parents, self.local_grads = float(data), parents, local_grads
        self.grad = 0.0

    def __add__(self, other):
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other):
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1 - t * t,))


def topological_order(root):
    """Every node reachable from root, each after all of its parents (root last)."""
    raise NotImplementedError(
        "topological_order: return a list of every Value reachable from root through .parents, "
        "each once, each after all of its parents"
    )


def backward(root):
    """Fill .grad of every node with d(root)/d(node)."""
    raise NotImplementedError(
        "backward: set root.grad = 1, then visit the nodes in an order that lets each pass on its "
        "complete grad to its parents (through node.local_grads); mind values used more than once"
    )


# ---- given: what the checker calls ---------------------------------------------------------
def autograd_engine(a, b):
    """out = t * a + t * t with t = tanh(a*b + b*b); returns (out, [d out/da, d out/db]) as Tensors."""
    a, b = Value(a), Value(b)
    t = (a * b + b * b).tanh()
    out = t * a + t * t
    backward(out)
    return Tensor(np.asarray(out.data)), Tensor(np.array([a.grad, b.grad]))
