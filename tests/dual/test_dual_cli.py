"""``lda-opt duality``: bad input fails before any work; ``--quick`` writes consistent files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lda_opt.cli import main
from lda_opt.dual.primal import primal_objective
from lda_opt.dual.report import recompute_from_npz

FILES = ("duality.json", "duality.npz", "objective_vs_epoch.png", "objective_by_init.png",
         "primal_vs_dual.png", "denoised.png")


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--noise", "-1"], "noise"),
        (["--noise", "nan"], "noise"),
        (["--filters", "0"], "n_filters"),
        (["--lam", "-0.1"], "lam"),
        (["--beta", "0"], "beta"),
        (["--epochs", "0"], "epochs"),
        (["--filter-size", "4"], "filter_size"),
        (["--n-train", "0"], "n_train"),
        (["--n-train", "1000", "--n-test", "1000"], "n_train + n_test"),
        (["--seeds"], None),
        (["--optimizers", "rmsprop"], "optimizers"),
        (["--inits", "zeros"], "inits"),
        (["--patterns", "0"], "n_samples"),
        (["--u-scale", "0"], "u_scale"),
        (["--dual-method", "lbfgs"], "method"),
        (["--dual-iters", "0"], "iters"),
        (["--cvxpy-solver", "mosek"], "cvxpy-solver"),
    ],
)
def test_bad_input_names_parameter_before_work(tmp_path, capsys, argv, name):
    out = tmp_path / "never"
    if name is None:  # argparse itself rejects an empty list
        with pytest.raises(SystemExit) as exc:
            main(["duality", "--quick", "--out", str(out), *argv])
        assert exc.value.code == 2
    else:
        assert main(["duality", "--quick", "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lda-opt duality: error:") and name in err
        assert len(err.splitlines()) == 1
    assert not out.exists()  # nothing was done


def test_out_must_be_a_directory(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["duality", "--quick", "--out", str(f)]) == 2
    assert "out" in capsys.readouterr().err


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dual_quick")
    assert main(["duality", "--quick", "--quiet", "--out", str(out)]) == 0
    return out, json.loads((out / "duality.json").read_text())


def test_quick_writes_every_file(quick_run):
    out, res = quick_run
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    for name in FILES[2:]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out / "duality.npz") as z:
        m2, K = z["U_primal"].shape
        assert (m2, K) == (9, 8) and z["v_primal"].shape == (8,)
        assert z["U_rec"].shape == (9, z["v_rec"].shape[0])
        assert z["Y"].shape == (4 * 64, 9) and z["x"].shape == (4 * 64,)
    # 3 optimizers x 3 initialisations x 2 seeds
    assert len(res["runs"]) == 18


def test_quick_objectives_recompute_from_npz(quick_run):
    out, res = quick_run
    rec = recompute_from_npz(out / "duality.npz")
    assert rec["primal_best"] == pytest.approx(res["primal_best"], rel=1e-12)
    assert rec["primal_at_reconstruction"] == pytest.approx(res["primal_at_reconstruction"],
                                                            rel=1e-12)
    assert rec["dual"] == pytest.approx(res["dual"], rel=1e-12)
    assert rec["dual_via_module"] == pytest.approx(res["dual"], rel=1e-12)
    assert rec["patterns_recomputed_equal"]
    runs_best = [r["best"] for r in res["runs"]]
    np.testing.assert_allclose(rec["runs_best"], runs_best, rtol=1e-12)
    assert res["primal_best"] == pytest.approx(min(runs_best), rel=1e-12)
    assert res["gap"] == res["primal_best"] - res["dual"]
    assert res["patterns"]["identity_max_abs_error"] < 1e-12


def test_quick_report_is_consistent(quick_run):
    out, res = quick_run
    # the zero network is a feasible primal point: every primal value is <= ||x||^2 + reg(0)
    with np.load(out / "duality.npz") as z:
        x = z["x"]
        assert res["zero_network_objective"] == pytest.approx(float(x @ x), rel=1e-15)
        assert primal_objective(z["Y"], x, np.zeros((9, 1)), np.zeros(1), float(z["lam"]),
                                float(z["beta"])) == pytest.approx(float(x @ x))
    # eq. (47) carries the regulariser over exactly (up to the dropped ~0 groups)
    r = res["reconstruction"]
    assert r["regulariser_primal"] == pytest.approx(r["regulariser_dual"], rel=1e-6)
    # the certified bound is a bound
    assert 0 <= res["certified_lower_bound"] <= res["primal_best"]
    # CVXPY ran and the torch solver was compared with it
    ds = res["dual_solvers"]
    assert ds["cvxpy"]["status"] == "optimal" and res["dual_source"] == "cvxpy-CLARABEL"
    assert ds["torch_minus_cvxpy"] == ds["torch"]["objective"] - ds["cvxpy"]["objective"]
    for net in ("primal", "dual", "reconstructed", "noisy_input"):
        for split in ("train", "test"):
            assert np.isfinite(res["denoising"][net][split]["psnr"])
