"""Distances between results, in ulps of the compared dtype (NumPy, any float type).

The conventions are ``tests/comparisons.py``'s (``assert_ulp_close``, ``spacing``): an
error is ``|actual - expected| / spacing(max(|expected|, scale))``, where ``spacing``
is one ulp of the dtype at that magnitude (at least the smallest subnormal); NaN must
meet NaN and an infinity the same infinity, otherwise the error is infinite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: (explicit mantissa bits, smallest normal, smallest subnormal)
FORMATS = {
    "float16": (10, 2.0**-14, 2.0**-24),
    "bfloat16": (7, 2.0**-126, 2.0**-133),
    "float32": (23, 2.0**-126, 2.0**-149),
    "float64": (52, 2.0**-1022, 2.0**-1074),
}


def spacing(mag: np.ndarray, dtype: str) -> np.ndarray:
    """One ulp of ``dtype`` at the magnitudes ``mag`` (``comparisons.spacing``)."""
    mant, tiny, sub = FORMATS[dtype]
    m = np.maximum(mag, mag.dtype.type(tiny))
    _, e = np.frexp(m)  # m = f * 2**e, 0.5 <= f < 1: floor(log2(m)) = e - 1
    return np.maximum(np.ldexp(np.ones_like(m), e - 1 - mant), mag.dtype.type(sub))


def ulp_errors(
    actual: np.ndarray,
    expected: np.ndarray,
    dtype: str,
    scale: np.ndarray | None = None,
    *,
    flushed: bool = False,
    rounded_expected: np.ndarray | None = None,
) -> np.ndarray:
    """Per-element errors in ulps of ``dtype`` (0 where identical, inf on a special
    mismatch). ``expected`` may be wider than ``actual`` (the exact reference); then
    ``rounded_expected`` (its value in ``dtype``) lets an overflow to the right infinity
    count as exact. ``flushed``: a 0 where ``|expected|`` is below 2 smallest normals
    is accepted (XLA's flush-to-zero, ``comparisons.allow_flushed``)."""
    F = np.result_type(expected.dtype, np.float64)
    a = actual.astype(F)
    e = expected.astype(F)
    a, e = np.broadcast_arrays(a, e)
    err = np.zeros(a.shape, dtype=np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    inf_any = np.isinf(a) | np.isinf(e)
    with np.errstate(invalid="ignore"):
        err[nan_a != nan_e] = np.inf
        err[inf_any & ~nan_a & ~nan_e & (a != e)] = np.inf
    if rounded_expected is not None:
        r = np.broadcast_to(rounded_expected.astype(F), a.shape)
        err[np.isinf(a) & (a == r)] = 0.0
    rest = ~(nan_a | nan_e | inf_any)
    mag = np.abs(e[rest])
    if scale is not None:
        mag = np.maximum(mag, np.abs(np.broadcast_to(scale.astype(F), a.shape)[rest]))
    err[rest] = (np.abs(a[rest] - e[rest]) / spacing(mag, dtype)).astype(np.float64)
    if flushed and dtype != "float16":
        near = (a == 0) & (np.abs(e) < 2 * FORMATS[dtype][1])
        err[near] = 0.0
    return err


def identical(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Bit-identical (after exact widening to float64): equal with equal sign, or both NaN."""
    a, e = np.broadcast_arrays(actual, expected)
    same = (a == e) & (np.signbit(a) == np.signbit(e))
    return same | (np.isnan(a) & np.isnan(e))


@dataclass
class Worst:
    """The largest error and where it occurred (a flat index into the result)."""

    ulps: float
    index: int

    @classmethod
    def of(cls, err: np.ndarray) -> Worst:
        if err.size == 0:
            return cls(0.0, -1)
        i = int(np.argmax(err))
        return cls(float(err.reshape(-1)[i]), i)


def fmt_ulps(u: float | None) -> str:
    """A ulp count for tables: 0, 0.49, 3, 1.2e+06, inf; '—' when not measured."""
    if u is None:
        return "—"
    if not np.isfinite(u):
        return "inf"
    if u == 0:
        return "0"
    if u < 10:
        return f"{u:.2g}"
    if u < 1e5:
        return f"{u:.0f}"
    return f"{u:.1e}"


def as_float(v: Any) -> float | str:
    """A JSON-safe float (inf/NaN as strings)."""
    f = float(v)
    return f if np.isfinite(f) else repr(f)
