"""xbce in child processes and in many threads at once.

Each child-process case runs ``tests/scripts/in_children.py`` in a subprocess with a
timeout: the parent uses xbce (its thread pool, caches, the library's own state), then
children made by ``fork``, ``forkserver`` or ``spawn`` compute the same losses and must
get the parent's values bit for bit. A regression that hangs fails here, it does not
hang the suite.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from backends import BACKENDS, Backend

import xbce

SCRIPT = Path(__file__).parent / "scripts" / "in_children.py"
TIMEOUT = 180  # seconds; a healthy run of one case takes 2-15 s on 2 cores

#: JAX is not fork-safe (its own warning: "os.fork() is incompatible with multithreaded
#: code, and JAX is multithreaded, so this will likely lead to a deadlock").
METHODS = {"jax": ("forkserver", "spawn")}
IN_CHILDREN = ("numpy", "torch", "jax", "dask", "array_api_strict")


def _run(*args: str) -> str:
    try:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(args)}: no result after {TIMEOUT} s (a hang): {e.stdout!r}")
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


CASES = [
    (method, name)
    for name in BACKENDS
    if name in IN_CHILDREN
    for method in METHODS.get(name, ("fork", "forkserver", "spawn"))
]


@pytest.mark.parametrize(("method", "name"), CASES)
def test_children_get_the_parents_results(method: str, name: str) -> None:
    out = _run(method, name)
    assert f"{method} {name}: equal" in out, out


@pytest.mark.skipif("torch" not in BACKENDS, reason="runs in the torch session")
def test_dataloader_workers() -> None:
    """DataLoader(num_workers=2): forked workers, after the parent used xbce."""
    assert "dataloader: equal 4 items" in _run("dataloader")


def test_interpreter_exits_after_threaded_blocks() -> None:
    """The block pool's idle threads do not keep a finished program alive."""
    code = (
        "import numpy as np, xbce\n"
        "p = np.linspace(0, 1, 1 << 21, dtype=np.float32)\n"
        "print(float(xbce.binary_cross_entropy(p, p, reduction='sum')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert float(done.stdout) > 0


def test_many_threads_at_once(backend: Backend) -> None:
    """16 Python threads calling xbce together (mixed sizes, dtypes, both losses, on
    the backend under test and on NumPy) get exactly the single-threaded results."""
    rng = np.random.default_rng(7)
    cases = []
    for n in (3, 1000, 1 << 18, 1 << 20):
        for dtype in ("float32", "float64"):
            p = rng.random(n)
            y = np.round(rng.random(n))
            for b in (backend,) if backend.name == "numpy" else (backend, _numpy()):
                if dtype in b.dtypes:  # JAX with x64 off has no float64
                    cases.append((b, b.asarray(p, dtype), b.asarray(y, dtype)))

    def losses(case: tuple[Backend, object, object]) -> tuple[bytes, ...]:
        b, x, t = case
        out = (
            xbce.binary_cross_entropy(x, t),
            xbce.binary_cross_entropy(x, t, reduction="sum"),
            xbce.binary_cross_entropy_with_logits(x, t),
            xbce.binary_cross_entropy_with_logits(x, t, reduction="none"),
        )
        return tuple(b.to_torch(o).numpy().tobytes() for o in out)

    expected = [losses(c) for c in cases]
    barrier = threading.Barrier(16)

    def worker(k: int) -> list[tuple[bytes, ...]]:
        barrier.wait()  # all start together
        order = cases[k % len(cases):] + cases[: k % len(cases)]
        got = [losses(c) for c in order]
        return got[len(cases) - k % len(cases):] + got[: len(cases) - k % len(cases)]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    for got in results:
        assert got == expected


def _numpy() -> Backend:
    from backends import load

    return load("numpy")
