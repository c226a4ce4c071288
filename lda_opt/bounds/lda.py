"""LDA (lda-learnable-descent-2021, Sec. 3.3): step range, Lemma 3.3 and Thm 3.5.

Catalogue: ``theory/lda.md``; conventions in :mod:`lda_opt.bounds`.
"""

from __future__ import annotations

import math

from ._common import _count, _gap_pair, _nonneg, _num, _open01, _pos


def lda_step_range(L_eps: float, delta1: float, delta2: float) -> tuple[float, float]:
    r"""Admissible step sizes ``1/(delta1 L_eps) <= alpha_k <= 1/(delta2 L_eps)``.

    LDA Lemma 3.3 / Thm 3.5 (``delta1 >= delta2 > 1``).  Exact interval.
    Catalogue: ``theory/lda.md`` (Lemma 3.3).
    """
    L_eps, delta1, delta2 = _pos("L_eps", L_eps), _num("delta1", delta1), _num("delta2", delta2)
    _check_deltas(delta1, delta2)
    return 1.0 / (delta1 * L_eps), 1.0 / (delta2 * L_eps)


def _check_deltas(delta1: float, delta2: float) -> None:
    if not delta2 > 1:
        raise ValueError(f"delta2 must be > 1 (got {delta2})")
    if not delta1 >= delta2:
        raise ValueError(f"delta1 must be >= delta2 (got delta1={delta1}, delta2={delta2})")


def lda_fixed_eps_iterations(
    L_eps: float,
    eta: float,
    phi_eps_x0: float,
    phi_star: float,
    m: int,
    eps: float,
    delta1: float,
    delta2: float,
    kappa: float = 1.0,
) -> float:
    r"""LDA Lemma 3.3, statement 2 (fixed ``eps``, step sizes in :func:`lda_step_range`):

    .. math:: \min\{k : \|\nabla\phi_\varepsilon(x_{k+1})\| < \eta\}
              \le \frac{\delta_1\delta_2 L_\varepsilon\,(2\phi_\varepsilon(x_0) - 2\phi^*
              + \kappa m\varepsilon)}{(\delta_2 - 1)\,\eta^2}.

    ``kappa m eps`` replaces the paper's ``m eps`` (weight kappa).  The number of iterations
    run with this ``eps`` until the criterion first holds is this index ``+ 1``.
    **Certified upper bound** under (A1)-(A3); ``phi_star`` may be any lower bound of
    ``min phi``.  Catalogue: ``theory/lda.md`` (Lemma 3.3).
    """
    L_eps, eta = _pos("L_eps", L_eps), _pos("eta", eta)
    phi_eps_x0, phi_star = _num("phi_eps_x0", phi_eps_x0), _num("phi_star", phi_star)
    m, eps, kappa = _count("m", m, 1), _pos("eps", eps), _nonneg("kappa", kappa)
    delta1, delta2 = _num("delta1", delta1), _num("delta2", delta2)
    _check_deltas(delta1, delta2)
    num = 2.0 * phi_eps_x0 - 2.0 * phi_star + kappa * m * eps
    if num < 0:
        raise ValueError(
            "phi_eps_x0 must be >= phi_star - kappa*m*eps/2 (phi_eps >= phi - gap >= phi_star - gap)"
        )
    return delta1 * delta2 * L_eps * num / ((delta2 - 1.0) * eta * eta)


def lda_segment_constants(
    delta1: float,
    delta2: float,
    L_f: float,
    L_g: float,
    M: float,
    m: int,
    phi_x0: float,
    phi_star: float,
    eps0: float,
    sigma: float,
    gamma: float,
    kappa: float = 1.0,
    *,
    paper: bool = False,
) -> tuple[float, float]:
    r"""Constants ``(c1, c2)`` of LDA Thm 3.5 eq. (28), corrected.

    With ``D = 2 phi(x0) - 2 phi* + kappa m eps0``:

    .. math:: c_1 = \frac{\delta_1\delta_2 (L_f + \kappa\sqrt m L_g) D}{(\delta_2-1)\sigma^2
              \varepsilon_0^2\gamma^2},\qquad
              c_2 = \frac{\delta_1\delta_2 \kappa M^2 D}{(\delta_2-1)\sigma^2\varepsilon_0^3\gamma^2}.

    Corrections to the printed (28) (``theory/lda.md``): ``(delta2 - 1)`` instead of
    ``(delta1 - 1)`` (Lemma 3.3 gives delta2; the printed form is *not* implied since
    ``delta1 >= delta2``); ``gamma^2`` instead of ``gamma^3`` in ``c2`` (the proof's
    ``eps * eta^2 = sigma^2 eps0^3 gamma^(3l+2)``; the printed gamma^3 is looser, still valid);
    weight ``kappa``.  ``paper=True`` returns the printed (28) (with ``kappa`` inserted) for
    comparison only -- it is **not** a certified constant.

    With these constants :func:`lda_segment_bound` is a **certified upper bound** on each
    segment length.  ``phi_x0`` may be ``phi(x0)`` or the smaller ``phi_{eps0}(x0)``
    (monotonicity (30)); ``phi_star`` any lower bound of ``min phi``.
    Catalogue: ``theory/lda.md`` (Thm 3.5).
    """
    delta1, delta2 = _num("delta1", delta1), _num("delta2", delta2)
    _check_deltas(delta1, delta2)
    L_f, L_g, M = _nonneg("L_f", L_f), _nonneg("L_g", L_g), _nonneg("M", M)
    m, kappa = _count("m", m, 1), _nonneg("kappa", kappa)
    phi_x0, phi_star = _gap_pair(phi_x0, phi_star)
    eps0, sigma, gamma = _pos("eps0", eps0), _pos("sigma", sigma), _open01("gamma", gamma)
    D = 2.0 * (phi_x0 - phi_star) + kappa * m * eps0
    L0 = L_f + kappa * math.sqrt(m) * L_g
    if paper:
        den = (delta1 - 1.0) * sigma**2
        if den == 0.0:
            raise ValueError("paper=True needs delta1 > 1")
        c1 = delta1 * delta2 * L0 * D / (den * eps0**2 * gamma**2)
        c2 = delta1 * delta2 * M * M * kappa * D / (den * eps0**3 * gamma**3)
        return c1, c2
    den = (delta2 - 1.0) * sigma**2 * gamma**2
    c1 = delta1 * delta2 * L0 * D / (den * eps0**2)
    c2 = delta1 * delta2 * kappa * M * M * D / (den * eps0**3)
    return c1, c2


def lda_segment_bound(l: int, c1: float, c2: float, gamma: float) -> float:
    r"""Length of the l-th eps-segment of LDA, Thm 3.5 eq. (27) corrected:

    .. math:: k_{l+1} - k_l \le 1 + c_1\gamma^{-2l} + c_2\gamma^{-3l}.

    The ``+1``: Lemma 3.3 bounds the *index* ``min{k : ||grad phi_eps(x_{k+1})|| < eta}`` of the
    segment's last iteration, so the segment has at most one more iteration (the printed (27)
    fails e.g. whenever ``c1 + c2 < 1``, which happens for large sigma).  **Certified upper
    bound** with ``(c1, c2)`` from :func:`lda_segment_constants`.  Catalogue: ``theory/lda.md``.
    """
    l = _count("l", l, 0)
    c1, c2, gamma = _nonneg("c1", c1), _nonneg("c2", c2), _open01("gamma", gamma)
    return 1.0 + c1 * gamma ** (-2 * l) + c2 * gamma ** (-3 * l)


def lda_total_bound_sum(ell: int, c1: float, c2: float, gamma: float) -> float:
    r"""Finite-sum form of LDA Thm 3.5(2): ``sum_{l=0}^{ell-1}`` :func:`lda_segment_bound`.

    Equals ``ell + c1 (gamma^(-2(ell-1)) - gamma^2)/(1-gamma^2) + c2 (gamma^(-3(ell-1)) -
    gamma^3)/(1-gamma^3)`` (the proof's intermediate expression, plus ``ell``).  **Certified
    upper bound** on the iterations up to the ell-th reduction, given ``ell`` (use
    :func:`num_reductions`).  Catalogue: ``theory/lda.md`` (Thm 3.5).
    """
    ell = _count("ell", ell, 0)
    c1, c2, gamma = _nonneg("c1", c1), _nonneg("c2", c2), _open01("gamma", gamma)
    return math.fsum(lda_segment_bound(l, c1, c2, gamma) for l in range(ell))


def lda_total_bound(
    eps_tol: float, c1: float, c2: float, sigma: float, eps0: float, gamma: float
) -> float:
    r"""Closed form of LDA Thm 3.5 eq. (29), plus the ``ell`` from the corrected (27):

    .. math:: \frac{c_1\sigma^2\varepsilon_0^2}{1-\gamma^2}\varepsilon_{tol}^{-2}
              + \frac{c_2\sigma^3\varepsilon_0^3}{1-\gamma^3}\varepsilon_{tol}^{-3}
              - \frac{c_1\gamma^2 + c_2\gamma^3 - (c_1+c_2)\gamma^5}{(1-\gamma^2)(1-\gamma^3)}
              + 1 + \frac{\log(\sigma\varepsilon_0/\varepsilon_{tol})}{\log(1/\gamma)}
              = O(\varepsilon_{tol}^{-3}).

    Obtained from :func:`lda_total_bound_sum` with ``gamma^-(ell-1) <= sigma eps0/eps_tol``;
    hence ``>=`` it for ``ell = num_reductions(...)``.  Returns 0 when ``sigma eps0 < eps_tol``
    (no reduction needed).  **Certified upper bound** on the iterations up to and including
    the last reduction.  Catalogue: ``theory/lda.md`` (Thm 3.5).
    """
    eps_tol, sigma, eps0 = _pos("eps_tol", eps_tol), _pos("sigma", sigma), _pos("eps0", eps0)
    c1, c2, gamma = _nonneg("c1", c1), _nonneg("c2", c2), _open01("gamma", gamma)
    r = sigma * eps0 / eps_tol
    if r < 1.0:
        return 0.0
    g2, g3 = gamma**2, gamma**3
    main = c1 * r**2 / (1 - g2) + c2 * r**3 / (1 - g3)
    sub = (c1 * g2 + c2 * g3 - (c1 + c2) * gamma**5) / ((1 - g2) * (1 - g3))
    return main - sub + 1.0 + math.log(r) / math.log(1.0 / gamma)
