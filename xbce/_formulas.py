"""The math of xbce, written once against the Python array API standard.

Every formula takes its primitives from an :class:`Ops`: the standard's functions of the
array's namespace, unless the backend chose its own (torch's ``logsigmoid``, NumPy's
float32 ``log`` evaluated in float64, JAX's rounded products). A backend makes its
``Ops`` once; nothing here asks which library it is given. Nothing here validates
arguments (``_checks``) or knows about autodiff (the torch and JAX backends wire the
gradient terms below into their frameworks).

The op order and the per-op rounding are PyTorch 2.13's CPU kernels
(``aten/src/ATen/native/Loss.cpp``, ``torch/csrc/autograd/FunctionsManual.cpp``):

* every operation rounds to its dtype; float16/bfloat16 ops are evaluated in
  float32 and rounded to half after *each* op (as ``c10::Half`` arithmetic does),
  except ``log_sigmoid`` and ``sigmoid``, which torch evaluates wholly in float32 and
  rounds once;
* an operation torch performs *in place* (``loss.mul_(weight)``) keeps the dtype of
  its left operand, whatever the dtype of the right one;
* ``mean`` is ``sum / numel`` (not a weighted mean); half types are summed in float32.

Gradients are the hand-written formulas PyTorch's autograd uses, not derivatives of
the forward (see :class:`GradTerms`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import NamedTuple

from ._typing import Array, Call, DType, Loss, Namespace

NONE, MEAN, SUM = "none", "mean", "sum"

#: ``max(log, -100)``: PyTorch's clamp of each log term of BCE.
LOG_CLAMP = -100.0
#: PyTorch's backward epsilon is the *float32* constant ``1e-12f`` cast to the input
#: dtype: 9.999999960041972e-13 in float32 and float64, 1.0018652574217413e-12 in
#: bfloat16, and 0 in float16 (it underflows). This is its float32 value, exactly.
BACKWARD_EPS: float = struct.unpack("f", struct.pack("f", 1e-12))[0]
#: float32 arrays from this many elements on may take :meth:`Ops.log1p_via_float64`
LOG1P_VIA_FLOAT64_FROM = 1 << 12


# --------------------------------------------------------------------------- dtypes
def dtype_name(dtype: DType) -> str:
    """``float32``, ``int64``...: the name after the library's prefix."""
    return str(dtype).rsplit(".", 1)[-1]


_HALF: dict[tuple[type, DType], bool] = {}


def is_half(dtype: DType) -> bool:
    """Whether ``dtype`` is float16 or bfloat16 (evaluated via float32, per op).

    By name, because not every namespace exports ``float16`` (Dask's does not);
    remembered per dtype, keyed with the dtype's type so that dtypes of different
    libraries are never compared."""
    key = (type(dtype), dtype)
    half = _HALF.get(key)
    if half is None:
        half = _HALF[key] = dtype_name(dtype) in ("float16", "bfloat16")
    return half


def numel(a: Array) -> int:
    return math.prod(a.shape)


# ------------------------------------------------------------------- primitives
class Ops:
    """The primitives the formulas take: the standard's functions of ``xp``, unless
    the backend handed its own (keyword arguments, or attributes set once after).

    A backend makes one ``Ops`` when it is made, choosing the primitives its library
    does better or more like torch; the formulas call what they are handed and never
    ask which library it is. The standard's functions that no backend replaces are
    used as ``ops.xp.<name>``."""

    #: ``rounded(a, cancels=...)``: ``a`` kept rounded to its dtype before the addition
    #: that consumes it (a compiler that fuses ``a * b - c`` into one fused
    #: multiply-add rounds once fewer than torch); ``None`` where every op rounds.
    #: ``cancels=False``: nothing cancels in that addition (a fused multiply-add moves
    #: the result by at most an ulp), so a backend may skip the cost
    rounded: Callable[..., Array] | None
    #: ``mean(loss)`` where the library's own mean is torch's ``sum / numel`` bit for bit
    mean: Callable[[Array], Array] | None
    #: ``extrema(a)``: the smallest and largest element (NaN if any is), where the
    #: library computes both in one pass; ``None``: ``min`` and ``max``
    extrema: Callable[[Array], tuple[Array, Array]] | None

    def __init__(self, xp: Namespace, **chosen: object) -> None:
        self.xp = xp
        self.rounded = self.mean = self.extrema = None
        self.log, self.log1p, self.minimum = xp.log, xp.log1p, xp.minimum
        #: ``clamp_min(a, float)``/``clamp_max(a, float)``: NaN propagates
        self.clamp_min, self.clamp_max = xp.maximum, xp.minimum
        self.astype, self.result_type, self.isdtype = xp.astype, xp.result_type, xp.isdtype
        self.sum, self.min, self.max = xp.sum, xp.min, xp.max
        #: the real floating dtypes known so far: ``dtype in ops.floating_dtypes`` is the
        #: fast test (no call), :meth:`floating` the full one, which adds to it
        self.floating_dtypes: set[DType] = set()
        self.__dict__.update(chosen)  # the backend's own primitives

    def floating(self, dtype: DType) -> bool:
        """Whether ``dtype`` is real floating (remembered in :attr:`floating_dtypes`)."""
        if dtype in self.floating_dtypes:
            return True
        if not self.isdtype(dtype, "real floating"):
            return False
        self.floating_dtypes.add(dtype)
        return True

    def log_sigmoid(self, x: Array) -> Array:
        """torch's CPU kernel: ``min(x, 0) - log1p(exp(-|x|))`` (half types in float32,
        rounded once); not softplus, not the max trick."""
        xp = self.xp

        def f(v: Array) -> Array:
            return self.clamp_max(v, 0.0) - self.log1p(xp.exp(-xp.abs(v)))

        return self.in_float32(f, x)

    def sigmoid(self, x: Array) -> Array:
        """``1 / (1 + exp(-x))`` (half types in float32, rounded once)."""
        return self.in_float32(lambda v: 1.0 / (1.0 + self.xp.exp(-v)), x)

    def logit(self, x: Array) -> Array:
        """``log(x / (1 - x))``, unclamped (torch's ``at::logit``, whose own kernel torch
        hands: on a non-contiguous tensor it runs a scalar loop with glibc's ``log``)."""
        return self.log(x / (1.0 - x))

    def in_float32(self, fn: Callable[[Array], Array], x: Array) -> Array:
        """``fn(x)``, for half types evaluated in float32 and rounded once (torch's opmath)."""
        if is_half(x.dtype):
            return self.astype(fn(self.astype(x, self.xp.float32)), x.dtype)
        return fn(x)

    def div_numel(self, g: Array, n: int, like: Array) -> Array:
        """``g.div_(numel)``: the divisor is a float32/float64 scalar, never a half.
        ``like`` is a primal array of ``g``'s shape (see the JAX backend)."""
        if is_half(g.dtype):
            return self.astype(self.astype(g, self.xp.float32) / n, g.dtype)
        return g / n

    # Generic numerics a backend may choose instead of its library's own primitive.
    def log_via_float64(self, u: Array) -> Array:
        """float32: the float64 ``log`` rounded once, as glibc's ``logf`` (which torch's
        BCE kernel calls) evaluates it; NumPy's SIMD ``logf`` is up to 3 ulp off it."""
        xp = self.xp
        if u.dtype != xp.float32:
            return xp.log(u)
        return xp.log(u.astype(xp.float64)).astype(xp.float32)

    def log1p_via_float64(self, u: Array) -> Array:
        """float32 from :data:`LOG1P_VIA_FLOAT64_FROM` elements: ``log(1 + u)`` in float64,
        rounded once (correctly rounded, so <= 1 ulp from glibc's ``log1pf``); faster
        than a scalar ``log1pf`` per element from that size on."""
        xp = self.xp
        if u.dtype != xp.float32 or u.size < LOG1P_VIA_FLOAT64_FROM:
            return xp.log1p(u)
        # 1 + u is exact in float64 for |u| >= 2**-23; below, log1p(u) rounds to u
        wide = xp.log(u.astype(xp.float64) + 1.0).astype(xp.float32)
        return xp.where(xp.abs(u) < 2.0**-23, u, wide)


# ------------------------------------------------------- torch's type promotion
def _cast(a: Array, dtype: DType, ops: Ops) -> Array:
    return a if a.dtype == dtype else ops.astype(a, dtype)


def _torch_op(a: Array, b: Array, op: str, ops: Ops, *, in_place: bool) -> Array:
    """``a.mul(b)``/``a.sub(b)`` (``in_place``: ``a.mul_(b)``, keeping ``a``'s dtype),
    with torch's type promotion and torch's CPU kernels' rounding.

    A 0-d operand next to a dimensioned one does not widen the result: ``f32 * f64(0-d)``
    is computed in float32. A 0-d second operand of a half ``mul`` is read at float32
    precision (the kernels' opmath scalar), not rounded to half first.
    """
    own = a.dtype
    if b.dtype == own and (op != "mul" or b.ndim > 0 or a.ndim == 0 or not is_half(own)):
        return a * b if op == "mul" else a - b  # one dtype, no half scalar: nothing to do
    if b.dtype not in ops.floating_dtypes and not ops.floating(b.dtype):
        b = ops.astype(b, own)  # integer or bool weights, as torch promotes them
    a_dims, b_dims = a.ndim > 0, b.ndim > 0
    if a_dims != b_dims:
        common = a.dtype if a_dims else b.dtype
    else:
        common = ops.result_type(a.dtype, b.dtype)
    if op == "mul" and a_dims and not b_dims and is_half(common):
        f32 = ops.xp.float32
        out = _cast(_cast(a, f32, ops) * _cast(b, f32, ops), common, ops)
    else:
        a, b = _cast(a, common, ops), _cast(b, common, ops)
        out = a * b if op == "mul" else a - b
    return _cast(out, own, ops) if in_place else out


def _rounded(a: Array, ops: Ops) -> Array:
    return a if ops.rounded is None else ops.rounded(a, cancels=True)


# ------------------------------------------------------------------------ reduction
def reduce(loss: Array, reduction: str, ops: Ops) -> Array:
    """torch's ``apply_loss_reduction``: ``none``, ``sum``, or ``mean = sum / numel``.

    Half types accumulate in float32 and round once; the division is in float32 too
    (:func:`finish`)."""
    if reduction == NONE:
        return loss
    half = is_half(loss.dtype)
    if reduction == MEAN and ops.mean is not None and not half:
        return ops.mean(loss)
    total = ops.sum(loss, dtype=ops.xp.float32 if half else loss.dtype)
    return finish(total, math.prod(loss.shape), reduction, loss.dtype, ops)


def finish(total: Array, n: int, reduction: str, dtype: DType, ops: Ops) -> Array:
    """A sum of ``n`` losses (in its accumulation dtype) as torch's reduction ends it:
    ``mean`` divides it by ``n`` (NaN for no elements, silently, as in torch); then it
    is rounded to the loss's ``dtype``."""
    if reduction == MEAN:
        total = total / n if n else total * math.nan
    return total if total.dtype == dtype else ops.astype(total, dtype)


def nan_where_invalid(out: Array, y: Array, ops: Ops) -> Array:
    """BCE on arrays whose values are not read (lazy): NaN where the target is
    outside [0, 1] or NaN, the whole result NaN if reduced.

    An input outside [0, 1], NaN or inf already makes BCE NaN through its logs; a bad
    *target* would give a finite, wrong number. Eager arrays are checked (and raise)
    instead (``_checks.unit_interval``)."""
    xp = ops.xp
    ok = (y >= 0.0) & (y <= 1.0)  # NaN fails both
    if out.ndim == 0 and ok.ndim > 0:
        ok = xp.all(ok)
    return xp.where(ok, out, xp.asarray(math.nan, dtype=out.dtype))


def loss(call: Call, ops: Ops) -> Array:
    """The call's loss on whole arrays (``reduce`` of the elementwise formula)."""
    x, t = call.input, call.target
    out = reduce(call.loss.elementwise(x, t, call.weight, call.pos_weight, ops),
                 call.reduction, ops)
    return nan_where_invalid(out, t, ops) if call.lazy and not call.loss.logits else out


# ------------------------------------------------------------------------ gradients
class GradTerms(NamedTuple):
    """One of torch's hand-written gradients, as the chain it applies to ``grad``.

    BCE (``divisor`` given): ``(((grad * coef) / divisor) * weight) / numel``, torch's
    scalar kernel, all in the input's dtype. BCE-with-logits: ``coef.mul_(grad)``, then
    ``.mul_(weight)``, then ``.div_(numel)``, with torch's type promotion: an in-place
    step (``grad_in_place``, ``weight_in_place``) keeps the dtype it is applied to, an
    out-of-place one (torch's backward when it records a graph, ``create_graph=True``)
    widens to the common dtype. ``divisor``, ``weight`` and ``numel`` are skipped when
    ``None``; the result is cast to ``dtype`` last (as autograd casts to the argument's
    dtype). The backward functions and torch's autograd apply the chain in this order
    (:func:`apply_backward`); the JAX JVP applies it in reverse to a tangent
    (:func:`apply_tangent`), so that its *transpose* (reverse mode) performs exactly
    torch's operations in torch's order.
    """

    coef: Array
    divisor: Array | None
    weight: Array | None
    numel: int | None
    dtype: DType
    grad_in_place: bool = True
    weight_in_place: bool = True


def apply_backward(grad: Array, terms: GradTerms, ops: Ops, dtype: DType = None) -> Array:
    """Apply ``terms`` to an upstream gradient in torch's order (the VJP), cast last to
    ``dtype`` (default ``terms.dtype``, the argument's; torch's forward-mode formula
    gives the loss's dtype instead). The one gradient chain of xbce."""
    if terms.divisor is not None:  # BCE: torch's scalar kernel, one dtype throughout
        g = _cast(grad * terms.coef / terms.divisor, terms.coef.dtype, ops)
    else:
        g = _torch_op(terms.coef, grad, "mul", ops, in_place=terms.grad_in_place)
    if terms.weight is not None:
        g = _torch_op(g, terms.weight, "mul", ops, in_place=terms.weight_in_place)
    if terms.numel is not None:
        g = ops.div_numel(g, terms.numel, terms.coef)
    dtype = terms.dtype if dtype is None else dtype
    return g if g.dtype == dtype else ops.astype(g, dtype)


def apply_tangent(tangent: Array, terms: GradTerms, ops: Ops) -> Array:
    """The same chain in reverse order (the JVP); its transpose is ``apply_backward``."""
    chain = terms.coef.dtype
    if terms.divisor is None and not terms.grad_in_place:  # coef.mul(grad) promotes
        chain = ops.result_type(chain, terms.dtype)
    t = _cast(tangent, chain, ops)
    if terms.numel is not None:
        t = ops.div_numel(t, terms.numel, terms.coef)
    if terms.weight is not None:
        t = _torch_op(t, terms.weight, "mul", ops, in_place=True)
    if terms.divisor is not None:
        t = t / terms.divisor
    return t * terms.coef


def elementwise_gradient(loss: Loss, wrt: str, count: int | None, g: Array, x: Array,
                         t: Array, w: Array | None, p: Array | None, ops: Ops) -> Array:
    """The gradient of ``loss`` with respect to ``wrt`` applied to ``g``: the explicit
    backward (``count``: ``mean``'s divisor, the whole array's element count, also
    when this runs on one block)."""
    return apply_backward(g, loss.grad_terms(wrt, x, t, w, p, count, ops), ops)


def mean_count(reduction: str, like: Array) -> int | None:
    """The divisor of ``mean`` (torch's ``numel``) for a gradient of ``like``'s shape;
    ``None`` (no division) for ``sum`` and ``none``."""
    return numel(like) if reduction == MEAN else None


def gradient(call: Call, ops: Ops) -> Array:
    """The explicit backward of ``call`` on whole arrays."""
    like = call.input if call.wrt == "input" else call.target
    return elementwise_gradient(call.loss, str(call.wrt), mean_count(call.reduction, like),
                                call.grad, *call[1:5], ops)


# ------------------------------------------------------------------------ the losses
def _weight_as_expanded(weight: Array, like: Array, ops: Ops) -> Array:
    """BCE's ``weight`` as torch's Python wrapper hands it on, ``weight.expand(shape)``:
    a 0-d weight becomes dimensioned (same values), so it promotes like one."""
    if weight.ndim == 0 and like.ndim > 0:
        return ops.xp.reshape(weight, (1,) * like.ndim)
    return weight


def _float_pos_weight(p: Array | None, t: Array, ops: Ops) -> Array | None:
    """``pos_weight`` as torch promotes it: an integer one to the target's dtype."""
    if p is None or p.dtype in ops.floating_dtypes or ops.floating(p.dtype):
        return p
    return ops.astype(p, t.dtype)


class _Loss:
    name: str
    logits: bool

    def __repr__(self) -> str:
        return f"xbce.{self.name}"

    def __reduce__(self) -> str:
        """Pickled by name (Dask sends the call's loss to its workers)."""
        return "BCE_WITH_LOGITS" if self.logits else "BCE"


class _BCE(_Loss):
    """``binary_cross_entropy``: probabilities ``x``, targets ``y``; the input's dtype."""

    name, logits = "binary_cross_entropy", False

    def dtype(self, x: Array, t: Array) -> DType:
        return x.dtype

    def elementwise(self, x: Array, y: Array, w: Array | None, p: Array | None,
                    ops: Ops) -> Array:
        """``((y - 1) * max(log1p(-x), -100) - y * max(log(x), -100)) * weight``.

        ``log1p(-x)`` is taken as ``min(log1p(-x), -x)``: the same value wherever
        ``log1p`` is faithful (``log(1 - x) <= -x``, and ``-x`` is a float, so every
        faithful rounding is ``<= -x``), and ``-x`` where a library's ``log1p`` is not
        (torch's vectorised ``log1p`` returns 0 for the smallest subnormals, where
        glibc's, which torch's BCE kernel calls, returns ``-x``)."""
        neg_x = -x
        log_1mx = ops.clamp_min(ops.minimum(ops.log1p(neg_x), neg_x), LOG_CLAMP)
        log_x = ops.clamp_min(ops.log(x), LOG_CLAMP)
        a, b = (y - 1.0) * log_1mx, y * log_x
        if ops.rounded is not None:  # the terms are >= 0 and <= 0: nothing cancels
            a, b = ops.rounded(a, cancels=False), ops.rounded(b, cancels=False)
        out = a - b
        if w is None:
            return out
        return _torch_op(out, _weight_as_expanded(w, x, ops), "mul", ops, in_place=True)

    def grad_terms(self, wrt: str, x: Array, y: Array, w: Array | None, p: Array | None,
                   count: int | None, ops: Ops, *, in_place: bool = True) -> GradTerms:
        """Input: ``grad * (x - y) / max((1 - x) * x, eps) * weight [/ numel]``
        (Loss.cpp), ``eps`` = ``float32(1e-12)`` cast to ``x.dtype``: 0 in float16,
        which gives NaN at ``x = y`` in {0, 1} and +-inf at the other endpoint, as
        torch. Target: ``-logit(x) * grad * weight [/ numel]``, ``logit(x) =
        log(x / (1 - x))``, unclamped: +inf at ``x = 0``, -inf at ``x = 1``."""
        w = None if w is None else _weight_as_expanded(w, x, ops)
        if wrt == "target":
            return GradTerms(-ops.logit(x), None, w, count, y.dtype)
        d = (1.0 - x) * x
        if dtype_name(x.dtype) == "float16":
            # eps is 0: std::max(d, 0) as torch's scalar kernel has it, d unless d < 0,
            # so that max(-0.0, 0.0) is -0.0 (x = -0.0), where a maximum may give +0.0
            divisor = ops.xp.where(d < 0.0, ops.xp.zeros_like(d), d)
        else:  # the Python float rounds to x.dtype as torch's cast of 1e-12f does
            divisor = ops.clamp_min(d, BACKWARD_EPS)
        return GradTerms(x - y, divisor, w, count, x.dtype)


class _BCEWithLogits(_Loss):
    """``binary_cross_entropy_with_logits``: logits ``x``, targets ``t``; the target's
    dtype."""

    name, logits = "binary_cross_entropy_with_logits", True

    def dtype(self, x: Array, t: Array) -> DType:
        return t.dtype

    def elementwise(self, x: Array, t: Array, w: Array | None, p: Array | None,
                    ops: Ops) -> Array:
        """``((1 - t) * x - log_sigmoid(x) * (1 + (p - 1) * t)) * weight``."""
        ls = ops.log_sigmoid(x)
        p = _float_pos_weight(p, t, ops)
        if p is not None:
            log_weight = _rounded(_torch_op(p - 1.0, t, "mul", ops, in_place=False), ops) + 1.0
            ls = _rounded(_torch_op(ls, log_weight, "mul", ops, in_place=True), ops)
        out = _torch_op(1.0 - t, x, "mul", ops, in_place=True)
        if ops.rounded is not None:
            out = ops.rounded(out, cancels=True)
        out = _torch_op(out, ls, "sub", ops, in_place=True)
        return out if w is None else _torch_op(out, w, "mul", ops, in_place=True)

    def grad_terms(self, wrt: str, x: Array, t: Array, w: Array | None, p: Array | None,
                   count: int | None, ops: Ops, *, in_place: bool = True) -> GradTerms:
        """Input (torch's ``binary_cross_entropy_with_logits_backward``):
        ``sigmoid(x).sub_(t)``, or ``pt.add(1).sub_(t).mul_(sigmoid(x)).sub_(pt)`` with
        ``pt = p.mul(t)``, then ``.mul_(grad)``, ``.mul_(weight)``. Target:
        ``log_sigmoid(-x).sub_(log_sigmoid(x).mul_(p)).mul_(grad)``, or ``-x * grad``
        without ``pos_weight``. ``in_place=False``: the out-of-place ops torch uses when
        it records the backward (grad mode on, ``torch.func``/``torch.compile``), which
        promote; only mixed dtypes tell them apart."""
        p = _float_pos_weight(p, t, ops)
        if wrt == "target":
            if p is None:
                return GradTerms(-x, None, w, count, t.dtype, grad_in_place=False)
            scaled = _rounded(_torch_op(ops.log_sigmoid(x), p, "mul", ops, in_place=in_place),
                              ops)
            coef = _torch_op(ops.log_sigmoid(-x), scaled, "sub", ops, in_place=in_place)
            return GradTerms(coef, None, w, count, t.dtype, grad_in_place=in_place)
        sig = ops.sigmoid(x)
        if p is None:
            coef = _torch_op(sig, t, "sub", ops, in_place=in_place)
        else:
            pt = _rounded(_torch_op(p, t, "mul", ops, in_place=False), ops)
            coef = _torch_op(pt + 1.0, t, "sub", ops, in_place=in_place)
            coef = _rounded(_torch_op(coef, sig, "mul", ops, in_place=in_place), ops)
            coef = _torch_op(coef, pt, "sub", ops, in_place=in_place)
        return GradTerms(coef, None, w, count, x.dtype, in_place, in_place)


#: the two losses (``Call.loss``)
BCE = _BCE()
BCE_WITH_LOGITS = _BCEWithLogits()


