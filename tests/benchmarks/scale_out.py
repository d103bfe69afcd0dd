"""Throughput of xbce's BCE (mean) on 1e8 float32 elements: Dask on a LocalCluster of
1 and 2 worker processes, Dask's local threaded scheduler, and NumPy in one process.

``python tests/benchmarks/scale_out.py [--n 1e8] [--repeat 3]`` prints a Markdown table
(docs/scaling-out.md quotes one run). Data are generated inside the chunk tasks
(``da.random``), so no 800 MB array crosses from the client to the workers; a graph
that only generates (and sums) the same data is timed too, and the difference is the
loss's own time. Each timing is a fresh compute of the same graph, best of
``--repeat``, after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

import xbce


def _graphs(n: int, chunk: int) -> tuple[Any, Any]:
    """The loss, and a graph that only generates the same data (and sums it)."""
    import dask.array as da

    rs = da.random.default_rng(0)
    p = rs.random(n, chunks=chunk, dtype=np.float32)
    y = (rs.random(n, chunks=chunk, dtype=np.float32) > 0.5).astype(np.float32)
    return xbce.binary_cross_entropy(p, y), (p + y).sum()


def _best(run: Any, repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=float, default=1e8)
    ap.add_argument("--chunk", type=float, default=5e6)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, chunk = int(args.n), int(args.chunk)
    import dask
    import distributed

    rows = []
    loss, data_only = _graphs(n, chunk)

    def measure(name: str, run: Any) -> None:
        t_data = _best(lambda: run(data_only), args.repeat)
        t_all = _best(lambda: run(loss), args.repeat)
        rows.append((name, t_all, t_data))

    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            measure(f"dask.distributed, {workers} worker process(es) x 1 thread",
                    lambda g, c=client: c.compute(g).result())
    measure(f"dask, local threaded scheduler ({os.cpu_count()} threads)",
            lambda g: dask.compute(g, scheduler="threads"))
    rng = np.random.default_rng(0)
    p = rng.random(n, dtype=np.float32)
    y = (rng.random(n, dtype=np.float32) > 0.5).astype(np.float32)
    t = _best(lambda: xbce.binary_cross_entropy(p, y), args.repeat)
    rows.append(("NumPy arrays in memory, one process (xbce's block threads)", t, 0.0))
    print(f"BCE mean of {n:.0e} float32 elements (chunks of {chunk:.0e}), "
          f"{os.cpu_count()} cores, best of {args.repeat}\n")
    print("| engine | loss + data (s) | data only (s) | loss alone (s) | loss elements/s |")
    print("|---|---|---|---|---|")
    for name, t, t_data in rows:
        alone = t - t_data
        print(f"| {name} | {t:.2f} | {t_data:.2f} | {alone:.2f} | {n / alone:.3g} |")


if __name__ == "__main__":
    main()
