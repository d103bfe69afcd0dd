"""The backend policy: everything xbce decides by the library an array comes from.

One small class per kind of library (as einops' ``_backends``), made once and cached
by array type; :func:`of` picks it once per call and the call hands that one object
down. It answers every backend question the rest of xbce asks:

=============  ==============  ==============  ===================  =======================
class          values lazy?    0-d read free?  evaluation           the call runs
=============  ==============  ==============  ===================  =======================
``Backend``    array-api-      no              in one go            checks, formula, value
(CuPy, array-  compat's                                             check on the loss
api-strict..)  ``is_lazy``
``NumPy``      never           yes             blocks on a thread   as ``Backend``; 0-d
                                               pool (large arrays)  results are arrays
``Dask``       always          no              ``map_blocks`` of    checks; each chunk task
                                               chunk kernels        checks its values
``Torch``      ``torch.func``  CPU tensors     blocks (large CPU    the formula through the
               and meta                        tensors)             torch adapter (autograd,
               tensors                                              ``torch.compile``)
``Jax``        tracers         no              one go, ``jit``      the formula through the
                                               when exact           JAX adapter
=============  ==============  ==============  ===================  =======================

``Dask`` lives in ``_dask`` (imported for Dask arrays only). ``backend.ops`` is the
namespace the formulas get: the library's array API namespace, or a stand-in with faster
or more exact primitives (:class:`NumPyNamespace` here, ``TorchNamespace`` and
``JaxNamespace`` in the adapters). Together with ``_compat`` (the array-api-compat shim),
``_dask``, ``_torch_adapter`` and ``_jax_adapter``, this is the only module of the
computation that names a library.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from . import _checks, _evaluate, _private
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

Array = Any
Elementwise = Callable[..., Array]

_NO_CONTEXT = contextlib.nullcontext()
_SCALARS = (bool, int, float)


# --------------------------------------------------------------------- the policy
class Backend:
    """An array API library (CuPy, array-api-strict, ...): values are read unless
    array-api-compat calls an array lazy, formulas are evaluated in one go, and there
    is no autodiff (the explicit ``*_backward`` functions give gradients)."""

    #: messages in torch's words (its dtype names and broadcasting texts)
    torch_wording = False
    #: threads that blocks run on (:func:`_evaluate.blocked`)
    threads = 1
    #: whether the checks compare the arrays' devices (torch's message): not where the
    #: library has one device (NumPy, Dask) or its own rules (torch raises torch's
    #: error itself; JAX moves uncommitted arrays)
    checks_devices = True

    def __init__(self, xp: Any) -> None:
        self.xp = xp  #: the library's array API namespace
        self.ops = xp  #: the namespace the formulas get

    def __repr__(self) -> str:
        return f"<xbce backend {type(self).__name__}>"

    # ------------------------------------------------------------ what arrays are
    def lazy(self, x: Array, t: Array) -> bool:
        """Whether xbce must not read the values (tracers, task graphs, fake tensors)."""
        return bool(is_lazy_array(x) or is_lazy_array(t))

    def on_host(self, x: Array) -> bool:
        """Whether reading a 0-d value costs no device synchronisation."""
        return False

    def blockable(self, like: Array) -> bool:
        """Whether the formula on ``like`` runs block by block (``_evaluate``)."""
        return False

    def contiguous(self, a: Array) -> bool:
        """Whether ``a`` is C-contiguous (blocks then cut its flat view)."""
        return False

    def quiet(self) -> contextlib.AbstractContextManager[Any]:
        """Silences the warnings of intended values (``log(0)``, ``0 * inf``): NumPy's,
        which libraries built on NumPy (array-api-strict) raise too."""
        np = sys.modules.get("numpy")
        if np is None:
            return _NO_CONTEXT
        return np.errstate(divide="ignore", invalid="ignore", over="ignore")  # type: ignore[no-any-return]

    def refuse_gradients(self, op: str, weight: Array | None, pos_weight: Array | None) -> None:
        """Raise where the library records gradients of a weight torch does not
        differentiate (only torch does)."""

    # ---------------------------------------------------------------- the calls
    def loss(
        self, logits: bool, x: Array, t: Array, w: Array | None, p: Array | None, reduction: str
    ) -> Array:
        """Either loss: every check that reads no values, the formula, then BCE's value
        check (which rides on the computed loss: see :func:`_checks.unit_interval`)."""
        lazy = self.lazy(x, t)
        # BCE: torch checks the values before it refuses a weight (only then read here)
        values = None if logits or lazy else partial(self.unit_interval, x, t)
        _checks.arguments(logits, x, t, reduction, self, weight=w, pos_weight=p, values=values)
        if logits or lazy:
            return self.evaluate(logits, x, t, w, p, reduction, lazy)
        if reduction == formulas.NONE:  # no sum to ride on: check the values first
            self.unit_interval(x, t)
            return self.evaluate(logits, x, t, w, p, reduction, lazy)
        out = self.evaluate(logits, x, t, w, p, reduction, lazy)
        self.unit_interval(x, t, reduced=out)  # raises before returning
        return out

    def gradient(
        self,
        logits: bool,
        which: str,
        g: Array,
        x: Array,
        t: Array,
        w: Array | None,
        p: Array | None,
        reduction: str,
    ) -> Array:
        """An explicit ``*_backward`` function: the checks, then the gradient chain."""
        _checks.arguments(logits, x, t, reduction, self, weight=w, pos_weight=p, grad_output=g)
        return _evaluate.gradient(self, logits, which, g, x, t, w, p, reduction)

    def evaluate(
        self,
        logits: bool,
        x: Array,
        t: Array,
        w: Array | None,
        p: Array | None,
        reduction: str,
        lazy: bool,
    ) -> Array:
        """The loss of checked arguments (an autodiff adapter wraps it in its own)."""
        fn = partial(formulas.elementwise_loss, logits, lazy=lazy)
        return self.reduced(fn, x, (x, t, w, p), t.dtype if logits else x.dtype, reduction)

    def unit_interval(self, x: Array, t: Array, *, reduced: Array | None = None) -> None:
        """BCE's value check of eager arrays (:func:`_checks.unit_interval`)."""
        _checks.unit_interval(x, t, self, reduced=reduced)

    # --------------------------------------------------------------- evaluation
    def elementwise(
        self, fn: Elementwise, like: Array, arrays: tuple[Array | None, ...], dtype: Any
    ) -> Array:
        """``fn(*arrays, xp=self.ops)``: the full elementwise result."""
        if self.blockable(like):
            return _evaluate.blocked(self, fn, like, arrays, dtype, formulas.NONE)
        with self.quiet():
            return fn(*arrays, xp=self.ops)

    def reduced(
        self,
        fn: Elementwise,
        like: Array,
        arrays: tuple[Array | None, ...],
        dtype: Any,
        reduction: str,
    ) -> Array:
        """``reduce(fn(*arrays, xp=self.ops), reduction)``, without a full-size
        intermediate where blocks are used."""
        if self.blockable(like):
            return _evaluate.blocked(self, fn, like, arrays, dtype, reduction)
        with self.quiet():
            return formulas.reduce(fn(*arrays, xp=self.ops), reduction, xp=self.ops)


class NumPy(Backend):
    """NumPy: values always readable, on the host; large arrays in blocks on a thread
    pool; the formulas get :class:`NumPyNamespace`; 0-d results are arrays."""

    checks_devices = False

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        self.ops = NumPyNamespace(xp, detour=not _numpy_has_vector_log1p())
        self.threads = _evaluate.cores()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by name (Dask sends it to its workers with each chunk task)."""
        return (numpy_backend, ())

    def lazy(self, x: Array, t: Array) -> bool:
        return False

    def on_host(self, x: Array) -> bool:
        return True

    def blockable(self, like: Array) -> bool:
        return _evaluate.large(like)

    def contiguous(self, a: Array) -> bool:
        return bool(a.flags["C_CONTIGUOUS"])

    def loss(self, *args: Any) -> Array:
        return _zero_d(super().loss(*args))

    def gradient(self, *args: Any) -> Array:
        return _zero_d(super().gradient(*args))

    def unit_interval(self, x: Array, t: Array, *, reduced: Array | None = None) -> None:
        """:func:`_checks.unit_interval` with NumPy's own methods, whose 0-d results are
        read for free; only a failure takes the general path (to find the message)."""
        np = self.ops._np
        low, high = np.minimum.reduce, np.maximum.reduce
        if x.size == 0 or (low(t, None) >= 0 and high(t, None) <= 1 and (
            reduced == reduced if reduced is not None else low(x, None) >= 0 and high(x, None) <= 1
        )):
            return
        _checks.unit_interval(x, t, self, reduced=reduced)


def _zero_d(out: Array) -> Array:
    """A NumPy scalar (NumPy's ops on 0-d arrays give them) as a 0-d array."""
    numpy = sys.modules["numpy"]
    return numpy.asarray(out) if isinstance(out, numpy.generic) else out


#: float32 arrays from this many elements on take the ``log1p`` detour (see below)
_LOG1P_DETOUR_FROM = 1 << 12


class NumPyNamespace:
    """NumPy's array API namespace as the formulas get it: a float32 ``log1p`` that is
    faster and as accurate where NumPy lacks AVX-512, a float32 ``log`` evaluated in
    float64 and rounded once (closer to glibc's ``logf``), and NumPy's own methods
    where the compat wrappers cost more than the operation at small sizes.

    Without AVX-512 (``detour``), NumPy's float32 ``log1p`` is glibc's scalar
    ``log1pf``: torch's BCE kernel calls the same, so its bits are torch's, but it is
    ~7x slower per element than NumPy's vectorised ``log``. From 4096 elements on, the
    float64 ``log(1 + u)`` rounded to float32 is faster (1.3x at 2**14, 1.9x at 2**16,
    measured here); it is correctly rounded, so <= 1 ulp from ``log1pf`` (equal in 93%
    of BCE's ``log1p(-x)``). Below, the extra passes cost more than they save. Where
    NumPy has its AVX-512 (SVML) loops, its own ``log1p`` is vectorised, <= 1.2 ulp,
    and 3x faster than that detour, so it is used as is."""

    # the formulas' hooks (``_formulas``) that NumPy does not provide: looked up per op
    rounded = log_sigmoid = sigmoid = loss_mean = scale_by_numel = None

    def __init__(self, xp: Any, *, detour: bool) -> None:
        self._xp = xp
        self._detour = detour
        self._np = sys.modules["numpy"]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not forwarded (pickling asks for ``__reduce_ex__``...)
            raise AttributeError(name)
        value = getattr(self._xp, name)
        setattr(self, name, value)  # found here from now on
        return value

    def astype(self, x: Array, dtype: Any) -> Array:
        return x.astype(dtype)

    def asarray(self, a: Any, *, dtype: Any = None) -> Array:
        return self._np.asarray(a, dtype=dtype)

    def sum(self, a: Array, *, dtype: Any = None) -> Array:
        """The whole-array sum (the only one xbce takes)."""
        return a.sum(dtype=dtype)

    def log(self, u: Array) -> Array:
        """float32: the float64 ``log`` rounded once, as glibc's ``logf`` (which torch's
        BCE kernel calls) evaluates it: equal to glibc's in 99.5% of float32 inputs,
        where NumPy's own SIMD ``logf`` is in 90.7% (tests/cases.py's probabilities),
        for ~12% more time per BCE element."""
        xp = self._xp
        if u.dtype != xp.float32:
            return xp.log(u)
        return xp.log(u.astype(xp.float64)).astype(xp.float32)

    def log1p(self, u: Array) -> Array:
        xp = self._xp
        if u.dtype != xp.float32 or not self._detour or u.size < _LOG1P_DETOUR_FROM:
            return xp.log1p(u)
        # 1 + u is exact in float64 for |u| >= 2**-23; below, log1p(u) rounds to u
        wide = xp.log(u.astype(xp.float64) + 1.0).astype(xp.float32)
        return xp.where(xp.abs(u) < 2.0**-23, u, wide)


#: whether NumPy dispatches float32 ``log1p`` to its AVX-512 (SVML) loop (a name
#: tests replace to try both paths)
_numpy_has_vector_log1p = _private.numpy_has_avx512


class Torch(Backend):
    """PyTorch: the formula through the torch adapter (``_torch_adapter``): eager
    tensors checked and evaluated (large CPU tensors in blocks) with torch's gradients
    wired into autograd; ``torch.compile``, ``torch.func`` and meta tensors never read."""

    checks_devices = False

    torch_wording = True

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        from . import _torch_adapter

        self.adapter = _torch_adapter
        # the stand-in serves the checks too: torch's dtype arithmetic, cheaper and
        # traceable by ``torch.compile`` (the compat wrappers are not)
        self.xp = self.ops = _torch_adapter.TORCH_OPS

    def lazy(self, x: Array, t: Array) -> bool:
        return self.adapter.wrapped_or_meta(x, t)

    def on_host(self, x: Array) -> bool:
        return bool(x.is_cpu)

    def quiet(self) -> contextlib.AbstractContextManager[Any]:
        return _NO_CONTEXT  # torch warns of no value

    def blockable(self, like: Array) -> bool:
        return bool(like.is_cpu and like.numel() >= _evaluate.BLOCKED_FROM and like.ndim > 0)

    def contiguous(self, a: Array) -> bool:
        return bool(a.is_contiguous())

    def refuse_gradients(self, op: str, weight: Array | None, pos_weight: Array | None) -> None:
        self.adapter.not_differentiable(op, weight=weight, pos_weight=pos_weight)

    def loss(
        self, logits: bool, x: Array, t: Array, w: Array | None, p: Array | None, reduction: str
    ) -> Array:
        adapter = self.adapter
        if adapter.compiling():  # one graph, values never read (``torch.compile``)
            x, t, w, p = adapter.autocast(x, t, w, p)
            _checks.arguments(logits, x, t, reduction, self, weight=w, pos_weight=p)
            return adapter.compiled(logits, x, t, w, p, reduction)
        if adapter.autocasting():
            x, t, w, p = adapter.autocast(x, t, w, p)
        return super().loss(logits, x, t, w, p, reduction)

    def evaluate(
        self,
        logits: bool,
        x: Array,
        t: Array,
        w: Array | None,
        p: Array | None,
        reduction: str,
        lazy: bool,
    ) -> Array:
        return self.adapter.evaluate(self, logits, x, t, w, p, reduction, lazy)

    def unit_interval(self, x: Array, t: Array, *, reduced: Array | None = None) -> None:
        self.adapter.check_unit_interval(self, x, t, reduced=reduced)


class Jax(Backend):
    """JAX: tracers (and concrete arrays inside a trace) are never read; the loss is a
    ``jax.custom_jvp`` with torch's gradients, jitted where that keeps torch's bits
    (``_jax_adapter``); the formulas get its ``JaxNamespace``."""

    checks_devices = False

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        from . import _jax_adapter

        self.adapter = _jax_adapter
        self.ops = _jax_adapter.JNP

    def quiet(self) -> contextlib.AbstractContextManager[Any]:
        return _NO_CONTEXT  # JAX warns of no value

    def lazy(self, x: Array, t: Array) -> bool:
        import jax

        if isinstance(x, jax.core.Tracer) or isinstance(t, jax.core.Tracer):
            return True
        # concrete arrays inside a trace (closed over by a jitted function, or handed
        # to a function by ``checkify``): every op on them gives a tracer
        return not _private.jax_at_top_level()

    def evaluate(
        self,
        logits: bool,
        x: Array,
        t: Array,
        w: Array | None,
        p: Array | None,
        reduction: str,
        lazy: bool,
    ) -> Array:
        return self.adapter.loss(logits, reduction, lazy, x, t, w, p)


# ------------------------------------------------------------- picking a backend
#: the backend of each array type whose type alone decides its library
_BY_TYPE: dict[type, Backend] = {}
_torch: Backend | None = None


def _make(xp: Any) -> Backend:
    if is_numpy_namespace(xp):
        return numpy_backend()
    if is_dask_namespace(xp):
        from ._dask import Dask  # imported only for Dask arrays

        return Dask(xp)
    if is_jax_namespace(xp):
        return Jax(xp)
    if is_torch_namespace(xp):
        return _torch_backend()
    return Backend(xp)


def numpy_backend() -> Backend:
    """The backend of NumPy arrays (made on first use)."""
    import numpy as np

    backend = _BY_TYPE.get(np.ndarray)
    if backend is None:
        backend = _BY_TYPE[np.ndarray] = NumPy(array_namespace(np.empty(0)))
    return backend


def _torch_backend() -> Backend:
    global _torch
    if _torch is None:
        from . import _torch_adapter

        _torch = Torch(_torch_adapter.COMPAT)
    return _torch


Arguments = tuple[Array, Array, Array | None, Array | None, Array | None]


def of(
    input: Array,
    target: Array,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    grad_output: Array | None = None,
) -> tuple[Backend, Arguments]:
    """The call's backend, and its five arguments in that backend's library.

    Torch tensors are recognised first with ``isinstance`` (which ``torch.compile``
    traces); other arrays by type, their backend cached. Arguments of mixed types go
    through :func:`one_library`, which converts NumPy arrays and Python scalars."""
    args = (input, target, weight, pos_weight, grad_output)
    torch = sys.modules.get("torch")
    if torch is not None and _all_tensors(torch.Tensor, args):
        return _torch_backend(), args
    kind = type(input)
    same = all(a is None or type(a) is kind for a in args)
    if same:
        known = _BY_TYPE.get(kind)
        if known is not None:
            return known, args
    else:
        args = one_library(*args)
    _checks.arrays(input=args[0], target=args[1], weight=args[2], pos_weight=args[3],
                   grad_output=args[4])
    backend = _make(array_namespace(*args))
    if same:
        _BY_TYPE[kind] = backend
    return backend, args


def _all_tensors(tensor: type, args: Arguments) -> bool:
    """Whether the input is a tensor and so is every other argument given."""
    return isinstance(args[0], tensor) and all(a is None or isinstance(a, tensor) for a in args)


# ------------------------------------------------------ arguments of one library
def library(xp: Any) -> str:
    """A namespace's library in plain words: ``torch``, ``jax``, ``numpy``, ``dask``..."""
    for lib, is_lib in _LIBRARIES:
        if is_lib(xp):
            return lib
    # a compat namespace, installed or vendored (``mylib._vendored.array_api_compat.cupy``)
    name = str(getattr(xp, "__name__", xp)).rsplit("array_api_compat.", 1)[-1]
    return name.split(".")[0]


_LIBRARIES = (("numpy", is_numpy_namespace), ("torch", is_torch_namespace),
              ("jax", is_jax_namespace), ("dask", is_dask_namespace))


def one_library(
    input: Array,
    target: Array,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    grad_output: Array | None = None,
) -> Arguments:
    """The five arguments in one library: NumPy arrays and Python scalars join the
    other one.

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
    named = {"input": input, "target": target, "weight": weight, "pos_weight": pos_weight,
             "grad_output": grad_output}
    spaces: dict[str, Any] = {}
    owners: dict[str, list[str]] = {}
    first: dict[str, Array] = {}
    for name, a in named.items():
        if a is None or not _checks.is_array(a):  # Python scalars have no dtype
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
            named[name] = _joined(xp, named[name], where)
    floating = [
        a.dtype
        for a in (named["target"], named["input"])
        if _checks.is_array(a) and _floating(a, xp)
    ]
    scalar_dtype = floating[0] if floating else None
    for name, a in named.items():
        if _python_scalar(a) and name != "input":
            named[name] = xp.asarray(float(a), dtype=scalar_dtype, device=where)
    return (named["input"], named["target"], named["weight"], named["pos_weight"],
            named["grad_output"])


def _joined(xp: Any, a: Array, where: Any) -> Array:
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


def _floating(a: Array, xp: Any) -> bool:
    try:
        return bool(xp.isdtype(a.dtype, "real floating"))
    except (TypeError, ValueError):  # not this library's dtype: not one to follow
        return False
