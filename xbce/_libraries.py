"""Arguments of one array library: NumPy arrays and Python scalars join the other one.

As ``jax.numpy`` functions accept NumPy arrays, xbce accepts NumPy arrays and Python
scalars (``pos_weight=2.0``) next to one other library's arrays and converts them to
that library, on the device of its first array. NumPy arrays keep their dtype (then
PyTorch's dtype rules apply, as if ``torch.from_numpy`` had been passed); a Python
scalar, which PyTorch would treat as a wrapped number, takes the dtype it combines
with: the target's (for ``weight``, ``pos_weight``, ``grad_output``; the input's when
the target is not floating). Arrays of two different libraries other than NumPy (say
torch and JAX) are a ``TypeError`` naming both.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ._compat import array_namespace, device, is_numpy_namespace

Array = Any
Result = TypeVar("Result")

_SCALARS = (bool, int, float)


def library(xp: Any) -> str:
    """A namespace's library in plain words: ``torch``, ``jax``, ``numpy``, ``dask``..."""
    name = str(getattr(xp, "__name__", xp)).removeprefix("array_api_compat.")
    return name.split(".")[0]


def _is_array(a: object) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype")


def one_library(
    input: Array, target: Array, weight: Array | None = None, pos_weight: Array | None = None,
    grad_output: Array | None = None,
) -> tuple[Array, Array, Array | None, Array | None, Array | None]:
    """The five arguments, converted to one library (see the module docstring).

    Anything that is neither an array nor a Python scalar is returned as it is (the
    argument checks reject it afterwards)."""
    named = {"input": input, "target": target, "weight": weight, "pos_weight": pos_weight,
             "grad_output": grad_output}
    kind = type(input)
    if all(a is None or type(a) is kind for a in named.values()):
        return input, target, weight, pos_weight, grad_output  # the common case: nothing to do
    spaces: dict[str, Any] = {}
    owners: dict[str, list[str]] = {}
    first: dict[str, Array] = {}
    for name, a in named.items():
        if a is None or isinstance(a, _SCALARS) or not _is_array(a):
            continue
        try:
            xp = array_namespace(a)
        except TypeError:
            continue  # not an array library array-api-compat knows: the checks say so
        lib = library(xp)
        spaces.setdefault(lib, xp)
        owners.setdefault(lib, []).append(name)
        first.setdefault(lib, a)
    others = [lib for lib, xp in spaces.items() if not is_numpy_namespace(xp)]
    if len(others) > 1:
        described = " and ".join(f"{lib} ({', '.join(owners[lib])})" for lib in others)
        raise TypeError(
            f"arrays from different libraries: {described}. Pass arrays of one library "
            "(NumPy arrays and Python scalars are converted to the other library)"
        )
    if others:
        lib = others[0]
    elif spaces:
        lib = next(iter(spaces))  # NumPy (with Python scalars)
    else:
        return input, target, weight, pos_weight, grad_output
    xp, like = spaces[lib], first[lib]
    where = device(like)
    if lib != "numpy":
        for name in owners.get("numpy", ()):
            named[name] = xp.asarray(named[name], device=where)
    floating = [
        a.dtype
        for a in (named["target"], named["input"])
        if _is_array(a) and _floating(a, xp)
    ]
    scalar_dtype = floating[0] if floating else None
    for name, a in named.items():
        if isinstance(a, _SCALARS) and name != "input":
            named[name] = xp.asarray(float(a), dtype=scalar_dtype, device=where)
    return (named["input"], named["target"], named["weight"], named["pos_weight"],
            named["grad_output"])


def _floating(a: Array, xp: Any) -> bool:
    try:
        return bool(xp.isdtype(a.dtype, "real floating"))
    except (TypeError, ValueError):  # not this library's dtype: not one to follow
        return False


def returns_arrays(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Make a NumPy scalar result (NumPy's ops on 0-d arrays) a 0-d NumPy array.

    Only calls whose first argument is a NumPy array look at the result: other
    libraries never return NumPy scalars, and a torch result must pass through
    untouched (``torch.compile`` would otherwise trace this wrapper)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Result:
        first = args[0] if args else next(iter(kwargs.values()), None)
        if type(first).__module__ != "numpy":
            return fn(*args, **kwargs)
        out = fn(*args, **kwargs)
        numpy = sys.modules["numpy"]
        if isinstance(out, numpy.generic):
            return numpy.asarray(out)  # type: ignore[no-any-return]
        return out

    return wrapper
