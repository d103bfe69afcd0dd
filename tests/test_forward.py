"""Forward parity: xbce on each backend against torch.nn.functional on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, Backend, load, rounded
from cases import BCE_EDGES, LOGIT_EDGES, logits, probabilities, targets
from comparisons import check

import xbce

REDUCTIONS = ["none", "mean", "sum"]


def _reduced_scale(terms: torch.Tensor, reduction: str) -> torch.Tensor:
    """The scale of a reduction's rounding error: sum |terms|, divided by numel for
    ``mean`` (the summation error of sum / n is that of the sum, divided by n)."""
    total = terms.abs().sum()
    return total / terms.numel() if reduction == "mean" else total


def _bce_scale(xt: torch.Tensor, yt: torch.Tensor, wt: torch.Tensor | None,
               reduction: str) -> torch.Tensor:
    """From |w * l| in float64 (see _reduced_scale)."""
    el = TF.binary_cross_entropy(xt.double(), yt.double(), reduction="none")
    if wt is not None:
        el = el * wt.double()
    return _reduced_scale(el, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
def test_bce_corpus(
    backend: Backend,
    dtype: str,
    reduction: str,
    soft: bool,
    weighted: bool,
    rng: np.random.Generator,
) -> None:
    n = 3000
    x = probabilities(rng, n, subnormal=not backend.flushes(dtype)).reshape(100, 30)
    y = targets(rng, n, soft=soft).reshape(100, 30)
    xt, yt = rounded(x, dtype), rounded(y, dtype)
    wt = rounded(rng.uniform(0.0, 3.0, 30), dtype) if weighted else None
    expected = TF.binary_cross_entropy(xt, yt, weight=wt, reduction=reduction)
    w = backend.asarray(wt, dtype) if weighted else None
    got = xbce.binary_cross_entropy(
        backend.asarray(xt, dtype), backend.asarray(yt, dtype), w, reduction=reduction
    )
    if reduction == "none":
        check(backend, got, expected, "bce", dtype, what="bce none")
    else:
        check(
            backend,
            got,
            expected,
            "reduced",
            dtype,
            scale=_bce_scale(xt, yt, wt, reduction),
            what=f"bce {reduction}",
        )


def test_bce_edges(backend: Backend, dtype: str) -> None:
    pairs = [
        (x, y)
        for x, y in BCE_EDGES
        if not (backend.flushes(dtype) and 0 < x < 1.2e-38)
    ]
    x, y = (np.asarray(c) for c in zip(*pairs, strict=False))
    xt, yt = rounded(x, dtype), rounded(y, dtype)
    expected = TF.binary_cross_entropy(xt, yt, reduction="none")
    got = xbce.binary_cross_entropy(
        backend.asarray(xt, dtype), backend.asarray(yt, dtype), reduction="none"
    )
    check(backend, got, expected, "bce", dtype, what="bce edges")


@pytest.mark.xfail(
    reason="XLA on CPU flushes subnormal inputs to zero: log(x) = -inf, "
    "clamped to -100, where torch gives 92.1 at x=1e-40",
    strict=True,
)
@pytest.mark.parametrize("name", [b for b in BACKENDS if b == "jax"])
def test_bce_subnormal_inputs_jax(name: str) -> None:
    jax_backend = load(name)
    xt, yt = rounded([1e-40], "float32"), rounded([1.0], "float32")
    got = xbce.binary_cross_entropy(
        jax_backend.asarray(xt, "float32"), jax_backend.asarray(yt, "float32"), reduction="none"
    )
    check(jax_backend, got, TF.binary_cross_entropy(xt, yt, reduction="none"), "bce", "float32")


def _bcewl_scale(xt: torch.Tensor, tt: torch.Tensor, pt: torch.Tensor | None) -> torch.Tensor:
    """|(1-t)*x| + |log_sigmoid(x) * lw|, lw = 1 + (p-1)*t: the terms that cancel.

    At least |lw| * (the smallest normal): where log_sigmoid is subnormal, its own
    ulp (the subnormal spacing) is multiplied by lw."""
    x, t = xt.double(), tt.double()
    lw = torch.ones_like(t) if pt is None else 1.0 + (pt.double() - 1.0) * t
    floor = lw.abs() * torch.finfo(xt.dtype).smallest_normal
    return torch.maximum(((1 - t) * x).abs() + (TF.logsigmoid(x) * lw).abs(), floor)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("weights", ["", "weight", "pos_weight", "both"])
def test_bce_with_logits_corpus(
    backend: Backend,
    dtype: str,
    reduction: str,
    soft: bool,
    weights: str,
    rng: np.random.Generator,
) -> None:
    n = 3000
    x = logits(rng, n, extreme=True).reshape(100, 30)
    t = targets(rng, n, soft=soft).reshape(100, 30)
    xt, tt = rounded(x, dtype), rounded(t, dtype)
    wt = rounded(rng.uniform(0.0, 3.0, (100, 1)), dtype) if weights in ("weight", "both") else None
    pt = rounded(rng.uniform(0.0, 5.0, 30), dtype) if weights in ("pos_weight", "both") else None
    expected = TF.binary_cross_entropy_with_logits(
        xt, tt, weight=wt, pos_weight=pt, reduction=reduction
    )
    got = xbce.binary_cross_entropy_with_logits(
        backend.asarray(xt, dtype),
        backend.asarray(tt, dtype),
        None if wt is None else backend.asarray(wt, dtype),
        reduction=reduction,
        pos_weight=None if pt is None else backend.asarray(pt, dtype),
    )
    scale = _bcewl_scale(xt, tt, pt)
    if wt is not None:
        scale = scale * wt.double()
    if reduction == "none":
        check(backend, got, expected, "bcewl", dtype, scale=scale, what="bcewl none")
    else:
        finite = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
        check(
            backend,
            got,
            expected,
            "reduced",
            dtype,
            scale=_reduced_scale(finite, reduction),
            what=f"bcewl {reduction}",
        )


def test_bce_with_logits_edges(backend: Backend, dtype: str) -> None:
    x, t, p = (np.asarray(c) for c in zip(*LOGIT_EDGES, strict=False))
    xt, tt, pt = rounded(x, dtype), rounded(t, dtype), rounded(p, dtype)
    expected = TF.binary_cross_entropy_with_logits(xt, tt, pos_weight=pt, reduction="none")
    got = xbce.binary_cross_entropy_with_logits(
        backend.asarray(xt, dtype),
        backend.asarray(tt, dtype),
        reduction="none",
        pos_weight=backend.asarray(pt, dtype),
    )
    check(
        backend, got, expected, "bcewl", dtype, scale=_bcewl_scale(xt, tt, pt), what="bcewl edges"
    )
