"""The side-by-side figure of `make demo` (lda_opt.experiments.compare)."""

from __future__ import annotations

import json

import pytest

from lda_opt.cli import main as cli
from lda_opt.experiments.compare import compare_runs, main


def _solve(out, *extra):
    rc = cli(["solve", "--problem", "tv-denoise", "--size", "16", "--max-iter", "5", "--quiet", "--out", str(out),
              *extra])
    assert rc == 0


def test_compare_draws_every_run_of_one_instance_and_reports_their_psnr(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _solve(a, "--weight", "0.05")
    _solve(b, "--weight", "0.2")
    summary = compare_runs([a, b], tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "fig.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    want = [json.loads((d / "result.json").read_text())["psnr"] for d in (a, b)]
    assert [r["psnr"] for r in summary["runs"]] == want
    assert [r["weight"] for r in summary["runs"]] == [0.05, 0.2]


def test_compare_refuses_runs_of_different_instances(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _solve(a)
    _solve(b, "--seed", "1")
    with pytest.raises(ValueError, match="different instance"):
        compare_runs([a, b], tmp_path / "fig.png")
    assert main([str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "f.png")]) == 2
    assert "no result.json" in capsys.readouterr().err
