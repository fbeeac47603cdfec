"""Loss layers: each stores its options and calls its function in minidl.nn.functional."""

from __future__ import annotations

from minidl import checks
from minidl.nn import functional as F
from minidl.nn.module import Module
from minidl.ops.loss import check_reduction


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def _check(self, input, target) -> None:
        """Both arguments are tensors (not, say, the (output, state) tuple of a recurrent layer)."""
        checks.tensor_input(input, type(self).__name__)
        checks.tensor_input(target, type(self).__name__, "a Tensor as target")

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class CrossEntropyLoss(_Loss):
    """Cross-entropy from logits (N, C[, d...]) against class indices or class probabilities;
    see ``F.cross_entropy``. ``weight`` (C,) is kept as a buffer (it moves with ``.to``)."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.label_smoothing = checks.probability(label_smoothing, "CrossEntropyLoss", "label_smoothing")
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        self._check(input, target)
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C[, d...]) at class indices; see ``F.nll_loss``."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        self._check(input, target)
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Mean squared error; see ``F.mse_loss``."""

    def forward(self, input, target):
        self._check(input, target)
        return F.mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy from logits; see ``F.binary_cross_entropy_with_logits``.
    ``weight`` and ``pos_weight`` are kept as buffers."""

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        self._check(input, target)
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)
