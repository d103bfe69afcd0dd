"""Opt-in runtime value checks under JAX transformations, through ``jax.experimental.checkify``.

Under ``jax.jit`` xbce cannot read values, so an invalid BCE input makes the loss NaN.
:func:`checkify` wraps a function so that the xbce calls *traced* inside it also stage
``checkify.check``\\ s carrying torch's messages. A flag (``_jax.checks_on``)
set while the wrapped function is being traced tells xbce to stage them; outside it
nothing changes, so code that does not use :func:`checkify` compiles exactly as before
(a ``checkify.check`` staged under a plain ``jit`` would be an error).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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

    from ._jax import checks_on

    @functools.wraps(fun)
    def traced_with_checks(*args: Any, **kwargs: Any) -> Any:
        with checks_on():
            return fun(*args, **kwargs)

    return jax_checkify.checkify(  # type: ignore[no-any-return]
        traced_with_checks, errors=jax_checkify.user_checks | errors
    )
