"""``lda-opt duality``: bad input fails before any work; ``--quick`` writes consistent files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lda_opt.cli import main
from lda_opt.dual.primal import primal_objective
from lda_opt.experiments.duality import recompute_from_npz

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
        (["--u-scale-sweep", "1", "-2"], "u_scale_sweep"),
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


# --quick with one seed, 200 epochs, a one-point sweep and 1000 ADMM iterations keeps the
# suite within its time budget on a shared 2-core machine; `lda-opt duality --quick` itself
# is timed in the closing note.
QUICK = ["--quick", "--seeds", "0", "--epochs", "200", "--u-scale-sweep", "3",
         "--dual-iters", "1000"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dual_quick")
    assert main(["duality", *QUICK, "--quiet", "--out", str(out)]) == 0
    return out, json.loads((out / "duality.json").read_text())


def test_quick_json_and_npz_have_the_issue_keys(quick_run):
    out, res = quick_run
    for key in ("primal_best", "dual", "primal_at_reconstruction", "gap", "runs", "denoising"):
        assert key in res, key
    for run in res["runs"]:
        assert {"optimizer", "init", "seed", "best", "final"} <= set(run)
    for net in ("primal", "dual"):
        for split in ("train", "test"):
            assert set(res["denoising"][net][split]) == {"psnr", "rlne"}
    with np.load(out / "duality.npz") as z:
        for name in ("Y", "x", "lam", "beta", "U_primal", "v_primal", "U_rec", "v_rec"):
            assert name in z.files, name
        assert z["lam"].shape == () and z["beta"].shape == ()


def _numpy_objectives(path):
    """Every reported objective from duality.npz with numpy only (no lda_opt code)."""
    with np.load(path) as z:
        Y, x, lam, beta = z["Y"], z["x"], float(z["lam"]), float(z["beta"])

        def st(a):
            return np.where(a > lam, a - lam, np.where(a < -lam, a + lam, 0.0))

        def primal(U, v):
            r = st(Y @ U) @ v - x
            return float(r @ r + beta * (np.sum(U * U) + np.sum(v * v)))

        def dual(Q, W, Wp):
            r = np.einsum("pi,ia,pa->i", Q, Y, Wp - W) - x
            return float(r @ r + 2 * beta * (np.linalg.norm(W, axis=1).sum()
                                             + np.linalg.norm(Wp, axis=1).sum()))

        def q_of(u_bar):
            a = u_bar @ Y.T
            return np.where(np.abs(a) > lam, 1 - lam / np.maximum(np.abs(a), lam), 0.0)

        got = {
            "primal_best": primal(z["U_primal"], z["v_primal"]),
            "primal_at_reconstruction": primal(z["U_rec"], z["v_rec"]),
            "primal_refined": primal(z["U_refined"], z["v_refined"]),
            "dual": dual(z["Q"], z["W"], z["Wp"]),
            "dual_Q_from_u_bar": dual(q_of(z["u_bar"]), z["W"], z["Wp"]),
            "runs": [primal(U, v) for U, v in zip(z["U_runs"], z["v_runs"])],
            "point": dual(q_of(z["point_u_bar"]), z["point_W"], z["point_Wp"]),
            "aug": dual(q_of(z["aug_u_bar"]), z["aug_W"], z["aug_Wp"]),
            "sweep": {k: dual(q_of(z[f"sweep{k}_u_bar"]), z[f"sweep{k}_W"], z[f"sweep{k}_Wp"])
                      for k in range(1)},
        }
    return got


def test_quick_objectives_recompute_with_plain_numpy(quick_run):
    out, res = quick_run
    got = _numpy_objectives(out / "duality.npz")
    rel = 1e-12  # float64 round-off of sums of ~10^3 terms
    for key in ("primal_best", "primal_at_reconstruction", "dual"):
        assert got[key] == pytest.approx(res[key], rel=rel), key
    assert got["dual_Q_from_u_bar"] == pytest.approx(res["dual"], rel=rel)
    assert got["primal_refined"] == pytest.approx(
        res["primal_refined_from_reconstruction"]["objective"], rel=rel)
    np.testing.assert_allclose(got["runs"], [r["best"] for r in res["runs"]], rtol=rel)
    hon = res["honesty"]
    assert got["point"] == pytest.approx(
        hon["primal_point_in_dual"]["dual_objective_at_primal_point"], rel=rel)
    assert got["aug"] == pytest.approx(hon["dual_with_primal_filters"]["objective"], rel=rel)
    swept = sorted(got["sweep"].values())
    others = sorted(e["objective"] for e in hon["u_scale_sweep"]
                    if e["u_scale"] != res["config"]["u_scale"])
    np.testing.assert_allclose(swept, others, rtol=rel)


def test_quick_honesty_relations_that_hold_by_construction(quick_run):
    _, res = quick_run
    hon = res["honesty"]
    pt = hon["primal_point_in_dual"]
    # (22) at the primal point = p - beta sum (||u_k|| - |v_k|)^2 - regulariser of dead filters
    assert pt["dual_objective_at_primal_point"] == pytest.approx(
        res["primal_best"] - pt["balance_slack"] - pt["dead_filter_regulariser"], rel=1e-12)
    assert pt["dual_objective_at_primal_point"] <= res["primal_best"]
    # optimum over a set containing the primal filters: below the feasible primal point, up to
    # the torch solver's accuracy (1000 ADMM iterations: < 2e-4 relative to CVXPY, below)
    assert abs(res["dual_solvers"]["torch_minus_cvxpy_relative"]) < 2e-4
    aug = hon["dual_with_primal_filters"]
    assert aug["objective"] <= pt["dual_objective_at_primal_point"] * (1 + 1e-3)
    # the sweep contains the main solve at the configured u_scale
    main = [e for e in hon["u_scale_sweep"] if e["u_scale"] == res["config"]["u_scale"]]
    assert len(main) == 1 and main[0]["objective"] == res["dual"]
    # Theorem 2's rescaling changes the data term (lam > 0)
    resc = hon["rescaling"]
    assert resc["data_term_eps_0.5"] != resc["data_term_eps_1"] != resc["data_term_eps_2"]
    # the reconstructed network and the dual network differ by the split data terms
    split = hon["reconstruction_split"]
    rr = res["reconstruction"]
    assert res["primal_at_reconstruction"] == pytest.approx(
        split["data_term_reconstructed"] + rr["regulariser_primal"], rel=1e-12)
    assert res["dual"] == pytest.approx(split["data_term_dual"] + rr["regulariser_dual"],
                                        rel=1e-12)
    assert len(hon["explanation"]) == 5
    # K = 2 n_samples + 1 >= k* + 1 (at most 2P non-zero groups): Theorem 1's hypothesis
    th = res["theorem1_hypothesis"]
    assert th["K_at_least_k_star_plus_1"] and th["k_star"] <= 2 * res["sizes"]["P"]
    assert th["k_star"] == res["dual_solvers"]["cvxpy"]["nonzero_groups"]
    # refining the reconstruction with Adam starts at primal_at_reconstruction, only descends
    ref = res["primal_refined_from_reconstruction"]
    assert ref["initial"] == pytest.approx(res["primal_at_reconstruction"], rel=1e-12)
    assert ref["objective"] <= ref["initial"]
    assert ref["K"] == res["reconstruction"]["n_neurons"]


def test_quick_writes_every_file(quick_run):
    out, res = quick_run
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    for name in FILES[2:]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out / "duality.npz") as z:
        m2, K = z["U_primal"].shape
        assert (m2, K) == (9, 49) and z["v_primal"].shape == (49,)
        assert z["U_rec"].shape == (9, z["v_rec"].shape[0])
        assert z["Y"].shape == (4 * 64, 9) and z["x"].shape == (4 * 64,)
    # 3 optimizers x 3 initialisations x 1 seed
    assert len(res["runs"]) == 9


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


def test_a_run_that_fails_half_way_leaves_no_output_folder(tmp_path, capsys, monkeypatch):
    """The files go to a hidden staging folder renamed into place at the end: a failure after
    some files were written (as ``--lam 1e308`` fails after seconds: every sampled pattern is
    all-zero) leaves neither ``--out`` nor a staging folder, and exit 2 with one line."""
    import lda_opt.commands.duality as cli

    def half_way(config, out, progress=False):
        (out / "duality.json").write_text("{}")
        raise ValueError("every sampled u-bar has the all-zero pattern")

    monkeypatch.setattr(cli, "run_duality", half_way)
    out = tmp_path / "d"
    assert main(["duality", "--quick", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "all-zero pattern" in err
    assert list(tmp_path.iterdir()) == []
    # an earlier complete folder survives a failing re-run byte for byte
    out.mkdir()
    (out / "duality.json").write_text('{"old": 1}')
    assert main(["duality", "--quick", "--quiet", "--out", str(out)]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and (out / "duality.json").read_text() == '{"old": 1}'
    # Ctrl-C: exit 130, one line, the earlier folder untouched
    def interrupted(config, out, progress=False):
        (out / "duality.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_duality", interrupted)
    capsys.readouterr()
    assert main(["duality", "--quick", "--quiet", "--out", str(out)]) == 130
    assert capsys.readouterr().err.count("\n") == 1 and (out / "duality.json").read_text() == '{"old": 1}'
    # a folder with other files is refused before any work
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(cli, "run_duality", lambda *a, **k: pytest.fail("ran"))
    assert main(["duality", "--quick", "--quiet", "--out", str(out)]) == 2
    assert "notes.txt" in capsys.readouterr().err
