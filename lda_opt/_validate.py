"""Argument validation shared by the library: one definition of each rule.

Every check names the parameter and its valid range.  A value of the wrong kind (a string,
``None``, a bool, a complex number where a real one is expected) raises ``TypeError`` (or
the ``kind_error`` a caller asks for: file contents such as a training config report every
bad value as ``ValueError``); a value of the right kind outside its range raises
``ValueError``.  The checks return the validated value so that callers can use it as a plain
Python number.

* :func:`real` -- a finite real number in an (open or closed) interval;
* :func:`integer` -- an integer (not a bool) with a lower and optional upper bound;
* :func:`flag` -- a bool;
* :func:`choice` -- one of a fixed set of names;
* :func:`out_dir` -- an output directory that can be created (no file on its path).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: the largest image side anywhere in the library (a float64 image of 8192^2 pixels is
#: 512 MiB; a larger one does not fit the memory of the machines this library targets): a
#: size from a user or from a checkpoint's metadata is refused above it before any allocation
MAX_SIZE = 8192

__all__ = ["choice", "flag", "integer", "interval", "out_dir", "real"]


def interval(lo: float | None, hi: float | None, lo_open: bool = True, hi_open: bool = True) -> str:
    """The interval as text: ``(0, inf)``, ``[0, 1)``, ..."""
    lb = "(" if lo_open or lo is None else "["
    rb = ")" if hi_open or hi is None else "]"
    return f"{lb}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{rb}"


def _is_real(value: Any) -> bool:
    """A real number: int, float, numpy real scalar or a real 0-d torch tensor; not a bool."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    if isinstance(value, numbers.Real):
        return True
    try:  # a 0-d real tensor (torch is imported only when such a value is passed)
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return (isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_complex()
            and value.dtype != torch.bool)


def real(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
         lo_open: bool = True, hi_open: bool = True,
         kind_error: type[Exception] = TypeError) -> float:
    """``float(value)`` after checking that ``value`` is a finite real number in the interval
    ``(lo, hi)`` (``lo_open``/``hi_open`` False close an end; ``None``: unbounded)."""
    rng = interval(lo, hi, lo_open, hi_open)
    if not _is_real(value):
        raise kind_error(f"{name} must be a real number in {rng}; got {value!r} "
                         f"({type(value).__name__})")
    v = float(value)
    ok = math.isfinite(v)
    if lo is not None:
        ok = ok and (v > lo if lo_open else v >= lo)
    if hi is not None:
        ok = ok and (v < hi if hi_open else v <= hi)
    if not ok:
        raise ValueError(f"{name} must be in {rng}; got {value!r}")
    return v


def integer(name: str, value: Any, lo: int | None = None, hi: int | None = None, *,
            kind_error: type[Exception] = TypeError) -> int:
    """``int(value)`` after checking that ``value`` is an integer (``int`` or a numpy integer,
    never a bool or an integral float) with ``lo <= value <= hi``."""
    what = "an integer"
    if lo is not None and hi is not None:
        what += f" in [{lo}, {hi}]"
    elif lo is not None:
        what += f" >= {lo}"
    elif hi is not None:
        what += f" <= {hi}"
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Integral):
        raise kind_error(f"{name} must be {what}; got {value!r} ({type(value).__name__})")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be {what}; got {value!r}")
    return v


def flag(name: str, value: Any, *, kind_error: type[Exception] = TypeError) -> bool:
    """``value`` after checking that it is a bool."""
    if not isinstance(value, bool):
        raise kind_error(f"{name} must be a bool (True or False); got {value!r}")
    return value


def choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` after checking that it is one of ``choices`` (ValueError otherwise)."""
    choices = tuple(choices)
    try:
        ok = value in choices
    except TypeError:  # an unhashable or incomparable value is not a choice
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def out_dir(name: str, path: str | os.PathLike) -> Path:
    """``Path(path)`` after checking that it can be an output directory: it is a directory or
    does not exist yet, and no existing component of it is a file (``mkdir`` would fail
    after the work is done).  Nothing is created."""
    p = Path(path)
    if str(path) == "":
        raise ValueError(f"{name} must be a directory path; got an empty string")
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} must be a directory; {str(p)!r} exists and is not one")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{name} {str(p)!r} cannot be created: {str(parent)!r} is not a directory")
            break
    return p
