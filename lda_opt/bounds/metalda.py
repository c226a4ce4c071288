"""Meta-LDA (meta-lda-mri-2021, Appendix A): the line search of Lemma A3 and its counts.

Catalogue: ``theory/meta_lda.md``; conventions in :mod:`lda_opt.bounds`.
"""

from __future__ import annotations

import math

from ._common import _ceil_safe, _count, _nonneg, _num, _open01, _pos


def metalda_step_threshold(L_eps: float, a: float, *, sharp: bool = False) -> float:
    r"""Step size below which the meta-LDA line search (A7) is guaranteed to accept.

    ``sharp=False`` (paper, Lemma A3 proof after (A10)): ``alpha <= 1/(2/a + L_eps)``.
    ``sharp=True``: ``alpha <= 1/(1/a + L_eps/2)`` (= 2x the paper's), from the descent lemma
    with the exact ``<grad phi_eps, v - x> = -||v-x||^2/alpha`` instead of (A9).  Both are
    **certified** sufficient thresholds under (a1)-(a3) with ``L_eps`` an upper bound of the
    Lipschitz constant (:func:`lipschitz_sqrt`).  Catalogue: ``theory/meta_lda.md`` (Lemma A3).
    """
    L_eps, a = _pos("L_eps", L_eps), _pos("a", a)
    if sharp:
        return 1.0 / (1.0 / a + 0.5 * L_eps)
    return 1.0 / (2.0 / a + L_eps)


def metalda_max_backtracks(
    alpha0: float, L_eps: float, a: float, rho: float, *, sharp: bool = False
) -> int:
    r"""Maximum number of rho-shrinks of the meta-LDA line search (Algorithm 1, line 12):

    .. math:: j_{\max} = \max\big(0, \lceil \log(\alpha_0/T)/\log(1/\rho)\rceil\big),
              \quad T = \text{metalda\_step\_threshold}(L_\varepsilon, a).

    The number of evaluations of (A7) is ``<= j_max + 1``.  **Certified upper bound**.
    Catalogue: ``theory/meta_lda.md`` (Lemma A3).
    """
    alpha0, rho = _pos("alpha0", alpha0), _open01("rho", rho)
    T = metalda_step_threshold(L_eps, a, sharp=sharp)
    return max(0, _ceil_safe(math.log(alpha0 / T) / math.log(1.0 / rho)))


def metalda_min_step(
    alpha0: float, L_eps: float, a: float, rho: float, *, sharp: bool = False
) -> float:
    r"""Lower bound ``min(alpha0, rho T)`` on the accepted meta-LDA v-step (``T`` as in
    :func:`metalda_step_threshold`).  Any ``delta <= L_eps * metalda_min_step(...)`` is an
    admissible ``delta`` of Lemma A3 (``alpha_t >= delta/L_eps``).  **Certified lower bound**.
    Catalogue: ``theory/meta_lda.md`` (Lemma A3).
    """
    alpha0, rho = _pos("alpha0", alpha0), _open01("rho", rho)
    return min(alpha0, rho * metalda_step_threshold(L_eps, a, sharp=sharp))


def metalda_C(L_eps: float, a: float, delta: float) -> float:
    r"""``C = max{a L_eps^2 / delta^2, a^3}`` of meta-LDA Lemma A3 (A15), for step sizes
    ``alpha_t >= delta / L_eps`` on the v-branch; then
    ``||grad phi_eps(x_t)||^2 <= C (phi_eps(x_t) - phi_eps(x_{t+1}))``.
    **Certified upper bound**.  Catalogue: ``theory/meta_lda.md`` (Lemma A3).
    """
    L_eps, a, delta = _pos("L_eps", L_eps), _pos("a", a), _pos("delta", delta)
    return max(a * L_eps**2 / delta**2, a**3)


def metalda_fixed_eps_iterations(
    L_eps: float,
    a: float,
    delta: float,
    eta: float,
    phi_eps_x0: float,
    phi_star: float,
    m: int,
    eps: float,
    kappa: float = 1.0,
) -> float:
    r"""Meta-LDA Lemma A3 statement 2, corrected (see ``theory/meta_lda.md``):

    .. math:: \min\{t : \|\nabla\phi_\varepsilon(x_{t+1})\| < \eta\}
              \le C\,\frac{\phi_\varepsilon(x_0) - \phi^* + \kappa m \varepsilon}{\eta^2},
              \quad C = \max\{aL_\varepsilon^2/\delta^2, a^3\}.

    The printed statement has ``max{t : ... >= eta}``, omits ``1/eta^2`` and writes ``+ eps``
    for the Sqrt smoothing gap ``kappa m eps``.  The number of iterations until the
    criterion first holds is this index ``+ 1``.  **Certified upper bound**.
    Catalogue: ``theory/meta_lda.md`` (Lemma A3).
    """
    C = metalda_C(L_eps, a, delta)
    eta = _pos("eta", eta)
    phi_eps_x0, phi_star = _num("phi_eps_x0", phi_eps_x0), _num("phi_star", phi_star)
    m, eps, kappa = _count("m", m, 1), _pos("eps", eps), _nonneg("kappa", kappa)
    num = phi_eps_x0 - phi_star + kappa * m * eps
    if num < 0:
        raise ValueError("phi_eps_x0 must be >= phi_star - kappa*m*eps")
    return C * num / (eta * eta)
