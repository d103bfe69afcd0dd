"""PyTorch modules: ``xbce.torch.BCELoss`` and ``BCEWithLogitsLoss`` are ``nn.Module`` s.

Drop-ins for ``torch.nn.BCELoss`` and ``torch.nn.BCEWithLogitsLoss``: the same base
classes (``torch.nn.modules.loss._WeightedLoss`` and ``_Loss``), constructor, buffers
(``weight``, ``pos_weight``: persistent, absent from ``state_dict`` when ``None``, so
a ``state_dict`` loads from and into torch's own modules), ``reduction`` attribute and
``repr``; they move with ``.to()``/``.double()``/``.cuda()``, sit in
``nn.Sequential``, pickle with ``torch.save`` (by reference to these classes), and
their ``forward`` is :func:`xbce.binary_cross_entropy` /
:func:`xbce.binary_cross_entropy_with_logits`. Importing this module imports torch;
``import xbce`` alone does not.
"""

from __future__ import annotations

from typing import Any

from ._requires import missing

try:
    import torch
except ModuleNotFoundError as err:  # say which extra to install, keep err.name == "torch"
    if err.name != "torch":
        raise
    raise missing("xbce.torch", "torch") from err
from torch.nn.modules.loss import _Loss, _WeightedLoss

from . import _functional, _legacy
from ._functional import binary_cross_entropy, binary_cross_entropy_with_logits

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]


def _tensor(value: torch.Tensor | float | None) -> torch.Tensor | None:
    """A Python scalar as a 0-d tensor (a buffer must be a tensor or None)."""
    if isinstance(value, (bool, int, float)):
        return torch.tensor(float(value))
    return value


class BCELoss(_WeightedLoss):  # type: ignore[misc]
    """``torch.nn.BCELoss`` computed by :func:`xbce.binary_cross_entropy`.

    ``BCELoss(weight=None, size_average=None, reduce=None, reduction='mean')``, as in
    PyTorch: ``weight`` is a buffer, the legacy arguments become ``reduction`` at
    construction (with PyTorch's warning), and an invalid ``reduction`` raises when the
    loss is called. The values, errors and gradients are PyTorch's. A Python scalar
    ``weight`` becomes a 0-d float32 tensor buffer (PyTorch's module accepts tensors
    only).

    Examples
    --------
    >>> import torch
    >>> import xbce.torch
    >>> loss = xbce.torch.BCELoss(weight=torch.tensor([1.0, 2.0]))
    >>> loss, list(loss.state_dict())
    (BCELoss(), ['weight'])
    >>> loss(torch.tensor([0.6, 0.2]), torch.tensor([1.0, 0.0]))
    tensor(0.4786)
    """

    __constants__ = ["reduction"]  # noqa: RUF012 - as torch.nn.BCELoss

    def __init__(
        self,
        weight: torch.Tensor | float | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        reduction = _legacy.reduction(size_average, reduce, reduction)
        super().__init__(_tensor(weight), None, None, reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Any:
        # xbce's own formula (xbce._functional), never torch.nn.functional's kernel
        return _functional.binary_cross_entropy(
            input, target, weight=self.weight, reduction=self.reduction
        )


class BCEWithLogitsLoss(_Loss):  # type: ignore[misc]
    """``torch.nn.BCEWithLogitsLoss`` computed by
    :func:`xbce.binary_cross_entropy_with_logits`.

    ``BCEWithLogitsLoss(weight=None, size_average=None, reduce=None,
    reduction='mean', pos_weight=None)``, as in PyTorch: ``weight`` and ``pos_weight``
    are buffers (a Python scalar becomes a 0-d float32 tensor buffer; PyTorch's module
    accepts tensors only).

    Examples
    --------
    >>> import torch
    >>> import xbce.torch
    >>> loss = xbce.torch.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0]))
    >>> list(loss.state_dict())
    ['pos_weight']
    >>> loss(torch.tensor([0.0]), torch.tensor([1.0]))
    tensor(2.0794)
    """

    def __init__(
        self,
        weight: torch.Tensor | float | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: torch.Tensor | float | None = None,
    ) -> None:
        reduction = _legacy.reduction(size_average, reduce, reduction)
        super().__init__(None, None, reduction)
        self.register_buffer("weight", _tensor(weight))
        self.register_buffer("pos_weight", _tensor(pos_weight))
        self.weight: torch.Tensor | None
        self.pos_weight: torch.Tensor | None

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Any:
        return _functional.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction
        )
