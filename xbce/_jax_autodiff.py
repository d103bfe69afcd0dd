"""JAX adapter: torch's hand-written gradients as a ``jax.custom_jvp``.

Imported only when xbce is handed JAX arrays. The JVP applies ``_formulas``' gradient
terms in reverse order (``apply_tangent``), so that reverse mode, which JAX derives by
transposing the JVP, performs torch's backward operations in torch's order. One rule
thus serves ``jax.grad``/``vjp`` (torch's backward) and ``jax.jvp``/``jacfwd`` (torch's
forward-mode formula), and composes with ``jit`` and ``vmap``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from . import _formulas as F
from ._checkify import checking
from ._jax_namespace import JNP


def _refuse(op: str, **tangents: Any) -> None:
    for name, t in tangents.items():
        if t is not None and not isinstance(t, SymbolicZero):
            raise TypeError(
                f"The function '{op}' is not differentiable with respect to argument "
                f"'{name}' (PyTorch refuses it too)."
            )


def _tangent_out(parts: list[Any], out: Any, reduction: str) -> Any:
    if not parts:
        return jnp.zeros_like(out)
    total = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    total = F.reduce(total, F.NONE if reduction == F.NONE else F.SUM, xp=JNP)
    return total.astype(out.dtype)


def _live(t: Any) -> bool:
    return not isinstance(t, SymbolicZero)


def scale_by_numel(g: Any, n: int, like: Any = None) -> Any:
    """``F.scale_by_numel`` (torch's ``grad.div_(numel)``) as an IEEE division on XLA.

    XLA's algebraic simplifier rewrites ``a / broadcast(n)`` as ``a * broadcast(1 / n)``,
    even eagerly (one op at a time), which is 1 ulp off torch in about a third of the
    elements. A divisor XLA cannot see through (behind an ``optimization_barrier``)
    keeps the true division. The divisor takes the shape, and under ``vmap`` the
    batching, of ``like`` (default ``g``; the JVP passes a primal, because a divisor
    built from the tangent would not be linear in it). When ``g`` is batched but
    ``like`` is not (``jacfwd`` over a mean), ``vmap`` broadcasts the divisor again and
    XLA's rewrite returns: <= 1 ulp there.
    """
    like = g if like is None else like
    acc = jnp.float32 if F.is_half(g.dtype, jnp) else g.dtype
    # jnp.where(True, ...) folds away in XLA; it only lends ``like``'s shape and batching
    divisor = jax.lax.optimization_barrier(  # type: ignore[no-untyped-call]
        jnp.where(True, jnp.asarray(n, dtype=acc), like.astype(acc))
    )
    return (g.astype(acc) / divisor).astype(g.dtype)


def _tangent(tangent: Any, terms: F.GradTerms) -> Any:
    """``F.apply_tangent``, its division by ``numel`` (``mean``) by :func:`scale_by_numel`."""
    if terms.numel is None:
        return F.apply_tangent(tangent, terms, xp=JNP)
    t = scale_by_numel(tangent.astype(F.chain_dtype(terms, jnp)), terms.numel, like=terms.coef)
    return F.apply_tangent(t, terms._replace(numel=None), xp=JNP)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def bce(reduction: str, lazy: bool, x: Any, y: Any, w: Any) -> Any:
    return F.bce(x, y, w, reduction, xp=JNP, lazy=lazy)


def _bce_jvp(reduction: str, lazy: bool, primals: Any, tangents: Any) -> Any:
    x, y, w = primals
    xt, yt, wt = tangents
    _refuse("binary_cross_entropy", weight=wt)
    out = bce(reduction, lazy, x, y, w)
    parts = []
    if _live(xt):
        parts.append(_tangent(xt, F.bce_input_grad_terms(x, y, w, reduction, xp=JNP)))
    if _live(yt):
        parts.append(_tangent(yt, F.bce_target_grad_terms(x, y, w, reduction, xp=JNP)))
    return out, _tangent_out(parts, out, reduction)


bce.defjvp(_bce_jvp, symbolic_zeros=True)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def bce_with_logits(reduction: str, x: Any, t: Any, w: Any, p: Any) -> Any:
    return F.bce_with_logits(x, t, w, p, reduction, xp=JNP)


def _bce_with_logits_jvp(reduction: str, primals: Any, tangents: Any) -> Any:
    x, t, w, p = primals
    xt, tt, wt, pt = tangents
    _refuse("binary_cross_entropy_with_logits", weight=wt, pos_weight=pt)
    out = bce_with_logits(reduction, x, t, w, p)
    parts = []
    if _live(xt):
        terms = F.bce_with_logits_input_grad_terms(x, t, w, p, reduction, xp=JNP)
        parts.append(_tangent(xt, terms).astype(out.dtype))
    if _live(tt):
        terms = F.bce_with_logits_target_grad_terms(x, t, w, p, reduction, xp=JNP)
        parts.append(_tangent(tt, terms))
    return out, _tangent_out(parts, out, reduction)


bce_with_logits.defjvp(_bce_with_logits_jvp, symbolic_zeros=True)

_bce_jit = jax.jit(bce, static_argnums=(0, 1))
_bce_with_logits_jit = jax.jit(bce_with_logits, static_argnums=(0,))


def _jit_is_exact(dtype: Any) -> bool:
    """Whether one fused XLA computation rounds like torch, op by op.

    XLA's CPU compiler contracts ``a * b + c`` inside a fusion (no rounding of the
    product); a float16/bfloat16 product is then not rounded to half before the sum,
    which changes the result by a half ulp in ~1 element in 6. Op-by-op (eager)
    dispatch rounds every op, as torch does, so half types are not jitted here (under
    the caller's own ``jit`` XLA decides). In float32/float64 the formulas keep each
    product rounded (``_jax_namespace.JaxNamespace.rounded``), so the fused computation
    gives the op-by-op bits.
    """
    return not F.is_half(dtype, jnp)


def evaluate_bce(reduction: str, lazy: bool, x: Any, y: Any, w: Any) -> Any:
    """:func:`bce`, compiled as one fused computation when that is exact."""
    if lazy and checking():
        check_unit_interval(x, y)
    fn = _bce_jit if not lazy and _jit_is_exact(x.dtype) else bce
    return fn(reduction, lazy, x, y, w)


def evaluate_bce_with_logits(reduction: str, lazy: bool, x: Any, t: Any, w: Any, p: Any) -> Any:
    """:func:`bce_with_logits`, compiled as one fused computation when that is exact."""
    exact = _jit_is_exact(x.dtype) and _jit_is_exact(t.dtype)
    fn = _bce_with_logits_jit if not lazy and exact else bce_with_logits
    return fn(reduction, x, t, w, p)


def backward(
    logits: bool, which: str, reduction: str, g: Any, x: Any, t: Any, w: Any, p: Any
) -> Any:
    """The explicit backward functions on JAX arrays: ``F.apply_backward`` in torch's
    order, its ``/ numel`` by :func:`scale_by_numel` (exact on XLA), the cast last.

    Not jitted: under ``jit`` XLA rewrites ``(a / b) / c`` as ``a / (b * c)``, which
    is not torch's rounding; op by op it is exact.
    """
    terms = F.grad_terms(logits, which, x, t, w, p, F.NONE, xp=JNP)
    chain = F.chain_dtype(terms, jnp)
    out = F.apply_backward(jnp.asarray(g), terms._replace(dtype=chain), xp=JNP)
    if reduction == F.MEAN:
        out = scale_by_numel(out, F.numel(x if which == "input" else t))
    return out.astype(terms.dtype)


def check_unit_interval(x: Any, y: Any) -> None:
    """Stage torch's value check of BCE (under :func:`xbce.checkify` only).

    As in torch's kernel, the first bad element in memory order decides whether the
    message names the input or the target; exactly one check fails when any does.
    """
    from jax.experimental import checkify

    n = x.size

    def first_bad(a: Any) -> Any:
        bad = jnp.ravel(~((a >= 0) & (a <= 1)))
        return jnp.where(jnp.any(bad), jnp.argmax(bad), n) if n else jnp.asarray(0)

    fx, fy = first_bad(x), first_bad(y)
    checkify.check((fx == n) | (fx > fy), "all elements of input should be between 0 and 1")
    checkify.check((fy == n) | (fy >= fx), "all elements of target should be between 0 and 1")
