r"""Smoothings ``r_eps`` of the group norm ``r(x) = ||q(x)||_{2,1} = sum_i ||q_i(x)||``.

Both act on the features ``g = q(x)`` of shape (B, d, H', W') with a per-sample ``eps`` of
shape (B,); the groups are the d-vectors at each of the ``m = H' W'`` locations.  The
gradient is always one vector-Jacobian product

.. math:: \nabla r_\varepsilon(x) = \nabla q(x)^\top y^*_\varepsilon(q(x)),

so :meth:`Smoothing.dual` returns ``y*`` and the caller does one backward pass of ``q``.

* :class:`Huber` -- Nesterov's dual perturbation (LDA eqs. 5-10):
  ``r_eps = max_{||y_i|| <= 1} <g, y> - eps/2 ||y||^2``; ``y*_i = g_i / max(||g_i||, eps)``
  (eq. 8); ``r_eps = sum_{||g_i||<=eps} ||g_i||^2/(2 eps) + sum_{||g_i||>eps} (||g_i|| - eps/2)``
  (eq. 9); sandwich ``r_eps <= r <= r_eps + m eps / 2`` (eq. 6).
* :class:`Sqrt` -- meta-LDA eq. (5): ``r_eps = sum_i sqrt(||g_i||^2 + eps^2) - eps``;
  ``y*_i = g_i / sqrt(||g_i||^2 + eps^2)``; sandwich ``r_eps <= r <= r_eps + m eps``.

For both, ``r_eps + gap(m, eps)`` is non-decreasing in ``eps`` (LDA Lemma 3.4, ELDA (4.29),
meta-LDA Lemma A4 corrected): this is the monotone quantity checked by ``lda_opt.check``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["SMOOTHINGS", "Huber", "Smoothing", "Sqrt", "group_norm_sq", "num_groups"]


def group_norm_sq(g: torch.Tensor) -> torch.Tensor:
    """``||g_i||^2`` per group: sum over the feature axis 1 of ``|g|^2`` -> (B, H', W')."""
    if g.is_complex():
        return (g.real.square() + g.imag.square()).sum(dim=1)
    return g.square().sum(dim=1)


def num_groups(g: torch.Tensor) -> int:
    """``m``: the number of groups (spatial locations) of features ``g``."""
    return math.prod(g.shape[2:]) if g.dim() > 2 else 1


def _per_sample(eps: torch.Tensor | float, g: torch.Tensor) -> torch.Tensor:
    eps = torch.as_tensor(eps, dtype=g.real.dtype, device=g.device)
    if eps.dim() == 0:
        eps = eps.expand(g.shape[0])
    return eps.reshape(-1, *([1] * (g.dim() - 2)))


def _sum_groups(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], -1).sum(dim=1)


@dataclass(frozen=True)
class Smoothing:
    """Base class; subclasses define the value, the dual maximizer and the gap factor."""

    #: gap(m, eps) = gap_factor * m * eps
    gap_factor: float = 1.0
    name: str = "smoothing"

    def __post_init__(self) -> None:
        # gap_factor and name are properties of the smoothing (its sandwich inequality and
        # the name reports and checks use), not parameters: another value would mislead
        # every check of the gap
        for f in ("gap_factor", "name"):
            default = type(self).__dataclass_fields__[f].default
            if getattr(self, f) != default or type(getattr(self, f)) is not type(default):
                raise ValueError(f"{f} of {type(self).__name__} is fixed at {default!r}; got {getattr(self, f)!r}")

    def value(self, g: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        """``r_eps`` summed over the groups, per sample: (B,)."""
        raise NotImplementedError  # pragma: no cover

    def dual(self, g: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        """``y*_eps(g)``, the cotangent with ``grad r_eps(x) = grad q(x)^T y*``."""
        raise NotImplementedError  # pragma: no cover

    def gap(self, m: int, eps: torch.Tensor | float) -> torch.Tensor | float:
        """Upper bound of ``r - r_eps``: ``gap_factor * m * eps``."""
        return self.gap_factor * m * eps

    @staticmethod
    def exact(g: torch.Tensor) -> torch.Tensor:
        """The nonsmooth ``r = sum_i ||g_i||`` per sample: (B,)."""
        return _sum_groups(group_norm_sq(g).sqrt())


@dataclass(frozen=True)
class Huber(Smoothing):
    """Nesterov / Moreau-Yosida smoothing of the l2,1 norm, LDA eqs. (5)-(10)."""

    gap_factor: float = 0.5
    name: str = "huber"

    def value(self, g: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _per_sample(eps, g)
        s2 = group_norm_sq(g)
        # max(||g_i||, eps) keeps the unselected branch differentiable (no sqrt'(0)).
        s = torch.maximum(s2, e * e).sqrt()
        return _sum_groups(torch.where(s2 <= e * e, s2 / (2 * e), s - e / 2))

    def dual(self, g: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _per_sample(eps, g)
        s = torch.maximum(group_norm_sq(g), e * e).sqrt()
        return g / s.unsqueeze(1)


@dataclass(frozen=True)
class Sqrt(Smoothing):
    """Square-root smoothing, meta-LDA eq. (5)."""

    gap_factor: float = 1.0
    name: str = "sqrt"

    def value(self, g: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _per_sample(eps, g)
        return _sum_groups((group_norm_sq(g) + e * e).sqrt() - e)

    def dual(self, g: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
        e = _per_sample(eps, g)
        return g / (group_norm_sq(g) + e * e).sqrt().unsqueeze(1)


SMOOTHINGS = {"huber": Huber, "sqrt": Sqrt}
