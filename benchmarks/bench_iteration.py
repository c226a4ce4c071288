"""Micro-benchmarks (pytest-benchmark): one iteration of every algorithm.

Run by ``make bench`` (``pytest benchmarks -o python_files='bench_*.py' --benchmark-only``).
Each benchmark times :meth:`Solver.iterate` -- the algorithm's step plus the shared eps
update -- from the same state (``iterate`` does not modify its input), on

* ``cnn``: denoising with ``FeatureCNN(width=32, depth=4)`` (seeded), 32x32, batch 4,
  float32: the cost is dominated by the passes of ``q``;
* ``tv``: denoising with ``FiniteDifference`` (TV), 64x64, batch 4, float64: the cost is
  the solver's own bookkeeping (the feature map is almost free).

``extra_info`` records the passes of ``q`` per sample in the timed iteration, so that a
time can be read per pass.  The number of torch threads is ``LDA_OPT_BENCH_THREADS``
(default 1).
"""

from __future__ import annotations

import os

import pytest
import torch

import lda_opt as lo
from lda_opt.nets import FeatureCNN, xavier_init_

torch.set_num_threads(int(os.environ.get("LDA_OPT_BENCH_THREADS", "1")))

#: solvers with the same continuation; steps at their defaults except MetaLDA's (0.5)
SOLVERS = {
    "lda": lambda: lo.LDA(eps0=1e-2, sigma=1.0, eps_tol=1e-4),
    "meta-lda": lambda: lo.MetaLDA(eps0=1e-2, sigma=1.0, eps_tol=1e-4, alpha=0.5, tau=0.5),
    "elda": lambda: lo.ELDA(eps0=1e-2, sigma=1.0, eps_tol=1e-4),
    "gd": lambda: lo.GD(eps0=1e-2, sigma=1.0, eps_tol=1e-4),
    "agd": lambda: lo.AGD(eps0=1e-2, sigma=1.0, eps_tol=1e-4),
}


def _problem(kind: str) -> tuple[lo.Problem, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if kind == "cnn":
        q = FeatureCNN(in_channels=1, width=32, depth=4)
        xavier_init_(q, generator=torch.Generator().manual_seed(0))
        y = torch.rand(4, 1, 32, 32, generator=gen)
        return lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), q, 0.05), y.clone()
    y = torch.rand(4, 1, 64, 64, generator=gen, dtype=torch.float64)
    return lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), lo.features.FiniteDifference(), 0.05), y.clone()


@pytest.mark.parametrize("kind", ["cnn", "tv"])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_one_iteration(benchmark, name, kind):
    problem, x0 = _problem(kind)
    solver = SOLVERS[name]()
    state = solver.init_state(problem, x0)
    # a few iterations first, so that the timed one is a typical (not the first) iteration
    for _ in range(3):
        state, _ = solver.iterate(problem, state)
    new, rec = benchmark(solver.iterate, problem, state)
    benchmark.extra_info["forward_per_sample"] = rec["forward"].tolist()
    benchmark.extra_info["backward_per_sample"] = rec["backward"].tolist()
    assert torch.isfinite(new.point.phi_eps).all()
    # the budget (DESIGN.md): forward <= 2 + evaluations, backward <= 2 + 1 (eps reduced)
    assert bool((rec["forward"] <= 2 + rec["linesearch"]).all())
    assert bool((rec["backward"] <= 2 + (rec["eps_next"] < rec["eps"]).long()).all())
