"""Convex reference instances: LDA, MetaLDA and ELDA reach the CVXPY optimum.

Each run uses ``sigma = 1, eps_tol = 2e-4`` and must end with the certificate (reason
"converged") at a point whose exact objective is within 1e-3 (relative) of the CVXPY
optimum.  The instances are convex, so the global optimum is the reference.
"""

import cvxpy as cp
import numpy as np
import pytest
import torch
from _helpers import PAPER_ALGORITHMS, fast_solver

import lda_opt as lo

N = 8
KAPPA = 0.02


def _tv_expr(X, n):
    dv = cp.vstack([X[1:, :] - X[:-1, :], np.zeros((1, n))])
    dh = cp.hstack([X[:, 1:] - X[:, :-1], np.zeros((n, 1))])
    return cp.sum(cp.norm(cp.vstack([cp.vec(dv, order="C"), cp.vec(dh, order="C")]), 2, axis=0))


def tv_denoise():
    gen = torch.Generator().manual_seed(10)
    clean = torch.zeros(N, N, dtype=torch.float64)
    clean[2:6, 3:7] = 1.0
    y = (clean + 0.1 * torch.randn(N, N, generator=gen, dtype=torch.float64))[None, None]
    X = cp.Variable((N, N))
    obj = 0.5 * cp.sum_squares(X - y[0, 0].numpy()) + KAPPA * _tv_expr(X, N)
    ref = cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL")
    p = lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), KAPPA)
    return p, y.clone(), ref


def mri_data(seed, fill):
    """An N x N complex MRI instance: a random half mask (DC kept), ``y = A(truth) + noise``
    with ``fill(truth)`` setting the ground truth, and the dense DFT ``F`` and mask ``P`` for
    CVXPY (row-major vec of the 2-D orthonormal DFT)."""
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(N, N, generator=gen) < 0.5).double()
    mask[0, 0] = 1.0
    A = lo.operators.MRI(mask)
    truth = torch.zeros(1, 1, N, N, dtype=torch.complex128)
    fill(truth[0, 0])
    y = A(truth) + 0.02 * A(torch.randn(1, 1, N, N, generator=gen, dtype=torch.complex128))
    F1 = np.fft.fft(np.eye(N), norm="ortho")
    return A, y, np.kron(F1, F1), mask.numpy().reshape(-1)


def mri_l1():
    """Complex MRI with l1 (complex modulus) regularizer: 1/2||P F x - y||^2 + kappa sum |x_i|."""

    def fill(t):
        t[2, 3], t[5, 5], t[6, 1] = 1 + 1j, -0.7j, 0.5

    A, y, F, P = mri_data(11, fill)
    x = cp.Variable(N * N, complex=True)
    obj = 0.5 * cp.sum_squares(cp.multiply(P, F @ x) - y.numpy().reshape(-1)) + KAPPA * cp.sum(cp.abs(x))
    ref = cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL")
    p = lo.Problem(lo.LeastSquares(A, y), lo.features.Identity(), KAPPA)
    return p, A.H(y), ref


def cs_tv():
    """Block compressed sensing with TV: a Gaussian Phi with orthonormal rows, ratio 0.75."""
    gen = torch.Generator().manual_seed(12)
    n = N * N
    G = torch.randn(n, 3 * n // 4, generator=gen, dtype=torch.float64)
    Phi = torch.linalg.qr(G).Q.T.contiguous()  # (M, n) with orthonormal rows
    A = lo.operators.Matrix(Phi, image_shape=(1, N, N))
    clean = torch.zeros(1, 1, N, N, dtype=torch.float64)
    clean[0, 0, 1:5, 2:7] = 1.0
    y = A(clean) + 0.01 * torch.randn(1, 3 * n // 4, generator=gen, dtype=torch.float64)
    X = cp.Variable((N, N))
    obj = 0.5 * cp.sum_squares(Phi.numpy() @ cp.vec(X, order="C") - y[0].numpy()) + KAPPA * _tv_expr(X, N)
    ref = cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL")
    p = lo.Problem(lo.LeastSquares(A, y), lo.features.FiniteDifference(), KAPPA)
    return p, A.H(y), ref


@pytest.mark.parametrize("make", [tv_denoise, mri_l1, cs_tv], ids=["tv-denoise", "mri-l1", "cs-tv"])
@pytest.mark.parametrize("cls", PAPER_ALGORITHMS, ids=lambda c: c.name)
def test_reaches_cvxpy_optimum(make, cls):
    problem, x0, ref = make()
    solver = fast_solver(cls, max_iter=20000)
    res = solver.run(problem, x0)
    assert res.reason == ["converged"], res.reason
    gap = (float(res.phi[0]) - ref) / abs(ref)
    assert -1e-6 <= gap <= 1e-3, gap
    # the certificate at termination: ||grad phi_eps|| < sigma*gamma*eps before the last reduction
    assert float(res.grad_norm[0]) < solver.sigma * float(res.eps[0])
    assert solver.sigma * float(res.eps[0]) < solver.eps_tol
