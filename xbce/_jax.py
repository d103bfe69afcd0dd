"""The JAX backend: torch's hand-written gradients as a ``jax.custom_jvp``, and the
primitives the formulas get on JAX arrays (torch's rounding under XLA's compiler).

Imported only when xbce is handed JAX arrays. :meth:`Jax.loss` checks the arguments
(values only outside every trace), then evaluates the loss: jitted as one fused
computation where that keeps torch's bits (float32/float64 arrays, not traced), op by
op otherwise; under :func:`xbce.checkify` it stages torch's value check of BCE.

**Gradients.** The JVP applies ``_formulas``' one gradient chain in reverse order
(``apply_tangent``), so that reverse mode, which JAX derives by transposing the JVP,
performs torch's backward operations in torch's order. One rule thus serves
``jax.grad``/``vjp`` (torch's backward) and ``jax.jvp``/``jacfwd`` (torch's
forward-mode formula), and composes with ``jit`` and ``vmap``. The explicit
``*_backward`` functions apply the same chain op by op (``_formulas.gradient``).

**The primitives** (:data:`OPS`, measured against torch 2.13 on the CPU):

* :func:`_rounded`: XLA's CPU compiler contracts ``a * b - c`` inside a
  fused computation into one fused multiply-add (one rounding fewer than torch, which
  rounds every product), under the *caller's* ``jit`` as well as xbce's: 20-25% of
  the elements of BCE-with-logits differed from op-by-op evaluation by that alone.
  The formulas hand each product that meets an addition to ``xp.rounded``; under
  tracing it becomes ``max(a, -inf - |a|)``, which is ``a`` for every ``a`` (NaN
  included) but which neither XLA nor LLVM folds, so the product is rounded as torch
  rounds it. (An ``optimization_barrier`` does not do it: XLA's CPU pipeline removes
  barriers before fusion; ``where(a == a, a, nan)`` does, but a boolean in the fused
  loop makes XLA's CPU code 2-3x slower.)
* :func:`_log1p` in float64: XLA's CPU ``log1p`` is up to 129 ulp off
  for ``u`` in about ``[-0.4996, -0.3405]`` (BCE's ``log1p(-x)`` at ``x`` in
  ``[0.34, 0.5]``). Here it is ``log(s) + e / s`` with ``s = 1 + u`` and its exact
  rounding error ``e = (1 - s) + u`` (Fast2Sum), with XLA's ``log`` (which matches
  glibc's): <= 1 ulp from glibc's ``log1p`` (the one torch's BCE kernel calls).
  ``log_sigmoid`` keeps XLA's ``log1p`` (its argument ``exp(-|x|)`` is in ``(0, 1]``,
  where XLA's is <= 2 ulp), so BCE-with-logits pays nothing for it.
  Half types take float32's ``log1p``, rounded once, as torch does (jaxlib before
  0.10.2 evaluates an f16 ``log1p`` in half arithmetic: <= 2 ulp off torch).
* :func:`_div_numel`: the gradient chain's ``/ numel`` as a true
  division (XLA rewrites a division by a constant as a multiplication).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from . import _checks, _private
from . import _formulas as formulas
from ._typing import Array, Call, Loss

#: whether JAX is outside every trace (``_private``: guarded, with a fallback)
_at_top_level = _private.jax_is_top_level()

# ------------------------------------------------------------------ the primitives
#: The smallest normal float64, below every ``s = 1 + u`` but 0.
_TINY = 2.0**-1022


def _rounded(a: Array, *, cancels: bool = True) -> Array:
    """``a``, rounded to its dtype before it is used: never contracted into a fused
    multiply-add with the operation that consumes it.

    Eagerly (concrete arrays, one XLA computation per op) every op is rounded already:
    ``a``. Under tracing, ``max(a, -inf - |a|)``, which is ``a`` for every ``a`` (NaN
    included) but which neither XLA nor LLVM folds or fuses a product into (no boolean
    in the fused loop). Where nothing cancels (``cancels=False``: BCE's two terms),
    float32 and half types are left to XLA (at most an ulp, and keeping them rounded
    costs ~25% of a fused BCE); float64 is kept rounded (6% more of float64 BCE's
    elements are torch's bits, for ~30% of its time)."""
    if not isinstance(a, jax.core.Tracer) or (not cancels and a.dtype != jnp.float64):
        return a
    return jax.lax.max(a, -jnp.inf - jnp.abs(a))


def _log1p(u: Array) -> Array:
    """``log(1 + u)``; in float64 through XLA's ``log`` (see the module docstring).

    Exact at ``u = -1`` (-inf) and ``u = 0`` (+0, also for ``u = -0.0``); NaN for
    ``u = +inf`` (BCE passes ``u = -x``, ``x`` in ``[0, 1]``).

    Half types in float32, rounded once (torch's ``log1p`` of a ``c10::Half``): the CPU
    code of jaxlib 0.7.2 and 0.8.0 (measured; 0.9.0 and 0.10.0 fail the same tests)
    evaluates an f16 ``log1p`` in half arithmetic (``1 + u`` and a rational polynomial
    in f16), <= 2 ulp off torch in 2604 of the 63488 finite float16 inputs; 0.10.2
    widens it to f32 itself (the same bits as this)."""
    if formulas.is_half(u.dtype):
        return jnp.log1p(u.astype(jnp.float32)).astype(u.dtype)
    if u.dtype != jnp.float64:
        return jnp.log1p(u)
    s = 1.0 + u
    e = (1.0 - s) + u  # exact: |u| <= 1 wherever it matters (Fast2Sum)
    # max(s, _TINY): s unless s = 0 (u = -1), where e = 0 and log(0) = -inf stands
    # (not s + _TINY: XLA reassociates (1 + u) + _TINY)
    return jnp.log(s) + e / jnp.maximum(s, _TINY)


def _sum(a: Array, *, dtype: Any = None) -> Array:
    """The whole-array sum (the only one xbce takes), +0.0 for a one-element -0.0.

    torch's sum starts from +0.0, so that a sum of -0.0 is +0.0; XLA reduces a
    one-element array to the element itself (eagerly and under ``jit``), and folds
    ``s + 0.0`` away, but not the ``where`` on the 0-d result."""
    total = jnp.sum(a, dtype=dtype)
    if a.size != 1:
        return total  # XLA's reduction starts from +0.0 then
    return jnp.where(total == 0, jnp.zeros((), total.dtype), total)


def _div_numel(g: Array, n: int, like: Array) -> Array:
    """``g.div_(numel)`` (torch's ``/ numel`` of a gradient) as an IEEE division.

    XLA's algebraic simplifier rewrites ``a / broadcast(n)`` as ``a * broadcast(1 / n)``,
    even eagerly (one op at a time), which is 1 ulp off torch in about a third of the
    elements. A divisor XLA cannot see through (behind an ``optimization_barrier``)
    keeps the true division. The divisor takes the shape, and under ``vmap`` the
    batching, of ``like``, a primal array (in the JVP a divisor built from the tangent
    would not be linear in it). When ``g`` is batched but ``like`` is not (``jacfwd``
    over a mean), ``vmap`` broadcasts the divisor again and XLA's rewrite returns:
    <= 1 ulp there."""
    acc = jnp.float32 if formulas.is_half(g.dtype) else g.dtype
    # jnp.where(True, ...) folds away in XLA; it only lends ``like``'s shape and batching
    divisor = jax.lax.optimization_barrier(  # type: ignore[no-untyped-call]
        jnp.where(True, jnp.asarray(n, dtype=acc), like.astype(acc))
    )
    return (g.astype(acc) / divisor).astype(g.dtype)


#: The primitives the formulas get for JAX arrays. ``log_sigmoid`` is the standard's
#: composition with XLA's own ``log1p`` (accurate on its argument's ``(0, 1]``).
OPS = formulas.Ops(jnp, rounded=_rounded, log1p=_log1p, sum=_sum, div_numel=_div_numel,
                   log_sigmoid=formulas.Ops(jnp).log_sigmoid)


#: set by :func:`xbce.checkify` (a front end, ``_checkify``) when first used:
#: ``stage_checks(x, y)`` stages torch's value check of BCE while a checkified function
#: is being traced (the arrays are lazy there)
stage_checks: Callable[[Array, Array], None] | None = None


# -------------------------------------------------------------------- the loss
class Jax:
    """JAX arrays: tracers (and concrete arrays inside a trace) are never read."""

    torch_wording = False
    grad_enabled: Callable[[], bool] | None = None  # no weight's gradient is recorded
    devices = None  # JAX moves uncommitted arrays itself
    ops = OPS

    def loss(self, call: Call) -> Array:
        x, t = call.input, call.target
        # concrete arrays inside a trace (closed over by a jitted function, or handed
        # to a function by ``checkify``) are lazy too: every op on them gives a tracer
        lazy = (isinstance(x, jax.core.Tracer) or isinstance(t, jax.core.Tracer)
                or not _at_top_level())
        if lazy:
            call = call._replace(lazy=True)
        _checks.arguments(call, self)
        if lazy and not call.loss.logits and stage_checks is not None:
            stage_checks(x, t)
        exact = _jit_is_exact(x.dtype) and _jit_is_exact(t.dtype)
        fn = _loss_jit if not lazy and exact else _loss
        return fn(call.loss, call.reduction, lazy, x, t, call.weight, call.pos_weight)

    def gradient(self, call: Call) -> Array:
        _checks.arguments(call, self)
        return formulas.gradient(call, OPS)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _loss(loss: Loss, reduction: str, lazy: bool, x: Any, t: Any, w: Any, p: Any) -> Any:
    return formulas.loss(Call(loss, x, t, w, p, reduction, lazy=lazy), OPS)


def _loss_jvp(loss: Loss, reduction: str, lazy: bool, primals: Any, tangents: Any) -> Any:
    """torch's gradients: the gradient chain of each live tangent
    (``formulas.apply_tangent``, whose transpose is torch's backward), summed, then
    reduced like the loss."""
    x, t, w, p = primals
    xt, tt, wt, pt = tangents
    for name, tangent in (("weight", wt), ("pos_weight", pt)):
        if tangent is not None and not isinstance(tangent, SymbolicZero):
            raise TypeError(
                f"The function '{loss.name}' is not differentiable with respect to "
                f"argument '{name}' (PyTorch refuses it too)."
            )
    out = _loss(loss, reduction, lazy, x, t, w, p)
    count = formulas.mean_count(reduction, x)
    total = None
    for wrt, tangent in (("input", xt), ("target", tt)):
        if not isinstance(tangent, SymbolicZero):
            terms = loss.grad_terms(wrt, x, t, w, p, count, OPS)
            part = formulas.apply_tangent(tangent, terms, OPS)
            # BCE-with-logits: the input's part in the loss's (target's) dtype
            part = part.astype(out.dtype) if loss.logits and wrt == "input" else part
            total = part if total is None else total + part
    if total is None:
        return out, jnp.zeros_like(out)
    summed = formulas.NONE if reduction == formulas.NONE else formulas.SUM
    # plain ``jnp`` (its sum is linear in the tangent, which JAX must transpose;
    # :func:`_sum`'s ``where`` is not)
    total = formulas.reduce(total, summed, _PLAIN)
    return out, total.astype(out.dtype)


_PLAIN = formulas.Ops(jnp)
_loss.defjvp(_loss_jvp, symbolic_zeros=True)

_loss_jit = jax.jit(_loss, static_argnums=(0, 1, 2))


def _jit_is_exact(dtype: Any) -> bool:
    """Whether one fused XLA computation rounds like torch, op by op.

    XLA's CPU compiler contracts ``a * b + c`` inside a fusion (no rounding of the
    product); a float16/bfloat16 product is then not rounded to half before the sum,
    which changes the result by a half ulp in ~1 element in 6. Op-by-op (eager)
    dispatch rounds every op, as torch does, so half types are not jitted here (under
    the caller's own ``jit`` XLA decides). In float32/float64 the formulas keep each
    product rounded (:func:`_rounded`), so the fused computation gives the op-by-op bits.
    """
    return not formulas.is_half(dtype)
