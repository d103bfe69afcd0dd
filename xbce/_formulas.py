"""The math of xbce, written once against the Python array API standard.

Every function here takes the array namespace ``xp`` as a required keyword and uses
only the standard, so the same lines run on NumPy, PyTorch, JAX, CuPy, Dask and
``array-api-strict``. Nothing here validates arguments (see ``_checks``) and nothing
here knows about autodiff (see ``_torch_adapter`` and ``_jax_adapter``, which only
wire the gradient terms below into their frameworks).

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
import numbers
import struct
from typing import Any, NamedTuple

Array = Any
Namespace = Any

NONE, MEAN, SUM = "none", "mean", "sum"

#: ``max(log, -100)``: PyTorch's clamp of each log term of BCE.
LOG_CLAMP = -100.0
#: PyTorch's backward epsilon is the *float32* constant ``1e-12f`` cast to the input
#: dtype: 9.999999960041972e-13 in float32 and float64, 1.0018652574217413e-12 in
#: bfloat16, and 0 in float16 (it underflows). This is its float32 value, exactly.
BACKWARD_EPS: float = struct.unpack("f", struct.pack("f", 1e-12))[0]


# --------------------------------------------------------------------------- dtypes
def _dtype_name(dtype: Any) -> str:
    return str(dtype).rsplit(".", 1)[-1]


_HALF_BY_DTYPE: dict[tuple[type, Any], bool] = {}


def is_half(dtype: Any, xp: Namespace) -> bool:
    """Whether ``dtype`` is float16 or bfloat16 (evaluated via float32, per op).

    By name, because not every namespace exports ``float16`` (Dask's does not);
    remembered per dtype (the name costs a ``str`` per call), keyed with the dtype's
    type so that dtypes of different libraries are never compared."""
    key = (type(dtype), dtype)
    half = _HALF_BY_DTYPE.get(key)
    if half is None:
        half = _HALF_BY_DTYPE[key] = _dtype_name(dtype) in ("float16", "bfloat16")
    return half


def _cast(a: Array, dtype: Any, xp: Namespace) -> Array:
    return a if a.dtype == dtype else xp.astype(a, dtype)


def _torch_op(a: Array, b: Array, op: str, xp: Namespace, *, in_place: bool) -> Array:
    """``a.mul(b)``/``a.sub(b)`` (``in_place``: ``a.mul_(b)``, keeping ``a``'s dtype),
    with torch's type promotion and torch's CPU kernels' rounding.

    A 0-d operand next to a dimensioned one does not widen the result: ``f32 * f64(0-d)``
    is computed in float32. A 0-d second operand of a half ``mul`` is read at float32
    precision (the kernels' opmath scalar), not rounded to half first.
    """
    own = a.dtype
    if b.dtype == own and (op != "mul" or b.ndim > 0 or a.ndim == 0 or not is_half(own, xp)):
        return a * b if op == "mul" else a - b  # one dtype, no half scalar: nothing to do
    if not xp.isdtype(b.dtype, "real floating"):
        b = xp.astype(b, own)  # integer or bool weights, as torch promotes them
    a_dims, b_dims = a.ndim > 0, b.ndim > 0
    if a_dims != b_dims:
        common = a.dtype if a_dims else b.dtype
    else:
        common = xp.result_type(a.dtype, b.dtype)
    if op == "mul" and a_dims and not b_dims and is_half(common, xp):
        a32, b32 = _cast(a, xp.float32, xp), _cast(b, xp.float32, xp)
        out = _cast(a32 * b32, common, xp)
    else:
        a, b = _cast(a, common, xp), _cast(b, common, xp)
        out = a * b if op == "mul" else a - b
    return _cast(out, own, xp) if in_place else out


def _in_place(a: Array, b: Array, op: str, xp: Namespace) -> Array:
    """``a.mul_(b)`` / ``a.sub_(b)``: torch's promotion (:func:`_torch_op`), ``a``'s dtype."""
    return _torch_op(a, b, op, xp, in_place=True)


def rounded(a: Array, *, xp: Namespace, cancels: bool = True) -> Array:
    """``a`` rounded to its dtype before the addition that consumes it, as torch has it.

    torch rounds every product (no fused multiply-add on x86-64); an optimizing
    compiler may contract ``a * b - c`` into one fused multiply-add, one rounding
    fewer. A namespace whose compiler does that (XLA's: ``_jax_adapter``) provides
    ``xp.rounded`` to prevent it; elsewhere this is ``a`` itself. ``cancels=False``
    tells it that nothing cancels in that addition (a fused multiply-add then moves
    the result by at most an ulp), so it may skip the cost."""
    keep = getattr(xp, "rounded", None)
    return a if keep is None else keep(a, cancels=cancels)


def _in_float32(fn: Any, x: Array, xp: Namespace) -> Array:
    """``fn(x)`` evaluated in float32 and rounded once for half types (torch's opmath)."""
    if is_half(x.dtype, xp):
        return xp.astype(fn(xp.astype(x, xp.float32), xp), x.dtype)
    return fn(x, xp)


def _log_sigmoid(x: Array, xp: Namespace) -> Array:
    # torch's CPU kernel: min(x, 0) - log1p(exp(-|x|)); not softplus, not max-trick
    return xp.minimum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))


def _sigmoid(x: Array, xp: Namespace) -> Array:
    return 1.0 / (1.0 + xp.exp(-x))


def log_sigmoid(x: Array, *, xp: Namespace) -> Array:
    """``log(sigmoid(x))`` as torch computes it (half types in float32, rounded once).

    The namespace's own primitive where it has one (``xp.log_sigmoid``: the torch
    adapter's namespace gives torch's there), else the array-API composition."""
    native = getattr(xp, "log_sigmoid", None)
    if native is not None:
        return native(x)
    return _in_float32(_log_sigmoid, x, xp)


def sigmoid(x: Array, *, xp: Namespace) -> Array:
    """``1 / (1 + exp(-x))`` as torch computes it (half types in float32, rounded once).

    ``xp.sigmoid`` where the namespace has one (see :func:`log_sigmoid`)."""
    native = getattr(xp, "sigmoid", None)
    if native is not None:
        return native(x)
    return _in_float32(_sigmoid, x, xp)


# ------------------------------------------------------------------------ reduction
def numel(a: Array) -> int:
    return math.prod(a.shape)


def reduce(loss: Array, reduction: str, *, xp: Namespace) -> Array:
    """torch's ``apply_loss_reduction``: ``none``, ``sum``, or ``mean = sum / numel``.

    Half types accumulate in float32 and round once; the division is in float32 too.
    """
    if reduction == NONE:
        return loss
    half = is_half(loss.dtype, xp)
    native_mean = getattr(xp, "loss_mean", None)
    if reduction == MEAN and native_mean is not None and not half:
        return native_mean(loss)  # the library's own mean where it is sum / numel
    acc = xp.float32 if half else loss.dtype
    total = xp.sum(loss, dtype=acc)
    if reduction == MEAN:
        n = numel(loss)
        # 0/0 is NaN (torch returns NaN for the mean of an empty tensor, silently)
        total = total / n if n != 0 else total * math.nan
    total = _cast(total, loss.dtype, xp)
    # NumPy's sum is a scalar: make it a 0-d array (other libraries' already are)
    return xp.asarray(total) if isinstance(total, numbers.Number) else total


def mean_count(reduction: str, like: Array) -> int | None:
    """The divisor of ``mean`` (torch's ``numel``) for a gradient of ``like``'s shape;
    ``None`` (no division) for ``sum`` and ``none``."""
    return numel(like) if reduction == MEAN else None


def scale_by_numel(g: Array, n: int, xp: Namespace, *, like: Array | None = None) -> Array:
    """``g.div_(numel)``: the divisor is a float32/float64 scalar, never a half.

    ``xp.scale_by_numel(g, n, like)`` where the namespace has one (XLA rewrites a
    division by a constant as a multiplication: the JAX adapter keeps it a division);
    ``like`` is a primal array of ``g``'s shape (see there)."""
    native = getattr(xp, "scale_by_numel", None)
    if native is not None:
        return native(g, n, g if like is None else like)
    if is_half(g.dtype, xp):
        return xp.astype(xp.astype(g, xp.float32) / n, g.dtype)
    return g / n


# -------------------------------------------------------------------------- forward
def bce_elementwise(x: Array, y: Array, *, xp: Namespace) -> Array:
    """``(y - 1) * max(log1p(-x), -100) - y * max(log(x), -100)``, per-op rounded.

    ``log1p(-x)`` is taken as ``min(log1p(-x), -x)``: the same value wherever
    ``log1p`` is faithful (``log(1 - x) <= -x``, and ``-x`` is a float, so every
    faithful rounding is ``<= -x``), and ``-x`` where a library's ``log1p`` is not:
    torch's vectorised ``log1p`` returns 0 for the smallest subnormals (``x = 2**-149``
    in float32, ``2**-1074`` in float64), where glibc's, which torch's BCE kernel
    calls, returns ``-x``; a loss of 0 instead of ``x``, and NaN instead of inf times
    an infinite weight. One elementwise op on a temporary the formula holds anyway
    (in cache where the arrays are evaluated in blocks), no second pass."""
    neg_x = -x
    log_1mx = xp.maximum(xp.minimum(xp.log1p(neg_x), neg_x), LOG_CLAMP)
    log_x = xp.maximum(xp.log(x), LOG_CLAMP)
    # the terms are >= 0 and <= 0: nothing cancels (see ``rounded``)
    return rounded((y - 1.0) * log_1mx, xp=xp, cancels=False) - rounded(
        y * log_x, xp=xp, cancels=False
    )


def bce_loss(
    x: Array, y: Array, weight: Array | None, *, xp: Namespace, lazy: bool = False
) -> Array:
    """Elementwise BCE times ``weight``: ``reduction='none'``.

    ``lazy=True`` (values not checked beforehand) turns out-of-range targets into NaN.
    """
    loss = bce_elementwise(x, y, xp=xp)
    if lazy:
        loss = poison_out_of_range_targets(loss, y, xp=xp)
    if weight is not None:
        loss = _in_place(loss, expanded_weight(weight, x, xp=xp), "mul", xp)
    return loss


def expanded_weight(weight: Array, like: Array, *, xp: Namespace) -> Array:
    """BCE's ``weight`` as torch's Python wrapper hands it on, ``weight.expand(shape)``:
    a 0-d weight becomes dimensioned (same values), so it promotes like one."""
    if weight.ndim == 0 and like.ndim > 0:
        return xp.reshape(weight, (1,) * like.ndim)
    return weight


def bce(
    x: Array,
    y: Array,
    weight: Array | None,
    reduction: str,
    *,
    xp: Namespace,
    lazy: bool = False,
) -> Array:
    """Binary cross-entropy on probabilities, torch's op order (see module docstring).

    ``lazy=True``: a bad target makes its element NaN (``none``) or the result NaN
    (``mean``/``sum``, tested once on the reduced value, which fuses better under
    ``jit`` than masking every element, with the same result).
    """
    if not lazy or reduction == NONE:
        return reduce(bce_loss(x, y, weight, xp=xp, lazy=lazy), reduction, xp=xp)
    total = reduce(bce_loss(x, y, weight, xp=xp), reduction, xp=xp)
    bad = xp.any(~_in_unit_interval(y))
    return xp.where(bad, xp.asarray(math.nan, dtype=total.dtype), total)


def bce_with_logits_elementwise(
    x: Array, t: Array, pos_weight: Array | None, *, xp: Namespace
) -> Array:
    """``(1 - t) * x - log_sigmoid(x) * (1 + (p - 1) * t)``, in the target's dtype."""
    ls = log_sigmoid(x, xp=xp)
    if pos_weight is not None:
        p = _float_pos_weight(pos_weight, t, xp)
        log_weight = rounded(_torch_op(p - 1.0, t, "mul", xp, in_place=False), xp=xp) + 1.0
        ls = _in_place(ls, log_weight, "mul", xp)
        ls = rounded(ls, xp=xp)
    loss = rounded(_in_place(1.0 - t, x, "mul", xp), xp=xp)
    return _in_place(loss, ls, "sub", xp)


def bce_with_logits_loss(
    x: Array, t: Array, weight: Array | None, pos_weight: Array | None, *, xp: Namespace
) -> Array:
    """Elementwise BCE-with-logits times ``weight``: ``reduction='none'``."""
    loss = bce_with_logits_elementwise(x, t, pos_weight, xp=xp)
    if weight is not None:
        loss = _in_place(loss, weight, "mul", xp)
    return loss


def bce_with_logits(
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    reduction: str,
    *,
    xp: Namespace,
) -> Array:
    """Binary cross-entropy on logits, torch's op order; the result has ``t``'s dtype."""
    return reduce(bce_with_logits_loss(x, t, weight, pos_weight, xp=xp), reduction, xp=xp)


def elementwise_loss(
    logits: bool,
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    *,
    xp: Namespace,
    lazy: bool = False,
) -> Array:
    """Either loss per element (``reduction='none'``), in one argument order for both:
    :func:`bce_with_logits_loss` (``logits``), else :func:`bce_loss` (``pos_weight``
    is ``None``; ``lazy`` poisons bad targets)."""
    if logits:
        return bce_with_logits_loss(x, t, weight, pos_weight, xp=xp)
    return bce_loss(x, t, weight, xp=xp, lazy=lazy)


def loss(
    logits: bool,
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    reduction: str,
    *,
    xp: Namespace,
    lazy: bool = False,
) -> Array:
    """Either loss, reduced: :func:`bce_with_logits` or :func:`bce`."""
    if logits:
        return bce_with_logits(x, t, weight, pos_weight, reduction, xp=xp)
    return bce(x, t, weight, reduction, xp=xp, lazy=lazy)


def poison_out_of_range_targets(loss: Array, y: Array, *, xp: Namespace) -> Array:
    """Lazy arrays only: NaN where the BCE target is outside [0, 1] (or NaN).

    An input outside [0, 1], NaN or inf already makes ``bce_elementwise`` NaN through
    its logs; a bad *target* would give a finite, wrong number, so it is masked here.
    Eager arrays are checked (and raise) instead; see ``_checks.unit_interval``.
    """
    return xp.where(_in_unit_interval(y), loss, xp.asarray(math.nan, dtype=loss.dtype))


def _in_unit_interval(y: Array) -> Array:
    return (y >= 0.0) & (y <= 1.0)  # NaN fails both


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
    dtype). The backward functions and torch's autograd apply the chain in this order;
    the JAX JVP applies it in reverse to a tangent, so that its *transpose* (reverse
    mode) performs exactly torch's operations in torch's order.
    """

    coef: Array
    divisor: Array | None
    weight: Array | None
    numel: int | None
    dtype: Any
    grad_in_place: bool = True
    weight_in_place: bool = True


def _terms(
    coef: Array,
    divisor: Array | None,
    weight: Array | None,
    count: int | None,
    like: Array,
    *,
    grad_in_place: bool = True,
    weight_in_place: bool = True,
) -> GradTerms:
    return GradTerms(coef, divisor, weight, count, like.dtype, grad_in_place, weight_in_place)


def bce_input_grad_terms(
    x: Array, y: Array, weight: Array | None, count: int | None, *, xp: Namespace
) -> GradTerms:
    """``grad * (x - y) / max((1 - x) * x, eps) * weight [/ numel]`` (Loss.cpp).

    ``eps`` is ``float32(1e-12)`` cast to ``x.dtype``: 0 in float16, which gives NaN
    at ``x = y`` in {0, 1} and +-inf at the other endpoint, exactly like torch.
    """
    d = (1.0 - x) * x
    if _dtype_name(x.dtype) == "float16":
        # eps is 0: std::max(d, 0) as torch's scalar kernel has it, d unless d < 0, so
        # that max(-0.0, 0.0) is -0.0 (x = -0.0), where xp.maximum may give +0.0
        divisor = xp.where(d < 0.0, xp.zeros_like(d), d)
    else:
        # eps > 0: no signed zero to tell apart, and the Python float rounds to
        # x.dtype as torch's cast of 1e-12f does (bfloat16 included)
        divisor = xp.maximum(d, BACKWARD_EPS)
    w = None if weight is None else expanded_weight(weight, x, xp=xp)
    return _terms(x - y, divisor, w, count, x)


def bce_target_grad_terms(
    x: Array, y: Array, weight: Array | None, count: int | None, *, xp: Namespace
) -> GradTerms:
    """``-logit(x) * grad * weight [/ numel]``, ``logit(x) = log(x / (1 - x))``.

    Unclamped, so +inf at ``x = 0`` and -inf at ``x = 1`` (FunctionsManual.cpp).
    """
    w = None if weight is None else expanded_weight(weight, x, xp=xp)
    return _terms(-xp.log(x / (1.0 - x)), None, w, count, y)


def _float_pos_weight(pos_weight: Array, t: Array, xp: Namespace) -> Array:
    if xp.isdtype(pos_weight.dtype, "real floating"):
        return pos_weight
    return xp.astype(pos_weight, t.dtype)  # integer pos_weight: torch promotes to t's


def bce_with_logits_input_grad_terms(
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    count: int | None,
    *,
    xp: Namespace,
    in_place: bool = True,
) -> GradTerms:
    """``((p*t + 1 - t) * sigmoid(x) - p*t) * grad``; ``(sigmoid(x) - t) * grad`` w/o p.

    torch's ``binary_cross_entropy_with_logits_backward``: ``sigmoid(x).sub_(t)`` (in
    ``x``'s dtype), or ``pt.add(1).sub_(t).mul_(sigmoid(x)).sub_(pt)`` with
    ``pt = p.mul(t)`` (in ``pt``'s dtype), then ``.mul_(grad)``, ``.mul_(weight)``.
    ``in_place=False``: the out-of-place ops torch uses when it records the backward
    (grad mode on, or ``torch.func``/``torch.compile`` tensors), which promote."""
    sig = sigmoid(x, xp=xp)
    if pos_weight is None:
        coef = _torch_op(sig, t, "sub", xp, in_place=in_place)
    else:
        pt = _torch_op(_float_pos_weight(pos_weight, t, xp), t, "mul", xp, in_place=False)
        pt = rounded(pt, xp=xp)
        coef = _torch_op(pt + 1.0, t, "sub", xp, in_place=in_place)
        coef = rounded(_torch_op(coef, sig, "mul", xp, in_place=in_place), xp=xp)
        coef = _torch_op(coef, pt, "sub", xp, in_place=in_place)
    return _terms(
        coef, None, weight, count, x, grad_in_place=in_place, weight_in_place=in_place
    )


def bce_with_logits_target_grad_terms(
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    count: int | None,
    *,
    xp: Namespace,
    in_place: bool = True,
) -> GradTerms:
    """``(log_sigmoid(-x) - log_sigmoid(x) * p) * grad``; ``-x * grad`` without p.

    torch's ``binary_cross_entropy_with_logits_target_backward``: with p,
    ``log_sigmoid(-x).sub_(log_sigmoid(x).mul_(p)).mul_(grad)`` (in ``x``'s dtype;
    out of place for ``torch.func``/``torch.compile`` tensors, ``in_place=False``);
    without, ``-x * grad`` (promoting); then ``.mul_(weight)`` in place."""
    if pos_weight is None:
        return _terms(-x, None, weight, count, t, grad_in_place=False)
    p = _float_pos_weight(pos_weight, t, xp)
    scaled = rounded(_torch_op(log_sigmoid(x, xp=xp), p, "mul", xp, in_place=in_place), xp=xp)
    coef = _torch_op(log_sigmoid(-x, xp=xp), scaled, "sub", xp, in_place=in_place)
    return _terms(coef, None, weight, count, t, grad_in_place=in_place)


def chain_dtype(terms: GradTerms, xp: Namespace) -> Any:
    """The dtype the chain runs in after ``coef.mul(grad)``: ``coef``'s when torch
    multiplies in place, else promoted with the gradient's (the loss's dtype: ``t``'s
    for BCE-with-logits, which ``coef`` already includes except for ``-x``)."""
    if terms.divisor is not None or terms.grad_in_place:
        return terms.coef.dtype
    return xp.result_type(terms.coef.dtype, terms.dtype)


def grad_terms(
    logits: bool,
    which: str,
    x: Array,
    t: Array,
    weight: Array | None,
    pos_weight: Array | None,
    count: int | None,
    *,
    xp: Namespace,
    in_place: bool = True,
) -> GradTerms:
    """The terms of the gradient of BCE (``logits=False``, ``pos_weight`` unused) or
    BCE-with-logits with respect to ``which``: ``"input"`` or ``"target"``.

    ``count`` is ``mean``'s divisor (:func:`mean_count`: the whole array's element
    count, also when the chain is applied block by block), ``None`` for ``sum`` and
    ``none``. ``in_place``: whether torch's BCE-with-logits backward runs its in-place ops (its
    plain backward) or their out-of-place forms (see
    :func:`bce_with_logits_input_grad_terms`); only mixed dtypes tell them apart."""
    if logits:
        make = (
            bce_with_logits_input_grad_terms
            if which == "input"
            else bce_with_logits_target_grad_terms
        )
        return make(x, t, weight, pos_weight, count, xp=xp, in_place=in_place)
    make_bce = bce_input_grad_terms if which == "input" else bce_target_grad_terms
    return make_bce(x, t, weight, count, xp=xp)


def apply_backward(
    grad: Array, terms: GradTerms, *, xp: Namespace, dtype: Any = None
) -> Array:
    """Apply ``terms`` to an upstream gradient in torch's order (the VJP), cast last to
    ``dtype`` (default ``terms.dtype``, the argument's; torch's forward-mode formula
    gives the loss's dtype instead).

    The one gradient chain of xbce: torch autograd's backward and JVP, the JAX JVP
    (through its transpose, :func:`apply_tangent`) and the explicit ``*_backward``
    functions all apply it, ``/ numel`` included."""
    if terms.divisor is not None:  # BCE: torch's scalar kernel, one dtype throughout
        g = _cast(grad * terms.coef / terms.divisor, terms.coef.dtype, xp)
    else:
        g = _torch_op(terms.coef, grad, "mul", xp, in_place=terms.grad_in_place)
    if terms.weight is not None:
        g = _torch_op(g, terms.weight, "mul", xp, in_place=terms.weight_in_place)
    if terms.numel is not None:
        g = scale_by_numel(g, terms.numel, xp, like=terms.coef)
    return _cast(g, terms.dtype if dtype is None else dtype, xp)


def apply_tangent(tangent: Array, terms: GradTerms, *, xp: Namespace) -> Array:
    """The same chain in reverse order (the JVP); its transpose is ``apply_backward``."""
    t = _cast(tangent, chain_dtype(terms, xp), xp)
    if terms.numel is not None:
        t = scale_by_numel(t, terms.numel, xp, like=terms.coef)
    if terms.weight is not None:
        t = _in_place(t, terms.weight, "mul", xp)
    if terms.divisor is not None:
        t = t / terms.divisor
    return t * terms.coef
