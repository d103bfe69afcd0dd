"""xbce.keras.BinaryCrossentropy: PyTorch's numbers through Keras 3.

The Keras backend is the one in ``KERAS_BACKEND`` (``nox -s conventions`` runs this file
once with ``jax`` and once with ``torch``); unset, ``jax``. Expected values come from
torch.nn.functional on the same float32 data, computed here. Keras reduces the loss
itself (``sum / numel`` in float32, in its own summation order), so reduced values are
compared within the ``reduced`` tolerance (tests/tolerances.py).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from comparisons import assert_ulp_close
from tolerances import ulps

os.environ.setdefault("KERAS_BACKEND", "jax")
if os.environ.get("XBCE_REQUIRE_KERAS"):  # the nox session: a missing Keras is an error
    import keras
else:
    keras = pytest.importorskip("keras", reason="Keras is tested by the nox session `conventions`")
import xbce.keras  # after KERAS_BACKEND is set

# Keras 3.15's own tensor-to-NumPy conversions (torch backend, model.save) trip NumPy 2's
# __array__(copy=...) deprecation; nothing of xbce's is involved
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

BACKEND = keras.backend.backend()
#: tolerances are keyed by the xbce backend that computes the elementwise losses
XBCE_BACKEND = {"jax": "jax", "torch": "torch", "numpy": "numpy"}[BACKEND]


def _torch(a) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.from_numpy(np.array(keras.ops.convert_to_numpy(a)))


def _close(got, expected: torch.Tensor, quantity: str, scale: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
    assert_ulp_close(_torch(got), expected, ulps(quantity, "float32", XBCE_BACKEND),
                     scale=scale, what=f"keras {BACKEND}")


def _data(logits: bool, shape=(8, 5)) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(12)
    y = (rng.uniform(size=shape) < 0.5).astype(np.float32)
    if logits:
        p = rng.normal(0, 4, size=shape).astype(np.float32)
        p.flat[:3] = [-30.0, 0.0, 25.0]
    else:
        p = rng.uniform(size=shape).astype(np.float32)
        p.flat[:4] = [0.0, 1.0, 1e-7, 0.9999999]  # the clamp at -100 and no epsilon clip
    return y, p


def _reference(y, p, logits: bool, pos_weight=None, weight=None, reduction="mean"):  # type: ignore[no-untyped-def]
    yt, pt = torch.from_numpy(y), torch.from_numpy(p)
    wt = None if weight is None else torch.from_numpy(np.asarray(weight, np.float32))
    if logits:
        pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32)
        out = TF.binary_cross_entropy_with_logits(pt, yt, wt, reduction="none", pos_weight=pw)
    else:
        out = TF.binary_cross_entropy(pt, yt, wt, reduction="none")
    terms = out.double().abs()
    if reduction == "mean":
        return out.mean(), terms.mean()
    if reduction == "sum":
        return out.sum(), terms.sum()
    return out, terms + 1


CASES = [(False, None), (True, None), (True, 3.0), (True, [1.0, 2.0, 0.5, 4.0, 1.0])]


@pytest.mark.parametrize(("logits", "pos_weight"), CASES)
@pytest.mark.parametrize(("keras_reduction", "reduction"),
                         [("sum_over_batch_size", "mean"), ("sum", "sum"), (None, "none")])
def test_direct_calls_are_torchs(logits: bool, pos_weight, keras_reduction, reduction) -> None:  # type: ignore[no-untyped-def]
    y, p = _data(logits)
    loss = xbce.keras.BinaryCrossentropy(from_logits=logits, pos_weight=pos_weight,
                                         reduction=keras_reduction)
    expected, scale = _reference(y, p, logits, pos_weight, reduction=reduction)
    quantity = "reduced" if reduction != "none" else ("bcewl" if logits else "bce")
    _close(loss(y, p), expected, quantity, scale)


def test_default_is_torchs_mean_over_all_elements_not_keras() -> None:
    y, p = _data(False)
    got = xbce.keras.BinaryCrossentropy()(y, p)
    expected, scale = _reference(y, p, False)
    _close(got, expected, "reduced", scale)
    keras_own = float(keras.losses.BinaryCrossentropy()(y, p))  # clips p to [1e-7, 1-1e-7]
    assert abs(keras_own - float(expected)) > 1.0  # the clamp at -100 matters here


@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("per", ["sample", "element"])
def test_sample_weight_is_torchs_weight(logits: bool, per: str) -> None:
    y, p = _data(logits)
    rng = np.random.default_rng(3)
    if per == "sample":
        sw = rng.uniform(0, 3, size=(y.shape[0],)).astype(np.float32)
        weight = sw[:, None]
    else:
        sw = weight = rng.uniform(0, 3, size=y.shape).astype(np.float32)
    for keras_reduction, reduction in (("sum_over_batch_size", "mean"), ("sum", "sum")):
        loss = xbce.keras.BinaryCrossentropy(from_logits=logits, reduction=keras_reduction)
        expected, scale = _reference(y, p, logits, weight=weight, reduction=reduction)
        _close(loss(y, p, sample_weight=sw), expected, "reduced", scale * 3)


def _model(logits: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(4,))
    dense = keras.layers.Dense(5, activation=None if logits else "sigmoid")
    model = keras.Model(inputs, dense(inputs))
    rng = np.random.default_rng(5)
    dense.set_weights([rng.normal(0, 2, (4, 5)).astype(np.float32), np.zeros(5, np.float32)])
    return model


@pytest.mark.parametrize(("logits", "pos_weight"), CASES)
def test_compile_evaluate_and_fit_report_torchs_loss(logits: bool, pos_weight) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(8)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = (rng.uniform(size=(16, 5)) < 0.5).astype(np.float32)
    sw = rng.uniform(0.5, 2, size=(16,)).astype(np.float32)
    model = _model(logits)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=xbce.keras.BinaryCrossentropy(from_logits=logits, pos_weight=pos_weight))
    p = np.asarray(model.predict(x, verbose=0))
    expected, scale = _reference(y, p, logits, pos_weight)
    evaluated = model.evaluate(x, y, batch_size=16, verbose=0)
    _close(np.float32(evaluated), expected, "reduced", scale)
    weighted, wscale = _reference(y, p, logits, pos_weight, weight=sw[:, None])
    evaluated = model.evaluate(x, y, sample_weight=sw, batch_size=16, verbose=0)
    _close(np.float32(evaluated), weighted, "reduced", wscale * 2)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    _close(np.float32(history.history["loss"][0]), expected, "reduced", scale)  # before the step


def test_config_round_trip_and_saved_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    loss = xbce.keras.BinaryCrossentropy(from_logits=True, pos_weight=[1.0, 2.0, 0.5, 4.0, 1.0],
                                         reduction="sum", name="bce")
    config = loss.get_config()
    assert config["from_logits"] is True
    assert config["pos_weight"] == [1.0, 2.0, 0.5, 4.0, 1.0]
    again = xbce.keras.BinaryCrossentropy.from_config(config)
    y, p = _data(True)
    assert float(again(y, p)) == float(loss(y, p))
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is xbce.keras.BinaryCrossentropy
    assert float(restored(y, p)) == float(loss(y, p))

    model = _model(True)
    model.compile(optimizer="sgd", loss=loss)
    x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    yy = (np.random.default_rng(2).uniform(size=(8, 5)) < 0.5).astype(np.float32)
    before = model.evaluate(x, yy, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    back = keras.models.load_model(path)
    assert type(back.loss) is xbce.keras.BinaryCrossentropy
    assert back.loss.get_config() == loss.get_config()
    assert back.evaluate(x, yy, batch_size=8, verbose=0) == before


def test_pos_weight_needs_logits() -> None:
    with pytest.raises(ValueError, match="from_logits=True"):
        xbce.keras.BinaryCrossentropy(pos_weight=2.0)


def test_invalid_probabilities_raise_outside_jit() -> None:
    y, p = _data(False)
    p[0, 0] = 1.5
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        xbce.keras.BinaryCrossentropy()(y, p)
