"""Peak extra memory of one call, measured in a fresh child process.

Run as ``python _memory.py BACKEND FAMILY NAME REDUCTION N DTYPE THREADS``; prints one
JSON object. The child imports only what the competitor needs (a NumPy measurement
never imports torch), warms the call up on 1,000 elements (lazy imports, kernel
selection), allocates its inputs in place (``_data``: no temporaries), then measures:

* **RSS** (every backend): the kernel's resident-set high-water mark is reset right
  before the call by writing ``5`` to ``/proc/self/clear_refs``; ``VmHWM`` after the
  call minus ``VmRSS`` before it is the peak extra memory. Where ``clear_refs`` is not
  writable, ``ru_maxrss`` after minus ``ru_maxrss`` before is used instead (a lower
  bound: it only sees growth above the earlier high-water mark). Page granularity;
  counts only touched pages, which for these elementwise kernels is all of them.
  Taken over ``CALLS`` consecutive calls, each with its own reset; the maximum is
  reported (whether the C allocator's heap grows varies from call to call).
* **tracemalloc** (NumPy only; NumPy reports its data buffers to ``tracemalloc``):
  peak traced bytes during the call minus traced bytes before it.

For ``reduction='none'`` the output is kept alive until after the reading, so both
numbers include it; ``out_bytes`` is reported alongside so it can be subtracted.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _data import make_numpy

import xbce

#: consecutive measured calls; the RSS figure is their maximum (glibc's heap may or may
#: not grow on a given call, depending on its dynamic mmap threshold and trimming)
CALLS = 3


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) * 1024
    return out


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _callable(backend: str, family: str, name: str, r: str, a: dict[str, Any]) -> Any:
    if backend == "numpy":
        from _competitors import np_bce, np_bcewl

        if family == "probs":
            if name == "xbce":
                return lambda: xbce.binary_cross_entropy(a["p"], a["y"], reduction=r)
            return lambda: np_bce(a["p"], a["y"], r)
        if name == "xbce":
            return lambda: xbce.binary_cross_entropy_with_logits(a["x"], a["y"], reduction=r)

        def formula() -> Any:
            with np.errstate(over="ignore"):
                return np_bcewl(a["x"], a["y"], r)

        return formula
    import torch
    import torch.nn.functional as tF

    t = {k: torch.from_numpy(v) for k, v in a.items()}
    if family == "probs":
        f = xbce.binary_cross_entropy if name == "xbce" else tF.binary_cross_entropy
        return lambda: f(t["p"], t["y"], reduction=r)
    f = (
        xbce.binary_cross_entropy_with_logits
        if name == "xbce"
        else tF.binary_cross_entropy_with_logits
    )
    return lambda: f(t["x"], t["y"], reduction=r)


def _nbytes(out: Any) -> int:
    if hasattr(out, "element_size"):
        return int(out.element_size() * out.numel())
    return int(np.asarray(out).nbytes)


def measure(backend: str, family: str, name: str, r: str, n: int, dtype: str) -> dict[str, Any]:
    small = make_numpy(1000, dtype)
    fn = _callable(backend, family, name, r, small)
    fn()
    fn()
    del fn, small
    a = make_numpy(n, dtype, logits=family == "logits")
    if family == "probs":
        a.pop("x", None)
    else:
        del a["p"]  # only x and y are inputs
    fn = _callable(backend, family, name, r, a)
    gc.collect()
    gc.disable()
    each = []
    method = ""
    for _ in range(CALLS):
        rss_before = _status()["VmRSS"]
        if _reset_hwm():
            method = "VmHWM after - VmRSS before (HWM reset via /proc/self/clear_refs)"
            out = fn()
            each.append(_status()["VmHWM"] - rss_before)
        else:
            method = "ru_maxrss after - ru_maxrss before (lower bound)"
            before = _maxrss()
            out = fn()
            each.append(_maxrss() - before)
        out_bytes = _nbytes(out)
        del out
    peak = max(each)
    res: dict[str, Any] = {
        "backend": backend,
        "family": family,
        "name": name,
        "reduction": r,
        "n": n,
        "dtype": dtype,
        "input_bytes": int(sum(v.nbytes for v in a.values())),
        "out_bytes": out_bytes,
        "rss_extra_bytes": int(peak),
        "rss_extra_each_bytes": [int(b) for b in each],
        "rss_method": method,
    }
    if backend == "numpy":
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        res["tracemalloc_extra_bytes"] = int(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
        del out
    gc.enable()
    return res


def main() -> None:
    backend, family, name, r, n, dtype, threads = sys.argv[1:8]
    if backend == "torch":
        import torch

        torch.set_num_threads(int(threads))
    print(json.dumps(measure(backend, family, name, r, int(n), dtype)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
