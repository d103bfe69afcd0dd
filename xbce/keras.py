"""Keras 3 loss: ``xbce.keras.BinaryCrossentropy`` gives PyTorch's numbers.

A ``keras.losses.Loss`` called in Keras' order ``(y_true, y_pred)``, computing
:func:`xbce.binary_cross_entropy` (``from_logits=False``) or
:func:`xbce.binary_cross_entropy_with_logits` (``from_logits=True``) on the backend's
own tensors: PyTorch's clamp of the logs at -100 and ``log1p``, no epsilon clipping of
the probabilities (``keras.losses.BinaryCrossentropy`` clips them to [1e-7, 1 - 1e-7]),
and ``pos_weight``. Works on Keras' JAX, torch and NumPy backends (whose tensors are
array API arrays); TensorFlow tensors are not, so the TensorFlow backend is refused.

Reduction: the loss is kept **per element**, not averaged over the last axis first as
Keras' own losses do, so Keras' reductions give PyTorch's reductions:

* ``"sum_over_batch_size"`` (the default): ``sum / number of elements``, PyTorch's
  ``reduction="mean"`` (with ``sample_weight``: ``sum(w * loss) / numel``, PyTorch's
  mean with ``weight``: *not* a weighted mean, as in PyTorch);
* ``"sum"``: PyTorch's ``reduction="sum"`` (Keras' own gives ``sum`` of per-sample
  means, ``1 / last-axis-size`` of PyTorch's);
* ``None`` / ``"none"``: the elementwise losses, ``y_pred``'s shape (PyTorch's
  ``"none"``; Keras' own returns one value per sample).

``sample_weight`` of shape ``(batch,)`` weights whole samples: it is given trailing
axes of length 1 to broadcast over each sample's elements (PyTorch: ``weight`` of
shape ``(batch, 1, ...)``); a ``sample_weight`` of ``y_pred``'s shape weights elements.

Importing this module imports Keras (set ``KERAS_BACKEND`` first); ``import xbce``
alone does not.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._functional import binary_cross_entropy, binary_cross_entropy_with_logits
from ._requires import keras_without_backend, missing

try:
    import keras
except ModuleNotFoundError as err:  # say what to install or to set; keep err.name
    if err.name == "keras":
        raise missing("xbce.keras", "keras") from err
    if err.name == "tensorflow" and not os.environ.get("KERAS_BACKEND"):
        raise keras_without_backend(err) from err
    raise
from keras import ops

__all__ = ["BinaryCrossentropy"]

_BACKENDS = ("jax", "torch", "numpy")


def _plain(value: Any) -> float | list[Any] | None:
    """``pos_weight`` as JSON-serialisable numbers (a float or nested lists)."""
    if value is None:
        return None
    if isinstance(value, (bool, int, float)):
        return float(value)
    out: float | list[Any] = np.asarray(ops.convert_to_numpy(value), dtype=np.float64).tolist()
    return out


@keras.saving.register_keras_serializable(package="xbce")
class BinaryCrossentropy(keras.losses.Loss):  # type: ignore[misc]
    """Binary cross-entropy with PyTorch's numbers, for Keras 3.

    Parameters
    ----------
    from_logits : bool
        ``y_pred`` holds logits (PyTorch's ``BCEWithLogitsLoss``) rather than
        probabilities in [0, 1] (PyTorch's ``BCELoss``).
    pos_weight : float or nested list of floats, optional
        Weight of the positive term, broadcast right-aligned against ``y_true``
        (so a list of ``C`` values weights the last axis), only with
        ``from_logits=True``, as in PyTorch. Stored as plain numbers in the config.
    reduction : str or None
        ``"sum_over_batch_size"`` (PyTorch's mean), ``"sum"``, ``None``; see the
        module docstring for what each gives.
    name, dtype
        As for any ``keras.losses.Loss``; ``y_true`` and ``y_pred`` are converted to
        ``dtype`` (Keras' float type by default) before the loss is computed.

    Raises
    ------
    ValueError
        ``pos_weight`` without ``from_logits=True``.
    NotImplementedError
        when called on Keras' TensorFlow backend.

    Examples
    --------
    ``model.compile(optimizer="adam", loss=xbce.keras.BinaryCrossentropy(from_logits=True))``
    """

    def __init__(
        self,
        from_logits: bool = False,
        pos_weight: Any = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if pos_weight is not None and not from_logits:
            raise ValueError(
                "pos_weight needs from_logits=True (PyTorch's BCELoss has no pos_weight)"
            )
        self.from_logits = bool(from_logits)
        self.pos_weight = _plain(pos_weight)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if sample_weight is not None:
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            extra = len(y_pred.shape) - len(sample_weight.shape)
            if extra > 0 and len(sample_weight.shape) > 0:  # per sample: over its elements
                shape = tuple(sample_weight.shape) + (1,) * extra
                sample_weight = ops.reshape(sample_weight, shape)
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        backend = keras.backend.backend()
        if backend not in _BACKENDS:
            raise NotImplementedError(
                f"xbce.keras needs Keras' jax, torch or numpy backend, not {backend!r}: "
                "xbce computes on array API arrays"
            )
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        if not self.from_logits:
            return binary_cross_entropy(y_pred, y_true, reduction="none")
        pos_weight = None
        if self.pos_weight is not None:
            pos_weight = ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        return binary_cross_entropy_with_logits(
            y_pred, y_true, pos_weight=pos_weight, reduction="none"
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(from_logits=self.from_logits, pos_weight=self.pos_weight)
        return config
