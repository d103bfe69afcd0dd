"""Edge values where torch's result is exact and a library's primitive is not.

* BCE at the smallest subnormal ``x`` (``2**-149`` in float32, ``2**-1074`` in
  float64) with ``y = 0``: torch's kernel (glibc's ``log1p``) gives ``log1p(-x) = -x``,
  so the loss is ``x``, and ``inf`` times an infinite weight. torch's own vectorised
  ``torch.log1p`` returns 0 there, which made xbce's loss 0 (and NaN for ``weight=inf``)
  on torch tensors.
* ``mean``/``sum`` of losses that are all ``-0.0`` (``x = y = 1``, or a weight of
  ``-0.0``): torch's sum starts from ``+0.0``, so the result is ``+0.0``; XLA reduces a
  one-element array to the element itself, so JAX gave ``-0.0``.

These results are exact (``x`` itself, ``2 x``, ``inf``, ``+0.0``): every faithfully
rounded ``log1p`` gives ``-x`` for these ``x`` (``log(1 - x)`` lies within half an ulp
of ``-x``), and a sum of zeros is zero, so they are compared bit for bit, zeros' signs
included (0 ulp; the table's ``bce`` tolerance of 4 ulp would let 0 pass for ``x``).
Every expectation is torch's, computed in the test. XLA on the CPU flushes subnormal
inputs to zero: on JAX the expectation is torch's for the flushed input (tests/
comparisons.py's ``flush_subnormals``), as everywhere in the suite.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import Backend, rounded
from comparisons import assert_ulp_close, flush_subnormals

import xbce

SMALLEST = {"float32": 2.0**-149, "float64": 2.0**-1074}


def _inputs(backend: Backend, dtype: str, x: torch.Tensor) -> torch.Tensor:
    """The input as the backend sees it (XLA flushes subnormals to zero)."""
    return flush_subnormals(x) if backend.flushes(dtype) else x


def _exact(backend: Backend, got: object, expected: torch.Tensor, what: str) -> None:
    assert backend.is_native(got), f"{what}: result left {backend.name}"
    assert_ulp_close(backend.to_torch(got), expected, 0, what=what)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("weight", [None, 2.0, float("inf")], ids=["none", "2", "inf"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_at_the_smallest_subnormal(
    backend: Backend, dtype_name: str, weight: float | None, reduction: str
) -> None:
    if dtype_name not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype_name} here (JAX: the x64 run has it)")
    tiny = SMALLEST[dtype_name]
    xt, yt = rounded([tiny], dtype_name), rounded([0.0], dtype_name)
    wt = None if weight is None else rounded([weight], dtype_name)
    expected = TF.binary_cross_entropy(_inputs(backend, dtype_name, xt), yt, weight=wt,
                                       reduction=reduction)
    if not backend.flushes(dtype_name):  # the loss is x (times the weight)
        assert expected.item() == (tiny if weight is None else tiny * weight)
    x, y = backend.asarray(xt, dtype_name), backend.asarray(yt, dtype_name)
    w = None if wt is None else backend.asarray(wt, dtype_name)
    got = xbce.binary_cross_entropy(x, y, w, reduction=reduction)
    _exact(backend, got, expected, f"x={tiny!r}, y=0, weight={weight}, {reduction}")


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_bce_at_the_smallest_subnormal_in_blocks(backend: Backend, dtype_name: str) -> None:
    """600,000 elements: NumPy and torch evaluate in blocks (NumPy's float32 ``log1p``
    takes its float64 detour from 4096 elements on); sums of subnormals are exact."""
    if dtype_name not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype_name} here (JAX: the x64 run has it)")
    n = 600_000
    xt = rounded(np.full(n, SMALLEST[dtype_name]), dtype_name)
    yt = rounded(np.zeros(n), dtype_name)
    wt = rounded(np.where(np.arange(n) == n - 1, np.inf, 1.0), dtype_name)
    x, y, w = (backend.asarray(a, dtype_name) for a in (xt, yt, wt))
    for reduction in ("none", "mean", "sum"):
        for weight, wb in ((None, None), (wt, w)):
            expected = TF.binary_cross_entropy(_inputs(backend, dtype_name, xt), yt,
                                               weight=weight, reduction=reduction)
            got = xbce.binary_cross_entropy(x, y, wb, reduction=reduction)
            what = f"{n} x {SMALLEST[dtype_name]!r}, {reduction}, weight {weight is not None}"
            _exact(backend, got, expected, what)


def test_torchs_log1p_is_what_was_wrong() -> None:
    """The primitive that was inexact (so that the tests above test the fix): torch's
    vectorised log1p gives 0 at -2**-149, torch's BCE kernel gives the loss 2**-149."""
    x = torch.tensor([2.0**-149])
    assert torch.log1p(-x).item() == 0.0
    assert TF.binary_cross_entropy(x, torch.zeros(1), reduction="none").item() == 2.0**-149


# ----------------------------------------------------------------- signed zeros
NEGATIVE_ZERO_CASES = {
    # x = y = 1: the loss is 0 * (-100) - 1 * 0 = -0.0
    "bce x=y=1": ("bce", [1.0], [1.0], None),
    "bce x=y=1, 0-d": ("bce", 1.0, 1.0, None),
    "bce x=y=1, (1, 1)": ("bce", [[1.0]], [[1.0]], None),
    "bce weight -0.0": ("bce", [0.25], [1.0], [-0.0]),
    "bce x=y=1, three elements": ("bce", [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], None),
    "bcewl weight -0.0": ("bcewl", [0.3], [1.0], [-0.0]),
    "bcewl weight -0.0, 0-d": ("bcewl", 0.3, 1.0, -0.0),
}
FUNCS = {
    "bce": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "bcewl": (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
}


@pytest.mark.parametrize("case", NEGATIVE_ZERO_CASES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sum_and_mean_of_negative_zeros(
    backend: Backend, dtype: str, case: str, reduction: str
) -> None:
    op, xv, yv, wv = NEGATIVE_ZERO_CASES[case]
    ours, theirs = FUNCS[op]
    xt, yt = rounded(xv, dtype), rounded(yv, dtype)
    wt = None if wv is None else rounded(wv, dtype)
    expected = theirs(xt, yt, weight=wt, reduction=reduction)
    assert bool((expected == 0).all())
    if reduction != "none":
        assert not torch.signbit(expected), "torch's sum of -0.0 is +0.0"
    else:
        assert bool(torch.signbit(expected).all()), "every loss is -0.0"
    args = [backend.asarray(a, dtype) for a in (xt, yt)]
    w = None if wt is None else backend.asarray(wt, dtype)
    _exact(backend, ours(*args, weight=w, reduction=reduction), expected, f"{case}, {reduction}")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sum_of_negative_zero_under_jit(reduction: str) -> None:
    """XLA's one-element reduction is the element itself under ``jit`` too (and folds
    ``s + 0.0``): xbce's sum keeps torch's +0.0 there, and under ``vmap``."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    expected = TF.binary_cross_entropy(torch.ones(1), torch.ones(1), reduction=reduction)
    assert expected.item() == 0
    assert not torch.signbit(expected)

    def loss(a: object) -> object:
        return xbce.binary_cross_entropy(a, a, reduction=reduction)

    one = jnp.ones(1, jnp.float32)
    for got in (jax.jit(loss)(one), jax.vmap(loss)(jnp.ones((3, 1), jnp.float32))):
        got_t = torch.as_tensor(np.array(got))
        assert_ulp_close(got_t, expected.expand(got_t.shape).contiguous(), 0,
                         what=f"jit/vmap {reduction}")
