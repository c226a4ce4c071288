"""The TV reference rows of the benchmark scripts: one weight (``tv_record``) and the fully
solved grid (``tv_full_grid``)."""

from __future__ import annotations

import pytest
import torch

from lda_opt.learning.experiments import mean_metrics, tv_full_grid, tv_record
from lda_opt.learning.reference import TVSettings, tv_solve
from lda_opt.learning.tasks import MRITask


def _measurement():
    task = MRITask(0.3, mask="radial", mask_seed=1, shape=(16, 16))
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 1, 16, 16, generator=gen, dtype=torch.float64).to(torch.complex128)
    return task.measure(truth)


def test_tv_record_reports_the_solve_it_ran():
    m = _measurement()
    settings = TVSettings(max_iter=15, eps_tol=1e-3)
    rec, x = tv_record(m, 0.01, settings)
    ref = tv_solve(m, 0.01, settings)
    assert torch.equal(x, m.to_image(ref.x))
    assert rec["psnr"] == pytest.approx(mean_metrics(ref.x, m.truth)["psnr"], abs=0)
    assert rec["kappa"] == 0.01 and rec["samples"] == 2
    assert rec["iterations_max"] == int(ref.iterations.max()) <= 15
    assert rec["settings"] == settings.__dict__


def test_tv_full_grid_picks_the_best_fully_solved_weight():
    m = _measurement()
    settings = TVSettings(max_iter=15, eps_tol=1e-3)
    seen = []
    grid, best, x = tv_full_grid(m, [0.001, 0.01, 0.1], settings, progress=lambda k, r: seen.append(k))
    assert seen == [0.001, 0.01, 0.1]
    psnrs = [r["psnr"] for r in grid["records"]]
    assert len(psnrs) == 3 and all("per_image" not in r for r in grid["records"])
    assert best["psnr"] == max(psnrs)
    assert best["kappa"] == [0.001, 0.01, 0.1][psnrs.index(max(psnrs))]
    assert torch.equal(x, tv_record(m, best["kappa"], settings)[1])
    with pytest.raises(ValueError, match="kappas"):
        tv_full_grid(m, [], settings)
