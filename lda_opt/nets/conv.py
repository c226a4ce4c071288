"""Complex 2-D convolution with separate real and imaginary kernels (meta-LDA Sec. 5.2)."""

from __future__ import annotations

import torch
from torch import nn

from .._validate import integer

__all__ = ["ComplexConv2d"]


def _check_int(name: str, value: int, minimum: int = 1) -> int:
    """An integer hyper-parameter ``>= minimum`` (:func:`lda_opt._validate.integer`; the
    networks' channel, width and depth counts start at 1)."""
    return integer(name, value, minimum)


def _check_kernel_size(kernel_size: int) -> int:
    _check_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be an odd int >= 1 (zero padding kernel_size // 2 then "
            f"preserves the image size), got {kernel_size}"
        )
    return kernel_size


class ComplexConv2d(nn.Module):
    r"""Complex convolution ``W = W_r + i W_i`` applied to ``x = x_r + i x_i``:

    .. math::

        W x = (W_r x_r - W_i x_i) + i (W_r x_i + W_i x_r).

    ``W_r`` and ``W_i`` are the real ``nn.Conv2d`` attributes :attr:`real` and :attr:`imag`
    (no bias, stride 1, zero padding ``kernel_size // 2`` so H and W are preserved).
    Equivalently, on the stacked real vector ``(x_r, x_i)`` it is the real 2x2 block
    operator ``[[W_r, -W_i], [W_i, W_r]]``.

    The parameters are real: a module meant for complex128 input is converted with
    ``.double()`` (or ``.to(torch.float64)``), for complex64 input it stays float32.

    Args:
        in_channels, out_channels: channel counts, >= 1.
        kernel_size: odd spatial size, >= 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        _check_int("in_channels", in_channels)
        _check_int("out_channels", out_channels)
        _check_kernel_size(kernel_size)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        pad = kernel_size // 2
        self.real = nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.imag = nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_complex():
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"ComplexConv2d needs a complex input tensor, got {got}")
        wdt = self.real.weight.dtype
        if x.real.dtype != wdt:
            raise TypeError(
                f"input {x.dtype} does not match the real parameter dtype {wdt}; "
                f"use .float() for complex64 and .double() for complex128 input"
            )
        b = x.shape[0]
        stacked = torch.cat([x.real, x.imag], dim=0)  # (2B, C, H, W)
        r = self.real(stacked)
        i = self.imag(stacked)
        return torch.complex(r[:b] - i[b:], r[b:] + i[:b])

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
