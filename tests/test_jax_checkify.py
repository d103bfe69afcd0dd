"""``xbce.checkify``: torch's value errors under JAX transformations, opt-in.

The expected message for each case is torch's, read off torch for the same data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from backends import BACKENDS

import xbce

pytestmark = pytest.mark.skipif(
    not any(b in BACKENDS for b in ("jax", "jax_gpu")), reason="no JAX backend selected"
)

CASES = {
    "good": ([0.5, 0.25, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]),
    "input": ([0.5, 1.5, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]),
    "input nan": ([0.5, np.nan, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]),
    "target": ([0.5, 0.25, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0]),
    "input first": ([0.5, 2.0, 0.5, 0.5], [0.5, 0.5, -1.0, 0.5]),
    "target first": ([0.5, 0.5, 2.0, 0.5], [0.5, -1.0, 0.5, 0.5]),
}


def _torch_message(x: list[float], y: list[float]) -> str | None:
    try:
        TF.binary_cross_entropy(torch.tensor(x), torch.tensor(y))
    except RuntimeError as e:
        return str(e)
    return None


def _loss(p: Any, y: Any) -> Any:
    return xbce.binary_cross_entropy(p, y)


WRAPPINGS = ["checkify(jit(f))", "jit(checkify(f))", "checkify(f)",
             "checkify(f with jit inside)", "checkify(grad(f))"]


def _wrappings() -> dict[str, Any]:
    import jax

    return {
        "checkify(jit(f))": lambda: xbce.checkify(jax.jit(_loss)),
        "jit(checkify(f))": lambda: jax.jit(xbce.checkify(_loss)),
        "checkify(f)": lambda: xbce.checkify(_loss),
        "checkify(f with jit inside)": lambda: xbce.checkify(lambda p, y: jax.jit(_loss)(p, y)),
        "checkify(grad(f))": lambda: xbce.checkify(jax.grad(_loss)),
    }


@pytest.mark.parametrize("wrapping", WRAPPINGS)
@pytest.mark.parametrize("case", list(CASES))
def test_torchs_message_or_none(wrapping: str, case: str) -> None:
    import jax.numpy as jnp

    x, y = CASES[case]
    expected = _torch_message(x, y)
    err, out = _wrappings()[wrapping]()(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    got = err.get()
    if expected is None:
        assert got is None
        plain = _loss(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
        if "grad" not in wrapping:
            assert np.asarray(out).tobytes() == np.asarray(plain).tobytes()
    else:
        assert got is not None
        assert got.splitlines()[0] == f"{expected} (`check` failed)"


def test_under_vmap() -> None:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray([CASES["good"][0], CASES["input"][0]], jnp.float32)
    y = jnp.asarray([CASES["good"][1], CASES["input"][1]], jnp.float32)
    err, _ = xbce.checkify(jax.vmap(_loss))(x, y)
    assert err.get().startswith(_torch_message(*CASES["input"]))  # type: ignore[arg-type]
    err, _ = xbce.checkify(jax.vmap(_loss))(x[:1], y[:1])
    assert err.get() is None


def test_a_function_traced_before_is_checked_inside_and_unchecked_outside() -> None:
    """The flag is part of JAX's trace context: no cached trace crosses the boundary."""
    import jax
    import jax.numpy as jnp

    f = jax.jit(_loss)
    x, y = (jnp.asarray(v, jnp.float32) for v in CASES["input"])
    assert np.isnan(np.asarray(f(x, y)))  # traced without checks: NaN
    err, _ = xbce.checkify(f)(x, y)
    assert err.get() is not None  # traced again, with checks
    assert np.isnan(np.asarray(f(x, y)))  # and the checked trace is not reused here
    assert np.isnan(np.asarray(jax.jit(_loss)(x, y)))


def test_without_checkify_nothing_is_staged() -> None:
    import jax
    import jax.numpy as jnp

    x, y = (jnp.asarray(v, jnp.float32) for v in CASES["good"])
    xbce.checkify(_loss)(x, y)  # the flag exists and is off again
    jaxpr = str(jax.make_jaxpr(_loss)(x, y))
    assert "check" not in jaxpr
    with_checks = str(jax.make_jaxpr(xbce.checkify(_loss))(x, y))
    assert len(with_checks) > len(jaxpr)  # the checks, functionalized


def test_logits_stage_nothing_and_other_errors_pass_through() -> None:
    """BCE-with-logits has no value checks (torch has none); ``errors=`` adds JAX's."""
    import jax.numpy as jnp
    from jax.experimental import checkify

    def f(x: Any, t: Any) -> Any:
        return xbce.binary_cross_entropy_with_logits(x, t)

    x, t = jnp.asarray([-jnp.inf, 0.0]), jnp.asarray([1.0, 0.5])
    err, out = xbce.checkify(f)(x, t)
    assert err.get() is None
    assert np.isnan(np.asarray(out))  # torch: nan too
    err, _ = xbce.checkify(f, errors=checkify.nan_checks)(x, t)
    message = err.get()
    assert message is not None
    assert "nan" in message.lower()
