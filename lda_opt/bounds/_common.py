"""Validators shared by the bound modules, and the certified-norm rounding inflation.

Every bad value is a ValueError naming the parameter (the checks of lda_opt._validate with
``kind_error=ValueError``); a one-element tensor or array counts as its number, since the
constants are often read off a trace or a network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .._validate import integer, real

# Relative inflation applied to FFT/SVD-based certified norms to cover float64 rounding.
_CERT_INFLATE = 1e-10


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value


def _num(name: str, value: Any) -> float:
    return real(name, _scalar(value), kind_error=ValueError)


def _pos(name: str, value: Any) -> float:
    return real(name, _scalar(value), 0.0, kind_error=ValueError)


def _nonneg(name: str, value: Any) -> float:
    return real(name, _scalar(value), 0.0, lo_open=False, kind_error=ValueError)


def _open01(name: str, value: Any) -> float:
    return real(name, _scalar(value), 0.0, 1.0, kind_error=ValueError)


def _count(name: str, value: Any, lo: int = 0) -> int:
    value = _scalar(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return integer(name, value, lo, kind_error=ValueError)


def _gap_pair(phi_x0: Any, phi_star: Any) -> tuple[float, float]:
    a = _num("phi_x0", phi_x0)
    b = _num("phi_star", phi_star)
    if a < b:
        raise ValueError(f"phi_x0 must be >= phi_star (got phi_x0={a}, phi_star={b})")
    return a, b


def _ceil_safe(x: float) -> int:
    """Smallest integer >= x, rounded up when x is within float rounding of an integer."""
    return math.ceil(x + 1e-9 * max(1.0, abs(x)))
