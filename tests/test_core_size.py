"""The call paths of the core stay short (issue "the vendorable core", item 2).

Counted as ``tests/scripts/core_size.py`` counts them (``sys.setprofile``: calls of
functions defined in ``xbce/``, and calls that cross from one of its files into another),
on the second of two identical calls. The limits are the issue's: a NumPy
``binary_cross_entropy`` of 1000 elements makes at most 15 calls and 4 crossings, a torch
``binary_cross_entropy_with_logits`` forward and backward at most 30 calls and 8
crossings. The counts do not depend on the machine: only which NumPy ``log1p`` is used
does (a primitive chosen once, one call fewer with AVX-512).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from backends import BACKENDS

import xbce

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "scripts"))
from core_size import call_path

pytestmark = pytest.mark.skipif("numpy" not in BACKENDS, reason="runs in the numpy session")


def test_numpy_bce_call_path() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 1000).astype(np.float32)
    y = rng.uniform(0, 1, 1000).astype(np.float32)
    calls, crossings = call_path(xbce.binary_cross_entropy, p, y)
    assert calls <= 15, calls
    assert crossings <= 4, crossings


def test_torch_bce_with_logits_forward_backward_call_path() -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(1000).astype(np.float32)).requires_grad_()
    t = torch.from_numpy(rng.uniform(0, 1, 1000).astype(np.float32))

    def step() -> None:
        xbce.binary_cross_entropy_with_logits(x, t).backward()

    calls, crossings = call_path(step)
    assert calls <= 30, calls
    assert crossings <= 8, crossings
