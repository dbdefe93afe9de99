"""User-facing errors: one line that says what is wrong and what to do.

The command line catches :class:`ZolibError` and prints ``zolib: <message>``
with exit status 2 (never a traceback). Library code raises it for bad input:
an unknown profile or parameter, a missing dataset offline, a checksum mismatch,
a NaN loss.
"""
from __future__ import annotations

from typing import Iterable


class ZolibError(Exception):
    """An error caused by the user's input or environment, with a one-line fix."""

    exit_code = 2


class NanLossError(ZolibError):
    """The training loss became NaN or infinite; finished tasks are kept."""


def unknown_value(kind: str, value: object, valid: Iterable[object]) -> ZolibError:
    """Build the standard message for an unknown choice, listing the valid ones."""
    choices = ", ".join(str(v) for v in valid)
    return ZolibError(f"unknown {kind} {value!r}; valid values: {choices}")


def check_choice(kind: str, value: object, valid: Iterable[object]) -> None:
    """Raise :func:`unknown_value` unless ``value`` is one of ``valid``."""
    valid = list(valid)
    if value not in valid:
        raise unknown_value(kind, value, valid)
