"""The TV reference rows of the benchmark scripts: one weight solved by LDA (``tv_record``)
and the grid of exact minimizers (``tv_exact_grid``)."""

from __future__ import annotations

import math

import pytest
import torch

from lda_opt.algorithms.tv_exact import PDHGSettings, tv_exact
from lda_opt.experiments.learning import mean_metrics, tv_exact_grid, tv_record
from lda_opt.learning.reference import TVSettings, tv_solve
from lda_opt.tasks import MRITask


def _measurement():
    task = MRITask(0.3, mask="radial", mask_seed=1, shape=(16, 16))
    truth = torch.zeros(2, 1, 16, 16, dtype=torch.complex128)
    truth[0, 0, 3:9, 4:12] = 1.0
    truth[1, 0, 6:14, 2:7] = 0.5 + 0.5j
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


def test_tv_exact_grid_picks_the_best_exact_minimizer():
    m = _measurement()
    settings = PDHGSettings(max_iter=20_000, tol=1e-6)
    seen = []
    grid, best, x = tv_exact_grid(m, [0.001, 0.003, 0.01], settings, progress=lambda k, r: seen.append(k))
    assert seen == [0.001, 0.003, 0.01]
    psnrs = [r["psnr"] for r in grid]
    assert len(psnrs) == 3 and all("per_image" not in r for r in grid)
    assert best["psnr"] == max(psnrs)
    k = [0.001, 0.003, 0.01][psnrs.index(max(psnrs))]
    assert best["kappa"] == k and best["converged"] == 2
    assert torch.equal(x, m.to_image(tv_exact(m.operator, m.y, k, m.x0, settings).x))
    with pytest.raises(ValueError, match="kappas"):
        tv_exact_grid(m, [], settings)


def test_results_table_lists_every_parameter_count_of_a_method():
    from lda_opt.experiments.learning import results_table

    rec = {"psnr": 30.0, "ssim": 0.9, "relerr": 0.1}
    results = {"0.1": {"methods": {"net": rec | {"parameters": 7067}, "tv": rec}},
               "0.25": {"methods": {"net": rec | {"parameters": 7071}}}}
    table = results_table(results, ("psnr", "ssim", "relerr"), "blocks", "one product")
    assert "| net | 30.00 / 0.9000 / 0.1000 | 30.00 / 0.9000 / 0.1000 | 7,067 / 7,071 |" in table
    assert "| tv | 30.00 / 0.9000 / 0.1000 | - | NA |" in table


TINY_RUN = {
    "name": "tiny_reuse",
    "seed": 2,
    "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16], "mask": "radial", "mask_seed": 1},
    "data": {"train": 4, "val": 2, "seed": 5},
    "net": {"width": 2, "depth": 1, "alpha": 0.5, "tau": 0.5, "weight": 0.1},
    "train": {"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 1, "epochs_stage": 1,
              "batch_size": 4, "lr": 0.01},
}


def test_train_or_reuse_reuses_a_finished_run_and_resumes_onto_appended_stages(tmp_path):
    import json

    from lda_opt.experiments.learning import train_or_reuse
    from lda_opt.learning import TrainConfig

    cfg = TrainConfig.from_dict(TINY_RUN)
    _, log = train_or_reuse(cfg, tmp_path)
    assert [r["phases"] for r in log["epochs"]] == [1, 3]
    # a log written before a field existed (no "stage_lr") is the same config: reused, not retrained
    path = tmp_path / "log.json"
    old = json.loads(path.read_text())
    del old["config"]["train"]["stage_lr"]
    path.write_text(json.dumps(old))
    stamp = (tmp_path / "state.safetensors").stat().st_mtime_ns
    _, again = train_or_reuse(cfg, tmp_path)
    assert (tmp_path / "state.safetensors").stat().st_mtime_ns == stamp and len(again["epochs"]) == 2
    # appended stages: resumed (the first two epochs kept), not retrained
    longer = cfg.with_overrides(train={"phases": 5, "stage_lr": [0.01, 0.01, 0.002]})
    _, ext = train_or_reuse(longer, tmp_path)
    assert [r["phases"] for r in ext["epochs"]] == [1, 3, 5]
    assert ext["epochs"][:2] == log["epochs"][:2] and ext["complete"] is True


def _fake_exact(k_star: float):
    """A stand-in for ``tv_exact`` whose error grows with |log2(kappa / k_star)|."""
    from types import SimpleNamespace

    def fake(op, y, kappa, x0, settings):
        m = _measurement()
        scale = 1.0 + 0.1 * abs(math.log2(kappa / k_star))
        n = m.truth.shape[0]
        return SimpleNamespace(x=m.truth * scale, iterations=torch.ones(n, dtype=torch.long),
                               converged=torch.ones(n, dtype=torch.bool), objective=torch.zeros(n))
    return fake


@pytest.mark.parametrize("grid, extend, want, bracketed", [
    ([8.0, 16.0], 5, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0], True),     # grows down, stops one past the optimum
    ([1 / 16, 1 / 8], 5, [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0], True),  # grows up
    ([8.0, 16.0], 2, [2.0, 4.0, 8.0, 16.0], False),               # out of extensions: not bracketed
    ([8.0, 16.0], 0, [8.0, 16.0], False),
    ([0.5, 1.0, 2.0], 3, [0.5, 1.0, 2.0], True),                  # already bracketed: nothing added
    ([4.0], 3, [4.0], False),                                     # one weight: nothing to compare
])
def test_tv_exact_grid_extends_past_a_best_weight_at_an_end(monkeypatch, grid, extend, want, bracketed):
    import lda_opt.experiments.learning as ex

    monkeypatch.setattr(ex, "tv_exact", _fake_exact(1.0))
    seen = []
    records, best, _ = ex.tv_exact_grid(_measurement(), grid, PDHGSettings(), progress=lambda k, r: seen.append(k),
                                        extend=extend)
    assert [r["kappa"] for r in records] == want
    assert sorted(seen) == want and seen[:len(grid)] == grid  # the given grid first, then the added weights
    assert best["bracketed"] is bracketed
    assert best["kappa"] == min(want, key=lambda k: abs(math.log2(k)))
    with pytest.raises(ValueError, match="extend"):
        ex.tv_exact_grid(_measurement(), grid, PDHGSettings(), extend=-1)


def test_train_or_reuse_takes_the_shipped_checkpoint_only_when_trained_with_the_config(tmp_path):
    import json

    from lda_opt.experiments.learning import train_or_reuse
    from lda_opt.learning import TrainConfig, load_config
    from lda_opt.learning.shipped import CHECKPOINT_DIR

    cfg = load_config(CHECKPOINT_DIR / "mri_radial_20.config.json")
    net, log = train_or_reuse(cfg, tmp_path / "shipped", shipped=True)
    meta = json.loads((CHECKPOINT_DIR / "mri_radial_20.json").read_text())["metadata"]
    assert log["checkpoint"] == str(CHECKPOINT_DIR / "mri_radial_20.safetensors")
    assert log["budget"] == {k: v for k, v in meta["training"].items() if k != "config"}
    assert net.phases == meta["phases"] and not (tmp_path / "shipped").exists()  # nothing trained
    # the same name, another config: trained, not taken from the package
    tiny = TrainConfig.from_dict({
        "name": "mri_radial_20", "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16]},
        "data": {"train": 4, "val": 2}, "net": {"width": 2, "depth": 1},
        "train": {"phases": 1, "first_phases": 1, "epochs_first": 1, "batch_size": 4}})
    net, log = train_or_reuse(tiny, tmp_path / "tiny", shipped=True)
    assert "checkpoint" not in log and (tmp_path / "tiny" / "log.json").is_file() and net.phases == 1
