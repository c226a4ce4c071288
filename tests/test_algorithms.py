"""The shared contract every solver in ``ALGORITHMS`` must pass (STYLE.md item 9).

Batch equals singles, max_iter, float32/float64, per-iteration descent inequalities of the
branch taken, trace round trips, validation of hyper-parameters and inputs, non-finite
values during a run, line-search caps and callbacks.  Problems are tiny (6 x 6) so each run
takes a fraction of a second.
"""

import math

import pytest
import torch
from _helpers import ALGORITHMS, PAPER_ALGORITHMS, fast_solver, tv_denoise_problem
from torch import nn

import lda_opt as lo
from lda_opt.trace import ALL_FIELDS

N = 6
# sigma = 100: a reduction needs ||grad phi_eps|| < 90 eps; 3 reductions from eps0 = 1e-3
LOOSE = {"sigma": 100.0, "eps_tol": 0.075, "max_iter": 400}


def _mixed_batch(dtype=torch.float64):
    """Three different TV-denoising problems with different weights (their own iteration counts)."""
    g = torch.Generator().manual_seed(3)
    y = torch.rand(3, 1, N, N, generator=g, dtype=torch.float64).to(dtype)
    y[1] *= 0.3
    w = torch.tensor([0.05, 0.02, 0.1], dtype=dtype)
    p = lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), w)
    return p, y.clone()


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_batch_equals_singles(cls):
    p, x0 = _mixed_batch()
    solver = fast_solver(cls, **LOOSE)
    res = solver.run(p, x0)
    assert len(set(res.iterations.tolist())) > 1, "the samples should stop at different iterations"
    batch = res.trace.as_dict()
    for b in range(3):
        idx = torch.tensor([b])
        single = solver.run(p.select(idx), x0[idx])
        assert single.reason == [res.reason[b]]
        assert int(single.iterations[0]) == int(res.iterations[b])
        torch.testing.assert_close(single.x[0], res.x[b], rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(single.eps[0], res.eps[b], rtol=1e-12, atol=0)
        assert int(single.forward[0]) == int(res.forward[b])
        assert int(single.backward[0]) == int(res.backward[b])
        s = single.trace.sample(0)
        mine = res.trace.sample(b)
        for key in ("phi_eps", "eps", "step", "linesearch", "branch", "grad_norm"):
            torch.testing.assert_close(s[key], mine[key], rtol=1e-8, atol=1e-12, msg=key)
        # a frozen sample is not iterated: its trace entries stop at its own count
        assert int(batch["active"][:, b].sum()) == int(res.iterations[b])


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_max_iter_is_respected(cls):
    p, x0 = _mixed_batch()
    res = fast_solver(cls, eps_tol=1e-6, max_iter=7).run(p, x0)
    assert res.iterations.tolist() == [7, 7, 7]
    assert res.reason == ["max_iter"] * 3
    assert len(res.trace) == 7
    assert not bool(res.converged.any())


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_float32_and_float64(cls):
    """Both precisions converge; their objectives differ by no more than the optimality the
    certificate guarantees.  TV denoising is 1-strongly convex, so at termination
    ``phi_eps(x) - min phi_eps <= ||grad phi_eps||^2 / 2 < (sigma gamma eps)^2 / 2`` and
    ``|phi - phi_eps| <= kappa m eps / 2`` (LDA eq. 6); the trajectories themselves may
    differ (line-search decisions at rounding level)."""
    out = {}
    for dtype in (torch.float32, torch.float64):
        p, x0 = tv_denoise_problem(batch=2, n=N, dtype=dtype)
        solver = fast_solver(cls, **LOOSE)
        res = solver.run(p, x0)
        assert res.x.dtype == dtype and res.phi.dtype == dtype and res.eps.dtype == dtype
        assert res.reason == ["converged", "converged"]
        assert torch.isfinite(res.x).all() and torch.isfinite(res.phi).all()
        out[dtype] = res
    eps = torch.maximum(out[torch.float32].trace.as_dict()["eps"].nan_to_num(0).amax(0),
                        out[torch.float64].trace.as_dict()["eps"].nan_to_num(0).amax(0))
    eps_last = torch.stack([torch.tensor([float(r.trace.sample(b)["eps"][-1]) for b in range(2)])
                            for r in out.values()]).amax(0)
    m, kappa = N * N, 0.05
    bound = 2 * ((solver.sigma * solver.gamma * eps_last) ** 2 / 2 + kappa * m * eps_last / 2)
    diff = (out[torch.float32].phi.double() - out[torch.float64].phi).abs()
    assert (diff <= bound + 1e-5 * out[torch.float64].phi.abs()).all(), (diff, bound)
    assert (eps > 0).all()


def _decrease_rule(solver, branch, eps):
    """The constant c of ``phi_eps(x_{k+1}) - phi_eps(x_k) <= -c ||x_{k+1} - x_k||^2``."""
    if isinstance(solver, lo.ELDA):
        return solver.eta2 / 2 if branch == 0 else solver.eta3 / eps  # (4.9b) / (4.11)
    if isinstance(solver, lo.MetaLDA):
        return 1.0 / solver.a  # (A6) / (A7)
    if branch == 1:
        return solver.c  # LDA Sec. 4.3.3 backtracking rule on v
    return None  # LDA u: phi_eps(u) <= phi_eps(v) (15), checked below


@pytest.mark.parametrize("cls", PAPER_ALGORITHMS + [lo.GD], ids=lambda c: c.name)
def test_per_iteration_descent_inequality(cls):
    p, x0 = tv_denoise_problem(batch=2, n=N)
    solver = fast_solver(cls, eps_tol=1e-4, max_iter=300)
    res = solver.run(p, x0)
    checked = 0
    for b in range(2):
        s = res.trace.sample(b)
        rows = len(s["eps"])
        assert rows == int(res.iterations[b])
        for k in range(rows):
            dphi = float(s["phi_eps"][k] - s["phi_eps_prev"][k])
            d2 = float(s["dist"][k]) ** 2
            scale = 1e-12 * max(1.0, abs(float(s["phi_eps_prev"][k])))
            assert dphi <= scale, (k, dphi)  # descent at fixed eps
            c = _decrease_rule(solver, int(s["branch"][k]), float(s["eps"][k]))
            if c is None:  # LDA took u, so phi(u) <= phi(v) <= phi(x) - c (step*||grad||)^2
                c, d2 = solver.c, (float(s["step"][k]) * float(s["grad_norm_prev"][k])) ** 2
            assert dphi <= -c * d2 + scale, (k, dphi, -c * d2)
            checked += 1
            if k + 1 < rows:
                reduced = float(s["eps_next"][k]) < float(s["eps"][k])
                assert float(s["eps"][k + 1]) == float(s["eps_next"][k])
                if not reduced:  # the cached phi_eps(x_k) is reused, not recomputed differently
                    assert float(s["phi_eps_prev"][k + 1]) == float(s["phi_eps"][k])
                # the reduction rule of Algorithm 1
                assert reduced == (float(s["grad_norm"][k]) < solver.sigma * solver.gamma * float(s["eps"][k]))
    assert checked == int(res.iterations.sum())


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_converged_run_carries_the_certificate(cls):
    p, x0 = tv_denoise_problem(batch=2, n=N)
    solver = fast_solver(cls, **LOOSE)
    res = solver.run(p, x0)
    assert res.reason == ["converged", "converged"]
    for b in range(2):
        s = res.trace.sample(b)
        assert float(s["grad_norm"][-1]) < solver.sigma * solver.gamma * float(s["eps"][-1])
        assert solver.sigma * float(res.eps[b]) < solver.eps_tol <= solver.sigma * float(s["eps"][-1])
        assert float(res.eps[b]) == pytest.approx(solver.gamma * float(s["eps"][-1]), rel=1e-15)
        # the number of reductions is exactly the one the schedule needs
        n_red = int((s["eps_next"] < s["eps"]).sum())
        assert n_red == math.ceil(math.log(solver.eps_tol / (solver.sigma * solver.eps0)) / math.log(solver.gamma) - 1e-12)


def test_trace_csv_and_json_round_trip(tmp_path):
    p, x0 = _mixed_batch()
    res = fast_solver(lo.ELDA, **LOOSE).run(p, x0)
    res.trace.to_csv(tmp_path / "trace.csv")
    header = (tmp_path / "trace.csv").read_text().splitlines()[0].split(",")
    assert header == ["iteration", "sample", *ALL_FIELDS]
    n_rows = len((tmp_path / "trace.csv").read_text().splitlines()) - 1
    assert n_rows == int(res.iterations.sum())  # one row per (iteration, sample) that ran
    back = lo.Trace.from_csv(tmp_path / "trace.csv").as_dict()
    orig = res.trace.as_dict()
    assert torch.equal(back["active"], orig["active"])
    for key in ALL_FIELDS:
        if key == "seconds":
            continue
        torch.testing.assert_close(back[key], orig[key], rtol=0, atol=0, equal_nan=True, msg=key)
    js = res.trace.to_json()
    assert set(js) >= set(ALL_FIELDS)
    K = len(res.trace)
    assert len(js["phi_eps"]) == K and len(js["phi_eps"][0]) == 3
    assert js["phi_eps"][K - 1][int(res.iterations.argmin())] is None  # frozen, not invented


def test_trace_as_dict_shapes_and_frozen_samples():
    p, x0 = _mixed_batch()
    res = fast_solver(lo.LDA, **LOOSE).run(p, x0)
    d = res.trace.as_dict()
    K = len(res.trace)
    assert K == int(res.iterations.max())
    for key in ALL_FIELDS:
        assert d[key].shape == (K, 3) and d[key].dtype == torch.float64
    inactive = ~d["active"]
    assert inactive.any()
    assert torch.isnan(d["phi_eps"][inactive]).all()


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_config_round_trip(cls):
    s = fast_solver(cls, **LOOSE)
    assert type(s).from_config(s.config()) == s


@pytest.mark.parametrize(
    "name, value",
    [("gamma", 0.0), ("gamma", 1.0), ("gamma", 1.5), ("eps0", 0.0), ("eps0", -1e-3),
     ("sigma", 0.0), ("sigma", -1.0), ("eps_tol", 0.0), ("max_iter", 0), ("gamma", float("nan"))],
)
@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_bad_hyperparameters_are_refused(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls(**{name: value})


@pytest.mark.parametrize("cls", [lo.MetaLDA, lo.ELDA], ids=lambda c: c.name)
@pytest.mark.parametrize("rho", [0.0, 1.0, 1.2, -0.5])
def test_rho_outside_unit_interval_is_refused(cls, rho):
    with pytest.raises(ValueError, match="rho"):
        cls(rho=rho)


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(TypeError, match="rhoo"):
        lo.ELDA(rhoo=0.5)


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_bad_inputs_are_refused_before_any_work(cls):
    p, x0 = tv_denoise_problem(batch=2, n=N)
    solver = fast_solver(cls, **LOOSE)
    bad = x0.clone()
    bad[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="x0"):
        solver.run(p, bad)
    bad[1, 0, 2, 2] = float("inf")
    with pytest.raises(ValueError, match="x0"):
        solver.run(p, bad)
    with pytest.raises(ValueError, match="x0"):
        solver.run(p, x0[:, :, :4, :4])  # shape does not match the operator / data
    with pytest.raises(ValueError, match="x0"):
        solver.run(p, x0[:1])  # batch size does not match y
    with pytest.raises((ValueError, TypeError), match="dtype"):
        solver.run(p, x0.float())
    y = x0.clone()
    y[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="y"):
        lo.LeastSquares(lo.operators.Identity(), y)


class _NaNGradient(torch.autograd.Function):
    """Identity whose vector-Jacobian product is NaN for the rows of large samples once
    ``armed`` is set: phi_eps stays finite (line searches accept), grad phi_eps does not."""

    armed = False

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if _NaNGradient.armed:
            big = x.flatten(1).abs().amax(1) > 5.0
            grad = torch.where(big[:, None, None, None], torch.full_like(grad, float("nan")), grad)
        return grad


class _BreaksAfter(nn.Module):
    """TV features whose gradient turns NaN for the large sample after ``n`` calls."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.tv = lo.features.FiniteDifference()
        self.calls = 0
        self.n = n

    def forward(self, x):
        self.calls += 1
        _NaNGradient.armed = self.calls > self.n
        return self.tv(_NaNGradient.apply(x))


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.name)
def test_nonfinite_value_stops_that_sample_with_a_reason(cls):
    y = tv_denoise_problem(batch=2, n=N)[1]
    y[1] *= 10.0  # the sample whose gradient breaks
    p = lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), _BreaksAfter(6), 0.05)
    try:
        res = fast_solver(cls, **LOOSE).run(p, y.clone())
    finally:
        _NaNGradient.armed = False
    assert res.reason[1] == "nonfinite"
    assert res.reason[0] == "converged"  # the other sample is unaffected
    assert torch.isfinite(res.x).all() and torch.isfinite(res.phi).all() and torch.isfinite(res.eps).all()
    assert torch.isfinite(res.grad_norm).all()
    # the stopped sample returns its last finite iterate, recorded with its reason
    d = res.trace.sample(1)
    assert int(res.iterations[1]) == len(d["eps"])
    assert torch.isnan(d["grad_norm"][-1])


@pytest.mark.parametrize("cls", [lo.LDA, lo.MetaLDA, lo.ELDA, lo.GD], ids=lambda c: c.name)
def test_linesearch_cap_is_recorded(cls):
    p, x0 = tv_denoise_problem(batch=1, n=N)
    big = {"alpha": 1e6} if cls in (lo.LDA, lo.GD) else ({"alpha": 1e6, "tau": 1e6} if cls is lo.MetaLDA
                                                          else {"alpha_bar": 1e6, "alpha": 1e6, "gamma_u": 1e6})
    res = fast_solver(cls, max_linesearch=2, **big, **LOOSE).run(p, x0)
    assert res.reason == ["linesearch_cap"]
    d = res.trace.as_dict()
    assert int(d["capped"][-1, 0]) == 1
    assert int(d["linesearch"][-1, 0]) == 2
    assert torch.isfinite(res.x).all()
    # the capped iteration does not move the iterate (no unverified point is returned)
    assert float(d["phi_eps"][-1, 0]) <= float(d["phi_eps_prev"][-1, 0])


def test_callback_is_called_every_iteration_and_excluded_from_timing(monkeypatch):
    """The timings come from a fake clock (so the test does not depend on the machine's
    speed or load, issue 15): every reading advances it by 1 tick, and the callback advances
    it by SLEEP ticks.  Excluded from the timing, the 20 callbacks leave the run's ``seconds``
    below one SLEEP; counted, they would add 20 * SLEEP."""
    from lda_opt.algorithms import base

    SLEEP = 1000.0
    clock = [0.0]

    def perf_counter():
        clock[0] += 1.0
        return clock[0]

    monkeypatch.setattr(base.time, "perf_counter", perf_counter)
    p, x0 = tv_denoise_problem(batch=2, n=N)
    seen = []

    def cb(k, state, record):
        seen.append((k, tuple(record["eps"].shape)))
        clock[0] += SLEEP

    res = fast_solver(lo.LDA, max_iter=20, eps_tol=1e-6).run(p, x0, callback=cb)
    assert [k for k, _ in seen] == list(range(20))
    assert all(shape == (2,) for _, shape in seen)
    per_iteration = res.trace.as_dict()["seconds"][:, 0]
    assert per_iteration.tolist() == [1.0] * 20  # one tick between the two readings, no callback
    # 20 * SLEEP ticks were spent in the callback; none of them is counted
    assert float(per_iteration.sum()) <= res.seconds < SLEEP


def test_problem_must_be_a_problem():
    with pytest.raises(TypeError, match="problem"):
        lo.LDA().run("not a problem", torch.zeros(1, 1, 4, 4))


def test_complex_mri_batch_equals_singles():
    g = torch.Generator().manual_seed(5)
    mask = (torch.rand(N, N, generator=g) < 0.6).double()
    A = lo.operators.MRI(mask)
    x = torch.randn(2, 1, N, N, generator=g, dtype=torch.complex128)
    y = A(x)
    p = lo.Problem(lo.LeastSquares(A, y), lo.features.FiniteDifference(), torch.tensor([0.05, 0.01],
                                                                                         dtype=torch.float64))
    solver = fast_solver(lo.ELDA, **LOOSE)
    res = solver.run(p, A.H(y))
    assert res.x.dtype == torch.complex128
    for b in range(2):
        idx = torch.tensor([b])
        single = solver.run(p.select(idx), A.H(y)[idx])
        torch.testing.assert_close(single.x[0], res.x[b], rtol=1e-8, atol=1e-10)
        assert int(single.iterations[0]) == int(res.iterations[b])


def test_trace_from_csv_names_the_line_of_a_damaged_row(tmp_path):
    """A damaged trace.csv is a ValueError naming the file and the line (issue 15): a short or
    long row, an unknown branch label, a non-number, a negative or out-of-batch sample, a
    repeated sample; nothing is silently wrapped or overwritten."""
    p, x0 = _mixed_batch()
    res = fast_solver(lo.ELDA, **LOOSE).run(p, x0)
    path = tmp_path / "trace.csv"
    res.trace.to_csv(path)
    lines = path.read_text().splitlines()
    header, first = lines[0], lines[1].split(",")
    col = {name: i for i, name in enumerate(header.split(","))}

    def damaged(edit):
        row = list(first)
        edit(row)
        bad = tmp_path / "bad.csv"
        bad.write_text("\n".join([header, ",".join(row), *lines[2:]]) + "\n")
        return bad

    cases = [
        (lambda r: r.pop(), r"line 2: the row has fewer columns"),
        (lambda r: r.append("1"), r"line 2: the row has more columns"),
        (lambda r: r.__setitem__(col["branch"], "w"), r"line 2: not a Trace row \(KeyError"),
        (lambda r: r.__setitem__(col["phi_eps"], "abc"), r"line 2: not a Trace row \(ValueError"),
        (lambda r: r.__setitem__(col["sample"], "-1"), r"line 2: iteration and sample must be >= 0"),
    ]
    for edit, message in cases:
        with pytest.raises(ValueError, match=message):
            lo.Trace.from_csv(damaged(edit))
    with pytest.raises(ValueError, match="sample 7 is outside the batch of 3"):
        lo.Trace.from_csv(damaged(lambda r: r.__setitem__(col["sample"], "7")), batch_size=3)
    repeated = tmp_path / "rep.csv"
    repeated.write_text("\n".join([header, lines[1], lines[1], *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="iteration 0 lists a sample more than once"):
        lo.Trace.from_csv(repeated)
