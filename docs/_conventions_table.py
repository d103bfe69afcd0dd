"""The side-by-side table of docs/conventions.md, computed when the docs are built.

Values come from ``torch.nn.functional`` (PyTorch's rows) and from ``xbce.conventions``
(the other rows; tested against Keras, scikit-learn, optax and TensorFlow themselves by
``nox -s conventions``), all in float32. Gradients are autodiff: ``torch.autograd`` for
PyTorch, ``jax.grad`` through ``xbce.conventions`` for the others (what ``jax.grad`` of
Keras and optax gives: the conventions tests compare the two). Logit conventions are
evaluated at the logit of each probability, ``x = log(p / (1 - p))`` (so ``p = 0`` is
``x = -inf``), and their gradient is with respect to ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

HEADER = [
    "convention",
    "formula (p = probability, x = logit, y = target)",
    "clipping",
    "reduction",
    "ℓ at p = 0, y = 1",
    "ℓ at p = 1e-7, y = 1",
    "ℓ at p = 0.5, y = 1",
    "gradient at p = 0, y = 1",
    "gradient at p = 1, y = 0",
]
WIDTHS = (14, 26, 16, 14, 8, 8, 8, 9, 9)


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.5g}"


def _logit(p: float) -> float:
    if p == 0:
        return -math.inf
    if p == 1:
        return math.inf
    return math.log(p / (1 - p))


def _torch_row(logits: bool) -> tuple[list[str], list[str]]:
    import torch

    fn = (torch.nn.functional.binary_cross_entropy_with_logits if logits
          else torch.nn.functional.binary_cross_entropy)

    def value(p: float, y: float) -> float:
        a = torch.tensor(_logit(p) if logits else p, dtype=torch.float32)
        return float(fn(a, torch.tensor(y)))

    def grad(p: float, y: float) -> float:
        a = torch.tensor(_logit(p) if logits else p, dtype=torch.float32, requires_grad=True)
        fn(a, torch.tensor(y)).backward()
        return float(a.grad)

    return _cells(value, grad)


def _jax_row(fn: Callable[[Any, Any], Any], logits: bool,
             differentiable: bool = True) -> tuple[list[str], list[str]]:
    import jax
    import jax.numpy as jnp

    def loss(a: Any, y: float) -> Any:
        return jnp.sum(fn(a, jnp.asarray(y, jnp.float32)))

    def point(p: float) -> Any:
        return jnp.asarray(_logit(p) if logits else p, jnp.float32)

    def value(p: float, y: float) -> float:
        return float(loss(point(p), y))

    def grad(p: float, y: float) -> float:
        return float(jax.grad(loss)(point(p), y))

    return _cells(value, grad if differentiable else None)


def _cells(value: Callable[[float, float], float],
           grad: Callable[[float, float], float] | None) -> tuple[list[str], list[str]]:
    values = [_fmt(value(p, 1.0)) for p in (0.0, 1e-7, 0.5)]
    if grad is None:
        return values, ["— (returns a float)"] * 2
    return values, [_fmt(grad(0.0, 1.0)), _fmt(grad(1.0, 0.0))]


def rows() -> list[list[str]]:
    """The table's rows (without the header)."""
    import jax.numpy as jnp

    from xbce import conventions as conv

    def keras(logits: bool) -> Callable[[Any, Any], Any]:
        return lambda a, y: conv.keras_binary_crossentropy(y[None], a[None], from_logits=logits)

    def sklearn(p: Any, y: Any) -> Any:
        return conv.sklearn_log_loss(y[None], p[None])

    def handwritten(**options: Any) -> Callable[[Any, Any], Any]:
        return lambda p, y: conv.handwritten_binary_cross_entropy(p, y, **options)

    def added_epsilon(p: Any, y: Any) -> Any:
        return -(y * jnp.log(p + 1e-7) + (1 - y) * jnp.log(1 - p + 1e-7))

    table = [
        ("PyTorch BCELoss", "−[y max(log p, −100) + (1−y) max(log1p(−p), −100)]",
         "none; each log clamped at −100", "mean over all elements", _torch_row(False)),
        ("PyTorch BCEWithLogitsLoss", "(1−y) x − log σ(x)", "none",
         "mean over all elements", _torch_row(True)),
        ("Keras 3 binary_crossentropy", "−[y log p̄ + (1−y) log(1−p̄)]",
         "p̄ = clip(p, 1e-7, 1−1e-7)", "mean over the last axis (float32), then the batch",
         _jax_row(keras(False), False)),
        ("Keras 3, from_logits=True", "−y log σ(x) − (1−y) log σ(−x)", "none",
         "mean over the last axis (float32), then the batch", _jax_row(keras(True), True)),
        ("scikit-learn log_loss", "−[y log p̄ + (1−y) log(clip(1−p))]",
         "p̄ = clip(p, eps, 1−eps), eps = finfo(dtype).eps (1.19e-7 here)",
         "mean (normalize=True) or Σwℓ/Σw", _jax_row(sklearn, False, differentiable=False)),
        ("optax sigmoid_binary_cross_entropy", "−y log σ(x) − (1−y) log σ(−x)", "none",
         "none (elementwise)", _jax_row(conv.optax_sigmoid_binary_cross_entropy, True)),
        ("TensorFlow sigmoid_cross_entropy_with_logits", "max(x, 0) − x y + log1p(e^−|x|)",
         "none", "none (elementwise)",
         _jax_row(lambda x, y: conv.tensorflow_sigmoid_cross_entropy_with_logits(y, x), True)),
        ("hand-written, log(1−p)", "−[y log p + (1−y) log(1−p)]", "none", "as written",
         _jax_row(handwritten(), False)),
        ("hand-written, log1p(−p)", "−[y log p + (1−y) log1p(−p)]", "none", "as written",
         _jax_row(handwritten(log1p=True), False)),
        ("hand-written, clip 1e-12", "−[y log p̄ + (1−y) log(1−p̄)]",
         "p̄ = clip(p, 1e-12, 1−1e-12)", "as written", _jax_row(handwritten(clip=1e-12), False)),
        ("hand-written, log(p + 1e-7)", "−[y log(p+ε) + (1−y) log(1−p+ε)]", "ε = 1e-7 added",
         "as written", _jax_row(added_epsilon, False)),
    ]
    return [[name, formula, clipping, reduction, *values, *grads]
            for name, formula, clipping, reduction, (values, grads) in table]
