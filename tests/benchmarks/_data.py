"""Benchmark inputs, generated in place (no full-size temporaries).

Probabilities lie in [0.001, 0.999), targets are hard 0/1 labels, logits are
``3 * N(0, 1)``. Everything is written into preallocated arrays so that the memory
benchmark's child processes start from "inputs allocated, nothing else": a
temporary here would raise the RSS high-water mark before the call is measured.
"""

from __future__ import annotations

import numpy as np

SEED = 20240601


def make_numpy(n: int, dtype: str, *, logits: bool = True) -> dict[str, np.ndarray]:
    """``p`` (probabilities), ``y`` (0/1 targets) and, if asked, ``x`` (logits)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(SEED)
    p = np.empty(n, dt)
    rng.random(out=p, dtype=dt)
    p *= 0.998
    p += 0.001
    y = np.empty(n, dt)
    rng.random(out=y, dtype=dt)
    np.rint(y, out=y)
    out = {"p": p, "y": y}
    if logits:
        x = np.empty(n, dt)
        rng.standard_normal(out=x, dtype=dt)
        x *= 3
        out["x"] = x
    return out
