"""Per-call cost on torch CPU at training batch sizes, one thread: what ``--per-call`` times.

Two kinds of case, each timed interleaved like every other case (``_timing.py``):

* **Against the bare floor** (float32, ``mean``, B = 64 and 1024): xbce and
  ``torch.nn.functional`` against a hand-written ``torch.autograd.Function`` with no
  checks at all, whose forward is torch's formula in torch ops (probabilities:
  ``(y-1)*log1p(-x).clamp_min(-100) - y*log(x).clamp_min(-100)``; logits:
  ``(1-y)*x - logsigmoid(x)``; then ``.mean()``) and whose backward is torch's
  derivative formula for the input (``grad*(x-y)/((1-x)*x).clamp_min(1e-12)/numel``;
  logits: ``(sigmoid(x)-y)*grad/numel``; the target gets no gradient). ``fwd`` is
  ``f(x, y)`` on plain tensors, ``fwdbwd`` is ``f(x, y).backward()`` with only ``x``
  requiring grad.
* **An MLP training step** (mode ``step``): a 64-256-256-1 MLP (Linear-ReLU-Linear-
  ReLU-Linear), SGD with lr 0.01, one fixed float32 batch of B = 64; a step is
  ``zero_grad``, forward, loss, backward, ``optimizer.step()``. The loss is xbce's or
  ``F``'s ``binary_cross_entropy_with_logits(logits, y)`` (family ``logits``), or
  ``binary_cross_entropy(sigmoid(logits), y)`` (family ``probs``). Each competitor
  trains its own copy of one initial model on the same batch, so their first steps
  (the warm-up, used for the sanity check) compute the same loss.

The caller sets torch to one thread around these cases (``run.py``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from functools import partial
from typing import Any

from _competitors import EPS, Competitor, Data, Libs, autograd_call, torch_losses
from _data import SEED

import xbce

#: the batch sizes of the bare-floor cases
SIZES = (64, 1024)
#: the MLP: layer widths, batch, SGD learning rate
MLP_WIDTHS = (64, 256, 256, 1)
MLP_BATCH = 64
MLP_LR = 0.01
#: the MLP targets' stretch goal (their threshold is 1.10)
MLP_STRETCH = 1.05

_REF = {"probs": "F.binary_cross_entropy", "logits": "F.binary_cross_entropy_with_logits"}

#: (description, family, n, reduction, mode, numerator, denominator, threshold): the
#: layout of ``run.CALL_TARGETS``; ids follow the earlier targets' (T39 on)
TARGETS: list[tuple[str, str, int, str, str, str, str, float]] = [
    *(
        (
            f"per call at B={n}, 1 thread: xbce {name}torch / bare floor, {what}, mean",
            family,
            n,
            "mean",
            mode,
            "torch:xbce" + suffix,
            "torch:bare floor" + suffix,
            limit,
        )
        for n in SIZES
        for mode, what, suffix, limit in (
            ("fwdbwd", "fwd+bwd (autograd)", " (autograd)", 1.20),
            ("fwd", "forward", "", 1.30),
        )
        for family, name in (("probs", ""), ("logits", "logits "))
    ),
    *(
        (
            f"MLP {'-'.join(map(str, MLP_WIDTHS))} SGD step at B={MLP_BATCH}, 1 thread: "
            f"{ours} / {theirs} (stretch {MLP_STRETCH:g})",
            family,
            MLP_BATCH,
            "mean",
            "step",
            f"torch:{ours} step",
            f"torch:{theirs} step",
            1.10,
        )
        for family, ours, theirs in (
            ("logits", "xbce logits", "F.bce_with_logits"),
            ("probs", "xbce(sigmoid)", "F.bce(sigmoid)"),
        )
    ),
]


# ----------------------------------------------------------------------- bare floor
_FLOORS: dict[str, Callable[..., Any]] = {}


def bare_floor(family: str) -> Callable[..., Any]:
    """The family's bare floor, ``f(x, y)``: an ``autograd.Function``'s ``apply``."""
    if family not in _FLOORS:
        _FLOORS.update(_make_floors())
    return _FLOORS[family]


def _make_floors() -> dict[str, Callable[..., Any]]:
    import torch

    class BareBCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, y: Any) -> Any:
            ctx.save_for_backward(x, y)
            return (
                (y - 1) * torch.log1p(-x).clamp_min(-100) - y * torch.log(x).clamp_min(-100)
            ).mean()

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            x, y = ctx.saved_tensors
            return grad * (x - y) / ((1 - x) * x).clamp_min(EPS) / x.numel(), None

    class BareBCEWithLogits(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, y: Any) -> Any:
            ctx.save_for_backward(x, y)
            return ((1 - y) * x - torch.nn.functional.logsigmoid(x)).mean()

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            x, y = ctx.saved_tensors
            return (torch.sigmoid(x) - y) * grad / x.numel(), None

    return {"probs": BareBCE.apply, "logits": BareBCEWithLogits.apply}


def build_floor_case(data: Data, family: str, mode: str) -> list[Competitor]:
    """``F`` (the reference), xbce and the bare floor (the torch baseline): mean."""
    ours, theirs, inp, leaf, _ = torch_losses(data, family)
    t = data.torch
    floor, y = bare_floor(family), t["y"]
    if mode == "fwd":
        return [
            Competitor("torch", _REF[family], partial(theirs, inp, y), "ref"),
            Competitor("torch", "xbce", partial(ours, inp, y)),
            Competitor("torch", "bare floor", partial(floor, inp, y), "base"),
        ]
    return [
        Competitor("torch", _REF[family] + " (autograd)", autograd_call(theirs, leaf, y), "ref"),
        Competitor("torch", "xbce (autograd)", autograd_call(ours, leaf, y)),
        Competitor("torch", "bare floor (autograd)", autograd_call(floor, leaf, y), "base"),
    ]


# ------------------------------------------------------------------------ MLP step
def build_mlp_step(libs: Libs, family: str) -> list[Competitor]:
    """One SGD step of the MLP with ``F``'s loss (the reference) and with xbce's."""
    torch = libs.torch
    import torch.nn.functional as tF

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        layers: list[Any] = []
        for a, b in itertools.pairwise(MLP_WIDTHS):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])  # no ReLU after the last layer
        xb = torch.randn(MLP_BATCH, MLP_WIDTHS[0])
        # learnable labels (a random hyperplane), so that training stays tame
        yb = (xb @ torch.randn(MLP_WIDTHS[0], 1) > 0).to(torch.float32)

    if family == "logits":
        pairs = [
            ("F.bce_with_logits step", tF.binary_cross_entropy_with_logits),
            ("xbce logits step", xbce.binary_cross_entropy_with_logits),
        ]
    else:

        def on_sigmoid(fn: Callable[..., Any]) -> Callable[..., Any]:
            def loss(logits: Any, y: Any) -> Any:
                return fn(torch.sigmoid(logits), y)

            return loss

        pairs = [
            ("F.bce(sigmoid) step", on_sigmoid(tF.binary_cross_entropy)),
            ("xbce(sigmoid) step", on_sigmoid(xbce.binary_cross_entropy)),
        ]

    def make(loss_fn: Callable[..., Any]) -> Callable[[], Any]:
        net = copy.deepcopy(model)
        opt = torch.optim.SGD(net.parameters(), lr=MLP_LR)

        def step() -> Any:
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    (ref_name, ref_fn), (our_name, our_fn) = pairs
    return [
        Competitor("torch", ref_name, make(ref_fn), "ref"),
        Competitor("torch", our_name, make(our_fn)),
    ]
