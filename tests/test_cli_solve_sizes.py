"""``lda-opt solve --checkpoint CK --size N|HxW``: an MRI LDA-Net at any image size.

The checkpoint is the regularizer q (convolutional); the forward model is the user's: at
another size the mask is drawn from the stored pattern, ratio and seed
(:func:`lda_opt.tasks.task_at_shape`), and the network is used as trained.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from lda_opt.cli import main
from lda_opt.commands.solve import parse_size
from lda_opt.learning import TrainConfig, load_lda_net, task_from_metadata, train
from lda_opt.tasks import BlockCSTask, MRITask, task_at_shape

TINY = {
    "name": "tiny", "seed": 3,
    "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16], "mask": "radial", "mask_seed": 1},
    "data": {"train": 4, "val": 2, "seed": 5},
    "net": {"width": 2, "depth": 1, "alpha": 0.5, "tau": 0.5, "weight": 0.1},
    "train": {"phases": 1, "first_phases": 1, "epochs_first": 1, "batch_size": 4, "lr": 0.01},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck")
    train(TrainConfig.from_dict(TINY), out, quiet=True)
    return out / "model.safetensors"


def test_parse_size_reads_n_and_h_x_w():
    assert parse_size("128") == 128
    assert parse_size("96x128") == (96, 128)
    assert parse_size("96X128") == (96, 128)
    for bad in ("", "x", "12x", "1x2x3", "a", "12.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="size must be N or HxW"):
            parse_size(bad)


def test_task_at_shape_keeps_pattern_ratio_seed_and_redraws_the_mask():
    t = MRITask(0.3, mask="radial", mask_seed=1, shape=(16, 16), noise=0.01, noise_seed=2)
    u = task_at_shape(t, (24, 20))
    assert (u.ratio, u.mask, u.mask_seed, u.noise, u.noise_seed) == (0.3, "radial", 1, 0.01, 2)
    assert u.shape == (24, 20) and u.mask_tensor().shape == (24, 20)
    assert torch.equal(task_at_shape(t, 16).mask_tensor(), t.mask_tensor())  # same size: the same mask
    b = BlockCSTask(0.25)
    assert task_at_shape(b, 128) is b  # 33 x 33 blocks of an image of any size
    with pytest.raises(ValueError, match=r"size \(24, 3\) for this MRI task: shape\[1\]"):
        task_at_shape(t, (24, 3))


def test_an_mri_lda_net_solves_another_h_x_w_with_its_trained_network(tmp_path, checkpoint):
    out = tmp_path / "hw"
    rc = main(["solve", "--quiet", "--problem", "mri", "--checkpoint", str(checkpoint), "--size", "24x20",
               "--max-iter", "3", "--out", str(out)])
    assert rc == 0
    r = json.loads((out / "result.json").read_text())
    task = task_at_shape(task_from_metadata(load_lda_net(checkpoint).checkpoint_metadata), (24, 20))
    assert r["problem"]["task"]["shape"] == [24, 20] and r["problem"]["shape"] == [1, 1, 24, 20]
    assert r["problem"]["sampling_ratio"] == float(task.mask_tensor().double().mean())
    x = np.load(out / "x.npy")
    assert x.shape == (1, 1, 24, 20) and np.iscomplexobj(x)
    # the K phases ran with the trained weights on the mask redrawn at 24 x 20: their PSNR
    # is that of net.reconstruct on the same measurement, rebuilt here independently
    from lda_opt.data import shepp_logan
    from lda_opt.metrics import psnr

    net = load_lda_net(checkpoint)
    m = task.measure(shepp_logan((24, 20), dtype=torch.float64).to(torch.complex64))
    with torch.no_grad():
        xk, _ = net.reconstruct(net.problem(m.fidelity()), m.x0)
    assert r["problem"]["phases"]["psnr_K"] == pytest.approx(
        float(psnr(xk.abs(), m.truth.abs(), data_range=1.0)), abs=1e-4)


def test_without_size_the_training_size_and_mask_are_used(tmp_path, checkpoint):
    out = tmp_path / "default"
    assert main(["solve", "--quiet", "--problem", "mri", "--checkpoint", str(checkpoint), "--max-iter", "2",
                 "--out", str(out)]) == 0
    r = json.loads((out / "result.json").read_text())
    assert r["problem"]["task"] == load_lda_net(checkpoint).checkpoint_metadata["problem"]
    assert r["problem"]["size"] == 16  # a square size is recorded as one number, as before


def test_a_bad_size_is_a_one_line_error(tmp_path, capsys, checkpoint):
    args = ["solve", "--quiet", "--problem", "mri", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exc:  # argparse's own exit
        main([*args, "--size", "12x"])
    assert exc.value.code == 2
    assert main([*args, "--size", "3x40"]) == 2  # an MRI image needs sides >= 8
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "size must be N or HxW" in err[0]
    assert "size (3, 40) for this MRI task: shape[0] must be an integer in [8, 8192]; got 3" in err[1]
    assert not (tmp_path / "o").exists()
