"""The parity sweep's ``torch_formula`` backend: torch tensors through xbce's formula.

xbce calls torch's own kernel on eager CPU tensors below 2^18 elements (every row of
the sweep) and evaluates its formula, in blocks, from there on. ``torch_formula`` sweeps
that formula on the sweep's small rows too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

#: the suffix of a torch backend swept through xbce's formula (``formula_path``)
FORMULA = "_formula"


@contextlib.contextmanager
def formula_path(b: Any) -> Iterator[None]:
    """For ``torch_formula``: xbce's formula instead of torch's own kernel, as xbce
    evaluates CPU tensors of 2^18 elements or more (in blocks), for the sweep's small
    rows too. Other backends: nothing changes."""
    if not b.name.endswith(FORMULA):
        yield
        return
    from xbce import _evaluate

    saved = _evaluate.BLOCKED_FROM
    _evaluate.BLOCKED_FROM = 1
    try:
        yield
    finally:
        _evaluate.BLOCKED_FROM = saved


