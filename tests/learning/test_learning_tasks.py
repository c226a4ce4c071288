"""Tasks (seeded operators regenerated from metadata), losses and shipped-checkpoint lookup."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

import lda_opt as lo
from lda_opt.data import block_cs as bcs
from lda_opt.data import masks
from lda_opt.learning import (
    LDANet,
    MRITask,
    mse_loss,
    reconstruction_loss,
    shipped_checkpoint,
    shipped_checkpoints,
    task_from_metadata,
)
from lda_opt.nets import save_checkpoint
from lda_opt.tasks import BlockCSTask


def test_mri_task_measures_with_the_seeded_mask_and_zero_fills():
    task = MRITask(0.2, mask="radial", mask_seed=4, shape=(32, 32))
    x = lo.data.random_ellipses(2, size=(32, 32), seed=1, dtype=torch.complex128)
    m = task.measure(x)
    mask = masks.radial((32, 32), 0.2, 4, dtype=torch.float64)
    assert torch.equal(m.operator.mask[0, 0], mask)
    assert torch.allclose(m.y, mask * torch.fft.fft2(x, norm="ortho"), rtol=0, atol=1e-15)
    assert torch.allclose(m.x0, torch.fft.ifft2(m.y, norm="ortho"), rtol=0, atol=1e-15)
    assert torch.equal(m.to_image(m.x0), m.x0)
    assert round(float(mask.mean()) * 32 * 32) == round(0.2 * 32 * 32)
    again = task_from_metadata({"problem": task.metadata()})
    assert again == task


def test_block_cs_task_regenerates_a_and_q_and_reassembles_images():
    task = BlockCSTask(0.1, matrix_seed=2, init_blocks=200, init_size=64, init_seed=1)
    A, Q = task.matrices(torch.float64)
    assert A.shape == (109, 1089) and Q.shape == (1089, 109)
    assert torch.allclose(A @ A.T, torch.eye(109, dtype=torch.float64), atol=1e-12)
    assert torch.equal(A, bcs.gaussian_sampling_matrix(0.1, seed=2))
    img = lo.data.load_image("camera", size=40, dtype=torch.float64)
    m = task.measure(img)
    assert m.y.shape == (4, 109) and m.x0.shape == (4, 1, 33, 33)
    assert torch.equal(m.to_image(m.truth), img)
    assert torch.allclose(m.y, m.operator(m.truth), atol=1e-12)
    assert torch.allclose(m.x0.reshape(4, -1), m.y @ Q.T, atol=1e-12)
    meta = json.loads(json.dumps(task.metadata()))
    assert meta["matrix_seed"] == 2 and meta["mask"] is None
    assert task_from_metadata(meta) == task


@pytest.mark.parametrize(
    "make, name",
    [(lambda: MRITask(1.2), "ratio"), (lambda: MRITask(0.2, mask="spiral"), "mask"),
     (lambda: MRITask(0.2, shape=(4, 4)), "shape"), (lambda: MRITask(0.2, noise=-1.0), "noise"),
     (lambda: BlockCSTask(0.25, init_blocks=100), "init_blocks"), (lambda: BlockCSTask(0.0), "ratio"),
     (lambda: BlockCSTask(0.25, matrix_seed=-1), "matrix_seed"),
     (lambda: task_from_metadata({"problem": {"kind": "ct", "ratio": 0.1}}), "kind"),
     (lambda: task_from_metadata({"problem": {"kind": "mri"}}), "ratio")],
)
def test_bad_task_arguments_raise_value_errors(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_losses_are_half_squared_errors_and_ssim_term():
    x = torch.zeros(2, 1, 12, 12)
    t = torch.ones(2, 1, 12, 12)
    assert float(mse_loss(x, t)) == 0.5 * 144
    z = torch.complex(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0))
    assert float(mse_loss(z, torch.zeros_like(z))) == 0.5 * 4 * 4
    assert float(reconstruction_loss(t, t, ssim_weight=3.0)) == 0.0
    y = t.clone()
    y[:, :, :6] = 0.5
    assert float(reconstruction_loss(y, t, ssim_weight=2.0)) > float(mse_loss(y, t))
    with pytest.raises(ValueError, match="ssim_weight"):
        reconstruction_loss(y, t, ssim_weight=-1.0)
    with pytest.raises(ValueError, match="shape"):
        mse_loss(x, t[:1])


def _fake_checkpoint(directory, name, problem):
    net = LDANet(2, 2, 1)
    meta = net.metadata() | {"problem": problem}
    save_checkpoint(net.features, directory / f"{name}.safetensors", **meta)
    (directory / f"{name}.config.json").write_text("{}")


def test_shipped_checkpoint_lookup_matches_problem_ratio_and_mask(tmp_path):
    _fake_checkpoint(tmp_path, "a", BlockCSTask(0.25, init_blocks=300).metadata())
    _fake_checkpoint(tmp_path, "b", MRITask(0.2, mask="radial").metadata())
    _fake_checkpoint(tmp_path, "c", MRITask(0.2, mask="cartesian").metadata())
    assert [(p, r, m) for p, r, m, _ in shipped_checkpoints(tmp_path)] == [
        ("block-cs", 0.25, None), ("mri", 0.2, "cartesian"), ("mri", 0.2, "radial")]
    assert shipped_checkpoint("block_cs", 0.25, None, tmp_path).name == "a.safetensors"
    assert shipped_checkpoint("MRI", 0.2, "radial", tmp_path).name == "b.safetensors"
    with pytest.raises(ValueError, match=r"several match.*available: .*'radial'"):
        shipped_checkpoint("mri", 0.2, None, tmp_path)
    with pytest.raises(ValueError, match=r"none matches.*ratio=0.25, mask=None"):
        shipped_checkpoint("mri", 0.3, "radial", tmp_path)
    with pytest.raises(ValueError, match="ratio"):
        shipped_checkpoint("mri", 2.0, "radial", tmp_path)


def test_the_package_ships_block_cs_25_and_radial_mri_20():
    have = {(p, r, m) for p, r, m, _ in shipped_checkpoints()}
    assert ("block-cs", 0.25, None) in have
    assert ("mri", 0.2, "radial") in have
    for prob, ratio, mask in (("block-cs", 0.25, None), ("mri", 0.2, "radial")):
        path = shipped_checkpoint(prob, ratio, mask)
        assert path.stat().st_size < 2_000_000
        assert path.with_name(path.stem + ".config.json").is_file()
        meta = json.loads(path.with_suffix(".json").read_text())["metadata"]
        for key in ("algorithm", "phases", "weight", "eps0", "alpha", "problem", "solver", "continuation"):
            assert key in meta
        assert len(meta["alpha"]) == meta["phases"]
        assert math.isfinite(meta["eps0"]) and meta["eps0"] > 0


def test_shipped_checkpoints_were_trained_with_the_configs_make_checkpoints_uses():
    """``make checkpoints`` retrains ``configs/NAME.json``: the shipped copy of the config, the
    config stored in the checkpoint's metadata and the one in ``configs/`` are identical."""
    from lda_opt.learning import TrainConfig, load_config

    root = Path(__file__).resolve().parents[2]
    for prob, ratio, mask in (("block-cs", 0.25, None), ("mri", 0.2, "radial")):
        path = shipped_checkpoint(prob, ratio, mask)
        shipped_cfg = json.loads(path.with_name(path.stem + ".config.json").read_text())
        meta = json.loads(path.with_suffix(".json").read_text())["metadata"]
        source = load_config(root / "configs" / f"{path.stem}.json").to_dict()
        assert load_config(path.with_name(path.stem + ".config.json")).to_dict() == source
        assert TrainConfig.from_dict(meta["training"]["config"]).to_dict() == source
        assert shipped_cfg["name"] == path.stem
        assert meta["phases"] == source["train"]["phases"]


def test_shipped_checkpoints_reconstruct_better_than_their_start():
    from lda_opt.learning import load_lda_net
    from lda_opt.learning.datasets import test_images
    from lda_opt.metrics import psnr

    for prob, ratio, mask in (("block-cs", 0.25, None), ("mri", 0.2, "radial")):
        net = load_lda_net(shipped_checkpoint(prob, ratio, mask))
        task = task_from_metadata(net.checkpoint_metadata)
        cfg = net.checkpoint_metadata["training"]["config"]
        imgs, _ = test_images(task, n=1, size=66, max_phase=cfg["data"]["max_phase"])
        m = task.measure(imgs[:1])
        x, _ = net.reconstruct(net.problem(m.fidelity()), m.x0)
        dr = None if imgs.is_complex() else 1.0
        gain = float(psnr(m.to_image(x), imgs[:1], dr) - psnr(m.to_image(m.x0), imgs[:1], dr))
        assert gain > 0.3, (prob, gain)


def test_every_config_in_configs_loads_and_is_named_after_its_file():
    """Run directories are named after ``config.name`` (benchmarks reuse them by name)."""
    from lda_opt.learning import load_config

    root = Path(__file__).resolve().parents[2] / "configs"
    paths = sorted(root.glob("*.json"))
    recipes = (root / "README.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+\.json)` \|", recipes, flags=re.MULTILINE))
    assert listed == {p.name for p in paths}  # every recipe has its README line, and only they
    for p in paths:  # the README names each recipe's training system
        assert f"| `{p.name}` | {load_config(p).train.mode} |" in recipes, p
    experiments = sorted((root / "experiments").glob("*.json"))
    assert len(experiments) == 8  # the A/B records, one README line each
    readme = (root / "experiments" / "README.md").read_text()
    for p in paths + experiments:
        assert load_config(p).name == p.stem, p
    for p in experiments:
        assert f"`{p.name}`" in readme, p
    from lda_opt.learning.train import extends

    # the experiments that append stages to a run: K = 9, 11 onto the session-2 shipped config
    # (block_cs_25_s2), K = 9 at starting rates 1e-3 and 2e-4 onto the session-4 one (block_cs_25_s4)
    for longer, base in (("block_cs_25_k11", "block_cs_25_s2"), ("block_cs_25_k9", "block_cs_25_s4"),
                         ("block_cs_25_k9lo", "block_cs_25_s4")):
        a, b = (load_config(root / "experiments" / f"{n}.json") for n in (longer, base))
        assert not extends(a, b)  # the name differs: an experiment of its own, not the base run
        assert extends(a.with_overrides(name=b.name), b)  # otherwise only appended stages


def test_block_cs_25_variants_differ_from_the_shipped_config_only_where_their_name_says():
    """The session-4/5 A/B runs of ``configs/block_cs_25.json`` (8,192 crops, seed 0): the
    session-4 shipped config (16,384 crops), a quarter of the crops, and another seed."""
    from lda_opt.learning import load_config

    root = Path(__file__).resolve().parents[2] / "configs"
    base = load_config(root / "block_cs_25.json").to_dict()

    def changed(name: str) -> dict:
        other = load_config(root / "experiments" / f"{name}.json").to_dict()
        out = {}
        for section in base:
            if isinstance(base[section], dict):
                out.update({f"{section}.{k}": other[section][k] for k in base[section] if other[section][k] != base[section][k]})
            elif other[section] != base[section]:
                out[section] = other[section]
        return out

    assert base["data"]["train"] == 8192 and base["seed"] == 0
    assert changed("block_cs_25_s4") == {"name": "block_cs_25_s4", "data.train": 16384}
    assert changed("block_cs_25_quarter") == {"name": "block_cs_25_quarter", "data.train": 4096}
    assert changed("block_cs_25_half_s1") == {"name": "block_cs_25_half_s1", "seed": 1}


def test_metadata_that_declares_a_huge_or_malformed_task_is_a_named_error_before_allocating():
    """A checkpoint's ``problem`` metadata is content, not code: a shape or an initializer
    larger than the library's MAX_SIZE is refused before the mask or the blocks are built
    (it used to ask for 7 TiB), and a field of the wrong kind is named (issue 15)."""
    from lda_opt._validate import MAX_SIZE

    mri = {"kind": "mri", "ratio": 0.2, "shape": [10**6, 10**6]}
    with pytest.raises(ValueError, match=rf"shape\[0\] must be an integer in \[8, {MAX_SIZE}\]"):
        task_from_metadata(mri)
    with pytest.raises(ValueError, match=r"'ratio': 'x' is not valid"):
        task_from_metadata({**mri, "shape": [16, 16], "ratio": "x"})
    with pytest.raises(ValueError, match=r"'shape': 5 is not valid"):
        task_from_metadata({**mri, "shape": 5})
    with pytest.raises(ValueError, match=r"lacks 'ratio'"):
        task_from_metadata({"kind": "mri", "shape": [16, 16]})
    cs = {"kind": "block-cs", "ratio": 0.25}
    with pytest.raises(ValueError, match=r"init_blocks must be an integer in \[272, 100000\]"):
        task_from_metadata({**cs, "initializer": {"n_blocks": 10**9}})
    with pytest.raises(ValueError, match=r"init_size must be an integer in \[33, 8192\]"):
        task_from_metadata({**cs, "initializer": {"size": 10**6}})
    with pytest.raises(ValueError, match=r"'initializer': 3 is not valid"):
        task_from_metadata({**cs, "initializer": 3})
    with pytest.raises(ValueError, match="problem metadata must be a dict"):
        task_from_metadata({"problem": [1]})
