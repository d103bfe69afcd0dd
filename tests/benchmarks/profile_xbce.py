"""Where xbce's time goes: a cProfile of the public call and an op-by-op breakdown.

Usage (from the repository root)::

    python tests/benchmarks/profile_xbce.py [--n 1e7] [--dtype float32] [--threads 2]

1. ``cProfile`` of ``xbce.binary_cross_entropy`` (and ``..._with_logits``) on NumPy
   arrays and torch tensors, reduction ``mean`` and ``none``: the functions with the
   most own time (xbce's own modules and the array-library calls they make).
2. The cost of each full-array operation of the formula, timed one by one
   (``min``/``max`` validation passes, ``log``, ``log1p``, ``maximum``, products, the
   sum), in NumPy and torch: what an unfused, unblocked evaluation would pay, and
   the floor that a fused or blocked one can approach.
3. torch with 1 intra-op thread vs ``--threads``: a formula evaluated as many small
   ops (each a parallel region) suffers when the machine is oversubscribed.

Only the public API is used, so this keeps working while xbce's internals change.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _data import make_numpy

import xbce


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def _profile(label: str, fn: Callable[[], Any], top: int) -> None:
    fn()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(3):
        fn()
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s).strip_dirs().sort_stats("tottime")
    st.print_stats(top)
    lines = [ln for ln in s.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if "ncalls" in ln)
    total = next((ln for ln in lines if "function calls" in ln), "")
    print(f"\n--- cProfile: {label} (3 calls; {total.strip()})")
    print("\n".join(lines[start : start + top + 1]))


def _ops_numpy(a: dict[str, np.ndarray], repeats: int) -> list[tuple[str, float]]:
    p, y, x = a["p"], a["y"], a["x"]
    lp = np.log(p)
    l1 = np.log1p(-p)
    ops: list[tuple[str, Callable[[], Any]]] = [
        (
            "min(p), max(p), min(y), max(y) (validation)",
            lambda: (p.min(), p.max(), y.min(), y.max()),
        ),
        ("-p", lambda: -p),
        ("log1p(-p) (incl. -p)", lambda: np.log1p(-p)),
        ("log(p)", lambda: np.log(p)),
        ("maximum(log, -100)", lambda: np.maximum(lp, -100)),
        ("y - 1", lambda: y - 1),
        ("(y - 1) * log1p", lambda: (y - 1) * l1),
        ("y * log", lambda: y * lp),
        ("a - b", lambda: lp - l1),
        ("sum", lambda: np.sum(lp)),
        (
            "whole formula, unfused",
            lambda: np.sum(
                (y - 1) * np.maximum(np.log1p(-p), -100) - y * np.maximum(np.log(p), -100)
            ),
        ),
        ("logits: exp(-|x|)", lambda: np.exp(-np.abs(x))),
        ("logits: log1p(exp(-|x|))", lambda: np.log1p(np.exp(-np.abs(x)))),
        (
            "logits: whole formula, unfused",
            lambda: np.sum((1 - y) * x - (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x))))),
        ),
    ]
    return [(name, _median_ms(f, repeats)) for name, f in ops]


def _ops_torch(torch: Any, a: dict[str, np.ndarray], repeats: int) -> list[tuple[str, float]]:
    p, y, x = (torch.from_numpy(a[k]) for k in ("p", "y", "x"))
    lp = torch.log(p)
    l1 = torch.log1p(-p)
    F = torch.nn.functional
    ops: list[tuple[str, Callable[[], Any]]] = [
        (
            "min(p), max(p), min(y), max(y) (validation)",
            lambda: bool((p.min() >= 0) & (p.max() <= 1) & (y.min() >= 0) & (y.max() <= 1)),
        ),
        ("aminmax(p), aminmax(y) (one pass each)", lambda: (torch.aminmax(p), torch.aminmax(y))),
        ("-p", lambda: -p),
        ("log1p(-p) (incl. -p)", lambda: torch.log1p(-p)),
        ("log(p)", lambda: torch.log(p)),
        ("clamp_min(log, -100)", lambda: torch.clamp_min(lp, -100)),
        ("y - 1", lambda: y - 1),
        ("(y - 1) * log1p", lambda: (y - 1) * l1),
        ("y * log", lambda: y * lp),
        ("a - b", lambda: lp - l1),
        ("sum", lambda: torch.sum(lp)),
        (
            "whole formula, unfused",
            lambda: torch.sum(
                (y - 1) * torch.clamp_min(torch.log1p(-p), -100)
                - y * torch.clamp_min(torch.log(p), -100)
            ),
        ),
        ("F.binary_cross_entropy (for scale)", lambda: F.binary_cross_entropy(p, y)),
        ("logits: F.logsigmoid(x)", lambda: F.logsigmoid(x)),
        ("logits: whole formula, unfused", lambda: torch.sum((1 - y) * x - F.logsigmoid(x))),
        (
            "F.binary_cross_entropy_with_logits (for scale)",
            lambda: F.binary_cross_entropy_with_logits(x, y),
        ),
    ]
    return [(name, _median_ms(f, repeats)) for name, f in ops]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=lambda s: int(float(s)), default=10**7)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top", type=int, default=12, help="cProfile rows")
    args = ap.parse_args()
    a = make_numpy(args.n, args.dtype)
    p, y, x = a["p"], a["y"], a["x"]
    print(f"n={args.n:.0e} {args.dtype}; medians of {args.repeats} calls, ms")

    print("\n=== NumPy: public calls")
    for red in ("mean", "none"):
        t = _median_ms(lambda r=red: xbce.binary_cross_entropy(p, y, reduction=r), args.repeats)
        tl = _median_ms(
            lambda r=red: xbce.binary_cross_entropy_with_logits(x, y, reduction=r), args.repeats
        )
        print(f"  xbce.binary_cross_entropy {red:4}: {t:8.1f}   with_logits: {tl:8.1f}")
    g = np.asarray(1.0, p.dtype)
    print(
        f"  xbce.binary_cross_entropy_backward mean: "
        f"{_median_ms(lambda: xbce.binary_cross_entropy_backward(g, p, y), args.repeats):8.1f}"
    )
    print("\n=== NumPy: one full-array op at a time")
    for name, ms in _ops_numpy(a, args.repeats):
        print(f"  {name:48} {ms:8.1f}")
    _profile("NumPy binary_cross_entropy mean", lambda: xbce.binary_cross_entropy(p, y), args.top)
    _profile(
        "NumPy binary_cross_entropy none",
        lambda: xbce.binary_cross_entropy(p, y, reduction="none"),
        args.top,
    )

    try:
        import torch
    except ImportError:
        return
    for threads in sorted({1, args.threads}):
        _torch_section(torch, threads, a, args)


def _torch_section(torch: Any, threads: int, a: dict[str, np.ndarray], args: Any) -> None:
    torch.set_num_threads(threads)
    tp, ty, tx = (torch.from_numpy(a[k]) for k in ("p", "y", "x"))
    F = torch.nn.functional
    reps = args.repeats
    print(f"\n=== torch ({threads} thread(s)): public calls")
    for red in ("mean", "none"):
        t = _median_ms(lambda r=red: xbce.binary_cross_entropy(tp, ty, reduction=r), reps)
        f = _median_ms(lambda r=red: F.binary_cross_entropy(tp, ty, reduction=r), reps)
        tl = _median_ms(
            lambda r=red: xbce.binary_cross_entropy_with_logits(tx, ty, reduction=r), reps
        )
        fl = _median_ms(
            lambda r=red: F.binary_cross_entropy_with_logits(tx, ty, reduction=r), reps
        )
        print(f"  {red:4}: xbce {t:8.1f}  F {f:8.1f}  | logits: xbce {tl:8.1f}  F {fl:8.1f}")
    leaf = torch.from_numpy(a["p"]).requires_grad_(True)

    def fb(fn: Callable[..., Any]) -> Callable[[], Any]:
        def run() -> None:
            leaf.grad = None
            fn(leaf, ty).backward()

        return run

    ours = _median_ms(fb(xbce.binary_cross_entropy), reps)
    theirs = _median_ms(fb(F.binary_cross_entropy), reps)
    print(f"  fwd+bwd mean (autograd): xbce {ours:8.1f}  F {theirs:8.1f}")
    print(f"\n=== torch ({threads} thread(s)): one full-array op at a time")
    for name, ms in _ops_torch(torch, a, reps):
        print(f"  {name:48} {ms:8.1f}")
    if threads == args.threads:
        label = f"({threads} threads)"
        _profile(
            f"torch binary_cross_entropy mean {label}",
            lambda: xbce.binary_cross_entropy(tp, ty),
            args.top,
        )
        _profile(f"torch fwd+bwd mean {label}", fb(xbce.binary_cross_entropy), args.top)


if __name__ == "__main__":
    main()
