"""``BCELoss`` and ``BCEWithLogitsLoss``: reusable callables, like ``torch.nn``'s."""

from __future__ import annotations

from typing import Any

from . import _checks
from ._functional import binary_cross_entropy, binary_cross_entropy_with_logits

Array = Any


def _describe(a: Array) -> str:
    dtype = str(a.dtype).removeprefix("torch.")
    return f"<{type(a).__module__.split('.')[0]} array {tuple(a.shape)} {dtype}>"


class _Loss:
    _fields: tuple[str, ...] = ()

    def __init__(self, weight: Array | None = None, reduction: str = "mean") -> None:
        _checks.arrays(weight=weight)
        self.weight = weight
        self.reduction = _checks.reduction(reduction)

    def __repr__(self) -> str:
        args = [
            f"{name}={_describe(getattr(self, name))}"
            for name in self._fields
            if getattr(self, name) is not None
        ]
        if self.reduction != "mean":
            args.append(f"reduction={self.reduction!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    def __call__(self, input: Array, target: Array) -> Array:
        raise NotImplementedError

    def forward(self, input: Array, target: Array) -> Array:
        """Same as calling the loss (``torch.nn.Module`` spelling)."""
        return self(input, target)


class BCELoss(_Loss):
    """``torch.nn.BCELoss`` for any array API library.

    ``BCELoss(weight=None, reduction="mean")(input, target)`` is
    :func:`binary_cross_entropy` with these arguments; see there for the formula,
    shapes, dtypes and errors. ``reduction`` is validated at construction.

    Examples
    --------
    >>> import numpy as np
    >>> import xbce
    >>> loss = xbce.BCELoss(reduction="sum")
    >>> loss
    BCELoss(reduction='sum')
    >>> float(loss(np.asarray([0.6, 0.2, 0.7]), np.asarray([1.0, 0.0, 1.0])))
    1.0906441190189329
    """

    _fields = ("weight",)

    def __call__(self, input: Array, target: Array) -> Array:
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``torch.nn.BCEWithLogitsLoss`` for any array API library.

    ``BCEWithLogitsLoss(weight=None, reduction="mean", pos_weight=None)(input,
    target)`` is :func:`binary_cross_entropy_with_logits`; see there for details.

    Examples
    --------
    >>> import numpy as np
    >>> import xbce
    >>> xbce.BCEWithLogitsLoss(pos_weight=np.asarray([3.0]))
    BCEWithLogitsLoss(pos_weight=<numpy array (1,) float64>)
    """

    _fields = ("weight", "pos_weight")

    def __init__(
        self,
        weight: Array | None = None,
        reduction: str = "mean",
        pos_weight: Array | None = None,
    ) -> None:
        super().__init__(weight, reduction)
        _checks.arrays(pos_weight=pos_weight)
        self.pos_weight = pos_weight

    def __call__(self, input: Array, target: Array) -> Array:
        return binary_cross_entropy_with_logits(
            input, target, self.weight, self.reduction, self.pos_weight
        )
