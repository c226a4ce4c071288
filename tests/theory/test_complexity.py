"""Tests of the iteration-complexity experiment (``lda_opt.experiments.complexity``, ``lda-opt complexity``).

What is asserted:

* the log-log least-squares fit recovers a known exponent *exactly* on synthetic
  ``N = c eps^-b``, and its seeded bootstrap 95% CI contains it (exactly degenerate CI on exact
  data; containing the true exponent on noisy data);
* ``N(eps_tol)`` and the segment lengths read off a trace are exact counts (hand-built trace),
  and reading every ``N`` off one run gives the same counts as one run per ``eps_tol``;
* on tiny real runs of LDA, MetaLDA and ELDA the measured ``N`` never exceeds the certified
  bound curve, every finished segment is within its bound, and the number of reductions is
  exactly ``lda_opt.bounds.num_reductions``;
* a tiny ``lda-opt complexity`` run writes ``complexity.json`` with the documented schema and a
  PNG, and restores the torch thread count;
* bad input (fewer than 6 values, span under 2 decades, unknown algorithm or problem, ...)
  raises ValueError naming the parameter, and the CLI turns it into a one-line error, exit 2.

Runtime budget: the whole file takes well under 40 s on a 2-core machine (tiny 8x8 problems,
``gamma = 0.5`` in the tiny preset so that 2 decades of eps_tol take 7 reductions).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lda_opt import bounds
from lda_opt.cli import main
from lda_opt.experiments.complexity import (
    ComplexityConfig,
    fit_exponent,
    iterations_at,
    run_complexity,
    segment_lengths,
)
from lda_opt.trace import ALL_FIELDS, Trace

GRID = tuple(np.geomspace(1e-1, 1e-4, 7))


# ---------------------------------------------------------------------------------------
# the fit
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("b", [0.5, 1.0, 2.0, 3.0])
def test_fit_recovers_known_exponent_exactly(b):
    """N = c eps^-b exactly: the slope is b and the intercept log c (float64 rounding only);
    every bootstrap resample of exact data has the same slope, so the CI is [b, b]."""
    c = 7.0
    N = [c * e**-b for e in GRID]
    fit = fit_exponent(GRID, N, n_boot=500, seed=3)
    assert fit["exponent"] == pytest.approx(b, rel=1e-12, abs=1e-12)
    assert fit["log_c"] == pytest.approx(math.log(c), rel=1e-10, abs=1e-10)
    lo, hi = fit["ci"]
    assert lo <= b + 1e-10 and b - 1e-10 <= hi
    assert hi - lo < 1e-10
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12)
    assert fit["n"] == 7 and fit["n_boot"] == 500


def test_bootstrap_ci_contains_true_exponent_on_noisy_data_and_is_seeded():
    """Multiplicative log-normal noise (sd 0.1, seeded): the 95% CI contains the true b = 3,
    has positive width, and is reproduced exactly by the same seed."""
    rng = np.random.default_rng(11)
    eps = np.geomspace(1e-1, 1e-3, 9)
    N = 5.0 * eps**-3.0 * np.exp(0.1 * rng.standard_normal(eps.size))
    fit = fit_exponent(eps, N, n_boot=2000, seed=0)
    lo, hi = fit["ci"]
    assert lo < 3.0 < hi
    assert lo < fit["exponent"] < hi
    again = fit_exponent(eps, N, n_boot=2000, seed=0)
    assert again["ci"] == fit["ci"] and again["exponent"] == fit["exponent"]
    other = fit_exponent(eps, N, n_boot=2000, seed=1)
    assert other["ci"] != fit["ci"]


def test_fit_rejects_degenerate_input():
    """One distinct eps_tol has no slope; N must be positive."""
    with pytest.raises(ValueError, match="eps_tols"):
        fit_exponent([1e-2, 1e-2, 1e-2], [3, 4, 5])
    with pytest.raises(ValueError, match="iterations"):
        fit_exponent([1e-1, 1e-2], [0, 4])
    with pytest.raises(ValueError, match="n_boot"):
        fit_exponent([1e-1, 1e-2], [1, 4], n_boot=0)


# ---------------------------------------------------------------------------------------
# reading a trace
# ---------------------------------------------------------------------------------------
def _trace(eps0: float, gamma: float, reduce_rows: list[int], K: int) -> Trace:
    tr = Trace(1)
    eps = eps0
    for k in range(K):
        nxt = eps * gamma if k in reduce_rows else eps
        rec = {f: torch.zeros(1, dtype=torch.float64) for f in ALL_FIELDS}
        rec["eps"] = torch.tensor([eps], dtype=torch.float64)
        rec["eps_next"] = torch.tensor([nxt], dtype=torch.float64)
        tr.append(torch.tensor([0]), rec)
        eps = nxt
    return tr


def test_iterations_and_segments_read_off_a_trace_are_exact():
    """Reductions at rows 0, 3, 4, 9 of 10 (eps0 = 1e-3, gamma = 1/2, sigma = 1e3, so
    sigma eps after l reductions is 2^-l): N = 1, 4, 5, 10 at eps_tol = 0.6, 0.3, 0.2, 0.1;
    eps_tol = 0.05 is censored at the run's 10 iterations; segments are 1, 3, 1, 5."""
    tr = _trace(1e-3, 0.5, [0, 3, 4, 9], 10)
    pts = iterations_at(tr, [0.6, 0.3, 0.2, 0.1, 0.05], sigma=1e3)
    assert [p["iterations"] for p in pts] == [1, 4, 5, 10, 10]
    assert [p["reductions"] for p in pts] == [1, 2, 3, 4, 4]
    assert [p["converged"] for p in pts] == [True, True, True, True, False]
    assert segment_lengths(tr) == ([1, 3, 1, 5], 0)
    tr2 = _trace(1e-3, 0.5, [0, 3, 4, 9], 12)
    assert segment_lengths(tr2) == ([1, 3, 1, 5], 2)


# ---------------------------------------------------------------------------------------
# tiny real runs
# ---------------------------------------------------------------------------------------
def _tiny(**changes) -> ComplexityConfig:
    base = {"algorithm": "lda", "problem": "cnn-mri"}
    base.update(changes)
    return ComplexityConfig.preset("tiny", **base)


def test_one_run_read_off_equals_one_run_per_eps_tol():
    """The iterates do not depend on eps_tol, so N read off the run at the smallest eps_tol
    equals N of a separate run per eps_tol, value by value."""
    one = run_complexity(_tiny())
    sep = run_complexity(_tiny(separate_runs=True))
    key = [(p["eps_tol"], p["iterations"], p["reductions"], p["converged"]) for p in one["points"]]
    assert key == [
        (p["eps_tol"], p["iterations"], p["reductions"], p["converged"]) for p in sep["points"]
    ]
    assert all(p["converged"] for p in one["points"])
    assert len(sep["run"]["iterations"]) == 6 and len(one["run"]["iterations"]) == 1


@pytest.mark.parametrize("algorithm", ["lda", "meta-lda", "elda"])
def test_measured_iterations_never_exceed_the_bound_on_a_tiny_run(algorithm):
    """Tiny real run: each converged grid value has N <= certified total bound (and <= the
    finite sum of segment bounds), exactly num_reductions reductions, and N equal to the sum
    of its segments; every finished segment is within its segment bound; ELDA's closed form
    (4.28) dominates its finite sum."""
    res = run_complexity(_tiny(algorithm=algorithm, max_iter=40))
    pts, bps, seg = res["points"], res["bound_points"], res["segments"]
    assert len(pts) == len(bps) == 6
    conv = [(p, bp) for p, bp in zip(pts, bps) if p["converged"]]
    assert len(conv) >= 3
    for p, bp in conv:
        assert bp["eps_tol"] == p["eps_tol"]
        assert p["iterations"] <= bp["bound_sum"] <= bp["bound"] * (1 + 1e-12)
        assert p["reductions"] == p["reductions_theory"]
        assert sum(seg["lengths"][: p["reductions"]]) == p["iterations"]
        assert bp["ratio"] == p["iterations"] / bp["bound"]
    assert seg["violations"] == []
    assert all(n <= b for n, b in zip(seg["lengths"], seg["bound"]))
    # lda_opt.check on the same run: every theorem invariant holds, bounds included
    assert res["check"]["ok"] is True and res["check"]["violations"] == []
    assert res["check"]["counts"]["segment-bound"] >= 1
    assert res["constants"]["certified"] == {"L_f": True, "M": True, "L_g": True}
    if algorithm == "lda":  # the Thm 3.5 reference is labelled as such, not as the bound
        assert "reference" in bps[0] and "not a bound" in res["bound"]["reference_equation"]


def test_tv_mri_bound_uses_certified_tv_constants():
    """TV-MRI: L_f = 1 (||P F|| <= 1), M = sqrt(8), L_g = 0, m = H W; N <= bound."""
    res = run_complexity(_tiny(problem="tv-mri", max_iter=30))
    c = res["constants"]
    assert (c["L_f"], c["M"], c["L_g"], c["m"]) == (1.0, math.sqrt(8.0), 0.0, 64)
    for p, bp in zip(res["points"], res["bound_points"]):
        if p["converged"]:
            assert p["iterations"] <= bp["bound"]


# ---------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------
def test_cli_tiny_run_writes_json_schema_and_png(tmp_path, capsys):
    """``lda-opt complexity --tiny``: exit 0, complexity.json with exponent, ci, points,
    bound_points and the configuration; complexity.png is a PNG; thread count restored; the
    summary goes to stdout and no progress bar is drawn when stderr is not a terminal."""
    threads = torch.get_num_threads()
    out = tmp_path / "cx"
    rc = main(
        ["complexity", "--tiny", "--algorithm", "lda", "--problem", "cnn-mri", "--out", str(out)]
    )
    assert rc == 0
    assert torch.get_num_threads() == threads
    cap = capsys.readouterr()
    assert cap.err == ""
    assert cap.out.startswith("lda on cnn-mri: N ~ eps_tol^-b, b = ")
    res = json.loads((out / "complexity.json").read_text())
    for key in (
        "exponent",
        "ci",
        "points",
        "bound_points",
        "config",
        "solver",
        "segments",
        "constants",
        "bound",
        "fit",
        "run",
    ):
        assert key in res
    assert isinstance(res["exponent"], float)
    lo, hi = res["ci"]
    assert lo <= res["exponent"] <= hi
    assert len(res["points"]) == 6
    for p in res["points"]:
        assert set(p) >= {"eps_tol", "iterations", "reductions"}
        assert isinstance(p["iterations"], int) and isinstance(p["reductions"], int)
    tols = [p["eps_tol"] for p in res["points"]]
    assert max(tols) / min(tols) >= 100 * (1 - 1e-12)
    assert [bp["eps_tol"] for bp in res["bound_points"]] == tols
    assert res["config"]["algorithm"] == "lda" and res["config"]["problem"] == "cnn-mri"
    assert res["solver"]["eps_tol"] == min(tols) and res["solver"]["gamma"] == 0.5
    png = (out / "complexity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"eps_tols": tuple(np.geomspace(1e-1, 1e-3, 5))}, "eps_tols"),
        ({"eps_tols": tuple(np.geomspace(1e-1, 2e-3, 8))}, "eps_tols"),
        ({"eps_tols": (0.1, 0.1, 0.05, 0.01, 0.005, 0.001)}, "eps_tols"),
        ({"eps_tols": (-0.1, 0.05, 0.02, 0.01, 0.005, 0.001)}, "eps_tols"),
        ({"eps_tols": tuple(np.geomspace(10.0, 1e-1, 6))}, "eps_tols"),
        ({"algorithm": "newton"}, "algorithm"),
        ({"algorithm": "gd"}, "algorithm"),
        ({"problem": "denoise"}, "problem"),
        ({"size": 4}, "size"),
        ({"weight": 0.0}, "weight"),
        ({"solver": {"sigmaa": 1.0}}, "solver"),
        ({"solver": {"eps_tol": 1e-3}}, "solver"),
        ({"solver": {"gamma": 1.5}}, "gamma"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(changes, name):
    """Fewer than 6 values, span < 2 decades, repeated or negative values, values above
    sigma * eps0 (no iteration), unknown algorithm or problem, invalid sizes and solver fields."""
    with pytest.raises(ValueError, match=name):
        ComplexityConfig(**changes)


def test_cli_bad_input_is_a_one_line_error_with_exit_2(tmp_path, capsys):
    """Unknown algorithm / too few eps_tol values: exit 2, one line naming the parameter,
    nothing written."""
    out = tmp_path / "bad"
    assert main(["complexity", "--algorithm", "foo", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "algorithm" in err[0]
    assert (
        main(["complexity", "--eps-tol", "0.1", "0.01", "0.001", "--quiet", "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eps_tols" in err[0]
    assert not out.exists()
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["complexity", "--tiny", "--quiet", "--out", str(afile)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out must be a directory" in err[0]


@pytest.mark.parametrize(
    "algorithm, expected",
    [("lda", [1, 2, 4, 5, 6, 8]), ("meta-lda", [1, 2, 3, 4, 6, 7]), ("elda", [1, 2, 3, 4, 6, 7])],
)
def test_tiny_preset_grid_and_reduction_counts(algorithm, expected):
    """The tiny grid is 10^(-2k/5), k = 0..5 (1 ... 1e-2), with gamma = 1/2.  LDA has
    sigma eps0 = 1.4, so sigma eps after l reductions is 1.4 * 2^-l (0.7, 0.35, 0.175, 0.0875,
    0.0438, 0.0219, 0.0109, 0.0055); MetaLDA and ELDA have 2^-l.  The first l with
    sigma eps0 gamma^l < eps_tol gives the counts."""
    cfg = _tiny(algorithm=algorithm)
    assert cfg.eps_tols == pytest.approx([10 ** (-2 * k / 5) for k in range(6)], rel=1e-12)
    s = cfg.make_solver(min(cfg.eps_tols))
    assert s.gamma == 0.5 and cfg.max_iter == 60 and cfg.size == 8
    ells = [bounds.num_reductions(s.eps0, t, s.sigma, s.gamma) for t in cfg.eps_tols]
    assert ells == expected


def test_cli_interrupted_run_leaves_no_partial_folder(tmp_path, monkeypatch, capsys):
    """``complexity.json`` and ``complexity.png`` appear together (a staged folder renamed
    into place): a Ctrl-C after the first file was written leaves no ``--out`` at all, and a
    folder holding other files is refused before any work (issue 15)."""
    import lda_opt.experiments.complexity as cx

    def interrupted(config, out, progress=False):
        (out / "complexity.png").write_bytes(b"\x89PNG")
        raise KeyboardInterrupt

    monkeypatch.setattr(cx, "run_complexity", interrupted)
    out = tmp_path / "c"
    assert main(["complexity", "--tiny", "--quiet", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted; no output written" in err
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "mine.txt").write_text("x")
    monkeypatch.setattr(cx, "run_complexity", lambda *a, **k: pytest.fail("ran"))
    assert main(["complexity", "--tiny", "--quiet", "--out", str(out)]) == 2
