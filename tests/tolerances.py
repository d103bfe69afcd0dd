"""Every tolerance of the parity tests, in one table, with the reason for each.

A tolerance is a number of ulps *of the compared dtype*: ``|actual - expected| <=
ulps * spacing(scale)``, where ``scale`` is ``|expected|`` unless the check names a
larger one (the magnitude of the terms that cancel, or of the summed terms). 0 means
bit-identical (signed zeros, infinities and NaNs must match as well).

Keys are ``(quantity, dtype)``, refined per backend by ``(quantity, dtype, backend)``;
the most specific entry wins. Quantities:

``bce``          forward of binary_cross_entropy, per element
``bcewl``        forward of binary_cross_entropy_with_logits, per element, scaled by
                 the magnitude of its two cancelling terms
``bce_grad``     d/d input of BCE (only + - * / max: IEEE-exact everywhere)
``bce_tgrad``    d/d target of BCE (-log(x / (1 - x)): one log)
``bcewl_grad``   d/d input and d/d target of BCEWL (sigmoid / log_sigmoid: exp, log1p),
                 scaled by the magnitude of the terms that cancel
``bcewl_tgrad``  d/d target of BCEWL without pos_weight (-x * grad: IEEE-exact)
``reduced``      mean and sum, scaled by the sum of |terms| (summation order differs)
"""

from __future__ import annotations

TABLE: dict[tuple[str, ...], tuple[int, str]] = {
    # ---- BCE forward
    ("bce", "float64"): (0, "NumPy's float64 log/log1p are glibc's: torch's op order gives the same bits"),
    ("bce", "float64", "torch"): (2, "torch.log/log1p are Sleef/MKL vectors, not glibc scalars: <=1 ulp per log"),
    ("bce", "float64", "jax"): (256, "XLA's CPU log1p in float64 is up to ~128 ulp off (shared/README.md)"),
    ("bce", "float32"): (4, "torch's fused kernel uses glibc logf/log1pf; every array library's vector log "
                            "differs from it by <=3 ulp in ~6% of elements"),
    ("bce", "float16"): (0, "logs in float32 rounded to half, every op rounded to half: as torch does"),
    ("bce", "bfloat16"): (0, "as float16"),
    # ---- BCE with logits forward (scale: |(1-t)*x| + |log_sigmoid(x) * log_weight|)
    ("bcewl", "float64"): (4, "exp/log1p of log_sigmoid: <=1 ulp each, against Sleef's"),
    ("bcewl", "float64", "jax"): (256, "XLA's float64 log1p (as for bce)"),
    ("bcewl", "float32"): (4, "exp/log1p of log_sigmoid: <=1-2 ulp each, against Sleef's"),
    ("bcewl", "float16"): (1, "log_sigmoid in float32 rounded once: a float32 ulp can flip a half rounding"),
    ("bcewl", "bfloat16"): (1, "as float16"),
    # ---- gradients
    ("bce_grad", "float64"): (0, "+ - * / max only: IEEE-exact on every backend"),
    ("bce_grad", "float32"): (0, "as float64"),
    ("bce_grad", "float16"): (0, "as float64, per-op in half"),
    ("bce_grad", "bfloat16"): (0, "as float16"),
    ("bce_tgrad", "float64"): (2, "one log of x/(1-x), vector log against torch's"),
    ("bce_tgrad", "float64", "jax"): (4, "XLA's float64 log"),
    ("bce_tgrad", "float32"): (2, "one log of x/(1-x), vector log against torch's"),
    ("bce_tgrad", "float16"): (0, "log in float32 rounded to half"),
    ("bce_tgrad", "bfloat16"): (0, "as float16"),
    ("bcewl_grad", "float64"): (4, "exp (sigmoid) or exp+log1p (log_sigmoid), against Sleef"),
    ("bcewl_grad", "float64", "jax"): (256, "XLA's float64 log1p"),
    ("bcewl_grad", "float32"): (4, "exp (sigmoid) or exp+log1p (log_sigmoid), against Sleef"),
    ("bcewl_grad", "float16"): (1, "sigmoid in float32 rounded once (one float32 ulp may flip it)"),
    ("bcewl_grad", "bfloat16"): (1, "as float16"),
    ("bcewl_tgrad", "float64"): (0, "-x * grad * weight [/ numel]: sign flip, * and /: IEEE-exact"),
    ("bcewl_tgrad", "float32"): (0, "as float64"),
    ("bcewl_tgrad", "float16"): (0, "as float64, per-op in half"),
    ("bcewl_tgrad", "bfloat16"): (0, "as float16"),
    # ---- reductions (scale: sum of |terms|; pairwise vs cascade summation)
    ("reduced", "float64"): (8, "summation order: NumPy pairwise / XLA tree / torch cascade"),
    ("reduced", "float32"): (8, "summation order, plus the elementwise ulps above"),
    ("reduced", "float16"): (1, "accumulated in float32 and rounded to half once"),
    ("reduced", "bfloat16"): (1, "as float16"),
}


def ulps(quantity: str, dtype: str, backend: str) -> int:
    """The tolerance, in ulps, for ``quantity`` in ``dtype`` on ``backend``."""
    base = backend.removesuffix("_cuda").removesuffix("_gpu")
    for key in ((quantity, dtype, backend), (quantity, dtype, base), (quantity, dtype)):
        if key in TABLE:
            return TABLE[key][0]
    raise KeyError(f"no tolerance for {quantity!r} in {dtype} on {backend}")
