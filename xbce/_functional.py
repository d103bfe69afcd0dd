"""The public functions: each describes its call in one record and hands it down.

Each function maps PyTorch's legacy arguments, validates ``reduction``, and builds a
:class:`~._typing.Call` (which loss, its arrays, the reduction); :func:`_backends.of`
picks the backend of the arrays once per call (converting NumPy arrays and Python
scalars that join another library's arrays), and that backend carries the call out
(``backend.loss(call)`` or ``backend.gradient(call)``).
"""

from __future__ import annotations

from . import _backends
from ._checks import REDUCTIONS
from ._checks import reduction as _reduction
from ._formulas import BCE, BCE_WITH_LOGITS
from ._typing import Array, Call, Loss


def _loss(loss: Loss, input: Array, target: Array, weight: Array | None,
          size_average: object, reduce: object, reduction: str, pos_weight: Array | None
          ) -> Array:
    if size_average is not None or reduce is not None:
        from ._legacy import reduction as legacy_reduction  # deprecated: imported on use

        reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction not in REDUCTIONS:
        reduction = _reduction(reduction)  # torch's error, before anything else
    backend, call = _backends.of(Call(loss, input, target, weight, pos_weight, reduction))
    return backend.loss(call)


def _gradient(loss: Loss, wrt: str, grad_output: Array, input: Array, target: Array,
              weight: Array | None, pos_weight: Array | None, reduction: str) -> Array:
    if reduction not in REDUCTIONS:
        reduction = _reduction(reduction)
    call = Call(loss, input, target, weight, pos_weight, reduction, grad_output, wrt)
    backend, call = _backends.of(call)
    return backend.gradient(call)


# ------------------------------------------------------------------------- forward
def binary_cross_entropy(
    input: Array, target: Array, weight: Array | float | None = None,
    size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean",
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
        an integer, bool or complex ``input``; a complex ``weight``.
    RuntimeError
        (PyTorch only) a ``weight`` that requires grad.

    Of several errors, the one PyTorch raises first is raised: the shapes, whether
    ``weight`` broadcasts with them, a ``weight`` that requires grad, the dtypes,
    the values, then a ``weight`` that would grow the result or is complex. On Dask
    (whose values are read only when the graph is computed) the errors that need no
    values are raised when the graph is built, before any value error.

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
    return _loss(BCE, input, target, weight, size_average, reduce, reduction, None)


def binary_cross_entropy_with_logits(
    input: Array, target: Array, weight: Array | float | None = None,
    size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean",
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
        a non-floating ``input`` or ``target``, a bool or complex ``pos_weight``, a
        complex ``weight``.
    RuntimeError
        (PyTorch only) a ``weight`` or ``pos_weight`` that requires grad.

    Of several errors, the one PyTorch raises first is raised: the shapes, a
    ``weight`` or ``pos_weight`` that requires grad, the input's dtype, then
    ``pos_weight`` (bool, broadcasting, complex), the target's dtype, then ``weight``.

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
    return _loss(BCE_WITH_LOGITS, input, target, weight, size_average, reduce, reduction,
                 pos_weight)


# ------------------------------------------------------------------------ backward
def binary_cross_entropy_backward(
    grad_output: Array, input: Array, target: Array, weight: Array | None = None,
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
    return _gradient(BCE, "input", grad_output, input, target, weight, None, reduction)


def binary_cross_entropy_target_backward(
    grad_output: Array, input: Array, target: Array, weight: Array | None = None,
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
    return _gradient(BCE, "target", grad_output, input, target, weight, None, reduction)


def binary_cross_entropy_with_logits_backward(
    grad_output: Array, input: Array, target: Array, weight: Array | None = None,
    reduction: str = "mean", pos_weight: Array | None = None,
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
    return _gradient(BCE_WITH_LOGITS, "input", grad_output, input, target, weight, pos_weight,
                     reduction)


def binary_cross_entropy_with_logits_target_backward(
    grad_output: Array, input: Array, target: Array, weight: Array | None = None,
    reduction: str = "mean", pos_weight: Array | None = None,
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
    return _gradient(BCE_WITH_LOGITS, "target", grad_output, input, target, weight, pos_weight,
                     reduction)
