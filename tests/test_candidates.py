"""Candidate rules of ELDA and LDA (issue 16; ``theory/candidates.md``).

* ``candidate="lbfgs"`` on a strongly convex quadratic takes the steps of a reference L-BFGS
  built independently (the dense BFGS update of ``H`` from the stored pairs, numpy, float64),
  to 1e-10;
* the fallback ``v`` is taken exactly when no trial of the candidate satisfies (4.9a)-(4.9b),
  recomputed independently with the public ``Problem.phi_eps``, with two planted bad
  directions (an ascent direction fails (4.9b), a tiny one fails (4.9a));
* the memory is per sample (a batch equals each sample alone) and is reset on a reduction;
* every run is clean under ``lo.check``; the paper's rule is the default;
* bad candidate settings are refused at construction, naming the field.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _helpers import tv_denoise_problem

import lda_opt as lo
from lda_opt.algorithms import candidates

RULES = ("lbfgs", "nesterov")
ELDA_FAST = {"alpha": 0.1, "gamma_u": 0.1, "alpha_bar": 0.1, "rho": 0.5}


def _solver(cls, **kw):
    base = {"sigma": 1.0, "eps0": 1e-3, "eps_tol": 2e-4, "max_iter": 2000}
    base.update(ELDA_FAST if cls is lo.ELDA else {"alpha": 0.25})
    base.update(kw)
    return cls(**base)


def _mixed_batch():
    """Three TV-denoising problems with different data scales and weights."""
    g = torch.Generator().manual_seed(3)
    y = torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64)
    y[1] *= 0.3
    w = torch.tensor([0.05, 0.02, 0.1], dtype=torch.float64)
    return lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), w), y.clone()


# ---------------------------------------------------------------------------------------
# L-BFGS against a reference on a strongly convex quadratic
# ---------------------------------------------------------------------------------------
def _quadratic(n=4, rows=20, kappa=0.3, seed=1):
    """``phi_eps(x) = 1/2 ||Phi x - y||^2 + kappa ||x||^2 / (2 eps)`` while every ``|x_i| <= eps``
    (Huber's quadratic zone of the identity features): a strongly convex quadratic."""
    g = torch.Generator().manual_seed(seed)
    Phi = torch.randn(rows, n * n, generator=g, dtype=torch.float64) / math.sqrt(rows)
    y = torch.randn(1, rows, generator=g, dtype=torch.float64)
    p = lo.Problem(lo.LeastSquares(lo.operators.Matrix(Phi, (1, n, n)), y), lo.features.Identity(), kappa)
    return p, Phi.numpy(), y.numpy()[0], kappa


def _reference_lbfgs(Phi, y, kappa, eps, x0, steps, memory, h0, eta1, eta2, shrink, trials):
    """Textbook L-BFGS in numpy: ``H`` built densely from ``H0 = h I`` by the BFGS update
    ``H <- V^T H V + rho s s^T`` over the stored pairs (oldest first), ``u = x - t H g`` with
    ``t = 1, shrink, ...`` until (4.9a)-(4.9b); a pair is kept if ``s^T y > sqrt(u)|s||y|``."""
    Q = Phi.T @ Phi + (kappa / eps) * np.eye(Phi.shape[1])
    b = Phi.T @ y
    phi = lambda v: 0.5 * np.sum((Phi @ v - y) ** 2) + kappa / (2 * eps) * np.sum(v * v)
    grad = lambda v: Q @ v - b
    x, pairs, h, out = x0.copy(), [], h0, []
    for _ in range(steps):
        g = grad(x)
        H = h * np.eye(len(x))
        for s, yy in pairs:
            rho = 1.0 / (yy @ s)
            V = np.eye(len(x)) - rho * np.outer(yy, s)
            H = V.T @ H @ V + rho * np.outer(s, s)
        d = H @ g
        t, taken = 1.0, None
        for _trial in range(trials):
            u = x - t * d
            dist = np.linalg.norm(u - x)
            if np.linalg.norm(g) <= dist / eta1 and phi(u) - phi(x) <= -(eta2 / 2) * dist ** 2:
                taken = u
                break
            t = _next_trial(t, phi(u), phi(x), g @ d, shrink)
        assert taken is not None, "the reference needs the fallback: pick another instance"
        s, yy = taken - x, grad(taken) - g
        if s @ yy > math.sqrt(np.finfo(float).eps) * np.linalg.norm(s) * np.linalg.norm(yy):
            pairs = (pairs + [(s, yy)])[-memory:]
            h = (s @ yy) / (yy @ yy)
        x = taken
        out.append((t, x.copy()))
    return out


def _next_trial(t, phi_t, phi_0, slope, shrink):
    """Nocedal & Wright Sec. 3.5: the minimizer of the quadratic through ``phi(0)``, slope
    ``-slope`` at 0 and ``phi(t)``, kept in ``[t/10, shrink t]`` (``shrink t`` without
    positive curvature)."""
    curv = (phi_t - phi_0 + t * slope) / t ** 2
    if not (curv > 0 and slope > 0):
        return shrink * t
    return min(max(slope / (2 * curv), 0.1 * t), shrink * t)


def test_lbfgs_takes_the_reference_steps_on_a_strongly_convex_quadratic():
    p, Phi, y, kappa = _quadratic()
    eps, steps, memory = 20.0, 12, 3
    solver = lo.ELDA(candidate="lbfgs", memory=memory, eps0=eps, sigma=1e-12, eps_tol=1e-12,
                     max_iter=steps, alpha_bar=1.0)
    xs = []
    res = solver.run(p, torch.zeros(1, 1, 4, 4, dtype=torch.float64),
                     callback=lambda k, st, rec: xs.append(st.point.x.clone()))
    ref = _reference_lbfgs(Phi, y, kappa, eps, np.zeros(16), steps, memory, 1.0, solver.eta1,
                           solver.eta2, solver.candidate_shrink, solver.candidate_linesearch)
    tr = res.trace.sample(0)
    assert tr["branch"].tolist() == [0] * steps  # every step is the L-BFGS candidate
    assert tr["eps"].tolist() == [eps] * steps  # no reduction: one quadratic throughout
    assert float(torch.cat(xs).abs().max()) <= eps  # Huber's quadratic zone held
    for k, (t_ref, x_ref) in enumerate(ref):
        assert float(tr["step"][k]) == pytest.approx(t_ref, rel=0, abs=1e-12)
        np.testing.assert_allclose(xs[k].reshape(-1).numpy(), x_ref, rtol=0, atol=1e-10, err_msg=f"iterate {k + 1}")
    # the memory wrapped (steps > memory), and the candidate's own search backtracked
    assert steps > memory + 2
    assert 0 < float(tr["step"].min()) < 1.0 and float(tr["step"].max()) == 1.0


# ---------------------------------------------------------------------------------------
# the fallback is taken exactly when (4.9a)-(4.9b) fail
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("plant", ["ascent", "tiny"])
def test_fallback_exactly_when_4_9_fails(monkeypatch, plant):
    p, x0 = tv_denoise_problem(n=6)
    solver = _solver(lo.ELDA, candidate="lbfgs", max_iter=14)
    planted = {3, 7, 8}
    seen = []
    real_direction = candidates.lbfgs_direction

    x_grads = []

    def direction(grad, S, Y, n, h):
        d = real_direction(grad, S, Y, n, h)
        if len(seen) in planted:
            d = -d if plant == "ascent" else 1e-9 * d
        seen.append(d.clone())
        x_grads.append(grad.clone())
        return d

    monkeypatch.setattr(candidates, "lbfgs_direction", direction)
    xs = [x0.clone()]
    res = solver.run(p, x0, callback=lambda k, st, rec: xs.append(st.point.x.clone()))
    tr = res.trace.sample(0)
    K = len(tr["branch"])
    assert K == 14 and len(seen) == K
    huber = lo.Huber()
    for k in range(K):
        x, d, eps = xs[k], seen[k], float(tr["eps"][k])
        phi_x = float(p.phi_eps(x, eps, huber)[0])
        gx = float(tr["grad_norm_prev"][k])
        passes, t = False, 1.0
        slope = float((d * x_grads[k]).sum())
        for _ in range(solver.candidate_linesearch):
            u = x - t * d
            dist = float((u - x).norm())
            phi_u = float(p.phi_eps(u, eps, huber)[0])
            ok_a = gx <= dist / solver.eta1  # (4.9a)
            ok_b = phi_u - phi_x <= -(solver.eta2 / 2) * dist ** 2  # (4.9b)
            if ok_a and ok_b:
                passes = True
                break
            t = _next_trial(t, phi_u, phi_x, slope, solver.candidate_shrink)
        assert int(tr["branch"][k]) == (0 if passes else 1), f"iteration {k}"
        if k in planted:
            assert not passes
    assert {k for k in range(K) if int(tr["branch"][k]) == 1} >= planted
    assert int((tr["branch"] == 0).sum()) > 0
    assert lo.check(res, p, solver).ok


# ---------------------------------------------------------------------------------------
# per-sample semantics and memory
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [lo.ELDA, lo.LDA], ids=lambda c: c.name)
@pytest.mark.parametrize("rule", RULES)
def test_batch_equals_each_sample_alone(cls, rule):
    p, x0 = _mixed_batch()
    solver = _solver(cls, candidate=rule, sigma=100.0, eps_tol=0.075, memory=4)
    res = solver.run(p, x0)
    assert all(r == "converged" for r in res.reason)
    assert len(set(res.iterations.tolist())) > 1
    for b in range(3):
        idx = torch.tensor([b])
        one = solver.run(p.select(idx), x0[idx])
        assert int(one.iterations[0]) == int(res.iterations[b])
        assert int(one.forward[0]) == int(res.forward[b]) and int(one.backward[0]) == int(res.backward[b])
        torch.testing.assert_close(one.x[0], res.x[b], rtol=1e-8, atol=1e-10)
        s, mine = one.trace.sample(0), res.trace.sample(b)
        assert s["branch"].tolist() == mine["branch"].tolist()
        for key in ("phi_eps", "eps", "step", "grad_norm"):
            torch.testing.assert_close(s[key], mine[key], rtol=1e-8, atol=1e-12, msg=key)


@pytest.mark.parametrize("reset", [True, False])
def test_memory_is_reset_on_each_reduction(monkeypatch, reset):
    p, x0 = tv_denoise_problem(n=6)
    solver = _solver(lo.ELDA, candidate="lbfgs", memory=3, reset_memory=reset)
    used = []
    real_direction = candidates.lbfgs_direction
    monkeypatch.setattr(candidates, "lbfgs_direction",
                        lambda g, S, Y, n, h: used.append(int(n[0])) or real_direction(g, S, Y, n, h))
    res = solver.run(p, x0)
    assert res.reason == ["converged"]
    eps = res.trace.sample(0)["eps"].tolist()
    reduced_before = [k > 0 and eps[k] < eps[k - 1] for k in range(len(eps))]
    assert sum(reduced_before) >= 3
    assert used[0] == 0 and max(used) == 3  # empty at x_0; the memory fills up to `memory`
    for k in range(1, len(used)):
        assert used[k] <= used[k - 1] + 1
        if reset and reduced_before[k]:
            assert used[k] == 0, f"iteration {k} follows a reduction"
    if not reset:
        assert min(used[1:]) >= 1  # pairs survive the reductions


def test_nesterov_passes_at_y():
    """After a restart (``theta = 0``: the first iteration) ``y = x_0`` costs no pass and the
    candidate one forward per trial of ``s``; with momentum (``theta_1 = (t_1 - 1)/t_2 > 0``)
    ``y`` costs one forward and one backward more."""
    q = lo.testing.CountedFeatures(lo.features.FiniteDifference())
    p0, x0 = tv_denoise_problem(n=6)
    p = lo.Problem(p0.fidelity, q, p0.weight)
    solver = _solver(lo.ELDA, candidate="nesterov", max_iter=2, eps0=1e-2, sigma=1e-2, eps_tol=1e-5)
    tr = solver.run(p, x0).trace.sample(0)
    assert tr["branch"].tolist() == [0, 0]
    assert tr["eps_next"].tolist() == tr["eps"].tolist()  # no reduction: no restart at k = 1
    s0 = [solver.alpha_bar, min(solver.alpha_bar, float(tr["step"][0]) / solver.candidate_shrink)]
    trials = [round(math.log(float(tr["step"][k]) / s0[k]) / math.log(solver.candidate_shrink)) + 1
              for k in range(2)]
    assert tr["forward"].tolist() == [trials[0], 1 + trials[1]]
    assert tr["backward"].tolist() == [1, 2]


# ---------------------------------------------------------------------------------------
# theory: the checker is clean, the default is the paper's rule
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [lo.ELDA, lo.LDA], ids=lambda c: c.name)
@pytest.mark.parametrize("rule", RULES)
def test_checker_clean_and_certified(cls, rule):
    p, x0 = tv_denoise_problem(batch=2, n=6)
    solver = _solver(cls, candidate=rule)
    res = solver.run(p, x0)
    assert res.reason == ["converged", "converged"]
    rep = lo.check(res, p, solver)
    assert rep.ok, rep.violations[:3]
    # the certificate: ||grad phi_{eps_k}(x_{k+1})|| < sigma gamma eps_k < eps_tol
    assert bool((res.grad_norm < solver.sigma * solver.gamma * res.grad_norm_eps).all())
    # the candidate is taken most of the time, and beats the paper's rule on passes
    paper = _solver(cls).run(p, x0)
    assert int((res.forward + res.backward).sum()) < int((paper.forward + paper.backward).sum())


def test_checker_flags_a_candidate_that_skips_4_9(monkeypatch):
    """The checker re-tests (4.9b) on u-rows: an ascent candidate accepted without the test
    is a violation (so a clean report above means something)."""
    p, x0 = tv_denoise_problem(n=6)
    solver = _solver(lo.ELDA, candidate="lbfgs", max_iter=5)
    real_propose, real_direction = lo.algorithms.elda.propose, candidates.lbfgs_direction
    monkeypatch.setattr(candidates, "lbfgs_direction", lambda *a: -real_direction(*a))
    monkeypatch.setattr(lo.algorithms.elda, "propose", lambda s, o, st, test, cnt, h0: real_propose(
        s, o, st, lambda pv, *a: torch.ones_like(pv, dtype=torch.bool), cnt, h0))
    res = solver.run(p, x0)
    assert res.trace.sample(0)["branch"].tolist() == [0] * 5
    rep = lo.check(res, p, solver)
    assert not rep.ok
    assert "ELDA (4.9b)" in {v.equation for v in rep.violations}


def test_default_candidate_is_the_papers():
    for cls in (lo.ELDA, lo.LDA):
        s = cls()
        assert s.candidate == "paper"
        assert type(s).from_config(s.replace(candidate="lbfgs", memory=5).config()).candidate == "lbfgs"


@pytest.mark.parametrize("cls", [lo.ELDA, lo.LDA], ids=lambda c: c.name)
@pytest.mark.parametrize("field,value,exc", [
    ("candidate", "newton", ValueError), ("candidate", 3, TypeError), ("memory", 0, ValueError),
    ("memory", 2.0, TypeError), ("reset_memory", 1, TypeError), ("candidate_shrink", 1.0, ValueError),
    ("candidate_shrink", 0.0, ValueError), ("candidate_linesearch", 0, ValueError),
])
def test_bad_candidate_settings_are_refused(cls, field, value, exc):
    with pytest.raises(exc, match=field):
        cls(**{field: value})


# ---------------------------------------------------------------------------------------
# the complexity experiment's settings (issue 16 item 4)
# ---------------------------------------------------------------------------------------
def test_complexity_presets_exercise_the_regime_and_take_the_candidate():
    from lda_opt.experiments.complexity import ComplexityConfig

    paper = ComplexityConfig.preset("full", algorithm="elda", problem="cnn-mri")
    assert paper.solver == {"eps0": 0.1, "sigma": 1.0, "eta1": 0.5, "rho": 0.5}
    assert max(paper.eps_tols) == pytest.approx(0.1) and min(paper.eps_tols) == pytest.approx(1e-3)
    s = paper.make_solver(min(paper.eps_tols))
    assert s.sigma * s.eps0 == pytest.approx(max(paper.eps_tols))  # the grid starts at the first level
    lb = ComplexityConfig.preset("quick", algorithm="elda", solver={"candidate": "lbfgs"})
    assert lb.solver == {"eps0": 0.1, "sigma": 1.0, "candidate": "lbfgs"}  # the L-BFGS rule keeps eta1
    assert lb.make_solver(0.01).candidate == "lbfgs"
    lda = ComplexityConfig.preset("full", algorithm="lda")
    assert lda.solver == {"eps0": 0.1, "sigma": 1.0}


@pytest.mark.parametrize("argv,named", [(["--candidate", "bfgs"], "--candidate"),
                                         (["--algorithm", "meta-lda", "--candidate", "lbfgs"], "--candidate")])
def test_complexity_cli_refuses_a_bad_candidate(tmp_path, capsys, argv, named):
    from lda_opt.cli import main

    assert main(["complexity", "--tiny", "--quiet", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]
    assert not (tmp_path / "o").exists()
