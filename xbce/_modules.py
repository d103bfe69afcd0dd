"""``BCELoss`` and ``BCEWithLogitsLoss``: reusable callables for any array library.

These are framework-neutral (plain Python objects holding arguments), for NumPy, JAX,
CuPy, Dask and array-api-strict code. PyTorch users who need a ``torch.nn.Module``
(``nn.Sequential``, ``.to()``, ``state_dict``) use :mod:`xbce.torch`; Keras users
:mod:`xbce.keras`.
"""

from __future__ import annotations

from typing import Any

from . import _checks, _legacy
from ._functional import binary_cross_entropy, binary_cross_entropy_with_logits

Array = Any

_SCALARS = (bool, int, float)


def _describe(a: Array) -> str:
    if isinstance(a, _SCALARS):
        return repr(a)
    dtype = str(a.dtype).removeprefix("torch.")
    return f"<{type(a).__module__.split('.')[0]} array {tuple(a.shape)} {dtype}>"


def _array_or_scalar(**named: object) -> None:
    _checks.arrays(**{k: v for k, v in named.items() if not isinstance(v, _SCALARS)})


class _Loss:
    _fields: tuple[str, ...] = ()

    def __init__(
        self,
        weight: Array | float | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        _array_or_scalar(weight=weight)
        self.weight = weight
        reduction = _legacy.reduction(size_average, reduce, reduction)
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
    """``torch.nn.BCELoss``'s arguments and results, for any array API library.

    ``BCELoss(weight=None, size_average=None, reduce=None, reduction="mean")(input,
    target)`` is :func:`binary_cross_entropy` with these arguments; see there for the
    formula, shapes, dtypes and errors. The legacy ``size_average``/``reduce`` are
    turned into ``reduction`` at construction (with PyTorch's warning), and, unlike
    PyTorch, an invalid ``reduction`` is refused at construction already.

    This is a plain Python object, not a ``torch.nn.Module``: for PyTorch models use
    :class:`xbce.torch.BCELoss`.

    Examples
    --------
    >>> import numpy as np
    >>> import xbce
    >>> loss = xbce.BCELoss(reduction="sum")
    >>> loss
    BCELoss(reduction='sum')
    >>> round(float(loss(np.asarray([0.6, 0.2, 0.7]), np.asarray([1.0, 0.0, 1.0]))), 10)
    1.090644119
    """

    _fields = ("weight",)

    def __call__(self, input: Array, target: Array) -> Array:
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``torch.nn.BCEWithLogitsLoss``'s arguments and results, for any array library.

    ``BCEWithLogitsLoss(weight=None, size_average=None, reduce=None,
    reduction="mean", pos_weight=None)(input, target)`` is
    :func:`binary_cross_entropy_with_logits`; see there for details. For PyTorch
    models use :class:`xbce.torch.BCEWithLogitsLoss`.

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
        weight: Array | float | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Array | float | None = None,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        _array_or_scalar(pos_weight=pos_weight)
        self.pos_weight = pos_weight

    def __call__(self, input: Array, target: Array) -> Array:
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
