"""The ``xbce`` command line: ``xbce explain`` (also ``python -m xbce explain``).

Bad arguments (unparsable numbers, a missing or malformed file, shapes that differ)
print a one-line message and exit with status 2, as ``argparse`` does; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__

USAGE_EXAMPLE = "xbce explain --input 0.5401,0.4482 --target 1,0 --value 1.2105706"


class _BadArgument(Exception):
    """An argument that cannot be used; reported by ``parser.error`` (exit status 2)."""


def _load(text: str, what: str) -> Any:
    """Numbers from ``text``: a .npy file, a .csv file, or comma-separated numbers."""
    import numpy as np

    suffix = Path(text).suffix.lower()
    if suffix in (".npy", ".csv"):
        path = Path(text)
        if not path.is_file():
            raise _BadArgument(f"--{what}: no such file: {text}")
        try:
            if suffix == ".npy":
                # allow_pickle=False: an object array is refused, its pickle never run
                array = np.load(path, allow_pickle=False)
            else:
                array = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1)
        except ValueError as err:
            raise _BadArgument(f"--{what}: cannot read {text}: {err}") from None
        except OSError as err:
            raise _BadArgument(f"--{what}: cannot read {text}: {err}") from None
        if array.dtype.kind not in "biuf":
            raise _BadArgument(f"--{what}: {text} holds {array.dtype}, not real numbers")
        return array
    tokens = [t.strip() for t in text.strip().strip("[]").split(",")]
    if not tokens or any(t == "" for t in tokens):
        raise _BadArgument(f"--{what}: expected comma-separated numbers, got {text!r}")
    try:
        return np.asarray([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise _BadArgument(f"--{what}: {bad!r} is not a number (in {text!r})") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xbce",
        description="xbce: PyTorch's binary cross-entropy on every array library.",
    )
    parser.add_argument("--version", action="version", version=f"xbce {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    explain = commands.add_parser(
        "explain",
        help="which convention (torch, Keras, scikit-learn, optax, hand-written ...) "
             "produced a BCE value",
        description="Which convention turns INPUT and TARGET into VALUE? Tries PyTorch, "
                    "Keras, scikit-learn, optax, TensorFlow and hand-written variants, "
                    "with each reduction, in float32 and float64.",
        epilog=f"example: {USAGE_EXAMPLE}",
    )
    explain.add_argument("--input", required=True, metavar="NUMBERS|FILE",
                         help="probabilities (logits with --logits): comma-separated "
                              "numbers, or a .npy or .csv file")
    explain.add_argument("--target", required=True, metavar="NUMBERS|FILE",
                         help="targets, same shape as --input")
    explain.add_argument("--value", required=True, help="the loss value to explain")
    explain.add_argument("--weight", metavar="NUMBERS|FILE",
                         help="per-element weights (broadcast to the input's shape)")
    explain.add_argument("--logits", action="store_true",
                         help="--input holds logits (binary_cross_entropy_with_logits)")
    explain.add_argument("--batch-size", type=int, metavar="N",
                         help="VALUE may be an epoch's loss: the mean or the sum of "
                              "PyTorch's batch means over batches of N samples (the "
                              "first axis, in order; the last batch smaller)")
    explain.add_argument("--candidates", action="store_true",
                         help="also list every variant tried, with its value")
    return parser


_VALUED = ("--input", "--target", "--weight", "--value", "--batch-size")


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--input -3,0.5`` as ``--input=-3,0.5``: argparse would take ``-3,0.5`` for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in _VALUED and i + 1 < len(argv) and argv[i + 1].startswith("-") and (
            argv[i + 1] not in ("-h", "--help") and not argv[i + 1].startswith("--")
        ):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad arguments)."""
    parser = _parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    if args.command == "explain":
        from ._explain import _describe, explain

        try:
            inputs = _load(args.input, "input")
            target = _load(args.target, "target")
            weight = None if args.weight is None else _load(args.weight, "weight")
            result = explain(inputs, target, args.value, weight=weight,
                             from_logits=args.logits, batch_size=args.batch_size)
        except (_BadArgument, ValueError, TypeError) as err:
            parser.exit(2, f"xbce explain: error: {err}\n")
        # the full list of matches follows, so the summary points there (not at .matches)
        lines = [_describe(result, more="all listed below")]
        if len(result.matches) > 1:
            lines += ["", "matches:", *(f"  {name}" for name in result.matches)]
        if args.candidates:
            lines += [""] + [f"{c.value:<24.17g} {c.dtype:<8} {c.name}" for c in result.candidates]
        try:
            print("\n".join(lines))
            sys.stdout.flush()
        except BrokenPipeError:  # `xbce explain ... | head`: the reader has had enough
            # Python's documented recipe: no second error when stdout is flushed at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
