"""Training: stair stages, per-epoch log / curves / checkpoints, exact resume, the CLI."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import load_file

from lda_opt.cli import main
from lda_opt.learning import TrainConfig, load_config, load_lda_net, task_from_metadata, train
from lda_opt.learning.config import OptimConfig
from lda_opt.learning.train import exported_checkpoint, extends
from lda_opt.nets import FeatureCNN, load_checkpoint

TINY = {
    "name": "tiny",
    "seed": 3,
    "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16], "mask": "radial", "mask_seed": 1},
    "data": {"train": 6, "val": 2, "seed": 5},
    "net": {"width": 2, "depth": 1, "alpha": 0.5, "tau": 0.5, "weight": 0.1},
    "train": {"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 2, "epochs_stage": 1,
              "batch_size": 4, "lr": 0.01},
}


def test_stages_follow_the_stair_schedule():
    assert OptimConfig(phases=7, first_phases=3, phase_step=2, epochs_first=5, epochs_stage=2).stages() == [
        (3, 5), (5, 2), (7, 2)]
    assert OptimConfig(phases=6, first_phases=3, phase_step=2, epochs_first=1, epochs_stage=1).stages() == [
        (3, 1), (5, 1), (6, 1)]
    assert OptimConfig(phases=3, first_phases=3, epochs_first=4).stages() == [(3, 4)]


def test_lr_schedule_is_constant_by_default_and_a_half_cosine_per_stage_with_lr_final():
    const = OptimConfig(lr=0.01)
    assert [const.lr_at(s, 10) for s in (0, 5, 9)] == [0.01, 0.01, 0.01]
    cos = OptimConfig(lr=0.01, lr_final=0.001)
    assert cos.lr_at(0, 10) == pytest.approx(0.01, abs=1e-15)
    assert cos.lr_at(5, 10) == pytest.approx(0.0055, abs=1e-15)  # the midpoint of the half cosine
    assert cos.lr_at(10, 10) == pytest.approx(0.001, abs=1e-15)
    vals = [cos.lr_at(s, 10) for s in range(11)]
    assert all(a > b for a, b in itertools.pairwise(vals))  # strictly decreasing
    with pytest.raises(ValueError, match="train.lr_final"):
        OptimConfig(lr=0.01, lr_final=0.02)  # must not exceed lr
    with pytest.raises(ValueError, match="train.lr_final"):
        OptimConfig(lr=0.01, lr_final=0.0)


def test_cosine_schedule_is_applied_logged_and_resumed_bit_for_bit(tmp_path):
    d = json.loads(json.dumps(TINY))
    d["train"]["lr_final"] = 0.001
    cfg = TrainConfig.from_dict(d)
    full = train(cfg, tmp_path / "full", quiet=True)
    # 2 steps per epoch; stage 1 has 2 epochs (4 steps): its last step is step 3 of 4
    last = [r["lr_last"] for r in full["epochs"]]
    tc = cfg.train
    assert last == [tc.lr_at(1, 4), tc.lr_at(3, 4), tc.lr_at(1, 2)]
    assert TrainConfig.from_dict(TINY).to_dict()["train"]["lr_final"] is None
    train(cfg, tmp_path / "part", quiet=True, stop_after=1)  # interrupted inside stage 1
    train(cfg, tmp_path / "part", quiet=True, resume=True)
    a = load_file(str(tmp_path / "full" / "state.safetensors"))
    b = load_file(str(tmp_path / "part" / "state.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage_lr_gives_every_stage_its_own_starting_rate():
    tc = OptimConfig(phases=7, first_phases=3, phase_step=2, epochs_first=1, epochs_stage=1, lr=0.01,
                     lr_final=0.001, stage_lr=(0.01, 0.004, 0.002))
    assert [tc.peak_lr(i) for i in range(3)] == [0.01, 0.004, 0.002]
    assert tc.lr_at(0, 10, 1) == pytest.approx(0.004, abs=1e-15)
    assert tc.lr_at(5, 10, 2) == pytest.approx(0.0015, abs=1e-15)  # midpoint of 0.002 -> 0.001
    assert tc.lr_at(10, 10, 2) == pytest.approx(0.001, abs=1e-15)
    assert OptimConfig(lr=0.01).peak_lr(0) == 0.01  # default: lr for every stage
    with pytest.raises(ValueError, match="train.stage_lr must be a list of 3"):
        OptimConfig(phases=7, first_phases=3, phase_step=2, stage_lr=(0.01, 0.01))
    with pytest.raises(ValueError, match="train.stage_lr"):
        OptimConfig(phases=3, first_phases=3, stage_lr=(-0.01,))
    with pytest.raises(ValueError, match="train.lr_final"):  # above a stage's starting rate
        OptimConfig(phases=5, first_phases=3, phase_step=2, lr=0.01, lr_final=0.003, stage_lr=(0.01, 0.002))


def _extended(stage_lr=(0.01, 0.01, 0.005), **net):
    d = json.loads(json.dumps(TINY))
    d["train"].update(phases=5, stage_lr=list(stage_lr))
    d["net"].update(net)
    return TrainConfig.from_dict(d)


def test_extends_accepts_only_appended_stages():
    base = TrainConfig.from_dict(TINY)  # stages (1, 2), (3, 1)
    assert extends(_extended(), base)
    assert not extends(base, base)  # nothing appended
    assert not extends(base, _extended())  # fewer stages
    assert not extends(_extended(stage_lr=(0.02, 0.01, 0.005)), base)  # an earlier stage's rate changed
    assert not extends(_extended(width=3), base)  # another field changed
    shorter = base.with_overrides(train={"epochs_stage": 2})
    assert not extends(_extended(), shorter)  # stage 2 had 2 epochs there, 1 here


def test_resume_with_appended_stages_equals_training_the_longer_config_from_scratch(tmp_path):
    base, longer = TrainConfig.from_dict(TINY), _extended()
    train(base, tmp_path / "run", quiet=True)  # finished: 3 epochs, K = 3
    info = train(longer, tmp_path / "run", quiet=True, resume=True)
    scratch = train(longer, tmp_path / "scratch", quiet=True)
    a = load_file(str(tmp_path / "run" / "state.safetensors"))
    b = load_file(str(tmp_path / "scratch" / "state.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["phases"] for r in info["epochs"]] == [1, 1, 3, 5] and info["complete"] is True
    assert info["epochs"][-1]["lr_last"] == 0.005  # the appended stage's own (constant) rate
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == longer.to_dict()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(info["epochs"]) == strip(scratch["epochs"])
    with pytest.raises(ValueError, match="config differs"):  # a changed earlier stage is refused
        train(_extended(stage_lr=(0.02, 0.01, 0.005)), tmp_path / "run", quiet=True, resume=True)


def test_select_best_val_exports_the_best_validation_epoch_of_the_final_stage(tmp_path):
    d = json.loads(json.dumps(TINY))
    d["train"].update(epochs_stage=3, select="best_val")
    cfg = TrainConfig.from_dict(d)
    info = train(cfg, tmp_path / "full", quiet=True)
    final = [r for r in info["epochs"] if r["phases"] == 3]
    assert len(final) == 3
    want = max(final, key=lambda r: r["val_psnr"])
    assert info["best"] == {"epoch": want["epoch"], "val_psnr": want["val_psnr"]}
    path = exported_checkpoint(tmp_path / "full", cfg)
    assert path.name == "best.safetensors"
    net = load_lda_net(path)
    assert net.checkpoint_metadata["training"]["epochs"] == want["epoch"]
    from lda_opt.learning.datasets import training_data
    from lda_opt.learning.train import evaluate

    assert evaluate(net, training_data(cfg).val)["psnr"] == pytest.approx(want["val_psnr"], rel=1e-6)
    # resumed inside the final stage: the same exported file, bit for bit
    train(cfg, tmp_path / "part", quiet=True, stop_after=3)
    train(cfg, tmp_path / "part", quiet=True, resume=True)
    a = load_file(str(tmp_path / "full" / "best.safetensors"))
    b = load_file(str(tmp_path / "part" / "best.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # "last" (the default) exports model.safetensors and writes no best file
    plain = TrainConfig.from_dict(TINY)
    train(plain, tmp_path / "plain", quiet=True)
    assert exported_checkpoint(tmp_path / "plain", plain).name == "model.safetensors"
    assert not (tmp_path / "plain" / "best.safetensors").exists()
    with pytest.raises(FileNotFoundError, match="exported checkpoint"):
        exported_checkpoint(tmp_path / "nothing", cfg)
    with pytest.raises(ValueError, match="train.select"):
        cfg.with_overrides(train={"select": "best_test"})


def test_training_writes_log_curves_and_checkpoints_every_epoch(tmp_path):
    cfg = TrainConfig.from_dict(TINY)
    info = train(cfg, tmp_path, quiet=True)
    log = json.loads((tmp_path / "log.json").read_text())
    assert info == log
    assert [r["phases"] for r in log["epochs"]] == [1, 1, 3]
    assert [r["stage"] for r in log["epochs"]] == [1, 1, 2]
    assert log["complete"] is True
    assert log["budget"]["steps"] == 3 * 2  # 6 samples, batch 4 -> 2 steps per epoch
    for r in log["epochs"]:
        assert len(r["alpha"]) == r["phases"] and len(r["tau"]) == r["phases"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "config.json").read_text()) == cfg.to_dict()
    # the inference checkpoint: the FeatureCNN itself, with the contract's metadata
    ck = load_checkpoint(tmp_path / "model.safetensors")
    assert isinstance(ck.module, FeatureCNN) and ck.module.complex
    meta = ck.metadata
    assert meta["kind"] == "lda-net" and meta["algorithm"] == "lda" and meta["phases"] == 3
    assert meta["weight"] == 0.1 and len(meta["alpha"]) == 3 and len(meta["tau"]) == 3
    assert meta["problem"] == {"kind": "mri", "ratio": 0.3, "mask": "radial", "mask_seed": 1, "shape": [16, 16],
                               "noise": 0.0, "noise_seed": 0, "x0": "zero-filling"}
    assert meta["training"]["config"] == cfg.to_dict()
    # reloading gives the very same network (bit-exact) and the very same mask
    net = load_lda_net(tmp_path / "model.safetensors")
    st = load_file(str(tmp_path / "state.safetensors"))
    assert torch.equal(net.raw_alpha, st["net.raw_alpha"]) and torch.equal(net.raw_eps0, st["net.raw_eps0"])
    assert torch.equal(task_from_metadata(meta).mask_tensor(), cfg.task.build().mask_tensor())


def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path):
    cfg = TrainConfig.from_dict(TINY)
    full = train(cfg, tmp_path / "full", quiet=True)
    part = train(cfg, tmp_path / "part", quiet=True, stop_after=2)  # interrupted at a stage boundary
    assert part["complete"] is False and len(part["epochs"]) == 2
    resumed = train(cfg, tmp_path / "part", quiet=True, resume=True)
    a = load_file(str(tmp_path / "full" / "state.safetensors"))
    b = load_file(str(tmp_path / "part" / "state.safetensors"))
    assert set(a) == set(b)
    for k in a:  # parameters and Adam moments
        assert torch.equal(a[k], b[k]), k
    drop = ("seconds",)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]
    assert strip(full["epochs"]) == strip(resumed["epochs"])
    # an interruption inside a stage as well
    train(cfg, tmp_path / "mid", quiet=True, stop_after=1)
    train(cfg, tmp_path / "mid", quiet=True, resume=True)
    c = load_file(str(tmp_path / "mid" / "state.safetensors"))
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_resume_refuses_a_different_config_or_a_missing_state(tmp_path):
    cfg = TrainConfig.from_dict(TINY)
    with pytest.raises(ValueError, match="resume"):
        train(cfg, tmp_path, quiet=True, resume=True)
    train(cfg, tmp_path, quiet=True, stop_after=1)
    other = cfg.with_overrides(train={"lr": 0.02})
    with pytest.raises(ValueError, match="config differs"):
        train(other, tmp_path, quiet=True, resume=True)


@pytest.mark.parametrize(
    "patch, name",
    [({"train": {"lr": -1}}, "train.lr"), ({"net": {"width": 0}}, "net.width"),
     ({"net": {"algorithm": "fista"}}, "net.algorithm"), ({"task": {"ratio": 1.5}}, "ratio"),
     ({"task": {"mask": "spiral"}}, "mask"), ({"data": {"val_images": ["camera"]}}, "val_images"),
     ({"train": {"first_phases": 9}}, "first_phases"), ({"bogus": 1}, "bogus"),
     ({"net": {"widht": 3}}, "widht"), ({"train": {"dtype": "float16"}}, "train.dtype"),
     ({"net": {"init": "kaiming"}}, "net.init"), ({"net": {"init_noise": -0.1}}, "net.init_noise"),
     ({"net": {"init": "tv", "width": 3}}, "net.width >= 4")],
)
def test_bad_configs_raise_value_errors_naming_the_field(patch, name):
    d = json.loads(json.dumps(TINY))
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k].update(v)
        else:
            d[k] = v
    with pytest.raises(ValueError, match=name):
        TrainConfig.from_dict(d)


def test_cli_trains_from_a_config_file_and_reports_bad_input(tmp_path, capsys):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    assert load_config(path) == TrainConfig.from_dict(TINY)
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(out), "--stop-after", "1"]) == 0
    line = capsys.readouterr().out
    assert "tiny: 1 epochs, K=1" in line and "interrupted" in line
    assert main(["train", "--config", str(path), "--out", str(out), "--resume", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads((out / "log.json").read_text())["complete"] is True
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(TINY | {"net": {"width": -2}}))
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "net.width" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.json")]) == 2
    # the summary names the exported best epoch when train.select = "best_val"
    sel = tmp_path / "sel.json"
    d = json.loads(json.dumps(TINY))
    d["train"]["select"] = "best_val"
    sel.write_text(json.dumps(d))
    assert main(["train", "--config", str(sel), "--out", str(tmp_path / "sel")]) == 0
    best = json.loads((tmp_path / "sel" / "log.json").read_text())["best"]
    assert f"exported: best.safetensors (epoch {best['epoch']}" in capsys.readouterr().out


def test_build_net_tv_init_starts_from_tv_plus_seeded_noise():
    from lda_opt.learning.net import tv_init_
    from lda_opt.learning.train import build_net
    from lda_opt.nets import FeatureCNN

    d = json.loads(json.dumps(TINY))
    d["net"].update(width=4, init="tv", init_noise=0.0)
    net = build_net(TrainConfig.from_dict(d))
    ref = tv_init_(FeatureCNN(1, 4, net.features.depth, complex=True), noise=0.0)
    got, want = net.features.state_dict(), ref.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    d["net"]["init_noise"] = 0.1
    n1, n2 = build_net(TrainConfig.from_dict(d)), build_net(TrainConfig.from_dict(d))
    w1, w2 = n1.features.convs[0].real.weight, n2.features.convs[0].real.weight
    assert torch.equal(w1, w2)
    assert not torch.equal(w1, ref.convs[0].real.weight)


def test_an_extended_run_selects_its_best_epoch_from_the_new_final_stage(tmp_path):
    d = json.loads(json.dumps(TINY))
    d["train"]["select"] = "best_val"
    base = TrainConfig.from_dict(d)
    first = train(base, tmp_path, quiet=True)
    assert first["best"]["epoch"] == 3  # the final stage (K = 3) has one epoch
    d["train"].update(phases=5, stage_lr=[0.01, 0.01, 0.005])
    info = train(TrainConfig.from_dict(d), tmp_path, quiet=True, resume=True)
    assert info["best"]["epoch"] == 4  # K = 3 is no longer the final stage
    assert load_lda_net(tmp_path / "best.safetensors").phases == 5
