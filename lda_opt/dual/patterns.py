"""Arrangement patterns and the diagonal matrices Q^S (dual-st-cnn-2024, eqs. 5-12, 23, 42).

For a filter ``u`` and threshold ``lambda`` the rows of the patch matrix ``Y`` split into
(eq. 6, written as a partition; see ``theory/dual_st_cnn.md`` for why eq. 8's overlapping
definition of S_1, S_2, S_3 cannot be used literally)::

    S1 = H1 = {i : y_i^T u < -lambda}      (ST output y_i^T u + lambda < 0)
    S2 = H2 = {i : |y_i^T u| <= lambda}     (ST output 0)
    S3 = H3 = {i : y_i^T u >  lambda}      (ST output y_i^T u - lambda > 0)

The pattern is the ternary vector ``s(u) = sign(tau(Y u)_lambda)`` in ``{-1, 0, +1}^I``; it
carries the same information as the pair ``(sign(Y u + lambda), sign(Y u - lambda))`` of
eq. (42).  The diagonal of ``Q^S`` (eqs. 9, 23) is::

    Q_ii = (y_i^T u + lambda) / y_i^T u = 1 - lambda / |y_i^T u|   on S1,
    Q_ii = 0                                                      on S2,
    Q_ii = (y_i^T u - lambda) / y_i^T u = 1 - lambda / |y_i^T u|   on S3,

so ``Q^S Y u = tau(Y u)_lambda`` holds for the generating ``u`` (tested), and
``0 <= Q_ii < 1``.  Note that ``Q^S`` depends on the *magnitudes* ``|y_i^T u|``, not only on
the pattern: two filters with the same pattern give different ``Q^S``.  Deduplication is
by pattern (the first sampled ``u-bar`` of each pattern is kept), as the paper does for the
ReLU diagonal matrices it builds on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .primal import _check_lam

__all__ = ["ArrangementPatterns", "q_diagonal", "sample_patterns", "st_pattern"]


def st_pattern(Y: np.ndarray, u: np.ndarray, lam: float) -> np.ndarray:
    """Ternary pattern ``s_i in {-1, 0, +1}`` of eq. (6): -1 on S1, 0 on S2, +1 on S3.

    ``u`` may be one filter ``(m^2,)`` (result ``(I,)``) or a stack ``(P, m^2)``
    (result ``(P, I)``).
    """
    a = _responses(Y, u, lam)
    s = np.zeros(a.shape, dtype=np.int8)
    s[a > lam] = 1
    s[a < -lam] = -1
    return s


def _responses(Y, u, lam) -> np.ndarray:
    """``u @ Y.T`` (``(I,)`` or ``(P, I)``) after checking ``lam`` and the shapes."""
    _check_lam(lam)
    Y = np.asarray(Y, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    if Y.ndim != 2:
        raise ValueError(f"Y must have shape (I, m^2); got {Y.shape}")
    if u.ndim not in (1, 2) or u.shape[-1] != Y.shape[1]:
        raise ValueError(f"u must have shape (m^2,) or (P, m^2) with m^2 = {Y.shape[1]}; "
                         f"got {u.shape}")
    return u @ Y.T


def q_diagonal(Y: np.ndarray, u: np.ndarray, lam: float) -> np.ndarray:
    """Diagonal of ``Q^S`` (eqs. 9, 23) for filter(s) ``u``; shape as :func:`st_pattern`."""
    a = _responses(Y, u, lam)
    active = np.abs(a) > lam
    q = np.zeros(a.shape, dtype=np.float64)
    q[active] = 1.0 - lam / np.abs(a[active])
    return q


@dataclass(frozen=True, kw_only=True)
class ArrangementPatterns:
    """Deduplicated patterns: generators ``u_bar (P, m^2)``, ``sign (P, I)``, ``q (P, I)``.

    ``n_sampled`` filters were drawn; ``n_inactive`` of them had the all-zero pattern (its
    ``Q^S = 0`` adds nothing to eq. 22, so it is dropped); ``P = len(u_bar)`` patterns are
    distinct.
    """

    u_bar: np.ndarray
    sign: np.ndarray
    q: np.ndarray
    lam: float
    n_sampled: int
    n_inactive: int

    @property
    def n_patterns(self) -> int:
        return int(self.u_bar.shape[0])

    def q_for(self, Y: np.ndarray) -> np.ndarray:
        """``Q^S`` diagonals of the same generators on another patch matrix (test images)."""
        return q_diagonal(Y, self.u_bar, self.lam)

    def sign_for(self, Y: np.ndarray) -> np.ndarray:
        return st_pattern(Y, self.u_bar, self.lam)


def sample_patterns(
    Y: np.ndarray, lam: float, *, n_samples: int, u_scale: float, seed: int
) -> ArrangementPatterns:
    """Sample ``u-bar ~ N(0, u_scale^2 I)`` (paper, Remark after Theorem 1) and deduplicate.

    Returns the distinct non-zero patterns with their generating ``u-bar`` and ``Q^S``.
    """
    if not (isinstance(n_samples, int) and n_samples >= 1):
        raise ValueError(f"n_samples must be an integer >= 1; got {n_samples!r}")
    if not (math.isfinite(u_scale) and u_scale > 0):
        raise ValueError(f"u_scale must be a finite number > 0; got {u_scale!r}")
    _check_lam(lam)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or not np.all(np.isfinite(Y)):
        raise ValueError(f"Y must be a finite array of shape (I, m^2); got shape {Y.shape}")
    rng = np.random.default_rng(seed)
    U = u_scale * rng.standard_normal((n_samples, Y.shape[1]))
    S = st_pattern(Y, U, lam)
    seen: dict[bytes, int] = {}
    keep: list[int] = []
    n_inactive = 0
    for j in range(n_samples):
        if not S[j].any():
            n_inactive += 1
            continue
        key = S[j].tobytes()
        if key not in seen:
            seen[key] = j
            keep.append(j)
    U = U[keep]
    return ArrangementPatterns(
        u_bar=U,
        sign=S[keep],
        q=q_diagonal(Y, U, lam),
        lam=float(lam),
        n_sampled=n_samples,
        n_inactive=n_inactive,
    )
