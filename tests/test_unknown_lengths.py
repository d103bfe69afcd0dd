"""Lazy arrays whose lengths are unknown (None in the array API standard, NaN in Dask):
the argument checks judge only what is known (``_array_api.known_lengths``).

Dask's own arrays are tested end to end in ``test_dask.py``; here the stand-ins of a
library whose unknown lengths are ``None``, which no installed library makes, meet the
checks of the generic backend."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pytest
from array_api_compat import array_namespace
from backends import BACKENDS

from xbce import ShapeMismatchError, _array_api, _checks
from xbce._formulas import BCE, BCE_WITH_LOGITS
from xbce._typing import Call

pytestmark = pytest.mark.skipif("numpy" not in BACKENDS, reason="runs in the numpy session")


class Lazy(NamedTuple):
    """What the checks read of a lazy array: a shape with unknown lengths."""

    shape: tuple[Any, ...]
    dtype: Any = np.dtype(np.float32)
    device: str = "cpu"

    @property
    def ndim(self) -> int:
        return len(self.shape)


BACKEND = _array_api.ArrayAPI(array_namespace(np.empty(0)))


@pytest.mark.parametrize("unknown", [None, math.nan], ids=["None", "NaN"])
@pytest.mark.parametrize("loss", [BCE, BCE_WITH_LOGITS], ids=["bce", "bcewl"])
def test_what_may_fit_passes_and_what_cannot_raises(unknown: Any, loss: Any) -> None:
    x, t = Lazy((unknown, 4)), Lazy((unknown, 4))
    fits = Call(loss, x, t, Lazy((4,)), None, "mean", lazy=True)
    _checks.arguments(_array_api.known_lengths(fits), BACKEND)  # no error
    weight = Lazy((unknown, 1))  # unknown against unknown: may fit
    _checks.arguments(_array_api.known_lengths(fits._replace(weight=weight)), BACKEND)
    wrong = _array_api.known_lengths(fits._replace(weight=Lazy((5,))))
    with pytest.raises(ShapeMismatchError):  # a known length that cannot fit
        _checks.arguments(wrong, BACKEND)
    differs = _array_api.known_lengths(fits._replace(target=Lazy((unknown, 3))))
    with pytest.raises(ShapeMismatchError):  # a known target length that differs
        _checks.arguments(differs, BACKEND)


def test_known_lengths_take_the_others_known_length() -> None:
    """An unknown length becomes the first known one other than 1 on its axis (the
    input's, the target's, then the weights'), else 1; known lengths stay."""
    call = Call(BCE_WITH_LOGITS, Lazy((None, None)), Lazy((None, None)), Lazy((1, 7)),
                Lazy((3, 1)), "none", lazy=True)
    seen = _array_api.known_lengths(call)
    assert seen.input.shape == seen.target.shape == (3, 7)
    assert seen.weight.shape == (1, 7)
    assert seen.pos_weight.shape == (3, 1)
    assert _array_api.known_lengths(call._replace(input=Lazy((2, 7)))).input.shape == (2, 7)


@pytest.mark.parametrize("unknown", [None, math.nan], ids=["None", "NaN"])
def test_a_known_length_of_the_weights_stands_for_the_unknown_one(unknown: Any) -> None:
    """torch's broadcasting rule would compare a ``pos_weight`` length of 3 with the
    unknown length and refuse it; the stand-in takes the 3, which may be right."""
    x, t = Lazy((unknown, 4)), Lazy((unknown, 4))
    call = Call(BCE_WITH_LOGITS, x, t, None, Lazy((3, 4)), "sum", lazy=True)
    _checks.arguments(_array_api.known_lengths(call), BACKEND)  # no error
    with pytest.raises(ShapeMismatchError):  # without the stand-ins
        _checks.arguments(call, BACKEND)
