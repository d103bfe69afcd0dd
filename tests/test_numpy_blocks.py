"""NumPy arrays in blocks: the same bits whatever the thread count and however xbce cuts
them (issue "performance as users run it", item 2).

From ``_blocks.BLOCKED_FROM`` (2^18) elements the NumPy backend evaluates in blocks of
``_blocks.BLOCK`` (2^16) elements on the calling thread and a pool. Each element's loss
and gradient is computed alone (NumPy's loops give an element the same value wherever it
stands in the array), so ``reduction='none'`` and the explicit backward give the bits of
the whole-array evaluation; ``mean``/``sum`` add the blocks' sums in block order, so
they do not depend on which thread computed which block. Sizes straddle the block
boundaries; thread counts 1, 2 and 4 (the backend's pool size, set on the backend).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from backends import BACKENDS

import xbce
from xbce import _backends, _blocks, _numpy

pytestmark = pytest.mark.skipif("numpy" not in BACKENDS, reason="runs in the numpy session")

B = _blocks.BLOCKED_FROM
SIZES = [B, B + 1, 5 * _blocks.BLOCK + 17, (B // 64 + 3, 64)]
FUNCS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "bce": (xbce.binary_cross_entropy, xbce.binary_cross_entropy_backward),
    "bcewl": (xbce.binary_cross_entropy_with_logits,
              xbce.binary_cross_entropy_with_logits_backward),
}


@pytest.fixture
def numpy_backend() -> Iterator[Any]:
    from xbce._formulas import BCE
    from xbce._typing import Call

    backend, _ = _backends.of(Call(BCE, np.zeros(1), np.zeros(1), None, None, "mean"))
    assert isinstance(backend, _numpy.NumPy)  # cached: the one every NumPy call takes
    before = backend.threads
    yield backend
    backend.threads = before


def _inputs(shape: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random(shape, dtype=np.float32)
    x = (8 * x - 4) if op == "bcewl" else x
    return x.astype(np.float32), rng.random(shape, dtype=np.float32)


@pytest.mark.parametrize("op", FUNCS)
@pytest.mark.parametrize("shape", SIZES, ids=str)
def test_numpy_blocks_give_the_same_bits_at_every_thread_count(
    numpy_backend: Any, op: str, shape: Any
) -> None:
    loss, backward = FUNCS[op]
    x, t = _inputs(shape, op)
    g = np.ones_like(x)
    results = []
    for threads in (1, 2, 4):
        numpy_backend.threads = threads
        results.append([loss(x, t, reduction="none"), loss(x, t), loss(x, t, reduction="sum"),
                        backward(g, x, t, reduction="none")])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert a.tobytes() == b.tobytes()
    # elementwise: the blocked result is the whole-array one, cut where xbce would not
    flat_x, flat_t = x.reshape(-1), t.reshape(-1)
    halves = [slice(0, B // 2 - 3), slice(B // 2 - 3, None)]  # each below the blocks
    pieces = [loss(flat_x[h], flat_t[h], reduction="none") for h in halves[:1]]
    rest = flat_x[halves[1]]
    while rest.size:  # every piece below BLOCKED_FROM: the whole-array path
        k = min(rest.size, B - 1)
        start = flat_x.size - rest.size
        pieces.append(loss(flat_x[start:start + k], flat_t[start:start + k], reduction="none"))
        rest = rest[k:]
    assert np.concatenate(pieces).tobytes() == results[0][0].reshape(-1).tobytes()
