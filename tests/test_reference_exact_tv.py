"""The exact TV reference (``lda_opt.learning.reference.tv_exact``, PDHG): CVXPY optimum,
per-sample batches, the adjoint of the finite differences, and bad input."""

import cvxpy as cp
import pytest
import torch
from test_reference import KAPPA, N, _tv_expr, cs_tv, mri_data, tv_denoise

import lda_opt as lo
from lda_opt.algorithms.tv_exact import PDHGSettings, tv_exact, tv_objective
from lda_opt.features import FiniteDifference
from lda_opt.learning.reference import TVSettings, tv_solve
from lda_opt.tasks import MRITask

TIGHT = PDHGSettings(max_iter=100_000, tol=1e-8)


def mri_tv():
    """Complex MRI with TV: 1/2||P F x - y||^2 + kappa TV(x), the CVXPY optimum."""
    def fill(t):
        t[2:6, 3:7] = 1 + 0.5j

    A, y, F, P = mri_data(13, fill)
    X = cp.Variable((N, N), complex=True)
    obj = 0.5 * cp.sum_squares(cp.multiply(P, F @ cp.vec(X, order="C")) - y.numpy().reshape(-1)) \
        + KAPPA * _tv_expr(X, N)
    ref = cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL")
    p = lo.Problem(lo.LeastSquares(A, y), FiniteDifference(), KAPPA)
    return p, A.H(y), ref


@pytest.mark.parametrize("make", [tv_denoise, cs_tv, mri_tv], ids=["tv-denoise", "cs-tv", "mri-tv"])
def test_tv_exact_reaches_the_cvxpy_optimum(make):
    problem, x0, ref = make()
    res = tv_exact(problem.fidelity.A, problem.fidelity.y, problem.weight, x0, TIGHT)
    assert bool(res.converged.all())
    gap = (float(res.objective[0]) - ref) / abs(ref)
    assert abs(gap) <= 1e-6, gap
    assert float(res.objective[0]) == pytest.approx(
        float(tv_objective(problem.fidelity.A, problem.fidelity.y, res.x, problem.weight)[0]), rel=1e-12)


def test_tv_exact_is_below_the_smoothed_lda_solve_and_batches_match_singles():
    task = MRITask(0.3, mask="radial", mask_seed=2, shape=(16, 16))
    gen = torch.Generator().manual_seed(1)
    truth = torch.rand(2, 1, 16, 16, generator=gen, dtype=torch.float64).to(torch.complex128)
    m = task.measure(truth)
    settings = PDHGSettings(max_iter=20000, tol=1e-6)
    batch = tv_exact(m.operator, m.y, 0.01, m.x0, settings)
    assert bool(batch.converged.all())
    for i in range(2):
        one = tv_exact(m.operator, m.y[i:i + 1], 0.01, m.x0[i:i + 1], settings)
        assert int(one.iterations[0]) == int(batch.iterations[i])
        assert torch.allclose(one.x[0], batch.x[i], rtol=0, atol=1e-12)
    lda = tv_solve(m, 0.01, TVSettings(max_iter=300, eps_tol=1e-3))
    assert bool((batch.objective <= tv_objective(m.operator, m.y, lda.x.to(torch.complex128), 0.01) + 1e-12).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_finite_difference_adjoint_is_exact(dtype):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 7, 5, generator=gen, dtype=dtype)
    p = torch.randn(2, 6, 7, 5, generator=gen, dtype=dtype)
    D = FiniteDifference()
    lhs = (D(x).conj() * p).sum()
    rhs = (x.conj() * D.adjoint(p)).sum()
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    with pytest.raises(ValueError, match="p must have shape"):
        D.adjoint(p[:, :5])


def test_tv_exact_bad_input_raises():
    problem, x0, _ = tv_denoise()
    A, y = problem.fidelity.A, problem.fidelity.y
    with pytest.raises(ValueError, match="kappa"):
        tv_exact(A, y, 0.0, x0)
    with pytest.raises(ValueError, match="x0"):
        tv_exact(A, y, 0.1, x0[0])
    with pytest.raises(ValueError, match="max_iter"):
        PDHGSettings(max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        PDHGSettings(tol=-1.0)


def test_adaptive_steps_reach_the_same_minimizer_in_fewer_iterations_at_a_small_weight():
    """Goldstein et al.'s step balancing changes the path, not the minimizer; at a small
    kappa, where the dual variables are tiny, it needs far fewer iterations."""
    task = MRITask(0.3, mask="radial", mask_seed=2, shape=(16, 16))
    gen = torch.Generator().manual_seed(5)
    truth = torch.zeros(1, 1, 16, 16, dtype=torch.complex128)
    truth[:, :, 4:12, 3:10] = 1.0
    truth = truth + 0.1 * torch.rand(1, 1, 16, 16, generator=gen, dtype=torch.float64)
    m = task.measure(truth)
    fixed = tv_exact(m.operator, m.y, 1e-3, m.x0, PDHGSettings(max_iter=100_000, tol=1e-8, adaptive=False))
    adaptive = tv_exact(m.operator, m.y, 1e-3, m.x0, PDHGSettings(max_iter=100_000, tol=1e-8))
    assert bool(fixed.converged.all()) and bool(adaptive.converged.all())
    assert torch.allclose(adaptive.objective, fixed.objective, rtol=1e-7, atol=0)
    # measured: 5,897 fixed and 1,682 adaptive iterations
    assert 3 * int(adaptive.iterations[0]) < int(fixed.iterations[0]), (adaptive.iterations, fixed.iterations)
    with pytest.raises(ValueError, match="adaptive"):
        PDHGSettings(adaptive=1)
