"""The exception types of `core.annotate`: one base for the package, captioner failures under it.

`AnnotateError` is a problem the user can fix (a bad option, a missing package, an unusable setting); its
message names the option or file. `CaptionerError` is the part of it that comes from a captioner: one that
cannot be built or cannot answer (`core.serve` answers it with 502, an upstream failure). Programming
errors (a wrong argument from our own code) stay `ValueError` / `TypeError`.
"""

from __future__ import annotations


class AnnotateError(Exception):
    """The DenseScan pipeline cannot run as asked; the message names the option, file or endpoint."""


class CaptionerError(AnnotateError):
    """A captioner cannot be built or cannot answer; the message names the option, endpoint or file."""
