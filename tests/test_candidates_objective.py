"""The differentiable smoothed objective of the public API (issue 16 item 5).

``Problem.phi_eps(..., differentiable=True)`` and :class:`~lda_opt.problem.SmoothedObjective`
(``Problem.smoothed``) give ``grad phi_eps`` equal (float64) to the gradient the solvers
compute (LDA eq. 10), for real and complex problems; the cache spends exactly the passes it
promises; ``torch.optim.LBFGS`` can minimize it; bad arguments are refused naming them.
"""

from __future__ import annotations

import pytest
import torch
from _helpers import tv_denoise_problem

import lda_opt as lo
from lda_opt.algorithms.base import Counter, Oracle
from lda_opt.testing import CountedFeatures


def _mri_problem():
    """Complex MRI with complex TV features, float64 (complex128)."""
    g = torch.Generator().manual_seed(2)
    mask = (torch.rand(8, 8, generator=g) < 0.4).to(torch.float64)
    mask[0, 0] = 1.0
    A = lo.operators.MRI(mask)
    x_true = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.complex128)
    y = A(x_true)
    return lo.Problem(lo.LeastSquares(A, y), lo.features.FiniteDifference(), 0.05), A.adjoint(y)


def _library_gradient(p, x, eps):
    """``grad phi_eps(x)`` as the solvers compute it (the oracle of Solver.init_state)."""
    oracle = Oracle(p, lo.Huber())
    cnt = Counter(x.shape[0])
    e = torch.full((x.shape[0],), eps, dtype=x.real.dtype)
    pt = oracle.evaluate(x, e, cnt)
    return pt.phi_eps, oracle.gradient(pt, e, torch.ones(x.shape[0], dtype=torch.bool), cnt, retain=False)


@pytest.mark.parametrize("make", [lambda: tv_denoise_problem(batch=2, n=6), _mri_problem], ids=["tv", "mri"])
def test_autograd_gradient_equals_the_solvers(make):
    p, x0 = make()
    x = (x0 + 0.1 * torch.ones_like(x0)).detach().requires_grad_(True)
    eps = 0.03
    val = p.phi_eps(x, eps, lo.Huber(), differentiable=True)
    (gx,) = torch.autograd.grad(val.sum(), x)
    phi_ref, g_ref = _library_gradient(p, x.detach(), eps)
    torch.testing.assert_close(val.detach(), phi_ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gx, g_ref, rtol=1e-10, atol=1e-12)
    obj = p.smoothed(eps)
    v2, g2 = obj.value_and_grad(x)
    torch.testing.assert_close(v2, phi_ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g2, g_ref, rtol=1e-10, atol=1e-12)
    (g3,) = torch.autograd.grad(obj(x).sum(), x)
    torch.testing.assert_close(g3, g_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(obj.phi(x), p.phi(x.detach()), rtol=1e-12, atol=1e-14)


def test_default_is_not_differentiable():
    p, x0 = tv_denoise_problem(n=6)
    x = x0.clone().requires_grad_(True)
    assert p.phi_eps(x, 0.1, lo.Huber()).grad_fn is None
    assert p.phi(x).grad_fn is None
    assert p.phi_eps(x, 0.1, lo.Huber(), differentiable=True).grad_fn is not None
    assert p.phi(x, differentiable=True).grad_fn is not None


def test_cache_spends_the_promised_passes():
    p0, x0 = tv_denoise_problem(n=6)
    q = CountedFeatures(lo.features.FiniteDifference())
    p = lo.Problem(p0.fidelity, q, p0.weight)
    obj = p.smoothed(0.1, cache=2)
    counts = lambda: (q.forward_calls, q.backward_calls)
    obj.value_and_grad(x0)
    assert counts() == (1, 1)
    obj.value_and_grad(x0)
    obj.phi(x0)
    assert counts() == (1, 1)  # cached point: no pass
    obj.eps = 0.05
    obj.grad(x0)
    assert counts() == (1, 2)  # new level at a cached point: one backward
    x1, x2 = x0 + 0.01, x0 + 0.02
    obj.value(x1)
    obj.value(x2)
    assert counts() == (3, 2)
    obj.value(x0)  # evicted (cache=2): a new forward
    assert counts() == (4, 2)


def test_torch_optim_lbfgs_minimizes_it():
    p, x0 = tv_denoise_problem(n=6)
    obj = p.smoothed(0.01)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                            tolerance_change=0.0)

    def closure():
        opt.zero_grad()
        v = obj(x).sum()
        v.backward()
        return v

    start = float(obj.value(x0)[0])
    opt.step(closure)
    assert float(obj.value(x)[0]) < start
    # strongly convex TV denoising: 200 iterations reach the minimizer to rounding level
    assert float(obj.grad(x).norm()) < 1e-7 * float(obj.grad(x0).norm())


def test_bad_arguments_are_refused_naming_them():
    p, x0 = tv_denoise_problem(n=6)
    with pytest.raises(ValueError, match="eps"):
        p.smoothed(0.0)
    with pytest.raises(TypeError, match="smoothing"):
        p.smoothed(0.1, "huber")
    with pytest.raises(TypeError, match="smoothing"):
        p.phi_eps(x0, 0.1, "huber")
    with pytest.raises(TypeError, match="differentiable"):
        p.phi_eps(x0, 0.1, lo.Huber(), differentiable=1)
    with pytest.raises(ValueError, match="cache"):
        p.smoothed(0.1, cache=0)
    obj = p.smoothed(0.1)
    with pytest.raises(ValueError, match="eps"):
        obj.eps = -1.0
    with pytest.raises(ValueError, match="x"):
        obj.value(x0[:, :, :3])
    with pytest.raises(TypeError, match="problem"):
        lo.problem.SmoothedObjective(object(), 0.1)
