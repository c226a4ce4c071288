"""Modified ELDA (u-lda-modified-elda-transfer, Sec. 4.2): Lemmas 4.4-4.5 and Thm 4.6.

Catalogue: ``theory/elda.md``; conventions in :mod:`lda_opt.bounds`.
"""

from __future__ import annotations

import math

from ._common import _ceil_safe, _count, _gap_pair, _nonneg, _num, _open01, _pos


def _elda_common(alpha_bar, L_eps, eta3, eps, rho):
    return (
        _pos("alpha_bar", alpha_bar),
        _pos("L_eps", L_eps),
        _pos("eta3", eta3),
        _pos("eps", eps),
        _open01("rho", rho),
    )


def elda_lmax(alpha_bar: float, L_eps: float, eta3: float, eps: float, rho: float) -> int:
    r"""Maximum number of trials of the line-search condition (4.11), ELDA eq. (4.13) corrected:

    .. math:: \ell_{\max} = \max\Big(0, \Big\lceil \frac{\log[\bar\alpha(L_\varepsilon/2
              + \eta_3/\varepsilon)]}{\log(1/\rho)}\Big\rceil\Big) + 1.

    The step ``alpha_bar rho^j`` satisfies (4.19), hence (4.11), as soon as
    ``alpha_bar rho^j <= 1/(L_eps/2 + eta3/eps)``; so the number ``ell_t`` of rho-shrinks is
    ``<= ell_max - 1`` and the number of evaluations of (4.11) is ``<= ell_max``.  The printed
    (4.13) lacks the ``max(0, .)`` (it is negative for small ``alpha_bar``).  **Certified upper
    bound** under (A1)-(A2) (``L_eps`` from :func:`lipschitz_huber`).  Integer ceilings are
    rounded up when within float rounding.  Catalogue: ``theory/elda.md`` (Lemma 4.5).
    """
    alpha_bar, L_eps, eta3, eps, rho = _elda_common(alpha_bar, L_eps, eta3, eps, rho)
    x = math.log(alpha_bar * (0.5 * L_eps + eta3 / eps)) / math.log(1.0 / rho)
    return max(0, _ceil_safe(x)) + 1


def elda_min_step(alpha_bar: float, L_eps: float, eta3: float, eps: float, rho: float) -> float:
    r"""Lower bound on the accepted v-step ``alpha_bar rho^(ell_t)`` of ELDA (corrected (4.20)):

    .. math:: \bar\alpha\rho^{\ell_t} \ge \min\{\bar\alpha,\ \rho/(L_\varepsilon/2 + \eta_3/\varepsilon)\}.

    The printed (4.20) gives only the second term, which fails when
    ``alpha_bar (L_eps/2 + eta3/eps) < rho`` (no shrink happens).  **Certified lower bound**.
    Catalogue: ``theory/elda.md`` (Lemma 4.5).
    """
    alpha_bar, L_eps, eta3, eps, rho = _elda_common(alpha_bar, L_eps, eta3, eps, rho)
    return min(alpha_bar, rho / (0.5 * L_eps + eta3 / eps))


def elda_C_eps(
    L_eps: float,
    eps: float,
    eta1: float,
    eta2: float,
    eta3: float,
    rho: float,
    alpha_bar: float,
) -> float:
    r"""The constant ``C_eps`` of ELDA eq. (4.25), corrected with :func:`elda_min_step`:

    .. math:: C_\varepsilon = \max\Big\{\frac{\varepsilon}{\eta_3}\max\Big(
              \frac{(L_\varepsilon/2+\eta_3/\varepsilon)^2}{\rho^2}, \frac{1}{\bar\alpha^2}\Big),
              \ \frac{2}{\eta_1^2\eta_2}\Big\}

    so that ``||grad phi_eps(x_t)||^2 <= C_eps (phi_eps(x_t) - phi_eps(x_{t+1}))`` (4.24).
    Equals the printed (4.25) whenever ``alpha_bar (L_eps/2 + eta3/eps) >= rho``.
    **Certified upper bound**.  Catalogue: ``theory/elda.md`` (Lemma 4.5).
    """
    L_eps, eps = _pos("L_eps", L_eps), _pos("eps", eps)
    eta1, eta2, eta3 = _pos("eta1", eta1), _pos("eta2", eta2), _pos("eta3", eta3)
    rho, alpha_bar = _open01("rho", rho), _pos("alpha_bar", alpha_bar)
    s = 0.5 * L_eps + eta3 / eps
    v_branch = eps / eta3 * max(s * s / (rho * rho), 1.0 / (alpha_bar * alpha_bar))
    return max(v_branch, 2.0 / (eta1 * eta1 * eta2))


def elda_fixed_eps_iterations(
    L_eps: float,
    eps: float,
    eta: float,
    phi_eps_x0: float,
    phi_star: float,
    m: int,
    eta1: float,
    eta2: float,
    eta3: float,
    rho: float,
    alpha_bar: float,
    kappa: float = 1.0,
) -> float:
    r"""ELDA Lemma 4.5 statement 3, eq. (4.14) (fixed ``eps``):

    .. math:: \min\{t : \|\nabla\phi_\varepsilon(x_{t+1})\| < \eta\}
              \le C_\varepsilon\,\frac{\phi_\varepsilon(x_0) - \phi^* + \kappa m\varepsilon/2}{\eta^2}

    with ``C_eps`` from :func:`elda_C_eps`.  The number of iterations until the criterion
    first holds is this index ``+ 1``.  **Certified upper bound** under (A1)-(A3).
    Catalogue: ``theory/elda.md`` (Lemma 4.5).
    """
    C = elda_C_eps(L_eps, eps, eta1, eta2, eta3, rho, alpha_bar)
    eta = _pos("eta", eta)
    phi_eps_x0, phi_star = _num("phi_eps_x0", phi_eps_x0), _num("phi_star", phi_star)
    m, kappa = _count("m", m, 1), _nonneg("kappa", kappa)
    num = phi_eps_x0 - phi_star + 0.5 * kappa * m * eps
    if num < 0:
        raise ValueError("phi_eps_x0 must be >= phi_star - kappa*m*eps/2")
    return C * num / (eta * eta)


def elda_segment_constants(
    L_f: float,
    L_g: float,
    M: float,
    m: int,
    phi_x0: float,
    phi_star: float,
    eps0: float,
    sigma: float,
    eta1: float,
    eta2: float,
    eta3: float,
    rho: float,
    alpha_bar: float,
    kappa: float = 1.0,
) -> tuple[float, float]:
    r"""Explicit constants ``(C1, C2)`` of ELDA Thm 4.6 eq. (4.27) (the paper proves only
    existence).  Derivation in ``theory/elda.md``.  With ``Delta = phi(x0) - phi* + kappa m
    eps0/2``, ``a = (L_f + kappa sqrt(m) L_g)/2``, ``b = kappa M^2/2 + eta3``:

    .. math:: C_1 = \frac{b^2\,\Delta}{\eta_3\rho^2\sigma^2\varepsilon_0^3},\qquad
              C_2 = \Big[\frac{a^2\varepsilon_0 + 2ab}{\eta_3\rho^2}
              + \max\Big(e, \frac{2}{\eta_1^2\eta_2}\Big)\Big]\frac{\Delta}{\sigma^2\varepsilon_0^2},

    where ``e = eps0/(eta3 alpha_bar^2)`` if ``alpha_bar (L_{eps0}/2 + eta3/eps0) < rho`` and
    ``e = 0`` otherwise (the correction of (4.20)).  Then :func:`elda_segment_bound` is a
    **certified upper bound** on every segment length.  ``phi_x0`` may be ``phi(x0)`` or the
    smaller ``phi_{eps0}(x0)``; ``phi_star`` any lower bound of ``min phi``.
    Catalogue: ``theory/elda.md`` (Thm 4.6).
    """
    L_f, L_g, M = _nonneg("L_f", L_f), _nonneg("L_g", L_g), _nonneg("M", M)
    m, kappa = _count("m", m, 1), _nonneg("kappa", kappa)
    phi_x0, phi_star = _gap_pair(phi_x0, phi_star)
    eps0, sigma = _pos("eps0", eps0), _pos("sigma", sigma)
    eta1, eta2, eta3 = _pos("eta1", eta1), _pos("eta2", eta2), _pos("eta3", eta3)
    rho, alpha_bar = _open01("rho", rho), _pos("alpha_bar", alpha_bar)
    delta = phi_x0 - phi_star + 0.5 * kappa * m * eps0
    a = 0.5 * (L_f + kappa * math.sqrt(m) * L_g)
    b = 0.5 * kappa * M * M + eta3
    L_eps0 = 2.0 * a + kappa * M * M / eps0
    e = eps0 / (eta3 * alpha_bar**2) if alpha_bar * (0.5 * L_eps0 + eta3 / eps0) < rho else 0.0
    C1 = b * b * delta / (eta3 * rho**2 * sigma**2 * eps0**3)
    C2 = ((a * a * eps0 + 2 * a * b) / (eta3 * rho**2) + max(e, 2.0 / (eta1**2 * eta2))) * (
        delta / (sigma**2 * eps0**2)
    )
    return C1, C2


def elda_segment_bound(l: int, C1: float, C2: float, gamma: float) -> float:
    r"""Length of the l-th eps-segment of ELDA, Thm 4.6 eq. (4.27) corrected:

    .. math:: t_{l+1} - t_l \le 1 + C_1\gamma^{-3l-2} + C_2\gamma^{-2l-2}

    (``+1`` as in :func:`lda_segment_bound`).  **Certified upper bound** with ``(C1, C2)`` from
    :func:`elda_segment_constants`.  Catalogue: ``theory/elda.md`` (Thm 4.6).
    """
    l = _count("l", l, 0)
    C1, C2, gamma = _nonneg("C1", C1), _nonneg("C2", C2), _open01("gamma", gamma)
    return 1.0 + C1 * gamma ** (-3 * l - 2) + C2 * gamma ** (-2 * l - 2)


def elda_total_bound_sum(ell: int, C1: float, C2: float, gamma: float) -> float:
    r"""ELDA eq. (4.28) in terms of the number of reductions ``ell`` (= ``hat ell``), plus ``ell``:

    .. math:: \sum_{l=0}^{\ell-1}(1 + C_1\gamma^{-3l-2} + C_2\gamma^{-2l-2})
              = \ell + \frac{C_1(\gamma^{-3(\ell-1)}-\gamma^3)}{(1-\gamma^3)\gamma^2}
              + \frac{C_2(\gamma^{-2(\ell-1)}-\gamma^2)}{(1-\gamma^2)\gamma^2}.

    (The printed proof sums from ``l = 1``; the closed form (4.28) is exactly the sum from
    ``l = 0``.)  **Certified upper bound** given ``ell``.  Catalogue: ``theory/elda.md``.
    """
    ell = _count("ell", ell, 0)
    C1, C2, gamma = _nonneg("C1", C1), _nonneg("C2", C2), _open01("gamma", gamma)
    return math.fsum(elda_segment_bound(l, C1, C2, gamma) for l in range(ell))


def elda_total_bound(
    eps_tol: float, C1: float, C2: float, sigma: float, eps0: float, gamma: float
) -> float:
    r"""Closed form of ELDA Thm 4.6 eq. (4.28) in ``eps_tol`` (substituting (4.46),
    ``gamma^-(ell-1) <= sigma eps0/eps_tol =: R``), plus the bound on ``ell``:

    .. math:: \frac{C_1(R^3-\gamma^3)}{(1-\gamma^3)\gamma^2}
              + \frac{C_2(R^2-\gamma^2)}{(1-\gamma^2)\gamma^2}
              + 1 + \frac{\log R}{\log(1/\gamma)} = O(\varepsilon_{tol}^{-3}).

    ``>=`` :func:`elda_total_bound_sum` at ``ell = num_reductions(...)``.  Returns 0 when
    ``R < 1``.  **Certified upper bound**.  Catalogue: ``theory/elda.md`` (Thm 4.6).
    """
    eps_tol, sigma, eps0 = _pos("eps_tol", eps_tol), _pos("sigma", sigma), _pos("eps0", eps0)
    C1, C2, gamma = _nonneg("C1", C1), _nonneg("C2", C2), _open01("gamma", gamma)
    R = sigma * eps0 / eps_tol
    if R < 1.0:
        return 0.0
    g2, g3 = gamma**2, gamma**3
    return (
        C1 * (R**3 - g3) / ((1 - g3) * g2)
        + C2 * (R**2 - g2) / ((1 - g2) * g2)
        + 1.0
        + math.log(R) / math.log(1.0 / gamma)
    )
