"""Comparisons of xbce's results with torch's: ulp distances, flush-to-zero, the check
every parity test makes. Imported by the tests (not from ``conftest.py``, which pytest
does not make importable under ``--import-mode=importlib``)."""

from __future__ import annotations

from typing import Any

import torch
from backends import Backend
from tolerances import ulps


def _ordered(t: torch.Tensor) -> torch.Tensor:
    """Map floats to integers that are ordered like the floats (ulp distance)."""
    bits = {torch.float16: torch.int16, torch.bfloat16: torch.int16,
            torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype]
    i = t.view(bits).to(torch.int64)
    top = torch.iinfo(bits).min
    return torch.where(i < 0, top - i, i)  # -0.0 and +0.0 both map to 0


def assert_ulp_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    max_ulps: int,
    *,
    scale: torch.Tensor | None = None,
    what: str = "",
) -> None:
    """``actual`` equals ``expected`` within ``max_ulps`` ulps of ``scale`` (default:
    of ``expected``). NaN must meet NaN, infinities must match exactly, and at 0 ulps
    the signs of zeros must match too. Both must have the same dtype and shape."""
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    a, e = actual.reshape(-1), expected.reshape(-1)
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    bad = nan_a != nan_e
    special = torch.isinf(e) | torch.isinf(a)
    bad |= special & ~nan_a & ~nan_e & (a != e)
    rest = ~(nan_a | nan_e | special)
    if max_ulps == 0:
        bad |= rest & (_ordered(a) != _ordered(e))
        bad |= rest & (torch.signbit(a) != torch.signbit(e))
    else:
        mag = e.double().abs()
        if scale is not None:
            mag = torch.maximum(mag, scale.reshape(-1).double().abs())
        tol = max_ulps * spacing(mag, e.dtype)
        diff = (a.double() - e.double()).abs()
        bad |= rest & (diff > tol)
    if bool(bad.any()):
        idx = torch.nonzero(bad).reshape(-1)[:8].tolist()
        rows = "\n".join(f"  [{i}] xbce={a[i].item()!r} torch={e[i].item()!r}" for i in idx)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {a.numel()} elements beyond {max_ulps} ulp "
            f"({actual.dtype}):\n{rows}"
        )


def flush_subnormals(t: torch.Tensor) -> torch.Tensor:
    """``t`` with subnormal values replaced by zeros of the same sign (XLA's FTZ).

    XLA flushes float32/float64 arithmetic (and so bfloat16, computed in float32);
    float16 results are rounded from float32 and keep their subnormals."""
    if t.dtype == torch.float16:
        return t
    tiny = torch.finfo(t.dtype).smallest_normal
    return torch.where(t.abs() < tiny, t * 0, t)


def allow_flushed(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Under FTZ, a result within 16 smallest normals of 0 may be flushed to 0 when a
    subnormal intermediate was (e.g. exp(-87.5) inside log_sigmoid, or ``grad * coef``
    before ``* weight``): the factors applied after the flushed step (weights <= 4,
    upstream gradients <= 2 in the tests) scale it by less than 8."""
    if expected.dtype == torch.float16:
        return expected
    near = expected.abs() < 16 * torch.finfo(expected.dtype).smallest_normal
    return torch.where(near & (actual == 0), actual, flush_subnormals(expected))


def spacing(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One ulp of ``dtype`` at the float64 magnitudes ``scale`` (subnormal spacing at least)."""
    finfo = torch.finfo(dtype)
    mant = {torch.float16: 10, torch.bfloat16: 7, torch.float32: 23, torch.float64: 52}[dtype]
    e = torch.floor(torch.log2(torch.clamp(scale.double(), min=finfo.tiny)))
    return torch.clamp(2.0 ** (e - mant), min=finfo.smallest_normal * 2.0**-mant)


def check(
    backend: Backend,
    actual: Any,
    expected: torch.Tensor,
    quantity: str,
    dtype: str,
    *,
    scale: torch.Tensor | None = None,
    what: str = "",
    plus: str | None = None,
) -> None:
    """Namespace, device, dtype, shape, then values within the table's tolerance
    (plus, if named, the tolerance of a further rounding step ``plus``)."""
    assert backend.is_native(actual), f"{what}: result left {backend.name} ({type(actual)})"
    got = backend.to_torch(actual)
    if backend.flushes_subnormals:
        expected = allow_flushed(got, expected)
    max_ulps = ulps(quantity, dtype, backend.name)
    if plus is not None:
        max_ulps += ulps(plus, dtype, backend.name)
    assert_ulp_close(got, expected, max_ulps, scale=scale, what=what)


def loss_scale(
    op: str,
    x: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
    reduction: str = "none",
) -> torch.Tensor:
    """The magnitude a loss's rounding error scales with, in float64 (the ``scale`` of
    :func:`check`): per element, the terms that are added or cancel, times |weight|;
    for ``sum`` their total and for ``mean`` their total / numel (the summation error
    of sum / n is that of the sum, divided by n).

    ``bce``: |w * l| (the two clamped log terms have one sign, nothing cancels).
    ``bcewl``: |w| (|(1 - t) x| + |log_sigmoid(x)| (1 + |(p - 1) t|)), the terms of
    ``(1 - t) x - log_sigmoid(x) * lw`` and of ``lw = 1 + (p - 1) t`` (which cancels too
    when ``p < 1``), at least that times the smallest normal (a subnormal log_sigmoid
    has that spacing)."""
    xd, td = x.double(), t.double()
    if op == "bce":
        terms = torch.nn.functional.binary_cross_entropy(xd, td, reduction="none").abs()
    else:
        lw = torch.ones_like(td)
        if pos_weight is not None:
            lw = 1.0 + ((pos_weight.double() - 1) * td).abs()
        floor = lw * torch.finfo(x.dtype).smallest_normal
        logsig = torch.nn.functional.logsigmoid(xd)
        terms = torch.maximum(((1 - td) * xd).abs() + logsig.abs() * lw, floor)
    if weight is not None:
        terms = terms * weight.double().abs()
    if reduction == "none":
        return terms
    total = terms.sum()
    return total / terms.numel() if reduction == "mean" else total
