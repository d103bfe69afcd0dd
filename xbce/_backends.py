"""Which backend computes a call: one small object per library (as in einops'
``_backends``), made once and cached by array type; :func:`of` picks it once per call.

Each backend owns its library's whole call path, which runs one way, down: the argument
checks (``_checks``), then the formulas (``_formulas``) on the primitives it chose once
(its ``ops``), or blocks of them (``_blocks``). Nothing calls back into the backend.
Each lives in its own module, imported when its library's arrays first arrive:

=========================  =========================================================
backend                    its call path
=========================  =========================================================
``_numpy.NumPy``           checks with values, the formulas; large arrays in blocks on
                           a thread pool; NumPy's own primitives where they are faster
                           or closer to glibc's; 0-d results are arrays
``_torch.Torch``           autograd, ``torch.compile``, ``torch.func``, autocast; large
                           CPU tensors in blocks
``_jax.Jax``               ``jax.custom_jvp`` with torch's gradients, ``jit``, checkify
``_dask.Dask``             one ``map_blocks`` of checked NumPy chunk kernels
``_array_api.ArrayAPI``    any other library array-api-compat knows (CuPy,
                           array-api-strict, ...): checks (values unless
                           array-api-compat calls the arrays lazy), the formulas in one go
=========================  =========================================================

The explicit ``*_backward`` functions give gradients on every backend. NumPy arrays and
Python scalars that join another library's arrays are converted to it
(:func:`one_library`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from . import _checks
from ._compat import (
    array_namespace,
    device,
    is_dask_namespace,
    is_jax_namespace,
    is_numpy_namespace,
    is_torch_namespace,
)
from ._typing import Array, Backend, Call, Namespace

_SCALARS = (bool, int, float)


# ------------------------------------------------------------- picking a backend
#: the backend of each array type whose type alone decides its library
_BY_TYPE: dict[type, Backend] = {}
_torch: Backend | None = None


def _make(xp: Namespace) -> Backend:
    """The backend of ``xp``'s arrays, its module imported on first use."""
    if is_numpy_namespace(xp):
        return _module("_numpy").backend()  # type: ignore[no-any-return]
    if is_torch_namespace(xp):
        return torch_backend()
    if is_jax_namespace(xp):
        return _module("_jax").Jax()  # type: ignore[no-any-return]
    if is_dask_namespace(xp):
        return _module("_dask").Dask(xp)  # type: ignore[no-any-return]
    return _module("_array_api").ArrayAPI(xp)  # type: ignore[no-any-return]


def _module(name: str) -> Any:
    return importlib.import_module(f".{name}", __package__)


def torch_backend() -> Backend:
    """The backend of torch tensors (a global, not a ``functools.cache``: Dynamo warns
    about those in the functions it traces)."""
    global _torch
    if _torch is None:
        _torch = _module("_torch").Torch()
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
    """A namespace's library in plain words (``torch``, ``jax``, ``dask``...), for
    messages: the name after ``array_api_compat.``, installed or vendored."""
    return str(getattr(xp, "__name__", xp)).rsplit("array_api_compat.", 1)[-1].split(".")[0]


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
    found: dict[Namespace, list[int]] = {}  # each namespace: its arrays' indices
    for i, a in enumerate(args):
        if a is None or not _checks.is_array(a):  # Python scalars have no dtype
            continue
        try:
            found.setdefault(array_namespace(a), []).append(i)
        except TypeError:
            continue  # not an array library array-api-compat knows: the checks say so
    numpy = [xp for xp in found if is_numpy_namespace(xp)]
    others = [xp for xp in found if not is_numpy_namespace(xp)]
    if len(others) > 1:
        described = " and ".join(
            f"{library(xp)} ({', '.join(_NAMES[i] for i in found[xp])})" for xp in others)
        raise TypeError(
            f"arrays from different libraries: {described}. Pass arrays of one library "
            "(NumPy arrays and Python scalars are converted to the other library)"
        )
    if not found:
        return args
    xp = (others or numpy)[0]
    where, out = device(args[found[xp][0]]), list[Array](args)
    for i in found[numpy[0]] if others and numpy else ():
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
