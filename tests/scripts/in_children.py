"""Use xbce in a parent, then in children made by a start method; compare the results.

``python in_children.py METHOD BACKEND...`` prints one line per backend and exits 0 when
every child's result equals the parent's, bit for bit (the same code, data and machine).
Run by tests/test_processes.py in a subprocess with a timeout, so a hang fails the test.
"""

from __future__ import annotations

import multiprocessing
import sys

import numpy as np

import xbce

SIZES = (7, 1 << 21)  # one small call, one large enough for the blocked, threaded path


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    p = rng.random(n).astype(np.float32)
    return p, np.round(rng.random(n)).astype(np.float32)


def evaluate(backend: str) -> list[float]:
    """Both losses, mean and sum, and an input gradient, for each size."""
    out: list[float] = []
    for n in SIZES:
        p, y = _data(n)
        if backend == "numpy":
            x, t = p, y
        elif backend == "torch":
            import torch

            x, t = torch.from_numpy(p).requires_grad_(True), torch.from_numpy(y)
        elif backend == "jax":
            import jax.numpy as jnp

            x, t = jnp.asarray(p), jnp.asarray(y)
        elif backend == "dask":
            import dask.array as da

            x, t = da.from_array(p, chunks=n // 2 + 1), da.from_array(y, chunks=n // 2 + 1)
        elif backend == "array_api_strict":
            import array_api_strict as xp

            x, t = xp.asarray(p), xp.asarray(y)
        else:
            raise SystemExit(f"unknown backend {backend}")
        bce = xbce.binary_cross_entropy(x, t)
        logits = xbce.binary_cross_entropy_with_logits(x, t, reduction="sum")
        if backend == "torch":
            (bce + logits).backward()
            grad = x.grad
        elif backend == "jax":
            import jax

            grad = jax.jit(jax.grad(xbce.binary_cross_entropy))(x, t)
        else:
            grad = xbce.binary_cross_entropy_backward(np.float32(1.0), p, y)
            bce, logits = np.asarray(bce), np.asarray(logits)
        values = (bce, logits, grad)
        if backend == "torch":
            values = tuple(v.detach() for v in values)
        total_grad = np.asarray(values[2], dtype=np.float64).sum()
        out += [float(values[0]), float(values[1]), float(total_grad)]
    return out


def _worker_init(method: str) -> None:
    """After ``fork``, what the array libraries themselves need, xbce or not:

    * torch: one intra-op thread, as torch's DataLoader sets in each worker (torch's
      OpenMP pool does not survive a fork: a large op with the inherited thread count
      hangs);
    * Dask: the synchronous scheduler (the threaded scheduler's cached pool does not
      survive a fork either: dask/dask#1967).

    JAX is not fork-safe at all (JAX warns: "os.fork() is incompatible with
    multithreaded code, and JAX is multithreaded"): it is run under forkserver and spawn.
    """
    if method != "fork":
        return
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "dask" in sys.modules:
        import dask

        dask.config.set(scheduler="synchronous")


def _dataloader() -> int:
    """xbce inside ``torch.utils.data.DataLoader(num_workers=2)`` workers (fork on Linux)
    after the parent used it: each item is a loss on NumPy and on torch, large arrays."""
    import torch

    class Losses(torch.utils.data.Dataset[tuple[float, ...]]):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> tuple[float, ...]:
            return tuple(evaluate("numpy") + evaluate("torch"))

    expected = Losses()[0]
    loader = torch.utils.data.DataLoader(Losses(), batch_size=None, num_workers=2)
    rows = list(loader)
    ok = len(rows) == 4 and all(tuple(map(float, r)) == expected for r in rows)
    print(f"dataloader: {'equal' if ok else 'DIFFERENT'} {len(rows)} items")
    return 0 if ok else 1


def main() -> int:
    if sys.argv[1] == "dataloader":
        return _dataloader()
    method, backends = sys.argv[1], sys.argv[2:]
    if "torch" in backends:  # the DataLoader case: workers forked from a torch parent
        import torch  # noqa: F401
    expected = {b: evaluate(b) for b in backends}  # the parent uses xbce first
    ctx = multiprocessing.get_context(method)
    status = 0
    with ctx.Pool(2, initializer=_worker_init, initargs=(method,)) as pool:
        for b in backends:
            got = pool.map(evaluate, [b, b])
            ok = all(g == expected[b] for g in got)
            print(f"{method} {b}: {'equal' if ok else 'DIFFERENT'} {got[0][:2]}")
            status |= not ok
    return status


if __name__ == "__main__":
    raise SystemExit(main())
