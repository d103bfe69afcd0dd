"""``jax.numpy`` as the formulas get it: torch's rounding under XLA's compiler.

Imported only with the JAX adapter (``_jax_autodiff``). Two things differ from
``jax.numpy`` itself, both measured against torch 2.13 on the CPU:

* :meth:`JaxNamespace.rounded`: XLA's CPU compiler contracts ``a * b - c`` inside a
  fused computation into one fused multiply-add (one rounding fewer than torch, which
  rounds every product), under the *caller's* ``jit`` as well as xbce's: 20-25% of
  the elements of BCE-with-logits differed from op-by-op evaluation by that alone.
  The formulas hand each product that meets an addition to ``xp.rounded``; under
  tracing it becomes ``max(a, -inf - |a|)``, which is ``a`` for every ``a`` (NaN
  included) but which neither XLA nor LLVM folds, so the product is rounded as torch
  rounds it. (An ``optimization_barrier`` does not do it: XLA's CPU pipeline removes
  barriers before fusion; ``where(a == a, a, nan)`` does, but a boolean in the fused
  loop makes XLA's CPU code 2-3x slower.)
* :meth:`JaxNamespace.log1p` in float64: XLA's CPU ``log1p`` is up to 129 ulp off
  for ``u`` in about ``[-0.4996, -0.3405]`` (BCE's ``log1p(-x)`` at ``x`` in
  ``[0.34, 0.5]``). Here it is ``log(s) + e / s`` with ``s = 1 + u`` and its exact
  rounding error ``e = (1 - s) + u`` (Fast2Sum), with XLA's ``log`` (which matches
  glibc's): <= 1 ulp from glibc's ``log1p`` (the one torch's BCE kernel calls).
  ``log_sigmoid`` keeps XLA's ``log1p`` (its argument ``exp(-|x|)`` is in ``(0, 1]``,
  where XLA's is <= 2 ulp), so BCE-with-logits pays nothing for it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import _formulas as F

Array = Any

#: The smallest normal float64, below every ``s = 1 + u`` but 0.
_TINY = 2.0**-1022


def _opaque(a: Array) -> Array:
    """``a``, through an operation neither XLA nor LLVM folds or fuses a product into.

    ``max(a, -inf - |a|)`` is ``a`` for every ``a`` (the bound is -inf, or NaN when
    ``a`` is NaN), in floating point only (no boolean in the fused loop)."""
    if not isinstance(a, jax.core.Tracer):
        return a  # eagerly, every op is its own computation: rounded already
    return jax.lax.max(a, -jnp.inf - jnp.abs(a))


class JaxNamespace:
    """``jax.numpy`` with :meth:`rounded`, an accurate float64 :meth:`log1p`, and
    :meth:`log_sigmoid` composed with XLA's own ``log1p``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(jnp, name)

    def rounded(self, a: Array, *, cancels: bool = True) -> Array:
        """``a``, rounded to its dtype before it is used: never contracted into a
        fused multiply-add with the operation that consumes it. Eagerly (concrete
        arrays, one XLA computation per op) every op is rounded already: ``a``.

        Where nothing cancels (``cancels=False``: BCE's two terms), float32 and half
        types are left to XLA (at most an ulp, and keeping them rounded costs ~25% of
        a fused BCE); float64 is kept rounded (6% more of float64 BCE's elements are
        torch's bits, for ~30% of its time)."""
        if not cancels and a.dtype != jnp.float64:
            return a
        return _opaque(a)

    def log1p(self, u: Array) -> Array:
        """``log(1 + u)``; in float64 through XLA's ``log`` (see the module docstring).

        Exact at ``u = -1`` (-inf) and ``u = 0`` (+0, also for ``u = -0.0``); NaN for
        ``u = +inf`` (BCE passes ``u = -x``, ``x`` in ``[0, 1]``)."""
        if u.dtype != jnp.float64:
            return jnp.log1p(u)
        s = 1.0 + u
        e = (1.0 - s) + u  # exact: |u| <= 1 wherever it matters (Fast2Sum)
        # max(s, _TINY): s unless s = 0 (u = -1), where e = 0 and log(0) = -inf stands
        # (not s + _TINY: XLA reassociates (1 + u) + _TINY)
        return jnp.log(s) + e / jnp.maximum(s, _TINY)

    def log_sigmoid(self, x: Array) -> Array:
        """The array-API composition with XLA's ``log1p`` (accurate on ``(0, 1]``)."""
        return F.log_sigmoid(x, xp=jnp)


#: The one instance the JAX adapter hands to the formulas.
JNP = JaxNamespace()
