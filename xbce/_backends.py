"""Which backend computes a call, and the backends of the array API libraries.

A backend is one small object per library (as in einops' ``_backends``), made once and
cached by array type; :func:`of` picks it once per call. Each owns its library's whole
call path, which runs one way, down: the argument checks (``_checks``), then the
formulas (``_formulas``) on the primitives it chose once (its ``ops``), or blocks of them
(``_blocks``). Nothing calls back into the backend.

=================  ===================================================================
backend            its call path
=================  ===================================================================
:class:`ArrayAPI`  any library array-api-compat knows (CuPy, array-api-strict, ...):
                   checks (values unless array-api-compat calls the arrays lazy), the
                   formulas in one go; gradients by the explicit ``*_backward``
:class:`NumPy`     as ``ArrayAPI``, large arrays in blocks on a thread pool, NumPy's own
                   primitives where they are faster or closer to glibc's; 0-d results
                   are arrays
``_torch.Torch``   autograd, ``torch.compile``, ``torch.func``, autocast; large CPU
                   tensors in blocks (imported for torch tensors only)
``_jax.Jax``       ``jax.custom_jvp`` with torch's gradients, ``jit``, checkify
                   (imported for JAX arrays only)
``_dask.Dask``     one ``map_blocks`` of checked NumPy chunk kernels (imported for Dask
                   arrays only)
=================  ===================================================================

NumPy arrays and Python scalars that join another library's arrays are converted to it
(:func:`one_library`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from . import _blocks, _checks, _private
from . import _formulas as formulas
from ._compat import (
    array_namespace,
    device,
    is_dask_namespace,
    is_jax_namespace,
    is_lazy_array,
    is_numpy_namespace,
    is_torch_namespace,
)
from ._typing import Array, Backend, Call, DType, Namespace

_NO_CONTEXT = contextlib.nullcontext()
_SCALARS = (bool, int, float)


def _quiet() -> contextlib.AbstractContextManager[object]:
    """Silences NumPy's warnings of intended values (``log(0)``, ``0 * inf``), which
    libraries built on NumPy (array-api-strict) raise too."""
    np = sys.modules.get("numpy")
    if np is None:
        return _NO_CONTEXT
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")  # type: ignore[no-any-return]


class ArrayAPI:
    """An array API library (CuPy, array-api-strict, ...): values are read unless
    array-api-compat calls an array lazy, the formulas run in one go, and there is no
    autodiff (the explicit ``*_backward`` functions give gradients)."""

    torch_wording = False
    #: whether the checks compare the arrays' devices (torch's message)
    checks_devices = True
    grad_enabled: Callable[[], bool] | None = None  # no autodiff records a weight's grad

    def __init__(self, xp: Namespace) -> None:
        self.ops = formulas.Ops(xp)

    def __repr__(self) -> str:
        return f"<xbce backend {type(self).__name__}>"

    def loss(self, call: Call) -> Array:
        if is_lazy_array(call.input) or is_lazy_array(call.target):
            call = call._replace(lazy=True)
        _checks.arguments(call, self)
        with _quiet():
            return formulas.loss(call, self.ops)

    def gradient(self, call: Call) -> Array:
        _checks.arguments(call, self)
        with _quiet():
            return formulas.gradient(call, self.ops)


class NumPy(ArrayAPI):
    """NumPy: values always read, on the host; arrays of 2**18 elements or more in
    blocks on a thread pool (``_blocks``); 0-d results are arrays, never NumPy scalars.

    Its primitives: ufuncs and their ``reduce`` called directly (the compat wrappers
    cost more than the operation at small sizes); a float32 ``log`` evaluated in
    float64 and rounded once (equal to glibc's ``logf``, which torch's BCE kernel calls,
    in 99.5% of float32 inputs, where NumPy's SIMD ``logf`` is in 90.7%; ~12% more time
    per BCE element); and where NumPy lacks AVX-512, whose float32 ``log1p`` is glibc's
    scalar ``log1pf`` (torch's bits, ~7x slower per element than NumPy's vectorised
    ``log``), from 4096 elements on the float64 ``log(1 + u)`` rounded once (<= 1 ulp
    from ``log1pf``; 1.3x faster at 2**14, 1.9x at 2**16). With AVX-512, NumPy's own
    vectorised ``log1p`` (<= 1.2 ulp) is 3x faster than that detour."""

    checks_devices = False

    def __init__(self, xp: Namespace) -> None:
        np = sys.modules["numpy"]
        whole = {"axis": None}
        ops = formulas.Ops(
            xp, host=True, minimum=np.minimum, clamp_min=np.maximum, clamp_max=np.minimum,
            sum=partial(np.add.reduce, **whole), min=partial(np.minimum.reduce, **whole),
            max=partial(np.maximum.reduce, **whole),
        )
        ops.log = ops.log_via_float64
        if not numpy_has_vector_log1p():
            ops.log1p = ops.log1p_via_float64
        self.ops = ops
        self.threads = _blocks.cores()
        self._np = np  # NumPy's ops on 0-d arrays give scalars: made 0-d arrays again

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by name (Dask sends it to its workers with each chunk task)."""
        return (numpy_backend, ())

    def loss(self, call: Call) -> Array:
        _checks.arguments(call, self)
        x, loss = call.input, call.loss
        if x.size < _blocks.BLOCKED_FROM:
            with _quiet():
                out = formulas.loss(call, self.ops)
        else:
            out = self._blocks(loss.elementwise, x, call[1:5], loss.dtype(x, call.target),
                               call.reduction)
        return self._np.asarray(out) if isinstance(out, self._np.generic) else out

    def gradient(self, call: Call) -> Array:
        _checks.arguments(call, self)
        like = call.input if call.wrt == "input" else call.target
        if like.size < _blocks.BLOCKED_FROM:
            with _quiet():
                out = formulas.gradient(call, self.ops)
        else:
            count = formulas.mean_count(call.reduction, like)
            fn = partial(formulas.elementwise_gradient, call.loss, str(call.wrt), count)
            out = self._blocks(fn, like, (call.grad, *call[1:5]), like.dtype, formulas.NONE)
        return self._np.asarray(out) if isinstance(out, self._np.generic) else out

    def _blocks(self, fn: Callable[..., Array], like: Array, arrays: tuple[Array | None, ...],
                dtype: DType, reduction: str) -> Array:
        return _blocks.reduced(fn, like, arrays, dtype, reduction, self.ops,
                               threads=self.threads, contiguous=_c_contiguous, quiet=_quiet)


def _c_contiguous(a: Array) -> bool:
    return bool(a.flags["C_CONTIGUOUS"])


#: whether NumPy dispatches float32 ``log1p`` to its AVX-512 (SVML) loop (a name
#: tests replace to try both paths)
numpy_has_vector_log1p = _private.numpy_has_avx512


# ------------------------------------------------------------- picking a backend
#: the backend of each array type whose type alone decides its library
_BY_TYPE: dict[type, Backend] = {}
_torch: Backend | None = None


def _make(xp: Namespace) -> Backend:
    if is_numpy_namespace(xp):
        return numpy_backend()
    if is_dask_namespace(xp):
        from ._dask import Dask  # imported only for Dask arrays

        return Dask(xp)
    if is_jax_namespace(xp):
        from ._jax import Jax  # imported only for JAX arrays

        return Jax()
    if is_torch_namespace(xp):
        return torch_backend()
    return ArrayAPI(xp)


def numpy_backend() -> NumPy:
    """The backend of NumPy arrays (made on first use)."""
    import numpy as np

    backend = _BY_TYPE.get(np.ndarray)
    if not isinstance(backend, NumPy):
        backend = _BY_TYPE[np.ndarray] = NumPy(array_namespace(np.empty(0)))
    return backend


def torch_backend() -> Backend:
    global _torch
    if _torch is None:
        from ._torch import Torch  # imported only for torch tensors

        _torch = Torch()
    return _torch


def of(call: Call) -> tuple[Backend, Call]:
    """The call's backend, and the call with its arrays in that backend's library.

    Torch tensors are recognised first with ``isinstance`` (which ``torch.compile``
    traces); other arrays by type, their backend cached. Arguments of mixed types go
    through :func:`one_library`, which converts NumPy arrays and Python scalars."""
    args = (call.input, call.target, call.weight, call.pos_weight, call.grad)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(args[0], torch.Tensor):
        for a in args:
            if a is not None and not isinstance(a, torch.Tensor):
                break
        else:
            return _torch or torch_backend(), call
    kind = type(args[0])
    same = True
    for a in args:
        if a is not None and type(a) is not kind:
            same = False
    if same:
        known = _BY_TYPE.get(kind)
        if known is not None:
            return known, call
    else:
        args = one_library(*args)
        call = call._replace(input=args[0], target=args[1], weight=args[2],
                             pos_weight=args[3], grad=args[4])
    _checks.arrays(input=args[0], target=args[1], weight=args[2], pos_weight=args[3],
                   grad_output=args[4])
    backend = _make(array_namespace(*args))
    if same:
        _BY_TYPE[kind] = backend
    return backend, call


# ------------------------------------------------------ arguments of one library
def library(xp: Namespace) -> str:
    """A namespace's library in plain words: ``torch``, ``jax``, ``numpy``, ``dask``..."""
    for lib, is_lib in _LIBRARIES:
        if is_lib(xp):
            return lib
    # a compat namespace, installed or vendored (``mylib._vendored.array_api_compat.cupy``)
    name = str(getattr(xp, "__name__", xp)).rsplit("array_api_compat.", 1)[-1]
    return name.split(".")[0]


_LIBRARIES = (("numpy", is_numpy_namespace), ("torch", is_torch_namespace),
              ("jax", is_jax_namespace), ("dask", is_dask_namespace))


def one_library(*args: Array) -> tuple[Array, ...]:
    """The arguments (input, target, weight, pos_weight, grad_output) in one library:
    NumPy arrays and Python scalars join the other one.

    As ``jax.numpy`` functions accept NumPy arrays, xbce accepts NumPy arrays and
    Python scalars (``pos_weight=2.0``) next to one other library's arrays and converts
    them to that library, on the device of its first array. NumPy arrays keep their
    dtype (then PyTorch's dtype rules apply, as if ``torch.from_numpy`` had been
    passed), and so do NumPy scalars (``np.float64`` too, although it is a ``float``:
    they are 0-d arrays of their dtype); a Python scalar, which PyTorch would treat as
    a wrapped number, takes the dtype it combines with: the target's (for ``weight``,
    ``pos_weight``, ``grad_output``; the input's when the target is not floating). Arrays of two
    different libraries other than NumPy (say torch and JAX) are a ``TypeError`` naming
    both. Anything that is neither an array nor a Python scalar is returned as it is
    (the argument checks reject it afterwards)."""
    found: dict[str, tuple[Namespace, Array, list[int]]] = {}  # library: xp, first, indices
    for i, a in enumerate(args):
        if a is None or not _checks.is_array(a):  # Python scalars have no dtype
            continue
        try:
            xp = array_namespace(a)
        except TypeError:
            continue  # not an array library array-api-compat knows: the checks say so
        found.setdefault(library(xp), (xp, a, []))[2].append(i)
    others = [lib for lib, (xp, _, _) in found.items() if not is_numpy_namespace(xp)]
    if len(others) > 1:
        described = " and ".join(
            f"{lib} ({', '.join(_NAMES[i] for i in found[lib][2])})" for lib in others)
        raise TypeError(
            f"arrays from different libraries: {described}. Pass arrays of one library "
            "(NumPy arrays and Python scalars are converted to the other library)"
        )
    if not found:
        return args
    xp, like, _ = found[others[0] if others else next(iter(found))]
    where, out = device(like), list[Array](args)
    for i in found["numpy"][2] if others and "numpy" in found else ():
        out[i] = _joined(xp, out[i], where)
    floating = [a.dtype for a in (out[1], out[0]) if _checks.is_array(a) and _floating(a, xp)]
    for i in range(1, len(out)):  # a Python scalar input stays: the checks refuse it
        if _python_scalar(out[i]):
            dtype = floating[0] if floating else None
            out[i] = xp.asarray(float(out[i]), dtype=dtype, device=where)
    return tuple(out)


#: the arguments' names, in the order :func:`one_library` takes them
_NAMES = ("input", "target", "weight", "pos_weight", "grad_output")


def _joined(xp: Namespace, a: Array, where: Any) -> Array:
    """A NumPy array (or scalar) in ``xp``'s library on ``where``. A read-only array is
    copied first: torch would share its memory (and warns that it cannot protect it;
    ``copy=True`` fails for meta tensors). NumPy scalars are copied by every library."""
    if isinstance(a, sys.modules["numpy"].ndarray) and not a.flags.writeable:
        a = a.copy()
    return xp.asarray(a, device=where)


def _python_scalar(a: object) -> bool:
    """A ``bool``, ``int`` or ``float`` that is not a NumPy scalar (``np.float64`` is a
    ``float``): NumPy scalars keep their dtype, as 0-d arrays (``torch.from_numpy``)."""
    return isinstance(a, _SCALARS) and not _checks.is_array(a)


def _floating(a: Array, xp: Namespace) -> bool:
    try:
        return bool(xp.isdtype(a.dtype, "real floating"))
    except (TypeError, ValueError):  # not this library's dtype: not one to follow
        return False
