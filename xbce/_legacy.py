"""PyTorch's deprecated ``size_average`` / ``reduce`` arguments, mapped to a reduction.

``torch.nn._reduction.legacy_get_string`` with the same truth table, warning text and
category; the warning points at the first caller outside xbce (the user's line).
"""

from __future__ import annotations

import inspect
import os
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep

LEGACY_WARNING = (
    "size_average and reduce args will be deprecated, please use reduction='{}' instead."
)


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first stack frame outside the xbce package."""
    frame = inspect.currentframe()  # None on Pythons without frames: then the line
    # that called the public function (public function -> _legacy/_checks -> here)
    if frame is None:
        warnings.warn(message, category, stacklevel=4)
        return
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def reduction(size_average: object, reduce: object, reduction: str) -> str:
    """``reduction``, unless either legacy argument is given: then they decide.

    As in PyTorch, a missing legacy argument counts as ``True``, the arguments are
    read for their truth value, ``reduce=False`` means ``'none'`` whatever
    ``size_average`` is, and every legacy use warns (``UserWarning``)."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        chosen = "mean"
    elif reduce:
        chosen = "sum"
    else:
        chosen = "none"
    warn_at_caller(LEGACY_WARNING.format(chosen))
    return chosen
