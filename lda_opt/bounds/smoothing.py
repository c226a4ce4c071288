"""Smoothing: Lipschitz constants of grad phi_eps, smoothing gaps and the eps-reduction count.

Catalogue: ``theory/lda.md``, ``theory/elda.md``, ``theory/meta_lda.md``; conventions in
:mod:`lda_opt.bounds`.
"""

from __future__ import annotations

import math

from ._common import _count, _nonneg, _open01, _pos


def lipschitz_huber(
    L_f: float, L_g: float, M: float, m: int, eps: float, kappa: float = 1.0
) -> float:
    r"""Lipschitz constant of ``grad phi_eps`` for the Huber (Nesterov) smoothing.

    .. math:: L_\varepsilon = L_f + \kappa\,(\sqrt{m}\,L_g + M^2/\varepsilon)

    LDA Lemma 3.2 / Lemma 3.3 (``L_eps``), ELDA Lemma 4.4 (``d_1 = m``, ``L_q = L_g``), with the
    library's weight ``kappa``.  **Certified upper bound** under (A1)-(A2) with ``L_f``,
    ``L_g``, ``M`` upper bounds of the true constants (``M`` and ``L_g`` for the whole Jacobian).
    Catalogue: ``theory/lda.md`` (Lemma 3.2), ``theory/elda.md`` (Lemma 4.4).
    """
    L_f, L_g, M = _nonneg("L_f", L_f), _nonneg("L_g", L_g), _nonneg("M", M)
    m, eps, kappa = _count("m", m, 1), _pos("eps", eps), _nonneg("kappa", kappa)
    return L_f + kappa * (math.sqrt(m) * L_g + M * M / eps)


def lipschitz_sqrt(
    L_f: float,
    L_g: float,
    M: float,
    m: int,
    eps: float,
    kappa: float = 1.0,
    *,
    sharp: bool = False,
) -> float:
    r"""Lipschitz constant of ``grad phi_eps`` for the square-root smoothing (meta-LDA eq. 5).

    ``sharp=False`` (default, the paper's): meta-LDA Lemma A2 and the proof of Lemma A3,

    .. math:: L_\varepsilon = L_f + \kappa\, m\,(L_g + 2M^2/\varepsilon).

    ``sharp=True``: ``L_f + kappa (sqrt(m) L_g + M^2/eps)`` -- the same constant as the Huber
    case, because ``s -> s / sqrt(|s|^2 + eps^2)`` is ``1/eps``-Lipschitz and has norm < 1
    (derivation in ``theory/meta_lda.md``, Lemma A2).  Both are **certified upper bounds**
    under (a1)-(a3); the sharp one is never larger.  Catalogue: ``theory/meta_lda.md``.
    """
    L_f, L_g, M = _nonneg("L_f", L_f), _nonneg("L_g", L_g), _nonneg("M", M)
    m, eps, kappa = _count("m", m, 1), _pos("eps", eps), _nonneg("kappa", kappa)
    if sharp:
        return L_f + kappa * (math.sqrt(m) * L_g + M * M / eps)
    return L_f + kappa * m * (L_g + 2.0 * M * M / eps)


def lipschitz_eps(
    kind: str, L_f: float, L_g: float, M: float, m: int, eps: float, kappa: float = 1.0
) -> float:
    r"""The Lipschitz constant of ``grad phi_eps`` that the checker and the complexity curves
    use for the smoothing ``kind``: :func:`lipschitz_huber` for ``"huber"``, the sharp
    :func:`lipschitz_sqrt` for ``"sqrt"`` (both ``L_f + kappa (sqrt(m) L_g + M^2/eps)``).
    **Certified upper bound**.  Catalogue: ``theory/lda.md`` (Lemma 3.2),
    ``theory/meta_lda.md`` (Lemma A2).
    """
    if kind == "huber":
        return lipschitz_huber(L_f, L_g, M, m, eps, kappa)
    if kind == "sqrt":
        return lipschitz_sqrt(L_f, L_g, M, m, eps, kappa, sharp=True)
    raise ValueError(f"kind must be 'huber' or 'sqrt' (got {kind!r})")


def smoothing_gap(kind: str, m: int, eps: float, kappa: float = 1.0) -> float:
    r"""Uniform smoothing gap ``sup_x (phi(x) - phi_eps(x))``.

    * ``"huber"``: ``kappa m eps / 2`` -- LDA eq. (6), ELDA eq. (4.5);
    * ``"sqrt"``: ``kappa m eps`` -- meta-LDA eq. (5) (the paper prints ``eps``; corrected).

    ``phi_eps <= phi <= phi_eps + gap``, and ``phi_eps + gap`` is non-decreasing in ``eps``
    (LDA Lemma 3.4, ELDA (4.30), meta-LDA Lemma A4 corrected), so ``phi_{eps_k}(x_k) + gap(eps_k)``
    is the monotone quantity along the iterates.  **Certified upper bound** (tight: the sup
    is attained for Huber when every ``||q_i|| >= eps`` and approached for Sqrt as
    ``||q_i|| -> inf``).  Catalogue: ``theory/README.md`` ("Weight kappa"), ``theory/lda.md``
    (Lemma 3.4), ``theory/meta_lda.md`` (Lemma A4).
    """
    m, eps, kappa = _count("m", m, 1), _pos("eps", eps), _nonneg("kappa", kappa)
    if kind == "huber":
        return 0.5 * kappa * m * eps
    if kind == "sqrt":
        return kappa * m * eps
    raise ValueError(f"kind must be 'huber' or 'sqrt' (got {kind!r})")


def num_reductions(eps0: float, eps_tol: float, sigma: float, gamma: float) -> int:
    r"""Number of eps-reductions until the stopping rule ``sigma * eps < eps_tol`` holds.

    ``ell = min{l >= 0 : sigma * eps0 * gamma**l < eps_tol}``; for ``ell >= 1`` it satisfies
    ``sigma eps0 gamma^(ell-1) >= eps_tol`` (LDA Thm 3.5 proof, ELDA (4.46)), i.e.
    ``ell <= 1 + log(sigma eps0 / eps_tol) / log(1/gamma)``.  ``eps`` is updated by repeated
    multiplication ``eps <- gamma * eps`` exactly as the algorithms do, so the count agrees
    with a float64 solver at the boundary.  **Exact** (an integer, not a bound).
    Catalogue: ``theory/lda.md`` (Thm 3.5), ``theory/elda.md`` (Thm 4.6).
    """
    eps0, eps_tol, sigma = _pos("eps0", eps0), _pos("eps_tol", eps_tol), _pos("sigma", sigma)
    gamma = _open01("gamma", gamma)
    est = math.log(sigma * eps0 / eps_tol) / math.log(1.0 / gamma)
    if est > 1e6:  # too many to iterate; closed form
        return math.floor(est) + 1
    ell, eps = 0, eps0
    while sigma * eps >= eps_tol:
        eps *= gamma
        ell += 1
    return ell
