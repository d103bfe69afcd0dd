"""How PyTorch words its errors: dtype names, kernel names, broadcasting messages.

Used for torch tensors only; other libraries get their own (NumPy-style) dtype names.
Every text here was checked against torch 2.13 on the CPU (kernel names on CUDA were
read in torch's source).
"""

from __future__ import annotations

from typing import Any

#: c10's ScalarType names, by the name after ``torch.`` in ``str(dtype)``
_TORCH_NAMES = {
    "float16": "Half", "bfloat16": "BFloat16", "float32": "Float", "float64": "Double",
    "int8": "Char", "uint8": "Byte", "int16": "Short", "int32": "Int", "int64": "Long",
    "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64", "bool": "Bool",
    "complex32": "ComplexHalf", "complex64": "ComplexFloat", "complex128": "ComplexDouble",
}

#: the name in AT_DISPATCH of the kernel that rejects a dtype, by op and device type
_KERNELS = {
    ("binary_cross_entropy", "cuda"): "binary_cross_entropy_out_cuda",
    ("log_sigmoid", "cpu"): "log_sigmoid_cpu",
    ("log_sigmoid", "cuda"): "log_sigmoid_forward_cuda",
}


def natural_name(dtype: Any) -> str:
    """``float32``, ``int64``, ...: the dtype's name without a library prefix."""
    return str(dtype).removeprefix("torch.").removeprefix("array_api_strict.")


def dtype_name(dtype: Any, torch_wording: bool) -> str:
    """``Float``, ``Long``, ... in torch's words (c10's names); else the natural name."""
    name = natural_name(dtype)
    return _TORCH_NAMES.get(name, name) if torch_wording else name


def kernel_name(op: str, x: Any, torch_wording: bool) -> str:
    """The name PyTorch's "not implemented for" message gives ``op`` on ``x``'s device."""
    if not torch_wording:
        return op
    return _KERNELS.get((op, x.device.type), _KERNELS.get((op, "cpu"), op))


def torch_size(shape: tuple[int, ...], torch_wording: bool = True) -> str:
    """A shape as torch prints it (``torch.Size([2, 3])``); else as a tuple (``(2, 3)``),
    as other libraries print theirs."""
    return f"torch.Size({list(shape)})" if torch_wording else str(tuple(shape))


def broadcast_shapes(
    first: tuple[int, ...], second: tuple[int, ...], torch_wording: bool = True
) -> tuple[list[int], str | None]:
    """``torch.broadcast_shapes(first, second)``: the common shape, or torch's message.

    torch's algorithm (``torch._refs._broadcast_shapes``): the common shape starts as
    ``first``, then takes ``second``'s sizes from the right; the message shows the
    common shape as far as it got (the shape named in it as a tuple without
    ``torch_wording``)."""
    common = [1] * max(len(first), len(second))
    for index, shape in enumerate((first, second)):
        for idx in range(-1, -1 - len(shape), -1):
            if shape[idx] == common[idx]:
                continue
            if common[idx] == 1:
                common[idx] = shape[idx]
            if shape[idx] != 1 and common[idx] != shape[idx]:
                return common, (
                    f"Attempting to broadcast a dimension of length {shape[idx]} at {idx}! "
                    f"Mismatching argument at index {index} had "
                    f"{torch_size(shape, torch_wording)}; but expected shape should be "
                    f"broadcastable to {common}"
                )
    return common, None


def infer_size(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], str | None]:
    """ATen's ``infer_size`` (TensorIterator's broadcasting of ``a`` with ``b``): the
    common shape, or torch's message for the last axis where they differ."""
    ndim = max(len(a), len(b))
    a, b = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    for i in reversed(range(ndim)):
        if a[i] != b[i] and a[i] != 1 and b[i] != 1:
            return a, (f"The size of tensor a ({a[i]}) must match the size of tensor b "
                       f"({b[i]}) at non-singleton dimension {i}")
    return tuple(n if m == 1 else m for m, n in zip(a, b, strict=True)), None


def grows(shape: tuple[int, ...], broadcast: tuple[int, ...] | list[int]) -> str:
    """TensorIterator's message for an in-place result that broadcasting would grow."""
    return f"output with shape {list(shape)} doesn't match the broadcast shape {list(broadcast)}"


_COMPLEX_OF = {"float16": "complex32", "float64": "complex128"}


def complex_product(real: Any, real_dims: bool, other: Any, other_dims: bool) -> str:
    """The natural name of the complex dtype torch gives ``real * other`` (``real`` a
    real floating dtype, ``other`` a complex one; ``*_dims``: the operand is not 0-d).

    torch's promotion: a 0-d operand of a higher category lends its category, not its
    size (float32 times a 0-d complex128 is complex64); otherwise the wider wins."""
    r, c = natural_name(real), natural_name(other)
    if real_dims and not other_dims:
        return _COMPLEX_OF.get(r, "complex64")
    if other_dims and not real_dims:
        return c
    return "complex128" if "float64" in (r, c) or c == "complex128" else c


def cannot_cast(result: str, output: Any, torch_wording: bool) -> str:
    """TensorIterator's message for an in-place op whose result dtype (a natural name)
    cannot be cast to its output's dtype."""
    return (
        f"result type {dtype_name(result, torch_wording)} can't be cast to the desired "
        f"output type {dtype_name(output, torch_wording)}"
    )
