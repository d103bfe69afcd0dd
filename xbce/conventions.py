"""Other frameworks' binary cross-entropy, on every array library.

xbce's own functions give what PyTorch gives. The functions here give what *other*
frameworks give, written once against the array API standard like the rest of xbce, so
that a number from Keras, scikit-learn, optax or TensorFlow can be reproduced (and
differentiated) on NumPy, PyTorch, JAX, CuPy, Dask or array-api-strict arrays:

- :func:`keras_binary_crossentropy`: ``keras.losses.binary_crossentropy`` (Keras 3);
- :func:`sklearn_log_loss`: ``sklearn.metrics.log_loss`` for binary targets;
- :func:`optax_sigmoid_binary_cross_entropy`: ``optax.sigmoid_binary_cross_entropy``;
- :func:`tensorflow_sigmoid_cross_entropy_with_logits`:
  ``tf.nn.sigmoid_cross_entropy_with_logits``;
- :func:`handwritten_binary_cross_entropy`: the usual hand-written forms (``log(1 - p)``
  or ``log1p(-p)``, with or without clipping ``p``).

Each is built from differentiable array operations only (``clip``, ``log``, ``log1p``,
``logaddexp``, ``where``), so ``torch.autograd`` and ``jax.grad`` differentiate them as
the framework's own autodiff differentiates the original. Results have the dtype of the
predictions (or logits) and stay on their library and device.

Unlike xbce's PyTorch functions, these check only what the original checks (shapes,
floating dtypes); like Keras, optax and TensorFlow they do not check values.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ._compat import array_namespace, is_numpy_namespace

__all__ = [
    "KERAS_EPSILON",
    "handwritten_binary_cross_entropy",
    "keras_binary_crossentropy",
    "optax_sigmoid_binary_cross_entropy",
    "sklearn_log_loss",
    "tensorflow_sigmoid_cross_entropy_with_logits",
]

Array = Any

#: ``keras.config.epsilon()``'s default: Keras clips probabilities to ``[1e-7, 1 - 1e-7]``.
KERAS_EPSILON = 1e-7


# ------------------------------------------------------------------------ helpers
_F = TypeVar("_F", bound=Callable[..., Any])


def _quiet(fn: _F) -> _F:
    """Silence NumPy's ``log(0)``, ``0 * inf`` and ``exp`` overflow warnings inside ``fn``:
    the infinities and NaNs these conventions give are the frameworks' values."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        numpy = sys.modules.get("numpy")
        if numpy is None:
            return fn(*args, **kwargs)
        with numpy.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _floating(x: Array, xp: Any, what: str) -> None:
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{what} must have a real floating dtype, not {x.dtype}")


def _as_array(x: Array, xp: Any, like: Array | None = None) -> Array:
    """``x`` as an array of ``xp`` (Python numbers and lists too), on ``like``'s device."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    if like is None:
        return xp.asarray(x)
    return xp.asarray(x, device=getattr(like, "device", None))


def _log_sigmoid(x: Array, xp: Any) -> Array:
    """``log(sigmoid(x))`` as ``jax.nn.log_sigmoid``: ``-logaddexp(-x, 0)``."""
    return -xp.logaddexp(-x, xp.zeros_like(x))


# --------------------------------------------------------------------------- Keras
@_quiet
def keras_binary_crossentropy(
    y_true: Array,
    y_pred: Array,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    *,
    epsilon: float = KERAS_EPSILON,
) -> Array:
    r"""Keras 3's ``keras.losses.binary_crossentropy``: per sample, the mean over ``axis``.

    ::

        ℓ = mean over axis of -[y log p̄ + (1 - y) log(1 - p̄)],
        p̄ = clip(p, ε, 1 - ε),  ε = 1e-7

    with ``y`` smoothed to ``y (1 - s) + s / 2`` when ``label_smoothing = s > 0``. With
    ``from_logits=True``, the per-element loss is
    ``-y log σ(x) - (1 - y) log σ(-x)`` (``log_sigmoid``, no clipping).

    This is Keras' formula on its JAX and TensorFlow backends
    (``keras/src/backend/{jax,tensorflow}/nn.py``). Its NumPy backend agrees for
    probabilities but turns logits into ``sigmoid(x)`` and clips them (explain's ``sigmoid,
    then log(1-p), clamp 1e-7``); its torch backend clips, then calls ``torch``'s BCE
    (``log1p(-p)``), a few ulps away except that ``log(1 - p)`` loses the loss of a
    negative example below ``p ≈ 6e-8`` in float32. The mean over ``axis`` is
    computed in float32 and cast back, as ``keras.ops.mean`` does on the JAX, torch and
    TensorFlow backends (under the default ``floatx``): float64 inputs give a float64
    result with float32 precision (Keras' NumPy backend averages in float64).

    Where it differs from PyTorch (``torch.nn.functional.binary_cross_entropy``):
    the probability is *clipped* to ``[1e-7, 1 - 1e-7]``, so the loss is capped at
    ``-log 1e-7 ≈ 16.12`` (torch: 100, from its ``-100`` clamp of each log)
    and its gradient is 0 for ``p < 1e-7`` and ``p > 1 - 1e-7`` (torch: ``(p - y) /
    max(p (1 - p), 1e-12)``); ``1 - p`` is computed before the log (torch: ``log1p(-p)``);
    the result is a mean over the last axis per sample, not a scalar; in float16
    ``1 - 1e-7`` rounds to 1, so ``p = 1, y = 0`` gives ``inf``.

    Parameters
    ----------
    y_true : array
        Targets, same shape as ``y_pred``; cast to ``y_pred``'s dtype.
    y_pred : array
        Probabilities (or logits with ``from_logits=True``), real floating.
    from_logits : bool, default False
        Whether ``y_pred`` holds logits.
    label_smoothing : float, default 0.0
        ``s`` in ``y (1 - s) + s / 2``.
    axis : int, default -1
        The axis the mean is taken over (Keras' ``axis``).
    epsilon : float, default 1e-7
        ``keras.config.epsilon()``.

    Returns
    -------
    array
        The per-sample loss: ``y_pred``'s shape without ``axis``, ``y_pred``'s dtype.

    Raises
    ------
    ValueError
        If the shapes differ (Keras' message).
    TypeError
        If ``y_pred`` is not floating.

    Notes
    -----
    At a probability exactly equal to a clip bound (``1 - 1e-7`` rounded to float32 is
    ``1 - 2**-23``), the gradient is the backend's ``clip`` gradient: 1 on PyTorch (as
    Keras on its torch and TensorFlow backends), 1/2 on JAX (as Keras on JAX).

    Examples
    --------
    >>> import numpy as np
    >>> from xbce.conventions import keras_binary_crossentropy
    >>> y = np.asarray([[0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    >>> p = np.asarray([[0.6, 0.4], [0.4, 0.6]], dtype=np.float32)
    >>> keras_binary_crossentropy(y, p).round(5)  # the last digits are the CPU's log
    array([0.91629, 0.71356], dtype=float32)
    >>> keras_binary_crossentropy(np.asarray([1.0]), np.asarray([0.0]))  # float32 mean
    np.float64(16.11809539794922)
    """
    xp = array_namespace(y_true, y_pred)
    y_pred = _as_array(y_pred, xp)
    _floating(y_pred, xp, "y_pred")
    y_true = xp.astype(_as_array(y_true, xp, y_pred), y_pred.dtype)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. "
            f"Received: target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}"
        )
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        terms = -y_true * _log_sigmoid(y_pred, xp) - (1.0 - y_true) * _log_sigmoid(-y_pred, xp)
    else:
        p = xp.clip(y_pred, epsilon, 1.0 - epsilon)
        bce = y_true * xp.log(p)
        bce = bce + (1.0 - y_true) * xp.log(1.0 - p)
        terms = -bce
    # keras.ops.mean (JAX, torch, TensorFlow backends) computes in result_type(dtype,
    # "float32"), which Keras resolves to float32 under the default floatx, then casts back
    if terms.dtype == xp.float32:
        return xp.mean(terms, axis=axis)
    return xp.astype(xp.mean(xp.astype(terms, xp.float32), axis=axis), terms.dtype)


# --------------------------------------------------------------------- scikit-learn
def _sklearn_terms(y_true: Array, y_pred: Array, xp: Any) -> Array:
    """scikit-learn's per-sample log loss of binary targets (``_log_loss`` before averaging)."""
    eps = float(xp.finfo(y_pred.dtype).eps)  # a Python float: keeps float32 float32
    y = xp.astype(y_true, y_pred.dtype)
    # log_loss stacks [1 - p, p], clips both columns to [eps, 1 - eps], then sums xlogy
    q0 = xp.clip(1 - y_pred, eps, 1 - eps)
    q1 = xp.clip(y_pred, eps, 1 - eps)
    t0 = 1 - y
    zero = xp.zeros_like(q0)
    xlogy0 = xp.where(t0 == 0, zero, t0 * xp.log(q0))
    xlogy1 = xp.where(y == 0, zero, y * xp.log(q1))
    return -(xlogy0 + xlogy1)


def _check_sklearn_values(y_true: Array, y_pred: Array, xp: Any) -> None:
    """scikit-learn's value checks, on NumPy arrays only (other arrays are not read)."""
    if not is_numpy_namespace(xp) or y_pred.size == 0:
        return
    if xp.max(y_pred) > 1:
        raise ValueError(f"y_prob contains values greater than 1: {xp.max(y_pred)}")
    if xp.min(y_pred) < 0:
        raise ValueError(f"y_prob contains values lower than 0: {xp.min(y_pred)}")
    if not bool(xp.all((y_true == 0) | (y_true == 1))):
        raise ValueError("y_true must hold binary labels 0 and 1 (this function's scope)")


@_quiet
def sklearn_log_loss(
    y_true: Array,
    y_pred: Array,
    *,
    normalize: bool = True,
    sample_weight: Array | None = None,
) -> Array:
    r"""scikit-learn's ``sklearn.metrics.log_loss`` for binary targets and positive-class
    probabilities.

    ::

        L = Σᵢ wᵢ ℓᵢ / Σᵢ wᵢ,
        ℓᵢ = -[yᵢ log clip(pᵢ, ε, 1 - ε) + (1 - yᵢ) log clip(1 - pᵢ, ε, 1 - ε)]

    with ``ε = finfo(p.dtype).eps`` (``2.2e-16`` in
    float64, ``1.19e-7`` in float32), ``wᵢ = 1`` without
    ``sample_weight``, and the sum ``Σᵢ wᵢ ℓᵢ`` when ``normalize=False``.
    As scikit-learn 1.9 (``_log_loss``), the term of the other class is skipped (``xlogy``:
    0 where its label is 0), ``1 - p`` is formed before clipping, and the weighted mean
    divides by ``Σᵢ wᵢ``.

    Where it differs from PyTorch: the probability is clipped at the dtype's epsilon, so
    ``p = 0, y = 1`` costs 36.04 in float64 and 15.94 in float32 (torch: 100); the
    weighted mean divides by the sum of the weights (torch's ``mean`` divides by the number
    of elements); only hard 0/1 targets are allowed (scikit-learn raises on soft ones);
    scikit-learn returns a Python float, this function a 0-d array of ``y_pred``'s dtype
    (promoted with ``sample_weight``'s), which autodiff can differentiate.

    Parameters
    ----------
    y_true : array, shape (n,)
        Binary labels, 0 or 1.
    y_pred : array, shape (n,)
        Probabilities of the positive class, real floating, in [0, 1].
    normalize : bool, default True
        The (weighted) mean if true, else the (weighted) sum.
    sample_weight : array, shape (n,), optional
        Per-sample weights.

    Returns
    -------
    array
        A 0-d array.

    Raises
    ------
    ValueError
        If the shapes differ or are not 1-d; on NumPy arrays also if a probability lies
        outside [0, 1] or a label is not 0 or 1 (scikit-learn's checks; other libraries'
        arrays are not read).
    TypeError
        If ``y_pred`` is not floating.

    Examples
    --------
    >>> import numpy as np
    >>> from xbce.conventions import sklearn_log_loss
    >>> round(float(sklearn_log_loss(np.asarray([1, 0, 1]), np.asarray([0.6, 0.2, 0.7]))), 10)
    0.3635480397
    >>> round(float(sklearn_log_loss(np.asarray([1.0]), np.asarray([0.0]))), 10)  # -log(2**-52)
    36.0436533891
    """
    xp = array_namespace(y_true, y_pred)
    y_pred = _as_array(y_pred, xp)
    _floating(y_pred, xp, "y_pred")
    y_true = _as_array(y_true, xp, y_pred)
    if y_pred.ndim != 1 or tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            "y_true and y_pred must be 1-d arrays of the same length (binary targets and "
            f"positive-class probabilities); got shapes {tuple(y_true.shape)} and "
            f"{tuple(y_pred.shape)}"
        )
    _check_sklearn_values(y_true, y_pred, xp)
    loss = _sklearn_terms(y_true, y_pred, xp)
    if sample_weight is None:
        return xp.mean(loss) if normalize else xp.sum(loss)
    weight = _as_array(sample_weight, xp, y_pred)
    if tuple(weight.shape) != tuple(loss.shape):
        raise ValueError(
            f"sample_weight.shape == {tuple(weight.shape)}, expected {tuple(loss.shape)}!"
        )
    if not xp.isdtype(weight.dtype, "real floating"):
        weight = xp.astype(weight, loss.dtype)
    total = xp.sum(loss * weight)
    return total / xp.sum(weight) if normalize else total


# ---------------------------------------------------------------------------- optax
@_quiet
def optax_sigmoid_binary_cross_entropy(logits: Array, labels: Array) -> Array:
    r"""optax's ``optax.sigmoid_binary_cross_entropy(logits, labels)``, per element.

    ::

        ℓ = -y log σ(x) - (1 - y) log σ(-x),   log σ(x) = -logaddexp(-x, 0)

    (``optax/losses/_classification.py``; ``jax.nn.log_sigmoid`` is ``-softplus(-x)``).

    Where it differs from PyTorch's ``binary_cross_entropy_with_logits``: torch computes
    ``(1 - y) x - log σ(x)``, the same function evaluated another way (a few ulps
    apart, and torch's form cancels tiny losses to 0, e.g. ``x = -20, y = 0`` in float32,
    where optax keeps ``2.06e-9``); at infinite logits both give NaN where the limit is 0
    (``x = -inf``, ``y = 0``) and optax gives ``inf`` at ``x = +inf, y = 0`` as torch does;
    there are no ``weight``, ``pos_weight`` or reduction arguments; the arguments are
    ``(logits, labels)`` and are *broadcast* against each other (torch requires equal
    shapes); labels are cast to the logits' dtype.

    Parameters
    ----------
    logits : array
        Real floating logits.
    labels : array
        Targets in [0, 1], broadcastable against ``logits``.

    Returns
    -------
    array
        The elementwise loss, the broadcast shape, ``logits``' dtype.

    Raises
    ------
    TypeError
        If ``logits`` is not floating (optax's ``check_subdtype``).

    Examples
    --------
    >>> import numpy as np
    >>> from xbce.conventions import optax_sigmoid_binary_cross_entropy
    >>> loss = optax_sigmoid_binary_cross_entropy(np.asarray([-20.0, 0.0, 3.0], np.float32),
    ...                                           np.asarray([0.0, 1.0, 1.0], np.float32))
    >>> loss.dtype, [f"{v:.5g}" for v in loss.tolist()]  # the last digits are the CPU's
    (dtype('float32'), ['2.0612e-09', '0.69315', '0.048587'])
    """
    xp = array_namespace(logits, labels)
    logits = _as_array(logits, xp)
    _floating(logits, xp, "logits")
    labels = xp.astype(_as_array(labels, xp, logits), logits.dtype)
    return -labels * _log_sigmoid(logits, xp) - (1.0 - labels) * _log_sigmoid(-logits, xp)


# ----------------------------------------------------------------------- TensorFlow
@_quiet
def tensorflow_sigmoid_cross_entropy_with_logits(labels: Array, logits: Array) -> Array:
    r"""TensorFlow's ``tf.nn.sigmoid_cross_entropy_with_logits(labels=, logits=)``.

    ::

        ℓ = max(x, 0) - x z + log1p(exp(-|x|))

    in TensorFlow's order (``tensorflow/python/ops/nn_impl.py``): ``relu(x) - x * z``
    plus ``log1p(exp(-|x|))``, with ``max`` and ``|x|`` written as ``where(x >= 0, ...)``
    so that the gradient at ``x = 0`` is TensorFlow's.

    Where it differs from PyTorch's ``binary_cross_entropy_with_logits``: the same function,
    evaluated another way (a few ulps apart; tiny losses cancel to 0 for large positive
    ``x`` with ``z = 1`` instead of large negative ``x`` with ``z = 0``); at ``x = +inf``
    it gives NaN for ``z = 0`` too (``inf - inf``), where torch gives ``inf``; no weights
    and no reduction; the arguments are keywords ``labels, logits`` in that order.

    Parameters
    ----------
    labels : array
        Targets ``z``, same shape as ``logits``; cast to ``logits``' dtype.
    logits : array
        Real floating logits ``x``.

    Returns
    -------
    array
        The elementwise loss, ``logits``' shape and dtype.

    Raises
    ------
    ValueError
        If the shapes differ (TensorFlow's message).
    TypeError
        If ``logits`` is not floating.

    Examples
    --------
    >>> import numpy as np
    >>> from xbce.conventions import tensorflow_sigmoid_cross_entropy_with_logits
    >>> tensorflow_sigmoid_cross_entropy_with_logits(
    ...     labels=np.asarray([0.0, 1.0, 0.5], np.float32),
    ...     logits=np.asarray([1.0, -1.0, 0.0], np.float32)).round(6)  # last digit: the CPU's
    array([1.313262, 1.313262, 0.693147], dtype=float32)
    """
    xp = array_namespace(labels, logits)
    logits = _as_array(logits, xp)
    _floating(logits, xp, "logits")
    labels = xp.astype(_as_array(labels, xp, logits), logits.dtype)
    if tuple(labels.shape) != tuple(logits.shape):
        raise ValueError(
            "`logits` and `labels` must have the same shape, received "
            f"({tuple(logits.shape)} vs {tuple(labels.shape)})."
        )
    zeros = xp.zeros_like(logits)
    cond = logits >= zeros
    relu_logits = xp.where(cond, logits, zeros)
    neg_abs_logits = xp.where(cond, -logits, logits)
    return (relu_logits - logits * labels) + xp.log1p(xp.exp(neg_abs_logits))


# ---------------------------------------------------------------------- hand-written
@_quiet
def handwritten_binary_cross_entropy(
    input: Array,
    target: Array,
    *,
    log1p: bool = False,
    clip: float | str | None = None,
) -> Array:
    r"""The usual hand-written binary cross-entropy, per element (no reduction).

    ::

        ℓ = -[y log p̄ + (1 - y) log(1 - p̄)],   p̄ = clip(p, c, 1 - c)

    with ``log1p(-p̄)`` for the second log when ``log1p=True``, and ``p̄ = p``
    when ``clip`` is None. ``clip="eps"`` uses the dtype's machine epsilon
    (``finfo(dtype).eps``).

    Where it differs from PyTorch: torch never clips ``p``, it clamps each log at -100, so
    without ``clip`` this gives ``inf`` (``p = 0, y = 1``) and ``nan`` (``0 * log 0`` at
    ``p = 0, y = 0``) where torch gives 100 and 0; with ``clip`` the loss is capped at
    ``-log c`` and its gradient is 0 outside ``[c, 1 - c]``; ``log(1 - p)`` loses
    the loss of small ``p`` (``1 - 1e-8 == 1`` in float32), where torch uses ``log1p(-p)``.

    Parameters
    ----------
    input : array
        Probabilities ``p``, real floating.
    target : array
        Targets ``y``, same shape; cast to ``input``'s dtype.
    log1p : bool, default False
        ``log1p(-p)`` instead of ``log(1 - p)``.
    clip : float or "eps", optional
        Clip ``p`` to ``[clip, 1 - clip]`` first.

    Returns
    -------
    array
        The elementwise loss, ``input``'s shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xbce.conventions import handwritten_binary_cross_entropy
    >>> p, y = np.asarray([0.0, 1e-8, 0.5]), np.asarray([1.0, 0.0, 1.0])
    >>> handwritten_binary_cross_entropy(p, y, clip=1e-7)
    array([1.61180957e+01, 1.00000005e-07, 6.93147181e-01])
    """
    xp = array_namespace(input, target)
    input = _as_array(input, xp)
    _floating(input, xp, "input")
    target = xp.astype(_as_array(target, xp, input), input.dtype)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"target shape {tuple(target.shape)} differs from input shape {tuple(input.shape)}"
        )
    p = input
    if clip is not None:
        c = float(xp.finfo(input.dtype).eps) if clip == "eps" else float(clip)
        p = xp.clip(p, c, 1.0 - c)
    log_not_p = xp.log1p(-p) if log1p else xp.log(1.0 - p)
    return -(target * xp.log(p) + (1.0 - target) * log_not_p)
