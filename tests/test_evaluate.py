"""xbce's evaluation strategies (``xbce._blocks``, the NumPy backend's primitives) give the
formula's values.

Which NumPy ``log1p`` xbce uses depends on the CPU (NumPy's AVX-512 loop where it
exists, a float64 detour elsewhere), so both are tested here on every machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS
from comparisons import assert_ulp_close
from tolerances import ulps

import xbce
from xbce import _backends, _numpy

pytestmark = pytest.mark.skipif("numpy" not in BACKENDS, reason="NumPy backend not selected")


def test_float64_detour_log1p_is_within_an_ulp() -> None:
    """``log(1 + u)`` in float64, rounded to float32: the correctly rounded log1p
    (<= 1 ulp from float64's log1p rounded to float32, which may round twice)."""
    rng = np.random.default_rng(0)
    u = np.concatenate([
        -rng.uniform(0.0, 1.0, 100_000), rng.uniform(-1e-6, 1e-6, 10_000),
        rng.uniform(0.0, 100.0, 10_000), 2.0 ** -rng.uniform(20, 30, 10_000),
        [0.0, -0.0, -1.0, 2.0**-24, -(2.0**-23), np.inf, np.nan, -2.0],
    ]).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # as xbce evaluates it
        got = _numpy.backend().ops.log1p_via_float64(u)
        ref = np.log1p(u.astype(np.float64)).astype(np.float32)
    assert got.dtype == np.float32
    assert_ulp_close(torch.from_numpy(got), torch.from_numpy(ref), 1, what="log1p")


@pytest.mark.parametrize("vector_log1p", [False, True], ids=["detour", "numpy"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_blocked_numpy_bce_with_either_log1p(monkeypatch: pytest.MonkeyPatch,
                                             vector_log1p: bool, reduction: str) -> None:
    monkeypatch.setattr(_numpy, "has_vector_log1p", lambda: vector_log1p)
    monkeypatch.setattr(_backends, "_BY_TYPE", {})  # backends made afresh: with that log1p
    monkeypatch.setattr(_numpy, "backend", _numpy.backend.__wrapped__)
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, 600_000).astype(np.float32)
    y = rng.uniform(0.0, 1.0, 600_000).astype(np.float32)
    x[:4] = [0.0, 1.0, 1e-30, 1 - 2.0**-24]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    expected = TF.binary_cross_entropy(xt, yt, reduction=reduction)
    got = torch.from_numpy(np.asarray(xbce.binary_cross_entropy(x, y, reduction=reduction)))
    terms = TF.binary_cross_entropy(xt.double(), yt.double(), reduction="none").abs()
    if reduction == "none":
        assert_ulp_close(got, expected, ulps("bce", "float32", "numpy"), what="bce none")
    else:
        assert_ulp_close(got, expected, ulps("reduced", "float32", "numpy"),
                         scale=terms.mean(), what="bce mean")


def test_small_float32_log1p_is_torchs() -> None:
    """Below 4096 elements NumPy's own float32 ``log1p`` is used: glibc's ``log1pf``
    without AVX-512, the function torch's BCE kernel calls, so BCE's ``log1p(-x)`` term
    is torch's bit for bit there (NumPy's AVX-512 loop is within its ulp bound)."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0.0, 1.0, 4095).astype(np.float32)
    y = np.zeros_like(x)  # the loss is -max(log1p(-x), -100)
    expected = TF.binary_cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none")
    got = torch.from_numpy(np.asarray(xbce.binary_cross_entropy(x, y, reduction="none")))
    exact = not _numpy.has_vector_log1p()
    assert_ulp_close(got, expected, 0 if exact else ulps("bce", "float32", "numpy"),
                     what="bce log1p term")
