"""Gradient parity: xbce's gradients on each backend against torch.autograd on the CPU.

For every backend, dtype, reduction and weighting, the gradients w.r.t. input *and*
target are computed twice: through the backend's autodiff (``torch.autograd`` on
PyTorch, ``jax.vjp`` on JAX) where it has one, and through xbce's explicit backward
functions everywhere. Both must equal the gradient ``torch.autograd`` gives for
``torch.nn.functional`` on the CPU, computed here from the same rounded inputs.
"""

from __future__ import annotations

from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from backends import Backend, rounded
from cases import BCE_EDGES, LOGIT_EDGES, logits, probabilities, targets
from conftest import check
from grads import GRAD_OUTPUTS, Case


def _flushes(backend: Backend, dtype: str) -> bool:
    """XLA on CPU flushes float32/float64 subnormals (and bfloat16, computed in
    float32); float16 keeps them (it is rounded from float32)."""
    return backend.flushes_subnormals and dtype != "float16"


def _subnormal(t: torch.Tensor) -> torch.Tensor:
    return (t != 0) & (t.abs() < torch.finfo(t.dtype).smallest_normal)


def _grad_output(rng: np.random.Generator, reduction: str, g: float | None,
                 shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """0-d ``g`` for mean/sum; for none, random magnitudes in [0.5, 2) of either sign
    (bounded below so that ``g * x`` of the smallest normal ``x`` stays normal under
    XLA's flush-to-zero)."""
    if reduction != "none":
        return rounded(g, dtype)
    return rounded(rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape), dtype)


def _paths(backend: Backend) -> list[str]:
    return ["explicit"] + (["autodiff"] if backend.autodiff else [])


def _check_case(backend: Backend, case: Case, what: str) -> None:
    """Both gradients, along every path the backend has, against torch's."""
    ex, ey = case.reference()
    qx, qy = case.quantities()
    sx, sy = case.scales()
    for path in _paths(backend):
        gx, gy = getattr(case, path)(backend)
        # the explicit functions divide by numel with the namespace's own division
        plus = "div_numel" if path == "explicit" and case.reduction == "mean" else None
        check(backend, gx, ex, qx, case.dtype, scale=sx, what=f"{what} d/dinput ({path})",
              plus=plus)
        check(backend, gy, ey, qy, case.dtype, scale=sy, what=f"{what} d/dtarget ({path})",
              plus=plus)


# ------------------------------------------------------------------------- BCE
@pytest.mark.parametrize(("reduction", "g"), GRAD_OUTPUTS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
def test_bce_gradients_corpus(backend: Backend, dtype: str, reduction: str, g: float | None,
                              weighted: bool, rng: np.random.Generator) -> None:
    shape = (20, 30)
    n = shape[0] * shape[1]
    x = rounded(probabilities(rng, n, subnormal=not _flushes(backend, dtype)), dtype)
    if _flushes(backend, dtype):
        x = torch.where(_subnormal(x), torch.zeros_like(x), x)  # e.g. 1e-38 in float32
    y = rounded(targets(rng, n, soft=True), dtype)
    w = rounded(rng.uniform(0.0, 3.0, shape[1]), dtype) if weighted else None
    case = Case("bce", x.reshape(shape), y.reshape(shape),
                _grad_output(rng, reduction, g, shape, dtype), reduction, weight=w)
    _check_case(backend, case, f"bce {reduction} g={g}")


@pytest.mark.parametrize(("reduction", "g"), GRAD_OUTPUTS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
def test_bce_gradients_edges(backend: Backend, dtype: str, reduction: str, g: float | None,
                             weighted: bool, rng: np.random.Generator) -> None:
    """§9.1: x in {0, 1, 1e-45, 1 - 1e-7, ...}: +-inf target gradients, the eps
    clamp (NaN and inf in float16), gradients where the forward is clamped."""
    x, y = (rounded(np.asarray(c), dtype) for c in zip(*BCE_EDGES))
    if _flushes(backend, dtype):
        keep = ~_subnormal(x)  # x = 1e-45 is 0 to XLA: the forward test xfails it
        x, y = x[keep], y[keep]
    w = rounded(rng.uniform(0.0, 3.0, x.shape), dtype) if weighted else None
    case = Case("bce", x, y, _grad_output(rng, reduction, g, tuple(x.shape), dtype), reduction,
                weight=w)
    _check_case(backend, case, f"bce edges {reduction} g={g}")


def test_bce_gradient_edge_values(backend: Backend) -> None:
    """A few of §9.1's printed values, so that a torch whose gradients changed (and
    this suite with it) would be noticed: dx, dy at (0, 1), (1, 1), (1e-7, 1)."""
    x, y = rounded([0.0, 1.0, 1e-7], "float32"), rounded([1.0, 1.0, 1.0], "float32")
    case = Case("bce", x, y, rounded([1.0, 1.0, 1.0], "float32"), "none")
    ex, ey = case.reference()
    assert ex.tolist() == [-999999995904.0, 0.0, -10000000.0]
    assert ey[:2].tolist() == [float("inf"), float("-inf")]
    _check_case(backend, case, "bce §9.1")


# ---------------------------------------------------------------- BCE with logits
def _ftz_margin(dtype: torch.dtype) -> float:
    """2**28 smallest normals of the dtype a backend computes ``dtype`` in (float32
    for half types): products of a value above it with factors in [2**-4, 2**4] (the
    upstream gradient, weights, 1/numel of the small cases) stay normal."""
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    return torch.finfo(compute).smallest_normal * 2.0**28


def _sigmoid_tiny(x: torch.Tensor) -> torch.Tensor:
    """Where exp(-|x|), hence sigmoid(x) or sigmoid(-x), falls below the FTZ margin
    (|x| > 67.9 in float32): XLA flushes subnormal products of it, torch does not."""
    return torch.exp(-x.double().abs()) < _ftz_margin(x.dtype)


def _zero_where(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, torch.zeros_like(t), t)


WEIGHTINGS = ["", "weight", "pos_weight", "both"]


@pytest.mark.parametrize(("reduction", "g"), GRAD_OUTPUTS)
@pytest.mark.parametrize("weights", WEIGHTINGS)
def test_bce_with_logits_gradients_corpus(backend: Backend, dtype: str, reduction: str,
                                          g: float | None, weights: str,
                                          rng: np.random.Generator) -> None:
    shape = (20, 30)
    n = shape[0] * shape[1]
    x = rounded(logits(rng, n, extreme=True), dtype)
    t = rounded(targets(rng, n, soft=True), dtype)
    if _flushes(backend, dtype):
        x = _zero_where(x, _sigmoid_tiny(x))
    w = rounded(rng.uniform(0.0, 3.0, (shape[0], 1)), dtype) if weights in ("weight", "both") \
        else None
    p = rounded(rng.uniform(0.0, 5.0, shape[1]), dtype) if weights in ("pos_weight", "both") \
        else None
    case = Case("bcewl", x.reshape(shape), t.reshape(shape),
                _grad_output(rng, reduction, g, shape, dtype), reduction, weight=w, pos_weight=p)
    _check_case(backend, case, f"bcewl {weights} {reduction} g={g}")


@pytest.mark.parametrize(("reduction", "g"), GRAD_OUTPUTS)
@pytest.mark.parametrize("with_pos_weight", [False, True], ids=["", "pos_weight"])
def test_bce_with_logits_gradients_edges(backend: Backend, dtype: str, reduction: str,
                                         g: float | None, with_pos_weight: bool,
                                         rng: np.random.Generator) -> None:
    """§9.3: logits +-inf (finite dx, infinite dt), NaN, 0 with pos_weight (the kink
    of min(x, 0)), targets outside [0, 1], pos_weight 0 and -1."""
    x, t, p = (rounded(np.asarray(c), dtype) for c in zip(*LOGIT_EDGES))
    case = Case("bcewl", x, t, _grad_output(rng, reduction, g, tuple(x.shape), dtype),
                reduction, pos_weight=p if with_pos_weight else None)
    _check_case(backend, case, f"bcewl edges {reduction} g={g}")


def test_bce_with_logits_gradient_edge_values(backend: Backend) -> None:
    """§9.3's printed gradients (L2, L11-L14), as a tripwire on the reference."""
    x = rounded([0.0, np.inf, np.inf, -np.inf, -np.inf], "float32")
    t = rounded([1.0, 0.0, 1.0, 0.0, 1.0], "float32")
    p = rounded([3.0, 1.0, 1.0, 1.0, 1.0], "float32")
    case = Case("bcewl", x, t, rounded(np.ones(5), "float32"), "none", pos_weight=p)
    ex, _ = case.reference()
    assert ex.tolist() == [-1.5, 1.0, 0.0, 0.0, -1.0]
    _check_case(backend, case, "bcewl §9.3")


# --------------------------------------------------------------------- shapes
@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradients_zero_d_and_broadcast_grad_output(backend: Backend, op: str,
                                                    reduction: str) -> None:
    """A 0-d input, and (explicit backward, none) a grad_output that broadcasts."""
    rng = np.random.default_rng(7)
    x = rounded(0.3 if op == "bce" else 1.5, "float32")
    y = rounded(0.8, "float32")
    _check_case(backend, Case(op, x, y, rounded(0.37, "float32"), reduction), f"{op} 0-d")
    if reduction == "none":
        xs = rounded(rng.uniform(0.05, 0.95, (4, 3)), "float32")
        ys = rounded(rng.uniform(0, 1, (4, 3)), "float32")
        gs = rounded(rng.uniform(0.5, 2, 3), "float32")
        full = Case(op, xs, ys, gs.expand(4, 3).contiguous(), "none")
        ex, ey = full.reference()
        row = Case(op, xs, ys, gs, "none")
        gx, gy = row.explicit(backend)
        qx, qy = full.quantities()
        check(backend, gx, ex, qx, "float32", what="broadcast grad_output d/dinput")
        check(backend, gy, ey, qy, "float32", what="broadcast grad_output d/dtarget")


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradients_large_arrays(backend: Backend, op: str, reduction: str) -> None:
    """Above 2**18 elements NumPy and torch evaluate the backward in blocks."""
    rng = np.random.default_rng(3)
    shape = (1000, 300)
    n = shape[0] * shape[1]
    if op == "bce":
        x = rounded(rng.uniform(0.0, 1.0, shape), "float32")
    else:
        x = rounded(rng.normal(0.0, 4.0, shape), "float32")
    y = rounded(targets(rng, n, soft=True).reshape(shape), "float32")
    w = rounded(rng.uniform(0.0, 2.0, (shape[0], 1)), "float32")
    p = rounded(rng.uniform(0.0, 3.0, shape[1]), "float32") if op == "bcewl" else None
    case = Case(op, x, y, _grad_output(rng, reduction, 0.37, shape, "float32"), reduction,
                weight=w, pos_weight=p)
    _check_case(backend, case, f"{op} large {reduction}")


def test_bce_with_logits_gradients_mixed_dtypes(backend: Backend) -> None:
    """float64 logits with float32 targets: torch's loss is float32 (the target's
    dtype); d/dinput is float64, d/dtarget float32."""
    rng = np.random.default_rng(5)
    xt = rounded(rng.normal(0, 3, 12), "float64")
    tt = rounded(rng.uniform(0, 1, 12), "float32")
    g = rounded(0.37, "float32")
    xa, ta = xt.clone().requires_grad_(), tt.clone().requires_grad_()
    import torch.nn.functional as TF

    loss = TF.binary_cross_entropy_with_logits(xa, ta, reduction="mean")
    assert loss.dtype == torch.float32
    ex, et = torch.autograd.grad(loss, (xa, ta), g)
    import xbce

    x, t, gb = backend.asarray(xt, "float64"), backend.asarray(tt, "float32"), \
        backend.asarray(g, "float32")
    got = [xbce.binary_cross_entropy_with_logits_backward(gb, x, t),
           xbce.binary_cross_entropy_with_logits_target_backward(gb, x, t)]
    if backend.autodiff == "torch":
        x.requires_grad_()
        t.requires_grad_()
        got += list(torch.autograd.grad(xbce.binary_cross_entropy_with_logits(x, t), (x, t), gb))
    elif backend.autodiff == "jax":
        import jax

        _, vjp = jax.vjp(xbce.binary_cross_entropy_with_logits, x, t)
        got += list(vjp(gb))
    for i in range(0, len(got), 2):
        check(backend, got[i], ex, "bcewl_grad", "float64",
              scale=(torch.sigmoid(xt) + tt.double()) * 0.37 / 12, what="mixed d/dinput")
        check(backend, got[i + 1], et, "bcewl_tgrad", "float32", what="mixed d/dtarget")


# ------------------------------------------------------------------ hypothesis
def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_subnormal=False)


def _factors(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Weights, pos_weights, logit targets: magnitudes below 1e-6 become 0, so that no
    product with them is subnormal on a flush-to-zero backend (see _ftz_margin)."""
    return _floats(lo, hi).map(lambda v: 0.0 if abs(v) < 1e-6 else v)


def _grad_floats() -> st.SearchStrategy[float]:
    """Upstream gradients of magnitude [0.5, 2], either sign (see _ftz_margin)."""
    return st.tuples(_floats(0.5, 2.0), st.sampled_from([-1.0, 1.0])).map(lambda p: p[0] * p[1])


@st.composite
def _bce_case(draw: Any, backend: Backend) -> Case:
    dtype = draw(st.sampled_from(backend.dtypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=6))
    special = st.sampled_from([0.0, 1.0, 0.5, 1e-7, 1 - 1e-7])
    x = draw(hnp.arrays(np.float64, shape, elements=_floats(0.0, 1.0) | special))
    y = draw(hnp.arrays(np.float64, shape, elements=_floats(0.0, 1.0) | special))
    reduction = draw(st.sampled_from(["none", "mean", "sum"]))
    xt, yt = rounded(x, dtype), rounded(y, dtype)
    if _flushes(backend, dtype):  # g * (x - y) must stay normal: see _ftz_margin
        xt = _zero_where(xt, xt.abs() < _ftz_margin(xt.dtype))
        yt = _zero_where(yt, yt.abs() < _ftz_margin(yt.dtype))
    g_shape = shape if reduction == "none" else ()
    g = draw(hnp.arrays(np.float64, g_shape, elements=_grad_floats()))
    w = None
    if draw(st.booleans()):
        w = rounded(draw(hnp.arrays(np.float64, shape[-1:], elements=_factors(0.0, 4.0))), dtype)
    return Case("bce", xt, yt, rounded(g, dtype), reduction, weight=w)


@st.composite
def _bcewl_case(draw: Any, backend: Backend) -> Case:
    dtype = draw(st.sampled_from(backend.dtypes))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=6))
    special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 20.0, -20.0])
    x = draw(hnp.arrays(np.float64, shape, elements=_floats(-200.0, 200.0) | special))
    t = draw(hnp.arrays(np.float64, shape, elements=_factors(-1.0, 2.0)))
    reduction = draw(st.sampled_from(["none", "mean", "sum"]))
    xt, tt = rounded(x, dtype), rounded(t, dtype)
    if _flushes(backend, dtype):  # see _ftz_margin
        xt = _zero_where(xt, _sigmoid_tiny(xt))
    g_shape = shape if reduction == "none" else ()
    g = draw(hnp.arrays(np.float64, g_shape, elements=_grad_floats()))
    p = None
    if draw(st.booleans()):
        p = rounded(draw(hnp.arrays(np.float64, shape[-1:], elements=_factors(-1.0, 5.0))), dtype)
    w = None
    if draw(st.booleans()):
        w = rounded(draw(hnp.arrays(np.float64, shape[-1:], elements=_factors(0.0, 4.0))), dtype)
    return Case("bcewl", xt, tt, rounded(g, dtype), reduction, weight=w,
                pos_weight=p)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_bce_gradients_hypothesis(backend: Backend, data: st.DataObject) -> None:
    case = data.draw(_bce_case(backend))
    _check_case(backend, case, f"bce {case.dtype} {case.reduction} {tuple(case.x.shape)}")


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_bce_with_logits_gradients_hypothesis(backend: Backend, data: st.DataObject) -> None:
    case = data.draw(_bcewl_case(backend))
    _check_case(backend, case, f"bcewl {case.dtype} {case.reduction} {tuple(case.x.shape)}")
