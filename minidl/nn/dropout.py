"""Dropout: zero random elements while training, to keep units from co-adapting."""

from __future__ import annotations

from minidl.nn import functional as F
from minidl.nn.module import Module


class Dropout(Module):
    """In training mode, zero each element with probability p and scale the survivors by
    1 / (1 - p) so the expected output equals the input; the identity in evaluation mode.
    The mask comes from minidl's generator for the input's device (``minidl.manual_seed``)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability has to be between 0 and 1, got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
