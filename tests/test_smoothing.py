"""Huber (LDA eqs. 8-10) and Sqrt (meta-LDA eq. 5) smoothings: sandwich bounds, gradients."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lda_opt as lo
from lda_opt.smoothing import Huber, Sqrt, group_norm_sq


def huber_direct(g, eps):
    """LDA eq. (9) written out group by group."""
    s = group_norm_sq(g).sqrt()
    return torch.where(s <= eps, s**2 / (2 * eps), s - eps / 2).flatten(1).sum(1)


def sqrt_direct(g, eps):
    return (group_norm_sq(g) + eps**2).sqrt().sub(eps).flatten(1).sum(1)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(1e-4, 10.0), scale=st.floats(1e-3, 10.0),
       complex_=st.booleans())
def test_sandwich_bounds(seed, eps, scale, complex_):
    """r_eps <= r <= r_eps + gap: Huber gap m*eps/2 (eq. 6), Sqrt gap m*eps."""
    gen = torch.Generator().manual_seed(seed)
    g = scale * torch.randn(3, 2, 4, 5, generator=gen, dtype=torch.float64)
    if complex_:
        g = torch.complex(g, scale * torch.randn(3, 2, 4, 5, generator=gen, dtype=torch.float64))
    m = 4 * 5
    r = lo.smoothing.Smoothing.exact(g)
    for sm, gap in ((Huber(), m * eps / 2), (Sqrt(), m * eps)):
        re = sm.value(g, eps)
        assert torch.all(re <= r + 1e-12 * r.abs().max())
        assert torch.all(r <= re + gap + 1e-12 * (r.abs().max() + gap))
        assert sm.gap(m, eps) == pytest.approx(gap)


def test_values_match_direct_formulas():
    gen = torch.Generator().manual_seed(0)
    g = 0.01 * torch.randn(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    eps = torch.tensor([0.005, 0.02], dtype=torch.float64)
    e = eps.reshape(-1, 1, 1)
    assert torch.allclose(Huber().value(g, eps), huber_direct(g, e), rtol=1e-14)
    assert torch.allclose(Sqrt().value(g, eps), sqrt_direct(g, e), rtol=1e-14)
    # both branches of the Huber function are exercised
    s = group_norm_sq(g).sqrt()
    assert bool((s <= e).any()) and bool((s > e).any())


@pytest.mark.parametrize("smoothing,direct", [(Huber(), huber_direct), (Sqrt(), sqrt_direct)])
@pytest.mark.parametrize("complex_", [False, True])
def test_gradient_is_one_vjp_and_matches_autograd(smoothing, direct, complex_):
    """grad r_eps(x) = grad q(x)^T y* (LDA eq. 10) equals autograd of the direct formula."""
    gen = torch.Generator().manual_seed(1)
    shape = (2, 1, 7, 6)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.05
    if complex_:
        x = torch.complex(x, 0.05 * torch.randn(shape, generator=gen, dtype=torch.float64))
    q = lo.features.FiniteDifference()
    eps = torch.tensor([0.01, 0.03], dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (direct(q(xr), eps.reshape(-1, 1, 1)).sum()).backward()
    xl = x.clone().requires_grad_(True)
    g = q(xl)
    (vjp,) = torch.autograd.grad(g, xl, smoothing.dual(g.detach(), eps))
    assert torch.allclose(vjp, xr.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("smoothing", [Huber(), Sqrt()])
def test_gradcheck_float64(smoothing):
    """torch.autograd.gradcheck of x -> r_eps(q(x)) for a nonlinear q in float64."""
    gen = torch.Generator().manual_seed(2)
    W = torch.randn(3, 1, 3, 3, generator=gen, dtype=torch.float64)

    def r(x):
        g = torch.tanh(torch.nn.functional.conv2d(x, W, padding=1))
        return smoothing.value(g, 0.05)

    x = (0.1 * torch.randn(1, 1, 5, 5, generator=gen, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(r, (x,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("smoothing", [Huber(), Sqrt()])
def test_monotone_in_eps(smoothing):
    """r_eps + gap(m, eps) is non-decreasing in eps (LDA (26), ELDA (4.29), meta-LDA A4)."""
    gen = torch.Generator().manual_seed(3)
    g = 0.02 * torch.randn(1, 2, 5, 5, generator=gen, dtype=torch.float64)
    m = 25
    vals = [float(smoothing.value(g, e) + smoothing.gap(m, e)) for e in torch.logspace(-4, 0, 40).tolist()]
    assert all(b >= a - 1e-13 for a, b in itertools.pairwise(vals))
    assert not math.isclose(vals[0], vals[-1])
