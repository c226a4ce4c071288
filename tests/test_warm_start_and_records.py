"""Issue 20 items 3, 5, 7, 10: the warm start, the typed hand-offs, exact pass counts and the
level of the reported gradient norm.

* Item 7: a run's passes of ``q`` are the Trace's initial passes (``init_state``: one forward
  and one backward, per sample) plus its rows; ``Trace.totals()`` equals ``Result.forward`` /
  ``Result.backward`` and the count of an independent wrapper around ``q``
  (:class:`lda_opt.testing.CountedFeatures`), for every algorithm, in a batch too.
* Item 3: ``Solver.run(problem, x0, state=s)`` starts from ``s`` without evaluating ``x0``;
  each sample starts at its own ``s.eps``.  Warm-starting from ``init_state`` reproduces the
  cold run bit for bit; so does continuing after an LDA-Net's phases (against the cold start
  at ``eps_K`` that ``continue_run`` used before), with one forward and one backward fewer.
* Item 5: :class:`~lda_opt.algorithms.base.PhaseParams` refuses unknown and foreign names;
  the trace record is an :class:`~lda_opt.trace.IterationRecord`.
* Item 10: ``grad_norm_final`` is paired with the level it was measured at,
  ``eps_of_grad_norm = eps_k``, beside ``eps_final = eps_{k+1}``; ``lda-opt check`` reads
  result.json files with and without the new fields.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from _helpers import ALGORITHMS, fast_solver, tv_denoise_problem

import lda_opt as lo
from lda_opt.algorithms.base import PhaseParams, State
from lda_opt.cli import main
from lda_opt.learning import LDANet, continue_run
from lda_opt.testing import CountedFeatures
from lda_opt.trace import ALL_FIELDS, IterationRecord, Trace


def _counted_problem(batch=2, seed=0):
    p, x0 = tv_denoise_problem(batch=batch, seed=seed)
    q = CountedFeatures(p.features)
    return lo.Problem(p.fidelity, q, weight=p.weight), x0, q


def _equal_runs(a, b) -> None:
    """Bit-identical iterates, levels, norms, objectives and trace rows (seconds excepted)."""
    for f in ("x", "iterations", "converged", "eps", "grad_norm", "grad_norm_eps", "phi", "phi_eps"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert a.reason == b.reason
    da, db = a.trace.as_dict(), b.trace.as_dict()
    for f in [*ALL_FIELDS, "active"]:
        if f != "seconds":
            assert torch.equal(da[f].nan_to_num(-7.0), db[f].nan_to_num(-7.0)), f


# -- item 7: exact pass counts ------------------------------------------------------------
@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_trace_totals_equal_result_and_an_independent_count(cls):
    p, x0, q = _counted_problem(batch=1)
    res = fast_solver(cls, max_iter=60).run(p, x0)
    tot = res.trace.totals()
    assert res.trace.initial_forward.tolist() == [1] and res.trace.initial_backward.tolist() == [1]
    assert torch.equal(tot["forward"], res.forward) and torch.equal(tot["backward"], res.backward)
    assert (q.forward_calls, q.backward_calls) == (int(tot["forward"][0]), int(tot["backward"][0]))
    # the rows alone are exactly the start's one forward and one backward short
    d = res.trace.as_dict()
    rows_f = int(d["forward"][d["active"]].sum())
    rows_b = int(d["backward"][d["active"]].sum())
    assert (q.forward_calls - rows_f, q.backward_calls - rows_b) == (1, 1)
    js = res.trace.to_json()
    assert js["initial_forward"] == [1] and js["initial_backward"] == [1]
    s = res.summary()
    assert s["passes_initial"] == {"forward": [1], "backward": [1]}


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_batch_totals_equal_the_wrapper_in_samples(cls):
    p, x0, q = _counted_problem(batch=3, seed=4)
    res = fast_solver(cls, max_iter=40).run(p, x0)
    tot = res.trace.totals()
    assert torch.equal(tot["forward"], res.forward) and torch.equal(tot["backward"], res.backward)
    assert q.forward_rows == int(tot["forward"].sum())


def test_trace_initial_passes_are_validated():
    with pytest.raises(ValueError, match="initial_forward"):
        Trace(2, initial_forward=[1, 2, 3])
    with pytest.raises(TypeError, match="initial_backward"):
        Trace(2, initial_backward=torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="initial_forward"):
        Trace(1, initial_forward=-1)
    t = Trace(2, initial_forward=3)
    assert t.totals()["forward"].tolist() == [3, 3] and t.totals()["backward"].tolist() == [0, 0]


# -- item 3: the warm start ----------------------------------------------------------------
@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_warm_start_from_init_state_is_the_cold_run(cls):
    p, x0 = tv_denoise_problem(batch=2, seed=3)
    solver = fast_solver(cls, max_iter=80)
    cold = solver.run(p, x0)
    warm = solver.run(p, x0, state=solver.init_state(p, x0))
    _equal_runs(cold, warm)
    # the evaluation of x0 was paid by init_state: the state's passes are the initial ones
    assert torch.equal(warm.forward, cold.forward) and torch.equal(warm.backward, cold.backward)


def test_warm_start_spends_no_pass_on_x0_and_counts_the_states_passes():
    p, x0, q = _counted_problem(batch=2, seed=1)
    solver = fast_solver(lo.LDA, max_iter=30)
    st = solver.init_state(p, x0)
    for _ in range(3):
        st, _ = solver.iterate(p, st)
    q.reset()
    res = solver.run(p, st.point.x, state=st)
    d = res.trace.as_dict()
    assert torch.equal(res.trace.initial_forward, st.forward)
    assert torch.equal(res.trace.initial_backward, st.backward)
    # this run's passes are the wrapper's; the rows start at the state's level, per sample
    tot = res.trace.totals()
    assert q.forward_rows == int((tot["forward"] - st.forward).sum())
    assert torch.equal(d["eps"][0], st.eps.to(torch.float64))
    assert torch.equal(d["phi_eps_prev"][0], st.point.phi_eps.to(torch.float64))
    assert res.iterations.max() <= 30


def test_each_sample_starts_at_its_own_eps():
    """A batch warm-started at per-sample levels gives each sample's solo cold run at eps0 = its
    level (the batch contract, DESIGN.md)."""
    p, x0 = tv_denoise_problem(batch=2, seed=2)
    levels = [1e-3, 8.1e-4]
    solver = fast_solver(lo.ELDA, max_iter=60)
    st = solver.init_state(p, x0, overrides=PhaseParams(eps0=torch.tensor(levels, dtype=torch.float64)))
    res = solver.run(p, x0, state=st)
    for b, e in enumerate(levels):
        pb = lo.Problem(lo.LeastSquares(lo.operators.Identity(), p.fidelity.y[b:b + 1]), p.features,
                        weight=p.weight)
        rb = solver.replace(eps0=e).run(pb, x0[b:b + 1])
        assert int(rb.iterations[0]) == int(res.iterations[b])
        torch.testing.assert_close(rb.x[0], res.x[b], rtol=1e-10, atol=1e-12)
        assert float(rb.eps[0]) == pytest.approx(float(res.eps[b]), rel=1e-12)


def test_warm_start_refusals():
    p, x0 = tv_denoise_problem(batch=2, seed=0)
    solver = fast_solver(lo.LDA, max_iter=10)
    st = solver.init_state(p, x0)
    with pytest.raises(TypeError, match="state"):
        solver.run(p, x0, state={"eps": 1.0})
    with pytest.raises(ValueError, match="not x0"):
        solver.run(p, x0 + 1e-3, state=st)
    p1, x1 = tv_denoise_problem(batch=1, seed=0)
    with pytest.raises(ValueError, match="shape"):
        solver.run(p1, x1, state=st)
    with pytest.raises(ValueError, match="below eps_tol"):
        solver.replace(eps_tol=0.9).run(p, x0, state=dataclasses.replace(st, eps=st.eps * 1e-3))
    with pytest.raises(ValueError, match="smoothing"):
        lo.MetaLDA(max_iter=5).run(p, x0, state=st)  # sqrt smoothing: st's phi_eps is Huber's


def _net_setup(seed=0):
    torch.manual_seed(seed)
    dt = torch.float64
    net = LDANet(2, 3, 2, alpha=0.3, tau=0.05, eps0=0.05, weight=0.2).to(dt)
    net.features = CountedFeatures(net.features)
    Phi = torch.linalg.qr(torch.randn(36, 12, dtype=dt))[0].T.contiguous()
    A = lo.operators.Matrix(Phi, (1, 6, 6))
    truth = torch.rand(3, 1, 6, 6, dtype=dt)
    return net, net.problem(lo.LeastSquares(A, A(truth))), truth


def test_continuation_is_the_cold_start_at_eps_K_without_its_evaluation():
    net, problem, truth = _net_setup()
    q = net.features
    x_k, state = net.reconstruct(problem, torch.zeros_like(truth))
    phase_f, phase_b = q.forward_calls, q.backward_calls
    assert state.forward.tolist() == [phase_f] * 3 and state.backward.tolist() == [phase_b] * 3
    cont = continue_run(net, problem, state, eps_tol=5.0, max_iter=3000)
    assert len(cont.groups) == 1
    _, solver, res = cont.groups[0]
    # every pass of q since x0 (phases included) is counted, exactly
    tot = res.trace.totals()
    assert torch.equal(tot["forward"], res.forward) and torch.equal(tot["backward"], res.backward)
    assert q.forward_rows == int(res.forward.sum())
    assert q.backward_rows >= int(res.backward.sum())  # a batched backward carries every row
    # the old meaning: Algorithm 1 started cold at x_K with eps0 = eps_K (re-evaluates x_K)
    q.reset()
    cold = solver.run(problem, x_k.detach())
    _equal_runs(cold, res)
    assert torch.equal(res.forward - state.forward, cold.forward - 1)
    assert torch.equal(res.backward - state.backward, cold.backward - 1)


# -- item 5: typed hand-offs -----------------------------------------------------------------
def test_phase_params_reject_unknown_and_foreign_names():
    p, x0 = tv_denoise_problem(batch=1)
    lda = lo.LDA(alpha=0.25)
    st = lda.init_state(p, x0)
    with pytest.raises(TypeError, match="alpah"):
        PhaseParams(alpah=0.1)
    with pytest.raises(ValueError, match="alpah"):  # a misspelled key of a dict is refused too
        lda.iterate(p, st, overrides={"alpah": 0.1})
    with pytest.raises(ValueError, match="theta"):  # AGD's momentum: LDA has none
        lda.iterate(p, st, overrides=PhaseParams(theta=0.5))
    with pytest.raises(ValueError, match="eps00"):
        lda.init_state(p, x0, overrides={"eps00": 1e-3})
    # a set field takes precedence; the record reads as the mapping of its set fields
    pp = PhaseParams(alpha=0.1, tau=torch.tensor(0.2, dtype=torch.float64))
    assert dict(pp) == {"alpha": 0.1, "tau": pp.tau} and "theta" not in pp and len(pp) == 2
    a, _ = lda.iterate(p, st, overrides=pp)
    b, _ = lda.replace(alpha=0.1, tau=0.2).iterate(p, st)
    assert torch.equal(a.point.x, b.point.x)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pp.alpha = 0.3


def test_iteration_record_is_typed_and_reads_as_a_mapping():
    p, x0 = tv_denoise_problem(batch=2)
    seen = []
    res = fast_solver(lo.ELDA, max_iter=5).run(p, x0, callback=lambda k, st, rec: seen.append(rec))
    assert seen and all(isinstance(r, IterationRecord) for r in seen)
    r = seen[0]
    assert tuple(r) == ALL_FIELDS and r["eps"] is r.eps and r.seconds.shape == (2,)
    with pytest.raises(KeyError):
        r["epsilon"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.eps = r.eps * 2
    assert len(res.trace) == len(seen)


# -- item 10: the level of the reported gradient norm -----------------------------------------
@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_result_pairs_grad_norm_with_its_level(cls):
    p, x0 = tv_denoise_problem(batch=2, seed=5)
    solver = fast_solver(cls)
    res = solver.run(p, x0)
    assert bool(res.converged.all()), res.reason
    g = torch.tensor(solver.gamma, dtype=res.eps.dtype)
    # eps_final = eps_{k+1} = gamma eps_k, eps_k being the level the norm was measured at
    assert torch.equal(g * res.grad_norm_eps, res.eps)
    # ||grad phi_{eps_k}(x_{k+1})|| < sigma gamma eps_k = sigma eps_{k+1} < eps_tol
    assert bool((res.grad_norm < solver.sigma * solver.gamma * res.grad_norm_eps).all())
    assert bool((solver.sigma * res.eps < solver.eps_tol).all())
    s = res.summary()
    assert s["eps_of_grad_norm"] == res.grad_norm_eps.tolist() and s["eps_final"] == res.eps.tolist()


def test_solve_writes_the_level_and_check_reads_new_and_old_result_json(tmp_path):
    out = tmp_path / "run"
    assert main(["solve", "--quiet", "--size", "12", "--eps-tol", "0.5", "--out", str(out)]) == 0
    r = json.loads((out / "result.json").read_text())
    assert r["converged"]
    assert r["eps_final"] == pytest.approx(r["eps_of_grad_norm"] * r["solver"]["params"]["gamma"], rel=1e-12)
    sigma = r["solver"]["params"]["sigma"]
    assert r["grad_norm_final"] < sigma * r["eps_final"] < r["solver"]["params"]["eps_tol"]
    assert r["per_sample"]["passes_initial"] == {"forward": [1], "backward": [1]}
    assert main(["check", "--quiet", str(out)]) == 0
    # a result.json written before these fields existed
    for key in ("eps_of_grad_norm",):
        del r[key]
        del r["per_sample"][key]
    del r["per_sample"]["passes_initial"]
    (out / "result.json").write_text(json.dumps(r))
    assert main(["check", "--quiet", str(out)]) == 0


def test_state_records_its_smoothing():
    p, x0 = tv_denoise_problem(batch=1)
    st = lo.MetaLDA().init_state(p, x0)
    assert isinstance(st, State) and st.smoothing == "sqrt"
    st2, _ = lo.MetaLDA().iterate(p, st)
    assert st2.smoothing == "sqrt" and st2.take(torch.tensor([0])).smoothing == "sqrt"
