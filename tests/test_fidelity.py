"""Bit-identical to torch where torch's kernel is a composite of torch ops.

BCE-with-logits is ``log_sigmoid``/``sigmoid`` plus elementwise tensor ops in torch
(``Loss.cpp``, ``FunctionsManual.cpp``); on torch tensors xbce calls the same
primitives in the same order with the same in-place dtypes, so its value (every
reduction's elementwise part), both gradients, with ``weight`` and ``pos_weight``, in
every dtype and every dtype combination torch accepts, are torch's bits: compared here
with ``torch.equal`` (plus NaN where NaN, and the sign of zeros), not a tolerance.
The reference is always computed in the test, by ``torch.nn.functional``.

BCE on probabilities is a scalar C++ kernel in torch (glibc ``logf``/``log``): its
forward is within ulps, not bit-identical (see ``docs/backends.md``); its gradients,
and the training loop below, are bit-identical.

Runs when the ``torch`` backend is selected (``XBCE_BACKENDS``).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as TF
from backends import BACKENDS

import xbce

pytestmark = pytest.mark.skipif("torch" not in BACKENDS, reason="torch backend not selected")

DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
REDUCTIONS = ("none", "mean", "sum")


def assert_same_bits(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal dtype, shape and values; NaN where NaN; equal signs of zeros."""
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    g, e = got.detach().reshape(-1), expected.detach().reshape(-1)
    nan = torch.isnan(g) & torch.isnan(e)
    bad = ~nan & ((g != e) | (torch.signbit(g) != torch.signbit(e)))
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {g.numel()} elements differ from torch, "
            f"e.g. [{i}] {g[i].item()!r} != {e[i].item()!r}"
        )


def logits(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Logits with the values that matter: random over [-20, 20], where sigmoid(x) ~ t
    (the gradient cancels), large, tiny and special values."""
    rng = np.random.default_rng(seed)
    special = [0.0, -0.0, 1e-30, -1e-30, 17.0, -17.0, 40.0, -40.0, 1e4, -1e4,
               np.inf, -np.inf, np.nan, 88.7, -88.7, 700.0, -745.0]
    body = rng.uniform(-20, 20, n - len(special))
    body[: n // 4] = rng.normal(0, 1, n // 4)  # where sigmoid(x) - t cancels
    return torch.as_tensor(np.concatenate([special, body])).to(dtype)


def targets(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed + 1)
    t = rng.uniform(0, 1, n)
    t[::3] = rng.integers(0, 2, t[::3].shape)
    return torch.as_tensor(t).to(dtype)


def positive(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed + 2).uniform(0.1, 3, shape)).to(dtype)


def run(lib: Any, x: torch.Tensor, t: torch.Tensor, g: torch.Tensor, *, create_graph: bool,
        **kw: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss and both gradients through autograd."""
    xr, tr = x.clone().requires_grad_(), t.clone().requires_grad_()
    out = lib.binary_cross_entropy_with_logits(xr, tr, **kw)
    gx, gt = torch.autograd.grad(out, (xr, tr), g, create_graph=create_graph)
    return out.detach(), gx.detach(), gt.detach()


def check_all(x: torch.Tensor, t: torch.Tensor, reduction: str, what: str, **kw: Any) -> None:
    """Forward, both gradients by autograd (plain and ``create_graph``, which runs
    torch's out-of-place backward) and by the explicit backward functions."""
    g = (
        torch.as_tensor(np.random.default_rng(7).normal(0, 2, tuple(x.shape))).to(t.dtype)
        if reduction == "none"
        else torch.tensor(1.5, dtype=t.dtype)
    )
    for create_graph in (False, True):
        ref = run(TF, x, t, g, create_graph=create_graph, reduction=reduction, **kw)
        got = run(xbce, x, t, g, create_graph=create_graph, reduction=reduction, **kw)
        for name, a, b in zip(("loss", "d/d input", "d/d target"), got, ref, strict=True):
            assert_same_bits(a, b, f"{what} {reduction} {name} create_graph={create_graph}")
    ref = run(TF, x, t, g, create_graph=False, reduction=reduction, **kw)
    w, p = kw.get("weight"), kw.get("pos_weight")
    gx = xbce.binary_cross_entropy_with_logits_backward(g, x, t, w, reduction, p)
    gt = xbce.binary_cross_entropy_with_logits_target_backward(g, x, t, w, reduction, p)
    assert_same_bits(gx, ref[1], f"{what} {reduction} binary_cross_entropy_with_logits_backward")
    assert_same_bits(gt, ref[2], f"{what} {reduction} ..._target_backward")


WEIGHTINGS = ("none", "weight", "pos_weight", "both")


def _kw(weighting: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if weighting in ("weight", "both"):
        kw["weight"] = positive(shape, dtype, seed)
    if weighting in ("pos_weight", "both"):
        kw["pos_weight"] = positive(shape[-1:], dtype, seed + 5)
    return kw


# ------------------------------------------------------------------- one dtype
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_bit_identical(dtype: str, weighting: str, reduction: str) -> None:
    d = DTYPES[dtype]
    x, t = logits(64 * 31, d, 0).reshape(64, 31), targets(64 * 31, d, 0).reshape(64, 31)
    check_all(x, t, reduction, f"{dtype} {weighting}", **_kw(weighting, (64, 31), d, 3))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bce_with_logits_bit_identical_in_blocks(dtype: str) -> None:
    """Large arrays are evaluated block by block (``_blocks``): same bits."""
    d, n = DTYPES[dtype], (1 << 18) + 3
    x, t = logits(n, d, 1), targets(n, d, 1)
    kw = {"weight": positive((n,), d, 2), "pos_weight": positive((1,), d, 3)}
    for reduction in ("none", "mean"):
        check_all(x, t, reduction, f"{dtype} blocks", **kw)


# ------------------------------------------------------------------ mixed dtypes
MIXED = [(a, b) for a, b in itertools.product(DTYPES, DTYPES) if a != b]


@pytest.mark.parametrize(("input_dtype", "target_dtype"), MIXED)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_mixed_input_and_target_dtypes(input_dtype: str, target_dtype: str,
                                       reduction: str) -> None:
    """torch computes ``(1 - t).mul_(x)`` in the promoted dtype and rounds to ``t``'s,
    the gradient ``sigmoid(x).sub_(t).mul_(grad)`` in ``x``'s (``create_graph``: in
    the promoted one): every combination, with weights of every dtype."""
    x = logits(257, DTYPES[input_dtype], 4)
    t = targets(257, DTYPES[target_dtype], 4)
    check_all(x, t, reduction, f"x {input_dtype} t {target_dtype}")
    for wd in DTYPES:
        for name in ("weight", "pos_weight"):
            kw = {name: positive((257,), DTYPES[wd], 5)}
            check_all(x, t, reduction, f"x {input_dtype} t {target_dtype} {name} {wd}", **kw)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("weight_dtype", list(DTYPES))
def test_zero_dim_weights_do_not_promote(dtype: str, weight_dtype: str) -> None:
    """A 0-d ``weight``/``pos_weight`` (or 0-d gradient) next to a dimensioned tensor
    does not widen torch's result dtype: ``f32 * f64(0-d)`` runs in float32, and a
    half ``mul`` reads a 0-d operand at float32 precision."""
    d = DTYPES[dtype]
    x, t = logits(300, d, 6), targets(300, d, 6)
    w = torch.tensor(0.3, dtype=DTYPES[weight_dtype])
    p = torch.tensor(2.7, dtype=DTYPES[weight_dtype])
    for reduction in REDUCTIONS:
        check_all(x, t, reduction, f"0-d {weight_dtype}", weight=w, pos_weight=p)


def test_bce_zero_dim_weight_is_expanded_as_torch_does() -> None:
    """BCE's Python wrapper expands ``weight`` to the input's shape: a 0-d float64
    weight on float32 data multiplies in float64 there (unlike BCE-with-logits)."""
    rng = np.random.default_rng(8)
    x = torch.as_tensor(rng.uniform(0, 1, 500), dtype=torch.float32)
    y = torch.as_tensor(rng.uniform(0, 1, 500), dtype=torch.float32)
    w = torch.tensor(0.1, dtype=torch.float64)
    for reduction in REDUCTIONS:
        res = []
        for lib in (TF, xbce):
            xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
            out = lib.binary_cross_entropy(xr, yr, w, reduction=reduction)
            gx, gy = torch.autograd.grad(out.sum(), (xr, yr))
            res.append((gx, gy))
        assert_same_bits(res[1][0], res[0][0], f"bce 0-d weight {reduction} d/d input")
        assert_same_bits(res[1][1], res[0][1], f"bce 0-d weight {reduction} d/d target")


# ------------------------------------------------------------ autodiff paths
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_func_grad_and_vmap_give_eager_torch_bits(dtype: str) -> None:
    """Rows of 64: torch's own sigmoid rounds differently in the scalar tail of its
    vectorised loops than in their body, so its bits depend on an element's position
    modulo the vector width; here every element is in a body under vmap and per row."""
    d = DTYPES[dtype]
    x, t = logits(8 * 64, d, 9).reshape(8, 64), targets(8 * 64, d, 9).reshape(8, 64)
    p = positive((64,), d, 9)
    xr = x.clone().requires_grad_()
    TF.binary_cross_entropy_with_logits(xr, t, pos_weight=p).backward()

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return xbce.binary_cross_entropy_with_logits(a, b, pos_weight=p)

    assert_same_bits(torch.func.grad(loss)(x, t), xr.grad, "torch.func.grad")  # type: ignore[arg-type]
    rows = torch.func.vmap(torch.func.grad(loss))(x, t)
    for i in range(x.shape[0]):
        xi = x[i].clone().requires_grad_()
        TF.binary_cross_entropy_with_logits(xi, t[i], pos_weight=p).backward()
        assert_same_bits(rows[i], xi.grad, f"vmap(grad) row {i}")  # type: ignore[arg-type]


# torch's forward AD of its own loss imports torch._decomp.decompositions_for_jvp,
# which calls the deprecated torch.jit.script once per process
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_forward_ad_gives_torch_bits() -> None:
    x, t = logits(500, torch.float32, 10), targets(500, torch.float32, 10)
    tx = torch.as_tensor(np.random.default_rng(10).normal(0, 1, 500), dtype=torch.float32)
    tt = torch.as_tensor(np.random.default_rng(11).normal(0, 1, 500), dtype=torch.float32)
    for reduction in REDUCTIONS:
        tangents = []
        for lib in (TF, xbce):
            with fwAD.dual_level():
                out = lib.binary_cross_entropy_with_logits(
                    fwAD.make_dual(x, tx), fwAD.make_dual(t, tt), reduction=reduction
                )
                tangents.append(fwAD.unpack_dual(out).tangent)
        assert_same_bits(tangents[1], tangents[0], f"forward AD {reduction}")


@pytest.mark.filterwarnings(
    "ignore:.*Function'> should not be instantiated:DeprecationWarning",
)
def test_compile_gives_eager_torch_bits() -> None:
    torch.compiler.reset()
    try:
        x, t = logits(600, torch.float32, 12), targets(600, torch.float32, 12)
        p = positive((600,), torch.float32, 12)

        @torch.compile(backend="aot_eager")
        def step(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return xbce.binary_cross_entropy_with_logits(a, b, pos_weight=p, reduction="none")

        xr, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
        got = step(xr, t)
        expected = TF.binary_cross_entropy_with_logits(xe, t, pos_weight=p, reduction="none")
        assert_same_bits(got, expected, "compiled loss")
        g = torch.linspace(-1, 1, 600)
        got.backward(g)
        expected.backward(g)
        assert_same_bits(xr.grad, xe.grad, "compiled d/d input")  # type: ignore[arg-type]
    finally:
        torch.compiler.reset()


# ------------------------------------------------------------------- training
def _train(loss_fn: Any, logits_loss: bool, dtype: torch.dtype, steps: int = 100,
           **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A logistic regression trained by plain SGD; returns its weight and bias."""
    rng = np.random.default_rng(13)
    data = torch.as_tensor(rng.normal(0, 1, (256, 20)), dtype=dtype)
    true_w = torch.as_tensor(rng.normal(0, 1, (20, 1)), dtype=dtype)
    labels = (torch.sigmoid(data @ true_w) > torch.as_tensor(rng.uniform(0, 1, (256, 1)),
                                                             dtype=dtype)).to(dtype)
    torch.manual_seed(0)
    model = torch.nn.Linear(20, 1).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        out = model(data)
        loss = loss_fn(out if logits_loss else torch.sigmoid(out), labels, **kw)
        loss.backward()
        opt.step()
    return model.weight.detach().clone(), model.bias.detach().clone()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["BCEWithLogitsLoss", "BCEWithLogitsLoss+pos_weight",
                                  "BCELoss"])
def test_training_loop_gives_torch_weights(dtype: str, loss: str) -> None:
    """100 SGD steps with ``xbce.<Loss>`` give the weights of the same loop with
    ``torch.nn.<Loss>``, bit for bit."""
    d = DTYPES[dtype]
    name, _, extra = loss.partition("+")
    kw = {"pos_weight": torch.tensor([2.5], dtype=d)} if extra else {}
    logits_loss = name == "BCEWithLogitsLoss"
    ref = _train(getattr(torch.nn, name)(**kw), logits_loss, d)
    got = _train(getattr(xbce, name)(**kw), logits_loss, d)
    assert_same_bits(got[0], ref[0], f"{loss} weights after 100 steps")
    assert_same_bits(got[1], ref[1], f"{loss} bias after 100 steps")
