"""Smoke run of benchmarks/meta.py (slow: it trains two tiny meta-LDA networks)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_meta_benchmark_quick_lists_every_task_with_both_arms_and_equal_budgets(tmp_path):
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("meta_bench", ROOT / "benchmarks" / "meta.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
    doc = json.loads((tmp_path / "meta_quick.json").read_text())
    names = [r["task"] for r in doc["tasks"]]
    assert names == ["radial_10", "radial_20", "radial_30", "cartesian_10", "cartesian_20", "cartesian_30",
                     "radial_15", "radial_25", "radial_40", "variable_density_20"]
    assert [r["seen"] for r in doc["tasks"]] == [True] * 6 + [False] * 4
    for r in doc["tasks"]:
        assert r["margin_db"] == pytest.approx(r["meta"]["psnr"] - r["conventional"]["psnr"])
        assert ("conventional_adapted" in r) == (not r["seen"]) and "multitask" in r
    m, c = doc["budget"]["meta"], doc["budget"]["conventional"]
    assert m["theta_adam_steps"] == c["theta_adam_steps"] > 0
    assert m["omega_adam_steps"] == c["omega_adam_steps"] > 0
    assert m["D_val_per_task"] + m["D_tr_per_task"] == c["D_val_per_task"] == c["samples_per_task"]
    assert (m["omega_entries"], c["omega_entries"], c["lam0"]) == (6, 1, 0.0)
    t = doc["budget"]["multitask"]
    assert (t["theta_adam_steps"], t["omega_entries"], t["lam0"]) == (m["theta_adam_steps"], 6, 0.0)
    assert (tmp_path / "meta_quick.png").stat().st_size > 1000
    assert "| radial_15 | no |" in (tmp_path / "meta_quick.md").read_text()
