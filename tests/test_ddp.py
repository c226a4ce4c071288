"""``lda-opt train`` under torchrun (DistributedDataParallel, gloo on CPU, 2 ranks).

Each rank takes ``batch[rank::world]`` of the seeded shuffle and scales its loss by
``world * n_rank / n_batch``, so DDP's averaged gradient is the global batch's mean-loss
gradient: the 2-rank run must give the single-process weights (and Adam moments) to float64
round-off, with an uneven last batch (7 samples, batch 4: 2+2 then 2+1), across a stage
boundary (``grow``, DDP and Adam rebuilt) and across a stop and ``--resume``.  Only rank 0
writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lda_opt.learning import TrainConfig, train

TORCHRUN = Path(sys.executable).with_name("torchrun")
CFG = {
    "name": "ddp",
    "seed": 3,
    "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16], "mask": "radial", "mask_seed": 1},
    "data": {"train": 7, "val": 2, "seed": 5},
    "net": {"width": 2, "depth": 1, "alpha": 0.5, "tau": 0.5, "weight": 0.1},
    "train": {"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 2, "epochs_stage": 1,
              "batch_size": 4, "lr": 0.01, "dtype": "float64"},
}
# float64 round-off of a sum regrouped over 2 ranks, amplified by 6 Adam steps (whose
# normalisation g / sqrt(v) is well conditioned here); the weights are O(1)
RTOL = 1e-9

WORKER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import torch.distributed as dist
    from lda_opt.learning import TrainConfig, train

    cfg = TrainConfig.from_dict(json.loads(Path(sys.argv[1]).read_text()))
    root = Path(sys.argv[2])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    # rank 1 is handed a folder of its own: it must stay empty (only rank 0 writes)
    train(cfg, root / ("full" if rank == 0 else "rank1"), quiet=True)
    train(cfg, root / "part", quiet=True, stop_after=2)   # stopped in stage 1
    s = train(cfg, root / "part", quiet=True, resume=True)  # every rank reads the state
    (root / f"summary{rank}.json").write_text(json.dumps(s["epochs"][-1]["train_loss"]))
    dist.destroy_process_group()
''')


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def _close(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k, v in a.items():
        if k.endswith(".step"):  # Adam's step count: exact
            assert torch.equal(v, b[k]), k
            continue
        assert v.dtype == torch.float64, k
        torch.testing.assert_close(v, b[k], rtol=RTOL, atol=RTOL, msg=k)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    summary = train(TrainConfig.from_dict(CFG), out, quiet=True)
    return out, summary


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="no torchrun beside this python")
def test_two_gloo_ranks_equal_one_process_with_the_same_global_batch_and_resume(tmp_path, single):
    ref, ref_summary = single
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CFG))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = _torchrun(str(script), str(cfg), str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = load_file(str(ref / "state.safetensors"))
    assert any(k.startswith("opt.") for k in want)  # the Adam moments are compared too
    _close(load_file(str(tmp_path / "full" / "state.safetensors")), want)
    _close(load_file(str(tmp_path / "part" / "state.safetensors")), want)
    assert list((tmp_path / "rank1").iterdir()) == []  # rank 1 wrote nothing
    got = json.loads((tmp_path / "full" / "log.json").read_text())
    assert [r["phases"] for r in got["epochs"]] == [1, 1, 3]  # the stage boundary was crossed
    for r, w in zip(got["epochs"], ref_summary["epochs"], strict=True):
        assert r["train_loss"] == pytest.approx(w["train_loss"], rel=RTOL)  # summed over the ranks
        assert r["val_psnr"] == pytest.approx(w["val_psnr"], rel=RTOL)
    # the summary every rank returns is rank 0's
    assert json.loads((tmp_path / "summary1.json").read_text()) == json.loads(
        (tmp_path / "summary0.json").read_text())


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="no torchrun beside this python")
def test_lda_opt_train_under_torchrun_writes_once_and_matches(tmp_path, single):
    ref, _ = single
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CFG))
    proc = _torchrun("-m", "lda_opt.cli", "train", "--config", str(cfg), "--out", str(tmp_path / "run"),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ddp: 3 epochs") == 1  # the summary line comes from rank 0 only
    _close(load_file(str(tmp_path / "run" / "model.safetensors")), load_file(str(ref / "model.safetensors")))


def test_a_batch_smaller_than_the_world_is_refused_naming_the_field():
    from lda_opt.learning.train import _check_shards

    _check_shards(7, 4, 2)  # batches of 4 and 3: every rank gets a sample
    with pytest.raises(ValueError, match="train.batch_size = 4 with 5 training samples gives a batch of 1"):
        _check_shards(5, 4, 2)
    with pytest.raises(ValueError, match="train.batch_size = 1"):
        _check_shards(8, 1, 2)
    _check_shards(5, 4, 1)  # one process: any batch


def test_a_non_standard_mode_under_a_process_group_is_refused(monkeypatch, tmp_path):
    import importlib

    T = importlib.import_module("lda_opt.learning.train")  # the module (lda_opt.learning.train is the function)
    monkeypatch.setattr(T, "_process_group", lambda: (0, 2, False))
    cfg = TrainConfig.from_dict(CFG)
    # the mode's own section (lda_opt.learning.meta) need not exist for the refusal, which
    # comes before the dispatch: the field is set past the dataclass
    object.__setattr__(cfg.train, "mode", "meta")
    with pytest.raises(ValueError, match="train.mode = 'meta' runs in one process"):
        train(cfg, tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_world_size_from_the_environment_is_validated(monkeypatch):
    from lda_opt.learning.train import _env_world_size, ddp_backend

    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        _env_world_size()
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert _env_world_size() == 3
    assert ddp_backend("cpu") == "gloo"
    assert ddp_backend("cuda:0") == "nccl"
