"""Gradient parity: xbce's gradients on each backend against torch.autograd on the CPU.

For every backend, dtype, reduction and weighting, the gradients w.r.t. input *and*
target are computed twice: through the backend's autodiff (``torch.autograd`` on
PyTorch, ``jax.vjp`` on JAX) where it has one, and through xbce's explicit backward
functions everywhere. Both must equal the gradient ``torch.autograd`` gives for
``torch.nn.functional`` on the CPU, computed here from the same rounded inputs.

Every corpus has one shape, :data:`SHAPE`, with the reference's edge table in its first
elements: JAX compiles each operation once per shape and dtype, so one shape keeps the
JAX run short.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, Backend, rounded
from cases import BCE_EDGES, LOGIT_EDGES, logits, probabilities, targets
from comparisons import check
from grads import GRAD_OUTPUTS, Case
from hypothesis import given, settings

import xbce

SHAPE = (20, 30)
N = SHAPE[0] * SHAPE[1]


# ------------------------------------------------------------------- helpers
def _embed(corpus: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The corpus with ``edges`` as its first elements, in :data:`SHAPE`."""
    out = np.array(corpus, dtype=np.float64)
    out[: len(edges)] = edges
    return out.reshape(SHAPE)


def _subnormal(t: torch.Tensor) -> torch.Tensor:
    return (t != 0) & (t.abs() < torch.finfo(t.dtype).smallest_normal)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """What a backend computes ``dtype`` in: float32 for half types."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _ftz_margin(dtype: torch.dtype) -> float:
    """2**28 smallest normals of the compute dtype: a product of values above it with
    factors in [2**-4, 2**4] (upstream gradient, weights, 1/numel of small cases) stays
    normal under flush-to-zero."""
    return torch.finfo(_compute_dtype(dtype)).smallest_normal * 2.0**28


def _sigmoid_tiny(x: torch.Tensor) -> torch.Tensor:
    """Where exp(-|x|), hence sigmoid(x) or sigmoid(-x), is nonzero but below the FTZ
    margin (67.9 < |x| < 104 in float32): XLA flushes (products of) it, torch does not."""
    e = torch.exp(-x.to(_compute_dtype(x.dtype)).abs())
    return (e > 0) & (e < _ftz_margin(x.dtype))


def _zero_where(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, torch.zeros_like(t), t)


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
        check(backend, gx, ex, qx, case.dtype, scale=sx, what=f"{what} d/dinput ({path})")
        check(backend, gy, ey, qy, case.dtype, scale=sy, what=f"{what} d/dtarget ({path})")


# ------------------------------------------------------------------------- BCE
@pytest.mark.parametrize(("reduction", "g"), GRAD_OUTPUTS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
def test_bce_gradients(backend: Backend, dtype: str, reduction: str, g: float | None,
                       weighted: bool, rng: np.random.Generator) -> None:
    """Probabilities uniform, near 0 and 1, exactly 0 and 1, subnormal, after §9.1's
    edges: +-inf target gradients at 0 and 1, the eps clamp of the input gradient
    (NaN and inf in float16), gradients where the forward is clamped."""
    ex, ey = zip(*BCE_EDGES, strict=True)
    x = rounded(_embed(probabilities(rng, N, subnormal=not backend.flushes(dtype)), ex), dtype)
    y = rounded(_embed(targets(rng, N, soft=True), ey), dtype)
    if backend.flushes(dtype):
        x = _zero_where(x, _subnormal(x))  # XLA reads 1e-45 as 0 (the forward test xfails it)
    w = rounded(rng.uniform(0.0, 3.0, SHAPE[1]), dtype) if weighted else None
    case = Case("bce", x, y, _grad_output(rng, reduction, g, SHAPE, dtype), reduction, weight=w)
    _check_case(backend, case, f"bce {reduction} g={g}")


@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "array_api_strict"])
def test_bce_gradient_negative_zero_float16(name: str) -> None:
    """x = -0.0, y = 1 in float16: eps is 0 and torch's ``std::max(-0.0, 0.0)`` is -0.0,
    so the gradient is +inf; a ``maximum`` that returns +0.0 gives -inf (64 elements:
    torch's own vectorised ops would take their SIMD path)."""
    from backends import load

    case = Case("bce", rounded(np.full(64, -0.0), "float16"), rounded(np.ones(64), "float16"),
                rounded(np.ones(64), "float16"), "none")
    assert (case.reference()[0] == float("inf")).all()
    backend = load(name)
    gx, _ = case.explicit(backend)
    check(backend, gx, case.reference()[0], "bce_grad", "float16")


# ---------------------------------------------------------------- BCE with logits
@pytest.mark.parametrize(("reduction", "g"), GRAD_OUTPUTS)
@pytest.mark.parametrize("weights", ["", "pos_weight", "both"])
def test_bce_with_logits_gradients(backend: Backend, dtype: str, reduction: str,
                                   g: float | None, weights: str,
                                   rng: np.random.Generator) -> None:
    """Logits N(0, 25), up to +-1e4, +-inf, after §9.3's edges: +-inf (finite dx,
    infinite dt), NaN, 0 with pos_weight (the kink of min(x, 0)), targets outside
    [0, 1], pos_weight 0 and -1 (``pos_weight``: elementwise, the table's column;
    ``both``: per column, with per-row weights; weights alone are BCE's case)."""
    ex, et, ep = zip(*LOGIT_EDGES, strict=True)
    x = rounded(_embed(logits(rng, N, extreme=True), ex), dtype)
    t = rounded(_embed(targets(rng, N, soft=True), et), dtype)
    if backend.flushes(dtype):
        x = _zero_where(x, _sigmoid_tiny(x))
    w = p = None
    if weights == "pos_weight":
        p = rounded(_embed(rng.uniform(0.0, 5.0, N), ep), dtype)
    if weights == "both":
        w = rounded(rng.uniform(0.0, 3.0, (SHAPE[0], 1)), dtype)
        p = rounded(rng.uniform(0.0, 5.0, SHAPE[1]), dtype)
    case = Case("bcewl", x, t, _grad_output(rng, reduction, g, SHAPE, dtype), reduction,
                weight=w, pos_weight=p)
    _check_case(backend, case, f"bcewl {weights} {reduction} g={g}")


def test_reference_gradient_values() -> None:
    """A tripwire on the reference: a few of §9's printed gradients, so that a torch
    whose gradients changed (and this suite's expectations with it) is noticed."""
    case = Case("bce", rounded([0.0, 1.0, 1e-7, 1e-45], "float32"),
                rounded([1.0, 1.0, 1.0, 1.0], "float32"), rounded(np.ones(4), "float32"), "none")
    dx, dy = case.reference()
    assert dx.tolist() == [-999999995904.0, 0.0, -10000000.0, -999999995904.0]
    assert dy.tolist()[:2] == [float("inf"), float("-inf")]
    assert dy[3].item() == 103.2789306640625  # unclamped, where the loss is clamped to 100
    logit = Case("bcewl", rounded([0.0, np.inf, np.inf, -np.inf, -np.inf], "float32"),
                 rounded([1.0, 0.0, 1.0, 0.0, 1.0], "float32"), rounded(np.ones(5), "float32"),
                 "none", pos_weight=rounded([3.0, 1.0, 1.0, 1.0, 1.0], "float32"))
    dx, _ = logit.reference()
    assert dx.tolist() == [-1.5, 1.0, 0.0, 0.0, -1.0]


# --------------------------------------------------------------------- shapes
@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradients_zero_d(backend: Backend, op: str, reduction: str) -> None:
    x = rounded(0.3 if op == "bce" else 1.5, "float32")
    case = Case(op, x, rounded(0.8, "float32"), rounded(0.37, "float32"), reduction)
    _check_case(backend, case, f"{op} 0-d {reduction}")


@pytest.mark.parametrize("op", ["bce", "bcewl"])
def test_explicit_backward_broadcasts_grad_output(backend: Backend, op: str) -> None:
    """reduction='none': a grad_output that broadcasts into the input's shape."""
    rng = np.random.default_rng(7)
    x = rounded(rng.uniform(0.05, 0.95, SHAPE), "float32")
    y = rounded(rng.uniform(0, 1, SHAPE), "float32")
    g = rounded(rng.uniform(0.5, 2, SHAPE[1]), "float32")
    full = Case(op, x, y, g.expand(SHAPE).contiguous(), "none")
    ex, ey = full.reference()
    gx, gy = Case(op, x, y, g, "none").explicit(backend)
    qx, qy = full.quantities()
    sx, sy = full.scales()
    check(backend, gx, ex, qx, "float32", scale=sx, what="broadcast grad_output d/dinput")
    check(backend, gy, ey, qy, "float32", scale=sy, what="broadcast grad_output d/dtarget")


# ----------------------------------------------------------------- mixed dtypes
def _mixed(backend: Backend, reduction: str) -> tuple[list[Any], torch.Tensor, torch.Tensor,
                                                      torch.Tensor]:
    """float64 logits, float32 targets: xbce's gradients (every path), torch's, and the
    scale of the input gradient."""
    rng = np.random.default_rng(5)
    xt = rounded(rng.normal(0, 3, 12), "float64")
    tt = rounded(rng.uniform(0, 1, 12), "float32")
    gt = rounded(0.37 if reduction != "none" else rng.uniform(0.5, 2, 12), "float32")
    xa, ta = xt.clone().requires_grad_(), tt.clone().requires_grad_()
    loss = TF.binary_cross_entropy_with_logits(xa, ta, reduction=reduction)
    assert loss.dtype == torch.float32  # the target's dtype
    ex, et = torch.autograd.grad(loss, (xa, ta), gt)
    scale = (torch.sigmoid(xt) + tt.double()) * gt.double() / (12 if reduction == "mean" else 1)
    x, t, g = backend.asarray(xt, "float64"), backend.asarray(tt, "float32"), \
        backend.asarray(gt, "float32")
    got = [(xbce.binary_cross_entropy_with_logits_backward(g, x, t, reduction=reduction),
            xbce.binary_cross_entropy_with_logits_target_backward(g, x, t, reduction=reduction))]
    f = xbce.binary_cross_entropy_with_logits
    if backend.autodiff == "torch":
        xr, tr = x.requires_grad_(), t.requires_grad_()
        got.append(torch.autograd.grad(f(xr, tr, reduction=reduction), (xr, tr), g))
    elif backend.autodiff == "jax":
        import jax

        _, vjp = jax.vjp(lambda a, b: f(a, b, reduction=reduction), x, t)
        got.append(vjp(g))
    return got, ex, et, scale


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.x64  # float64 on JAX
def test_bce_with_logits_mixed_dtypes_input_gradient(backend: Backend, reduction: str) -> None:
    got, ex, _, scale = _mixed(backend, reduction)
    for gx, _ in got:
        check(backend, gx, ex, "bcewl_grad", "float64", scale=scale, what="mixed d/dinput")


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.x64  # float64 on JAX
def test_bce_with_logits_mixed_dtypes_target_gradient(backend: Backend, reduction: str) -> None:
    got, _, et, _ = _mixed(backend, reduction)
    for _, gt in got:
        check(backend, gt, et, "bcewl_tgrad", "float32", what=f"mixed d/dtarget {reduction}")


# ------------------------------------------------------------------ hypothesis
#: a few shapes only: JAX compiles each operation once per shape (and dtype), so on
#: JAX only one shape and the two wide dtypes (its other paths have the tests above)
SHAPES = [(), (7,), (3, 5)]


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_subnormal=False)


def _factors(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Weights, pos_weights, logit targets: magnitudes below 1e-6 become 0, so that no
    product with them is subnormal on a flush-to-zero backend (see _ftz_margin)."""
    return _floats(lo, hi).map(lambda v: 0.0 if abs(v) < 1e-6 else v)


def _grad_floats() -> st.SearchStrategy[float]:
    """Upstream gradients of magnitude [0.5, 2], either sign (see _ftz_margin)."""
    return st.tuples(_floats(0.5, 2.0), st.sampled_from([-1.0, 1.0])).map(lambda p: p[0] * p[1])


def _draw_common(draw: Any, backend: Backend) -> tuple[str, tuple[int, ...], str, torch.Tensor,
                                                         torch.Tensor | None]:
    jax = backend.autodiff == "jax"
    dtype = draw(st.sampled_from([d for d in ("float32", "float64") if d in backend.dtypes]
                                if jax else backend.dtypes))  # no float64 with x64 off
    shape = draw(st.sampled_from(SHAPES[-1:] if jax else SHAPES))
    reduction = draw(st.sampled_from(["none", "mean", "sum"]))
    g = draw(hnp.arrays(np.float64, shape if reduction == "none" else (), elements=_grad_floats()))
    w = None
    if draw(st.booleans()):
        w = rounded(draw(hnp.arrays(np.float64, shape[-1:], elements=_factors(0.0, 4.0))), dtype)
    return dtype, shape, reduction, rounded(g, dtype), w


@st.composite
def _bce_case(draw: Any, backend: Backend) -> Case:
    dtype, shape, reduction, g, w = _draw_common(draw, backend)
    special = st.sampled_from([0.0, 1.0, 0.5, 1e-7, 1 - 1e-7])
    xt, yt = (rounded(draw(hnp.arrays(np.float64, shape, elements=_floats(0.0, 1.0) | special)),
                      dtype) for _ in range(2))
    if backend.flushes(dtype):  # g * (x - y) must stay normal: see _ftz_margin
        xt = _zero_where(xt, xt.abs() < _ftz_margin(xt.dtype))
        yt = _zero_where(yt, yt.abs() < _ftz_margin(yt.dtype))
    return Case("bce", xt, yt, g, reduction, weight=w)


@st.composite
def _bcewl_case(draw: Any, backend: Backend) -> Case:
    dtype, shape, reduction, g, w = _draw_common(draw, backend)
    special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 20.0, -20.0])
    xt = rounded(draw(hnp.arrays(np.float64, shape, elements=_floats(-200.0, 200.0) | special)),
                 dtype)
    tt = rounded(draw(hnp.arrays(np.float64, shape, elements=_factors(-1.0, 2.0))), dtype)
    if backend.flushes(dtype):
        xt = _zero_where(xt, _sigmoid_tiny(xt))
    p = None
    if draw(st.booleans()):
        p = rounded(draw(hnp.arrays(np.float64, shape[-1:], elements=_factors(-1.0, 5.0))), dtype)
    return Case("bcewl", xt, tt, g, reduction, weight=w, pos_weight=p)


def _examples(backend: Backend) -> int:
    """Fewer examples on JAX, which compiles every operation for each new shape and
    dtype (its paths are also covered by the deterministic tests above)."""
    return 10 if backend.autodiff == "jax" else 30


def test_bce_gradients_hypothesis(backend: Backend) -> None:
    @settings(max_examples=_examples(backend), deadline=None)
    @given(case=_bce_case(backend))
    def run(case: Case) -> None:
        _check_case(backend, case, f"bce {case.dtype} {case.reduction} {tuple(case.x.shape)}")

    run()


def test_bce_with_logits_gradients_hypothesis(backend: Backend) -> None:
    @settings(max_examples=_examples(backend), deadline=None)
    @given(case=_bcewl_case(backend))
    def run(case: Case) -> None:
        _check_case(backend, case, f"bcewl {case.dtype} {case.reduction} {tuple(case.x.shape)}")

    run()


# ------------------------------------------------------------------ large (blocked)
@pytest.mark.parametrize(("reduction", "g"), [("none", None), ("mean", 0.37)])
@pytest.mark.parametrize("op", ["bce", "bcewl"])
def test_gradients_large_arrays(backend: Backend, op: str, reduction: str, g: float | None,
                                rng: np.random.Generator) -> None:
    """600,000 elements: NumPy and torch (autograd's backward too) evaluate in blocks."""
    shape = (1000, 600)
    n = shape[0] * shape[1]
    if op == "bce":
        x = rounded(probabilities(rng, n, subnormal=False), "float32")
    else:
        x = rounded(logits(rng, n, extreme=True), "float32")
        if backend.flushes("float32"):
            x = _zero_where(x, _sigmoid_tiny(x))
    t = rounded(targets(rng, n, soft=True), "float32")
    w = rounded(rng.uniform(0.0, 3.0, (shape[0], 1)), "float32")
    p = rounded(rng.uniform(0.0, 5.0, shape[1]), "float32") if op == "bcewl" else None
    case = Case(op, x.reshape(shape), t.reshape(shape),
                _grad_output(rng, reduction, g, shape, "float32"), reduction, weight=w,
                pos_weight=p)
    _check_case(backend, case, f"{op} large {reduction} g={g}")
