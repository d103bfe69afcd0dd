"""Every private API of torch, JAX and NumPy that xbce relies on, in one guarded place.

Each symbol is looked up when its library is first used (never at ``import xbce``),
and each has a documented fallback for a release that moves or removes it: xbce then
stays correct, only slower or less able to tell a case apart. ``tests/test_private.py``
checks that each symbol still exists in the installed releases, so that a move is
seen in CI, not by users.

=======================================================  ===================================
private symbol                                            fallback when it is missing
=======================================================  ===================================
``torch._C._functorch.is_functorch_wrapped_tensor``       a tensor counts as wrapped while a
                                                          ``torch.func`` transform is active
``torch._C._are_functorch_transforms_active``             no transform is seen as active
``torch._C._is_any_autocast_enabled``                     autocast is asked per device type
``torch.autograd.forward_ad._current_level``              forward-mode AD is not seen: torch
                                                          differentiates xbce's formula itself
``jax._src.core.trace_ctx.is_top_level``                  only tracer arguments count as traced
``numpy._core._multiarray_umath.__cpu_features__``        no AVX-512 assumed (the float32
                                                          ``log1p`` detour is taken)
=======================================================  ===================================
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any


def _lookup(module: str, *attributes: str) -> Any:
    """``module.attr1.attr2...``, or ``None`` where any part is missing."""
    try:
        return functools.reduce(getattr, attributes, importlib.import_module(module))
    except (ImportError, AttributeError):
        return None


#: (module, attributes) of every private symbol used, for ``tests/test_private.py``
SYMBOLS = {
    "torch_is_wrapped": ("torch._C._functorch", "is_functorch_wrapped_tensor"),
    "torch_transforms_active": ("torch._C", "_are_functorch_transforms_active"),
    "torch_any_autocast": ("torch._C", "_is_any_autocast_enabled"),
    "torch_forward_ad": ("torch.autograd.forward_ad", "_current_level"),
    "jax_trace_ctx": ("jax._src.core", "trace_ctx", "is_top_level"),
    "numpy_cpu_features": ("numpy._core._multiarray_umath", "__cpu_features__"),
}


@functools.cache
def torch_functions() -> tuple[Callable[[Any], bool], Callable[[], bool], Any]:
    """``(is_wrapped(tensor), transforms_active(), any_autocast or None)``."""
    active = _lookup(*SYMBOLS["torch_transforms_active"]) or (lambda: False)
    wrapped = _lookup(*SYMBOLS["torch_is_wrapped"]) or (lambda tensor: bool(active()))
    return wrapped, active, _lookup(*SYMBOLS["torch_any_autocast"])


def torch_forward_ad_active() -> bool:
    """Whether a ``torch.autograd.forward_ad.dual_level()`` is open."""
    return getattr(_module("torch.autograd.forward_ad"), "_current_level", -1) >= 0


def jax_is_top_level() -> Callable[[], bool]:
    """``is_top_level()``: whether JAX is outside every trace (concrete arrays inside
    ``jit`` or ``checkify`` are not: every op on them gives a tracer)."""
    return _lookup(*SYMBOLS["jax_trace_ctx"]) or (lambda: True)


@functools.cache
def _module(name: str) -> Any:
    return importlib.import_module(name)


@functools.cache
def numpy_has_avx512() -> bool:
    """Whether NumPy dispatches float32 ``log1p`` to its AVX-512 (SVML) loop."""
    features = _lookup(*SYMBOLS["numpy_cpu_features"])
    return bool(features.get("AVX512_SKX", False)) if isinstance(features, dict) else False
