"""xbce inside JAX's transformations: grad, jit, vmap, jvp, jacfwd/jacrev, hessian.

Runs for the JAX backends selected by ``XBCE_BACKENDS``. Expected values come from
``torch.nn.functional`` with eager autograd (reverse mode) or eager forward AD on the
CPU, from the same rounded inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from backends import BACKENDS, Backend, load, rounded
from comparisons import check
from grads import LOSSES, Case, forward_ad, jvp_scale

import xbce

JAX_BACKENDS = [b for b in BACKENDS if b in ("jax", "jax_gpu")]
pytestmark = pytest.mark.skipif(not JAX_BACKENDS, reason="no JAX backend selected")

SHAPE = (6, 5)
DTYPES = ["float32", "float64"]


@pytest.fixture(params=JAX_BACKENDS, scope="module")
def jb(request: pytest.FixtureRequest) -> Backend:
    return load(request.param)


def _data(op: str, dtype: str, seed: int = 0, interior: bool = False) -> dict[str, Any]:
    """CPU tensors x, y, weight (per column), pos_weight (per column, logits only);
    edge values first unless ``interior`` (finite gradient coefficients)."""
    rng = np.random.default_rng(seed)
    if op == "bce":
        x = rng.uniform(0.01, 0.99, SHAPE)
        if not interior:
            x.flat[:4] = [0.0, 1.0, 1e-7, 1 - 1e-7]
    else:
        x = rng.normal(0.0, 6.0, SHAPE)
        if not interior:
            x.flat[:3] = [np.inf, -np.inf, 0.0]
    d = {"x": rounded(x, dtype), "y": rounded(rng.uniform(0.0, 1.0, SHAPE), dtype),
         "weight": rounded(rng.uniform(0.5, 2.0, SHAPE[1]), dtype), "pos_weight": None}
    if op == "bcewl":
        d["pos_weight"] = rounded(rng.uniform(0.0, 3.0, SHAPE[1]), dtype)
    return d


def _kw(op: str, d: dict[str, Any], reduction: str, conv: Any = None) -> dict[str, Any]:
    conv = conv or (lambda a: a)
    kw = {"weight": conv(d["weight"]), "reduction": reduction}
    if op == "bcewl":
        kw["pos_weight"] = conv(d["pos_weight"])
    return kw


def _conv(jb: Backend, dtype: str) -> Any:
    return lambda a: None if a is None else jb.asarray(a, dtype)


def _case(op: str, d: dict[str, Any], reduction: str, g: float = 1.0,
          rows: slice | int = slice(None)) -> Case:
    dtype = str(d["x"].dtype).removeprefix("torch.")
    return Case(op, d["x"][rows], d["y"][rows], rounded(g, dtype), reduction,
                weight=d["weight"], pos_weight=d["pos_weight"])


def _check_grads(jb: Backend, got: tuple[Any, Any], case: Case, what: str,
                 plus: str | None = None) -> None:
    ex, ey = case.reference()
    qx, qy = case.quantities()
    sx, sy = case.scales()
    check(jb, got[0], ex, qx, case.dtype, scale=sx, what=f"{what} d/dinput", plus=plus)
    check(jb, got[1], ey, qy, case.dtype, scale=sy, what=f"{what} d/dtarget", plus=plus)


def _loss_scale(op: str, d: dict[str, Any], reduction: str) -> torch.Tensor:
    """sum or mean of |elementwise loss| (float64): the scale of a reduction's rounding."""
    kw = {k: (v.double() if isinstance(v, torch.Tensor) else v)
          for k, v in _kw(op, d, "none").items()}
    terms = LOSSES[op][1](d["x"].double(), d["y"].double(), **kw).abs()
    return terms.mean() if reduction == "mean" else terms.sum()


# ------------------------------------------------------------------ reverse mode
@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_grad_and_value_and_grad(jb: Backend, op: str, dtype: str, reduction: str) -> None:
    """jax.grad (argnums input, target, both) and jax.jit(jax.value_and_grad)."""
    import jax

    d = _data(op, dtype)
    conv = _conv(jb, dtype)
    kw = _kw(op, d, reduction, conv)

    def loss(a: Any, b: Any) -> Any:
        return LOSSES[op][0](a, b, **kw)

    x, y = conv(d["x"]), conv(d["y"])
    case = _case(op, d, reduction)
    _check_grads(jb, jax.grad(loss, argnums=(0, 1))(x, y), case, "grad")
    _check_grads(jb, (jax.grad(loss, argnums=0)(x, y), jax.grad(loss, argnums=1)(x, y)), case,
                 "grad argnums=0 / 1")
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, y)
    expected = LOSSES[op][1](d["x"], d["y"], **_kw(op, d, reduction))
    check(jb, value, expected, "reduced", dtype, scale=_loss_scale(op, d, reduction),
          what="jit(value_and_grad) value")
    _check_grads(jb, grads, case, "jit(value_and_grad)")


@pytest.mark.parametrize("op", ["bce", "bcewl"])
def test_vmap_per_example(jb: Backend, op: str) -> None:
    """Per-example losses (vmap) and per-example gradients (jit of vmap of grad)."""
    import jax

    dtype = "float32"
    d = _data(op, dtype)
    conv = _conv(jb, dtype)
    kw = _kw(op, d, "mean", conv)

    def loss(a: Any, b: Any) -> Any:
        return LOSSES[op][0](a, b, **kw)

    x, y = conv(d["x"]), conv(d["y"])
    expected = torch.stack([LOSSES[op][1](d["x"][i], d["y"][i], **_kw(op, d, "mean"))
                            for i in range(SHAPE[0])])
    rows = [_case(op, d, "mean", rows=i) for i in range(SHAPE[0])]
    scale = torch.stack([_loss_scale(op, {**d, "x": c.x, "y": c.y}, "mean") for c in rows])
    check(jb, jax.vmap(loss)(x, y), expected, "reduced", dtype, scale=scale, what="vmap loss")
    refs = [c.reference() for c in rows]
    ex, ey = torch.stack([r[0] for r in refs]), torch.stack([r[1] for r in refs])
    full = _case(op, d, "none", g=1.0 / SHAPE[1])  # the scales of per-row means
    qx, qy = full.quantities()
    sx, sy = full.scales()
    gx, gy = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))(x, y)
    check(jb, gx, ex, qx, dtype, scale=sx, what="jit(vmap(grad)) d/dinput")
    check(jb, gy, ey, qy, dtype, scale=sy, what="jit(vmap(grad)) d/dtarget")


@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.x64  # float64 on JAX
def test_jacrev_and_jacfwd(jb: Backend, op: str, reduction: str) -> None:
    """Jacobians (jitted) w.r.t. input and target, finite coefficients (an infinite one makes a
    whole Jacobian row or column NaN through 0 * inf, in torch too): diagonal for none,
    torch's elementwise gradients on it; the gradient for mean. jacrev is torch's
    backward; jacfwd is the JVP on basis tangents, which applies the chain in the other
    order (see _jax)."""
    import jax
    import jax.numpy as jnp

    dtype = "float64"
    d = _data(op, dtype, interior=True)
    conv = _conv(jb, dtype)
    kw = _kw(op, d, reduction, conv)
    x, y = conv(d["x"][0]), conv(d["y"][0])
    g = 1.0 if reduction == "mean" else np.ones(SHAPE[1])
    case = Case(op, d["x"][0], d["y"][0], rounded(g, dtype), reduction, weight=d["weight"],
                pos_weight=d["pos_weight"])

    def loss(a: Any, b: Any) -> Any:
        return LOSSES[op][0](a, b, **kw)

    for jac, name in ((jax.jacrev, "jacrev"), (jax.jacfwd, "jacfwd")):
        jx, jy = jax.jit(jac(loss, argnums=(0, 1)))(x, y)
        if reduction == "none":
            off = ~jnp.eye(SHAPE[1], dtype=bool)
            assert not bool(jnp.any(jnp.where(off, jx, 0) != 0)), f"{name}: off-diagonal"
            assert not bool(jnp.any(jnp.where(off, jy, 0) != 0)), f"{name}: off-diagonal"
            jx, jy = jnp.diagonal(jx), jnp.diagonal(jy)
        # jacrev and jacfwd batch the (co)tangent, not the primal: XLA then divides by a
        # broadcast divisor as a * (1/b) (BCE's (1-x)x; numel for jacfwd's mean)
        plus = "broadcast_div" if name == "jacrev" and reduction == "none" else None
        if name == "jacfwd":
            plus = "jvp_order_mean" if reduction == "mean" else "jvp_order"
        _check_grads(jb, (jx, jy), case, f"{name} {reduction}", plus=plus)


@pytest.mark.x64  # float64 on JAX
def test_hessian(jb: Backend) -> None:
    """jax.hessian (forward over reverse, jitted) runs, and its input-input block is torch's
    second derivative (the +eps forms: relative 4.1e-10 in [0.01, 0.99], see
    test_torch_autograd.DOUBLE_RTOL); target-target is zero."""
    import jax

    rng = np.random.default_rng(2)
    x = rounded(rng.uniform(0.01, 0.99, 7), "float64")
    y = rounded(rng.uniform(0.0, 1.0, 7), "float64")
    conv = _conv(jb, "float64")

    def loss(a: Any, b: Any) -> Any:
        return xbce.binary_cross_entropy(a, b, reduction="sum")

    (hxx, hxy), (hyx, hyy) = jax.jit(jax.hessian(loss, argnums=(0, 1)))(conv(x), conv(y))
    xa, ya = x.clone().requires_grad_(), y.clone().requires_grad_()
    gx, _ = torch.autograd.grad(LOSSES["bce"][1](xa, ya, reduction="sum"), (xa, ya),
                                create_graph=True)
    dxx, dxy = torch.autograd.grad(gx.sum(), (xa, ya))
    for h, e in ((hxx, dxx), (hxy, dxy), (hyx, dxy)):
        got = jb.to_torch(h)
        assert torch.equal(got, torch.diag(torch.diagonal(got)))
        torch.testing.assert_close(torch.diagonal(got), e, rtol=1e-9, atol=0.0)
    assert not bool(jax.numpy.any(hyy != 0))
    # BCE with logits (mean): each block is torch's second derivative, diagonal too
    z = rounded(rng.normal(0.0, 3.0, 7), "float64")
    (lxx, lxy), (lyx, lyy) = jax.jit(jax.hessian(
        lambda a, b: xbce.binary_cross_entropy_with_logits(a, b), argnums=(0, 1)
    ))(conv(z), conv(y))
    za, ya = z.clone().requires_grad_(), y.clone().requires_grad_()
    gz, gy = torch.autograd.grad(LOSSES["bcewl"][1](za, ya), (za, ya), create_graph=True)
    dzz, dzy = torch.autograd.grad(gz.sum(), (za, ya))
    _, dyy = torch.autograd.grad(gy.sum(), (za, ya), allow_unused=True, materialize_grads=True)
    for h, e in ((lxx, dzz), (lxy, dzy), (lyx, dzy), (lyy, dyy)):
        got = jb.to_torch(h)
        assert torch.equal(got, torch.diag(torch.diagonal(got)))
        # float64, a few roundings of sigmoid(z)(1 - sigmoid(z)) / numel: 8 ulp relative
        torch.testing.assert_close(torch.diagonal(got), e, rtol=8 * 2.0**-52, atol=0.0)


# ------------------------------------------------------------------ forward mode
@pytest.mark.parametrize("op", ["bce", "bcewl"])
@pytest.mark.parametrize(("reduction", "dtype"), [("none", "float32"), ("none", "float64"),
                                                  ("mean", "float64"), ("sum", "float32")])
def test_jvp(jb: Backend, op: str, dtype: str, reduction: str) -> None:
    """jax.jvp (eager and jitted) against torch's forward AD (derivatives.yaml's
    formula). xbce's JVP applies each gradient's chain in reverse (its transpose is
    torch's backward), and mean is sum(t_i / n) instead of sum(t_i) / n."""
    import jax

    d = _data(op, dtype, interior=op == "bce")  # BCE: finite target tangents
    rng = np.random.default_rng(1)
    tx, ty = (rounded(rng.uniform(-1, 1, SHAPE), dtype) for _ in range(2))
    args = (d["x"], d["y"], tx, ty, reduction, d["weight"], d["pos_weight"])
    expected = forward_ad(op, *args)
    conv = _conv(jb, dtype)
    kw = _kw(op, d, reduction, conv)

    def tangent(a: Any, b: Any, ta: Any, tb: Any) -> Any:
        return jax.jvp(lambda u, v: LOSSES[op][0](u, v, **kw), (a, b), (ta, tb))[1]

    quantity, plus = "reduced", None
    if reduction == "none":
        quantity, plus = ("bce_tgrad" if op == "bce" else "bcewl_grad"), "jvp_order"
    inputs = [conv(a) for a in (d["x"], d["y"], tx, ty)]
    for fn, name in ((tangent, "jvp"), (jax.jit(tangent), "jit(jvp)")):
        check(jb, fn(*inputs), expected, quantity, dtype, scale=jvp_scale(op, *args),
              what=f"{name} {reduction}", plus=plus)


# --------------------------------------------------------------- refusals, NaN
@pytest.mark.parametrize(("op", "arg"), [("bce", "weight"), ("bcewl", "weight"),
                                         ("bcewl", "pos_weight")])
@pytest.mark.parametrize("mode", ["grad", "jvp"])
def test_weight_is_not_differentiable(jb: Backend, op: str, arg: str, mode: str) -> None:
    import jax

    d = _data(op, "float32")
    conv = _conv(jb, "float32")
    kw = _kw(op, d, "mean", conv)
    x, y, v = conv(d["x"]), conv(d["y"]), kw.pop(arg)

    def loss(value: Any) -> Any:
        return LOSSES[op][0](x, y, **{arg: value}, **kw)

    name = "binary_cross_entropy" + ("_with_logits" if op == "bcewl" else "")
    match = f"'{name}' is not differentiable with respect to argument '{arg}'"
    transform = jax.grad(loss) if mode == "grad" else (lambda u: jax.jvp(loss, (u,), (u,)))
    with pytest.raises(TypeError, match=match):
        transform(v)


def test_jit_invalid_bce_values_give_nan(jb: Backend) -> None:
    """Under jit the values are tracers: no check (no host sync), NaN where an input or
    target is outside [0, 1], as torch.compile does; eagerly, torch's error."""
    import jax

    d = _data("bce", "float32")
    conv = _conv(jb, "float32")
    x, y = d["x"].clone(), d["y"].clone()
    x[1, 2] = 1.5
    y[3, 4] = -0.25
    per_row = jax.jit(jax.vmap(lambda a, b: xbce.binary_cross_entropy(a, b)))
    assert np.isnan(np.asarray(per_row(conv(x), conv(y)))).tolist() == [
        False, True, False, True, False, False]
    loss = jax.jit(lambda a, b: xbce.binary_cross_entropy(a, b, reduction="none"))
    assert int(np.isnan(np.asarray(loss(conv(x), conv(y)))).sum()) == 2
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        xbce.binary_cross_entropy(conv(x), conv(y))
