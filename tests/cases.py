"""Inputs for the parity tests and the parity sweep: edge tables and seeded corpora.

Everything here is plain float64 NumPy data; the tests round it to the dtype under
test once (``backends.rounded``) and compute the expected values with torch. No
expected value is stored here.
"""

from __future__ import annotations

import numpy as np

TINY32 = float(np.finfo(np.float32).smallest_subnormal)  # 1.4e-45

#: (x, y) pairs of the reference's BCE edge table (§9.1) and around it.
BCE_EDGES: list[tuple[float, float]] = [
    (0.0, 1.0), (0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.5), (0.5, 0.5), (1.0, 0.5),
    (TINY32, 0.0), (TINY32, 1.0), (4e-44, 1.0), (3.6e-44, 1.0), (1e-40, 1.0), (1e-38, 1.0),
    (1e-7, 1.0), (1e-7, 0.0), (1 - 1e-7, 0.0), (1 - 1e-7, 1.0), (1 - 1e-7, 0.5),
    (0.3, 0.7), (0.5, 0.0), (0.5, 1.0), (6e-8, 1.0), (6e-8, 0.0), (1e-300, 1.0),
    (1 - 1e-16, 0.0), (0.9999, 1.0), (-0.0, 0.0), (-0.0, 1.0), (0.2, 0.0), (0.7, 1.0),
]

#: (logit, target, pos_weight) triples of the reference's logits table (§9.3) and more.
LOGIT_EDGES: list[tuple[float, float, float]] = [
    (0.0, 0.0, 1.0), (0.0, 1.0, 3.0), (-20.0, 0.0, 1.0), (20.0, 1.0, 1.0), (1e4, 0.0, 1.0),
    (1e4, 1.0, 1.0), (-1e4, 1.0, 1.0), (-1e4, 1.0, 3.0), (100.0, 1.0, 1.0), (np.inf, 0.0, 1.0),
    (np.inf, 1.0, 1.0), (-np.inf, 0.0, 1.0), (-np.inf, 1.0, 1.0), (np.nan, 0.0, 1.0),
    (0.3, 2.0, 1.0), (1.5, 1.0, 1.0), (1e5, 0.0, 1.0), (0.3, 0.7, 1.0), (-17.0, 0.0, 1.0),
    (17.0, 1.0, 1.0), (0.0, 1.0, 0.0), (0.0, 1.0, -1.0), (-30.0, 0.0, 2.0), (5.0, -1.0, 1.0),
    (0.0, np.nan, 1.0), (1e-30, 0.5, 1.0), (-1e-30, 0.5, 0.5), (88.0, 0.0, 1.0), (-88.0, 1.0, 1.0),
]


def probabilities(rng: np.random.Generator, n: int, *, subnormal: bool = True) -> np.ndarray:
    """Probabilities: uniform, near 0, near 1, exact 0 and 1, (optionally) subnormal."""
    k = n // 6
    parts = [
        rng.uniform(0.0, 1.0, n - 5 * k),
        10.0 ** rng.uniform(-37, -1, k),                # near 0 (normal in float32)
        1.0 - 10.0 ** rng.uniform(-17, -1, k),          # near 1 (rounds to 1 sometimes)
        rng.choice([0.0, 1.0], k),
        rng.uniform(0.0, 1.0, k).round(1),              # 0.1 steps, many ties with targets
        (10.0 ** rng.uniform(-45, -38, k)) if subnormal else rng.uniform(0.0, 1.0, k),
    ]
    return rng.permutation(np.concatenate(parts))


def targets(rng: np.random.Generator, n: int, *, soft: bool) -> np.ndarray:
    """Hard {0, 1} targets, or soft targets in [0, 1] with some exact 0 and 1."""
    if not soft:
        return rng.integers(0, 2, n).astype(np.float64)
    y = rng.uniform(0.0, 1.0, n)
    y[rng.random(n) < 0.1] = 0.0
    y[rng.random(n) < 0.1] = 1.0
    return y


def logits(rng: np.random.Generator, n: int, *, extreme: bool = True) -> np.ndarray:
    """Logits: N(0, 5^2), large magnitudes up to 1e4, and (optionally) +-inf."""
    k = n // 4
    big = 10.0 ** rng.uniform(0, 4, k) * rng.choice([-1.0, 1.0], k)
    parts = [rng.normal(0.0, 5.0, n - 3 * k), big, rng.uniform(-30, 30, k),
             rng.choice([-np.inf, np.inf, 0.0, -0.0], k) if extreme else rng.normal(0, 1, k)]
    return rng.permutation(np.concatenate(parts))
