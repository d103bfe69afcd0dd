"""Exact references for the parity sweep: torch's formulas evaluated in a wider type.

"Exact" means the value of the formula PyTorch documents and implements (the -100
clamp, the dtype's backward epsilon, ``log_sigmoid``, ``mean = sum / numel`` ...),
evaluated on the *dtype-rounded* inputs with far more precision than the dtype has:

* float16, bfloat16, float32 inputs: float64 arithmetic (NumPy) — 29 or more extra
  bits, so its own rounding is below 1e-8 ulp of the compared dtype;
* float64 inputs: x87 80-bit ``long double`` (NumPy ``longdouble``, 64-bit mantissa,
  11 extra bits: its rounding is below 1/1000 ulp). :func:`mpmath_check` verifies it
  against mpmath at 60 digits on a subsample. Where ``long double`` is no wider than
  ``double`` (MSVC, some ARM ABIs) there is no exact float64 reference and the sweep
  says so instead of reporting one.

The point is not torch parity (that column compares against torch itself) but how far
both torch and xbce are from the true value of the same formula, so that a reader can
see that xbce's distance from the truth is torch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LONGDOUBLE_OK = np.finfo(np.longdouble).nmant >= 60

#: PyTorch's backward epsilon: the float32 constant 1e-12f cast to the input dtype.
BACKWARD_EPS = {
    "float16": 0.0,
    "bfloat16": 1.0018652574217413e-12,
    "float32": 9.999999960041972e-13,
    "float64": 9.999999960041972e-13,
}


def exact_type(dtype: str) -> Any:
    """The NumPy type the exact reference of ``dtype`` is computed in (None: none)."""
    if dtype != "float64":
        return np.float64
    return np.longdouble if LONGDOUBLE_OK else None


def _ls(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)) (accurate for all x)."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _max(a: np.ndarray, b: Any) -> np.ndarray:
    """``std::max(a, b)`` as torch's kernels use it: ``a < b ? b : a`` (so -0.0 stays)."""
    return np.where(a < b, b, a)


def _reduce(v: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return v
    s = np.sum(v, axis=-1)
    return s / v.shape[-1] if reduction == "mean" else s


def quantities(
    loss: str,
    dtype: str,
    reduction: str,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    p: np.ndarray | None,
    g: np.ndarray | None,
    ftype: Any,
) -> dict[str, np.ndarray]:
    """Forward and both gradients of ``loss`` in ``ftype``, shaped like the sweep's
    results: ``(rows, cols)`` for 'none' and for every gradient, ``(rows,)`` for a
    reduced forward (each row is reduced on its own). ``g`` is the upstream gradient
    for 'none' (``None``: 1)."""
    F = ftype

    def cast(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a, dtype=np.float64).astype(F)

    x, y, w, p, g = (cast(a) for a in (x, y, w, p, g))  # type: ignore[assignment]
    one = F(1)
    # upstream gradient per element: g for 'none', 1 or 1/numel otherwise, times w
    scale = g if reduction == "none" and g is not None else np.ones_like(x)
    if reduction == "mean":
        scale = scale / F(x.shape[-1])
    if w is not None:
        scale = scale * w
    with np.errstate(all="ignore"):
        if loss == "bce":
            lo = _max(np.log1p(-x), F(-100))
            lx = _max(np.log(x), F(-100))
            el = (y - one) * lo - y * lx
            if w is not None:
                el = el * w
            eps = F(BACKWARD_EPS[dtype])
            gx = (x - y) / _max((one - x) * x, eps) * scale
            gy = -np.log(x / (one - x)) * scale
        else:
            ls = _ls(x)
            lw = one if p is None else one + (p - one) * y
            el = (one - y) * x - ls * lw
            if w is not None:
                el = el * w
            sig = one / (one + np.exp(-x))
            if p is None:
                gx = (sig - y) * scale
                gy = -x * scale
            else:
                pt = p * y
                gx = ((pt + one - y) * sig - pt) * scale
                gy = (_ls(-x) - _ls(x) * p) * scale
    return {"fwd": _reduce(el, reduction), "grad_input": gx, "grad_target": gy}


# ----------------------------------------------------------------- mpmath cross-check
def mpmath_check(x: np.ndarray, y: np.ndarray, loss: str, n: int = 400, seed: int = 0) -> float:
    """Largest distance, in float64 ulps of the value, between the ``long double``
    forward of ``loss`` and mpmath's (60 digits) on ``n`` sampled finite elements."""
    import mpmath as mp

    mp.mp.dps = 60
    rng = np.random.default_rng(seed)
    xf, yf = x.reshape(-1), y.reshape(-1)
    ok = np.isfinite(xf) & np.isfinite(yf)
    if loss == "bce":
        ok &= (xf > 0) & (xf < 1)
    idx = rng.choice(np.flatnonzero(ok), size=min(n, int(ok.sum())), replace=False)
    ld = quantities(loss, "float64", "none", xf[idx], yf[idx], None, None, None, np.longdouble)
    worst = 0.0
    for i, j in enumerate(idx):
        xv, yv = mp.mpf(float(xf[j])), mp.mpf(float(yf[j]))
        if loss == "bce":
            lo = max(mp.log1p(-xv), mp.mpf(-100))
            lx = max(mp.log(xv), mp.mpf(-100))
            ref = (yv - 1) * lo - yv * lx
            mag = abs(ref)
        else:
            ls = min(xv, 0) - mp.log1p(mp.exp(-abs(xv)))
            ref = (1 - yv) * xv - ls
            mag = abs((1 - yv) * xv) + abs(ls)  # the cancelling terms, as the sweep measures
        if mag == 0:
            continue
        ulp = max(mp.mpf(2) ** (int(mp.floor(mp.log(mag, 2))) - 52), mp.mpf(2) ** -1074)
        err = abs(mp.mpf(str(ld["fwd"][i])) - ref) / ulp
        worst = max(worst, float(err))
    return worst
