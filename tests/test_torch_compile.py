"""xbce under ``torch.compile(fullgraph=True)`` and ``torch.export``: one graph, no
graph break, no warning from xbce, torch's values and gradients.

Runs in the default torch session (``XBCE_BACKENDS=torch``), on the CPU. Every
expected value is eager ``torch.nn.functional`` on the same tensors, compared within
``tests/tolerances.py``. Most compiles use ``backend="aot_eager"`` (Dynamo and AOT
autograd, the parts xbce's code meets, without a C compiler in the loop); one case per
loss runs Inductor, the default backend. Shapes are small: compile time dominates.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from backends import BACKENDS, Backend, load, rounded
from comparisons import assert_ulp_close
from comparisons import check as _check
from grads import LOSSES, Case
from tolerances import ulps

import xbce

pytestmark = [
    pytest.mark.skipif("torch" not in BACKENDS, reason="the torch backend is not selected"),
    # torch's own: Dynamo instantiates each autograd.Function it traces, and torch warns
    # about that; Inductor's first import touches torch.jit.script_method
    pytest.mark.filterwarnings(
        "ignore:.*Function'> should not be instantiated:DeprecationWarning",
        "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning",
    ),
]

XBCE_DIR = os.path.dirname(os.path.abspath(xbce.__file__))
REDUCTIONS = ["mean", "sum", "none"]
#: (loss, weighting): every optional argument alone and together
WEIGHTINGS = [("bce", ()), ("bce", ("weight",)), ("bcewl", ()), ("bcewl", ("weight",)),
              ("bcewl", ("pos_weight",)), ("bcewl", ("weight", "pos_weight"))]


@pytest.fixture(scope="module")
def tb() -> Backend:
    return load("torch")


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    torch.compiler.reset()
    yield
    torch.compiler.reset()


def _data(op: str, weighting: tuple[str, ...], seed: int = 0) -> tuple[Any, ...]:
    """float32 CPU ``(x, y, kwargs)`` of shape (6, 5): BCE inputs include 0 and 1."""
    rng = np.random.default_rng(seed)
    shape = (6, 5)
    if op == "bce":
        x = rng.uniform(0.0, 1.0, shape)
        x.flat[:2] = [0.0, 1.0]
    else:
        x = rng.normal(0, 6, shape)
    kw: dict[str, Any] = {}
    if "weight" in weighting:
        kw["weight"] = rounded(rng.uniform(0.5, 2.0, shape[-1]), "float32")
    if "pos_weight" in weighting:
        kw["pos_weight"] = rounded(rng.uniform(0.0, 3.0, shape[-1]), "float32")
    return rounded(x, "float32"), rounded(rng.uniform(0.0, 1.0, shape), "float32"), kw


def _xbce_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """Warnings raised in xbce's files or naming them (Dynamo's lru_cache warning)."""
    return [
        f"{w.category.__name__}: {w.message}" for w in caught
        if w.filename.startswith(XBCE_DIR) or XBCE_DIR in str(w.message)
        or "_functional.py" in str(w.message) or "xbce" in str(w.message)
    ]


def _check_loss_and_grads(tb: Backend, op: str, x: torch.Tensor, y: torch.Tensor,
                          kw: dict[str, Any], reduction: str, loss: torch.Tensor,
                          grads: tuple[torch.Tensor, torch.Tensor], grad: torch.Tensor,
                          *, generated: bool = False) -> None:
    """Loss and both gradients against eager torch. ``generated``: Inductor's C++, whose
    vectorised log/exp are not torch's eager kernels: the tolerances of another library
    (the generic entries of ``tolerances.py``) apply, not torch's own."""
    if generated:
        def check(_: Backend, got: Any, want: torch.Tensor, quantity: str, dtype: str, *,
                  scale: Any = None, what: str = "") -> None:
            assert_ulp_close(got, want, ulps(quantity, dtype, "inductor"), scale=scale,
                             what=what)
    else:
        check = _check
    expected = LOSSES[op][1](x, y, reduction=reduction, **kw)
    case = Case(op, x, y, grad, reduction, weight=kw.get("weight"),
                pos_weight=kw.get("pos_weight"))
    if reduction == "none":
        quantity = op
        scale = None if op == "bce" else _bcewl_terms(x, y, kw)
    else:
        quantity = "reduced"
        terms = LOSSES[op][1](x.double(), y.double(), reduction="none",
                              **{k: v.double() for k, v in kw.items()}).abs()
        scale = terms.mean() if reduction == "mean" else terms.sum()
    check(tb, loss.detach(), expected, quantity, "float32", scale=scale, what="compiled loss")
    for got, want, q, s, name in zip(grads, case.reference(), case.quantities(), case.scales(),
                                     ("input", "target"), strict=True):
        check(tb, got, want, q, "float32", scale=s, what=f"compiled d/d{name}")


def _bcewl_terms(x: torch.Tensor, y: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
    """|(1 - t) x| + |log_sigmoid(x) (1 + (p - 1) t)| (times |weight|): the scale of
    the cancellation in one BCE-with-logits element (``bcewl`` in tolerances.py)."""
    x, t = x.double(), y.double()
    p = kw.get("pos_weight")
    lw = 1 + ((p.double() - 1) * t if p is not None else 0)
    terms = ((1 - t) * x).abs() + (torch.nn.functional.logsigmoid(x) * lw).abs()
    w = kw.get("weight")
    return terms * w.double().abs() if w is not None else terms


def _grad_output(reduction: str, like: torch.Tensor) -> torch.Tensor:
    if reduction == "none":
        return rounded(np.random.default_rng(3).uniform(-1, 1, tuple(like.shape)), "float32")
    return rounded(0.37, "float32")


# -------------------------------------------------------------- one graph, no break
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("op", "weighting"), WEIGHTINGS)
def test_no_graph_break_and_no_warning(op: str, weighting: tuple[str, ...],
                                       reduction: str) -> None:
    """``torch._dynamo.explain``: one graph, zero breaks, with and without autograd."""
    x, y, kw = _data(op, weighting)

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return LOSSES[op][0](a, b, reduction=reduction, **kw)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for a, b in ((x, y), (x.clone().requires_grad_(), y.clone().requires_grad_())):
            explained = torch._dynamo.explain(fn)(a, b)
            assert explained.graph_count == 1, explained.break_reasons
            assert explained.graph_break_count == 0, explained.break_reasons
            torch.compiler.reset()
    assert _xbce_warnings(caught) == []


# ------------------------------------------------------- fullgraph: torch's numbers
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("op", "weighting"), WEIGHTINGS)
def test_fullgraph_gives_torch_values_and_gradients(tb: Backend, op: str,
                                                    weighting: tuple[str, ...],
                                                    reduction: str) -> None:
    """Forward and backward (input and target) of a ``fullgraph=True`` compile."""
    x, y, kw = _data(op, weighting, seed=1)
    grad = _grad_output(reduction, x)

    @torch.compile(backend="aot_eager", fullgraph=True)
    def step(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return LOSSES[op][0](a, b, reduction=reduction, **kw)

    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = step(xr, yr)
    assert _xbce_warnings(caught) == []
    grads = torch.autograd.grad(loss, (xr, yr), grad)
    _check_loss_and_grads(tb, op, x, y, kw, reduction, loss, grads, grad)  # type: ignore[arg-type]
    with torch.no_grad():  # and without autograd: the same graph minus the backward
        _check(tb, step(x, y), loss.detach(), "reduced" if reduction != "none" else op,
              "float32", scale=None if reduction == "none" else loss.detach().abs(),
              what="compiled loss without autograd")


@pytest.mark.parametrize("op", ["bce", "bcewl"])
def test_inductor(tb: Backend, op: str) -> None:
    """The default backend (Inductor's generated C++), fullgraph, with weights."""
    weighting = ("weight", "pos_weight") if op == "bcewl" else ("weight",)
    x, y, kw = _data(op, weighting, seed=2)
    grad = _grad_output("mean", x)

    @torch.compile(fullgraph=True)
    def step(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return LOSSES[op][0](a, b, **kw)

    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    loss = step(xr, yr)
    grads = torch.autograd.grad(loss, (xr, yr), grad)
    _check_loss_and_grads(tb, op, x, y, kw, "mean", loss, grads, grad,  # type: ignore[arg-type]
                          generated=True)


def test_compiled_bce_makes_invalid_values_nan() -> None:
    """Compiled code does not read values: a probability or target outside [0, 1] makes
    the loss NaN instead of raising (eager xbce raises torch's error)."""
    x, y, _ = _data("bce", ())
    step = torch.compile(xbce.binary_cross_entropy, backend="aot_eager", fullgraph=True)
    for i in range(2):
        bad = [x.clone(), y.clone()]
        bad[i][0, 0] = 1.5
        assert bool(torch.isnan(step(*bad)))
        with pytest.raises(RuntimeError, match="between 0 and 1"):
            xbce.binary_cross_entropy(*bad)


def test_compiled_argument_errors_are_torchs() -> None:
    """Shape, dtype and reduction errors surface as in eager code: Dynamo traces the
    raise, falls back to eager execution, and the error is xbce's eager one (torch's
    class and message). With ``fullgraph=True`` Dynamo reports any raise as its own
    error instead."""
    x, y, _ = _data("bcewl", ())
    compiled = torch.compile(xbce.binary_cross_entropy_with_logits, backend="aot_eager")
    with pytest.raises(ValueError, match=r"Target size .* must be the same as input size"):
        compiled(x, y[:, :3])
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        compiled(x, y, reduction="avg")
    with pytest.raises(NotImplementedError, match="can't be cast to the desired output type"):
        compiled(x, y.long())


# ---------------------------------------------------------------------------- export
class _Head(torch.nn.Module):
    """A linear layer and xbce's loss, as a model's training head would be."""

    def __init__(self, logits: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(5, 3)
        self.logits = logits

    def forward(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.linear(features)
        if self.logits:
            return xbce.binary_cross_entropy_with_logits(
                out, target, pos_weight=torch.full((3,), 2.0))
        return xbce.binary_cross_entropy(torch.sigmoid(out), target, reduction="sum")


@pytest.mark.parametrize("logits", [True, False])
def test_export(tb: Backend, logits: bool) -> None:
    """``torch.export.export`` of a module whose forward calls xbce; the exported
    program runs and gives the eager module's loss."""
    head = _Head(logits)
    features = rounded(np.random.default_rng(4).normal(0, 1, (8, 5)), "float32")
    target = rounded(np.random.default_rng(5).uniform(0, 1, (8, 3)), "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program = torch.export.export(head, (features, target))
    assert _xbce_warnings(caught) == []
    got = program.module()(features, target)
    with torch.no_grad():
        out = head.linear(features)
        if logits:
            want = torch.nn.functional.binary_cross_entropy_with_logits(
                out, target, pos_weight=torch.full((3,), 2.0))
        else:
            want = torch.nn.functional.binary_cross_entropy(torch.sigmoid(out), target,
                                                            reduction="sum")
    _check(tb, got.detach(), want, "reduced", "float32", scale=want.abs(), what="exported")
