"""torch's signatures: parameter names, order, defaults; legacy size_average/reduce.

Positional calls must mean what they mean in torch (the 4th positional argument is
``size_average``), and the legacy arguments must give torch's reduction, warning text
and warning category, attributed to the caller's line.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
import torch.nn.functional as TF
from backends import Backend, rounded
from comparisons import check

import xbce
import xbce.torch

PAIRS = {
    "binary_cross_entropy": (xbce.binary_cross_entropy, TF.binary_cross_entropy),
    "binary_cross_entropy_with_logits": (
        xbce.binary_cross_entropy_with_logits,
        TF.binary_cross_entropy_with_logits,
    ),
    "xbce.torch.BCELoss": (xbce.torch.BCELoss, torch.nn.BCELoss),
    "xbce.torch.BCEWithLogitsLoss": (xbce.torch.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss),
    "xbce.BCELoss": (xbce.BCELoss, torch.nn.BCELoss),
    "xbce.BCEWithLogitsLoss": (xbce.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss),
}


def _parameters(fn: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", PAIRS)
def test_signature_is_torchs(name: str) -> None:
    ours, theirs = PAIRS[name]
    assert _parameters(ours) == _parameters(theirs)


LEGACY = [(s, r) for s in (None, True, False) for r in (None, True, False)]


def _call_recording(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [(str(w.message), w.category, w.filename) for w in caught]


@pytest.mark.parametrize(("size_average", "reduce"), LEGACY)
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("positional", [False, True])
def test_legacy_arguments_as_torch(
    backend: Backend, name: str, size_average, reduce, positional: bool  # type: ignore[no-untyped-def]
) -> None:
    ours, theirs = PAIRS[name]
    xt = rounded([0.2, 0.7, 0.9], "float32")
    yt = rounded([0.0, 1.0, 1.0], "float32")
    wt = rounded([1.0, 2.0, 3.0], "float32")
    if positional:  # torch's order: weight, size_average, reduce, reduction
        args, kwargs = (wt, size_average, reduce, "sum"), {}
    else:
        args, kwargs = (), {"weight": wt, "size_average": size_average, "reduce": reduce,
                            "reduction": "sum"}
    expected, expected_warnings = _call_recording(theirs, xt, yt, *args, **kwargs)
    x, y = backend.asarray(xt, "float32"), backend.asarray(yt, "float32")
    bargs = tuple(backend.asarray(a, "float32") if isinstance(a, torch.Tensor) else a
                  for a in args)
    bkwargs = {k: backend.asarray(v, "float32") if isinstance(v, torch.Tensor) else v
               for k, v in kwargs.items()}
    got, got_warnings = _call_recording(ours, x, y, *bargs, **bkwargs)
    quantity = "reduced" if expected.ndim == 0 else name.replace(
        "binary_cross_entropy_with_logits", "bcewl").replace("binary_cross_entropy", "bce")
    check(backend, got, expected, quantity, "float32", scale=expected.abs() + 4)
    # the same messages and categories; ours point at this file (the caller)
    assert [(m, c) for m, c, _ in got_warnings] == [(m, c) for m, c, _ in expected_warnings]
    assert all(f == __file__ for _, _, f in got_warnings)


def test_fourth_positional_is_size_average() -> None:
    """``f(x, y, None, "sum")`` is ``size_average="sum"`` (truthy): torch's 'mean'."""
    xt, yt = rounded([0.2, 0.7, 0.9], "float32"), rounded([0.0, 1.0, 1.0], "float32")
    with pytest.warns(UserWarning, match=r"please use reduction='mean' instead\.$"):
        got = xbce.binary_cross_entropy(xt, yt, None, "sum")
    with pytest.warns(UserWarning, match=r"please use reduction='mean' instead\.$"):
        expected = TF.binary_cross_entropy(xt, yt, None, "sum")
    assert torch.equal(got, expected)


def test_pos_weight_is_seventh_positional(backend: Backend) -> None:
    xt, tt = rounded([-1.0, 0.5, 2.0], "float32"), rounded([0.0, 1.0, 1.0], "float32")
    pt = rounded([3.0], "float32")
    expected = TF.binary_cross_entropy_with_logits(xt, tt, None, None, None, "none", pt)
    x, t, p = (backend.asarray(a, "float32") for a in (xt, tt, pt))
    got = xbce.binary_cross_entropy_with_logits(x, t, None, None, None, "none", p)
    check(backend, got, expected, "bcewl", "float32", scale=expected.abs() + 4)


@pytest.mark.parametrize(("size_average", "reduce"), LEGACY)
@pytest.mark.parametrize("module", ["BCELoss", "BCEWithLogitsLoss"])
def test_module_legacy_arguments(size_average, reduce, module: str) -> None:  # type: ignore[no-untyped-def]
    theirs = getattr(torch.nn, module)
    expected, expected_warnings = _call_recording(
        theirs, None, size_average, reduce, "sum"
    )
    for ours in (getattr(xbce.torch, module), getattr(xbce, module)):
        got, got_warnings = _call_recording(ours, None, size_average, reduce, "sum")
        assert got.reduction == expected.reduction
        assert [(m, c) for m, c, _ in got_warnings] == [(m, c) for m, c, _ in expected_warnings]
        assert all(f == __file__ for _, _, f in got_warnings)


def test_elementwise_mean_warns_at_the_caller() -> None:
    x = torch.tensor([0.5])
    _, caught = _call_recording(xbce.binary_cross_entropy, x, x, reduction="elementwise_mean")
    _, expected = _call_recording(TF.binary_cross_entropy, x, x, reduction="elementwise_mean")
    assert [(m, c) for m, c, _ in caught] == [(m, c) for m, c, _ in expected]
    assert [f for _, _, f in caught] == [__file__]
