"""Public functions: check arguments, pick the namespace, hand over to the formulas.

Each function infers ``xp`` from its arrays, raises PyTorch's errors before touching
data, then evaluates ``_formulas`` in that namespace: directly (NumPy, CuPy, Dask,
array-api-strict, torch without autograd), through ``torch.autograd`` when torch
would record gradients, or through ``jax.custom_jvp`` for JAX arrays.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from . import _checks, _legacy
from . import _evaluate as E
from . import _formulas as F
from ._compat import (
    array_namespace,
    is_dask_namespace,
    is_jax_namespace,
    is_lazy_array,
    is_numpy_namespace,
    is_torch_namespace,
)
from ._libraries import one_library, returns_arrays

Array = Any

_BCE = "binary_cross_entropy"
_BCEWL = "binary_cross_entropy_with_logits"


# ------------------------------------------------------------------ backend helpers
def _is_lazy(xp: Any, *arrays: Array) -> bool:
    """Arrays whose values xbce must not read: tracers, task graphs, fake tensors."""
    if is_dask_namespace(xp):
        return True
    if is_jax_namespace(xp):
        import jax

        if any(isinstance(a, jax.core.Tracer) for a in arrays):
            return True
        # concrete arrays inside a trace (closed over by a jitted function, or handed
        # to a function by ``checkify``): every op on them gives a tracer
        try:
            from jax._src.core import trace_ctx
        except ImportError:  # a JAX without it: tracer arguments are what we can see
            return False
        return not trace_ctx.is_top_level()
    if is_torch_namespace(xp):
        import torch

        if torch.compiler.is_compiling():
            return True
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor
        return any(wrapped(a) or a.is_meta for a in arrays)
    if is_numpy_namespace(xp):
        return False
    # any other library: array-api-compat knows which of its arrays cannot be read
    return any(is_lazy_array(a) for a in arrays)


#: array-api-compat's namespace by array type, for NumPy and torch (whose namespace the
#: type alone decides): ``array_namespace`` costs ~8 us per call
_NAMESPACE_BY_TYPE: dict[type, Any] = {}


def _namespace(*arrays: Array | None) -> Any:
    types = {type(a) for a in arrays if a is not None}
    only = types.pop() if len(types) == 1 else None
    xp = _NAMESPACE_BY_TYPE.get(only) if only is not None else None
    if xp is None:
        xp = array_namespace(*arrays)
        if only is not None and (is_numpy_namespace(xp) or is_torch_namespace(xp)):
            _NAMESPACE_BY_TYPE[only] = xp
    return xp


def _prepare(
    op: str,
    input: Array,
    target: Array,
    reduction: str,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    grad_output: Array | None = None,
) -> tuple[Any, str]:
    """Every check that does not read values; returns ``(xp, reduction)``."""
    reduction = _checks.reduction(reduction)
    _checks.arrays(
        input=input, target=target, weight=weight, pos_weight=pos_weight, grad_output=grad_output
    )
    xp = _namespace(input, target, weight, pos_weight, grad_output)
    _checks.arguments(op == _BCEWL, input, target, reduction, xp, weight=weight,
                      pos_weight=pos_weight, grad_output=grad_output)
    return xp, reduction


def _torch_adapter(*arrays: Array | None) -> Any:
    """The torch adapter (``_torch_autograd``) when every array is a torch tensor, else
    ``None``: it runs the whole call (checks, autocast, autograd, ``torch.compile``)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    for a in arrays:
        if a is not None and not isinstance(a, torch.Tensor):
            return None
    from . import _torch_autograd as T

    return T


def _autocast(*arrays: Array | None) -> tuple[Any, ...]:
    """Under ``torch.autocast``, torch's casts of the arguments (``_torch_autograd``)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(arrays[0], torch.Tensor):
        return arrays
    from . import _torch_autograd as T

    return T.autocast(*arrays)


# ------------------------------------------------------------------------- forward
@returns_arrays
def binary_cross_entropy(
    input: Array,
    target: Array,
    weight: Array | float | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""Binary cross-entropy between probabilities and targets, exactly as PyTorch.

    The drop-in for :func:`torch.nn.functional.binary_cross_entropy`, for any array
    API library. Per element, in PyTorch's order of operations::

        loss = (y - 1) * max(log1p(-x), -100) - y * max(log(x), -100)
        loss = loss * weight                      # if given
        out  = loss | sum(loss) | sum(loss) / numel(loss)

    Each log is clamped at -100 *before* it is multiplied, so ``x = 0`` or ``1``
    gives a loss of 0 or 100, never ``inf`` or NaN (``x = y = 1`` gives ``-0.0``).
    There is no epsilon clipping of ``x`` (unlike Keras' 1e-7 or scikit-learn's
    machine epsilon).

    Parameters
    ----------
    input : array
        Probabilities ``x`` in [0, 1], any shape, a real floating dtype
        (float16, bfloat16, float32, float64).
    target : array
        Targets ``y`` in [0, 1] (soft targets allowed), same shape and dtype as
        ``input``. There is no broadcasting between ``input`` and ``target``.
    weight : array, optional
        Rescales each element's loss. It must broadcast *into* ``input.shape``
        (right-aligned, e.g. shape ``(C,)`` for the last axis); the result never
        grows. Any numeric dtype; the result keeps ``input``'s dtype. A NumPy array
        or a Python scalar is converted to ``input``'s library (a scalar in the
        target's dtype, as PyTorch treats a wrapped number).
    size_average, reduce : bool, optional
        Deprecated, as in PyTorch (positional arguments 4 and 5, as in PyTorch). If
        either is given, they decide the reduction instead of ``reduction``: ``reduce``
        false gives ``'none'``, else ``size_average`` false gives ``'sum'``, else
        ``'mean'`` (a missing one counts as true), with PyTorch's ``UserWarning``
        "size_average and reduce args will be deprecated, please use
        reduction='...' instead.".
    reduction : {'mean', 'sum', 'none'}
        ``'mean'`` is ``sum(weight * loss) / numel`` (*not* a weighted mean; NaN for
        empty input), ``'sum'`` the sum (0 for empty input), ``'none'`` the
        elementwise losses.

    Returns
    -------
    array
        ``input``'s dtype, namespace and device; 0-d unless ``reduction='none'``
        (a 0-d array, never a NumPy scalar, for a 0-d input).

    Raises
    ------
    ValueError
        ``reduction`` not one of the three (checked before anything else).
    ValueError and RuntimeError
        ``target.shape != input.shape`` (:class:`ShapeMismatchError`, PyTorch's
        ``ValueError`` and message).
    TypeError
        arrays of two libraries other than NumPy (e.g. torch and JAX).
    ValueError and RuntimeError
        (one exception class, catchable as either) an ``input`` or ``target``
        element outside [0, 1], NaN or inf: "all elements of input should be
        between 0 and 1". Checked on eager arrays only (NumPy, CuPy,
        array-api-strict, PyTorch on any device, JAX outside transformations);
        on CUDA this is a normal exception, where PyTorch hits a device-side
        assert. On Dask it is raised when the graph is computed, by the chunk task
        that finds the bad value. Traced arrays (JAX under ``jit``/``grad``/``vmap``,
        ``torch.compile``, ``torch.func``) are never read: there an invalid element
        makes the loss NaN instead (under :func:`xbce.checkify`, a JAX checkify
        error with this message).
    ValueError and RuntimeError
        ``weight`` that does not broadcast into ``input.shape``.
    TypeError and RuntimeError
        ``target.dtype != input.dtype`` (no type promotion, as in PyTorch).
    TypeError and NotImplementedError
        an integer, bool or complex ``input``.
    RuntimeError
        (PyTorch only) a ``weight`` that requires grad.

    Notes
    -----
    float16/bfloat16 are computed op by op, each op rounded to half (the logs in
    float32), and reductions accumulate in float32, which is what PyTorch does.
    Gradients (PyTorch autograd, JAX ``grad``/``jvp``) are PyTorch's hand-written
    ones, not the derivative of this formula: see
    :func:`binary_cross_entropy_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> import xbce
    >>> p = np.asarray([[0.5401], [0.4482]], dtype=np.float32)
    >>> y = np.asarray([[1.0], [0.0]], dtype=np.float32)
    >>> float(xbce.binary_cross_entropy(p, y))
    0.6052852869033813
    >>> float(xbce.binary_cross_entropy(p, y, reduction="sum"))
    1.2105705738067627
    """
    reduction = _legacy.reduction(size_average, reduce, reduction)
    torch_adapter = _torch_adapter(input, target, weight)
    if torch_adapter is not None:
        return torch_adapter.binary_cross_entropy(input, target, weight, reduction)
    input, target, weight, _, _ = one_library(input, target, weight)
    input, target, weight = _autocast(input, target, weight)
    xp, reduction = _prepare(_BCE, input, target, reduction, weight=weight)
    lazy = _is_lazy(xp, input, target)
    if lazy:
        return _bce(xp, True, input, target, weight, reduction)
    if reduction == F.NONE:
        _checks.unit_interval(input, target, xp)
        return _bce(xp, False, input, target, weight, reduction)
    out = _bce(xp, False, input, target, weight, reduction)
    _checks.unit_interval(input, target, xp, reduced=out)  # raises before returning
    return out


def _bce_chunk(x: Array, y: Array, w: Array | None, *, xp: Any) -> Array:
    """BCE of one Dask chunk (NumPy arrays), checked as an eager call is.

    Runs inside the chunk's own task at compute time: the error reaches ``compute()``
    with torch's class and message, without another pass or graph layer. The value
    check rides on the chunk's summed loss (see :func:`_checks.unit_interval`)."""
    _checks.same_shape(x, y, logits=False)  # blocks of arrays of unknown size
    loss = F.bce_loss(x, y, w, xp=xp)
    _checks.unit_interval(x, y, xp, reduced=xp.sum(loss))
    return loss


def _bce_with_logits_chunk(
    x: Array, t: Array, w: Array | None, p: Array | None, *, xp: Any
) -> Array:
    """BCE-with-logits of one Dask chunk: only the shape check of blocks of unknown size."""
    _checks.same_shape(x, t, logits=True)
    return F.bce_with_logits_loss(x, t, w, p, xp=xp)


def _bce(xp: Any, lazy: bool, x: Array, y: Array, w: Array | None, reduction: str) -> Array:
    if is_dask_namespace(xp):
        return E.reduced(_bce_chunk, x, x, y, w, dtype=x.dtype, reduction=reduction, xp=xp)
    if is_torch_namespace(xp):
        from . import _torch_autograd as T

        if T.needs_autograd(x, y, lazy=lazy):
            return T.BinaryCrossEntropy.apply(x, y, w, reduction, lazy, xp)  # type: ignore[no-untyped-call]
    elif is_jax_namespace(xp):
        from . import _jax_autodiff as J

        return J.evaluate_bce(reduction, lazy, x, y, w)
    fn = partial(F.bce_loss, lazy=lazy)
    return E.reduced(fn, x, x, y, w, dtype=x.dtype, reduction=reduction, xp=xp)


@returns_arrays
def binary_cross_entropy_with_logits(
    input: Array,
    target: Array,
    weight: Array | float | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Array | float | None = None,
) -> Array:
    r"""Binary cross-entropy on logits, exactly as PyTorch (sigmoid fused in).

    The drop-in for :func:`torch.nn.functional.binary_cross_entropy_with_logits`.
    Per element, with ``p = pos_weight`` (1 when absent)::

        log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
        loss = (1 - t) * x - log_sigmoid(x) * (1 + (p - 1) * t)
        loss = loss * weight                      # if given
        out  = loss | sum(loss) | sum(loss) / numel(loss)

    This equals ``-[p t log(sigmoid(x)) + (1 - t) log(1 - sigmoid(x))]`` and is
    preferable to ``binary_cross_entropy(sigmoid(x), t)``: no -100 clamp, no
    saturation at 1. Like PyTorch, it is NaN at ``x = -inf`` and at ``x = +inf``
    with ``t = 1``, and a very small loss (``x <= -17``, ``t = 0`` in float32)
    cancels to 0.

    Parameters
    ----------
    input : array
        Logits ``x``, any shape, a real floating dtype. Not clamped.
    target : array
        Targets ``t``, same shape as ``input``, real floating. Not range-checked
        (PyTorch accepts any value, e.g. 2 or NaN). The result has ``target``'s
        dtype, which may differ from ``input``'s (PyTorch's rule).
    weight : array, optional
        Rescales each element's loss; must broadcast into ``input.shape``.
    size_average, reduce, reduction
        As in :func:`binary_cross_entropy`.
    pos_weight : array, optional
        Weight of the positive term, broadcast right-aligned against the target:
        a ``(C,)`` array weights the *last* axis (use ``(C, 1, 1)`` for the
        channel axis of ``(N, C, H, W)``). Must broadcast into ``input.shape``.
        Zero and negative values are used as given. A Python scalar (PyTorch
        requires a tensor) becomes a 0-d array of the target's dtype; a NumPy array
        is converted to ``input``'s library.

    Returns
    -------
    array
        ``target``'s dtype, ``input``'s namespace and device.

    Raises
    ------
    ValueError
        Bad ``reduction``; ``target.shape != input.shape``.
    ValueError and RuntimeError
        ``weight`` or ``pos_weight`` that does not broadcast into ``input.shape``.
    TypeError and NotImplementedError
        a non-floating ``input`` or ``target``.
    RuntimeError
        (PyTorch only) a ``weight`` or ``pos_weight`` that requires grad.

    Notes
    -----
    For float16/bfloat16, ``log_sigmoid`` is evaluated in float32 and rounded once;
    every other op rounds to half. Gradients are PyTorch's:
    ``((p t + 1 - t) sigmoid(x) - p t) * grad`` for the input, see
    :func:`binary_cross_entropy_with_logits_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> import xbce
    >>> x = np.full((10, 64), 1.5, dtype=np.float32)
    >>> t = np.ones((10, 64), dtype=np.float32)
    >>> loss = xbce.binary_cross_entropy_with_logits(x, t, pos_weight=np.ones(64, np.float32))
    >>> round(float(loss), 6)
    0.201413
    """
    reduction = _legacy.reduction(size_average, reduce, reduction)
    torch_adapter = _torch_adapter(input, target, weight, pos_weight)
    if torch_adapter is not None:
        return torch_adapter.binary_cross_entropy_with_logits(
            input, target, weight, reduction, pos_weight
        )
    input, target, weight, pos_weight, _ = one_library(input, target, weight, pos_weight)
    input, target, weight, pos_weight = _autocast(input, target, weight, pos_weight)
    xp, reduction = _prepare(
        _BCEWL, input, target, reduction, weight=weight, pos_weight=pos_weight
    )
    lazy = _is_lazy(xp, input, target)
    if is_torch_namespace(xp):
        from . import _torch_autograd as T

        if T.needs_autograd(input, target, lazy=lazy):
            return T.BinaryCrossEntropyWithLogits.apply(  # type: ignore[no-untyped-call]
                input, target, weight, pos_weight, reduction, lazy, xp
            )
    elif is_jax_namespace(xp):
        from . import _jax_autodiff as J

        return J.evaluate_bce_with_logits(reduction, lazy, input, target, weight, pos_weight)
    return E.reduced(
        _bce_with_logits_chunk if is_dask_namespace(xp) else F.bce_with_logits_loss,
        input,
        input,
        target,
        weight,
        pos_weight,
        dtype=target.dtype,
        reduction=reduction,
        xp=xp,
    )


# ------------------------------------------------------------------------ backward
def _backward(
    op: str,
    which: str,
    grad_output: Array,
    input: Array,
    target: Array,
    weight: Array | None,
    pos_weight: Array | None,
    reduction: str,
) -> Array:
    input, target, weight, pos_weight, grad_output = one_library(
        input, target, weight, pos_weight, grad_output
    )
    xp, reduction = _prepare(
        op,
        input,
        target,
        reduction,
        weight=weight,
        pos_weight=pos_weight,
        grad_output=grad_output,
    )
    if is_jax_namespace(xp):
        from . import _jax_autodiff as J

        return J.backward(op == _BCEWL, which, reduction, grad_output, input, target, weight,
                          pos_weight)
    return E.gradient(op == _BCEWL, which, grad_output, input, target, weight, pos_weight,
                      reduction, xp=xp)


@returns_arrays
def binary_cross_entropy_backward(
    grad_output: Array,
    input: Array,
    target: Array,
    weight: Array | None = None,
    reduction: str = "mean",
) -> Array:
    r"""Gradient of :func:`binary_cross_entropy` w.r.t. ``input``, as PyTorch computes it.

    PyTorch's ``aten::binary_cross_entropy_backward``, for libraries without
    autodiff (NumPy, CuPy, Dask, array-api-strict); PyTorch autograd and JAX use the
    same formula through :func:`binary_cross_entropy`::

        grad_input = grad_output * (x - y) / max((1 - x) * x, eps) * weight [/ numel]

    with ``eps = float32(1e-12)`` cast to ``x``'s dtype (0 in float16). This is
    **not** the derivative of the forward: it ignores the -100 clamp (at ``x = 0``,
    ``y = 1`` it is about -1e12, not 0) and caps ``|grad|`` near 0 and 1, where the
    true derivative ``(x - y) / (x (1 - x))`` is unbounded. In float16 it is NaN at
    ``x = y`` in {0, 1} and +-inf near the other endpoint, as in PyTorch.

    Parameters
    ----------
    grad_output : array
        The upstream gradient: 0-d for ``'mean'``/``'sum'``, broadcastable into
        ``input.shape`` for ``'none'``.
    input, target, weight, reduction
        As in :func:`binary_cross_entropy` (values are not range-checked, as in
        PyTorch's backward).

    Returns
    -------
    array
        Shape and dtype of ``input``.
    """
    return _backward(_BCE, "input", grad_output, input, target, weight, None, reduction)


@returns_arrays
def binary_cross_entropy_target_backward(
    grad_output: Array,
    input: Array,
    target: Array,
    weight: Array | None = None,
    reduction: str = "mean",
) -> Array:
    r"""Gradient of :func:`binary_cross_entropy` w.r.t. ``target``, as PyTorch.

    PyTorch's ``binary_cross_entropy_target_backward``::

        grad_target = -logit(x) * grad_output * weight [/ numel],  logit(x) = log(x / (1 - x))

    Unclamped: ``+inf`` at ``x = 0`` and ``-inf`` at ``x = 1`` for every target,
    although the forward clamps its logs at -100.

    Returns
    -------
    array
        Shape and dtype of ``target``.
    """
    return _backward(_BCE, "target", grad_output, input, target, weight, None, reduction)


@returns_arrays
def binary_cross_entropy_with_logits_backward(
    grad_output: Array,
    input: Array,
    target: Array,
    weight: Array | None = None,
    reduction: str = "mean",
    pos_weight: Array | None = None,
) -> Array:
    r"""Gradient of :func:`binary_cross_entropy_with_logits` w.r.t. ``input``, as PyTorch.

    ::

        grad_input = ((p t + 1 - t) * sigmoid(x) - p t) * grad_output * weight [/ numel]
        grad_input = (sigmoid(x) - t) * grad_output * weight [/ numel]    # no pos_weight

    Finite at ``x = +-inf`` (0, +-1 or +-p) even where the loss is NaN. At ``x = 0``
    with ``pos_weight`` this differs from differentiating the forward's ``min(x, 0)``
    (which picks one side of the kink); PyTorch's and xbce's value is the true one.

    Returns
    -------
    array
        Shape and dtype of ``input``.
    """
    return _backward(_BCEWL, "input", grad_output, input, target, weight, pos_weight, reduction)


@returns_arrays
def binary_cross_entropy_with_logits_target_backward(
    grad_output: Array,
    input: Array,
    target: Array,
    weight: Array | None = None,
    reduction: str = "mean",
    pos_weight: Array | None = None,
) -> Array:
    r"""Gradient of :func:`binary_cross_entropy_with_logits` w.r.t. ``target``, as PyTorch.

    ::

        grad_target = (log_sigmoid(-x) - log_sigmoid(x) * p) * grad_output * weight [/ numel]
        grad_target = -x * grad_output * weight [/ numel]                 # no pos_weight

    Returns
    -------
    array
        Shape and dtype of ``target``.
    """
    return _backward(_BCEWL, "target", grad_output, input, target, weight, pos_weight, reduction)
