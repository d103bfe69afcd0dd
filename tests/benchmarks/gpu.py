"""GPU benchmark: xbce against torch's own CUDA kernels, as achieved bandwidth.

For float32 and bfloat16 tensors of 2**26 elements on the first CUDA device, times
(CUDA events, median of 20 after 3 warm-ups) the forward of both losses, ``none`` and
``mean``, for ``torch.nn.functional`` and xbce on torch tensors, and reports the bytes
each must move (inputs read, output written) per second as a share of the device's
peak memory bandwidth (H100 SXM 3.35 TB/s, H200 4.8 TB/s; others: not given).
Writes ``<out>/gpu.json`` and ``<out>/gpu.md``; without a CUDA device it says so and
exits 0. Run by ``nox -s gpu``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PEAK_BYTES_PER_S = {"H100": 3.35e12, "H200": 4.8e12}


def _time(fn: Any, torch: Any, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    ap.add_argument("--log2n", type=int, default=26)
    args = ap.parse_args(argv)
    import torch
    import torch.nn.functional as TF

    import xbce

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: no GPU benchmark")
        return 0
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BYTES_PER_S.items() if k in name), None)
    n = 1 << args.log2n
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        size = torch.empty((), dtype=dtype).element_size()
        x = torch.randn(n, device="cuda").to(dtype)
        p = torch.sigmoid(x)
        t = torch.rand(n, device="cuda").to(dtype)
        for op, inp in (("bce", p), ("bcewl", x)):
            for reduction in ("none", "mean"):
                moved = 2 * n * size + (n * size if reduction == "none" else size)
                for lib, mod in (("torch", TF), ("xbce", xbce)):
                    fn = mod.binary_cross_entropy if op == "bce" else (
                        mod.binary_cross_entropy_with_logits)
                    sec = _time(lambda fn=fn, inp=inp, t=t, r=reduction: fn(inp, t, reduction=r),
                                torch)
                    bw = moved / sec
                    rows.append({
                        "dtype": str(dtype)[6:], "loss": op, "reduction": reduction,
                        "library": lib, "seconds": sec, "bytes_per_s": bw,
                        "share_of_peak": None if peak is None else bw / peak,
                    })
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"gpu": name, "torch": torch.__version__, "xbce": xbce.__version__,
            "elements": n, "peak_bytes_per_s": peak}
    (args.out / "gpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"### GPU benchmark: {name}", "",
             f"{n:,} elements, torch {torch.__version__}; bandwidth = bytes the loss must "
             "move / median time (CUDA events); share of the device's peak where known.", "",
             "| dtype | loss | reduction | library | time (ms) | GB/s | share of peak |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        share = "—" if r["share_of_peak"] is None else f"{100 * r['share_of_peak']:.0f}%"
        lines.append(f"| {r['dtype']} | {r['loss']} | {r['reduction']} | {r['library']} | "
                     f"{1e3 * r['seconds']:.3f} | {r['bytes_per_s'] / 1e9:.0f} | {share} |")
    (args.out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
