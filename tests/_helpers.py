"""Helpers shared by the top-level test files (imported as ``_helpers``)."""

from __future__ import annotations

import torch

import lda_opt as lo

RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}
ATOL = {torch.float64: 1e-12, torch.float32: 1e-5}

#: every solver that must pass the shared contract (STYLE.md item 9)
ALGORITHMS = [lo.LDA, lo.MetaLDA, lo.ELDA, lo.GD, lo.AGD]
PAPER_ALGORITHMS = [lo.LDA, lo.MetaLDA, lo.ELDA]


def fast_solver(cls, **kw):
    """A solver with step sizes suited to the small normalized test problems (L_f <= 1)."""
    base = {"sigma": 1.0, "eps0": 1e-3, "eps_tol": 2e-4, "max_iter": 4000}
    # MetaLDA and ELDA restart their searches every iteration (their Algorithm 1); rho = 0.5
    # instead of 0.9 reaches the accepted step in ~5x fewer trials on these small problems.
    if cls is lo.MetaLDA:
        base.update(alpha=0.1, tau=0.1, rho=0.5)
    elif cls is lo.ELDA:
        base.update(alpha=0.1, gamma_u=0.1, alpha_bar=0.1, rho=0.5)
    elif cls in (lo.LDA, lo.GD, lo.AGD):
        base.update(alpha=0.25)
    base.update(kw)
    return cls(**base)


def tv_denoise_problem(batch=1, n=8, kappa=0.05, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, 1, n, n, generator=g, dtype=torch.float64).to(dtype)
    p = lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), weight=kappa)
    return p, y.clone()
