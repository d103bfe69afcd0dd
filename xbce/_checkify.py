"""Opt-in runtime value checks under JAX transformations, through ``jax.experimental.checkify``.

Under ``jax.jit`` xbce cannot read values, so an invalid BCE input makes the loss NaN.
:func:`checkify` wraps a function so that the xbce calls *traced* inside it also stage
``checkify.check``\\ s carrying torch's messages. A flag (:func:`checks_on`)
set while the wrapped function is being traced tells xbce to stage them; outside it
nothing changes, so code that does not use :func:`checkify` compiles exactly as before
(a ``checkify.check`` staged under a plain ``jit`` would be an error).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from ._requires import missing


def checkify(fun: Callable[..., Any], errors: Any = frozenset()) -> Callable[..., Any]:
    """``jax.experimental.checkify.checkify(fun, errors=user_checks | errors)``, with
    torch's value checks staged by every xbce call traced inside ``fun``.

    Use it where PyTorch would raise but a jitted JAX function cannot: the returned
    function gives ``(err, out)``; ``err.get()`` is ``None`` when every check passed,
    else the message of the first that failed (torch's, e.g. "all elements of input
    should be between 0 and 1"), and ``err.throw()`` raises it. It works around the
    function, inside it (``jax.jit`` within ``fun``) and under it
    (``jax.jit(xbce.checkify(f))``).

    Parameters
    ----------
    fun : callable
        A function of JAX arrays that calls xbce.
    errors : frozenset of checkify error sets, optional
        Further checks to enable, as in ``checkify.checkify`` (e.g.
        ``checkify.float_checks``); ``checkify.user_checks`` (xbce's) are always on.

    Notes
    -----
    The checks are staged when ``fun`` is *traced*. The flag that asks for them is
    part of JAX's trace context (``jax.make_user_context``), so a ``jax.jit``-compiled
    function traced earlier without :func:`checkify` is traced again, with checks,
    inside it, and its checked trace is never reused outside it. BCE-with-logits has
    no value checks (torch has none), so it stages nothing.

    Examples
    --------
    (Not run as a doctest: the NumPy test session has no JAX; docs/errors.md runs it.)
    ::

        f = jax.jit(lambda p, y: xbce.binary_cross_entropy(p, y))
        err, loss = xbce.checkify(f)(jnp.asarray([0.5, 1.5]), jnp.asarray([1.0, 0.0]))
        err.get()  # 'all elements of input should be between 0 and 1 (`check` failed)'
        err.throw()  # raises JaxRuntimeError with that message
    """
    try:
        import jax  # noqa: F401  (only to say what to install if it is missing)
    except ModuleNotFoundError as err:  # keep err.name == "jax"
        if err.name != "jax":
            raise
        raise missing("xbce.checkify", "jax") from err
    from jax.experimental import checkify as jax_checkify

    from . import _jax

    _jax.stage_checks = _stage_checks

    @functools.wraps(fun)
    def traced_with_checks(*args: Any, **kwargs: Any) -> Any:
        with checks_on():
            return fun(*args, **kwargs)

    return jax_checkify.checkify(  # type: ignore[no-any-return]
        traced_with_checks, errors=jax_checkify.user_checks | errors
    )


# ------------------------------------------------------------------ the flag
#: The flag: a JAX context that is part of JAX's trace context and ``jit`` cache key, so
#: that a function traced with checks and the same function traced without them are
#: cached apart (a trace with checks reused by a plain ``jit`` would fail, and the reverse
#: would skip the checks). Created on first use, one per copy of this module (a vendored
#: copy of xbce next to an installed one has its own).
_state: Any = None


def _flag() -> Any:
    global _state
    if _state is None:
        import jax

        _state = jax.make_user_context(False)  # type: ignore[no-untyped-call]  # JAX >= 0.7.2
    return _state


def checking() -> bool:
    """Whether xbce calls being traced now should stage value checks (``xbce.checkify``)."""
    return _state is not None and bool(_flag().value)


@contextlib.contextmanager
def checks_on() -> Iterator[None]:
    with _flag()(True):
        yield


def _stage_checks(x: Any, y: Any) -> None:
    """``_jax.stage_checks``: torch's value check, staged while checks are on."""
    if checking():
        check_unit_interval(x, y)


def check_unit_interval(x: Any, y: Any) -> None:
    """Stage torch's value check of BCE (under :func:`xbce.checkify` only).

    As in torch's kernel, the first bad element in memory order decides whether the
    message names the input or the target; exactly one check fails when any does.
    """
    import jax.numpy as jnp
    from jax.experimental import checkify

    n = x.size

    def first_bad(a: Any) -> Any:
        bad = jnp.ravel(~((a >= 0) & (a <= 1)))
        return jnp.where(jnp.any(bad), jnp.argmax(bad), n) if n else jnp.asarray(0)

    fx, fy = first_bad(x), first_bad(y)
    checkify.check((fx == n) | (fx > fy), "all elements of input should be between 0 and 1")
    checkify.check((fy == n) | (fy >= fx), "all elements of target should be between 0 and 1")
