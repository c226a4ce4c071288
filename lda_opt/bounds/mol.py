r"""Contraction and robustness constants of MOL (mol-deq-supplement eq. 1-2; ``theory/mol.md``).

With ``R = (I + a lam A^H A)^{-1}`` (``||R|| <= 1``: ``A^H A`` is positive semidefinite) and
``L_H = Lip(H)``, the map ``T(x) = R((1 - a) x + a H(x))`` satisfies

.. math:: \mathrm{Lip}(T) \le |1 - a| + a L_H,

which is below 1 iff ``L_H < 1`` and ``0 < a < 2 / (1 + L_H)``.  The fixed point solves
``F(x*) + lam A^H (A x* - b) = 0`` with ``F = I - H`` ``(1 - L_H)``-strongly monotone, so it is
unique and

.. math:: \|x^*(b_1) - x^*(b_2)\| \le \frac{\lambda \|A^H (b_1 - b_2)\|}{1 - L_H}.
"""

from __future__ import annotations

import math

from ._common import _nonneg, _pos

__all__ = ["mol_contraction_factor", "mol_fixed_point_error", "mol_iterations", "mol_monotonicity",
           "mol_robustness_bound", "mol_step_range"]


def _lip(L_H) -> float:
    return _nonneg("L_H", L_H)


def mol_contraction_factor(a: float, L_H: float) -> float:
    """``|1 - a| + a L_H``: a **certified upper bound** of ``Lip(T)`` for a step ``a > 0``
    and ``Lip(H) <= L_H`` (``theory/mol.md``, Lemma 1).  Below 1 iff the pair lies in
    :func:`mol_step_range`."""
    a = _pos("a", a)
    return abs(1.0 - a) + a * _lip(L_H)


def mol_step_range(L_H: float) -> tuple[float, float]:
    """The open interval ``(0, 2 / (1 + L_H))`` of steps ``a`` for which
    :func:`mol_contraction_factor` is below 1; empty (``(0, 0)``) when ``L_H >= 1``
    (``theory/mol.md``, Lemma 1)."""
    L = _lip(L_H)
    return (0.0, 2.0 / (1.0 + L)) if L < 1 else (0.0, 0.0)


def mol_monotonicity(L_H: float) -> float:
    """``m = 1 - L_H``: ``F = I - H`` is m-strongly monotone, ``<F(x) - F(y), x - y> >= m
    ||x - y||^2`` (a **certified lower bound** of the monotonicity constant; ``theory/mol.md``,
    Lemma 2).  Negative when ``L_H > 1`` (no guarantee)."""
    return 1.0 - _lip(L_H)


def mol_robustness_bound(lam: float, L_H: float, AH_db_norm: float) -> float:
    """``lam ||A^H db|| / (1 - L_H)``: a **certified upper bound** of ``||x*(b + db) - x*(b)||``
    (``theory/mol.md``, Theorem 3); ``inf`` when ``L_H >= 1``.  For MRI ``||A^H db|| <=
    ||db||``."""
    lam, nrm, L = _nonneg("lam", lam), _nonneg("AH_db_norm", AH_db_norm), _lip(L_H)
    if L >= 1:
        return math.inf
    return lam * nrm / (1.0 - L)


def mol_fixed_point_error(q: float, step_norm: float) -> float:
    """``q / (1 - q) ||x_n - x_{n-1}||``: a **certified upper bound** of ``||x_n - x*||`` for a
    ``q``-contraction (Banach's a-posteriori estimate; ``theory/mol.md``, Lemma 1); ``inf``
    for ``q >= 1``."""
    q, s = _nonneg("q", q), _nonneg("step_norm", step_norm)
    return math.inf if q >= 1 else q / (1.0 - q) * s


def mol_iterations(q: float, tol: float) -> int:
    """``ceil(log(tol) / log(q))``: the iterations after which ``||x_n - x*|| <= tol ||x_0 -
    x*||`` for a ``q``-contraction (a **certified upper bound** of the count; ``theory/mol.md``,
    Lemma 1).  ``q`` in [0, 1), ``tol`` in (0, 1)."""
    q, tol = _nonneg("q", q), _pos("tol", tol)
    if q >= 1 or tol >= 1:
        raise ValueError(f"need 0 <= q < 1 and 0 < tol < 1; got q = {q}, tol = {tol}")
    return 1 if q == 0 else max(1, math.ceil(math.log(tol) / math.log(q) - 1e-12))
