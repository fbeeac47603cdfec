"""Embedding: a table of learned vectors, one row per index (a word, a class, a speaker)."""

from __future__ import annotations

import numpy

from minidl import checks
from minidl.autograd import no_grad
from minidl.creation import zeros
from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.module import Module, Parameter


class Embedding(Module):
    """y[...] = weight[input[...]] for integer ``input`` of any shape; y has shape input.shape + (embedding_dim,).

    Picking a row is the same as multiplying its one-hot vector by the table, so a row's
    gradient is the sum of gy over every place it was picked. ``weight`` starts as N(0, 1)
    (PyTorch's default); the ``padding_idx`` row starts at 0 and gets no gradient.
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx=None, _weight=None, device=None, dtype=None
    ):
        super().__init__()
        num_embeddings = checks.positive_int(num_embeddings, "Embedding", "num_embeddings")
        embedding_dim = checks.positive_int(embedding_dim, "Embedding", "embedding_dim")
        if padding_idx is not None:
            if not checks.is_int(padding_idx) or not -num_embeddings <= padding_idx < num_embeddings:
                rows = f"[{-num_embeddings}, {num_embeddings - 1}] (a row of the table)"
                checks.fail("Embedding", f"padding_idx in {rows}", padding_idx)
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        if _weight is not None:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(
                    f"Embedding: _weight must have shape ({num_embeddings}, {embedding_dim}), "
                    f"got {tuple(_weight.shape)}"
                )
            self.weight = Parameter(_weight)
        else:
            dtype = numpy.float32 if dtype is None else dtype
            self.weight = Parameter(zeros(self.num_embeddings, self.embedding_dim, dtype=dtype, device=device))
            self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None):
        """An Embedding holding ``embeddings`` (num_embeddings, embedding_dim); frozen unless freeze=False."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: expected a 2-d table, got shape {tuple(embeddings.shape)}")
        module = cls(embeddings.shape[0], embeddings.shape[1], padding_idx=padding_idx, _weight=embeddings)
        module.weight.requires_grad = not freeze
        return module

    def forward(self, input):
        checks.tensor_input(input, "Embedding", "a Tensor of indices as input")
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        )
