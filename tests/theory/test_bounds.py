"""Tests of lda_opt.bounds: closed forms, bound orderings, certified constants (float64).

Each test names the theory/ entry it checks.  Random-pair properties use hypothesis with the
profiles of tests/theory/conftest.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from lda_opt import bounds as B

DT = torch.float64
REL = 1e-12  # rounding slack for comparisons of two float64 evaluations of the same bound


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny float64 tensors: intra-op threads only add contention (20-60x slower on 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _leq(a: float, b: float, rel: float = REL) -> bool:
    return a <= b * (1 + rel) + rel


# ------------------------------------------------------------------------------------------
# hand-computed closed forms
# ------------------------------------------------------------------------------------------


def test_lipschitz_closed_forms():
    # 1 + 2*(sqrt(4)*2 + 9/0.5) = 45 ; paper Sqrt: 1 + 2*4*(2 + 2*9/0.5) = 305
    assert B.lipschitz_huber(1, 2, 3, 4, 0.5, kappa=2) == pytest.approx(45.0, rel=1e-15)
    assert B.lipschitz_sqrt(1, 2, 3, 4, 0.5, 2) == pytest.approx(305.0, rel=1e-15)
    assert B.lipschitz_sqrt(1, 2, 3, 4, 0.5, 2, sharp=True) == pytest.approx(45.0, rel=1e-15)
    assert B.lipschitz_huber(3, 7, 0, 9, 1e-3) == 3 + 21.0  # M = 0: eps-free


def test_smoothing_gap_closed_forms():
    assert B.smoothing_gap("huber", 10, 0.1, kappa=2) == pytest.approx(1.0)
    assert B.smoothing_gap("sqrt", 10, 0.1, kappa=2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="kind"):
        B.smoothing_gap("moreau", 10, 0.1)


def test_num_reductions_hand_values():
    # sigma eps0 gamma^l: 1, .5, .25, .125, .0625 -> first < 0.1 at l=4; 0.125 is not < 0.125
    assert B.num_reductions(1.0, 0.1, 1.0, 0.5) == 4
    assert B.num_reductions(1.0, 0.125, 1.0, 0.5) == 4
    assert B.num_reductions(1.0, 2.0, 1.0, 0.5) == 0
    assert B.num_reductions(1.0, 1.0, 1.0, 0.5) == 1


def test_lda_constants_hand_values():
    # delta1=4, delta2=2, L_f=1, L_g=0, M=1, m=1, phi(x0)=1, phi*=0, eps0=1, sigma=1, gamma=.5
    # D = 2*1 + 1 = 3; corrected: c1 = 8*1*3/(1*1*.25) = 96, c2 = 8*1*3/(1*1*.25) = 96
    # printed (28): c1 = 8*3/(3*.25) = 32, c2 = 8*3/(3*.125) = 64
    args = (4, 2, 1, 0, 1, 1, 1, 0, 1, 1, 0.5)
    assert B.lda_segment_constants(*args) == pytest.approx((96.0, 96.0))
    assert B.lda_segment_constants(*args, paper=True) == pytest.approx((32.0, 64.0))
    assert B.lda_segment_bound(1, 96, 96, 0.5) == pytest.approx(1 + 96 * 4 + 96 * 8)
    assert B.lda_total_bound_sum(2, 96, 96, 0.5) == pytest.approx(193 + 1153)
    # eps_tol = .25 -> ell = 3, R = 4 is a power of 1/gamma, so closed form == finite sum
    assert B.num_reductions(1, 0.25, 1, 0.5) == 3
    assert B.lda_total_bound(0.25, 96, 96, 1, 1, 0.5) == pytest.approx(9027.0)
    assert B.lda_total_bound_sum(3, 96, 96, 0.5) == pytest.approx(9027.0)
    assert B.lda_total_bound(2.0, 96, 96, 1, 1, 0.5) == 0.0
    assert B.lda_step_range(10.0, 4.0, 2.0) == pytest.approx((0.025, 0.05))
    # Lemma 3.3: 4*2*10*(2*3 - 2*1 + 2*4*0.5)/((2-1)*0.01) = 80*8/0.01
    assert B.lda_fixed_eps_iterations(10, 0.1, 3, 1, 4, 0.5, 4, 2, kappa=2) == pytest.approx(64000)


def test_elda_constants_hand_values():
    # X = log2(1*(10/2 + 1/0.5)) = log2(7) = 2.807 -> ceil 3 -> l_max = 4
    assert B.elda_lmax(1.0, 10.0, 1.0, 0.5, 0.5) == 4
    assert B.elda_lmax(0.01, 10.0, 1.0, 0.5, 0.5) == 1  # printed (4.13) gives -1 here
    # C_eps = max(0.5*max(7^2/0.25, 1)/1, 2/(1*2)) = 98
    assert B.elda_C_eps(10, 0.5, 1, 2, 1, 0.5, 1) == pytest.approx(98.0)
    # small alpha_bar: v-branch 0.5*max(196, 1/0.01^2)/1 = 5000
    assert B.elda_C_eps(10, 0.5, 1, 2, 1, 0.5, 0.01) == pytest.approx(5000.0)
    assert B.elda_min_step(1.0, 10.0, 1.0, 0.5, 0.5) == pytest.approx(0.5 / 7)
    assert B.elda_min_step(0.01, 10.0, 1.0, 0.5, 0.5) == 0.01
    # (4.14): 98 * (3 - 1 + 4*0.5/2)/0.1^2 = 29400
    assert B.elda_fixed_eps_iterations(10, 0.5, 0.1, 3, 1, 4, 1, 2, 1, 0.5, 1) == pytest.approx(
        29400
    )
    # Delta = 1.5, a = 1, b = 1.5: C1 = 2.25*1.5/.25 = 13.5; C2 = ((1+3)/.25 + 1)*1.5 = 25.5
    C = B.elda_segment_constants(2, 0, 1, 1, 1, 0, 1, 1, 1, 2, 1, 0.5, 1)
    assert C == pytest.approx((13.5, 25.5))
    assert B.elda_segment_bound(0, 1, 1, 0.5) == pytest.approx(9.0)
    assert B.elda_segment_bound(1, 1, 1, 0.5) == pytest.approx(49.0)
    assert B.elda_total_bound_sum(2, 1, 1, 0.5) == pytest.approx(58.0)
    assert B.elda_total_bound(0.5, 1, 1, 1, 1, 0.5) == pytest.approx(58.0)  # R = 2 exact


def test_metalda_constants_hand_values():
    assert B.metalda_step_threshold(8, 1) == pytest.approx(0.1)
    assert B.metalda_step_threshold(8, 1, sharp=True) == pytest.approx(0.2)
    assert B.metalda_max_backtracks(1, 8, 1, 0.5) == 4  # ceil(log2(10))
    assert B.metalda_max_backtracks(0.05, 8, 1, 0.5) == 0
    assert B.metalda_min_step(1, 8, 1, 0.5) == pytest.approx(0.05)
    assert B.metalda_C(8, 1, 0.4) == pytest.approx(400.0)
    assert B.metalda_C(8, 10, 0.4) == pytest.approx(4000.0)
    # 400 * (3 - 1 + 2*4*0.5)/0.1^2 = 400*6/0.01
    assert B.metalda_fixed_eps_iterations(8, 1, 0.4, 0.1, 3, 1, 4, 0.5, kappa=2) == pytest.approx(
        240000
    )


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: B.lipschitz_huber(-1, 0, 1, 1, 1), "L_f"),
        (lambda: B.lipschitz_huber(1, 0, 1, 0, 1), "m"),
        (lambda: B.lipschitz_sqrt(1, 0, 1, 1, 0.0), "eps"),
        (lambda: B.num_reductions(1, 1e-3, 1, 1.0), "gamma"),
        (lambda: B.num_reductions(1, float("nan"), 1, 0.5), "eps_tol"),
        (lambda: B.lda_step_range(1, 1.5, 2.0), "delta1"),
        (lambda: B.lda_step_range(1, 2.0, 1.0), "delta2"),
        (lambda: B.lda_segment_constants(4, 2, 1, 0, 1, 1, 0, 1, 1, 1, 0.5), "phi_x0"),
        (lambda: B.elda_lmax(1, 1, 1, 1, 1.5), "rho"),
        (lambda: B.elda_C_eps(1, 1, 0, 1, 1, 0.5, 1), "eta1"),
        (lambda: B.metalda_C(1, 1, 0), "delta"),
        (lambda: B.lda_segment_bound(-1, 1, 1, 0.5), "l"),
        (lambda: B.lda_total_bound_sum(1.5, 1, 1, 0.5), "ell"),
        (lambda: B.conv_operator_norm(np.ones((2, 2, 3)), (4, 4)), "weight"),
        (
            lambda: B.conv_operator_norm(np.ones((1, 1, 3, 3)), (4, 4), padding_mode="reflect"),
            "padding_mode",
        ),
        (lambda: B.cnn_constants(object(), (4, 4)), "net"),
    ],
)
def test_invalid_inputs_raise_value_error_naming_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ------------------------------------------------------------------------------------------
# segment and total bounds (LDA Thm 3.5, ELDA Thm 4.6)
# ------------------------------------------------------------------------------------------

pos = st.floats(1e-3, 1e3)
gammas = st.floats(0.05, 0.99)
sigmas = st.floats(1e-2, 1e4)


@given(
    eps0=st.floats(1e-4, 10.0),
    ratio=st.floats(1.0, 1e6),
    sigma=sigmas,
    gamma=gammas,
)
def test_num_reductions_definition(eps0, ratio, sigma, gamma):
    """theory/lda.md Thm 3.5: ell is the first l with sigma eps0 gamma^l < eps_tol."""
    eps_tol = sigma * eps0 / ratio
    ell = B.num_reductions(eps0, eps_tol, sigma, gamma)
    eps = eps0
    for _ in range(ell):
        assert sigma * eps >= eps_tol
        eps *= gamma
    assert sigma * eps < eps_tol
    if ell >= 1:  # (4.46): gamma^-(ell-1) <= sigma eps0 / eps_tol, up to rounding
        assert _leq((ell - 1) * math.log(1 / gamma), math.log(ratio), 1e-9)


@given(
    deltas=st.tuples(st.floats(1.01, 20), st.floats(0.0, 1.0)),
    L_f=pos,
    L_g=st.floats(0, 1e2),
    M=pos,
    m=st.integers(1, 10_000),
    phi=st.floats(0, 1e3),
    eps0=st.floats(1e-4, 1.0),
    sigma=sigmas,
    gamma=gammas,
    kappa=st.floats(1e-3, 10),
    l=st.integers(0, 40),
)
def test_lda_segment_bound_dominates_lemma33(
    deltas, L_f, L_g, M, m, phi, eps0, sigma, gamma, kappa, l
):
    """theory/lda.md Thm 3.5(1): (27) with corrected (28) >= 1 + Lemma 3.3(2) at segment l,
    with the worst start allowed by the monotone quantity (30)."""
    delta2 = deltas[0]
    delta1 = delta2 + deltas[1] * 10
    # the bounds depend on phi(x0) - phi* only; phi* = 0 avoids cancellation in the test
    phi_star, phi_x0 = 0.0, phi
    c1, c2 = B.lda_segment_constants(
        delta1, delta2, L_f, L_g, M, m, phi_x0, phi_star, eps0, sigma, gamma, kappa
    )
    eps = eps0 * gamma**l
    eta = sigma * eps0 * gamma ** (l + 1)
    L_eps = B.lipschitz_huber(L_f, L_g, M, m, eps, kappa)
    phi_eps_start = phi_x0 + 0.5 * kappa * m * (eps0 - eps)  # (30): phi_eps + gap <= phi(x0) + gap0
    direct = B.lda_fixed_eps_iterations(
        L_eps, eta, phi_eps_start, phi_star, m, eps, delta1, delta2, kappa
    )
    seg = B.lda_segment_bound(l, c1, c2, gamma)
    assert _leq(1 + direct, seg, 1e-9)
    assert seg == pytest.approx(1 + direct, rel=1e-9)  # the split into c1, c2 is exact
    c1p, c2p = B.lda_segment_constants(
        delta1, delta2, L_f, L_g, M, m, phi_x0, phi_star, eps0, sigma, gamma, kappa, paper=True
    )
    # printed (28): (delta1-1) makes c1 smaller (not implied by Lemma 3.3), gamma^3 makes c2 larger
    assert _leq(c1p, c1) and c1p == pytest.approx(c1 * (delta2 - 1) / (delta1 - 1), rel=1e-12)
    assert c2p == pytest.approx(c2 * (delta2 - 1) / ((delta1 - 1) * gamma), rel=1e-12)


@given(
    c1=st.floats(0, 1e6),
    c2=st.floats(0, 1e6),
    eps0=st.floats(1e-4, 10.0),
    ratio=st.floats(1.0, 1e5),
    sigma=sigmas,
    gamma=st.floats(0.3, 0.98),
)
def test_lda_total_closed_form_dominates_finite_sum(c1, c2, eps0, ratio, sigma, gamma):
    """theory/lda.md Thm 3.5(2): (29) (+ ell term) >= sum_{l<ell} of the segment bounds."""
    eps_tol = sigma * eps0 / ratio
    ell = B.num_reductions(eps0, eps_tol, sigma, gamma)
    assume(ell <= 2000)
    total = B.lda_total_bound(eps_tol, c1, c2, sigma, eps0, gamma)
    finite = B.lda_total_bound_sum(ell, c1, c2, gamma)
    assert _leq(finite, total, 1e-9)
    # the printed (29) also dominates the printed sum of (27) (the algebra of the paper)
    printed_sum = math.fsum(c1 * gamma ** (-2 * l) + c2 * gamma ** (-3 * l) for l in range(ell))
    assert _leq(printed_sum, total - (1 + math.log(ratio) / math.log(1 / gamma)), 1e-9)


@given(
    L_f=pos,
    L_g=st.floats(0, 1e2),
    M=pos,
    m=st.integers(1, 10_000),
    phi=st.floats(0, 1e3),
    eps0=st.floats(1e-4, 1.0),
    sigma=sigmas,
    gamma=gammas,
    kappa=st.floats(1e-3, 10),
    etas=st.tuples(pos, pos, pos),
    rho=st.floats(0.05, 0.95),
    alpha_bar=st.floats(1e-6, 1e3),
    l=st.integers(0, 40),
)
def test_elda_segment_bound_dominates_lemma45(
    L_f, L_g, M, m, phi, eps0, sigma, gamma, kappa, etas, rho, alpha_bar, l
):
    """theory/elda.md Thm 4.6(2): (4.27) with the derived C1, C2 >= 1 + (4.14) at segment l,
    (4.44) with the start x_{t_l+1} bounded through (4.30)."""
    eta1, eta2, eta3 = etas
    # the bounds depend on phi(x0) - phi* only; phi* = 0 avoids cancellation in the test
    phi_star, phi_x0 = 0.0, phi
    C1, C2 = B.elda_segment_constants(
        L_f, L_g, M, m, phi_x0, phi_star, eps0, sigma, eta1, eta2, eta3, rho, alpha_bar, kappa
    )
    eps = eps0 * gamma**l
    eta = sigma * eps0 * gamma ** (l + 1)
    L_eps = B.lipschitz_huber(L_f, L_g, M, m, eps, kappa)
    phi_eps_start = phi_x0 + 0.5 * kappa * m * (eps0 - eps)
    direct = B.elda_fixed_eps_iterations(
        L_eps, eps, eta, phi_eps_start, phi_star, m, eta1, eta2, eta3, rho, alpha_bar, kappa
    )
    assert _leq(1 + direct, B.elda_segment_bound(l, C1, C2, gamma), 1e-9)


@given(
    C1=st.floats(0, 1e6),
    C2=st.floats(0, 1e6),
    eps0=st.floats(1e-4, 10.0),
    ratio=st.floats(1.0, 1e5),
    sigma=sigmas,
    gamma=st.floats(0.3, 0.98),
)
def test_elda_total_closed_form_dominates_finite_sum(C1, C2, eps0, ratio, sigma, gamma):
    """theory/elda.md Thm 4.6(3): (4.28) in eps_tol (+ ell term) >= the finite sum from l = 0."""
    eps_tol = sigma * eps0 / ratio
    ell = B.num_reductions(eps0, eps_tol, sigma, gamma)
    assume(ell <= 2000)
    finite = B.elda_total_bound_sum(ell, C1, C2, gamma)
    assert _leq(finite, B.elda_total_bound(eps_tol, C1, C2, sigma, eps0, gamma), 1e-9)
    # (4.28) printed in terms of ell is exactly the sum from l = 0 (not l = 1 as in the proof)
    if ell >= 1:
        g2, g3 = gamma**2, gamma**3
        printed = C1 * (gamma ** (-3 * (ell - 1)) - g3) / ((1 - g3) * g2) + C2 * (
            gamma ** (-2 * (ell - 1)) - g2
        ) / ((1 - g2) * g2)
        assert finite - ell == pytest.approx(printed, rel=1e-9, abs=1e-9)


# ------------------------------------------------------------------------------------------
# line searches: simulated on phi(x) = L/2 ||x||^2, where the descent lemma is tight
# ------------------------------------------------------------------------------------------


def _backtrack(alpha0, rho, accept, max_trials=10_000):
    alpha, trials = alpha0, 1
    while not accept(alpha):
        alpha *= rho
        trials += 1
        assert trials < max_trials
    return alpha, trials


@given(
    L=st.floats(1e-2, 1e4),
    eta3=st.floats(1e-3, 10),
    eps=st.floats(1e-4, 1.0),
    rho=st.floats(0.1, 0.95),
    alpha_bar=st.floats(1e-5, 1e3),
    x=st.floats(0.1, 10.0),
)
def test_elda_lmax_and_min_step_on_quadratic(L, eta3, eps, rho, alpha_bar, x):
    """theory/elda.md Lemma 4.5(1): trials of (4.11) <= l_max (4.13, corrected); the accepted
    step is >= elda_min_step (4.20, corrected).  On a quadratic both are attained up to one."""

    def phi(z):
        return 0.5 * L * z * z

    def accept(alpha):  # (4.11) with v = x - alpha * grad phi(x)
        v = x - alpha * L * x
        return phi(v) - phi(x) <= -(eta3 / eps) * (v - x) ** 2

    alpha, trials = _backtrack(alpha_bar, rho, accept)
    lmax = B.elda_lmax(alpha_bar, L, eta3, eps, rho)
    assert trials <= lmax
    assert trials >= lmax - 1  # tight: the threshold 1/(L/2 + eta3/eps) is exact here
    assert alpha >= B.elda_min_step(alpha_bar, L, eta3, eps, rho) * (1 - 1e-12)


@given(
    L=st.floats(1e-2, 1e4),
    a=st.floats(1e-2, 1e5),
    rho=st.floats(0.1, 0.95),
    alpha0=st.floats(1e-5, 1e3),
    x=st.floats(0.1, 10.0),
)
def test_metalda_backtracks_on_quadratic(L, a, rho, alpha0, x):
    """theory/meta_lda.md Lemma A3: backtracks of (A7) <= metalda_max_backtracks (paper and
    sharp thresholds); the sharp threshold is exact on a quadratic."""

    def accept(alpha):
        v = x - alpha * L * x
        return 0.5 * L * (v * v - x * x) <= -(1.0 / a) * (v - x) ** 2

    alpha, trials = _backtrack(alpha0, rho, accept)
    sharp = B.metalda_max_backtracks(alpha0, L, a, rho, sharp=True)
    paper = B.metalda_max_backtracks(alpha0, L, a, rho)
    assert trials - 1 <= sharp <= paper
    assert trials - 1 >= sharp - 1
    assert alpha >= B.metalda_min_step(alpha0, L, a, rho, sharp=True) * (1 - 1e-12)
    assert alpha >= B.metalda_min_step(alpha0, L, a, rho) * (1 - 1e-12)


# ------------------------------------------------------------------------------------------
# smoothing: sandwich, monotone quantity, and the meta-LDA Lemma A4 counterexample
# ------------------------------------------------------------------------------------------


def huber_r(g: torch.Tensor, eps) -> torch.Tensor:
    """LDA eq. (9) for features g of shape (d, m) (groups are columns)."""
    n2 = g.square().sum(0)
    lin = torch.sqrt(n2.clamp_min(eps * eps)) - 0.5 * eps
    return torch.where(n2 <= eps * eps, n2 / (2 * eps), lin).sum()


def sqrt_r(g: torch.Tensor, eps) -> torch.Tensor:
    """meta-LDA eq. (5)."""
    return (torch.sqrt(g.square().sum(0) + eps * eps) - eps).sum()


def exact_r(g: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(g, dim=0).sum()


@given(
    seed=st.integers(0, 2**31 - 1),
    m=st.integers(1, 50),
    d=st.integers(1, 4),
    log_scale=st.floats(-4, 3),
    eps=st.floats(1e-4, 10.0),
    shrink=st.floats(0.01, 1.0),
    zeros=st.floats(0, 1),
)
def test_smoothing_sandwich_and_monotone_quantity(seed, m, d, log_scale, eps, shrink, zeros):
    """theory/README.md (weight kappa), theory/lda.md Lemma 3.4, theory/meta_lda.md Lemma A4:
    r_eps <= r <= r_eps + gap and r_eps + gap/kappa is non-decreasing in eps (both kinds)."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(d, m, generator=gen, dtype=DT) * 10**log_scale
    g[:, torch.rand(m, generator=gen) < zeros] = 0.0  # exactly-zero groups
    r = float(exact_r(g))
    eps2 = eps * shrink
    for kind, rf in (("huber", huber_r), ("sqrt", sqrt_r)):
        re = float(rf(g, eps))
        gap = B.smoothing_gap(kind, m, eps)
        tol = 1e-12 * (abs(r) + gap)
        assert re <= r + tol
        assert r <= re + gap + tol
        # monotone quantity: (r_eps2 + gap(eps2)) <= (r_eps + gap(eps)) for eps2 <= eps
        assert float(rf(g, eps2)) + B.smoothing_gap(kind, m, eps2) <= re + gap + tol


def test_smoothing_gap_is_tight():
    """theory/README.md: the gaps m eps/2 (Huber, attained) and m eps (Sqrt, approached)."""
    m, eps = 7, 0.3
    g = torch.full((2, m), 1e8, dtype=DT)
    assert float(exact_r(g) - huber_r(g, eps)) == pytest.approx(
        B.smoothing_gap("huber", m, eps), rel=1e-6
    )
    assert float(exact_r(g) - sqrt_r(g, eps)) == pytest.approx(
        B.smoothing_gap("sqrt", m, eps), rel=1e-6
    )


def test_metalda_lemma_a4_printed_form_fails_corrected_holds():
    """theory/meta_lda.md Lemma A4: phi_eps + eps is NOT monotone for m*kappa > 1; the
    corrected phi_eps + kappa*m*eps is.  Same x, eps reduced by gamma (as in (A19))."""
    m, kappa, eps, gamma = 4, 1.0, 0.5, 0.9
    g = torch.full((1, m), 100.0, dtype=DT)  # large groups: r_eps ~ r - m*eps
    phi_hi = kappa * float(sqrt_r(g, eps))
    phi_lo = kappa * float(sqrt_r(g, gamma * eps))
    assert phi_lo + gamma * eps > phi_hi + eps  # printed quantity increases: violated
    gap = lambda e: B.smoothing_gap("sqrt", m, e, kappa)
    assert phi_lo + gap(gamma * eps) <= phi_hi + gap(eps)


# ------------------------------------------------------------------------------------------
# Lipschitz constants of grad r_eps (LDA Lemma 3.2, meta-LDA Lemma A2)
# ------------------------------------------------------------------------------------------


def _grad_r(rf, q, x, eps):
    x = x.clone().requires_grad_(True)
    feats = q(x)
    val = rf(feats.reshape(feats.shape[1], -1) if feats.dim() == 4 else feats, eps)
    (gr,) = torch.autograd.grad(val, x)
    return gr


@given(seed=st.integers(0, 2**31 - 1), log_eps=st.floats(-3, 1), log_dist=st.floats(-6, 1))
def test_identity_features_lipschitz_is_one_over_eps(seed, log_eps, log_dist):
    """theory/meta_lda.md Lemma A2 (sharp): for q = Id (M = 1, L_g = 0) both smoothings have
    Lip(grad r_eps) <= 1/eps = lipschitz_*(0, 0, 1, m, eps, sharp) < paper's 2m/eps."""
    gen = torch.Generator().manual_seed(seed)
    eps, m = 10**log_eps, 6
    x1 = torch.randn(2, m, generator=gen, dtype=DT) * eps * 3
    x2 = x1 + torch.randn(2, m, generator=gen, dtype=DT) * 10**log_dist * eps
    dx = float(torch.linalg.vector_norm(x1 - x2))
    assume(dx > 0)
    q = lambda z: z
    for rf, Lbound in (
        (huber_r, B.lipschitz_huber(0, 0, 1, m, eps)),
        (sqrt_r, B.lipschitz_sqrt(0, 0, 1, m, eps, sharp=True)),
    ):
        dg = float(torch.linalg.vector_norm(_grad_r(rf, q, x1, eps) - _grad_r(rf, q, x2, eps)))
        assert dg <= Lbound * dx * (1 + 1e-9) + 1e-14
    assert B.lipschitz_sqrt(0, 0, 1, m, eps, sharp=True) < B.lipschitz_sqrt(0, 0, 1, m, eps)


def test_sqrt_sharp_constant_is_attained():
    """theory/meta_lda.md Lemma A2: the sharp 1/eps is attained near 0 (paper's 2m/eps is not)."""
    eps = 0.1
    x1 = torch.zeros(1, 1, dtype=DT)
    x2 = torch.full((1, 1), 1e-7, dtype=DT)
    q = lambda z: z
    dg = float((_grad_r(sqrt_r, q, x1, eps) - _grad_r(sqrt_r, q, x2, eps)).abs())
    assert dg / 1e-7 == pytest.approx(B.lipschitz_sqrt(0, 0, 1, 1, eps, sharp=True), rel=1e-6)


class _Act:
    """Duck-typed SmoothReLU (LDA eq. 33) with the attributes cnn_constants reads."""

    def __init__(self, delta):
        self.delta = delta
        self.derivative_bound = 1.0
        self.derivative_lipschitz = 1.0 / (2 * delta)

    def __call__(self, u):
        d = self.delta
        c = torch.clamp(u, -d, d)
        return (c + d).square() / (4 * d) + torch.relu(u - d)


class _TinyCNN:
    """h_l = a(W_l h_{l-1}) with zero-padded stride-1 convolutions (LDA Sec. 4.1)."""

    def __init__(self, chans, k=3, delta=0.05, seed=0, scale=1.0):
        gen = torch.Generator().manual_seed(seed)
        self.convs = []
        for cin, cout in itertools.pairwise(chans):
            conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False).to(DT)
            with torch.no_grad():
                conv.weight.copy_(
                    torch.randn(conv.weight.shape, generator=gen, dtype=DT) * scale / k
                )
            conv.requires_grad_(False)
            self.convs.append(conv)
        self.act = _Act(delta)

    def __call__(self, x):
        h = x
        for conv in self.convs:
            h = self.act(conv(h))
        return h


HW = (5, 5)
NET = _TinyCNN([1, 3, 2], delta=0.05, seed=1)
M_NET, LG_NET = B.cnn_constants(NET, HW)


def _jac(net, x):
    return torch.func.jacrev(lambda z: net(z).reshape(-1))(x).reshape(-1, x.numel())


@given(seed=st.integers(0, 2**31 - 1), log_dist=st.floats(-4, 0.5), shift=st.floats(-0.3, 0.3))
def test_cnn_constants_bound_jacobian_and_its_lipschitz(seed, log_dist, shift):
    """theory/README.md (Constants): ||grad g(x)|| <= M and ||grad g(x1) - grad g(x2)|| <=
    L_g ||x1 - x2|| for the certified (M, L_g) of cnn_constants (autograd Jacobians)."""
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.randn(1, 1, *HW, generator=gen, dtype=DT) * 0.2 + shift
    x2 = x1 + torch.randn(1, 1, *HW, generator=gen, dtype=DT) * 10**log_dist
    J1, J2 = _jac(NET, x1), _jac(NET, x2)
    assert float(torch.linalg.matrix_norm(J1, ord=2)) <= M_NET * (1 + 1e-9)
    dx = float(torch.linalg.vector_norm(x1 - x2))
    dJ = float(torch.linalg.matrix_norm(J1 - J2, ord=2))
    assert dJ <= LG_NET * dx * (1 + 1e-9) + 1e-14


@given(seed=st.integers(0, 2**31 - 1), log_eps=st.floats(-3, 0), log_dist=st.floats(-4, 0.5))
def test_lemma32_huber_on_smoothrelu_cnn(seed, log_eps, log_dist):
    """theory/lda.md Lemma 3.2: ||grad r_eps(x1) - grad r_eps(x2)|| <= (sqrt(m) L_g + M^2/eps)
    ||x1 - x2|| with certified constants; grad r_eps by autograd of eq. (9).  Also the sharp
    Sqrt constant of meta-LDA Lemma A2 on the same network."""
    gen = torch.Generator().manual_seed(seed)
    eps = 10**log_eps
    m = HW[0] * HW[1]
    x1 = torch.randn(1, 1, *HW, generator=gen, dtype=DT) * 0.3
    x2 = x1 + torch.randn(1, 1, *HW, generator=gen, dtype=DT) * 10**log_dist
    dx = float(torch.linalg.vector_norm(x1 - x2))
    for rf, L in (
        (huber_r, B.lipschitz_huber(0, LG_NET, M_NET, m, eps)),
        (sqrt_r, B.lipschitz_sqrt(0, LG_NET, M_NET, m, eps, sharp=True)),
    ):
        dg = float(torch.linalg.vector_norm(_grad_r(rf, NET, x1, eps) - _grad_r(rf, NET, x2, eps)))
        assert dg <= L * dx * (1 + 1e-9) + 1e-14


def test_cnn_constants_linear_last_layer_and_recursion():
    """theory/README.md (Constants): the recursion M_l, L_l by hand for two layers."""
    n1 = B.conv_operator_norm(NET.convs[0].weight, HW)
    n2 = B.conv_operator_norm(NET.convs[1].weight, HW)
    s, t = 1.0, 1.0 / (2 * 0.05)
    assert M_NET == pytest.approx(s * n1 * s * n2, rel=1e-14)
    assert LG_NET == pytest.approx(t * n2**2 * (s * n1) ** 2 + s * n2 * (t * n1**2), rel=1e-14)
    M_lin, L_lin = B.cnn_constants(NET, HW, activate_last=False)
    assert M_lin == pytest.approx(n1 * n2, rel=1e-14)
    assert L_lin == pytest.approx(n2 * t * n1**2, rel=1e-14)


def test_cnn_constants_with_library_featurecnn():
    """theory/README.md (Constants): lda_opt.nets.FeatureCNN / Adapter / Composed (real and
    complex) are read by duck typing; the Jacobian norm (real embedding) stays below M."""
    nets = pytest.importorskip("lda_opt.nets")
    torch.manual_seed(0)
    hw = (4, 4)
    for cplx in (False, True):
        g = nets.FeatureCNN(in_channels=1, width=3, depth=2, complex=cplx, delta=0.1).double()
        M, L = B.cnn_constants(g, hw)
        assert M > 0 and L > 0
        x = torch.randn(1, 1, *hw, dtype=torch.complex128 if cplx else DT)
        if cplx:

            def f(v, g=g):  # real embedding (Re, Im) -> (Re, Im)
                out = g(torch.complex(v[0], v[1]))
                return torch.stack([out.real, out.imag]).reshape(-1)

            J = torch.autograd.functional.jacobian(f, torch.stack([x.real, x.imag]))
            J = J.reshape(J.shape[0], -1)
        else:
            J = _jac(g, x)
        assert float(torch.linalg.matrix_norm(J.detach(), ord=2)) <= M * (1 + 1e-9)
        if hasattr(nets, "Adapter") and hasattr(nets, "Composed"):
            h = nets.Adapter(3, 2, complex=cplx, delta=0.1).double()
            Mh, Lh = B.cnn_constants(h, hw)
            Mq, Lq = B.cnn_constants(nets.Composed(g, h), hw)
            assert Mq == pytest.approx(Mh * M, rel=1e-14)
            assert Lq == pytest.approx(Lh * M**2 + Mh * L, rel=1e-14)


# ------------------------------------------------------------------------------------------
# convolution operator norms
# ------------------------------------------------------------------------------------------


def _dense(op, in_shape):
    n = int(np.prod(in_shape))
    cols = [op(torch.eye(n, dtype=DT)[i].reshape(in_shape)).reshape(-1) for i in range(n)]
    return torch.stack(cols, dim=1)


def _conv_zero(w):
    return lambda x: F.conv2d(x, w, padding=(w.shape[-2] // 2, w.shape[-1] // 2))


def _conv_circ(w):
    p1, p2 = w.shape[-2] // 2, w.shape[-1] // 2
    return lambda x: F.conv2d(F.pad(x, (p2, p2, p1, p1), mode="circular"), w)


@pytest.mark.parametrize("cout,cin,k,hw", [(2, 1, 3, (5, 6)), (3, 2, 3, (4, 4)), (2, 3, 5, (6, 5))])
def test_conv_norm_certified_and_exact_on_embedded_grid(cout, cin, k, hw):
    """theory/README.md (Constants): ||zero-padded conv|| <= bound (dense SVD); the bound is
    the exact norm of the circular convolution on the (H+k-1, W+k-1) grid."""
    gen = torch.Generator().manual_seed(cout * 100 + cin * 10 + k)
    w = torch.randn(cout, cin, k, k, generator=gen, dtype=DT)
    bound = B.conv_operator_norm(w, hw)
    true_zero = float(torch.linalg.matrix_norm(_dense(_conv_zero(w), (1, cin, *hw)), ord=2))
    assert true_zero <= bound
    N = (hw[0] + k - 1, hw[1] + k - 1)
    true_circ = float(torch.linalg.matrix_norm(_dense(_conv_circ(w), (1, cin, *N)), ord=2))
    assert bound == pytest.approx(true_circ, rel=1e-9)
    # padding_mode="circular" on the image grid itself is exact
    exact = B.conv_operator_norm(w, hw, padding_mode="circular")
    dense_hw = float(torch.linalg.matrix_norm(_dense(_conv_circ(w), (1, cin, *hw)), ord=2))
    assert exact == pytest.approx(dense_hw, rel=1e-9)


def test_conv_norm_vs_power_iteration_with_conv_transpose_adjoint():
    """theory/README.md (Constants): power iteration on the actual zero-padded conv2d with
    conv_transpose2d as adjoint stays below the certified bound and close to it (32x32)."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(4, 2, 3, 3, generator=gen, dtype=DT)

    class Conv:
        def __call__(self, x):
            return F.conv2d(x, w, padding=1)

        def H(self, y):
            return F.conv_transpose2d(y, w, padding=1)

    est = math.sqrt(B.operator_norm_sq(Conv(), (1, 2, 32, 32), iters=300))
    bound = B.conv_operator_norm(w, (32, 32))
    assert est <= bound
    assert est >= 0.97 * bound


def test_complex_conv_norm_matches_complex_dense_operator():
    """theory/README.md (Constants): block weight [[Wr,-Wi],[Wi,Wr]] gives the norm of the
    complex convolution (circular: exact; zero padding: certified)."""
    gen = torch.Generator().manual_seed(5)
    wr = torch.randn(2, 2, 3, 3, generator=gen, dtype=DT)
    wi = torch.randn(2, 2, 3, 3, generator=gen, dtype=DT)
    wc = torch.complex(wr, wi)
    hw = (4, 5)

    def circ(x):  # complex circular conv via real ops
        p = F.pad(x, (1, 1, 1, 1), mode="circular")
        return (
            F.conv2d(p.real, wr)
            - F.conv2d(p.imag, wi)
            + 1j * (F.conv2d(p.real, wi) + F.conv2d(p.imag, wr))
        )

    n = 2 * hw[0] * hw[1]
    basis = torch.eye(n, dtype=torch.complex128)
    Amat = torch.stack([circ(basis[i].reshape(1, 2, *hw)).reshape(-1) for i in range(n)], dim=1)
    exact = float(torch.linalg.matrix_norm(Amat, ord=2))
    assert B.conv_operator_norm_complex(wr, wi, hw, padding_mode="circular") == pytest.approx(
        exact, rel=1e-9
    )

    # zero padding: certified >= the true complex operator norm
    def zero(x):
        return F.conv2d(x, wc, padding=1)

    Zmat = torch.stack([zero(basis[i].reshape(1, 2, *hw)).reshape(-1) for i in range(n)], dim=1)
    assert float(torch.linalg.matrix_norm(Zmat, ord=2)) <= B.conv_operator_norm_complex(wr, wi, hw)


# ------------------------------------------------------------------------------------------
# operator norm estimation and finite differences
# ------------------------------------------------------------------------------------------


class _DenseOp:
    """Tiny test operator x -> A x on flattened inputs with an explicit adjoint A.H."""

    def __init__(self, A, shape):
        self.A, self.shape = A, shape

    def __call__(self, x):
        return (self.A @ x.reshape(-1).to(self.A.dtype)).reshape(-1)

    def H(self, y):
        return (self.A.conj().T @ y).reshape(self.shape)


@pytest.mark.parametrize("cplx", [False, True])
def test_operator_norm_sq_power_iteration_real_and_complex(cplx):
    """theory/README.md (Constants): the estimate is a lower bound and converges to ||A||^2;
    the autograd-adjoint fallback (no .H) agrees; dense matrices give the exact value."""
    gen = torch.Generator().manual_seed(7)
    A = torch.randn(30, 20, generator=gen, dtype=DT)
    if cplx:
        A = torch.complex(A, torch.randn(30, 20, generator=gen, dtype=DT))
    exact = float(torch.linalg.matrix_norm(A, ord=2)) ** 2
    dt = torch.complex128 if cplx else DT
    op = _DenseOp(A, (20,))
    est = B.operator_norm_sq(op, (20,), iters=500, dtype=dt)
    assert est <= exact * (1 + 1e-12)
    assert est == pytest.approx(exact, rel=1e-8)
    few = B.operator_norm_sq(op, (20,), iters=2, dtype=dt)
    assert few <= exact * (1 + 1e-12)
    est_vjp = B.operator_norm_sq(lambda x: A @ x.reshape(-1), (20,), iters=500, dtype=dt)
    assert est_vjp == pytest.approx(exact, rel=1e-8)
    assert B.operator_norm_sq(A) == pytest.approx(exact, rel=1e-12)
    assert B.operator_norm_sq(A.numpy()) == pytest.approx(exact, rel=1e-12)


def _fd(x):
    """Forward differences, Neumann boundary, stacked (B, 2C, H, W) as in DESIGN.md."""
    dv, dh = torch.zeros_like(x), torch.zeros_like(x)
    dv[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dh[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return torch.cat([dv, dh], dim=1)


def test_finite_difference_bound_and_exact_norm():
    """theory/README.md (Constants): sqrt(8) >= power iteration, tight within 1% on 64x64;
    finite_difference_norm(H, W) equals the dense SVD on small grids."""
    M_est, L_g = B.linear_feature_constants(_fd, (1, 1, 64, 64), iters=2000)
    assert L_g == 0.0
    assert M_est <= B.finite_difference_norm_bound()
    assert M_est >= 0.99 * B.finite_difference_norm_bound()
    assert M_est <= B.finite_difference_norm(64, 64) * (1 + 1e-12)
    for hw in [(1, 1), (1, 5), (3, 4), (6, 6)]:
        dense = float(torch.linalg.matrix_norm(_dense(_fd, (1, 1, *hw)), ord=2))
        assert B.finite_difference_norm(*hw) == pytest.approx(dense, rel=1e-10, abs=1e-12)
        assert dense <= B.finite_difference_norm_bound()
    # channels are decoupled: the 3-channel map has the same norm
    dense3 = float(torch.linalg.matrix_norm(_dense(_fd, (1, 3, 3, 4)), ord=2))
    assert dense3 == pytest.approx(B.finite_difference_norm(3, 4), rel=1e-10)


def test_library_finite_difference_matches():
    """The library's FiniteDifference (if present) has the norm of finite_difference_norm."""
    features = pytest.importorskip("lda_opt.features")
    D = features.FiniteDifference()
    dense = float(torch.linalg.matrix_norm(_dense(D, (1, 1, 5, 6)), ord=2))
    assert dense == pytest.approx(B.finite_difference_norm(5, 6), rel=1e-10)


# ------------------------------------------------------------------------------------------
# thorough-only
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
@given(seed=st.integers(0, 2**31 - 1), log_eps=st.floats(-3, 0), log_dist=st.floats(-4, 0))
def test_lemma32_paper_size_featurecnn(seed, log_eps, log_dist):
    """theory/lda.md Lemma 3.2 on the paper's architecture (width 32, depth 4, 3x3) at 6x6."""
    nets = pytest.importorskip("lda_opt.nets")
    torch.manual_seed(0)
    g = nets.FeatureCNN(in_channels=1, width=32, depth=4, delta=0.01).double()
    hw = (6, 6)
    M, L_g = B.cnn_constants(g, hw)
    gen = torch.Generator().manual_seed(seed)
    eps = 10**log_eps
    x1 = torch.randn(1, 1, *hw, generator=gen, dtype=DT)
    x2 = x1 + torch.randn(1, 1, *hw, generator=gen, dtype=DT) * 10**log_dist
    dx = float(torch.linalg.vector_norm(x1 - x2))
    dg = float(
        torch.linalg.vector_norm(_grad_r(huber_r, g, x1, eps) - _grad_r(huber_r, g, x2, eps))
    )
    assert dg <= B.lipschitz_huber(0, L_g, M, hw[0] * hw[1], eps) * dx * (1 + 1e-9) + 1e-14


def test_printed_segment_bound_below_one_for_large_sigma():
    """theory/lda.md Thm 3.5: with sigma = 1e3 the printed (27) at l = 0 is < 1, yet every
    segment has >= 1 iteration; the corrected bound keeps the +1."""
    c1, c2 = B.lda_segment_constants(2, 2, 1, 0, 1, 1, 0.5, 0, 1, 1e3, 0.9)
    assert c1 + c2 < 1e-3
    assert B.lda_segment_bound(0, c1, c2, 0.9) >= 1
    C1, C2 = B.elda_segment_constants(1, 0, 1, 1, 0.5, 0, 1e-3, 1e3, 1, 1, 1, 0.5, 1)
    assert B.elda_segment_bound(0, C1, C2, 0.9) >= 1


def test_operator_norm_sq_on_library_mri_operator():
    """theory/README.md (Constants): for A = P F (orthonormal FFT, binary mask) the estimate is
    <= the certified ||A||^2 = 1 and reaches it; real inputs use Re(A^H y)."""
    operators = pytest.importorskip("lda_opt.operators")
    gen = torch.Generator().manual_seed(11)
    mask = (torch.rand(16, 16, generator=gen) < 0.3).to(DT)
    mask[0, 0] = 1.0  # DC sampled: the constant image attains ||A x|| = ||x|| for real x too
    A = operators.MRI(mask)
    for dt in (torch.complex128, DT):
        est = B.operator_norm_sq(A, (1, 1, 16, 16), 50, dtype=dt)
        assert est <= 1.0 + 1e-12
        assert est == pytest.approx(1.0, rel=1e-9)
