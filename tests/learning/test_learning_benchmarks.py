"""Smoke runs of the benchmark scripts (slow: they train tiny networks and solve TV)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    # as when run as a script: the script's folder first on sys.path (for benchmarks/_common.py)
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_block_cs_quick_writes_the_table(tmp_path):
    mod = _load("block_cs")
    assert mod.main(["--quick", "--ratios", "0.25", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
    doc = json.loads((tmp_path / "block_cs_quick.json").read_text())
    methods = doc["ratios"]["0.25"]["methods"]
    assert {"LDA-Net", "LDA-Net (short budget)", "GD-Net (short budget)", "AGD-Net (short budget)",
            "linear start x0 = Qb", "TV (kappa tuned on training images)",
            "TV (best kappa of the grid on test)",
            mod.TV_EXACT} <= set(methods)
    exact = doc["ratios"]["0.25"]["tv_grid"]["test_exact"]
    # the exact-TV grid is the test grid, extended past an end where the best weight sat
    # (--quick: at most one halving below / one doubling above, tv_exact_grid's extend = 1)
    ks_exact, ks_test = [r["kappa"] for r in exact], sorted(r["kappa"] for r in doc["ratios"]["0.25"]["tv_grid"]["test"])
    assert ks_exact == sorted(ks_exact) and set(ks_test) <= set(ks_exact)
    added = sorted(set(ks_exact) - set(ks_test))
    assert all(k in (ks_test[0] / 2, ks_test[-1] * 2) for k in added)
    best_tv = max(r["psnr"] for k, r in methods.items() if k.startswith("TV"))
    assert doc["ratios"]["0.25"]["margin_db_vs_best_tv"] == pytest.approx(methods["LDA-Net"]["psnr"] - best_tv)
    assert len(doc["ratios"]["0.25"]["phase_curves"]["LDA-Net"]) == 4  # x0 and K = 3 phases
    budgets = [methods[f"{n} (short budget)"]["budget"] for n in ("LDA-Net", "GD-Net", "AGD-Net")]
    assert budgets[0]["steps"] == budgets[1]["steps"] == budgets[2]["steps"]  # the same training budget
    assert [methods[f"{n} (short budget)"]["algorithm"] for n in ("LDA-Net", "GD-Net", "AGD-Net")] == [
        "lda", "gd", "agd"]
    assert "| LDA-Net |" in (tmp_path / "block_cs_quick.md").read_text()
    assert (tmp_path / "block_cs_quick_phases.png").stat().st_size > 0


@pytest.mark.slow
def test_mri_quick_writes_the_table(tmp_path):
    mod = _load("mri")
    assert mod.main(["--quick", "--ratios", "0.2", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
    doc = json.loads((tmp_path / "mri_quick.json").read_text())
    methods = doc["ratios"]["0.2"]["methods"]
    assert {"zero-filling", "LDA-Net", "TV (kappa tuned on training data)"} <= set(methods)
    assert (tmp_path / "mri_quick_recon.png").stat().st_size > 0


@pytest.mark.slow
def test_mri_cross_modality_quick_compares_the_two_training_sets(tmp_path):
    mod = _load("mri_cross_modality")
    assert mod.main(["--quick", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
    rows = json.loads((tmp_path / "mri_cross_modality_quick.json").read_text())
    assert list(rows) == list(mod.CONFIGS)
    a, b = (rows[k] for k in mod.CONFIGS)
    assert a["budget"]["steps"] == b["budget"]["steps"] and a["budget"]["train_samples"] == b["budget"]["train_samples"]
    assert "| 32 phantoms + 32 natural crops |" in (tmp_path / "mri_cross_modality_quick.md").read_text()


def test_grow_rules_copy_last_is_ldanet_grow_and_the_others_place_phases_as_documented():
    import torch

    from lda_opt.learning import LDANet

    mod = _load("grow_rules")
    net = LDANet(3, width=2, depth=1, alpha=0.5, tau=0.5)
    with torch.no_grad():
        net.raw_alpha.copy_(torch.tensor([0.1, 0.2, 0.3]))
    raw = net.raw_alpha.detach().clone()
    net.grow(5)
    assert torch.equal(mod.grown(raw, "copy last", 2, 0.0), net.raw_alpha.detach())
    init = math.log(0.5)
    assert mod.grown(raw, "initial", 2, init).tolist() == pytest.approx([0.1, 0.2, 0.3, init, init])
    assert mod.grown(raw, "copy K-1", 2, init).tolist() == pytest.approx([0.1, 0.2, 0.3, 0.2, 0.2])
    assert mod.grown(raw, "insert K-1", 2, init).tolist() == pytest.approx([0.1, 0.2, 0.2, 0.2, 0.3])
    with pytest.raises(ValueError, match="rule"):
        mod.grown(raw, "bogus", 2, init)


def test_grow_rules_reports_every_rule_for_a_trained_checkpoint(tmp_path):
    from lda_opt.learning import TrainConfig, train

    cfg = TrainConfig.from_dict({
        "name": "tiny_grow", "seed": 1,
        "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16], "mask": "radial", "mask_seed": 1},
        "data": {"train": 4, "val": 2, "seed": 5},
        "net": {"width": 2, "depth": 1, "alpha": 0.5, "tau": 0.5, "weight": 0.1},
        "train": {"phases": 2, "first_phases": 2, "epochs_first": 1, "batch_size": 4, "lr": 0.01},
    })
    train(cfg, tmp_path / "run", quiet=True)
    mod = _load("grow_rules")
    ck = tmp_path / "run" / "model.safetensors"
    assert mod.main(["--checkpoints", str(ck), "--extra", "1", "3", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "grow_rules.json").read_text())
    (res,) = doc["results"]
    assert res["phases"] == 2
    assert [(g["rule"], g["extra"], g["phases"]) for g in res["grown"]] == [
        (r, e, 2 + e) for e in (1, 3) for r in mod.RULES]
    assert all(math.isfinite(g["val_psnr"]) and math.isfinite(g["test_psnr"]) for g in res["grown"])
    assert "| +3 |" in (tmp_path / "grow_rules.md").read_text()


def test_block_cs_runs_scores_the_shipped_checkpoint_like_the_benchmark(tmp_path):
    """The whole-image val / test table of ``benchmarks/block_cs_runs.py`` is the mean of the
    per-image PSNRs of :func:`reconstruct_images` on the very images the benchmark uses."""
    import torch

    from lda_opt.experiments.learning import mean_metrics, reconstruct_images
    from lda_opt.learning.datasets import load_images, test_images
    from lda_opt.learning.shipped import load_lda_net, shipped_checkpoint

    mod = _load("block_cs_runs")
    path = shipped_checkpoint("block-cs", 0.25)
    assert mod.main([str(path), "--size", "99", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "block_cs_runs.json").read_text())
    (row,) = doc["runs"]
    assert doc["selected_by_val"] == row["name"] == "block_cs_25"
    assert row["val"]["images"] == ["rocket", "page"] and len(row["test"]["psnr_per_image"]) == 5
    for split in ("val", "test"):
        assert row[split]["psnr"] == pytest.approx(sum(row[split]["psnr_per_image"]) / len(row[split]["psnr_per_image"]))
    net = load_lda_net(path)
    from lda_opt.tasks import task_from_metadata

    task = task_from_metadata(net.checkpoint_metadata)
    # The same computation as the benchmark's (both val images in one batch, the same blocks,
    # the same path), so bit-equal on any CPU.  Reconstructing "page" alone would change the
    # batch shape, and with it the order of the float32 reductions in the convolutions: on
    # another CPU that differs in the last bits (issue 15).
    m = task.measure(load_images(["rocket", "page"], size=99).to(torch.float32))
    per_image = mean_metrics(reconstruct_images(net, m), m.to_image(m.truth))["per_image"]["psnr"]
    assert row["val"]["psnr_per_image"] == per_image
    # and alone, "page" agrees up to float32 round-off of the network (a PSNR near 25 dB moves
    # by ~1e-5 dB for a relative error of 1e-6 in the image; 1e-3 dB leaves a factor 100)
    m1 = task.measure(load_images(["page"], size=99).to(torch.float32))
    page = mean_metrics(reconstruct_images(net, m1), m1.to_image(m1.truth))["psnr"]
    assert per_image[1] == pytest.approx(page, abs=1e-3)
    assert test_images(task, size=99)[1] == row["test"]["images"]
    assert "| block_cs_25 | 7 |" in (tmp_path / "block_cs_runs.md").read_text()


def test_block_cs_runs_refuses_an_mri_checkpoint(tmp_path):
    from lda_opt.learning.shipped import shipped_checkpoint

    mod = _load("block_cs_runs")
    with pytest.raises(ValueError, match="not a block-CS checkpoint"):
        mod.score(shipped_checkpoint("mri", 0.2, "radial"))
    with pytest.raises(SystemExit):  # one label per checkpoint
        mod.main([str(shipped_checkpoint("block-cs", 0.25)), "--labels", "a", "b", "--out", str(tmp_path)])
