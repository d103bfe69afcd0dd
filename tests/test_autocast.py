"""xbce under ``torch.autocast`` follows torch's autocast policy for both losses.

On the CPU torch's autocast runs ``binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` in float32: every floating argument but a float64
one is cast to float32, the result is float32, and gradients flow back through the
casts in the arguments' own dtypes. Every expected value is torch's, under the same
autocast, computed here. BCE-with-logits and both losses' gradients are compared bit
for bit; BCE's forward value within ``tests/tolerances.py``'s float32 ulps (torch's
scalar kernel calls glibc's ``logf``: see ``docs/backends.md``).

Runs when the ``torch`` backend is selected (``XBCE_BACKENDS``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS
from comparisons import assert_ulp_close
from test_fidelity import assert_same_bits
from tolerances import ulps

import xbce

pytestmark = pytest.mark.skipif("torch" not in BACKENDS, reason="torch backend not selected")

HALF = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _data(half: torch.dtype, target_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(21)
    x = torch.as_tensor(rng.normal(0, 3, (16, 12))).to(half)  # a model's output
    t = torch.as_tensor(rng.uniform(0, 1, (16, 12))).to(target_dtype)
    return x, t


def _run(lib: Any, op: str, half: torch.dtype, x: torch.Tensor, t: torch.Tensor,
         reduction: str, **kw: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xr, tr = x.clone().requires_grad_(), t.clone().requires_grad_()
    with torch.autocast("cpu", dtype=half):
        if op == "bcewl":
            out = lib.binary_cross_entropy_with_logits(xr, tr, reduction=reduction, **kw)
        else:  # the everyday pattern: sigmoid of a half model output, a float32 target
            out = lib.binary_cross_entropy(torch.sigmoid(xr), tr, reduction=reduction, **kw)
    g = torch.linspace(-1, 2, out.numel()).reshape(out.shape).to(out.dtype)
    out.backward(g)
    return out.detach(), xr.grad, tr.grad  # type: ignore[return-value]


@pytest.mark.parametrize("half", list(HALF))
@pytest.mark.parametrize("target_dtype", ["half", "float32"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighting", ["none", "weight", "pos_weight"])
def test_bce_with_logits_under_cpu_autocast(half: str, target_dtype: str, reduction: str,
                                            weighting: str) -> None:
    h = HALF[half]
    x, t = _data(h, h if target_dtype == "half" else torch.float32)
    kw: dict[str, Any] = {}
    if weighting != "none":
        kw[weighting] = torch.linspace(0.5, 2, 12).to(h)
    expected = _run(TF, "bcewl", h, x, t, reduction, **kw)
    got = _run(xbce, "bcewl", h, x, t, reduction, **kw)
    assert expected[0].dtype == torch.float32  # torch's policy, checked
    for name, a, b in zip(("loss", "d/d input", "d/d target"), got, expected, strict=True):
        assert_same_bits(a, b, f"autocast {half} bcewl {weighting} {reduction} {name}")


@pytest.mark.parametrize("half", list(HALF))
@pytest.mark.parametrize("target_dtype", ["half", "float32"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_of_sigmoid_under_cpu_autocast(half: str, target_dtype: str, reduction: str) -> None:
    """``binary_cross_entropy(sigmoid(half_logits), float32_target)``: torch accepts the
    mixed dtypes under autocast (both become float32); so does xbce."""
    h = HALF[half]
    x, t = _data(h, h if target_dtype == "half" else torch.float32)
    w = torch.linspace(0.5, 2, 12).to(h)
    expected = _run(TF, "bce", h, x, t, reduction, weight=w)
    got = _run(xbce, "bce", h, x, t, reduction, weight=w)
    assert expected[0].dtype == torch.float32
    # the forward: torch's scalar kernel calls glibc logf, xbce vectorised logs
    quantity = "bce" if reduction == "none" else "reduced"
    assert_ulp_close(got[0], expected[0], ulps(quantity, "float32", "torch"),
                     scale=None if reduction == "none" else expected[0].abs(),
                     what=f"autocast {half} bce {reduction} loss")
    assert_same_bits(got[1], expected[1], f"autocast {half} bce {reduction} d/d input")
    assert_same_bits(got[2], expected[2], f"autocast {half} bce {reduction} d/d target")


def test_float64_is_left_alone_under_autocast() -> None:
    x, t = _data(torch.float64, torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = xbce.binary_cross_entropy_with_logits(x, t)
        expected = TF.binary_cross_entropy_with_logits(x, t)
    assert_same_bits(got, expected, "float64 under autocast")


def test_no_autocast_keeps_half() -> None:
    """Outside autocast a half input stays half (torch's eager rule)."""
    x, t = _data(torch.bfloat16, torch.bfloat16)
    got = xbce.binary_cross_entropy_with_logits(x, t)
    assert_same_bits(got, TF.binary_cross_entropy_with_logits(x, t), "bfloat16 eager")
    assert got.dtype == torch.bfloat16
