"""Fixtures shared by the tests: the backend under test, its dtypes, a seeded RNG.

Helpers live in importable modules (``backends``, ``comparisons``, ``tolerances``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from backends import BACKENDS, JAX_X64, STRICT_FLAGS, Backend, load
from hypothesis import settings

# CI (``.ci/run``) sets HYPOTHESIS_PROFILE=ci: the same examples on every run, so that
# a red CI is reproducible; locally each run explores new ones
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


JAX_SELECTED = any(b in ("jax", "jax_gpu") for b in BACKENDS)


#: 64-bit types, which JAX lacks with x64 off (jnp.asarray makes 32-bit ones of them)
WIDE = ("float64", "int64", "uint64", "complex128")


def _is_64bit(v: object) -> bool:
    if isinstance(v, str):
        return v in WIDE
    if isinstance(v, np.generic):  # a NumPy scalar
        return v.dtype.name in WIDE
    if isinstance(v, torch.dtype):
        return v in (torch.float64, torch.int64, torch.complex128)
    if isinstance(v, (type, np.dtype)):
        try:
            return np.dtype(v).name in WIDE
        except TypeError:
            return False
    return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "x64: needs float64 (or int64, complex128) on JAX (jax_enable_x64): skipped with "
        "XBCE_JAX_X64=0, selected by `-m x64` in the x64 run of nox -s jax. Added by itself to "
        "every test with such a dtype parameter on a JAX backend; tests that make float64 "
        "JAX arrays otherwise carry it.",
    )


def _float64_on_jax(item: pytest.Item) -> bool:
    params = getattr(item, "callspec", None)
    values = list(params.params.values()) if params is not None else []
    on_jax = any(isinstance(v, str) and v in ("jax", "jax_gpu") for v in values)
    return on_jax and any(_is_64bit(v) for v in values)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason="needs float64 (int64, complex128) on JAX; jax_enable_x64 is off (XBCE_JAX_X64=0): "
        "runs in the x64 run (XBCE_JAX_X64=1 pytest -m x64, part of nox -s jax)"
    )
    for item in items:
        if item.get_closest_marker("x64") is None and _float64_on_jax(item):
            item.add_marker(pytest.mark.x64)
        if JAX_SELECTED and not JAX_X64 and item.get_closest_marker("x64") is not None:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    x64 = f"; jax_enable_x64 {'on' if JAX_X64 else 'off'}" if JAX_SELECTED else ""
    strict = f"; array-api-strict flags {STRICT_FLAGS}" if STRICT_FLAGS is not None else ""
    return f"xbce backends under test (XBCE_BACKENDS): {', '.join(BACKENDS)}{x64}{strict}"


@pytest.fixture(autouse=True)
def _jax_x64_stays_off() -> Iterator[None]:
    """With XBCE_JAX_X64=0 no test may switch JAX's 64-bit mode on (the rest of the run
    would then not be the x64-off run it says it is)."""
    yield
    jax = sys.modules.get("jax")
    if JAX_SELECTED and not JAX_X64 and jax is not None:
        assert not jax.config.jax_enable_x64, "a test switched jax_enable_x64 on"


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every selected backend; an unavailable one errors here instead of skipping."""
    return load(request.param)


@pytest.fixture(params=["float16", "bfloat16", "float32", "float64"])
def dtype(request: pytest.FixtureRequest, backend: Backend) -> str:
    if request.param not in backend.dtypes:  # float64 on JAX: skipped at collection
        pytest.skip(f"{backend.name} has no {request.param}")
    return str(request.param)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A NumPy RNG seeded from the test's id, so each test gets reproducible data."""
    seed = sum(request.node.nodeid.encode()) * 7919
    return np.random.default_rng(seed)
