"""Interleaved timing of one case's competitors.

Each *round* times every competitor once, in an order rotated by one position per
round (so no competitor always runs first, or right after the same one); a *sample*
is ``inner`` back-to-back calls (``inner`` is chosen so a sample lasts at least
``MIN_SAMPLE`` seconds; 1 for large arrays) with the garbage collector off, each
call timed on its own; the sample is the median call. (On a shared machine a
multi-threaded call sometimes stalls for a scheduler time slice, milliseconds, when
one of its threads is descheduled; a median per sample keeps such stalls, rare
events, from dominating microsecond-scale calls.) Results are discarded inside the
timed region, so freeing the output is part of every competitor's cost. Rounds
continue until ``max_rounds``, or until at least ``min_rounds`` have run and the
case's time budget is spent, or (at least 2 rounds run) when another round would
pass ``cap_s``: a safety net for pathologically slow calls on a loaded machine.
Medians over rounds are reported; since rounds are paired, the median of the
per-round ratios is kept too (it is robust to load drifting during a case).
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from _competitors import Competitor

MIN_SAMPLE = 0.005  # seconds


@dataclass
class Timed:
    comp: Competitor
    inner: int = 1
    samples: list[float] = field(default_factory=list)  # seconds per call, one per round
    result: Any = None
    first_call_s: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan


def _sample(fn: Any, inner: int) -> float:
    gc_was = gc.isenabled()
    gc.disable()
    try:
        if inner == 1:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        calls = []
        for _ in range(inner):
            t0 = time.perf_counter()
            fn()
            calls.append(time.perf_counter() - t0)
        return statistics.median(calls)
    finally:
        if gc_was:
            gc.enable()


def time_case(
    comps: list[Competitor],
    *,
    min_rounds: int,
    max_rounds: int,
    budget_s: float,
    cap_s: float = math.inf,
    warm_all: bool,
) -> list[Timed]:
    """Warm up, then run interleaved rounds; returns one ``Timed`` per competitor."""
    timed = [Timed(c) for c in comps]
    for t in timed:
        # JAX compiles per shape: always warm it up. Others only where it is cheap
        # (their first call costs nothing special; for large n we save a round).
        if warm_all or t.comp.backend == "jax":
            t0 = time.perf_counter()
            t.result = t.comp.fn()
            t.first_call_s = time.perf_counter() - t0
            est = _sample(t.comp.fn, 1)
            t.inner = max(1, math.ceil(MIN_SAMPLE / max(est, 1e-9))) if warm_all else 1
    start = time.perf_counter()
    r = 0
    while r < max_rounds:
        k = r % len(timed)
        for t in timed[k:] + timed[:k]:
            if t.comp.max_repeats is not None and len(t.samples) >= t.comp.max_repeats:
                continue
            t.samples.append(_sample(t.comp.fn, t.inner))
        gc.collect()
        r += 1
        elapsed = time.perf_counter() - start
        if r >= min_rounds and elapsed * (r + 1) / r > budget_s:
            break
        if r >= 2 and elapsed * (r + 1) / r > cap_s:  # pathologically slow: stop early
            break
    return timed


def paired_ratio(a: Timed, b: Timed) -> float:
    """Median over the rounds both took part in of ``a``'s time over ``b``'s."""
    m = min(len(a.samples), len(b.samples))
    if m == 0:
        return math.nan
    return statistics.median(x / y for x, y in zip(a.samples[:m], b.samples[:m], strict=True))
