"""xbce.explain: which convention produced a value.

The values to explain are computed in the tests: by torch (the reference), by
hand-written NumPy code, and by xbce.conventions (whose agreement with Keras, scikit-learn,
optax and TensorFlow themselves is tested in test_conventions.py, and again for explain
at the end of this file when those libraries are installed).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from backends import (
    BACKENDS,  # noqa: F401  (the backend fixture's parameters)
    Backend,
)
from tolerances import ulps

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


# ------------------------------------------------------------------- epoch losses
def _epoch_loss(x: torch.Tensor, t: torch.Tensor, batch_size: int, *, logits: bool = False,
                weight: torch.Tensor | None = None) -> tuple[float, int]:
    """The usual loop: torch's mean loss per batch of a DataLoader, ``.item()`` added up;
    returns (the sum of the batch means, the number of batches)."""
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, t),
                                         batch_size=batch_size)
    loss_fn = (torch.nn.functional.binary_cross_entropy_with_logits if logits
               else torch.nn.functional.binary_cross_entropy)
    epoch_loss = 0.0
    for xb, tb in loader:
        epoch_loss += loss_fn(xb, tb, weight=weight).item()
    return epoch_loss, len(loader)


def _epoch_data(n: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(20)
    p = torch.rand(n, generator=g, dtype=torch.float64).clamp(0.01, 0.99).to(dtype)
    y = (torch.rand(n, generator=g, dtype=torch.float64) > 0.5).to(dtype)
    return p, y


def test_mean_of_batch_means_with_a_smaller_last_batch() -> None:
    p, y = _epoch_data(10)
    total, batches = _epoch_loss(p, y, 4)  # batches of 4, 4 and 2
    value = total / batches
    e = xbce.explain(p.numpy(), y.numpy(), value, batch_size=4)
    dataset = torch.nn.functional.binary_cross_entropy(p, y).item()
    assert e.matches[0] == "torch mean of batch means"
    assert "torch" not in e.matches  # the last batch weighs as much as a full one
    assert e.torch == dataset  # the dataset's BCE beside it, in the inputs' float32
    text = str(e)
    assert f"gives {dataset:.8g} in float32: the dataset's BCE" in text
    assert "the mean of PyTorch's batch means over 3 batches of 4, the last of 2" in text
    assert "the last, smaller batch weighs as much as a full one" in text


def test_sum_of_batch_means_of_logits_with_weights_2d() -> None:
    g = torch.Generator().manual_seed(21)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(8, 3, generator=g, dtype=torch.float64) > 0.5).double()
    w = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    total, batches = _epoch_loss(x, t, 3, logits=True, weight=w)  # rows: 3, 3 and 2
    assert batches == 3
    e = xbce.explain(x.numpy(), t.numpy(), total, batch_size=3, weight=w.numpy(),
                     from_logits=True)
    assert e.matches[0] == "torch sum of batch means"
    assert e.torch == torch.nn.functional.binary_cross_entropy_with_logits(x, t, w).item()
    assert "not divided by the number of batches" in str(e)


def test_batches_that_divide_give_the_dataset_bce() -> None:
    p, y = _epoch_data(12)
    total, batches = _epoch_loss(p, y, 4)
    e = xbce.explain(p.numpy(), y.numpy(), total / batches, batch_size=4)
    assert e.matches[:2] == ["torch", "torch mean of batch means"]
    text = str(e)
    assert "Your value is PyTorch's" in text
    # the epoch's sum is said beside it: torch's, within the tolerance of a float32 mean
    said = _batch_candidate(e, "sum of batch means", "float32")
    assert abs(said - total) <= batches * _reduced_tolerance(total / batches, "float32")
    assert f"their sum {said:.8g}." in text


def test_the_dataset_bce_says_what_the_epoch_losses_would_be() -> None:
    p, y = _epoch_data(10, torch.float64)
    dataset = torch.nn.functional.binary_cross_entropy(p, y).item()
    total, batches = _epoch_loss(p, y, 3)
    e = xbce.explain(p.numpy(), y.numpy(), f"{dataset:.5f}", batch_size=3)
    assert e.matches[0] == "torch"
    assert "torch mean of batch means" not in e.matches
    mean = _batch_candidate(e, "mean of batch means", "float64")
    said = _batch_candidate(e, "sum of batch means", "float64")
    assert abs(said - total) <= batches * _reduced_tolerance(total / batches, "float64")
    assert abs(mean - total / batches) <= 2 * _reduced_tolerance(total / batches, "float64")
    assert (f"Over 4 batches of 3 (the last of 1), the mean of PyTorch's batch means would "
            f"be {mean:.8g} and their sum {said:.8g}.") in str(e)


def _batch_candidate(e: xbce._explain.Explanation, reduction: str, dtype: str) -> float:
    return next(c.value for c in e.candidates
                if c.formula == "torch" and c.reduction == reduction and c.dtype == dtype)


def _reduced_tolerance(mean: float, dtype: str) -> float:
    """tests/tolerances.py's ``reduced`` tolerance of one batch mean (terms >= 0: the scale
    of the summed terms is the mean itself)."""
    return ulps("reduced", dtype, "numpy") * float(np.spacing(np.asarray(mean, dtype)))


def test_without_batch_size_no_epoch_candidates() -> None:
    p, y = _epoch_data(10)
    e = xbce.explain(p.numpy(), y.numpy(), 0.5)
    assert e.batch_size is None
    assert not [c for c in e.candidates if "batch" in c.reduction]


@pytest.mark.parametrize("batch_size", [0, -2, 1.5, True])
def test_bad_batch_size_raises_as_the_dataloader(batch_size: Any) -> None:
    dataset = torch.utils.data.TensorDataset(torch.zeros(3))
    with pytest.raises(ValueError, match="positive integer") as torch_error:
        torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    with pytest.raises(ValueError, match="positive integer") as ours:
        xbce.explain([0.5, 0.3], [1.0, 0.0], 0.5, batch_size=batch_size)
    assert str(ours.value) == str(torch_error.value)
