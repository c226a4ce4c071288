"""Algorithm 1 after the trained phases (LDA Fig. 7): start, grouping, termination, checker."""

from __future__ import annotations

import pytest
import torch

import lda_opt as lo
from lda_opt.learning import LDANet, continue_run


def _setup(seed=0):
    torch.manual_seed(seed)
    dt = torch.float64
    net = LDANet(2, 3, 2, alpha=0.3, tau=0.05, eps0=0.05, weight=0.2).to(dt)
    Phi = torch.linalg.qr(torch.randn(36, 12, dtype=dt))[0].T.contiguous()
    A = lo.operators.Matrix(Phi, (1, 6, 6))
    truth = torch.rand(3, 1, 6, 6, dtype=dt)
    return net, net.problem(lo.LeastSquares(A, A(truth))), truth


def test_continuation_starts_at_x_K_and_eps_K_and_terminates_by_the_rule():
    net, problem, truth = _setup()
    _, state = net.reconstruct(problem, torch.zeros_like(truth))
    firsts = []
    cont = continue_run(net, problem, state, eps_tol=5.0, max_iter=5000,
                        callback=lambda g, k, st, rec: firsts.append(rec) if k == 0 else None)
    assert len(cont.groups) == 1
    _, solver, res = cont.groups[0]
    assert solver.eps0 == float(state.eps[0]) and solver.linesearch is True and solver.c == 0.35
    assert solver.alpha == pytest.approx(float(net.phase_params()["alpha"][-1].detach()))
    # the first iteration after K starts from phi_{eps_K}(x_K)
    assert torch.allclose(firsts[0]["phi_eps_prev"], state.point.phi_eps, rtol=1e-12, atol=0)
    assert bool(cont.converged.all())
    assert res.reason == ["converged"] * 3
    # termination rule sigma eps < eps_tol at the returned point; descent of phi_eps throughout
    assert bool((net.sigma * res.eps < 5.0).all())
    d = res.trace.as_dict()
    act = d["active"]
    assert bool((d["phi_eps"][act] <= d["phi_eps_prev"][act] + 1e-12).all())
    assert torch.equal(cont.x, res.x)
    reports = cont.check(problem)
    assert len(reports) == 1 and reports[0].ok, reports[0].summary()


def test_samples_with_different_eps_K_run_in_separate_groups():
    net, problem, truth = _setup(1)
    _, state = net.reconstruct(problem, torch.zeros_like(truth))
    state.eps = torch.tensor([0.04, 0.02, 0.04], dtype=torch.float64)
    cont = continue_run(net, problem, state, eps_tol=5.0, max_iter=3000)
    eps0s = sorted((solver.eps0, idx.tolist()) for idx, solver, _ in cont.groups)
    assert eps0s == [(0.02, [1]), (0.04, [0, 2])]
    for idx, _, res in cont.groups:
        assert torch.equal(cont.x[idx], res.x)
    assert cont.iterations.shape == (3,) and bool((cont.iterations >= 1).all())
