"""Every private symbol of torch, JAX and NumPy that xbce uses still exists
(``xbce/_private.py``): a release that moves one fails here, not in users' hands.

Each library's symbols are checked in the sessions that install it; a missing library
skips its symbols with a reason (never counted as passing elsewhere)."""

from __future__ import annotations

import importlib

import pytest

from xbce import _private


@pytest.mark.parametrize("key", sorted(_private.SYMBOLS))
def test_private_symbol_exists(key: str) -> None:
    module, *attributes = _private.SYMBOLS[key]
    pytest.importorskip(module.split(".")[0])
    if key == "numpy_cpu_features":
        np = importlib.import_module("numpy")
        if int(np.__version__.split(".")[0]) < 2:
            pytest.skip("NumPy 1.x keeps its CPU features elsewhere (the fallback is used)")
    value = _private._lookup(module, *attributes)
    assert value is not None, f"{module}.{'.'.join(attributes)} is gone: see _private's fallback"


def test_fallbacks_keep_xbce_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every symbol missing, the lookups give their documented fallbacks."""
    monkeypatch.setattr(_private, "_lookup", lambda *a: None)
    _private.torch_functions.cache_clear()
    _private.numpy_has_avx512.cache_clear()
    try:
        wrapped, active, any_autocast = _private.torch_functions()
        assert active() is False
        assert wrapped(object()) is False
        assert any_autocast is None
        assert _private.jax_is_top_level()() is True
        assert _private.numpy_has_avx512() is False
    finally:
        _private.torch_functions.cache_clear()
        _private.numpy_has_avx512.cache_clear()
