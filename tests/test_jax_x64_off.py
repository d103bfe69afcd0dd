"""JAX with ``jax_enable_x64`` off (JAX's default; ``XBCE_JAX_X64=0``, ``nox -s jax``).

JAX then has no float64: ``jnp.asarray`` makes float32 of float64 NumPy data and of
Python floats. xbce follows jax.numpy: NumPy arrays joining a JAX input become float32
JAX arrays, so torch's dtype rules apply to float32 data (BCE's "Found dtype Double"
error cannot arise). Expected values: torch on the float32-rounded data, computed here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS, JAX_X64, load, rounded
from comparisons import check, loss_scale

import xbce

pytestmark = pytest.mark.skipif(
    "jax" not in BACKENDS or JAX_X64, reason="runs with XBCE_BACKENDS=jax XBCE_JAX_X64=0"
)


def test_x64_is_off_and_jax_has_no_float64() -> None:
    import jax
    import jax.numpy as jnp

    backend = load("jax")
    assert not jax.config.jax_enable_x64
    assert "float64" not in backend.dtypes
    assert jnp.asarray(np.zeros(1)).dtype == jnp.float32


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_float64_numpy_arguments_become_float32(reduction: str) -> None:
    import jax
    import jax.numpy as jnp

    backend = load("jax")
    p, y = np.array([0.2, 0.7, 1e-9]), np.array([0.1, 1.0, 1.0 / 3.0])
    w = np.array([1 / 3, 2.0, 0.1])
    pt, yt, wt = (rounded(a, "float32") for a in (p, y, w))
    x = jnp.asarray(pt.numpy())
    for fn, ref, xt, x_in in [
        (xbce.binary_cross_entropy, TF.binary_cross_entropy, pt, x),
        (xbce.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
         torch.logit(pt.double()).float(), jnp.asarray(torch.logit(pt.double()).float().numpy())),
    ]:
        op = "bce" if fn is xbce.binary_cross_entropy else "bcewl"
        expected = ref(xt, yt, wt, reduction=reduction)
        got = fn(x_in, y, w, reduction=reduction)  # float64 NumPy target and weight
        assert got.dtype == jnp.float32
        check(backend, got, expected, op if reduction == "none" else "reduced", "float32",
              scale=loss_scale(op, xt, yt, wt, reduction=reduction))
        # gradients too: w.r.t. the JAX input, the NumPy target joined as float32
        xa = xt.clone().requires_grad_()
        (ex,) = torch.autograd.grad(ref(xa, yt, wt, reduction="sum"), xa)
        gx = jax.grad(lambda a, fn=fn: fn(a, y, w, reduction="sum"))(x_in)
        assert gx.dtype == jnp.float32
        check(backend, gx, ex, f"{op}_grad", "float32",
              scale=ex.abs().double() + 1, what=f"{op} d/dinput")
