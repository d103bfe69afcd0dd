"""Cost of the running BCE per batch: ``running.update`` against the loss call itself.

``python tests/benchmarks/running.py [--sizes 64 4096] [--libs torch numpy]`` prints a
Markdown table (docs/benchmarks.md quotes one run). float32, one thread (torch intra-op
threads and the BLAS/OpenMP pools set to 1), for each batch size B, library and loss:

- ``xbce loss``: ``xbce.binary_cross_entropy[_with_logits](p, y)`` (reduction ``mean``),
  the call a training loop makes anyway; the target's denominator;
- ``running.update``: ``state = running.update(state, p, y)``, the same batch added to a
  running state (the loss with ``reduction="sum"``, then a float64 addition and a count);
- ``xbce loss + .item()``: the usual loop's step, ``epoch_loss += loss.item()`` (a host
  read per batch; on a GPU a synchronisation);
- on torch, ``F.binary_cross_entropy[_with_logits]`` (torch's own kernel) for scale.

Timing as ``nox -s bench`` (tests/benchmarks/_timing.py): competitors interleaved round
by round, each sample the median of enough back-to-back calls to last 5 ms, medians over
rounds and the median of the per-round ratios. Target: update / loss <= 1.3.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _competitors import Competitor  # noqa: E402
from _data import make_numpy  # noqa: E402
from _timing import paired_ratio, time_case  # noqa: E402

TARGET = 1.3


def _competitors(lib: str, family: str, n: int) -> list[Competitor]:
    import torch
    import torch.nn.functional as TF

    import xbce
    from xbce import running

    data = make_numpy(n, "float32")
    key = "x" if family == "logits" else "p"
    if lib == "torch":
        v, y = torch.from_numpy(data[key]), torch.from_numpy(data["y"])
    else:
        v, y = data[key], data["y"]
    logits = family == "logits"
    loss_fn = xbce.binary_cross_entropy_with_logits if logits else xbce.binary_cross_entropy
    box: dict[str, Any] = {"state": running.init(v), "total": 0.0}

    def loss() -> Any:
        return loss_fn(v, y)

    def update() -> Any:
        box["state"] = running.update(box["state"], v, y, logits=logits)
        return box["state"]

    def loss_item() -> Any:
        box["total"] += float(loss_fn(v, y))
        return box["total"]

    comps = [
        Competitor(lib, "xbce loss", loss, role="base"),
        Competitor(lib, "running.update", update),
        Competitor(lib, "xbce loss + .item()", loss_item),
    ]
    if lib == "torch":
        ref = TF.binary_cross_entropy_with_logits if logits else TF.binary_cross_entropy
        comps.append(Competitor(lib, "torch F loss", lambda: ref(v, y), role="ref"))
    return comps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=lambda s: int(float(s)), default=[64, 4096])
    ap.add_argument("--libs", nargs="+", choices=("torch", "numpy"), default=["torch", "numpy"])
    ap.add_argument("--families", nargs="+", choices=("probs", "logits"),
                    default=["probs", "logits"])
    ap.add_argument("--rounds", type=int, default=21, help="interleaved rounds per case")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    rows = []
    failed = False
    for n in args.sizes:
        for lib in args.libs:
            for family in args.families:
                timed = time_case(_competitors(lib, family, n), min_rounds=args.rounds,
                                  max_rounds=args.rounds, budget_s=0.0, warm_all=True)
                by = {t.comp.name: t for t in timed}
                base, upd = by["xbce loss"], by["running.update"]
                ratio = paired_ratio(upd, base)
                failed |= ratio > TARGET
                cells = " | ".join(f"{t.comp.name} {t.median * 1e6:.1f}" for t in timed)
                print(f"B={n} {lib} {family}: {cells} µs; update / loss {ratio:.2f}",
                      flush=True)
                rows.append((n, lib, family, by, ratio))
    print()
    print("| B | library | loss | xbce loss (µs) | running.update (µs) | update / loss "
          f"(target <= {TARGET}) | loss + .item() (µs) | torch F (µs) |")
    print("|---|---|---|---|---|---|---|---|")
    for n, lib, family, by, ratio in rows:
        ref = by.get("torch F loss")
        print(f"| {n} | {lib} | {family} | {by['xbce loss'].median * 1e6:.1f} | "
              f"{by['running.update'].median * 1e6:.1f} | {ratio:.2f} "
              f"{'ok' if ratio <= TARGET else 'FAIL'} | "
              f"{by['xbce loss + .item()'].median * 1e6:.1f} | "
              f"{'' if ref is None else f'{ref.median * 1e6:.1f}'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
