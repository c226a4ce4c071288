"""Smoothed ReLU activation of LDA eq. (33) / meta-LDA eq. (20)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SmoothReLU"]


def _check_delta(delta: float) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise TypeError(f"delta must be a positive finite float, got {type(delta).__name__}")
    delta = float(delta)
    if not (math.isfinite(delta) and delta > 0.0):
        raise ValueError(f"delta must be a positive finite float (0 < delta < inf), got {delta}")
    return delta


class SmoothReLU(nn.Module):
    r"""Smoothed ReLU, LDA eq. (33) and meta-LDA eq. (20).

    .. math::

        a(x) = \begin{cases} 0, & x \le -\delta, \\
               \frac{x^2}{4\delta} + \frac{x}{2} + \frac{\delta}{4}, & |x| < \delta, \\
               x, & x \ge \delta. \end{cases}

    It is evaluated branch-free as ``a(x) = (clamp(x, -delta, delta) + delta)^2 / (4 delta)
    + relu(x - delta)``, which equals the three cases above.

    ``a`` is C^1 with ``a'(x) = clamp((x + delta) / (2 delta), 0, 1)``, so
    ``sup |a'| = 1`` (:attr:`derivative_bound`) and ``a'`` is Lipschitz with constant
    ``1 / (2 delta)`` (:attr:`derivative_lipschitz`). These two constants enter the
    certified Lipschitz bounds of the feature map in ``lda_opt/bounds/``.
    Note ``a(0) = delta / 4``, not 0.

    Complex input: as in the complex CNNs of meta-LDA Sec. 5.2 (and U-LDA Sec. 5.1), ``a``
    is applied to the real and imaginary parts separately,
    ``a(x_r + i x_i) = a(x_r) + i a(x_i)``. Seen as a map on R^2, its Jacobian is diagonal
    with entries a'(x_r), a'(x_i), so the same two constants hold.

    Args:
        delta: smoothing half-width, > 0 (the papers use 0.01).
    """

    #: sup_x |a'(x)|.
    derivative_bound: float = 1.0

    def __init__(self, delta: float = 0.01) -> None:
        super().__init__()
        self.delta = _check_delta(delta)

    @property
    def derivative_lipschitz(self) -> float:
        """Lipschitz constant of a', equal to 1 / (2 delta)."""
        return 1.0 / (2.0 * self.delta)

    def _real(self, x: torch.Tensor) -> torch.Tensor:
        d = self.delta
        c = torch.clamp(x, -d, d)
        return (c + d).square() / (4.0 * d) + torch.relu(x - d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.is_complex():
            return torch.complex(self._real(x.real), self._real(x.imag))
        if not x.is_floating_point():
            raise TypeError(f"x must have a floating or complex dtype, got {x.dtype}")
        return self._real(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """a'(x) for real x: ``clamp((x + delta) / (2 delta), 0, 1)``."""
        if x.is_complex():
            raise TypeError("derivative is defined for real tensors; apply it to .real/.imag")
        return torch.clamp((x + self.delta) / (2.0 * self.delta), 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"delta={self.delta}"
