"""xbce.explain: which convention produced a value.

The values to explain are computed in the tests: by torch (the reference), by
hand-written NumPy code, and by xbce.conventions (whose agreement with Keras, scikit-learn,
optax and TensorFlow themselves is tested in test_conventions.py, and again for explain
at the end of this file when those libraries are installed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from backends import (
    BACKENDS,  # noqa: F401  (the backend fixture's parameters)
    Backend,
)

import xbce
from xbce import conventions

PERCEPTRON_P = [0.5401, 0.4482]
PERCEPTRON_Y = [1.0, 0.0]


def _torch_bce(p: list[float] | np.ndarray, y: list[float] | np.ndarray, *,
               dtype: torch.dtype = torch.float64, reduction: str = "mean",
               weight: np.ndarray | None = None) -> float:
    return torch.nn.functional.binary_cross_entropy(
        torch.as_tensor(np.asarray(p), dtype=dtype), torch.as_tensor(np.asarray(y), dtype=dtype),
        weight=None if weight is None else torch.as_tensor(weight, dtype=dtype),
        reduction=reduction,
    ).item()


# ------------------------------------------------------------- the worked examples
def test_sum_instead_of_mean() -> None:
    total = _torch_bce(PERCEPTRON_P, PERCEPTRON_Y, dtype=torch.float32, reduction="sum")
    e = xbce.explain(PERCEPTRON_P, PERCEPTRON_Y, f"{total:.8g}")  # 1.2105706
    assert e.matches[0] == "torch sum"
    assert "torch" not in e.matches
    assert e.torch == _torch_bce(PERCEPTRON_P, PERCEPTRON_Y)  # float64: the lists' dtype
    assert "sums the element losses" in str(e)
    assert "PyTorch" in str(e)


def test_torch_value_of_float32_arrays_is_torchs_float32_value() -> None:
    p = np.asarray(PERCEPTRON_P, np.float32)
    y = np.asarray(PERCEPTRON_Y, np.float32)
    expected = _torch_bce(p, y, dtype=torch.float32)
    e = xbce.explain(p, y, expected)
    assert e.torch == expected
    assert e.matches[0] == "torch"
    assert "Your value is PyTorch's." in str(e)


def test_a_float32_value_of_float64_inputs_names_the_dtype() -> None:
    total = _torch_bce(PERCEPTRON_P, PERCEPTRON_Y, dtype=torch.float32, reduction="sum")
    e = xbce.explain(PERCEPTRON_P, PERCEPTRON_Y, total)  # all 17 digits of the float32 sum
    assert "torch sum, float32" in e.matches
    assert "torch sum" not in e.matches
    assert "torch sum, float64" not in e.matches


def test_rounded_value_is_rounding() -> None:
    mean = _torch_bce(PERCEPTRON_P, PERCEPTRON_Y)
    e = xbce.explain(PERCEPTRON_P, PERCEPTRON_Y, f"{mean:.4f}")  # 0.6053
    assert e.matches[0] == "torch"
    assert "rounding" in str(e)


def test_rounded_intermediates_0_3633() -> None:
    """A forum's 0.3633 for torch's 0.36355: the element losses rounded to 2 decimals."""
    p, y = [0.6, 0.2, 0.7], [1.0, 0.0, 1.0]
    terms = torch.nn.functional.binary_cross_entropy(
        torch.tensor(p, dtype=torch.float64), torch.tensor(y, dtype=torch.float64),
        reduction="none")
    by_hand = float(np.mean(np.round(terms.numpy(), 2)))
    assert f"{by_hand:.4f}" == "0.3633"
    e = xbce.explain(p, y, "0.3633")
    assert e.matches == ["torch, terms rounded to 2 decimals"]
    assert "rounding" in str(e)
    assert e.torch == terms.mean().item()


def test_log_of_one_minus_p_float32() -> None:
    p = np.asarray([1e-8, 3e-8], np.float32)
    y = np.zeros(2, np.float32)
    value = float(np.mean(-np.log(np.float32(1) - p)))  # 1 - p == 1 in float32: 0
    e = xbce.explain(p, y, value)
    assert "log(1-p)" in e.matches
    assert not any(m.startswith("torch") for m in e.matches)
    assert "log(1 - p)" in str(e)


def test_log_of_one_minus_p_float64() -> None:
    p, y = np.asarray([1e-10, 3e-10]), np.zeros(2)
    e = xbce.explain(p, y, float(np.mean(-np.log(1 - p))))
    assert e.matches[:2] == ["sklearn", "log(1-p)"]  # scikit-learn takes log(1 - p) too
    assert "torch" not in e.matches
    assert "log1p(-p)" not in e.matches
    e = xbce.explain(p, y, float(np.mean(-np.log1p(-p))))
    assert "torch" in e.matches
    assert "log1p(-p)" in e.matches
    assert "log(1-p)" not in e.matches


@pytest.mark.parametrize("clamp", [1e-15, 1e-12, 1e-8, 1e-7])
def test_clamps(clamp: float) -> None:
    p, y = np.asarray([0.0, 0.3, 1.0, 0.9]), np.asarray([1.0, 0.0, 0.0, 1.0])
    q = np.clip(p, clamp, 1 - clamp)
    value = float(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))))
    e = xbce.explain(p, y, value)
    assert f"log(1-p), clamp {clamp:g}".replace("e-0", "e-") in e.matches
    assert "torch" not in e.matches
    assert "clips p" in str(e)


def test_dtype_epsilon_clamp_is_sklearn() -> None:
    p, y = np.asarray([0.0, 0.3, 1.0]), np.asarray([1.0, 0.0, 0.0])
    value = float(conventions.sklearn_log_loss(y, p))
    e = xbce.explain(p, y, value)
    assert e.matches[0] == "sklearn"
    assert "log(1-p), clamp eps" in e.matches
    assert "scikit-learn" in str(e)


def test_keras_and_label_smoothing() -> None:
    p = np.asarray([[0.0, 0.3], [0.99, 0.5]], np.float32)
    y = np.asarray([[1.0, 0.0], [1.0, 1.0]], np.float32)
    per_sample = conventions.keras_binary_crossentropy(y, p)
    e = xbce.explain(p, y, float(np.mean(per_sample)))
    assert e.matches[0] == "keras"
    assert "Keras" in str(e)
    e = xbce.explain(p, y, float(np.sum(per_sample)))  # Keras' reduction="sum"
    assert e.matches[0] == "keras sum of row means"
    smoothed = conventions.keras_binary_crossentropy(y, p, label_smoothing=0.1)
    e = xbce.explain(p, y, float(np.mean(smoothed)))
    assert e.matches[0] == "keras, label smoothing 0.1"
    assert "smooths" in str(e)


def test_no_clamp_inf_and_nan() -> None:
    p = np.asarray([0.0, 0.5])
    e = xbce.explain(p, np.asarray([1.0, 0.0]), math.inf)
    assert e.matches[:2] == ["log(1-p)", "log1p(-p)"]
    assert e.torch == _torch_bce(p, [1.0, 0.0])  # 50.35: the log clamped at -100
    e = xbce.explain(p, np.asarray([0.0, 0.0]), "nan")  # 0 * log(0)
    assert "log(1-p)" in e.matches
    assert "torch" not in e.matches


def test_nothing_matches_names_the_closest() -> None:
    e = xbce.explain(PERCEPTRON_P, PERCEPTRON_Y, 0.7)
    assert e.matches == []
    best = min(e.candidates, key=lambda c: abs(c.value - 0.7))
    assert e.closest.value == best.value
    text = str(e)
    assert "No convention tried reproduces 0.7" in text
    assert f"'{e.closest.name}'" in text
    assert "off by" in text


def test_weights() -> None:
    p, y = np.asarray([0.2, 0.7, 0.9]), np.asarray([0.0, 1.0, 0.0])
    w = np.asarray([2.0, 1.0, 0.5])
    e = xbce.explain(p, y, _torch_bce(p, y, weight=w), weight=w)
    assert e.matches[0] == "torch"
    assert e.torch == _torch_bce(p, y, weight=w)
    terms = torch.nn.functional.binary_cross_entropy(
        torch.as_tensor(p), torch.as_tensor(y), reduction="none").numpy()
    e = xbce.explain(p, y, float(np.sum(w * terms) / np.sum(w)), weight=w)
    assert e.matches[0] == "torch weighted mean"
    assert "sum of the weights" in str(e)


# --------------------------------------------------------------------------- logits
def test_logits() -> None:
    x = np.asarray([-200.0, 1.5, 3.0], np.float32)
    t = np.asarray([1.0, 0.0, 1.0], np.float32)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.as_tensor(x), torch.as_tensor(t)).item()
    e = xbce.explain(x, t, reference, from_logits=True)
    assert e.matches[0] == "torch"
    assert e.torch == reference
    assert {"optax", "tensorflow", "keras"} <= set(e.matches)
    through_sigmoid = torch.nn.functional.binary_cross_entropy(
        torch.sigmoid(torch.as_tensor(x)), torch.as_tensor(t)).item()
    e = xbce.explain(x, t, through_sigmoid, from_logits=True)
    assert e.matches[0] == "sigmoid, then torch"
    assert "sigmoid" in str(e)


# ------------------------------------------------------- other libraries' arrays
def test_backend_arrays(backend: Backend) -> None:
    """Inputs of every backend are read (copied to NumPy) in their own dtype."""
    p = torch.tensor([[0.5401], [0.4482]], dtype=torch.float32)
    y = torch.tensor([[1.0], [0.0]], dtype=torch.float32)
    reference = torch.nn.functional.binary_cross_entropy(p, y)
    value = backend.asarray(reference, "float32")  # a 0-d array of the backend
    e = xbce.explain(backend.asarray(p, "float32"), backend.asarray(y, "float32"), value)
    assert e.torch == reference.item()
    assert e.matches[0] == "torch"


# --------------------------------------------------------------------------- errors
def test_errors() -> None:
    with pytest.raises(ValueError, match="differs from input shape"):
        xbce.explain([0.2, 0.3], [1.0], 0.5)
    with pytest.raises(ValueError, match="from_logits=True"):
        xbce.explain([1.5, 0.3], [1.0, 0.0], 0.5)
    with pytest.raises(ValueError, match="target must hold values in"):
        xbce.explain([0.5, 0.3], [2.0, 0.0], 0.5)
    with pytest.raises(ValueError, match="one number"):
        xbce.explain([0.5, 0.3], [1.0, 0.0], np.asarray([0.5, 0.1]))
    with pytest.raises(ValueError, match="must be a number"):
        xbce.explain([0.5, 0.3], [1.0, 0.0], "abc")
    with pytest.raises(ValueError, match="does not broadcast"):
        xbce.explain([0.5, 0.3], [1.0, 0.0], 0.5, weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="empty"):
        xbce.explain([], [], 0.5)
    with pytest.raises(TypeError, match="real numbers"):
        xbce.explain(np.asarray(["a", "b"]), [1.0, 0.0], 0.5)


def test_inputs_are_not_modified() -> None:
    p, y = np.asarray([0.0, 0.3]), np.asarray([1.0, 0.0])
    before = p.copy(), y.copy()
    xbce.explain(p, y, 1.0)
    np.testing.assert_array_equal(p, before[0])
    np.testing.assert_array_equal(y, before[1])


def test_candidates_cover_the_documented_variants() -> None:
    e = xbce.explain(np.ones((2, 3)) * 0.5, np.ones((2, 3)), 0.69)
    names = {c.name for c in e.candidates}
    for name in ("torch", "torch sum", "keras", "keras, label smoothing 0.1", "sklearn",
                 "log(1-p)", "log1p(-p)", "log(1-p), clamp 1e-7", "log1p(-p), clamp 1e-15",
                 "log(1-p), clamp eps", "log(p+1e-7)", "torch sum of row means",
                 "torch mean of row sums", "torch, terms rounded to 2 decimals"):
        assert name in names, name
    assert {c.dtype for c in e.candidates} == {"float32", "float64"}
