"""Fixtures shared by the tests: the backend under test, its dtypes, a seeded RNG.

Helpers live in importable modules (``backends``, ``comparisons``, ``tolerances``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from backends import BACKENDS, Backend, load
from hypothesis import settings

# CI (``.ci/run``) sets HYPOTHESIS_PROFILE=ci: the same examples on every run, so that
# a red CI is reproducible; locally each run explores new ones
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"xbce backends under test (XBCE_BACKENDS): {', '.join(BACKENDS)}"


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every selected backend; an unavailable one errors here instead of skipping."""
    return load(request.param)


@pytest.fixture(params=["float16", "bfloat16", "float32", "float64"])
def dtype(request: pytest.FixtureRequest, backend: Backend) -> str:
    if request.param not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {request.param}")
    return str(request.param)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A NumPy RNG seeded from the test's id, so each test gets reproducible data."""
    seed = sum(request.node.nodeid.encode()) * 7919
    return np.random.default_rng(seed)
