"""Shared validation helpers for lda_opt.data (private)."""

from __future__ import annotations

import math

import torch

REAL_DTYPES = (torch.float32, torch.float64)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int >= 0, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed}")
    return seed


def check_real_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in REAL_DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def check_any_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in REAL_DTYPES + COMPLEX_DTYPES:
        raise ValueError(
            f"dtype must be one of float32, float64, complex64, complex128, got {dtype!r}"
        )
    return dtype


def check_size(size, name: str = "size", minimum: int = 1) -> tuple[int, int]:
    """An int n -> (n, n); a pair (H, W) of ints >= minimum."""
    if isinstance(size, bool):
        raise TypeError(f"{name} must be an int or a pair (H, W) of ints >= {minimum}")
    if isinstance(size, int):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) for s in size)
    ):
        raise TypeError(
            f"{name} must be an int or a pair (H, W) of ints >= {minimum}, got {size!r}"
        )
    if min(size) < minimum:
        raise ValueError(
            f"{name} must be an int or a pair (H, W) of ints >= {minimum}, got {size!r}"
        )
    return int(size[0]), int(size[1])


def check_fraction(value: float, name: str, lo_open: bool = True, hi: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in (0, {hi}], got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value > 0 if lo_open else value >= 0) and value <= hi
    if not ok:
        rng = f"({'0' if lo_open else '[0'}, {hi}]" if lo_open else f"[0, {hi}]"
        raise ValueError(f"{name} must be in {rng}, got {value}")
    return value


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)
