"""The types xbce's modules share: the call record, and what a loss and a backend are.

``Array`` stands for an array of any library (the array API standard has no static
type every library's arrays satisfy); everything else is a protocol or a record, so that
no module needs ``Any`` for a backend or a loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from ._formulas import GradTerms, Ops

#: an array of any array API library (NumPy, torch, JAX, CuPy, Dask, array-api-strict)
Array = Any
#: an array API namespace (``array_api_compat.array_namespace(x)``)
Namespace = Any
#: a dtype of any library
DType = Any


class Loss(Protocol):
    """One of the two losses (``_formulas.BCE``, ``_formulas.BCE_WITH_LOGITS``): its
    torch name, its elementwise formula and torch's hand-written gradient terms."""

    name: str
    logits: bool

    def elementwise(
        self, x: Array, t: Array, w: Array | None, p: Array | None, ops: Ops
    ) -> Array: ...

    def grad_terms(
        self, wrt: str, x: Array, t: Array, w: Array | None, p: Array | None,
        count: int | None, ops: Ops, *, in_place: bool = True,
    ) -> GradTerms: ...

    def dtype(self, x: Array, t: Array) -> DType: ...


class Call(NamedTuple):
    """One call of xbce: which loss, its arrays, the reduction; for an explicit
    backward, the upstream gradient and the argument differentiated (``wrt``). The
    backend sets ``lazy``: the values must not be read (tracers, task graphs)."""

    loss: Loss
    input: Array
    target: Array
    weight: Array | None
    pos_weight: Array | None
    reduction: str
    grad: Array | None = None
    wrt: str | None = None
    lazy: bool = False


class Backend(Protocol):
    """What the public functions ask of a backend (one per library, made once):
    to compute a call's loss, or its explicit gradient (``call.wrt``)."""

    def loss(self, call: Call) -> Array: ...

    def gradient(self, call: Call) -> Array: ...


class Library(Protocol):
    """What the argument checks (``_checks``) ask of a backend."""

    ops: Ops
    #: messages in torch's words (its dtype names, ``torch.Size``)
    torch_wording: bool

    @property
    def devices(self) -> Callable[[Call], None] | None:
        """``devices(call)``: torch's error for arrays on different devices, where the
        library raises none like it (the generic backend); ``None``: torch raises its
        own, NumPy and Dask have one device, JAX moves uncommitted arrays itself."""

    @property
    def grad_enabled(self) -> Callable[[], bool] | None:
        """Whether the library records gradients now (torch's ``is_grad_enabled``: torch
        refuses a weight that requires grad); ``None``: it never records them."""
