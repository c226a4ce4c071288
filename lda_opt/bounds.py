r"""Theorem constants and bounds for LDA, meta-LDA and the modified ELDA.

Every function is pure: floats (or numpy / torch scalars) in, Python floats or ints out.
Each docstring cites the equation it evaluates, says whether the value is a **certified upper
bound** (valid whenever the stated assumptions hold, including the corrections listed in
``theory/``), a **certified lower bound**, or an **estimate**, and names its entry in the
theorem catalogue (``theory/lda.md``, ``theory/elda.md``, ``theory/meta_lda.md``).

Conventions (``theory/README.md``):

* The library minimizes ``phi = f + kappa * r`` with ``r(x) = sum_{i=1}^m ||q_i(x)||``.  The
  papers set ``kappa = 1`` (LDA, ELDA) or fold ``kappa = sigmoid(omega)`` in loosely
  (meta-LDA); here every constant involving ``q`` carries ``kappa``.  ``kappa = 1``
  reproduces the papers' printed constants.
* ``M`` bounds the operator norm of the *whole* Jacobian ``sup_x ||grad q(x)||`` and ``L_g``
  is the Lipschitz constant of ``x -> grad q(x)`` in operator norm; ``m`` is the number of
  groups.  Complex inputs are treated as real vectors ``(Re x, Im x)``.
* ``num_reductions`` counts the eps-reductions ``ell = min{l >= 0 : sigma eps0 gamma^l <
  eps_tol}``.  The total-iteration bounds bound ``k_ell + 1``, the number of iterations up to
  and including the one that performs the ell-th reduction (an implementation that tests the
  stopping rule at the start of the next iteration performs at most one more).
* Segment bounds include the ``+1`` that the printed eqs. (27) and (4.27) omit: Lemma 3.3 /
  Lemma 4.5 bound the *index* ``B`` of a segment's last iteration, so the segment has at
  most ``B + 1`` iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ._validate import integer, real
from .operators import power_iteration

__all__ = [  # noqa: RUF022 - grouped by paper
    # smoothing and Lipschitz constants
    "lipschitz_eps",
    "lipschitz_huber",
    "lipschitz_sqrt",
    "smoothing_gap",
    "num_reductions",
    # LDA
    "lda_step_range",
    "lda_fixed_eps_iterations",
    "lda_segment_constants",
    "lda_segment_bound",
    "lda_total_bound",
    "lda_total_bound_sum",
    # ELDA
    "elda_lmax",
    "elda_min_step",
    "elda_C_eps",
    "elda_fixed_eps_iterations",
    "elda_segment_constants",
    "elda_segment_bound",
    "elda_total_bound",
    "elda_total_bound_sum",
    # meta-LDA
    "metalda_step_threshold",
    "metalda_max_backtracks",
    "metalda_min_step",
    "metalda_C",
    "metalda_fixed_eps_iterations",
    # constant estimators
    "operator_norm_sq",
    "linear_feature_constants",
    "finite_difference_norm_bound",
    "finite_difference_norm",
    "conv_operator_norm",
    "conv_operator_norm_complex",
    "cnn_constants",
]

# Relative inflation applied to FFT/SVD-based certified norms to cover float64 rounding.
_CERT_INFLATE = 1e-10


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


# Every bad value is a ValueError naming the parameter (the checks of lda_opt._validate with
# kind_error=ValueError); a one-element tensor or array counts as its number, since the
# constants are often read off a trace or a network.


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value


def _num(name: str, value: Any) -> float:
    return real(name, _scalar(value), kind_error=ValueError)


def _pos(name: str, value: Any) -> float:
    return real(name, _scalar(value), 0.0, kind_error=ValueError)


def _nonneg(name: str, value: Any) -> float:
    return real(name, _scalar(value), 0.0, lo_open=False, kind_error=ValueError)


def _open01(name: str, value: Any) -> float:
    return real(name, _scalar(value), 0.0, 1.0, kind_error=ValueError)


def _count(name: str, value: Any, lo: int = 0) -> int:
    value = _scalar(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return integer(name, value, lo, kind_error=ValueError)


def _gap_pair(phi_x0: Any, phi_star: Any) -> tuple[float, float]:
    a = _num("phi_x0", phi_x0)
    b = _num("phi_star", phi_star)
    if a < b:
        raise ValueError(f"phi_x0 must be >= phi_star (got phi_x0={a}, phi_star={b})")
    return a, b


def _ceil_safe(x: float) -> int:
    """Smallest integer >= x, rounded up when x is within float rounding of an integer."""
    return math.ceil(x + 1e-9 * max(1.0, abs(x)))


# ---------------------------------------------------------------------------------------------
# smoothing: Lipschitz constants and gaps
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# LDA (lda-learnable-descent-2021, Sec. 3.3)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# modified ELDA (u-lda-modified-elda-transfer, Sec. 4.2)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# meta-LDA (meta-lda-mri-2021, Appendix A)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# constant estimators
# ---------------------------------------------------------------------------------------------


def _adjoint_of(A: Callable[[torch.Tensor], torch.Tensor]):
    """``A.H`` if present, else the vector-Jacobian product of the (linear) callable."""
    H = getattr(A, "H", None)
    if H is not None:
        return H

    def vjp(y: torch.Tensor, x_like: torch.Tensor) -> torch.Tensor:
        x = x_like.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = A(x)
            (g,) = torch.autograd.grad(out, x, grad_outputs=y)
        return g

    return vjp


def operator_norm_sq(
    A: Any,
    shape: Sequence[int] | None = None,
    iters: int = 100,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> float:
    r"""``||A||^2`` (e.g. ``L_f`` of ``f = 1/2 ||A x - y||^2``) by power iteration on ``A^H A``.

    ``A`` is a callable ``x -> A(x)`` with adjoint ``A.H(y)`` (the library's operators); without
    ``.H`` the adjoint is the vector-Jacobian product of ``A`` (``A`` must be linear).  ``shape``
    is the input shape, ``dtype`` the input dtype (real or complex); for a real input and a
    complex-valued ``A`` the real part of ``A.H(y)`` is used (the adjoint of the R-linear map).
    A 2-D numpy array / torch tensor is treated as a dense matrix and its exact squared
    spectral norm is returned (then ``shape`` is ignored).

    Returns the Rayleigh quotient ``||A x||^2 / ||x||^2`` of the final iterate: an
    **ESTIMATE that is a lower bound** of ``||A||^2`` (it increases to ``||A||^2`` with ``iters``;
    multiply by a safety factor for use as ``L_f`` in a certified bound, or use a known bound
    such as ``||P F|| <= 1`` for MRI).  Catalogue: ``theory/README.md`` ("Constants").
    """
    if isinstance(A, np.ndarray) or (isinstance(A, torch.Tensor) and A.dim() == 2):
        mat = torch.as_tensor(A)
        mat = mat.to(torch.complex128 if mat.is_complex() else torch.float64)
        if mat.dim() != 2:
            raise ValueError(f"A must be a 2-D matrix or a callable (got shape {tuple(mat.shape)})")
        return float(torch.linalg.matrix_norm(mat, ord=2)) ** 2
    if not callable(A):
        raise ValueError("A must be a callable operator with .H or a 2-D matrix")  # noqa: TRY004
    if shape is None:
        raise ValueError("shape must be given for a callable operator")
    iters = _count("iters", iters, 1)
    adj = _adjoint_of(A)
    uses_vjp = getattr(A, "H", None) is None
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x = torch.randn(tuple(shape), generator=gen, dtype=dtype).to(device)

    def apply_AHA(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = A(v)
        z = (adj(y, v) if uses_vjp else adj(y)).detach()
        if not v.is_complex() and z.is_complex():
            z = z.real
        return z

    _, x = power_iteration(apply_AHA, x, iters)
    with torch.no_grad():  # the Rayleigh quotient ||A x||^2 at the final unit vector
        return float(torch.linalg.vector_norm(A(x))) ** 2


def linear_feature_constants(
    D: Any,
    shape: Sequence[int] | None = None,
    iters: int = 100,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, float]:
    r"""``(M, L_g)`` for a linear feature map ``q(x) = D x``: ``M = ||D||``, ``L_g = 0``.

    ``D`` as in :func:`operator_norm_sq` (a callable -- e.g. an ``nn.Module`` such as
    ``lda_opt.features.FiniteDifference``, whose adjoint is taken by autograd -- or a dense
    matrix).  For a callable, ``M`` is a power-iteration **ESTIMATE (lower bound)**; use a
    certified bound where one exists (:func:`finite_difference_norm_bound`, ``1`` for the
    identity).  ``L_g = 0`` is exact (the Jacobian is constant).
    Catalogue: ``theory/README.md`` ("Constants").
    """
    return math.sqrt(operator_norm_sq(D, shape, iters=iters, seed=seed, dtype=dtype)), 0.0


def finite_difference_norm_bound() -> float:
    r"""Certified ``||D|| <= sqrt(8)`` for forward differences with Neumann boundary (TV).

    Per channel, ``||D_h x||^2 = sum (x_{i,j+1} - x_{i,j})^2 <= 2 sum (x_{i,j+1}^2 + x_{i,j}^2)
    <= 4 ||x||^2`` (each pixel enters at most two differences), the same for ``D_v``, and
    ``||D x||^2 = ||D_v x||^2 + ||D_h x||^2 <= 8 ||x||^2``; channels are decoupled, so the
    bound holds for any ``C`` (and complex images).  The exact value on an ``H x W`` grid is
    :func:`finite_difference_norm` ``-> sqrt(8)`` as ``H, W -> inf``.  **Certified upper
    bound**; ``L_g = 0``.  Catalogue: ``theory/README.md`` ("Constants").
    """
    return math.sqrt(8.0)


def finite_difference_norm(H: int, W: int) -> float:
    r"""Exact ``||D||`` of Neumann forward differences on an ``H x W`` grid:

    .. math:: \|D\|^2 = \lambda_{\max}(L_H \oplus L_W) = 4 + 2\cos(\pi/H) + 2\cos(\pi/W),

    since ``D_1^T D_1`` (1-D, last difference 0) is the Neumann path Laplacian with eigenvalues
    ``2 - 2 cos(pi k / n)``, ``k = 0..n-1``.  **Exact** (up to rounding).
    Catalogue: ``theory/README.md`` ("Constants").
    """
    H, W = _count("H", H, 1), _count("W", W, 1)
    return math.sqrt(max(0.0, 4.0 + 2.0 * math.cos(math.pi / H) + 2.0 * math.cos(math.pi / W)))


def _as_weight(name: str, w: Any) -> torch.Tensor:
    t = torch.as_tensor(w.detach() if isinstance(w, torch.Tensor) else w)
    if t.dim() != 4:
        raise ValueError(f"{name} must have shape (C_out, C_in, k1, k2) (got {tuple(t.shape)})")
    if t.is_complex():
        raise ValueError(f"{name} must be real (pass real and imaginary parts separately)")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


def _hw(image_hw: Any) -> tuple[int, int]:
    if isinstance(image_hw, (int, np.integer)):
        image_hw = (int(image_hw), int(image_hw))
    if len(image_hw) != 2:
        raise ValueError(f"image_hw must be (H, W) (got {image_hw!r})")
    return _count("image_hw[0]", image_hw[0], 1), _count("image_hw[1]", image_hw[1], 1)


def conv_operator_norm(weight: Any, image_hw: Any, *, padding_mode: str = "zeros") -> float:
    r"""Operator norm of a stride-1, dilation-1 2-D multi-channel convolution on ``H x W`` images.

    ``padding_mode="zeros"`` (any zero padding ``p``): the output is a window of the full
    linear convolution, which equals the circular convolution on the ``(H+k1-1) x (W+k2-1)``
    grid applied to the zero-extended input (no wrap-around).  Zero-extension and cropping have
    norm <= 1, and a circular multi-channel convolution is block-diagonalized by the DFT, so

    .. math:: \|W\| \le \max_{\omega}\ \|\hat W(\omega)\|_2, \qquad
              \hat W(\omega) \in \mathbb{C}^{C_{out}\times C_{in}}

    over the DFT frequencies of that grid: a **CERTIFIED upper bound** (inflated by a relative
    1e-10 for float64 rounding).  ``padding_mode="circular"`` (same-size circular padding,
    ``k <= H, W``): the same maximum over the ``H x W`` grid, which is **exact**.
    Cross-correlation vs convolution does not change the value.  Catalogue:
    ``theory/README.md`` ("Constants").
    """
    w = _as_weight("weight", weight)
    H, W = _hw(image_hw)
    k1, k2 = w.shape[-2:]
    if padding_mode == "zeros":
        N1, N2 = H + k1 - 1, W + k2 - 1
    elif padding_mode == "circular":
        if k1 > H or k2 > W:
            raise ValueError(f"circular padding needs kernel <= image (got {(k1, k2)} vs {(H, W)})")
        N1, N2 = H, W
    else:
        raise ValueError(f"padding_mode must be 'zeros' or 'circular' (got {padding_mode!r})")
    # real kernel: W(-w) = conj W(w), so the half spectrum in the last axis covers every
    # singular value.  W^(u, v) = sum_{a,b} w[:, :, a, b] exp(-2 pi i (u a / N1 + v b / N2)),
    # evaluated in chunks of rows u to bound memory (C_out C_in N1 N2 / 2 complex entries).
    cout, cin = w.shape[:2]
    a = torch.arange(k1, dtype=torch.float64)
    b = torch.arange(k2, dtype=torch.float64)
    v = torch.arange(N2 // 2 + 1, dtype=torch.float64)
    E2 = torch.exp(-2j * math.pi * torch.outer(v, b) / N2)  # (V, k2)
    wc = w.to(torch.complex128)
    tmp = torch.einsum("oiab,vb->voia", wc, E2)  # (V, C_out, C_in, k1)
    chunk = max(1, int(2**22 // max(1, E2.shape[0] * cout * cin)))
    best = 0.0
    for u0 in range(0, N1, chunk):
        u = torch.arange(u0, min(N1, u0 + chunk), dtype=torch.float64)
        E1 = torch.exp(-2j * math.pi * torch.outer(u, a) / N1)  # (U, k1)
        mats = torch.einsum("voia,ua->uvoi", tmp, E1)  # (U, V, C_out, C_in)
        best = max(best, float(torch.linalg.matrix_norm(mats, ord=2).max()))
    return best * (1.0 + _CERT_INFLATE)


def conv_operator_norm_complex(
    w_real: Any, w_imag: Any, image_hw: Any, *, padding_mode: str = "zeros"
) -> float:
    r"""Operator norm bound of a complex convolution with kernel ``Wr + i Wi``.

    As a real-linear map on the (Re, Im) channels it is the real convolution with block weight
    ``[[Wr, -Wi], [Wi, Wr]]`` (shape ``(2 C_out, 2 C_in, k1, k2)``), whose norm equals the norm
    of the complex map; evaluated with :func:`conv_operator_norm`.  **CERTIFIED upper bound**
    (``"zeros"``) / exact (``"circular"``).  Catalogue: ``theory/README.md`` ("Constants").
    """
    wr, wi = _as_weight("w_real", w_real), _as_weight("w_imag", w_imag)
    if wr.shape != wi.shape:
        raise ValueError(
            f"w_real and w_imag must have the same shape ({tuple(wr.shape)} vs {tuple(wi.shape)})"
        )
    block = torch.cat([torch.cat([wr, -wi], dim=1), torch.cat([wi, wr], dim=1)], dim=0)
    return conv_operator_norm(block, image_hw, padding_mode=padding_mode)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _conv_layer(conv: Any, hw: tuple[int, int], idx: int) -> tuple[float, tuple[int, int]]:
    """Certified norm of one conv layer and its output size (duck typing)."""
    if hasattr(conv, "real") and hasattr(conv, "imag") and hasattr(conv.real, "weight"):
        ref, weights = conv.real, (conv.real.weight, conv.imag.weight)
    elif hasattr(conv, "weight"):
        ref, weights = conv, (conv.weight,)
    else:
        raise ValueError(f"net.convs[{idx}] has neither .weight nor .real/.imag sub-convolutions")
    for attr, ok in (("stride", (1, 1)), ("dilation", (1, 1))):
        if _pair(getattr(ref, attr, 1)) != ok:
            raise ValueError(f"net.convs[{idx}].{attr} must be 1 (got {getattr(ref, attr)})")
    if int(getattr(ref, "groups", 1)) != 1:
        raise ValueError(f"net.convs[{idx}].groups must be 1 (got {ref.groups})")
    mode = getattr(ref, "padding_mode", "zeros")
    if mode not in ("zeros", "circular"):
        raise ValueError(
            f"net.convs[{idx}].padding_mode must be 'zeros' or 'circular' (got {mode!r})"
        )
    k1, k2 = weights[0].shape[-2:]
    pad = getattr(ref, "padding", (k1 // 2, k2 // 2))
    if pad == "same":
        out_hw = hw
    elif pad == "valid":
        out_hw = (hw[0] - k1 + 1, hw[1] - k2 + 1)
    else:
        p1, p2 = _pair(pad)
        if mode == "circular" and (2 * p1 != k1 - 1 or 2 * p2 != k2 - 1):
            raise ValueError(f"net.convs[{idx}]: circular padding must preserve the size")
        out_hw = (hw[0] + 2 * p1 - k1 + 1, hw[1] + 2 * p2 - k2 + 1)
    if out_hw[0] < 1 or out_hw[1] < 1:
        raise ValueError(f"net.convs[{idx}] output would be empty for input {hw}")
    if len(weights) == 2:
        nrm = conv_operator_norm_complex(weights[0], weights[1], hw, padding_mode=mode)
    else:
        nrm = conv_operator_norm(weights[0], hw, padding_mode=mode)
    return nrm, out_hw


def _layer_stack(
    convs: Any, act: Any, hw: tuple[int, int], activate_last: bool
) -> tuple[float, float, tuple[int, int]]:
    if (
        act is None
        or not hasattr(act, "derivative_bound")
        or not hasattr(act, "derivative_lipschitz")
    ):
        raise ValueError(
            "net.act must have attributes 'derivative_bound' and 'derivative_lipschitz'"
        )
    s = _nonneg("net.act.derivative_bound", act.derivative_bound)
    t = _nonneg("net.act.derivative_lipschitz", act.derivative_lipschitz)
    M, L = 1.0, 0.0
    n = len(convs)
    for idx, conv in enumerate(convs):
        w_norm, hw = _conv_layer(conv, hw, idx)
        sl, tl = (s, t) if (idx < n - 1 or activate_last) else (1.0, 0.0)
        M, L = sl * w_norm * M, tl * w_norm**2 * M**2 + sl * w_norm * L
    return M, L, hw


def _net_constants(
    net: Any, hw: tuple[int, int], activate_last: bool | None
) -> tuple[float, float, tuple[int, int]]:
    last = activate_last
    if last is None:
        last = bool(getattr(net, "activate_last", True))
    convs = getattr(net, "convs", None)
    if convs is not None:
        if len(convs) == 0:
            raise ValueError("net.convs must be non-empty")
        return _layer_stack(convs, getattr(net, "act", None), hw, last)
    if getattr(net, "conv", None) is not None:  # single layer a(W x), e.g. nets.Adapter
        return _layer_stack([net.conv], getattr(net, "act", None), hw, last)
    if getattr(net, "g", None) is not None and getattr(net, "h", None) is not None:
        # q = h o g (nets.Composed): Lip(grad(h o g)) <= L_h M_g^2 + M_h L_g
        Mg, Lg, hw = _net_constants(net.g, hw, None)
        Mh, Lh, hw = _net_constants(net.h, hw, None)
        return Mh * Mg, Lh * Mg * Mg + Mh * Lg, hw
    raise ValueError(
        "net must have 'convs' and 'act' (FeatureCNN), 'conv' and 'act' (Adapter), "
        "or 'g' and 'h' (Composed)"
    )


def cnn_constants(
    net: Any, image_hw: Any, *, activate_last: bool | None = None
) -> tuple[float, float]:
    r"""Certified ``(M, L_g)`` of a smoothed-activation CNN ``g = p_L o ... o p_1``,
    ``p_l(h) = a(W_l h)``, for LDA Lemma 3.2 / ELDA Lemma 4.4 / meta-LDA Lemma A2.

    Duck typing: ``net.convs`` (``nn.Conv2d`` with ``.weight``, or complex convolutions with
    sub-convolutions ``.real`` / ``.imag``; stride 1, dilation 1, groups 1, zero or size-
    preserving circular padding; biases are irrelevant) and ``net.act`` with
    ``.derivative_bound`` ``s >= sup|a'|`` and ``.derivative_lipschitz`` ``t >= Lip(a')``
    (SmoothReLU: 1 and ``1/(2 delta)``).  The activation follows every convolution (LDA eq. 33)
    unless ``activate_last`` (argument, else ``net.activate_last``, default True) is False.
    Complex activations must act on real and imaginary parts separately (as
    ``lda_opt.nets.SmoothReLU`` does).  A single layer with ``.conv`` and ``.act``
    (``nets.Adapter``) and a composition with ``.g`` and ``.h`` (``nets.Composed``,
    ``q = h o g``) are also accepted.

    With ``||W_l||`` from :func:`conv_operator_norm` on the layer's input size, and
    ``||diag(a'(u)) - diag(a'(v))|| <= t ||u - v||_inf <= t ||u - v||_2``:

    .. math:: \mathrm{Lip}(p_l) \le s\|W_l\|,\quad \mathrm{Lip}(\nabla p_l) \le t\|W_l\|^2,\quad
              \mathrm{Lip}(\nabla(p\circ q)) \le \mathrm{Lip}(\nabla p)\mathrm{Lip}(q)^2
              + \mathrm{Lip}(p)\mathrm{Lip}(\nabla q),

    so ``M_l = s ||W_l|| M_{l-1}``, ``L_l = t ||W_l||^2 M_{l-1}^2 + s ||W_l|| L_{l-1}``
    (``M_0 = 1``, ``L_0 = 0``) and ``(M, L_g) = (M_L, L_L)``.  **CERTIFIED upper bounds** of
    ``sup ||grad g||`` and of the Lipschitz constant of ``grad g`` (whole Jacobian, operator
    norm).  Catalogue: ``theory/README.md`` ("Constants"), ``theory/lda.md`` (Lemma 3.2).
    """
    M, L, _ = _net_constants(net, _hw(image_hw), activate_last)
    return M, L
