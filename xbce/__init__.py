"""xbce: PyTorch's binary cross-entropy (formula, errors, gradients) on every array library.

``binary_cross_entropy`` and ``binary_cross_entropy_with_logits`` mirror
``torch.nn.functional``; ``BCELoss`` and ``BCEWithLogitsLoss`` mirror ``torch.nn``.
They accept NumPy, PyTorch, JAX, CuPy, Dask and array-api-strict arrays (anything
``array-api-compat`` knows) and return an array of the same library on the same device.
Importing xbce imports no array library, and only the core: the front ends
(``explain``, ``checkify``, ``conventions``, ``BCELoss``/``BCEWithLogitsLoss``) are
imported on first use (``docs/vendoring.md`` says which files a vendor may leave out).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._checks import (
    DtypeMismatchError,
    InvalidValueError,
    ShapeMismatchError,
    UnsupportedDtypeError,
)
from ._functional import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_target_backward,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_target_backward,
)

if TYPE_CHECKING:  # the front ends' types, for type checkers only
    from . import conventions
    from ._checkify import checkify
    from ._explain import explain
    from ._modules import BCELoss, BCEWithLogitsLoss

#: the front ends, by public name: (module, attribute or None for the module itself)
_FRONT_ENDS = {"BCELoss": ("._modules", "BCELoss"),
               "BCEWithLogitsLoss": ("._modules", "BCEWithLogitsLoss"),
               "checkify": ("._checkify", "checkify"), "conventions": (".conventions", None),
               "explain": ("._explain", "explain")}

__version__ = "0.1.0"

__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "DtypeMismatchError", "InvalidValueError",
    "ShapeMismatchError", "UnsupportedDtypeError", "__version__", "binary_cross_entropy",
    "binary_cross_entropy_backward", "binary_cross_entropy_target_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_target_backward", "checkify", "conventions", "explain",
]


def __getattr__(name: str) -> Any:
    """A front end, imported on first use (PEP 562) and bound here from then on."""
    try:
        module, attribute = _FRONT_ENDS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    loaded = importlib.import_module(module, __name__)
    value = loaded if attribute is None else getattr(loaded, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API (``__all__``) and the module's dunders; not the private submodules
    (``_checks``, ``_functional``, ...) that importing xbce binds as attributes."""
    dunders = {n for n in globals() if n.startswith("__") and n.endswith("__")}
    return sorted(set(__all__) | dunders)
