"""The evaluation budget (DESIGN.md; issue 6), counted where the passes happen.

The feature map is wrapped in :class:`lda_opt.testing.CountedFeatures`, an ``nn.Module``
that counts its forward calls and, through an identity ``autograd.Function`` on its output,
every backward pass that reaches it (the wrapper the benchmarks count passes with).  The
solver sees an ordinary ``nn.Module``.  For every algorithm, per iteration ``k`` (at
smoothing level ``eps_k``):

* forward passes  <= 2 + (number of ``phi_eps(v)`` evaluations)  (GD/AGD: <= the evaluations);
* backward passes <= 2 + (1 if ``eps`` was reduced);
* plus exactly 1 forward and 1 backward in ``init_state``;

and the Trace's ``forward`` / ``backward`` counters equal the wrapper's counts exactly,
iteration by iteration.  In a batch, the forward passes of the wrapper (in samples) equal
the Trace's sum exactly, and every sample's counts equal its counts when solved alone.
"""

from __future__ import annotations

import pytest
import torch
from _helpers import fast_solver
from torch import nn

import lda_opt as lo
from lda_opt.nets import FeatureCNN, xavier_init_
from lda_opt.testing import CountedFeatures

N = 8


def _cnn() -> nn.Module:
    q = FeatureCNN(in_channels=1, width=4, depth=2, delta=0.01)
    xavier_init_(q, generator=torch.Generator().manual_seed(3))
    return q.double()


def _problem(features: str, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.zeros(batch, 1, N, N, dtype=torch.float64)
    clean[:, :, 2:6, 3:7] = 1.0
    y = clean + 0.2 * torch.randn(batch, 1, N, N, generator=gen, dtype=torch.float64)
    q = CountedFeatures(lo.features.FiniteDifference() if features == "tv" else _cnn())
    p = lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), q, weight=0.05)
    return p, y.clone(), q


def _solver(cls, **kw):
    # sigma = 20 makes eps reductions frequent; a short run keeps the test fast
    return fast_solver(cls, sigma=20.0, eps0=2e-2, eps_tol=1e-4, max_iter=kw.pop("max_iter", 30), **kw)


#: (id, solver class, options): steps large enough that the backtracking runs; ELDA twice,
#: once taking u (its defaults) and once forced onto the v search by (4.9a) with eta1 = 1
CASES = [("lda", lo.LDA, {"alpha": 2.0}), ("meta-lda", lo.MetaLDA, {"alpha": 2.0}),
         ("elda-u", lo.ELDA, {}), ("elda-v", lo.ELDA, {"eta1": 1.0, "alpha_bar": 2.0}),
         ("gd", lo.GD, {"alpha": 2.0}), ("agd", lo.AGD, {"alpha": 2.0})]


@pytest.mark.parametrize("features", ["tv", "cnn"])
@pytest.mark.parametrize("name,cls,kw", CASES, ids=[c[0] for c in CASES])
def test_budget_per_iteration(name, cls, kw, features):
    p, x0, q = _problem(features, 1)
    seen = []

    def cb(k, state, rec):
        seen.append((q.forward_calls, q.backward_calls, int(rec["forward"][0]), int(rec["backward"][0]),
                     int(rec["linesearch"][0]), bool(rec["eps_next"][0] < rec["eps"][0])))

    res = _solver(cls, **kw).run(p, x0, callback=cb)
    assert len(seen) == int(res.iterations[0]) >= 10
    prev_f, prev_b = 1, 1  # init_state: exactly one forward and one backward
    base = 0 if cls in (lo.GD, lo.AGD) else 2  # GD/AGD evaluate no u candidate
    for f_tot, b_tot, f, b, ls, reduced in seen:
        assert f_tot - prev_f == f  # the Trace agrees with the wrapper, per iteration
        assert b_tot - prev_b == b
        assert f <= base + ls
        assert b <= (1 if cls in (lo.GD, lo.AGD) else 2) + reduced
        prev_f, prev_b = f_tot, b_tot
    assert (q.forward_calls, q.backward_calls) == (int(res.forward[0]), int(res.backward[0]))
    # the run exercised the eps reduction, and the backtracking (except ELDA taking u)
    assert any(s[5] for s in seen)
    if name == "elda-u":
        assert all(s[4] == 0 for s in seen)
    else:
        assert any(s[4] >= 2 for s in seen)


@pytest.mark.parametrize("name,cls,kw", CASES, ids=[c[0] for c in CASES])
def test_budget_batch_equals_singles(name, cls, kw):
    """In a batch of 3 different problems, each sample's passes are its passes when solved
    alone, and the forward passes the wrapper saw (in samples) are their sum."""
    B = 3
    p, x0, q = _problem("tv", B, seed=5)
    res = _solver(cls, max_iter=25, **kw).run(p, x0)
    assert q.forward_rows == int(res.forward.sum())
    # a batched backward carries every row of the graphs it runs through: never fewer
    assert q.backward_rows >= int(res.backward.sum())
    for i in range(B):
        pi = lo.Problem(lo.LeastSquares(lo.operators.Identity(), p.fidelity.y[i:i + 1]), q, weight=0.05)
        ri = _solver(cls, max_iter=25, **kw).run(pi, x0[i:i + 1])
        assert int(ri.iterations[0]) == int(res.iterations[i])
        assert int(ri.forward[0]) == int(res.forward[i])
        assert int(ri.backward[0]) == int(res.backward[i])
    # the samples differ, so the per-sample line searches did too (the sub-batch path ran)
    if name != "elda-u":
        ls = res.trace.as_dict()["linesearch"]
        assert bool(((ls - ls.nanmean(dim=1, keepdim=True)).abs() > 0).any())
