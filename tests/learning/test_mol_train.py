"""MOL training (train.mode = "mol") through the same `lda-opt train`, its checkpoint, exact
resume, and `lda-opt solve --checkpoint` on it (a 16 x 16 radial MRI, a few seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lda_opt.cli import main
from lda_opt.learning import TrainConfig, train
from lda_opt.learning.mol import load_mol
from lda_opt.nets import load_checkpoint
from lda_opt.nets.mol import certified_lipschitz

BASE = {
    "name": "mol_tiny", "seed": 0,
    "task": {"kind": "mri", "ratio": 0.3, "mask": "radial", "shape": [16, 16]},
    "data": {"train": 4, "val": 2, "seed": 1, "max_phase": 1.0},
    "net": {"width": 4, "depth": 3},
    "train": {"mode": "mol", "epochs_first": 2, "batch_size": 2, "lr": 0.005, "select": "best_val", "threads": 1},
    "mol": {"max_fwd": 30, "max_bwd": 30},
}


def _config(**mol) -> TrainConfig:
    d = json.loads(json.dumps(BASE))
    d["mol"].update(mol)
    return TrainConfig.from_dict(d)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("mol") / "run"
    summary = train(_config(), out, quiet=True)
    return out, summary


def test_training_writes_a_mol_checkpoint_and_a_log(trained):
    out, summary = trained
    assert summary["mode"] == "mol" and summary["complete"] and len(summary["epochs"]) == 2
    for rec in summary["epochs"]:
        assert rec["fwd_converged"] == 1.0 and 0 < rec["fwd_iters"] <= 30
        assert 0 < rec["lipschitz"] < 2 and 0 < rec["lipschitz_step_mean"] < 2 and rec["lam"] > 0
    ck = load_checkpoint(out / "model.safetensors")
    meta = ck.metadata
    assert meta["kind"] == "mol-deq" and meta["problem"]["kind"] == "mri" and meta["constraint"] == "lr"
    assert type(ck.module).__name__ == "MOLCNN" and ck.module.residual
    assert (out / "curves.png").is_file() and (out / "best.safetensors").is_file()
    state = load_file(str(out / "state.safetensors"))
    net = load_mol(out / "model.safetensors")
    assert float(net.raw_lam) == float(state["net.raw_lam"])  # lambda restored bit-exactly


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(trained, tmp_path):
    out, _ = trained
    part = tmp_path / "part"
    train(_config(), part, quiet=True, stop_after=1)
    train(_config(), part, quiet=True, resume=True)
    a = load_file(str(out / "state.safetensors"))
    b = load_file(str(part / "state.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_solve_cli_runs_the_mol_checkpoint(trained, tmp_path):
    out, _ = trained
    dest = tmp_path / "solve"
    rc = main(["solve", "--quiet", "--problem", "mri", "--checkpoint", str(out / "model.safetensors"), "--size", "16",
               "--max-iter", "500", "--out", str(dest)])
    assert rc == 0
    r = json.loads((dest / "result.json").read_text())
    assert r["algorithm"] == "mol-deq" and r["converged"] and r["reason"] == "converged"
    assert r["relative_change_final"] < r["kappa"] == 1e-4
    assert r["fixed_point_residual"] < 1e-2
    assert {p.name for p in dest.iterdir()} == {"result.json", "trace.csv", "x.npy", "recon.png", "convergence.png"}
    # the same reconstruction in process: the mask from the checkpoint's seed, Shepp-Logan, x0 = A^H y
    import numpy as np

    from lda_opt.instances import make_instance
    from lda_opt.learning import task_from_metadata

    net = load_mol(out / "model.safetensors")
    net.deq.max_fwd = 500
    inst = make_instance("mri", size=16, dtype=torch.float32, task=task_from_metadata(net.checkpoint_metadata))
    with torch.no_grad():
        x, res = net(net.problem(inst.problem.fidelity), inst.x0)
    assert int(res.iterations.max()) == r["iterations"]
    assert np.array_equal(np.load(dest / "x.npy"), x.numpy())
    lines = (dest / "trace.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + r["iterations"]


def test_solve_cli_refuses_options_that_do_not_apply(trained, tmp_path, capsys):
    out, _ = trained
    rc = main(["solve", "--quiet", "--problem", "mri", "--checkpoint", str(out / "model.safetensors"), "--weight",
               "0.1", "--out", str(tmp_path / "o")])
    assert rc != 0
    assert "--weight does not apply to a MOL checkpoint" in capsys.readouterr().err
    rc = main(["solve", "--quiet", "--problem", "cs", "--checkpoint", str(out / "model.safetensors"), "--out",
               str(tmp_path / "p")])
    assert rc != 0
    assert "needs --problem mri" in capsys.readouterr().err


@pytest.mark.slow
def test_sn_training_keeps_the_certified_bound(tmp_path):
    cfg = _config(constraint="sn", residual=False, sn_bound=0.8)
    cfg = cfg.with_overrides(train={"epochs_first": 1})
    summary = train(cfg, tmp_path / "sn", quiet=True)
    assert summary["epochs"][0]["lipschitz_certified"] <= 0.8 * (1 + 1e-9)
    net = load_mol(tmp_path / "sn" / "model.safetensors")
    assert certified_lipschitz(net.cnn, (16, 16)) <= 0.8 * (1 + 1e-9)


def test_mol_section_rules():
    with pytest.raises(ValueError, match="mol.residual must be false"):
        _config(constraint="sn")
    d = json.loads(json.dumps(BASE))
    d["mol"]["typo"] = 1
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict(d)
    d = json.loads(json.dumps(BASE))
    d["train"]["mode"] = "standard"
    with pytest.raises(ValueError, match="belongs to another train.mode"):
        TrainConfig.from_dict(d)


def test_the_barrier_gradient_reaches_the_weights_and_lowers_the_estimate():
    """MOLNet's training forward adds the MOL-LR barrier to the gradient of any loss of x
    (here a loss with zero gradient): plain gradient steps on it lower the Lipschitz
    estimate of a CNN started above l_max."""
    from lda_opt.learning.mol import build_mol

    cfg = _config(init_lipschitz=1.0, init_noise=0.3, mu=1.0, power_iters=10)
    net = build_mol(cfg).double()
    m = __import__("lda_opt.learning.datasets", fromlist=["x"]).training_data(cfg.with_overrides(
        train={"dtype": "float64"})).train
    ests = []
    for _ in range(4):
        x, _ = net(net.problem(m.fidelity()), m.x0)
        (0.0 * x.abs().sum()).backward()
        ests.append(net.step_stats[-1]["lipschitz"])
        with torch.no_grad():
            for p in net.cnn.parameters():
                p -= 1e-4 * p.grad
                p.grad = None
    assert ests[0] > 0.98
    assert ests[0] > ests[1] > ests[2] > ests[3]
