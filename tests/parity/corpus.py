"""The inputs of the parity sweep: the edge tables of ``tests/cases.py`` plus a seeded
random corpus, as float64 NumPy arrays of shape ``(rows, cols)``.

Row 0 starts with the edge table of the loss (the rest of the row is random). For the
logits loss, row 1 holds the infinities and signed zeros (``cases.logits(extreme=True)``
puts a quarter of its values there), so that only rows 0 and 1 can reduce to NaN or inf
and the other rows give finite ``mean``/``sum`` values worth comparing. ``weight`` and
``pos_weight`` have shape ``(cols,)`` and broadcast along the last axis; the first
entries of ``pos_weight`` are the per-row pos_weights of the logits edge table (0, -1,
3, ...). ``grad`` is the upstream gradient used with ``reduction='none'``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cases import BCE_EDGES, LOGIT_EDGES, logits, probabilities, targets


@dataclass(frozen=True)
class Corpus:
    loss: str  # "bce" or "bcewl"
    x: np.ndarray  # probabilities or logits, (rows, cols)
    y: np.ndarray  # targets, (rows, cols)
    weight: np.ndarray  # (cols,)
    pos_weight: np.ndarray  # (cols,), used by the logits loss only
    grad: np.ndarray  # (rows, cols), upstream gradient for reduction="none"
    n_edges: int
    seed: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.x.shape[0]), int(self.x.shape[1]))


def _mixed_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Half hard {0, 1} targets, half soft ones (with some exact 0 and 1), shuffled."""
    half = n // 2
    y = np.concatenate([targets(rng, half, soft=False), targets(rng, n - half, soft=True)])
    return rng.permutation(y)


def _grad(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Upstream gradients of magnitude [0.5, 2) and either sign (``tests/test_gradients``)."""
    return rng.uniform(0.5, 2.0, (rows, cols)) * rng.choice([-1.0, 1.0], (rows, cols))


def bce_corpus(rows: int, cols: int, seed: int) -> Corpus:
    """Probabilities: uniform, near 0, near 1, exact 0/1, 0.1 steps, subnormal."""
    rng = np.random.default_rng([seed, 1])
    n = rows * cols
    ex, ey = (np.asarray(c, dtype=np.float64) for c in zip(*BCE_EDGES, strict=True))
    k = len(ex)
    x = np.concatenate([ex, probabilities(rng, n - k, subnormal=True)])
    y = np.concatenate([ey, _mixed_targets(rng, n - k)])
    return Corpus(
        loss="bce",
        x=x.reshape(rows, cols),
        y=y.reshape(rows, cols),
        weight=rng.uniform(0.0, 3.0, cols),
        pos_weight=np.ones(cols),
        grad=_grad(rng, rows, cols),
        n_edges=k,
        seed=seed,
    )


def bcewl_corpus(rows: int, cols: int, seed: int) -> Corpus:
    """Logits: N(0, 5^2), |x| up to 1e4, uniform(-30, 30); +-inf and +-0 in row 1."""
    rng = np.random.default_rng([seed, 2])
    n = rows * cols
    ex, et, ep = (np.asarray(c, dtype=np.float64) for c in zip(*LOGIT_EDGES, strict=True))
    k = len(ex)
    row1 = logits(rng, cols, extreme=True)
    rest = logits(rng, n - cols - k, extreme=False)
    x = np.concatenate([ex, rest[: cols - k], row1, rest[cols - k :]])
    y = np.concatenate([et, _mixed_targets(rng, n - k)])
    pos_weight = rng.uniform(0.0, 5.0, cols)
    pos_weight[:k] = ep
    return Corpus(
        loss="bcewl",
        x=x.reshape(rows, cols),
        y=y.reshape(rows, cols),
        weight=rng.uniform(0.0, 3.0, cols),
        pos_weight=pos_weight,
        grad=_grad(rng, rows, cols),
        n_edges=k,
        seed=seed,
    )


def corpus(loss: str, rows: int, cols: int, seed: int) -> Corpus:
    if rows < 2 or cols < max(len(BCE_EDGES), len(LOGIT_EDGES)):
        raise ValueError(f"corpus of {rows}x{cols} is too small for the edge tables")
    return (bce_corpus if loss == "bce" else bcewl_corpus)(rows, cols, seed)
