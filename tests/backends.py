"""The backends a test run covers, chosen by one environment variable.

``XBCE_BACKENDS`` is a comma-separated list of backend names (``numpy``, ``torch``,
``jax``, ``dask``, ``array_api_strict``, ``cupy``, ``torch_cuda``, ``jax_gpu``); nox sets
it per session. A backend that is named but cannot be imported, or has no device, is
an error, not a skip. Unset, it means every CPU backend that imports here.

``XBCE_JAX_X64`` chooses JAX's 64-bit mode: ``0`` leaves ``jax_enable_x64`` off, JAX's
default and what most JAX users run (float32 throughout: the JAX backends then have no
float64, and a test that needs it is marked ``x64``, see tests/conftest.py); ``1`` (the
default here, for the sessions and reports that compare float64) switches it on.
``nox -s jax`` runs the suite both ways.

``XBCE_STRICT_API_VERSION`` (e.g. ``2025.12``) runs array-api-strict at that version of
the standard with its strictest flags: no data-dependent shapes, no boolean indexing,
no optional extensions (``nox -s array_api_strict`` sets it to the newest version
array-api-strict supports). Unset, array-api-strict keeps its defaults.

Inputs always start as NumPy arrays (from a seeded NumPy RNG); ``Backend.asarray``
moves them to the backend under test, in the requested dtype, on its device, and
``to_torch`` builds the CPU tensor the reference is computed from. Values are rounded
to the dtype *once*, by torch on the CPU, so every backend sees the same bits.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

CPU_BACKENDS = ("numpy", "torch", "jax", "dask", "array_api_strict")
GPU_BACKENDS = ("cupy", "torch_cuda", "jax_gpu")
ALL_BACKENDS = CPU_BACKENDS + GPU_BACKENDS

TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def _jax_x64() -> bool:
    value = os.environ.get("XBCE_JAX_X64", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"XBCE_JAX_X64 must be 0 or 1, not {value!r}")
    return value == "1"


#: Whether the JAX backends run with ``jax_enable_x64`` on (``XBCE_JAX_X64``).
JAX_X64 = _jax_x64()

#: The standard's version array-api-strict runs at, strictest flags (``XBCE_STRICT_API_VERSION``)
STRICT_API_VERSION = os.environ.get("XBCE_STRICT_API_VERSION", "").strip() or None


def _strictest_flags() -> dict[str, Any]:
    """Set array-api-strict's strictest flags at ``STRICT_API_VERSION``; return its flags."""
    strict = importlib.import_module("array_api_strict")
    if STRICT_API_VERSION is not None:
        strict.set_array_api_strict_flags(
            api_version=STRICT_API_VERSION,
            boolean_indexing=False,
            data_dependent_shapes=False,
            enabled_extensions=(),
        )
        flags = strict.get_array_api_strict_flags()
        assert flags["api_version"] == STRICT_API_VERSION, flags
        assert not flags["boolean_indexing"], flags
        assert not flags["data_dependent_shapes"], flags
        assert not flags["enabled_extensions"], flags
    return dict(strict.get_array_api_strict_flags())


def rounded(values: Any, dtype: str) -> torch.Tensor:
    """``values`` rounded once to ``dtype`` (round-to-nearest-even), as a CPU tensor."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(TORCH_DTYPES[dtype])


@dataclass
class Backend:
    name: str
    xp: Any
    dtypes: tuple[str, ...]
    lazy: bool = False
    autodiff: str | None = None  # "torch" or "jax"
    device: Any = None
    #: XLA on CPU flushes subnormal inputs and results to zero (shared/README.md)
    flushes_subnormals: bool = False
    _mod: Any = field(default=None, repr=False)

    def flushes(self, dtype: str) -> bool:
        """Whether ``dtype`` arithmetic flushes subnormals here: float32/float64 (and
        bfloat16, computed in float32) under XLA on the CPU; float16 keeps them (it is
        rounded from float32)."""
        return self.flushes_subnormals and dtype != "float16"

    def asarray(self, values: Any, dtype: str) -> Any:
        """NumPy/array-like values, rounded by torch to ``dtype``, on this backend."""
        if dtype not in self.dtypes and self.name in ("jax", "jax_gpu"):
            # with x64 off, jnp.asarray would silently make float32 of float64 data
            raise AssertionError(
                f"{self.name} has no {dtype} with jax_enable_x64 off (XBCE_JAX_X64=0): "
                "mark the test @pytest.mark.x64 (it then runs in the x64 run)"
            )
        t = values if isinstance(values, torch.Tensor) else rounded(values, dtype)
        t = t.to(TORCH_DTYPES[dtype])
        if self.name in ("torch", "torch_cuda"):
            return t.clone().to(self.device)
        if dtype == "bfloat16":
            import jax.numpy as jnp  # only JAX has bfloat16 besides torch

            return jax_put(jnp.asarray(t.float().numpy()).astype(jnp.bfloat16), self.device)
        host = t.numpy()
        if self.name == "jax" or self.name == "jax_gpu":
            import jax.numpy as jnp

            return jax_put(jnp.asarray(host), self.device)
        if self.name == "dask":
            import dask.array as da

            return da.from_array(host, chunks=max(1, host.shape[0] // 2) if host.ndim else ())
        if self.name == "array_api_strict":
            return self.xp.asarray(host)
        if self.name == "cupy":
            return self.xp.asarray(host)
        return host.copy()

    def to_torch(self, a: Any) -> torch.Tensor:
        """A backend array back on the CPU as a torch tensor (exact, any dtype)."""
        if self.name in ("torch", "torch_cuda"):
            return a.detach().cpu()
        if self.name == "dask":
            a = a.compute()
        if self.name == "cupy":
            a = a.get()
        if self.name == "array_api_strict":
            a = np.asarray(a._array)
        if self.name in ("jax", "jax_gpu"):
            import jax.numpy as jnp

            if a.dtype == jnp.bfloat16:
                return torch.as_tensor(np.array(a.astype(jnp.float32))).to(torch.bfloat16)
        return torch.as_tensor(np.array(a))

    def is_native(self, a: Any) -> bool:
        """Whether ``a`` belongs to this backend's namespace (and device)."""
        from array_api_compat import array_namespace, device

        if array_namespace(a) is not self.xp:
            return False
        return self.device is None or str(device(a)) == str(self.device)


def jax_put(a: Any, device: Any) -> Any:
    import jax

    return a if device is None else jax.device_put(a, device)


def load(name: str) -> Backend:
    """Import a backend by name; raises when it was asked for but is unavailable."""
    from array_api_compat import array_namespace

    full = ("float16", "bfloat16", "float32", "float64")
    std = ("float16", "float32", "float64")
    if name == "numpy":
        return Backend(name, array_namespace(np.empty(0)), std)
    if name == "torch":
        return Backend(name, array_namespace(torch.empty(0)), full, autodiff="torch",
                       device=torch.device("cpu"))
    if name == "torch_cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("XBCE_BACKENDS asks for torch_cuda but torch sees no CUDA GPU")
        return Backend(name, array_namespace(torch.empty(0)), full, autodiff="torch",
                       device=torch.device("cuda"))
    if name in ("jax", "jax_gpu"):
        jax = importlib.import_module("jax")
        jax.config.update("jax_enable_x64", JAX_X64)
        import jax.numpy as jnp

        dev = None
        if name == "jax_gpu":
            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            if not gpus:
                raise RuntimeError("XBCE_BACKENDS asks for jax_gpu but JAX sees no GPU")
            dev = gpus[0]
        return Backend(name, jnp, full if JAX_X64 else ("float16", "bfloat16", "float32"),
                       autodiff="jax", device=dev, flushes_subnormals=True)
    if name == "dask":
        da = importlib.import_module("dask.array")
        return Backend(name, array_namespace(da.empty(0)), std, lazy=True)
    if name == "array_api_strict":
        strict = importlib.import_module("array_api_strict")
        _strictest_flags()
        return Backend(name, strict, ("float32", "float64"))
    if name == "cupy":
        cp = importlib.import_module("cupy")
        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("XBCE_BACKENDS asks for cupy but there is no CUDA device")
        return Backend(name, array_namespace(cp.empty(0)), std)
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(ALL_BACKENDS)}")


def selected() -> list[str]:
    env = os.environ.get("XBCE_BACKENDS", "").strip()
    if env:
        names = [n.strip() for n in env.split(",") if n.strip()]
        for n in names:
            if n not in ALL_BACKENDS:
                raise ValueError(f"XBCE_BACKENDS: unknown backend {n!r}")
        return names
    found = []
    for n in CPU_BACKENDS:
        try:
            load(n)
        except ImportError:
            continue
        found.append(n)
    return found


#: The backends this test run covers (``XBCE_BACKENDS``).
BACKENDS = selected()

#: array-api-strict's flags for this run, set before any test makes an array
STRICT_FLAGS = _strictest_flags() if "array_api_strict" in BACKENDS else None
