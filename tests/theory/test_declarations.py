"""Each solver declares its theory beside its step (``theory()``, lda_opt/algorithms/theory.py);
``lda_opt.check`` and ``lda_opt.experiments.complexity.bound_curves`` are generic engines over the
declarations (theory/README.md).  Tests that can fail: the checker never looks at an
algorithm's name, a new algorithm is checked from its declaration alone, and an inequality the
step tests is the same function the checker evaluates."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import lda_opt as lo
from lda_opt.algorithms import elda as elda_module
from lda_opt.algorithms.lda import backtracking_rule
from lda_opt.algorithms.meta_lda import LemmaA3
from lda_opt.algorithms.theory import Inequality, Labels, Theory, phi_eps_scale
from lda_opt.experiments.complexity import bound_curves
from lda_opt.trace import ALL_FIELDS, Trace

DT = torch.float64
KAPPA = 0.05
STEPS = {
    lo.LDA: {"alpha": 0.25},
    lo.GD: {"alpha": 0.25},
    lo.AGD: {"alpha": 0.25},
    lo.MetaLDA: {"alpha": 0.1, "tau": 0.1},
    lo.ELDA: {"alpha": 0.1, "gamma_u": 0.1, "alpha_bar": 0.1},
}


def _problem(seed=0):
    y = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=DT)
    p = lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), KAPPA)
    return p, y.clone()


def _solver(cls, **kw):
    base = dict(sigma=10.0, eps0=1e-2, eps_tol=5e-2, max_iter=300, **STEPS.get(cls, STEPS[lo.GD]))
    base.update(kw)
    return cls(**base)


def _raise_phi_eps(res, k: int):
    """The Result with phi_eps raised above phi_eps_prev at row k (sample 0)."""
    d = res.trace.as_dict()
    d["phi_eps"][k, 0] = d["phi_eps_prev"][k, 0] + 1e-3
    d["phi_eps_prev"][k + 1, 0] = d["phi_eps"][k, 0]
    act = d.pop("active")
    out = Trace(res.trace.batch_size)
    for j in range(act.shape[0]):
        idx = act[j].nonzero().squeeze(1)
        out.append(idx, {f: d[f][j, idx] for f in ALL_FIELDS})
    return dataclasses.replace(res, trace=out)


@pytest.mark.parametrize("cls", [lo.LDA, lo.MetaLDA, lo.ELDA, lo.GD, lo.AGD], ids=lambda c: c.name)
def test_checker_knows_no_algorithm_by_name(cls):
    """A subclass with another name is checked exactly as the solver it inherits its theory
    from: same counts, skips, violations (planted here) and rounding rows."""
    p, x0 = _problem()
    s = _solver(cls)
    renamed = type("Renamed", (cls,), {"name": "renamed"})(
        **{f.name: getattr(s, f.name) for f in dataclasses.fields(s)})
    res = s.run(p, x0)
    broken = _raise_phi_eps(res, 4)
    for r in (res, broken):
        a, b = lo.check(r, p, s).to_json(), lo.check(r, p, renamed).to_json()
        assert (a.pop("solver"), b.pop("solver")) == (cls.name, "renamed")
        assert a == b
    assert not lo.check(broken, p, renamed).ok


class Armijo(lo.GD):
    """A 'new algorithm' for the test: GD's step, its own paper and equation labels."""

    name = "armijo"

    def theory(self) -> Theory:
        a3 = LemmaA3(float(self.alpha), 1.0 / float(self.c), float(self.shrink))
        return Theory(
            Labels("P (1)", "P (2)", "P (3)", "P (4)", "P (5)", "P (6)"),
            decrease=(Inequality("phi_eps(v) - phi_eps(x_k) <= -c||v - x_k||^2", "P (7)", (1,),
                                 lambda r: backtracking_rule(r.phi_eps, r.phi_eps_prev, r.d2, self.c),
                                 phi_eps_scale),),
            linesearch=a3.linesearch("P (8)", (1,), warm=self.warm_start),
            bounds=a3.bounds("P (9)"),
            curves=lambda ctx: a3.curves(ctx, "P (10)"),
        )


def test_new_algorithm_is_checked_from_its_declaration():
    """A solver outside the library is checked from its theory(): every check runs with its
    labels, a planted increase is reported with them, and its curves are evaluated."""
    p, x0 = _problem()
    s = _solver(Armijo)
    res = s.run(p, x0)
    assert res.reason == ["converged"]
    rep = lo.check(res, p, s)
    assert rep.ok, rep.summary()
    assert rep.solver == "armijo"
    for name in ("descent", "sufficient-decrease", "linesearch-bound", "segment-bound",
                 "total-bound", "certificate"):
        assert rep.counts[name] >= 1, name
    assert rep.counts == lo.check(res, p, _solver(lo.GD)).counts  # GD's theory, relabelled
    bad = lo.check(_raise_phi_eps(res, 4), p, s)
    assert {v.equation for v in bad.find("descent")} == {"P (1)"}
    assert {v.equation for v in bad.find("sufficient-decrease")} == {"P (7)"}
    c = lo.checks.estimate_constants(p)
    curves = bound_curves(s, c, float(p.phi(x0)[0]), 0.0, KAPPA)
    assert curves["equation"] == "P (10)" and "reference_total" not in curves
    assert curves["segment"](0) > 1 and curves["total"](s.eps_tol) >= curves["segment"](0)


def test_step_and_checker_share_the_acceptance_test(monkeypatch):
    """ELDA (4.11) is one function: made stricter (eta3 -> 1e4 eta3), the step's search
    changes, the checker holds the new run to the stricter rule (which it satisfies) and
    reports the (4.11) rows of the run made with the plain rule."""
    p, x0 = _problem()
    s = _solver(lo.ELDA)
    plain = s.run(p, x0)
    orig = elda_module.eq_4_11
    monkeypatch.setattr(elda_module, "eq_4_11",
                        lambda pv, px, d2, eps, eta3: orig(pv, px, d2, eps, 1e4 * eta3))
    strict = s.run(p, x0)
    assert not torch.equal(plain.trace.as_dict()["step"], strict.trace.as_dict()["step"])
    rep = lo.check(strict, p, s)
    assert not rep.find("sufficient-decrease") and rep.counts["sufficient-decrease"] > 0
    # the run made with the plain rule fails the stricter one, and the checker says so
    assert {v.equation for v in lo.check(plain, p, s).find("sufficient-decrease")} == {"ELDA (4.11)"}
    d = strict.trace.sample(0)
    rows = [k for k in range(len(d["eps"])) if int(d["branch"][k]) == 1]
    assert rows
    k = rows[0]
    lhs, rhs = orig(float(d["phi_eps"][k]), float(d["phi_eps_prev"][k]), float(d["dist"][k]) ** 2,
                    float(d["eps"][k]), 1e4 * s.eta3)
    assert lhs <= rhs + 1e-12 * abs(float(d["phi_eps"][k]))


def test_bound_curves_come_from_the_declaration():
    """GD's curves are LDA's (same theory); AGD declares none and bound_curves says so."""
    c = {"L_f": 1.0, "M": math.sqrt(8), "L_g": 0.0, "m": 36}
    lda = bound_curves(_solver(lo.LDA), c, 1.3, 0.0, KAPPA)
    gd = bound_curves(_solver(lo.GD), c, 1.3, 0.0, KAPPA)
    assert [lda["segment"](l) for l in range(5)] == [gd["segment"](l) for l in range(5)]
    assert lda["reference_total"](1e-3) == gd["reference_total"](1e-3)
    with pytest.raises(ValueError, match="agd.*declares no"):
        bound_curves(_solver(lo.AGD), c, 1.3, 0.0, KAPPA)
    with pytest.raises(ValueError, match="solver"):
        bound_curves(object(), c, 1.3, 0.0, KAPPA)
