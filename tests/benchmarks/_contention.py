"""xbce beside other work: what ``--contention`` times (issue 19, item 1).

Users run a loss beside DataLoader workers, other jobs and other thread pools. Each
*condition* below times the same cases, interleaved like every other case
(``_timing.py``): float32, ``mean``, 1e5 and 1e7 elements, both losses, ``fwd`` and
``fwdbwd``; competitors torch's ``F`` (the reference), xbce on the same torch tensors,
and xbce on NumPy arrays (``fwdbwd``: the loss and the explicit backward function).

Conditions:

* ``quiet``: nothing else running (torch at its default thread count);
* ``1 busy`` / ``2 busy``: one or two processes spinning a core each (``while True:
  pass``), started before the condition's cases and killed after them;
* ``torch 1 thread``: ``torch.set_num_threads(1)``, as in a DataLoader worker;
* ``OMP_NUM_THREADS=1``: the quiet cases in a child process started with that
  variable set (torch reads it at import).

A cell passes when xbce's time is at most torch's in that condition, and, under load
(any condition but ``quiet``), when xbce's ratio to torch grew by at most
:data:`GROWTH_LIMIT` against the quiet ratio (paired ratios: the median over rounds of
xbce's time over torch's in the same round).

Run alone: ``python tests/benchmarks/_contention.py [--child]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _competitors import Data, Libs, build
from _data import make_numpy
from _timing import paired_ratio, time_case

HERE = Path(__file__).resolve().parent
SIZES = (10**5, 10**7)
FAMILIES = ("probs", "logits")
MODES = ("fwd", "fwdbwd")
CONDITIONS = ("quiet", "1 busy", "2 busy", "torch 1 thread", "OMP_NUM_THREADS=1")
#: xbce/torch under load may be at most this multiple of the quiet xbce/torch
GROWTH_LIMIT = 1.25
#: (min rounds, max rounds, seconds budget) per case, by size
PLAN = {10**5: (9, 21, 2.0), 10**7: (5, 7, 5.0)}
_BUSY = "while True: pass"


@contextlib.contextmanager
def busy(k: int) -> Iterator[None]:
    """``k`` processes spinning a core each while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(k)]
    try:
        time.sleep(0.3 if k else 0)  # let them start spinning
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _keep(comp: Any) -> bool:
    return comp.key in ("torch:xbce", "torch:xbce (autograd)", "numpy:xbce",
                        "numpy:xbce + xbce backward fn") or comp.role == "ref"


def time_condition(libs: Libs, condition: str, datas: dict[int, Data]) -> list[dict[str, Any]]:
    """Every case in one condition (the caller set it up); one record per competitor."""
    out = []
    for n in SIZES:
        lo, hi, budget = PLAN[n]
        for family in FAMILIES:
            for mode in MODES:
                comps = [c for c in build(libs, datas[n], family, "mean", mode)
                         if c.backend in ("torch", "numpy") and _keep(c)]
                timed = time_case(comps, min_rounds=lo, max_rounds=hi, budget_s=budget,
                                  warm_all=True)
                ref = next(t for t in timed if t.comp.role == "ref")
                for t in timed:
                    out.append({
                        "condition": condition, "family": family, "n": n, "mode": mode,
                        "backend": t.comp.backend, "competitor": t.comp.name,
                        "role": t.comp.role, "median_ms": t.median * 1e3,
                        "samples_ms": [s * 1e3 for s in t.samples],
                        "x_ref": t.median / ref.median,
                        "paired_x_ref": paired_ratio(t, ref),
                    })
                parts = " | ".join(f"{t.comp.key} {t.median * 1e3:.3g} ms" for t in timed)
                print(f"  [{condition}] {family} n={n:.0e} {mode}: {parts}", flush=True)
    return out


def run(libs: Libs) -> list[dict[str, Any]]:
    """Every condition, in this process but the last (a child with OMP_NUM_THREADS=1)."""
    torch = libs.torch
    if torch is None:
        return []
    print("contention: float32, mean, torch and NumPy, busy processes beside", flush=True)
    datas = {n: Data(libs, make_numpy(n, "float32")) for n in SIZES}
    records: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    for condition, k in (("quiet", 0), ("1 busy", 1), ("2 busy", 2)):
        with busy(k):
            records += time_condition(libs, condition, datas)
    torch.set_num_threads(1)
    try:
        records += time_condition(libs, "torch 1 thread", datas)
    finally:
        torch.set_num_threads(threads)
    del datas
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    child = subprocess.run([sys.executable, str(HERE / "_contention.py"), "--child"],
                           env=env, capture_output=True, text=True, check=False)
    sys.stdout.write(child.stdout.split("\nRECORDS ")[0] + "\n")
    if child.returncode == 0 and "\nRECORDS " in child.stdout:
        records += json.loads(child.stdout.split("\nRECORDS ", 1)[1])
    else:
        print(f"  OMP_NUM_THREADS=1 child failed: {child.stderr[-2000:]}", flush=True)
    return records


def evaluate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (condition, xbce competitor, case): its ratio to torch, the growth
    of that ratio against the quiet one, and whether the cell passes."""
    quiet = {(r["backend"], r["family"], r["n"], r["mode"]): r["paired_x_ref"]
             for r in records if r["condition"] == "quiet" and r["role"] != "ref"}
    rows = []
    for r in records:
        if r["role"] == "ref":
            continue
        q = quiet.get((r["backend"], r["family"], r["n"], r["mode"]))
        growth = None if r["condition"] == "quiet" or q is None else r["paired_x_ref"] / q
        ok = r["paired_x_ref"] <= 1.0 and (growth is None or growth <= GROWTH_LIMIT)
        rows.append({**{k: r[k] for k in ("condition", "backend", "family", "n", "mode",
                                          "median_ms", "paired_x_ref")},
                     "growth": growth, "status": "PASS" if ok else "FAIL"})
    return rows


def summary_targets(rows: list[dict[str, Any]]) -> list[tuple[str, float | None, float, str]]:
    """The figures the report's target table takes: (description, value, limit, detail)."""
    loaded = [r for r in rows if r["growth"] is not None]
    worst_growth = max(loaded, key=lambda r: r["growth"], default=None)
    worst_ratio = max(rows, key=lambda r: r["paired_x_ref"], default=None)

    def where(r: dict[str, Any] | None) -> str:
        if r is None:
            return "not measured"
        return f"{r['condition']}, {r['backend']} {r['family']} n={r['n']:.0e} {r['mode']}"

    return [
        ("contention: worst growth of xbce/torch under load over its quiet ratio "
         f"({len(loaded)} cells)", worst_growth and worst_growth["growth"], GROWTH_LIMIT,
         where(worst_growth)),
        (f"contention: worst xbce/torch in any condition ({len(rows)} cells)",
         worst_ratio and worst_ratio["paired_x_ref"], 1.0, where(worst_ratio)),
    ]


def table(rows: list[dict[str, Any]]) -> str:
    """The report's contention table (Markdown)."""
    lines = ["| condition | backend | loss | n | mode | xbce ms | xbce/torch | growth | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        growth = "-" if r["growth"] is None else f"{r['growth']:.2f}"
        lines.append(f"| {r['condition']} | {r['backend']} | {r['family']} | {r['n']:.0e} | "
                     f"{r['mode']} | {r['median_ms']:.3g} | {r['paired_x_ref']:.2f} | {growth} | "
                     f"{r['status']} |")
    return "\n".join(lines)


def _child() -> None:
    libs = Libs(int(os.environ.get("OMP_NUM_THREADS", "1")))
    datas = {n: Data(libs, make_numpy(n, "float32")) for n in SIZES}
    records = time_condition(libs, "OMP_NUM_THREADS=1", datas)
    print("\nRECORDS " + json.dumps(records))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    import warnings

    warnings.simplefilter("ignore")
    if "--child" in sys.argv:
        _child()
    else:
        rows = evaluate(run(Libs(len(os.sched_getaffinity(0)))))
        print(table(rows))
        for desc, value, limit, detail in summary_targets(rows):
            print(f"{desc}: {value} (limit {limit}) at {detail}")
        print("median growth", statistics.median(r["growth"] for r in rows if r["growth"]))
