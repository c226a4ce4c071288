"""The invariant checker ``lda_opt.check`` and ``lda-opt check DIR``: tests that can fail.

Real runs of every algorithm check clean; the same runs with a deliberately broken trace or
configuration (an increase of phi_eps, a line-search count above l_max, a missing eps
reduction, a broken monotone quantity, a stalled segment, a false certificate, a run past
its stopping rule) are reported at the exact iteration and sample, with the paper equation.
Each test names the theory/ entry it exercises.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

import lda_opt as lo
from lda_opt import bounds as B
from lda_opt import checks
from lda_opt.cli import main as cli_main
from lda_opt.commands.check import load_run
from lda_opt.nets import FeatureCNN
from lda_opt.trace import ALL_FIELDS, Trace

DT = torch.float64
N = 6
KAPPA = 0.05
#: step sizes for the normalized test problems (L_f = 1), as tests/_helpers.fast_solver
STEPS = {
    lo.LDA: {"alpha": 0.25},
    lo.GD: {"alpha": 0.25},
    lo.AGD: {"alpha": 0.25},
    lo.MetaLDA: {"alpha": 0.1, "tau": 0.1},
    lo.ELDA: {"alpha": 0.1, "gamma_u": 0.1, "alpha_bar": 0.1},
}
ALL = [lo.LDA, lo.MetaLDA, lo.ELDA, lo.GD, lo.AGD]
BACKTRACKING = [lo.LDA, lo.MetaLDA, lo.ELDA, lo.GD]


def _problem(batch=1, n=N, kappa=KAPPA, seed=0, dtype=DT):
    gen = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, 1, n, n, generator=gen, dtype=torch.float64).to(dtype)
    p = lo.Problem(
        lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), kappa
    )
    return p, y.clone()


def _solver(cls, **kw):
    base = dict(sigma=10.0, eps0=1e-2, eps_tol=5e-2, max_iter=300, **STEPS[cls])
    base.update(kw)
    return cls(**base)


_RUNS: dict = {}


def _run(cls):
    """A converged float64 TV-denoising run of ``cls`` (cached: the runs are reused)."""
    if cls not in _RUNS:
        p, x0 = _problem()
        s = _solver(cls)
        _RUNS[cls] = (p, s, s.run(p, x0))
    return _RUNS[cls]


def _rebuild(trace: Trace, edit=None, insert=None) -> Trace:
    """A copy of ``trace`` with ``edit(d)`` applied to its (K, B) field tensors and, with
    ``insert = (k, rows)``, the records ``rows`` (dicts of per-sample values) inserted before
    row ``k``."""
    d = trace.as_dict()
    if edit is not None:
        edit(d)
    act = d.pop("active")
    out = Trace(trace.batch_size)
    K = act.shape[0]
    for k in range(K + 1):
        if insert is not None and insert[0] == k:
            for rec in insert[1]:
                idx = torch.arange(trace.batch_size)
                out.append(
                    idx,
                    {
                        f: torch.as_tensor(rec[f], dtype=DT).expand(trace.batch_size)
                        for f in ALL_FIELDS
                    },
                )
        if k == K:
            break
        idx = act[k].nonzero().squeeze(1)
        out.append(idx, {f: d[f][k, idx] for f in ALL_FIELDS})
    return out


def _with(res, trace: Trace):
    """The Result ``res`` with its trace replaced (stop reasons and final phi_eps kept)."""
    return dataclasses.replace(res, trace=trace)


def _reduction_rows(trace: Trace, b: int = 0) -> list[int]:
    d = trace.sample(b)
    return (d["eps_next"] < d["eps"]).nonzero().squeeze(1).tolist()


def _lmax(solver, consts, m, d0, k, kappa=KAPPA):
    """l_max of the solver's search at row k of the sample records d0 (what the checker must
    use): ELDA (4.13) from alpha_bar; meta-LDA Lemma A3 from alpha; LDA/GD from the first
    trial, min(alpha, alpha_{k-1}/shrink) when warm-started."""
    eps = float(d0["eps"][k])
    if solver.smoothing.name == "sqrt":
        L = B.lipschitz_sqrt(consts["L_f"], consts["L_g"], consts["M"], m, eps, kappa, sharp=True)
    else:
        L = B.lipschitz_huber(consts["L_f"], consts["L_g"], consts["M"], m, eps, kappa)
    if solver.name == "elda":
        return B.elda_lmax(solver.alpha_bar, L, solver.eta3, eps, solver.rho)
    if solver.name == "meta-lda":
        return B.metalda_max_backtracks(solver.alpha, L, solver.a, solver.rho, sharp=True) + 1
    a0 = solver.alpha
    if getattr(solver, "warm_start", False) and k > 0:
        a0 = min(a0, float(d0["step"][k - 1]) / solver.shrink)
    return B.metalda_max_backtracks(a0, L, 1 / solver.c, solver.shrink, sharp=True) + 1


# ------------------------------------------------------------------------------------------
# real runs are clean
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_real_runs_are_clean(cls):
    """theory/lda.md, elda.md, meta_lda.md: every inequality the checker knows holds on a
    converged run; the certificate, the reduction count and the bounds were all evaluated."""
    p, s, res = _run(cls)
    assert res.reason == ["converged"]
    rep = lo.check(res, p, s)
    assert rep.ok, rep.summary()
    K = int(res.iterations[0])
    ell = B.num_reductions(s.eps0, s.eps_tol, s.sigma, s.gamma)
    assert len(_reduction_rows(res.trace)) == ell == 7
    assert rep.counts["descent"] == K
    assert rep.counts["smoothing-sandwich"] == 2 * K + 2 * ell  # at x_{k+1}, and at the new level
    assert rep.counts["certificate"] == 4
    if cls is lo.AGD:
        assert "linesearch-bound" not in rep.counts
        assert any("AGD" in s_ for s_ in rep.skipped)
    else:
        assert rep.counts["segment-bound"] == ell
        assert rep.counts["linesearch-bound"] >= K
        assert rep.counts["total-bound"] >= 1
    # the same trace without the Result: no reasons, so no certificate
    rep_t = lo.check(res.trace, p, s)
    assert rep_t.ok and "certificate" not in rep_t.counts


def test_runs_have_both_branches_and_backtracking():
    """The planted cases below are meaningful: the runs take u and v steps and backtrack."""
    for cls in (lo.LDA, lo.MetaLDA, lo.ELDA):
        d = _run(cls)[2].trace.sample(0)
        assert int((d["branch"] == 0).sum()) > 0 and int((d["branch"] == 1).sum()) > 0, cls.name
    d = _run(lo.LDA)[2].trace.sample(0)
    assert int(d["linesearch"].max()) >= 2


def test_fixed_step_lda_checks_theorem_35():
    """theory/lda.md Lemma 3.3 / Thm 3.5: LDA with a fixed alpha inside the step range
    (alpha L_eps < 1 at every level) satisfies the descent lemma, the per-segment Lemma 3.3
    bound and the corrected (27)-(29), all of which the checker evaluates."""
    p, x0 = _problem()
    s = lo.LDA(
        linesearch=False, alpha=0.1, eps0=0.2, gamma=0.5, sigma=1.0, eps_tol=0.05, max_iter=500
    )
    c = checks.estimate_constants(p)
    assert s.alpha * B.lipschitz_huber(c["L_f"], c["L_g"], c["M"], c["m"], 0.05, KAPPA) < 1
    res = s.run(p, x0)
    assert res.reason == ["converged"]
    rep = lo.check(res, p, s)
    assert rep.ok, rep.summary()
    ell = B.num_reductions(0.2, 0.05, 1.0, 0.5)
    assert rep.counts["segment-bound"] == 2 * ell  # Lemma 3.3 and (27) per segment
    assert rep.counts["total-bound"] == 2  # finite sum (29) and its closed form
    assert rep.counts["sufficient-decrease"] == int(res.iterations[0])
    assert "linesearch-bound" not in rep.counts


def test_float32_run_is_clean():
    """The tolerance follows the run's dtype: a float32 run checks clean."""
    p, x0 = _problem(dtype=torch.float32)
    s = _solver(lo.ELDA)
    res = s.run(p, x0)
    rep = lo.check(res, p, s)
    assert rep.ok, rep.summary()
    assert checks.RTOL[torch.float32] == 256 * torch.finfo(torch.float32).eps


def test_agd_without_linesearch_is_not_held_to_descent():
    """An AGD-Net step (fixed alpha, theta; linesearch=False) has no descent theory: the
    checker checks only the algorithm-independent invariants and says so."""
    p, x0 = _problem()
    s = lo.AGD(
        linesearch=False, alpha=0.25, theta=0.5, sigma=10.0, eps0=1e-2, eps_tol=5e-2, max_iter=40
    )
    res = s.run(p, x0)
    rep = lo.check(res, p, s)
    assert rep.ok, rep.summary()
    assert "descent" not in rep.counts and "sufficient-decrease" not in rep.counts
    n_red = len(_reduction_rows(res.trace))
    assert rep.counts["smoothing-sandwich"] == 2 * int(res.iterations[0]) + 2 * n_red
    assert any("no theory" in s_ for s_ in rep.skipped)


# ------------------------------------------------------------------------------------------
# planted violations: broken traces
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_planted_phi_eps_increase_is_reported(cls):
    """LDA (21) / ELDA (4.23) / meta-LDA (A11): an increase of phi_eps at one iteration (made
    consistent with the next row) is reported there, with margin = the increase."""
    p, s, res = _run(cls)
    red = set(_reduction_rows(res.trace))
    k = next(k for k in range(3, int(res.iterations[0]) - 1) if k not in red)
    d0 = res.trace.sample(0)
    inc = 1e-3 * abs(float(d0["phi_eps_prev"][k]))

    def edit(d):
        d["phi_eps"][k, 0] = d["phi_eps_prev"][k, 0] + inc
        d["phi_eps_prev"][k + 1, 0] = d["phi_eps"][k, 0]

    rep = lo.check(_with(res, _rebuild(res.trace, edit)), p, s)
    (v,) = rep.find("descent")
    assert (v.iteration, v.sample) == (k, 0)
    assert v.equation in ("LDA (21)", "ELDA (4.23)", "meta-LDA (A11)", "AGD rule (LDA Sec. 4.3.3)")
    assert math.isclose(v.margin, inc, rel_tol=1e-9)
    assert rep.find("sufficient-decrease", iteration=k)
    assert {w.iteration for w in rep.violations} == {k}
    assert {w.check for w in rep.violations} <= {
        "descent",
        "sufficient-decrease",
        "smoothing-sandwich",
    }


@pytest.mark.parametrize("cls", BACKTRACKING, ids=lambda c: c.name)
def test_planted_linesearch_count_above_lmax_is_reported(cls):
    """ELDA (4.13) corrected, meta-LDA Lemma A3, LDA Sec. 4.3.3: a line search with l_max + 1
    evaluations is reported, with the certified l_max as the right-hand side."""
    p, s, res = _run(cls)
    c = checks.estimate_constants(p)
    d0 = res.trace.sample(0)
    k = next(k for k in range(int(res.iterations[0])) if int(d0["branch"][k]) == 1)
    lmax = _lmax(s, c, c["m"], d0, k)
    assert int(d0["linesearch"][k]) <= lmax

    def edit(d):
        d["linesearch"][k, 0] = lmax + 1

    rep = lo.check(_with(res, _rebuild(res.trace, edit)), p, s)
    (v,) = rep.violations
    assert (v.check, v.iteration, v.sample) == ("linesearch-bound", k, 0)
    assert (v.lhs, v.rhs, v.margin) == (lmax + 1, lmax, 1.0)
    assert v.certified


def test_planted_capped_search_is_reported():
    """ELDA (4.13): a search that hit its cap although max_linesearch >= l_max contradicts
    Lemma 4.5; with a cap below l_max it is not a violation."""
    p, s, res = _run(lo.ELDA)
    c = checks.estimate_constants(p)
    K = int(res.iterations[0])
    d0 = res.trace.sample(0)
    lmax = _lmax(s, c, c["m"], d0, K - 1)

    def edit(d):
        d["capped"][K - 1, 0] = 1.0

    broken = _with(res, _rebuild(res.trace, edit))
    rep = lo.check(broken, p, s)
    (v,) = rep.violations
    assert (v.check, v.iteration) == ("linesearch-bound", K - 1)
    assert s.max_linesearch >= lmax
    low_cap = s.replace(max_linesearch=lmax - 1) if lmax > 1 else None
    if low_cap is not None:
        assert lo.check(broken, p, low_cap).ok


@pytest.mark.parametrize("cls", [lo.LDA, lo.MetaLDA, lo.ELDA], ids=lambda c: c.name)
def test_planted_missing_reduction_is_reported(cls):
    """LDA Alg. 1 line 7, ELDA/meta-LDA line 15: at an iteration whose ||grad phi_eps(x_{k+1})||
    is below sigma gamma eps_k, dropping the reduction is reported there; the converged run
    then also has one reduction fewer than num_reductions (reported at its last iteration)."""
    p, s, res = _run(cls)
    k = _reduction_rows(res.trace)[1]
    K = int(res.iterations[0])

    def edit(d):
        d["eps_next"][k, 0] = d["eps"][k, 0]

    rep = lo.check(_with(res, _rebuild(res.trace, edit)), p, s)
    miss = [
        v for v in rep.find("reduction-rule", iteration=k) if "not reduced only if" in v.inequality
    ]
    assert len(miss) == 1
    assert miss[0].lhs == pytest.approx(
        s.sigma * s.gamma * float(res.trace.sample(0)["eps"][k]), rel=1e-15
    )
    assert miss[0].equation in (
        "LDA Alg. 1 line 7",
        "ELDA Alg. 1 line 15",
        "meta-LDA Alg. 1 line 15",
    )
    assert {v.iteration for v in rep.violations} == {k, K - 1}
    (count,) = rep.find("certificate", iteration=K - 1)
    assert count.inequality.startswith("number of reductions") and count.margin == 1.0


def test_planted_monotone_quantity_break_is_reported():
    """meta-LDA (A19), Lemma A4 corrected: phi_{eps_{k+1}}(x_{k+1}) + kappa m eps_{k+1} above
    phi_{eps_k}(x_{k+1}) + kappa m eps_k at a reduction is reported; the printed form
    phi_eps + eps would have accepted this value (kappa m > 1 here)."""
    p, s, res = _run(lo.MetaLDA)
    m = N * N
    assert KAPPA * m > 1
    k = _reduction_rows(res.trace)[2]
    d0 = res.trace.sample(0)
    pe, eps, en = float(d0["phi_eps"][k]), float(d0["eps"][k]), float(d0["eps_next"][k])
    # raise the next level's value half-way into the slack of the printed form
    corrected_max = pe + KAPPA * m * (eps - en)
    printed_max = pe + (eps - en)
    new = corrected_max + 0.5 * (corrected_max - pe)  # > corrected bound
    assert new > corrected_max and printed_max < corrected_max

    def edit(d):
        d["phi_eps_prev"][k + 1, 0] = new

    rep = lo.check(_with(res, _rebuild(res.trace, edit)), p, s)
    v = rep.find("monotone-quantity", iteration=k)
    assert len(v) == 1 and v[0].equation == "meta-LDA (A19), Lemma A4 corrected"
    assert v[0].margin == pytest.approx(new - corrected_max, rel=1e-9)
    # the only other possible report: the new value also exceeds phi(x_{k+1}) (sandwich)
    assert {w.iteration for w in rep.violations} == {k}
    assert set(rep.by_check()) <= {"monotone-quantity", "smoothing-sandwich"}


def test_planted_false_certificate_is_reported():
    """LDA Thm 3.6 / ELDA (4.31): a converged run whose last ||grad phi_eps|| is not below
    sigma gamma eps is reported (certificate and reduction rule at the last iteration)."""
    p, s, res = _run(lo.ELDA)
    K = int(res.iterations[0])
    thr = s.sigma * s.gamma * float(res.trace.sample(0)["eps"][K - 1])

    def edit(d):
        d["grad_norm"][K - 1, 0] = 1.5 * thr

    rep = lo.check(_with(res, _rebuild(res.trace, edit)), p, s)
    cert = rep.find("certificate", iteration=K - 1)
    assert len(cert) == 1 and cert[0].equation == "ELDA (4.31)"
    assert cert[0].margin == pytest.approx(0.5 * thr, rel=1e-12)
    assert rep.find("reduction-rule", iteration=K - 1)


def test_planted_stalled_segment_breaks_segment_bound():
    """meta-LDA Lemma A3 (+1) per segment (the Sec. 4.3.3 backtracking of LDA): a segment
    padded with stalled iterations (no progress, gradient above the threshold) to more than
    1 + Lemma A3 iterations is reported, and so is the run's total (nothing else).  A large sigma eps (every iteration
    reduces eps) and a small L_eps (eps0 = 0.5) make the bound a few iterations."""
    p, x0 = _problem()
    s = lo.LDA(sigma=100.0, eps0=0.5, eps_tol=30.0, alpha=0.25, max_iter=200)
    res = s.run(p, x0)
    assert res.reason == ["converged"] and lo.check(res, p, s).ok
    c = checks.estimate_constants(p)
    d0 = res.trace.sample(0)
    k = 1  # stall before row 1 (in segment 1: every segment of this run has length 1)
    eps = float(d0["eps"][k])
    L = B.lipschitz_huber(c["L_f"], c["L_g"], c["M"], c["m"], eps, KAPPA)
    delta = L * B.metalda_min_step(s.alpha, L, 1 / s.c, s.shrink, sharp=True)
    start = float(d0["phi_eps_prev"][k])
    bound = 1 + B.metalda_fixed_eps_iterations(
        L, 1 / s.c, delta, s.sigma * s.gamma * eps, start, 0.0, c["m"], eps, KAPPA
    )
    n_stall = math.ceil(bound)  # the segment gets n_stall + 1 > bound iterations
    assert n_stall <= 10
    stall = {
        "phi_eps": start,
        "phi": float(d0["phi"][k - 1]),
        "grad_norm": 10 * s.sigma * eps,
        "eps": eps,
        "branch": 1.0,
        "step": s.alpha,
        "linesearch": 1.0,
        "forward": 1.0,
        "backward": 1.0,
        "seconds": 0.0,
        "eps_next": eps,
        "phi_eps_prev": start,
        "grad_norm_prev": float(d0["grad_norm_prev"][k]),
        "dist": 0.0,
        "capped": 0.0,
    }
    rep = lo.check(_with(res, _rebuild(res.trace, insert=(k, [stall] * n_stall))), p, s)
    seg = rep.find("segment-bound")
    assert (
        len(seg) == 1
        and seg[0].lhs == n_stall + 1
        and seg[0].rhs == pytest.approx(bound, rel=1e-12)
    )
    assert seg[0].equation == "LDA Sec. 4.3.3 via meta-LDA Lemma A3 (+1)"
    K = int(res.iterations[0]) + n_stall
    (tot,) = rep.find("total-bound")  # the a-priori sum of Lemma A3 is exceeded too
    assert (tot.iteration, tot.lhs) == (K - 1, K)
    assert set(rep.by_check()) == {"segment-bound", "total-bound"}


# ------------------------------------------------------------------------------------------
# planted violations: broken configuration
# ------------------------------------------------------------------------------------------


def test_configuration_with_larger_sigma_reports_exactly_the_missed_reductions():
    """LDA Alg. 1 line 7: checked against sigma' = 10 sigma, the run 'missed' a reduction at
    exactly the rows with sigma gamma eps_k <= ||grad phi_eps(x_{k+1})|| < sigma' gamma eps_k."""
    p, s, res = _run(lo.LDA)
    wrong = s.replace(sigma=10 * s.sigma)
    d0 = res.trace.sample(0)
    expected = [
        k
        for k in range(int(res.iterations[0]))
        if not d0["eps_next"][k] < d0["eps"][k]
        and d0["grad_norm"][k] < wrong.sigma * s.gamma * d0["eps"][k]
    ]
    assert expected
    rep = lo.check(res, p, wrong)
    got = sorted(
        v.iteration for v in rep.find("reduction-rule") if "not reduced only if" in v.inequality
    )
    assert got == expected


def test_configuration_with_larger_eps_tol_reports_the_overrun():
    """LDA Alg. 1 line 8: with eps_tol' = 2 eps_tol the run should have stopped at the first
    reduction with sigma eps_{k+1} < eps_tol'; every later row is reported."""
    p, s, res = _run(lo.GD)
    wrong = s.replace(eps_tol=2 * s.eps_tol)
    d0 = res.trace.sample(0)
    K = int(res.iterations[0])
    stop = next(k for k in range(K) if s.sigma * d0["eps_next"][k] < wrong.eps_tol)
    assert stop < K - 1
    rep = lo.check(res, p, wrong)
    got = sorted(v.iteration for v in rep.find("termination"))
    assert got == list(range(stop, K - 1))


def test_false_constants_are_contradicted_by_backtracking():
    """meta-LDA Lemma A3 / LDA Sec. 4.3.3: with a (falsely certified) M = 0.1 instead of
    sqrt(8), L_eps ~ 1 and the first trial alpha = 0.25 would always pass the decrease rule;
    every iteration that backtracked contradicts both l_max = 1 and the step lower bound."""
    p, s, res = _run(lo.LDA)
    d0 = res.trace.sample(0)
    backtracked = [k for k in range(int(res.iterations[0])) if int(d0["linesearch"][k]) >= 2]
    assert backtracked
    rep = lo.check(res, p, s, constants={"L_f": 1.0, "M": 0.1, "L_g": 0.0})
    assert set(rep.by_check()) == {"linesearch-bound"}
    for k in backtracked:
        got = sorted(v.inequality for v in rep.find("linesearch-bound", iteration=k))
        assert got == ["accepted step >= its lower bound", "phi_eps(v) evaluations <= l_max"]
    assert sorted({v.iteration for v in rep.violations}) == backtracked
    assert all(v.certified for v in rep.violations)


# ------------------------------------------------------------------------------------------
# batches: per-sample attribution
# ------------------------------------------------------------------------------------------


def test_batch_violation_is_attributed_to_its_sample():
    """Each sample is its own problem: a break in sample 1 is reported for sample 1 only, and
    the per-sample counts equal those of the samples checked alone."""
    p, x0 = _problem(batch=2, seed=3)
    s = _solver(lo.MetaLDA)
    res = s.run(p, x0)
    assert lo.check(res, p, s).ok
    d1 = res.trace.sample(1)
    red = set(_reduction_rows(res.trace, 1))
    k = next(k for k in range(2, len(d1["eps"]) - 1) if k not in red)
    rows = res.trace.as_dict()["active"][:, 1].nonzero().squeeze(1).tolist()
    kk = rows[k]

    def edit(d):
        d["phi_eps"][kk, 1] = d["phi_eps_prev"][kk, 1] + 1e-3
        d["phi_eps_prev"][rows[k + 1], 1] = d["phi_eps"][kk, 1]

    rep = lo.check(_with(res, _rebuild(res.trace, edit)), p, s)
    (v,) = rep.find("descent")
    assert (v.sample, v.iteration) == (1, k)
    assert all(w.sample == 1 for w in rep.violations)


# ------------------------------------------------------------------------------------------
# constants and input validation
# ------------------------------------------------------------------------------------------


def test_estimate_constants_library_pieces():
    """theory/README.md (Constants): certified L_f, M, L_g for the library's operators and
    features; m = H' W'."""
    y = torch.rand(1, 1, 5, 4, dtype=DT)
    c = checks.estimate_constants(
        lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), lo.features.Identity(), 1.0)
    )
    assert c == {
        "L_f": 1.0,
        "M": 1.0,
        "L_g": 0.0,
        "m": 20,
        "certified": {"L_f": True, "M": True, "L_g": True},
    }
    mask = torch.zeros(5, 4, dtype=DT)
    mask[0, 0] = mask[2, 3] = 1
    A = lo.operators.MRI(mask)
    yc = A(torch.randn(1, 1, 5, 4, dtype=torch.complex128))
    c = checks.estimate_constants(
        lo.Problem(lo.LeastSquares(A, yc), lo.features.FiniteDifference(), 1.0)
    )
    assert (c["L_f"], c["M"], c["L_g"], c["m"]) == (1.0, math.sqrt(8), 0.0, 20)
    Phi = torch.randn(7, 20, dtype=DT, generator=torch.Generator().manual_seed(0))
    Am = lo.operators.Matrix(Phi, image_shape=(1, 5, 4))
    c = checks.estimate_constants(
        lo.Problem(lo.LeastSquares(Am, Am(y)), lo.features.FiniteDifference(), 1.0)
    )
    exact = float(torch.linalg.matrix_norm(Phi, ord=2)) ** 2
    assert exact <= c["L_f"] <= exact * (1 + 2e-10) and c["certified"]["L_f"]
    torch.manual_seed(0)
    net = FeatureCNN(1, width=3, depth=2, delta=0.1).double()
    c = checks.estimate_constants(lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), net, 1.0))
    assert (c["M"], c["L_g"]) == B.cnn_constants(net, (5, 4)) and c["m"] == 20
    assert c["certified"] == {"L_f": True, "M": True, "L_g": True}


def test_supplied_constants_override_and_uncertified_marking():
    """Supplied constants replace the estimates; a violation that uses an uncertified constant
    says so."""
    p, s, res = _run(lo.ELDA)
    d0 = res.trace.sample(0)
    k = next(k for k in range(int(res.iterations[0])) if int(d0["branch"][k]) == 1)
    c = checks.estimate_constants(p)
    lmax = _lmax(s, c, c["m"], d0, k)

    def edit(d):
        d["linesearch"][k, 0] = lmax + 1

    rep = lo.check(
        _rebuild(res.trace, edit),
        p,
        s,
        constants={"L_f": c["L_f"], "M": c["M"], "L_g": 0.0, "certified": {"M": False}},
    )
    (v,) = rep.violations
    assert not v.certified and "estimated" in v.line()


@pytest.mark.parametrize(
    "call, exc, name",
    [
        (
            lambda p, s, r: lo.check(r, p, s, constants={"L_f": 1, "Lf": 2}),
            ValueError,
            "unknown keys",
        ),
        (lambda p, s, r: lo.check(r, p, s, constants={"M": -1.0}), ValueError, "constants['M']"),
        (lambda p, s, r: lo.check(r, p, s, constants=[1.0]), TypeError, "constants"),
        (lambda p, s, r: lo.check(r.x, p, s), TypeError, "result"),
        (lambda p, s, r: lo.check(r, "p", s), TypeError, "problem"),
        (lambda p, s, r: lo.check(r, p, object()), ValueError, "solver"),
        (lambda p, s, r: checks.check_trace(r.trace, s, None, 0, 0.1), ValueError, "m must"),
        (lambda p, s, r: checks.check_trace(r.trace, s, None, 36, -0.1), ValueError, "kappa"),
        (lambda p, s, r: checks.check_trace(r.trace, s, None, 36, [0.1, 0.2]), ValueError, "kappa"),
        (
            lambda p, s, r: checks.check_trace(r.trace, s, None, 36, 0.1, reasons=["a", "b"]),
            ValueError,
            "reasons",
        ),
        (
            lambda p, s, r: checks.check_trace(r.trace, s, None, 36, 0.1, dtype="int8"),
            ValueError,
            "dtype",
        ),
        (lambda p, s, r: checks.check_trace(r, s, None, 36, 0.1), TypeError, "trace"),
    ],
)
def test_invalid_inputs_raise_naming_the_parameter(call, exc, name):
    p, s, res = _run(lo.LDA)
    with pytest.raises(exc, match=name.replace("[", r"\[").replace("]", r"\]")):
        call(p, s, res)


def test_unknown_feature_map_needs_constants():
    """A feature map without certified or estimable constants raises, and works once the
    constants are supplied."""

    class Square(torch.nn.Module):
        def forward(self, x):
            return x * x

    p0, x0 = _problem()
    p = lo.Problem(p0.fidelity, Square(), KAPPA)
    s = _solver(lo.LDA, max_iter=5)
    res = s.run(p, x0)
    with pytest.raises(ValueError, match="pass constants"):
        lo.check(res, p, s)
    rep = lo.check(res, p, s, constants={"L_f": 1.0, "M": 0.0, "L_g": 0.0, "m": N * N})
    assert "descent" in rep.counts


# ------------------------------------------------------------------------------------------
# the CLI: lda-opt check DIR
# ------------------------------------------------------------------------------------------


def _write_run(directory: Path, p, s, res, trace: Trace | None = None) -> Path:
    """What `lda-opt solve --out DIR` writes (result.json + trace.csv), batch size 1."""
    directory.mkdir(parents=True, exist_ok=True)
    c = checks.estimate_constants(p)
    summary = res.summary()
    result = {
        "algorithm": s.name,
        "iterations": int(res.iterations[0]),
        "converged": bool(res.converged[0]),
        "reason": res.reason[0],
        "eps_final": summary["eps_final"][0],
        "grad_norm_final": summary["grad_norm_final"][0],
        "phi_final": summary["phi_final"][0],
        "psnr": None,
        "passes": {
            "forward": summary["passes"]["forward"][0],
            "backward": summary["passes"]["backward"][0],
        },
        "seconds": res.seconds,
        "config": {"algorithm": s.name},
        "solver": {"name": s.name, "params": s.config()},
        "problem": {
            "kind": "tv-denoise",
            "shape": list(p.fidelity.y.shape),
            "dtype": "float64",
            "weight": KAPPA,
            "m": c["m"],
            "smoothing": s.smoothing.name,
        },
        "constants": {
            "L_f": c["L_f"],
            "M": c["M"],
            "L_g": c["L_g"],
            "certified": c["certified"],
            "phi_star": 0.0,
        },
    }
    (directory / "result.json").write_text(json.dumps(result))
    (trace if trace is not None else res.trace).to_csv(directory / "trace.csv")
    return directory


def test_cli_clean_run_exits_0_and_writes_report(tmp_path, capsys):
    """`lda-opt check DIR` on a clean run: exit 0, the same counts as lda_opt.check, and
    --out writes check.json and check.png."""
    p, s, res = _run(lo.MetaLDA)
    d = _write_run(tmp_path / "run", p, s, res)
    assert cli_main(["check", str(d), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "meta-lda: OK" in out
    report = json.loads((tmp_path / "rep" / "check.json").read_text())
    assert report["ok"] and report["violations"] == []
    c = checks.estimate_constants(p)
    expected = checks.check_trace(
        res.trace,
        s,
        {k: c[k] for k in ("L_f", "M", "L_g", "certified")},
        c["m"],
        KAPPA,
        reasons=res.reason,
    )
    assert report["counts"] == expected.counts
    assert (tmp_path / "rep" / "check.png").stat().st_size > 0
    # with the final phi_eps in result.json (Result.summary()'s phi_eps_final) the last
    # reduction is checked too, exactly as lda_opt.check does with the Result
    r = json.loads((d / "result.json").read_text())
    r["phi_eps_final"] = res.summary()["phi_eps_final"][0]
    (d / "result.json").write_text(json.dumps(r))
    assert cli_main(["check", str(d), "--out", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / "check.json").read_text())
    assert report["counts"] == lo.check(res, p, s).counts


def test_cli_broken_run_exits_1_and_prints_each_violation(tmp_path, capsys):
    """A trace with a planted increase of phi_eps: exit 1, one printed line per violation."""
    p, s, res = _run(lo.ELDA)
    k = 5

    def edit(d):
        d["phi_eps"][k, 0] = d["phi_eps_prev"][k, 0] + 1e-3
        d["phi_eps_prev"][k + 1, 0] = d["phi_eps"][k, 0]

    broken = _rebuild(res.trace, edit)
    d = _write_run(tmp_path / "run", p, s, res, broken)
    assert cli_main(["check", str(d), "--quiet"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    expected = checks.check_trace(
        broken,
        s,
        {k_: v for k_, v in checks.estimate_constants(p).items() if k_ != "m"},
        N * N,
        KAPPA,
        reasons=res.reason,
    )
    assert lines == [v.line() for v in expected.violations]
    assert any(
        "descent" in line and "ELDA (4.23)" in line and f"iteration {k}:" in line for line in lines
    )


def test_cli_no_bounds_skips_constant_checks(tmp_path, capsys):
    p, s, res = _run(lo.LDA)
    d = _write_run(tmp_path / "run", p, s, res)
    assert cli_main(["check", str(d), "--no-bounds"]) == 0
    out = capsys.readouterr().out
    assert "skipped: linesearch-bound, segment-bound, total-bound" in out
    assert "segment-bound:" not in out


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    """Missing directory, missing trace, bad JSON, unknown solver: exit 2, one-line error."""
    p, s, res = _run(lo.LDA)
    assert cli_main(["check", str(tmp_path / "nope")]) == 2
    d = _write_run(tmp_path / "run", p, s, res)
    (d / "trace.csv").unlink()
    assert cli_main(["check", str(d)]) == 2
    d = _write_run(tmp_path / "run2", p, s, res)
    (d / "result.json").write_text("{not json")
    assert cli_main(["check", str(d)]) == 2
    d = _write_run(tmp_path / "run3", p, s, res)
    r = json.loads((d / "result.json").read_text())
    r["solver"]["name"] = "sgd"
    (d / "result.json").write_text(json.dumps(r))
    assert cli_main(["check", str(d)]) == 2
    del r["problem"]
    r["solver"]["name"] = "lda"
    (d / "result.json").write_text(json.dumps(r))
    assert cli_main(["check", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(e.startswith("lda-opt check: error: ") for e in err)
    assert "sgd" in err[3] and "'problem'" in err[4]


def test_end_to_end_solve_then_check(tmp_path, capsys):
    """`lda-opt solve --out DIR` then `lda-opt check DIR`: a real CLI run checks clean with the
    constants solve recorded (certified TV constants), and a copy with a planted increase of
    phi_eps in trace.csv exits 1."""
    out = tmp_path / "solve"
    argv = [
        "solve",
        "--problem",
        "tv-denoise",
        "--size",
        "8",
        "--algorithm",
        "elda",
        "--candidate",
        "paper",
        "--max-iter",
        "10",
        "--quiet",
        "--out",
        str(out),
    ]
    assert cli_main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["constants"]["certified"] == {"L_f": True, "M": True, "L_g": True}
    assert cli_main(["check", str(out)]) == 0
    assert "elda: OK" in capsys.readouterr().out
    trace = load_run(out)["trace"]  # read back exactly (float64)
    d = trace.sample(0)
    assert len(d["eps"]) >= 3
    k = next((k for k in range(1, len(d["eps"]) - 1) if not d["eps_next"][k] < d["eps"][k]), 1)

    def edit(dd):
        dd["phi_eps"][k, 0] = dd["phi_eps_prev"][k, 0] + 1.0
        dd["phi_eps_prev"][k + 1, 0] = dd["phi_eps"][k, 0]

    _rebuild(trace, edit).to_csv(out / "trace.csv")
    assert cli_main(["check", str(out), "--quiet"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith(f"sample 0 iteration {k}: descent:") for line in lines)
    assert all(f"iteration {k}:" in line for line in lines)  # nothing else (exact round trip)


def test_rounding_limited_line_searches_are_separated_from_violations():
    """Floating point: near a stationary point of phi_eps the decrease that an acceptable step
    guarantees, at most T g^2/4 (T the rule's threshold step, g = ||grad phi_eps(x_k)||), is
    below the rounding of phi_eps; the computed test then fails at every step until v == x_k in
    floating point (or passes by rounding luck), far beyond l_max.  Such rows are listed in Report.rounding (with the
    criterion verified here) and do not count as violations; rows above the rounding level
    stay strict (the planted tests above)."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(1, 1, 3, 3, generator=gen, dtype=DT)
    p = lo.Problem(
        lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), 0.01
    )
    s = lo.LDA(
        eps0=0.00946,
        gamma=0.42,
        sigma=1.56,
        eps_tol=9e-5,
        alpha=1.0,
        c=0.37,
        shrink=0.49,
        max_iter=50,
    )
    res = s.run(p, y.clone())
    rep = lo.check(res, p, s)
    assert rep.ok, rep.summary()
    assert rep.rounding, "this run reaches the rounding level (if not, the solver changed)"
    c = checks.estimate_constants(p)
    d0 = res.trace.sample(0)
    for v in rep.rounding:
        k = v.iteration
        L = B.lipschitz_huber(c["L_f"], c["L_g"], c["M"], c["m"], float(d0["eps"][k]), 0.01)
        T = B.metalda_step_threshold(L, 1 / s.c, sharp=True)
        g = float(d0["grad_norm_prev"][k])
        assert T * g * g / 4 <= checks.RTOL[DT] * abs(float(d0["phi_eps_prev"][k]))
        assert v.margin > v.tol and v.check == "linesearch-bound"
    assert "rounding-limited" in rep.summary() and rep.to_json()["rounding"]
