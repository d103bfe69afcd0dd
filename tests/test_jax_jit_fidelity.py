"""Under the caller's ``jax.jit`` xbce rounds as it does op by op (and as torch does).

XLA's CPU compiler contracts ``a * b - c`` into a fused multiply-add inside a fused
computation, and simplifies ``(1 + u) - 1``; xbce's JAX namespace
(``xbce/_jax.py``) keeps each product rounded and its float64 ``log1p``
accurate. Expected values: torch (computed here), or xbce's own op-by-op evaluation
(``jax.disable_jit``), which the other JAX tests compare with torch.

Runs for the JAX backends selected by ``XBCE_BACKENDS``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, Backend, load
from cases import probabilities, targets
from tolerances import ulps as tolerance

import xbce

JAX_BACKENDS = [b for b in BACKENDS if b in ("jax", "jax_gpu")]
pytestmark = pytest.mark.skipif(not JAX_BACKENDS, reason="no JAX backend selected")


@pytest.fixture(params=JAX_BACKENDS, scope="module")
def jb(request: pytest.FixtureRequest) -> Backend:
    return load(request.param)


def _bits(a: Any) -> np.ndarray:
    """The bit patterns of ``a``, every NaN as the same NaN."""
    a = np.array(a)
    a[np.isnan(a)] = np.nan
    return a.view(f"u{a.itemsize}")


def _differing(got: Any, expected: Any) -> int:
    return int((_bits(got) != _bits(expected)).sum())


def test_readme_example_is_torch_bit_for_bit_under_jit(jb: Backend) -> None:
    """The README's JAX example: jit of the loss and jax.grad of it (was 11 ulp off)."""
    import jax

    t_np = np.asarray([0.0, 1.0, 1.0], np.float32)
    logits = jb.asarray(torch.tensor([-20.0, 0.0, 3.0]), "float32")
    t = jb.asarray(torch.from_numpy(t_np), "float32")
    pos = jb.asarray(torch.tensor(3.0), "float32")
    f = jax.jit(lambda x: xbce.binary_cross_entropy_with_logits(x, t, pos_weight=pos))
    value, grad = f(logits), jax.grad(f)(logits)

    x = torch.tensor([-20.0, 0.0, 3.0], requires_grad=True)
    expected = TF.binary_cross_entropy_with_logits(x, torch.from_numpy(t_np),
                                                   pos_weight=torch.tensor(3.0))
    (expected_grad,) = torch.autograd.grad(expected, x)
    assert _differing(value, expected.detach().numpy()) == 0
    assert _differing(grad, expected_grad.numpy()) == 0, (np.asarray(grad), expected_grad)


def _data(op: str, dtype: str, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = probabilities(rng, n, subnormal=False) if op == "bce" else rng.normal(0.0, 4.0, n)
    return {
        "x": x.astype(dtype),
        "y": targets(rng, n, soft=True).astype(dtype),
        "weight": rng.uniform(0.5, 2.0, n).astype(dtype),
        "pos_weight": rng.uniform(0.0, 3.0, n).astype(dtype),
        "cotangent": rng.uniform(-1.0, 1.0, n).astype(dtype),
    }


CASES = [
    (op, reduction, weighted, pos)
    for op, reduction, weighted, pos in itertools.product(
        ("bce", "bcewl"), ("none", "mean", "sum"), (False, True), (False, True)
    )
    if op == "bcewl" or not pos
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("op", "reduction", "weighted", "pos"), CASES)
def test_jit_value_and_gradients_equal_op_by_op(
    jb: Backend, dtype: str, op: str, reduction: str, weighted: bool, pos: bool
) -> None:
    """jit(vjp) gives the bits of op-by-op evaluation: value, d/dinput, d/dtarget.

    Before xbce kept products rounded, 20-35% of BCE-with-logits elements differed
    (up to 3.6e4 float32 ulp where the gradient cancels). BCE's float32 value (no
    cancellation) is left to XLA's fused multiply-add: within one ulp (two with a weight)."""
    import jax
    import jax.numpy as jnp

    d = {k: jnp.asarray(v) for k, v in _data(op, dtype, 4096, seed=7).items()}
    if reduction != "none":
        d["cotangent"] = jnp.asarray(0.37, dtype=dtype)

    def value_and_grads(x: Any, y: Any, w: Any, p: Any, ct: Any) -> Any:
        def loss(a: Any, b: Any) -> Any:
            kw: dict[str, Any] = {"reduction": reduction, "weight": w if weighted else None}
            if op == "bcewl":
                return xbce.binary_cross_entropy_with_logits(
                    a, b, pos_weight=p if pos else None, **kw
                )
            return xbce.binary_cross_entropy(a, b, **kw)

        value, vjp = jax.vjp(loss, x, y)
        return (value, *vjp(ct))

    args = (d["x"], d["y"], d["weight"], d["pos_weight"], d["cotangent"])
    jitted = jax.jit(value_and_grads)(*args)
    with jax.disable_jit():
        eager = value_and_grads(*args)
    for name, got, expected in zip(("value", "d/dinput", "d/dtarget"), jitted, eager,
                                   strict=True):
        if name == "value" and reduction != "none":
            continue  # a sum: XLA's reduction tree is its own (tests/tolerances.py 'reduced')
        if name == "value" and op == "bce" and dtype == "float32":
            # BCE's two terms do not cancel: in float32 xbce lets XLA fuse their
            # multiply-add (_jax._rounded), which moves a value by <= 1 ulp, and
            # the weight's rounding of a value that already differs by one more
            got, expected = np.asarray(got), np.asarray(expected)
            finite = np.isfinite(expected)
            assert np.array_equal(got[~finite], expected[~finite], equal_nan=True)
            ulps = np.abs(got[finite] - expected[finite]) / np.spacing(np.abs(expected[finite]))
            limit = 2 if weighted else 1
            assert float(ulps.max()) <= limit, f"value: {float(ulps.max())} ulp from op by op"
            continue
        assert _differing(got, expected) == 0, f"{name}: jit differs from op by op"


@pytest.mark.x64  # float64 on JAX
def test_float64_bce_within_glibc_ulps(jb: Backend) -> None:
    """float64 BCE on JAX against torch's kernel (glibc log/log1p): within the float64
    tolerance of every backend (3 ulp) on the probabilities corpus (XLA's own log1p was
    up to 129 ulp off), eager and jit."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(3)
    n = 1 << 16
    x = probabilities(rng, n)
    x[:8] = [0.0, -0.0, 1.0, 0.5, 0.34, 0.4, 0.49, 1 - 2.0**-53]
    y = targets(rng, n, soft=True)
    expected = TF.binary_cross_entropy(torch.from_numpy(x), torch.from_numpy(y),
                                       reduction="none").numpy()
    f = lambda a, b: xbce.binary_cross_entropy(a, b, reduction="none")  # noqa: E731
    for got in (f(jnp.asarray(x), jnp.asarray(y)), jax.jit(f)(jnp.asarray(x), jnp.asarray(y))):
        got = np.asarray(got)
        assert np.array_equal(np.signbit(got), np.signbit(expected))
        ulps = np.abs(got - expected) / np.spacing(np.abs(expected))
        assert float(ulps.max()) <= tolerance("bce", "float64", jb.name), float(ulps.max())


@pytest.mark.x64  # float64 on JAX
def test_float64_log1p_namespace_against_glibc(jb: Backend) -> None:
    """The JAX namespace's float64 log1p on [-1, 0] (BCE's log1p(-x)): <= 1 ulp from
    glibc's (NumPy's float64 log1p), exact at -1, -0.0 and 0, eager and jit."""
    import jax
    import jax.numpy as jnp

    from xbce._jax import OPS as JNP

    rng = np.random.default_rng(5)
    u = np.concatenate([-rng.uniform(0.0, 1.0, 1 << 16), np.linspace(-0.5, -0.3, 1 << 14),
                        -(10.0 ** rng.uniform(-300, 0, 1 << 14)), [-1.0, -0.0, 0.0]])
    with np.errstate(divide="ignore"):
        expected = np.log1p(u)
    for got in (JNP.log1p(jnp.asarray(u)), jax.jit(JNP.log1p)(jnp.asarray(u))):
        got = np.asarray(got)
        finite = np.isfinite(expected)
        ulps = np.abs(got[finite] - expected[finite]) / np.spacing(np.abs(expected[finite]))
        assert float(ulps.max()) <= 1, float(ulps.max())
        assert got[-3] == -np.inf
        assert got[-2] == 0.0
        assert got[-1] == 0.0
