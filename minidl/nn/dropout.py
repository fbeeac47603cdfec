"""Dropout: zero random elements while training, to keep units from co-adapting."""

from __future__ import annotations

from minidl import checks
from minidl.nn import functional as F
from minidl.nn.module import Module


class Dropout(Module):
    """In training mode, zero each element with probability p and scale the survivors by
    1 / (1 - p) so the expected output equals the input; the identity in evaluation mode.
    The mask comes from minidl's generator for the input's device (``minidl.manual_seed``)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p, self.inplace = checks.probability(p, "Dropout", "p (the probability of zeroing)"), inplace

    def forward(self, input):
        checks.tensor_input(input, "Dropout")
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
