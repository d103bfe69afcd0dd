"""What the benchmark times: xbce and its competitors, as zero-argument callables.

A *case* is (family, n, dtype, reduction, mode):

* family ``probs`` (``binary_cross_entropy``) or ``logits`` (``..._with_logits``);
* mode ``fwd`` (the loss) or ``fwdbwd`` (the loss and its gradient w.r.t. the input).

Each competitor's callable does all of its work, synchronously (JAX results are
``block_until_ready``-ed), and returns what it computed (used once, for the sanity
check that all competitors agree). Roles: ``ref`` is the case's reference (PyTorch's
``torch.nn.functional``), ``base`` the same-backend baseline that ratios in the
``x base`` column divide by (NumPy: the hand-written formula; JAX: the hand-written
``jax.numpy`` formula under ``jit``, the "fused floor"; torch: ``F`` itself).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

import xbce

FAMILIES = ("probs", "logits")
MODES = ("fwd", "fwdbwd")
REDUCTIONS = ("mean", "none")
DTYPES = ("float32", "float64")
#: scikit-learn's ``log_loss`` takes seconds per call from 10^7 elements on: not beyond
SKLEARN_MAX_N = 10**7
#: the size of the ``torch.compile`` competitors (compiling at every size costs minutes)
COMPILE_N = 10**6
#: from this size on, BCE's float32 forward ``mean`` case also times the floors
FLOOR_N = 10**6
FLOOR_READ, FLOOR_LOGS = "floor: read inputs (jit)", "floor: two logs (jit)"
#: ``torch``'s backward epsilon (``(1 - x) * x`` is clamped below by it).
EPS = 1e-12


@dataclass
class Competitor:
    backend: str  # "torch" | "numpy" | "jax"
    name: str
    fn: Callable[[], Any] = field(repr=False)
    role: str = ""  # "ref" (case reference), "base" (backend baseline), ""
    #: take part only in the first ``max_repeats`` rounds (sklearn: seconds per call)
    max_repeats: int | None = None

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.name}"


# ----------------------------------------------------------------------- libraries
class Libs:
    """The optional libraries, imported once; a missing one drops its competitors."""

    def __init__(self, threads: int) -> None:
        self.missing: dict[str, str] = {}
        self.torch: Any = self._try("torch")
        if self.torch is not None:
            self.torch.set_num_threads(threads)
        self.jax: Any = self._try("jax")
        if self.jax is not None:
            self.jax.config.update("jax_enable_x64", True)  # float64 arrays
            import jax.numpy as jnp

            self.jnp: Any = jnp
        self.optax: Any = self._try("optax")
        sk = self._try("sklearn.metrics")
        self.log_loss: Any = None if sk is None else sk.log_loss

    def _try(self, name: str) -> Any:
        import importlib

        try:
            return importlib.import_module(name)
        except Exception as e:  # pragma: no cover - depends on the environment
            self.missing[name] = f"{type(e).__name__}: {e}"
            return None

    def versions(self) -> dict[str, str]:
        import importlib.metadata as md
        import platform

        out = {"python": platform.python_version()}
        for dist in (
            "xbce",
            "numpy",
            "torch",
            "jax",
            "jaxlib",
            "optax",
            "scikit-learn",
            "array-api-compat",
            "matplotlib",
        ):
            try:
                out[dist] = md.version(dist)
            except md.PackageNotFoundError:
                out[dist] = "not installed"
        return out


# ---------------------------------------------------------------------------- data
class Data:
    """One (n, dtype)'s arrays in every library (torch tensors share NumPy's memory)."""

    def __init__(self, libs: Libs, arrays: dict[str, np.ndarray]) -> None:
        self.np = arrays
        self.n = arrays["p"].size
        dt = arrays["p"].dtype
        self.np_one = np.asarray(1.0, dt)
        self.np_ones = np.ones(self.n, dt)
        self.torch: dict[str, Any] = {}
        self.jax: dict[str, Any] = {}
        if libs.torch is not None:
            torch = libs.torch
            t = {k: torch.from_numpy(v) for k, v in arrays.items()}
            # leaves for autograd (same memory; requires_grad on separate tensor objects)
            t["p_leaf"] = torch.from_numpy(arrays["p"]).requires_grad_(True)
            t["x_leaf"] = torch.from_numpy(arrays["x"]).requires_grad_(True)
            t["ones"] = torch.from_numpy(self.np_ones)
            self.torch = t
        if libs.jax is not None:
            jnp = libs.jnp
            j = {k: jnp.asarray(v) for k, v in arrays.items()}
            j["one"] = jnp.asarray(1.0, dtype=dt)
            j["ones"] = jnp.asarray(self.np_ones)
            for v in j.values():
                v.block_until_ready()
            self.jax = j


# -------------------------------------------------------------- NumPy hand-written
def np_bce(p: np.ndarray, y: np.ndarray, reduction: str) -> Any:
    """The plain NumPy formula, logs clipped at -100 (as torch and xbce do)."""
    loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
    return loss.mean() if reduction == "mean" else loss


def np_bce_grad(p: np.ndarray, y: np.ndarray, go: np.ndarray, reduction: str) -> Any:
    """Its analytic gradient (torch's eps-clamped form of ``(p - y) / (p (1 - p))``)."""
    if reduction == "mean":
        g = (p - y) / np.maximum((1 - p) * p, p.dtype.type(EPS))
        g /= p.size
        return g
    return go * (p - y) / np.maximum((1 - p) * p, p.dtype.type(EPS))


def np_bcewl(x: np.ndarray, t: np.ndarray, reduction: str) -> Any:
    """``(1 - t) * x - log_sigmoid(x)``, ``log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|))``."""
    loss = (1 - t) * x - (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x))))
    return loss.mean() if reduction == "mean" else loss


def np_bcewl_grad(x: np.ndarray, t: np.ndarray, go: np.ndarray, reduction: str) -> Any:
    """``sigmoid(x) - t`` (times the upstream gradient, over n for the mean)."""
    g = 1 / (1 + np.exp(-x)) - t
    if reduction == "mean":
        g /= x.size
        return g
    return go * g


# -------------------------------------------------------------------------- builders
def build(libs: Libs, data: Data, family: str, reduction: str, mode: str) -> list[Competitor]:
    """Every available competitor for one case, the reference first."""
    comps: list[Competitor] = []
    if libs.torch is not None:
        comps += _torch(libs, data, family, reduction, mode)
    comps += _numpy(libs, data, family, reduction, mode)
    if libs.jax is not None:
        comps += _jax(libs, data, family, reduction, mode)
    return comps


def torch_losses(data: Data, family: str) -> tuple[Any, Any, Any, Any, str]:
    """The family's xbce loss, torch's, the input tensor, its leaf copy and torch's name."""
    import torch.nn.functional as tF

    t = data.torch
    if family == "probs":
        return (xbce.binary_cross_entropy, tF.binary_cross_entropy, t["p"], t["p_leaf"],
                "F.binary_cross_entropy")
    return (xbce.binary_cross_entropy_with_logits, tF.binary_cross_entropy_with_logits, t["x"],
            t["x_leaf"], "F.binary_cross_entropy_with_logits")


def _torch(libs: Libs, data: Data, family: str, r: str, mode: str) -> list[Competitor]:
    ours, theirs, inp, leaf, ref_name = torch_losses(data, family)
    t = data.torch
    y = t["y"]
    compiled = _compiled(libs, data, family, r, mode, ours, inp, leaf, y)
    if mode == "fwd":
        return [
            Competitor("torch", ref_name, partial(theirs, inp, y, reduction=r), "ref"),
            Competitor("torch", "xbce", partial(ours, inp, y, reduction=r)),
            *compiled,
        ]
    ct = None if r == "mean" else t["ones"]
    return [
        Competitor("torch", ref_name + " (autograd)",
                   autograd_call(partial(theirs, reduction=r), leaf, y, ct), "ref"),
        Competitor("torch", "xbce (autograd)",
                   autograd_call(partial(ours, reduction=r), leaf, y, ct)),
        *compiled,
    ]


def autograd_call(loss_fn: Callable[..., Any], leaf: Any, y: Any, ct: Any = None
                  ) -> Callable[[], Any]:
    """A timed forward and backward: ``loss_fn(leaf, y).backward(ct)``, the leaf's
    gradient reset first; returns the loss and the gradient (for the sanity check)."""
    def run() -> Any:
        leaf.grad = None
        loss = loss_fn(leaf, y)
        loss.backward(ct)
        return loss.detach(), leaf.grad

    return run


def torch_formula(family: str, a: Any, b: Any) -> Any:
    """The hand-written torch formula (mean): what a user would compile themselves."""
    import torch

    if family == "probs":
        return (
            (b - 1) * torch.clamp_min(torch.log1p(-a), -100)
            - b * torch.clamp_min(torch.log(a), -100)
        ).mean()
    return ((1 - b) * a - torch.nn.functional.logsigmoid(a)).mean()


def _compiled(
    libs: Libs,
    data: Data,
    family: str,
    r: str,
    mode: str,
    ours: Callable[..., Any],
    inp: Any,
    leaf: Any,
    y: Any,
) -> list[Competitor]:
    """``torch.compile`` (Inductor) of xbce and of the hand-written formula: float32,
    mean, at ``COMPILE_N`` only (each compiles on its first call, the warm-up)."""
    if data.n != COMPILE_N or r != "mean" or data.np["p"].dtype != np.float32:
        return []
    torch = libs.torch

    def make(fn: Callable[..., Any]) -> Callable[[], Any]:
        step = torch.compile(fn, dynamic=False)
        return partial(step, inp, y) if mode == "fwd" else autograd_call(step, leaf, y)

    return [
        Competitor("torch", "formula compiled", make(partial(torch_formula, family))),
        Competitor("torch", "xbce compiled", make(partial(ours, reduction=r))),
    ]


def _numpy(libs: Libs, data: Data, family: str, r: str, mode: str) -> list[Competitor]:
    a = data.np
    y = a["y"]
    go = data.np_one if r == "mean" else data.np_ones
    if family == "probs":
        p = a["p"]
        if mode == "fwd":
            comps = [
                Competitor("numpy", "numpy formula", partial(np_bce, p, y, r), "base"),
                Competitor("numpy", "xbce", partial(xbce.binary_cross_entropy, p, y, reduction=r)),
            ]
            if r == "mean" and libs.log_loss is not None and data.n <= SKLEARN_MAX_N:
                comps.append(
                    Competitor(
                        "numpy", "sklearn log_loss", partial(_log_loss, libs, y, p), max_repeats=3
                    )
                )
            return comps

        def ours() -> Any:
            loss = xbce.binary_cross_entropy(p, y, reduction=r)
            return loss, xbce.binary_cross_entropy_backward(go, p, y, reduction=r)

        def theirs() -> Any:
            return np_bce(p, y, r), np_bce_grad(p, y, go, r)

        return [
            Competitor("numpy", "numpy formula + analytic grad", theirs, "base"),
            Competitor("numpy", "xbce + xbce backward fn", ours),
        ]

    x = a["x"]
    if mode == "fwd":
        return [
            Competitor("numpy", "numpy formula", partial(_quiet, np_bcewl, x, y, r), "base"),
            Competitor(
                "numpy", "xbce", partial(xbce.binary_cross_entropy_with_logits, x, y, reduction=r)
            ),
        ]

    def ours_l() -> Any:
        loss = xbce.binary_cross_entropy_with_logits(x, y, reduction=r)
        return loss, xbce.binary_cross_entropy_with_logits_backward(go, x, y, reduction=r)

    def theirs_l() -> Any:
        with np.errstate(over="ignore"):
            return np_bcewl(x, y, r), np_bcewl_grad(x, y, go, r)

    return [
        Competitor("numpy", "numpy formula + analytic grad", theirs_l, "base"),
        Competitor("numpy", "xbce + xbce backward fn", ours_l),
    ]


def _quiet(fn: Callable[..., Any], *args: Any) -> Any:
    with np.errstate(over="ignore"):
        return fn(*args)


def _log_loss(libs: Libs, y: np.ndarray, p: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return libs.log_loss(y, p)


def _floors(jax: Any, jnp: Any, p: Any, y: Any) -> list[Competitor]:
    """The floor of the work at scale, jitted JAX (one fused pass each): reading both
    inputs (their sums), and the two logs of BCE (``sum(log(p)) + sum(log1p(-p))``).
    They compute no loss: their result is not compared."""
    def read(a: Any, b: Any) -> Any:
        return jnp.sum(a) + jnp.sum(b)

    def logs(a: Any, b: Any) -> Any:
        return jnp.sum(jnp.log(a)) + jnp.sum(jnp.log1p(-a))

    def floor(f: Callable[..., Any]) -> Callable[[], Any]:
        g = jax.jit(f)

        def run() -> None:
            jax.block_until_ready(g(p, y))

        return run

    return [Competitor("jax", FLOOR_READ, floor(read)), Competitor("jax", FLOOR_LOGS, floor(logs))]


def _jax(libs: Libs, data: Data, family: str, r: str, mode: str) -> list[Competitor]:
    jax, jnp = libs.jax, libs.jnp
    j = data.jax
    n = data.n
    y = j["y"]
    ct = j["one"] if r == "mean" else j["ones"]

    def red(loss: Any) -> Any:
        return jnp.mean(loss) if r == "mean" else loss

    if family == "probs":
        inp = j["p"]

        def ours(a: Any, b: Any) -> Any:
            return xbce.binary_cross_entropy(a, b, reduction=r)

        def hand(a: Any, b: Any) -> Any:  # the fused floor
            return red(
                (b - 1) * jnp.maximum(jnp.log1p(-a), -100) - b * jnp.maximum(jnp.log(a), -100)
            )

        def hand_grad(a: Any, b: Any, c: Any) -> Any:
            g = c * (a - b) / jnp.maximum((1 - a) * a, EPS)
            return g / n if r == "mean" else g

        extra: list[tuple[str, Callable[..., Any]]] = []
    else:
        inp = j["x"]

        def ours(a: Any, b: Any) -> Any:
            return xbce.binary_cross_entropy_with_logits(a, b, reduction=r)

        def hand(a: Any, b: Any) -> Any:
            return red((1 - b) * a - jax.nn.log_sigmoid(a))

        def hand_grad(a: Any, b: Any, c: Any) -> Any:
            g = c * (jax.nn.sigmoid(a) - b)
            return g / n if r == "mean" else g

        extra = []
        if libs.optax is not None:
            sbce = libs.optax.losses.sigmoid_binary_cross_entropy
            extra.append(("optax", lambda a, b: red(sbce(a, b))))

    def ready(f: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        def run() -> Any:
            return jax.block_until_ready(f(*args))

        return run

    if mode == "fwd":
        comps = [
            Competitor("jax", "jnp formula jit", ready(jax.jit(hand), inp, y), "base"),
            *(_floors(jax, jnp, inp, y) if family == "probs" and r == "mean" and n >= FLOOR_N
              else []),
            Competitor("jax", "xbce jit", ready(jax.jit(ours), inp, y)),
            # eager: xbce checks values (one host sync), then runs its own jitted core
            Competitor("jax", "xbce eager", ready(ours, inp, y)),
        ]
        comps += [Competitor("jax", f"{k} jit", ready(jax.jit(f), inp, y)) for k, f in extra]
        return comps

    def vjp(loss: Callable[..., Any]) -> Callable[..., Any]:
        def f(a: Any, b: Any, c: Any) -> Any:
            out, pull = jax.vjp(lambda a_: loss(a_, b), a)
            return out, pull(c)[0]

        return jax.jit(f)

    def analytic(a: Any, b: Any, c: Any) -> Any:
        return hand(a, b), hand_grad(a, b, c)

    comps = [
        Competitor(
            "jax", "jnp formula + analytic grad jit", ready(jax.jit(analytic), inp, y, ct), "base"
        ),
        Competitor("jax", "xbce jit(vjp)", ready(vjp(ours), inp, y, ct)),
        Competitor("jax", "jnp formula jit(vjp)", ready(vjp(hand), inp, y, ct)),
    ]
    comps += [Competitor("jax", f"{k} jit(vjp)", ready(vjp(f), inp, y, ct)) for k, f in extra]
    return comps


# --------------------------------------------------------------------------- sanity
def as_numpy(result: Any) -> list[np.ndarray]:
    """A competitor's result as float64 NumPy arrays (loss, and gradient if any)."""
    if isinstance(result, tuple):
        return [a for r in result for a in as_numpy(r)]
    if hasattr(result, "detach"):
        result = result.detach().numpy()
    return [np.asarray(result, dtype=np.float64)]


def agree(result: Any, reference: Any, dtype: str) -> bool:
    got, want = as_numpy(result), as_numpy(reference)
    if len(got) != len(want):
        return False
    rtol = 2e-4 if dtype == "float32" else 1e-9
    for g, w in zip(got, want, strict=True):
        if g.shape != w.shape:
            return False
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        if not np.allclose(g, w, rtol=rtol, atol=rtol * scale + 1e-30):
            return False
        if math.isnan(float(np.sum(g))):
            return False
    return True
