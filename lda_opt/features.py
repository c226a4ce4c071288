"""Linear feature maps ``q`` for hand-crafted regularizers.

A feature map is any ``torch.nn.Module`` mapping (B, C, H, W) -> (B, d, H', W'); the groups
``q_i`` are the d-vectors at each spatial location (``m = H' W'``), so
``||q(x)||_{2,1} = sum_i ||q_i(x)||``.  For complex features ``||q_i||`` is the Euclidean norm
over real and imaginary parts.

* :class:`FiniteDifference` -- isotropic total variation: forward differences with Neumann
  boundary (the difference past the last row/column is 0); ``d = 2C``.
  ``||D|| <= sqrt(8)``; ``L_g = 0``.
* :class:`Identity` -- ``q(x) = x``: the groups are the C-vectors at each pixel, so for
  ``C = 1`` this is the l1 norm (complex modulus for complex ``x``).  ``||D|| = 1``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FiniteDifference", "Identity"]


class FiniteDifference(nn.Module):
    """Forward differences with Neumann boundary, stacked as (B, 2C, H, W).

    Channels ``[0, C)`` hold the vertical differences ``x[i+1, j] - x[i, j]`` and channels
    ``[C, 2C)`` the horizontal ones ``x[i, j+1] - x[i, j]``; both are 0 on the last row
    (column).  The group at pixel ``(i, j)`` is the 2C-vector of both, so
    ``sum_i ||q_i(x)||`` is isotropic TV.
    """

    linear = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dv = torch.zeros_like(x)
        dh = torch.zeros_like(x)
        dv[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
        dh[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
        return torch.cat([dv, dh], dim=1)

    @staticmethod
    def adjoint(p: torch.Tensor) -> torch.Tensor:
        """``D^H p`` for ``p`` of shape (B, 2C, H, W) (the exact adjoint of :meth:`forward`:
        ``<D x, p> = <x, D^H p>``, real or complex)."""
        if p.dim() != 4 or p.shape[1] % 2:
            raise ValueError(f"p must have shape (B, 2C, H, W); got {tuple(p.shape)}")
        c = p.shape[1] // 2
        pv, ph = p[:, :c], p[:, c:]
        out = torch.zeros_like(pv)
        out[..., 1:, :] += pv[..., :-1, :]
        out[..., :-1, :] -= pv[..., :-1, :]
        out[..., :, 1:] += ph[..., :, :-1]
        out[..., :, :-1] -= ph[..., :, :-1]
        return out

    @staticmethod
    def norm_bound() -> float:
        """Certified bound ``||D|| <= sqrt(8)`` (each 1-D difference has norm <= 2)."""
        return 8.0**0.5


class Identity(nn.Module):
    """``q(x) = x``: group l1 (complex modulus) regularizer; ``||D|| = 1``."""

    linear = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @staticmethod
    def norm_bound() -> float:
        return 1.0
