"""xbce inside PyTorch's autodiff machinery: autograd, torch.func, forward AD, compile.

Runs for the torch backends selected by ``XBCE_BACKENDS``. Every expected value is
computed here by ``torch.nn.functional`` with *eager* autograd on the CPU: note that
under ``torch.func`` transforms torch itself evaluates ``binary_cross_entropy_with_
logits`` through a different decomposition (functorch's ``PyTorchOperatorHacks``: the
old max-trick formula), whose values and gradients differ from eager torch; xbce keeps
the eager numbers there too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
from backends import BACKENDS, Backend, load, rounded
from comparisons import check
from grads import LOSSES, Case, forward_ad, jvp_scale

import xbce

TORCH_BACKENDS = [b for b in BACKENDS if b in ("torch", "torch_cuda")]
pytestmark = pytest.mark.skipif(not TORCH_BACKENDS, reason="no torch backend selected")


@pytest.fixture(params=TORCH_BACKENDS, scope="module")
def tb(request: pytest.FixtureRequest) -> Backend:
    return load(request.param)


def _data(op: str, dtype: str, shape: tuple[int, ...] = (6, 5), seed: int = 0,
          interior: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                           torch.Tensor | None]:
    """CPU inputs (x, y, weight, pos_weight); ``interior`` keeps x in [0.01, 0.99]
    (BCE) or [-10, 10] (logits), away from the clamps."""
    rng = np.random.default_rng(seed)
    if op == "bce":
        x = rng.uniform(0.01, 0.99, shape) if interior else rng.uniform(0.0, 1.0, shape)
        if not interior:
            x.flat[:4] = [0.0, 1.0, 1e-7, 1 - 1e-7]
    else:
        x = rng.uniform(-10, 10, shape) if interior else rng.normal(0, 6, shape)
    y = rng.uniform(0.0, 1.0, shape)
    w = rounded(rng.uniform(0.5, 2.0, shape[-1]), dtype)
    p = rounded(rng.uniform(0.0, 3.0, shape[-1]), dtype) if op == "bcewl" else None
    return rounded(x, dtype), rounded(y, dtype), w, p


def _kw(op: str, w: Any, p: Any, reduction: str) -> dict[str, Any]:
    kw = {"weight": w, "reduction": reduction}
    if op == "bcewl":
        kw["pos_weight"] = p
    return kw


def _dev(tb: Backend, *ts: torch.Tensor | None) -> list[Any]:
    return [None if t is None else t.to(tb.device) for t in ts]


def _double(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.detach().double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}


def _loss_terms(op: str, x: torch.Tensor, y: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
    """|elementwise loss| in float64: the scale of a reduction's rounding."""
    terms = LOSSES[op][1](x.double(), y.double(), **{**_double(kw), "reduction": "none"})
    return terms.abs()


# ------------------------------------------------------------- not differentiable
@pytest.mark.parametrize(("op", "arg"), [("bce", "weight"), ("bcewl", "weight"),
                                         ("bcewl", "pos_weight")])
def test_weight_requiring_grad_is_refused(tb: Backend, op: str, arg: str) -> None:
    """torch's RuntimeError and message; under no_grad both accept it."""
    x, y, w, p = _data(op, "float32")
    kw = _kw(op, w, p, "mean")
    kw[arg] = kw[arg].clone().requires_grad_()
    with pytest.raises(RuntimeError) as theirs:
        LOSSES[op][1](x, y, **kw)
    dkw = {k: (v.to(tb.device) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    dx, dy = _dev(tb, x, y)
    with pytest.raises(RuntimeError) as ours:
        LOSSES[op][0](dx, dy, **dkw)
    assert str(ours.value) == str(theirs.value)
    assert f"with respect to argument '{arg}'" in str(ours.value)
    with torch.no_grad():
        expected = LOSSES[op][1](x, y, **kw)
        got = LOSSES[op][0](dx, dy, **dkw)
    check(tb, got, expected, "reduced", "float32", scale=_loss_terms(op, x, y, kw).mean(),
          what="no_grad")


# -------------------------------------------------------------- graph or no graph
@pytest.mark.parametrize("op", ["bce", "bcewl"])
def test_graph_only_when_autograd_records(tb: Backend, op: str) -> None:
    x, y, w, p = _dev(tb, *_data(op, "float32"))
    kw = _kw(op, w, p, "mean")
    fn = LOSSES[op][0]
    assert fn(x, y, **kw).grad_fn is None  # nothing requires grad
    xr = x.clone().requires_grad_()
    with torch.no_grad():
        out = fn(xr, y, **kw)
    assert out.grad_fn is None
    assert not out.requires_grad
    with torch.inference_mode():
        assert fn(xr, y, **kw).grad_fn is None
    out = fn(xr, y, **kw)
    assert out.requires_grad
    assert type(out.grad_fn).__name__ in ("BinaryCrossEntropyBackward",
                                          "BinaryCrossEntropyWithLogitsBackward")


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_inputs_are_not_modified(tb: Backend, op: str, reduction: str) -> None:
    """Forward, backward and double backward leave every argument's values and
    version counter (in-place writes) alone."""
    x, y, w, p = _dev(tb, *_data(op, "float64", interior=True))
    x.requires_grad_()
    y.requires_grad_()
    args = [a for a in (x, y, w, p) if a is not None]
    g = torch.full(() if reduction != "none" else x.shape, 0.37, dtype=x.dtype,
                   device=x.device, requires_grad=True)
    before = [(a.detach().clone(), a._version) for a in [*args, g]]
    loss = LOSSES[op][0](x, y, **_kw(op, w, p, reduction))
    gx, gy = torch.autograd.grad(loss, (x, y), g, create_graph=True)
    (gx.sum() + gy.sum()).backward()
    for a, (value, version) in zip([*args, g], before, strict=True):
        assert torch.equal(a.detach(), value)
        assert a._version == version


# ------------------------------------------------------------------ double backward
def _second(fn: Any, x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, which: int,
            kw: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """d/d(x, y, grad_output) of sum(v * first[which]), first = (d/dx, d/dy)."""
    x, y, g = (a.detach().clone().requires_grad_() for a in (x, y, g))
    first = torch.autograd.grad(fn(x, y, **kw), (x, y), g, create_graph=True)
    v = torch.linspace(-1.0, 1.0, x.numel(), dtype=x.dtype, device=x.device).reshape(x.shape)
    return torch.autograd.grad((first[which] * v).sum(), (x, y, g), materialize_grads=True)


#: Relative bounds for the double backward, float64, interior inputs.
#: BCE: torch's second derivative is the analytic formula with +eps forms
#: ((x*x - 2xy + y) / ((x+eps)^2 (1-x+eps)^2), eps = 1e-12; (x - y) / ((x+eps)(1-x+eps))),
#: xbce's the derivative of its first-derivative formula (eps only in a max), so they
#: differ by 2 eps (1/x + 1/(1-x)) <= 4.1e-10 relatively for x in [0.01, 0.99]; the
#: numerator's cancellation (>= min(x, 1-x)^2 = 1e-4 against terms <= 3) adds ~1e-11.
#: BCEWL: torch's sigmoid_backward is s * (1 - s), whose 1 - s loses up to
#: 2**-53 / (1 - s) = 1.1e-16 (1 + e^|x|) <= 2.5e-12 relatively for |x| <= 10 (xbce
#: differentiates 1 / (1 + exp(-x)) and stays accurate); a few ulps on top.
DOUBLE_RTOL = {"bce": 1e-9, "bcewl": 3e-12}


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("which", [0, 1], ids=["of_dinput", "of_dtarget"])
def test_double_backward(tb: Backend, op: str, reduction: str, which: int) -> None:
    x, y, w, p = _data(op, "float64", interior=True)
    g = rounded(0.37 if reduction != "none" else np.linspace(0.5, 2.0, x.numel()), "float64")
    g = g.reshape(() if reduction != "none" else x.shape)
    expected = _second(LOSSES[op][1], x, y, g, which, _kw(op, w, p, reduction))
    dx, dy, dw, dp, dg = _dev(tb, x, y, w, p, g)
    got = _second(LOSSES[op][0], dx, dy, dg, which, _kw(op, dw, dp, reduction))
    names = ("d/dinput", "d/dtarget", "d/dgrad_output")
    for name, a, e in zip(names, got, expected, strict=True):
        assert a.dtype == e.dtype
        assert a.shape == e.shape
        assert bool(torch.isfinite(e).all())
        torch.testing.assert_close(a.cpu(), e, rtol=DOUBLE_RTOL[op], atol=0.0,
                                   msg=lambda m, n=name: f"{op} {reduction} {n}: {m}")


# -------------------------------------------------------------------- torch.func
@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_func_grad(tb: Backend, op: str, dtype: str) -> None:
    x, y, w, p = _data(op, dtype)
    case = Case(op, x, y, rounded(1.0, dtype), "mean", weight=w, pos_weight=p)
    ex, ey = case.reference()
    dx, dy, dw, dp = _dev(tb, x, y, w, p)
    kw = _kw(op, dw, dp, "mean")
    gx, gy = torch.func.grad(lambda a, b: LOSSES[op][0](a, b, **kw), argnums=(0, 1))(dx, dy)
    qx, qy = case.quantities()
    sx, sy = case.scales()
    check(tb, gx, ex, qx, dtype, scale=sx, what="func.grad d/dinput")
    check(tb, gy, ey, qy, dtype, scale=sy, what="func.grad d/dtarget")


def _rows(op: str, x: torch.Tensor, y: torch.Tensor, w: Any, p: Any,
          reduction: str) -> Iterator[Case]:
    for i in range(x.shape[0]):
        yield Case(op, x[i], y[i], rounded(1.0, str(x.dtype)[6:]), reduction, weight=w,
                   pos_weight=p)


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_func_vmap(tb: Backend, op: str, dtype: str) -> None:
    """Per-example losses (vmap of the loss) and per-example gradients (vmap of grad)
    against torch row by row."""
    x, y, w, p = _data(op, dtype)
    dx, dy, dw, dp = _dev(tb, x, y, w, p)
    kw = _kw(op, dw, dp, "mean")

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return LOSSES[op][0](a, b, **kw)

    per_example = torch.func.vmap(loss)(dx, dy)
    expected = torch.stack([LOSSES[op][1](x[i], y[i], **_kw(op, w, p, "mean"))
                            for i in range(x.shape[0])])
    check(tb, per_example, expected, "reduced", dtype,
          scale=_loss_terms(op, x, y, _kw(op, w, p, "mean")).mean(dim=1), what="vmap loss")
    gx, gy = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)))(dx, dy)
    refs = [c.reference() for c in _rows(op, x, y, w, p, "mean")]
    ex, ey = torch.stack([r[0] for r in refs]), torch.stack([r[1] for r in refs])
    full = Case(op, x, y, rounded(1.0, dtype), "none", weight=w, pos_weight=p)
    qx, qy = full.quantities()
    sx, sy = full.scales()
    n = x.shape[1]
    check(tb, gx, ex, qx, dtype, scale=None if sx is None else sx / n, what="vmap grad dx")
    check(tb, gy, ey, qy, dtype, scale=None if sy is None else sy / n, what="vmap grad dy")


def test_func_transforms_poison_invalid_bce_values(tb: Backend) -> None:
    """Under torch.func xbce cannot read values (as under jit): an invalid target or
    input makes that example's loss NaN instead of raising."""
    x, y, w, _ = _dev(tb, *_data("bce", "float32"))
    y = y.clone()
    y[2, 1] = 1.5
    x = x.clone()
    x[4, 0] = -0.5
    losses = torch.func.vmap(lambda a, b: xbce.binary_cross_entropy(a, b, w))(x, y)
    assert torch.isnan(losses).tolist() == [False, False, True, False, True, False]
    gx = torch.func.grad(lambda a: xbce.binary_cross_entropy(a, y[:2], w, reduction="sum"))(x[:2])
    assert bool(torch.isfinite(gx).all())


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("mode", ["func.jvp", "forward_ad"])
def test_forward_mode(tb: Backend, op: str, reduction: str, mode: str) -> None:
    dtype = "float32"
    x, y, w, p = _data(op, dtype, interior=op == "bce")
    rng = np.random.default_rng(1)
    tx, ty = (rounded(rng.uniform(-1, 1, x.shape), dtype) for _ in range(2))
    expected = forward_ad(op, x, y, tx, ty, reduction, w, p)
    dx, dy, dw, dp, dtx, dty = _dev(tb, x, y, w, p, tx, ty)
    dkw = _kw(op, dw, dp, reduction)
    if mode == "func.jvp":
        _, got = torch.func.jvp(lambda a, b: LOSSES[op][0](a, b, **dkw), (dx, dy), (dtx, dty))
    else:
        with fwAD.dual_level():
            out = LOSSES[op][0](fwAD.make_dual(dx, dtx), fwAD.make_dual(dy, dty), **dkw)
            got = fwAD.unpack_dual(out).tangent
    scale = jvp_scale(op, x, y, tx, ty, reduction, w, p)
    quantity = "reduced"
    if reduction == "none":
        quantity = "bce_tgrad" if op == "bce" else "bcewl_grad"
    check(tb, got, expected, quantity, dtype, scale=scale, what=f"{mode} {op} {reduction}")


# --------------------------------------------------------------------- compile
@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    torch.compiler.reset()
    yield
    torch.compiler.reset()


@pytest.mark.filterwarnings(
    # torch 2.13's Dynamo instantiates Function itself to trace any autograd.Function's
    # ctx (side_effects.track_object_new), and torch warns about that
    "ignore:.*Function'> should not be instantiated:DeprecationWarning",
)
@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("op", ["bce", "bcewl"])
def test_compile(tb: Backend, op: str) -> None:
    """torch.compile (aot_eager: no C compiler in the loop) of a training step:
    torch's loss and gradient; invalid BCE values give NaN instead of raising."""
    dtype = "float32"
    x, y, w, p = _data(op, dtype)
    kw = _kw(op, w, p, "mean")
    dx, dy, dw, dp = _dev(tb, x, y, w, p)
    dkw = _kw(op, dw, dp, "mean")

    @torch.compile(backend="aot_eager")
    def step(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return LOSSES[op][0](a, b, **dkw)

    xr = dx.clone().requires_grad_()
    loss = step(xr, dy)
    loss.backward()
    expected = LOSSES[op][1](x, y, **kw)
    check(tb, loss.detach(), expected, "reduced", dtype, scale=_loss_terms(op, x, y, kw).mean(),
          what="compiled loss")
    case = Case(op, x, y, rounded(1.0, dtype), "mean", weight=w, pos_weight=p)
    check(tb, xr.grad, case.reference()[0], case.quantities()[0], dtype,
          scale=case.scales()[0], what="compiled d/dinput")
    if op == "bce":
        for i in range(2):
            bad = [dx.clone(), dy.clone()]
            bad[i][0, 0] = 1.5
            assert bool(torch.isnan(step(*bad)))
            with pytest.raises(RuntimeError, match="between 0 and 1"):
                LOSSES[op][0](*bad, **dkw)  # eager raises, as torch does
