"""U-LDA transfer learning (U-LDA Sec. 3, 5.1): the config, the (3.2a) loss, the averaged
initialisation, Step 1's per-domain gradient accumulation, Step 2 touching only the adapter,
and the adapter checkpoint's reference to its g."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lda_opt.learning import TrainConfig, load_lda_net, train
from lda_opt.learning.datasets import TrainData
from lda_opt.learning.losses import mse_loss, ulda_loss
from lda_opt.learning.transfer import (
    AdapterBank,
    DomainConfig,
    TransferConfig,
    _initial_g,
    _net,
    average_parameters,
    domain_images,
    domain_measurement,
    load_transfer_net,
    step1_gradients,
)
from lda_opt.metrics import ssim
from lda_opt.nets import Adapter, FeatureCNN, load_checkpoint, save_checkpoint, xavier_init_
from lda_opt.nets.checkpoint import file_sha256, load_composed

BASE = {"name": "ulda", "seed": 0, "task": {"kind": "mri", "shape": [20, 20], "mask": "cartesian", "ratio": 0.2},
        "net": {"algorithm": "elda", "width": 4, "depth": 2},
        "train": {"mode": "transfer_step1", "phases": 2, "first_phases": 2, "epochs_first": 2, "epochs_stage": 0,
                  "batch_size": 2, "lr": 1e-2, "dtype": "float64"},
        "transfer": {"sources": [{"name": "r10", "ratio": 0.1, "train": 2, "val": 2},
                                 {"name": "nat30", "images": "natural", "ratio": 0.3, "train": 2, "val": 2}],
                     "init_epochs": 1}}


def _config(**over) -> TrainConfig:
    d = json.loads(json.dumps(BASE))
    for sec, vals in over.items():
        if isinstance(vals, dict):
            d[sec].update(vals)
        else:
            d[sec] = vals
    return TrainConfig.from_dict(d)


def _step2_config(g_path, **transfer) -> TrainConfig:
    t = {"g": str(g_path), "target": {"name": "faces15", "images": "faces", "ratio": 0.15, "train": 3, "val": 2},
         **transfer}
    return _config(name="ulda2", train={"mode": "transfer_step2"}, transfer=t)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ulda")
    train(_config(), root / "step1", quiet=True)
    train(_step2_config(root / "step1" / "g.safetensors"), root / "step2", quiet=True)
    return root


# -- config ---------------------------------------------------------------------------------
def test_defaults_are_the_cross_ratio_experiment_and_round_trip():
    cfg = TrainConfig.from_dict({"task": {"kind": "mri"}, "train": {"mode": "transfer_step1"}})
    tr = cfg.transfer
    assert isinstance(tr, TransferConfig)
    assert [(d.mask, d.ratio) for d in tr.sources] == [("cartesian", 0.1), ("cartesian", 0.2), ("cartesian", 0.3)]
    assert (tr.target.ratio, tr.alpha, tr.init, tr.step2) == (0.15, 0.01, "average", "adapter")
    d = cfg.to_dict()
    assert TrainConfig.from_dict(d).to_dict() == d
    assert isinstance(TrainConfig.from_dict(d).transfer.sources[0], DomainConfig)


@pytest.mark.parametrize(("transfer", "match"), [
    ({"alpha": -0.1}, "transfer.alpha"),
    ({"init": "mean"}, "transfer.init"),
    ({"init_epochs": 0}, "transfer.init_epochs"),
    ({"step2": "all"}, "transfer.step2"),
    ({"g": "g.pt"}, "transfer.g"),
    ({"sources": []}, "transfer.sources"),
    ({"sources": [{"name": "a", "ratio": 1.5}]}, r"transfer.sources\[0\].ratio"),
    ({"sources": [{"name": "a"}, {"name": "b", "train": 3}]}, "same train count"),
    ({"sources": [{"name": "a"}, {"name": "a"}]}, "distinct names"),
    ({"target": {"images": "cifar"}}, "transfer.target.images"),
    ({"target": {"images": "faces", "train": 61}}, "transfer.target.train"),
    ({"target": {"ratios": 0.1}}, r"unknown key\(s\) \['ratios'\]"),
])
def test_bad_transfer_values_name_the_field(transfer, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({"task": {"kind": "mri"}, "train": {"mode": "transfer_step1"}, "transfer": transfer})


def test_transfer_modes_refuse_other_loss_weights_and_tasks(tmp_path):
    with pytest.raises(ValueError, match="transfer.alpha"):
        train(_config(train={"ssim_weight": 0.1}), tmp_path, quiet=True)
    with pytest.raises(ValueError, match="task.kind = 'mri'"):
        train(_config(task={"kind": "block-cs"}), tmp_path, quiet=True)
    with pytest.raises(ValueError, match="transfer.g"):
        train(_config(train={"mode": "transfer_step2"}), tmp_path, quiet=True)
    assert not (tmp_path / "state.safetensors").exists()


# -- the loss (3.2a) and its SSIM term --------------------------------------------------------
def test_ulda_loss_is_eq_3_2a_plus_alpha():
    torch.manual_seed(0)
    t = torch.rand(3, 1, 12, 12, dtype=torch.float64).to(torch.complex128)
    x = t + 0.1 * torch.randn_like(t)
    alpha = 0.3
    explicit = ((x - t).abs().square().flatten(1).sum(1) - alpha * ssim(x, t)).mean()
    torch.testing.assert_close(ulda_loss(x, t, alpha), explicit + alpha, rtol=0, atol=1e-14)
    torch.testing.assert_close(ulda_loss(x, t, 0.0), 2 * mse_loss(x, t), rtol=0, atol=0)
    with pytest.raises(ValueError, match="alpha"):
        ulda_loss(x, t, -1.0)


@pytest.mark.parametrize("complex_", [False, True])
def test_ulda_loss_gradient_equals_finite_differences(complex_):
    torch.manual_seed(1)
    t = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    if complex_:
        t = t * torch.exp(1j * torch.rand_like(t))
    x = (t + 0.1 * torch.randn_like(t)).requires_grad_(True)
    # the SSIM term alone (alpha large against the squared error) and the full loss
    assert torch.autograd.gradcheck(lambda z: ssim(z, t), (x,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(lambda z: ulda_loss(z, t, alpha=5.0), (x,), eps=1e-6, atol=1e-7)


# -- the averaged initialisation (Sec. 5.1) -------------------------------------------------
def test_average_parameters_is_the_exact_mean():
    gs = []
    for seed in range(3):
        g = FeatureCNN(1, 4, 2, complex=True)
        xavier_init_(g, generator=torch.Generator().manual_seed(seed))
        gs.append(g)
    target = average_parameters(FeatureCNN(1, 4, 2, complex=True), gs)
    for k, v in target.state_dict().items():
        mean = (sum(g.state_dict()[k].double() for g in gs) / 3).float()
        assert torch.equal(v, mean), k
        assert not torch.equal(v, gs[0].state_dict()[k])
    with pytest.raises(ValueError, match="same architecture"):
        average_parameters(FeatureCNN(1, 4, 3, complex=True), gs)


def test_step1_starts_from_the_mean_of_the_trained_g_i(tmp_path):
    cfg = _config()
    data = [TrainData(domain_measurement(cfg, d, "train"), domain_measurement(cfg, d, "val"))
            for d in cfg.transfer.sources]
    g, info = _initial_g(cfg, tmp_path, False, True, data)
    assert info["init"] == "average" and set(info["init_runs"]) == {"r10", "nat30"}
    g_i = [load_checkpoint(tmp_path / f"init_{n}" / "model.safetensors").module for n in ("r10", "nat30")]
    assert not torch.equal(g_i[0].convs[0].real.weight, g_i[1].convs[0].real.weight)
    for k, v in g.state_dict().items():
        assert torch.equal(v, (g_i[0].state_dict()[k] + g_i[1].state_dict()[k]) / 2), k


# -- Step 1: one batch per domain, gradients accumulated ------------------------------------------
def test_accumulated_domain_gradients_equal_the_gradient_of_the_summed_objective():
    cfg = _config()
    torch.manual_seed(0)
    g = FeatureCNN(1, 4, 2, complex=True).double()
    bank = AdapterBank(g, [Adapter(4, 4, complex=True).double() for _ in range(2)])
    net = _net(cfg, bank, 2)
    batches = [domain_measurement(cfg, d, "train") for d in cfg.transfer.sources]
    loss, finite = step1_gradients(net, batches, 0.01, bank.select)
    assert finite
    acc = {n: p.grad.clone() for n, p in net.named_parameters()}
    total = 0
    for i, b in enumerate(batches):
        bank.select(i)
        x, _ = net(net.problem(b.fidelity()), b.x0)
        total = total + ulda_loss(x, b.truth, 0.01) / 2
    assert float(total.detach()) == pytest.approx(loss, rel=1e-12)
    grads = torch.autograd.grad(total, list(net.parameters()))
    for (n, _), gr in zip(net.named_parameters(), grads):
        torch.testing.assert_close(acc[n], gr, rtol=1e-10, atol=1e-13, msg=n)
    # adapter i is driven by domain i alone
    net.zero_grad()
    bank.select(1)
    x, _ = net(net.problem(batches[1].fidelity()), batches[1].x0)
    (ulda_loss(x, batches[1].truth, 0.01) / 2).backward()
    for n, p in bank.adapters[1].named_parameters():
        torch.testing.assert_close(acc[f"features.adapters.1.{n}"], p.grad, rtol=1e-10, atol=1e-13)


def test_a_batch_of_the_bank_equals_each_sample_alone():
    cfg = _config()
    torch.manual_seed(3)
    bank = AdapterBank(FeatureCNN(1, 4, 2, complex=True).double(), [Adapter(4, 4, complex=True).double()] * 2)
    net = _net(cfg, bank, 2)
    m = domain_measurement(cfg, cfg.transfer.sources[0], "val", 3)
    bank.select(1)
    xb, _ = net.reconstruct(net.problem(m.fidelity()), m.x0)
    for i in range(3):
        s = m.select(torch.tensor([i]))
        xs, _ = net.reconstruct(net.problem(s.fidelity()), s.x0)
        torch.testing.assert_close(xb[i:i + 1], xs, rtol=0, atol=1e-12)


# -- Step 2: only the new adapter moves ---------------------------------------------------------
def test_step2_leaves_g_and_the_phases_bit_identical_and_adam_holds_only_the_adapter(runs):
    g1 = load_checkpoint(runs / "step1" / "g.safetensors")
    model = load_checkpoint(runs / "step2" / "model.safetensors")
    for k, v in g1.module.state_dict().items():
        assert torch.equal(model.module.g.state_dict()[k], v), k
    assert model.metadata["raw"] == g1.metadata["raw"]  # alpha_k, gamma_k, eps0 frozen too
    from safetensors.torch import load_file

    state = load_file(str(runs / "step2" / "state.safetensors"))
    h = model.module.h
    moments = sorted(k for k in state if k.startswith("opt.") and k.endswith(".exp_avg"))
    assert [tuple(state[k].shape) for k in moments] == [tuple(p.shape) for p in h.parameters()]
    log = json.loads((runs / "step2" / "log.json").read_text())
    assert log["budget"]["trainable_parameters"] == sum(p.numel() for p in h.parameters()) == 288
    assert log["budget"]["adam_steps"] == 2 * 2  # 2 epochs of ceil(3 / 2) steps
    fresh = Adapter(4, 4, complex=True)  # the adapter did move away from its seeded start
    xavier_init_(fresh, generator=torch.Generator().manual_seed(0 * 1_000_003 + 17 + 1_000))
    assert not torch.equal(fresh.conv.real.weight.double(), h.conv.real.weight)


def test_finetune_baseline_moves_g(tmp_path, runs):
    train(_step2_config(runs / "step1" / "g.safetensors", step2="finetune"), tmp_path, quiet=True)
    g1 = load_checkpoint(runs / "step1" / "g.safetensors").module
    g2 = load_checkpoint(tmp_path / "model.safetensors").module.g
    assert not torch.equal(g1.convs[0].real.weight, g2.convs[0].real.weight)
    assert not (tmp_path / "adapter.safetensors").exists()  # no frozen g to reference


# -- the adapter checkpoint and its g -------------------------------------------------------------
def test_adapter_checkpoint_references_g_and_refuses_another(runs, tmp_path):
    meta = json.loads((runs / "step2" / "adapter.json").read_text())["metadata"]
    g_file = runs / "step1" / "g.safetensors"
    assert meta["g"] == {"path": str(g_file.resolve()), "sha256": file_sha256(g_file)}
    net = load_transfer_net(runs / "step2" / "adapter.safetensors")
    ref = load_lda_net(runs / "step2" / "model.safetensors")
    m = domain_measurement(_step2_config(g_file), _step2_config(g_file).transfer.target, "val")
    x1, _ = net.reconstruct(net.problem(m.fidelity()), m.x0)
    x2, _ = ref.reconstruct(ref.problem(m.fidelity()), m.x0)
    assert torch.equal(x1, x2)
    # another g (same architecture, other weights) is refused
    other = load_checkpoint(g_file)
    with torch.no_grad():
        other.module.convs[0].real.weight.add_(1e-3)
    save_checkpoint(other.module, tmp_path / "g.safetensors", **other.metadata)
    with pytest.raises(ValueError, match="another g"):
        load_transfer_net(runs / "step2" / "adapter.safetensors", tmp_path / "g.safetensors")
    # the same g re-saved (identical tensors, a new save) is another file: refused as well
    shutil.copy(runs / "step2" / "adapter.safetensors", tmp_path / "a.safetensors")
    shutil.copy(runs / "step2" / "adapter.json", tmp_path / "a.json")
    save_checkpoint(load_checkpoint(g_file).module, tmp_path / "g.safetensors", **other.metadata)
    with pytest.raises(ValueError, match="sha256"):
        load_composed(tmp_path / "a.safetensors", tmp_path / "g.safetensors")
    # a byte-identical copy is the same g
    shutil.copy(g_file, tmp_path / "g.safetensors")
    shutil.copy(runs / "step1" / "g.json", tmp_path / "g.json")
    assert torch.equal(load_composed(tmp_path / "a.safetensors", tmp_path / "g.safetensors").module.g.convs[0]
                       .real.weight, load_checkpoint(g_file).module.convs[0].real.weight)


def test_step1_adapters_reference_the_runs_g(runs):
    for name in ("r10", "nat30"):
        ck = load_composed(runs / "step1" / f"adapter_{name}.safetensors")
        assert ck.metadata["adapter"]["g"]["path"] == "g.safetensors"
        assert ck.metadata["adapter"]["domain"]["name"] == name


# -- exact resume ---------------------------------------------------------------------------------
def test_step1_resumed_after_an_interruption_equals_the_uninterrupted_run(runs, tmp_path):
    train(_config(), tmp_path, quiet=True, stop_after=1)
    log = train(_config(), tmp_path, quiet=True, resume=True)
    assert log["complete"] and len(log["epochs"]) == 2
    a = load_checkpoint(runs / "step1" / "g.safetensors").module.state_dict()
    b = load_checkpoint(tmp_path / "g.safetensors").module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="config differs"):
        train(_config(transfer={**BASE["transfer"], "alpha": 0.1}), tmp_path, quiet=True, resume=True)


# -- data -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["phantoms", "natural", "faces"])
def test_domain_splits_are_disjoint(family):
    dom = DomainConfig(name="d", images=family, train=10, val=5)
    imgs = {s: domain_images(dom, s, 5, (20, 20), torch.complex128) for s in ("train", "val", "test")}
    for s in imgs.values():
        assert s.shape == (5, 1, 20, 20) and s.dtype == torch.complex128
    flat = {s: v.flatten(1) for s, v in imgs.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert torch.cdist(flat[a].abs(), flat[b].abs()).min() > 1e-6, (a, b)


def test_lda_opt_train_runs_both_steps(tmp_path):
    from lda_opt.cli import main

    (tmp_path / "s1.json").write_text(json.dumps(_config(train={"epochs_first": 1}).to_dict()))
    assert main(["train", "--config", str(tmp_path / "s1.json"), "--out", str(tmp_path / "s1"), "--quiet"]) == 0
    s2 = _step2_config(tmp_path / "s1" / "g.safetensors", init_epochs=1)
    (tmp_path / "s2.json").write_text(json.dumps(s2.with_overrides(train={"epochs_first": 1}).to_dict()))
    assert main(["train", "--config", str(tmp_path / "s2.json"), "--out", str(tmp_path / "s2"), "--quiet"]) == 0
    log = json.loads((tmp_path / "s2" / "log.json").read_text())
    assert log["mode"] == "transfer_step2" and log["step2"] == "adapter" and log["complete"]
    assert log["g"]["sha256"] == file_sha256(tmp_path / "s1" / "g.safetensors")


def test_shipped_transfer_configs_load_and_step2_points_at_its_step1():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.glob("transfer_*.json"))
    assert len(files) == 5
    cfgs = {f.stem: TrainConfig.from_dict(json.loads(f.read_text())) for f in files}
    for name, cfg in cfgs.items():
        assert cfg.name == name and cfg.net.algorithm == "elda" and cfg.transfer.alpha == 0.01
        if cfg.train.mode == "transfer_step2":
            step1 = cfg.transfer.g.split("/")[-2]
            assert cfg.transfer.g == f"build/runs/{step1}/g.safetensors"
            assert cfgs[step1].train.mode == "transfer_step1" and cfgs[step1].train.phases == cfg.train.phases


def test_a_mask_impossible_on_the_image_shape_is_refused_before_any_work(tmp_path):
    bad = {**BASE["transfer"], "target": {"name": "t", "ratio": 0.12}}  # 2.4 lines of 20
    with pytest.raises(ValueError, match=r"transfer.target on task.shape = \[20, 20\]"):
        train(_config(train={"mode": "transfer_step2"}, transfer=bad), tmp_path, quiet=True)
    assert not any(tmp_path.iterdir())
