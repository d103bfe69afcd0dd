"""Print where the time of a small call goes (docs/design.md has the table).

Torch on the CPU with one thread, float32, ``reduction="mean"``, B = 64; NumPy at 1000
elements. Each row is the minimum over 15 interleaved rounds of 2000 calls, in
microseconds per call, the pieces timed alone (so they add up only roughly): torch's own
loss, the bare floor of the per-call benchmarks (``tests/benchmarks/_per_call.py``: a
hand-written ``autograd.Function`` with torch's formula and no checks), xbce, and xbce's
parts. The backward's parts are timed inside autograd's engine (grad mode off there, as
in a real backward): the same Function with a backward that does nothing, with the bare
floor's gradient formula, and with xbce's.

Usage: ``python tests/scripts/call_profile.py``; needs numpy and torch.
"""

from __future__ import annotations

import os
import sys
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import xbce
from xbce import _checks, _formulas, _numpy, _torch
from xbce._typing import Call

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "benchmarks"), os.path.join(HERE, "..")]
from _per_call import bare_floor  # noqa: E402

B = 64


def per_call(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn``, to be timed by :func:`interleaved` with the others."""
    return fn


def interleaved(rows: list[tuple[str, str, Callable[[], Any]]], number: int = 2000,
                rounds: int = 15) -> list[tuple[str, str, float]]:
    """Each row's minimum time per call over ``rounds`` rounds, in microseconds; every
    round times every row once, in turn (a noisy moment touches all rows alike)."""
    best = [float("inf")] * len(rows)
    for _, _, fn in rows:
        fn()
    for _ in range(rounds):
        for i, (_, _, fn) in enumerate(rows):
            best[i] = min(best[i], timeit.timeit(fn, number=number) / number * 1e6)
    return [(name, what, us) for (name, what, _), us in zip(rows, best, strict=True)]


def _with_backward(loss: Any, backward: Callable[..., Any]) -> Any:
    """xbce's old-style Function with another backward (timed inside the engine)."""
    base = _torch._EAGER_FUNCTIONS[loss.logits]
    return type(base.__name__, (base,), {"backward": staticmethod(backward)})


def torch_rows() -> list[tuple[str, str, Callable[[], Any]]]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(B, 1, generator=gen)
    probs = torch.rand(B, 1, generator=gen)
    target = torch.rand(B, 1, generator=gen).round()
    functional = torch.nn.functional
    return [
        *_loss_rows("BCE", probs, target, xbce.binary_cross_entropy,
                    functional.binary_cross_entropy, "probs", _formulas.BCE),
        *_loss_rows("BCE with logits", logits, target, xbce.binary_cross_entropy_with_logits,
                    functional.binary_cross_entropy_with_logits, "logits",
                    _formulas.BCE_WITH_LOGITS),
    ]


def _loss_rows(name: str, x: Any, target: Any, ours: Callable[..., Any],
               ref: Callable[..., Any], family: str, loss: Any
               ) -> list[tuple[str, str, Callable[[], Any]]]:
    leaf, floor = x.clone().requires_grad_(), bare_floor(family)
    call = Call(loss, x, target, None, None, "mean")
    floor_backward = floor.__self__.backward  # type: ignore[attr-defined]

    def nothing(ctx: Any, g: Any) -> Any:
        return (ctx.saved_tensors[0].new_zeros(()).expand(B, 1), *[None] * 6)

    def floor_grad(ctx: Any, g: Any) -> Any:
        x, t, _, _ = ctx.saved_tensors
        return floor_backward(_Saved(x, t), g)[0], *[None] * 6

    def step(f: Callable[..., Any]) -> Callable[[], None]:
        return lambda: f(leaf, target).backward()

    def apply_with(backward: Callable[..., Any]) -> Callable[[], None]:
        fn = _with_backward(loss, backward)
        return lambda: fn.apply(leaf, target, None, None, loss, "mean", False).backward()

    return [
        (name, "torch's own loss, forward", per_call(lambda: ref(x, target))),
        (name, "bare floor, forward", per_call(lambda: floor(x, target))),
        (name, "xbce, forward", per_call(lambda: ours(x, target))),
        (name, "  the argument checks (BCE: the value check included)",
         per_call(lambda: _checks.arguments(call, _torch.Torch()))),
        (name, "  the formula and the mean (`_formulas.loss`)",
         per_call(lambda: _formulas.loss(call, _torch.OPS))),
        (name, "torch's own loss, forward + backward", per_call(step(ref))),
        (name, "bare floor, forward + backward", per_call(step(floor))),
        (name, "xbce, forward + backward", per_call(step(ours))),
        (name, "  xbce's forward, recording", per_call(lambda: ours(leaf, target))),
        (name, "  xbce's Function, a backward that does nothing",
         per_call(apply_with(nothing))),
        (name, "  xbce's Function, the bare floor's backward", per_call(apply_with(floor_grad))),
        (name, "  xbce's Function, xbce's backward", per_call(apply_with(_torch._gradients))),
    ]


class _Saved:
    """A stand-in ``ctx`` for the bare floor's backward."""

    def __init__(self, *tensors: Any) -> None:
        self.saved_tensors = tensors


def numpy_rows() -> list[tuple[str, str, Callable[[], Any]]]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.95, 1000).astype(np.float32)
    y = rng.uniform(0.0, 1.0, 1000).astype(np.float32)
    backend = _numpy.backend()
    call = Call(_formulas.BCE, x, y, None, None, "mean")

    def hand() -> Any:
        with np.errstate(divide="ignore"):
            return np.mean((y - 1) * np.maximum(np.log1p(-x), -100)
                           - y * np.maximum(np.log(x), -100))

    name = "NumPy BCE, 1000 elements"
    return [
        (name, "the hand-written NumPy formula", per_call(hand)),
        (name, "xbce", per_call(lambda: xbce.binary_cross_entropy(x, y))),
        (name, "  the argument checks (the value check included)",
         per_call(lambda: _checks.arguments(call, backend))),
        (name, "  the formula and the mean", per_call(lambda: _formulas.loss(call, backend.ops))),
    ]


def main() -> None:
    torch.set_num_threads(1)
    print("| call | piece | us |\n|---|---|---:|")
    for name, what, us in interleaved(torch_rows() + numpy_rows()):
        print(f"| {name} | {what} | {us:.1f} |")


if __name__ == "__main__":
    main()
