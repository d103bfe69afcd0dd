"""xbce: PyTorch's binary cross-entropy (formula, errors, gradients) on every array library.

``binary_cross_entropy`` and ``binary_cross_entropy_with_logits`` mirror
``torch.nn.functional``; ``BCELoss`` and ``BCEWithLogitsLoss`` mirror ``torch.nn``.
They accept NumPy, PyTorch, JAX, CuPy, Dask and array-api-strict arrays (anything
``array-api-compat`` knows) and return an array of the same library on the same device.
Importing xbce imports no array library.
"""

from . import conventions
from ._checkify import checkify
from ._checks import (
    DtypeMismatchError,
    InvalidValueError,
    ShapeMismatchError,
    UnsupportedDtypeError,
)
from ._explain import explain
from ._functional import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_target_backward,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_target_backward,
)
from ._modules import BCELoss, BCEWithLogitsLoss

__version__ = "0.1.0"

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "DtypeMismatchError",
    "InvalidValueError",
    "ShapeMismatchError",
    "UnsupportedDtypeError",
    "__version__",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_target_backward",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_target_backward",
    "checkify",
    "conventions",
    "explain",
]


def __dir__() -> list[str]:
    """The public API (``__all__``) and the module's dunders; not the private submodules
    (``_checks``, ``_functional``, ...) that importing xbce binds as attributes."""
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__") and n.endswith("__")})
