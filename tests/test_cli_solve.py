"""``lda-opt solve``: the files it writes, what they contain, and its refusals.

Runs are in-process through :func:`lda_opt.cli.main` on tiny images with a loose tolerance
(a few seconds each); one test goes through a subprocess to exercise the entry point.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lda_opt as lo
from lda_opt.cli import main
from lda_opt.instances import make_instance
from lda_opt.trace import ALL_FIELDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RESULT_KEYS = {"algorithm", "iterations", "converged", "reason", "eps_final", "grad_norm_final",
               "phi_final", "psnr", "passes", "seconds", "config", "solver", "problem", "constants"}


def _solve(tmp_path, *extra, name="out"):
    out = tmp_path / name
    rc = main(["solve", "--quiet", "--out", str(out), *extra])
    return rc, out


def _rebuild(result):
    """The instance of a result.json, rebuilt independently from its configuration."""
    c = result["config"]
    return make_instance(c["problem"], image=c["image"], size=c["size"], ratio=c["ratio"],
                         mask=c["mask"], noise=c["noise"], regularizer=c["regularizer"] or "tv",
                         weight=c["weight"], seed=c["seed"],
                         dtype={"float64": torch.float64, "float32": torch.float32}[result["problem"]["dtype"]])


def test_tv_denoise_writes_every_file_with_recomputable_numbers(tmp_path):
    rc, out = _solve(tmp_path, "--problem", "tv-denoise", "--size", "16", "--eps-tol", "0.5",
                     "--algorithm", "lda")
    assert rc == 0
    for name in ("result.json", "trace.csv", "x.npy", "recon.png", "convergence.png"):
        assert (out / name).is_file(), name
    for name in ("recon.png", "convergence.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    r = json.loads((out / "result.json").read_text())
    assert RESULT_KEYS <= set(r)
    assert r["algorithm"] == "lda" and r["reason"] == "converged" and r["converged"] is True
    assert set(r["passes"]) == {"forward", "backward"}
    # the solver is rebuilt exactly from the stored configuration
    solver = lo.ALGORITHMS[r["solver"]["name"]].from_config(r["solver"]["params"])
    assert solver.eps_tol == 0.5 and isinstance(solver, lo.LDA)
    assert r["problem"]["m"] == 16 * 16 and r["problem"]["shape"] == [1, 1, 16, 16]
    # the trace: one row per iteration, the documented columns
    lines = (out / "trace.csv").read_text().splitlines()
    assert lines[0].split(",") == ["iteration", "sample", *ALL_FIELDS]
    assert len(lines) - 1 == r["iterations"]
    trace = lo.Trace.from_csv(out / "trace.csv")
    d = trace.as_dict()
    assert int(d["forward"].sum()) + 1 == r["passes"]["forward"]  # + the start (x0)
    assert int(d["backward"].sum()) + 1 == r["passes"]["backward"]
    # phi_final and the PSNR, recomputed from x.npy and an independently rebuilt instance
    inst = _rebuild(r)
    x = torch.from_numpy(np.load(out / "x.npy", allow_pickle=False))
    assert float(inst.problem.phi(x)) == pytest.approx(r["phi_final"], rel=1e-12)
    assert float(lo.metrics.psnr(x, inst.truth, data_range=1.0)) == pytest.approx(r["psnr"], rel=1e-12)
    assert float(lo.metrics.psnr(inst.x0, inst.truth, data_range=1.0)) == pytest.approx(r["psnr_x0"], rel=1e-12)
    # the certificate the run reports
    assert r["grad_norm_final"] < solver.sigma * r["eps_final"]
    assert solver.sigma * r["eps_final"] < solver.eps_tol


def test_cs_every_block_is_a_sample(tmp_path):
    rc, out = _solve(tmp_path, "--problem", "cs", "--size", "40", "--ratio", "0.5", "--eps-tol", "0.5",
                     "--algorithm", "elda")
    assert rc == 0
    r = json.loads((out / "result.json").read_text())
    assert r["batch_size"] == 4  # a 40 x 40 image is padded to 2 x 2 blocks of 33 x 33
    assert len(r["per_sample"]["iterations"]) == 4
    assert r["iterations"] == max(r["per_sample"]["iterations"])
    assert r["phi_final"] == pytest.approx(sum(r["per_sample"]["phi_final"]), rel=1e-12)
    assert r["problem"]["m"] == 33 * 33 and r["problem"]["measurements"] == 545
    inst = _rebuild(r)
    x = torch.from_numpy(np.load(out / "x.npy", allow_pickle=False))
    assert x.shape == (4, 1, 33, 33)
    assert float(inst.problem.phi(x).sum()) == pytest.approx(r["phi_final"], rel=1e-12)


def test_mri_tv_beats_zero_filling(tmp_path):
    # 32 x 32 Shepp-Logan, radial 25 %: zero filling 21.24 dB, TV (kappa .01) 21.62 dB measured
    rc, out = _solve(tmp_path, "--problem", "mri", "--size", "32", "--ratio", "0.25", "--eps-tol", "0.1",
                     "--algorithm", "lda", "--mask", "radial", "--weight", "0.01")
    assert rc == 0
    r = json.loads((out / "result.json").read_text())
    assert r["problem"]["complex"] is True and r["problem"]["smoothing"] == "huber"
    assert abs(r["problem"]["sampling_ratio"] - 0.25) < 0.01
    x = np.load(out / "x.npy", allow_pickle=False)
    assert np.iscomplexobj(x)
    assert r["psnr"] > r["psnr_x0"] + 0.2


def test_summary_is_printed_unless_quiet(tmp_path, capsys):
    rc = main(["solve", "--size", "12", "--algorithm", "meta-lda", "--out", str(tmp_path / "o")])
    assert rc == 0
    captured = capsys.readouterr()
    assert "converged" in captured.out and "result.json" in captured.out
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    rc = main(["solve", "--quiet", "--size", "12", "--eps-tol", "0.5", "--out", str(tmp_path / "q")])
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == "" and captured.err == ""


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--sigma", "-1"], "sigma"),
        (["--gamma-not-an-option"], None),
        (["--eps0", "0"], "eps0"),
        (["--weight", "0"], "weight"),
        (["--noise", "nan"], "noise"),
        (["--noise", "-0.1"], "noise"),
        (["--size", "2"], "size"),
        (["--ratio", "1.5", "--problem", "cs"], "ratio"),
        (["--image", "no_such_image"], "image"),
        (["--image", "/no/such/file.png"], "not found"),
        (["--max-iter", "0"], "max_iter"),
        (["--device", "cuda:99"], "cuda"),
        (["--device", "tpu"], "device"),
        (["--checkpoint", "/no/such.safetensors", "--problem", "mri"], "not found"),
        (["--checkpoint", "x.safetensors"], "not found"),
        (["--checkpoint", "shipped"], "--problem cs or mri"),
        (["--checkpoint", "x.safetensors", "--regularizer", "tv"], "checkpoint"),
    ],
)
def test_bad_input_is_one_line_error_before_any_work(tmp_path, capsys, args, needle):
    out = tmp_path / "never"
    if needle is None:  # argparse refuses an unknown option
        with pytest.raises(SystemExit) as exc:
            main(["solve", "--out", str(out), *args])
        assert exc.value.code == 2
    else:
        rc = main(["solve", "--quiet", "--out", str(out), *args])
        err = capsys.readouterr().err.strip()
        assert rc == 2
        assert len(err.splitlines()) == 1 and err.startswith("lda-opt solve: error:")
        assert needle in err
    assert not out.exists()  # refused before any work: nothing written


@pytest.mark.parametrize("choice", [["--problem", "deblur"], ["--algorithm", "fista"], ["--mask", "spiral"],
                                    ["--regularizer", "tgv"], ["--dtype", "float16"]])
def test_unknown_choice_is_refused(tmp_path, choice):
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--out", str(tmp_path / "o"), *choice])
    assert exc.value.code == 2


def test_cuda_without_gpu_is_a_clean_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the refusal applies only without one")
    rc = main(["solve", "--device", "cuda", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "torch.cuda.is_available() is False" in err and "fall back" in err


def test_out_must_not_be_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["solve", "--out", str(f)]) == 2
    assert "out must be a directory" in capsys.readouterr().err


def test_entry_point_runs_as_a_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lda_opt.cli", "solve", "--quiet", "--size", "8",
                           "--eps-tol", "0.5", "--out", str(tmp_path / "o")],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "result.json").read_text())["converged"] is True
    proc = subprocess.run([sys.executable, "-m", "lda_opt.cli", "solve", "--sigma", "0", "--out",
                           str(tmp_path / "p")], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "sigma" in proc.stderr


def _feature_map_checkpoint(tmp_path, is_complex=False, **meta):
    torch.manual_seed(3)
    q = lo.nets.FeatureCNN(width=4, depth=2, complex=is_complex)
    lo.nets.save_checkpoint(q, tmp_path / "q.safetensors", **meta)
    return q, tmp_path / "q.safetensors"


def test_plain_feature_map_checkpoint_is_q_with_its_stored_weight_and_eps0(tmp_path):
    q, path = _feature_map_checkpoint(tmp_path, weight=0.05, eps0=0.02)
    rc, out = _solve(tmp_path, "--problem", "tv-denoise", "--size", "12", "--checkpoint", str(path),
                     "--eps-tol", "0.5", "--algorithm", "lda")
    assert rc == 0
    r = json.loads((out / "result.json").read_text())
    assert r["problem"]["checkpoint"] == str(path) and r["problem"]["regularizer"] == "learned"
    assert r["problem"]["weight"] == 0.05 and r["solver"]["params"]["eps0"] == 0.02
    assert r["problem"]["dtype"] == "float32" and r["problem"]["m"] == 12 * 12
    # phi_final recomputed with the same feature map, built independently of the CLI
    inst = make_instance("tv-denoise", size=12, weight=0.05, features=q.eval(), dtype=torch.float32)
    x = torch.from_numpy(np.load(out / "x.npy", allow_pickle=False))
    with torch.no_grad():
        assert float(inst.problem.phi(x)) == pytest.approx(r["phi_final"], rel=1e-5)


def test_plain_feature_map_checkpoint_errors_name_what_is_missing(tmp_path, capsys):
    _, path = _feature_map_checkpoint(tmp_path)  # no weight stored
    assert main(["solve", "--quiet", "--size", "12", "--checkpoint", str(path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "stores no weight; give --weight" in capsys.readouterr().err
    assert main(["solve", "--quiet", "--problem", "mri", "--size", "12", "--weight", "0.1",
                 "--checkpoint", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "needs a complex one" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_shipped_lda_net_default_tolerance_is_one_level_below_eps_k(tmp_path):
    from lda_opt.learning import shipped_checkpoints

    if not any(True for _ in shipped_checkpoints()):
        pytest.skip("no shipped checkpoint")
    rc, out = _solve(tmp_path, "--problem", "mri", "--checkpoint", "shipped", "--max-iter", "200")
    assert rc == 0
    r = json.loads((out / "result.json").read_text())
    ph, sp = r["problem"]["phases"], r["solver"]["params"]
    assert ph["K"] == len(json.loads(Path(r["problem"]["checkpoint"]).with_suffix(".json").read_text())
                          ["metadata"]["alpha"])
    # Algorithm 1 starts at eps_K and stops after exactly one reduction
    assert sp["eps0"] == ph["eps_K"] and sp["eps_tol"] == sp["sigma"] * sp["eps0"] < 1.0
    # float32 run: eps is stored in float32
    assert r["reason"] == "converged" and r["eps_final"] == pytest.approx(sp["gamma"] * sp["eps0"], rel=1e-6)
    eps = lo.Trace.from_csv(out / "trace.csv").as_dict()["eps"]
    assert torch.all(eps == eps[0])  # one smoothing level: every iteration ran at eps_K


def test_default_solver_is_elda_with_the_lbfgs_candidate_and_checks_clean(tmp_path):
    """Issue 16 item 6: the race winner (ELDA + L-BFGS candidate) is the default; the paper's
    rule stays one flag away and gives a different run."""
    args = ("--problem", "tv-denoise", "--image", "camera", "--size", "32")
    rc, out = _solve(tmp_path, *args)
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["algorithm"] == "elda" and result["solver"]["params"]["candidate"] == "lbfgs"
    assert result["converged"]
    assert main(["check", str(out), "--quiet"]) == 0
    rc, out_paper = _solve(tmp_path, *args, "--candidate", "paper", name="paper")
    assert rc == 0
    paper = json.loads((out_paper / "result.json").read_text())
    assert paper["solver"]["params"]["candidate"] == "paper"
    assert paper["passes"] != result["passes"]


def test_candidate_of_a_solver_without_candidate_rules_is_refused_before_any_work(tmp_path, capsys):
    rc, out = _solve(tmp_path, "--algorithm", "gd", "--candidate", "lbfgs", name="x")
    assert rc == 2
    assert "--candidate lbfgs applies to --algorithm elda or lda only" in capsys.readouterr().err
    assert not out.exists()
