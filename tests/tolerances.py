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
``broadcast_div``  not a quantity: a division by a broadcast divisor (numel for ``mean``,
                 BCE's (1-x)x under vmap over cotangents only), added on paths where a
                 backend does it its own way
``jvp_order``    not a quantity: added for forward-mode results whose chain of roundings
                 runs in another order than torch's jvp (``jvp_order_mean``: and mean)
``reduced``      mean and sum, scaled by the sum of |terms| (summation order differs)
"""

from __future__ import annotations

TABLE: dict[tuple[str, ...], tuple[int, str]] = {
    # ---- BCE forward
    ("bce", "float64"): (3, "torch's fused kernel calls glibc's log/log1p; NumPy's (and torch's "
                            "own vector) log/log1p are <=1 ulp from them per log (NumPy's AVX-512 "
                            "paths differ in ~0.3% / ~7% of elements); the two clamped terms "
                            "have the same sign, so nothing cancels: <= 2 ulp, and the * weight "
                            "rounding of values that already differ: <= 3 (measured 3 in 5 of "
                            "100k elements)"),
    ("bce", "float64", "jax"): (3, "XLA's CPU log1p in float64 is up to 129 ulp off (for u in "
                                   "[-0.4996, -0.3405]); xbce's JAX namespace computes it as "
                                   "log(s) + e / s (s = 1 + u, e its rounding error) with XLA's "
                                   "log, <= 1 ulp from glibc's: as the generic entry, measured "
                                   "<= 3 ulp (98.1% bit-identical) on the parity sweep, eager and "
                                   "under jit (was 128)"),
    ("bce", "float32"): (4, "torch's fused kernel uses glibc logf/log1pf; every array library's "
                            "vector log differs from it by <=3 ulp in ~6% of elements"),
    ("bce", "float16"): (0, "logs in float32 rounded to half, every op rounded to half: as torch "
                            "does"),
    ("bce", "bfloat16"): (0, "as float16"),
    # ---- BCE with logits forward (scale: |(1-t)*x| + |log_sigmoid(x) * log_weight|)
    ("bcewl", "float64"): (4, "exp/log1p of log_sigmoid: <=1 ulp each, against Sleef's"),
    ("bcewl", "float64", "jax"): (4, "as the generic entry: log_sigmoid's log1p(exp(-|x|)) has "
                                     "its argument in (0, 1], where XLA's float64 log1p is <= 2 "
                                     "ulp; measured 4 on the parity sweep (was 256: the "
                                     "tolerance of XLA's log1p near -0.4)"),
    ("bcewl", "float32"): (6, "exp/log1p of log_sigmoid: <=1-2 ulp each, against Sleef's; "
                              "the log weight 1+(p-1)t (pos_weight) can carry ls*lw to the "
                              "bottom of a higher binade, where ~3 ulps relative are up to 6: "
                              "measured 5 (NumPy, p = 3) in 1 of 262145 elements, <= 4 on 10^5"),
    ("bcewl", "float32", "jax"): (4, "as the generic entry: xbce keeps (1-t)*x and ls*lw rounded "
                                     "before their difference under jit (XLA contracted them "
                                     "into a fused multiply-add: 6 ulp before; "
                                     "xbce/_jax.py _rounded); measured 4 on the parity sweep"),
    ("bcewl", "float16"): (1, "log_sigmoid in float32 rounded once: a float32 ulp can flip a half "
                              "rounding"),
    ("bcewl", "bfloat16"): (1, "as float16"),
    # ---- gradients
    ("bce_grad", "float64"): (0, "+ - * / max only: IEEE-exact on every backend"),
    ("bce_grad", "float32"): (0, "as float64"),
    ("bce_grad", "float16"): (0, "as float64, per-op in half"),
    ("bce_grad", "bfloat16"): (0, "as float16"),
    ("bce_tgrad", "float64"): (4, "one log of x/(1-x): glibc's/XLA's log against torch's Sleef "
                                  "log, 1 ulp of the log; the * grad * weight [/ numel] roundings "
                                  "of values that already differ: measured <= 3 ulp (<= 4 with "
                                  "mean) on 2M elements"),
    ("bce_tgrad", "float64", "torch"): (0, "torch.log of the same x/(1-x) is torch's logit "
                                           "kernel"),
    ("bce_tgrad", "float64", "torch_cuda"): (4, "CUDA's log, not the CPU's: as the generic entry"),
    ("bce_tgrad", "float32"): (6, "NumPy's own SIMD logf (and XLA's) against torch's Sleef logf "
                                  "of x/(1-x): <= 4 ulp of the log, measured <= 5 ulp of the "
                                  "result on 2M elements (<= 4 on JAX)"),
    ("bce_tgrad", "float32", "torch"): (0, "torch.log of the same x/(1-x) is torch's logit "
                                           "kernel"),
    ("bce_tgrad", "float32", "torch_cuda"): (6, "CUDA's logf, not the CPU's: as the generic "
                                                "entry"),
    ("bce_tgrad", "float16"): (0, "log in float32 rounded to half"),
    ("bce_tgrad", "bfloat16"): (0, "as float16"),
    ("bcewl_grad", "float64"): (6, "sigmoid as 1/(1+exp(-x)) or log_sigmoid (exp, log1p in (0,1]: "
                                   "XLA's is <= 2 ulp there, unlike its log1p near -1) against "
                                   "torch's kernels, then 3 roundings (grad, weight, numel) of "
                                   "values that already differ: measured <= 4 on 2M elements"),
    ("bcewl_grad", "float32"): (8, "as float64; a relative error of ~3 float32 ulps is up to 6 "
                                   "ulps at the bottom of a binade: measured <= 6 on 2M elements "
                                   "(NumPy), <= 4 (torch, JAX)"),
    ("bcewl_grad", "float16"): (1, "sigmoid in float32 rounded once (one float32 ulp may flip "
                                   "it)"),
    ("bcewl_grad", "bfloat16"): (1, "as float16"),
    ("bcewl_tgrad", "float64"): (0, "-x * grad * weight [/ numel]: sign flip, * and /: "
                                    "IEEE-exact"),
    ("bcewl_tgrad", "float32"): (0, "as float64"),
    ("bcewl_tgrad", "float16"): (0, "as float64, per-op in half"),
    ("bcewl_tgrad", "bfloat16"): (0, "as float16"),
    # ---- a further step, added to a quantity's tolerance (check(..., plus=...))
    ("broadcast_div", "float64"): (0, "an IEEE division, as torch's div_(numel) and kernels"),
    ("broadcast_div", "float32"): (0, "as float64"),
    ("broadcast_div", "float16"): (0, "in float32, rounded to half once, as torch"),
    ("broadcast_div", "bfloat16"): (0, "as float16"),
    ("broadcast_div", "float64", "jax"): (1, "XLA rewrites a / broadcast(b) as a * (1/b), even "
                                             "eagerly; xbce's JAX autodiff and explicit "
                                             "backward functions avoid it for numel "
                                             "(xbce/_jax.py _div_numel) except when only "
                                             "the (co)tangent is batched (jacfwd, jacrev)"),
    ("broadcast_div", "float32", "jax"): (1, "as float64"),
    ("broadcast_div", "float16", "jax"): (1, "as float64 (the float32 quotient may flip the "
                                             "rounding)"),
    ("broadcast_div", "bfloat16", "jax"): (1, "as float16"),
    ("jvp_order", "float64"): (0, "torch's jvp formula in torch's order (xbce's torch Function)"),
    ("jvp_order", "float32"): (0, "as float64"),
    ("jvp_order", "float16"): (0, "as float64"),
    ("jvp_order", "bfloat16"): (0, "as float64"),
    ("jvp_order", "float64", "jax"): (4, "xbce's JVP applies * tangent, * weight, / divisor, "
                                         "* coefficient in the reverse of torch's order (so "
                                         "that its transpose is torch's backward): 3-4 "
                                         "roundings of other intermediates, measured <= 3 ulp "
                                         "on 100k elements"),
    ("jvp_order", "float32", "jax"): (4, "as float64; measured <= 4"),
    ("jvp_order", "float16", "jax"): (8, "as float64, each op rounded to half: a relative "
                                         "4 * 2**-11 is up to 8 ulp at a binade's bottom; "
                                         "measured <= 7"),
    ("jvp_order", "bfloat16", "jax"): (8, "as float16; measured <= 4"),
    ("jvp_order_mean", "float64"): (0, "as jvp_order"),
    ("jvp_order_mean", "float32"): (0, "as jvp_order"),
    ("jvp_order_mean", "float16"): (0, "as jvp_order"),
    ("jvp_order_mean", "bfloat16"): (0, "as jvp_order"),
    ("jvp_order_mean", "float64", "jax"): (5, "jvp_order, plus broadcast_div (jacfwd batches "
                                              "only the tangent)"),
    ("jvp_order_mean", "float32", "jax"): (5, "as float64"),
    ("jvp_order_mean", "float16", "jax"): (9, "as float64"),
    ("jvp_order_mean", "bfloat16", "jax"): (9, "as float64"),
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
