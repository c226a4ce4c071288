"""Meta-learning (meta-LDA Sec. 3.3, Algorithm 2): the penalty objective (18) and its double-backward
gradient, the task weights kappa = sigmoid(omega_i), the stopping rules, the conventional special
case (bit-identical to train.mode = "standard"), checkpoints, resume and the unseen-task adaptation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lda_opt.learning import LDANet, TrainConfig
from lda_opt.learning.meta import (
    MetaConfig,
    MetaModel,
    MetaTask,
    adapt_omega,
    initial_omega,
    inner_loop,
    load_meta_net,
    outer_iterations,
    outer_schedule,
    penalty_objective,
    task_data,
)
from lda_opt.learning.train import train
from lda_opt.problem import Problem

STD = {"name": "s", "seed": 0, "task": {"kind": "mri", "ratio": 0.3, "mask": "radial", "shape": [12, 12]},
       "data": {"train": 6, "val": 2},
       "net": {"algorithm": "meta-lda", "width": 4, "depth": 2, "alpha": 0.05, "tau": 0.05},
       "train": {"phases": 2, "first_phases": 1, "phase_step": 1, "epochs_first": 2, "epochs_stage": 1,
                 "batch_size": 4, "lr": 1e-3}}
#: three outer iterations: delta = 1e-30, 5e-31, 2.5e-31 > 2e-31 (never reached by a gradient norm)
TINY_DELTA = {"delta0": 1e-30, "nu_delta": 0.5, "delta_tol": 2e-31}


def _meta(meta: dict, **train) -> dict:
    d = json.loads(json.dumps(STD))
    d["train"].update(mode="meta", **train)
    d["meta"] = meta
    return d


# ---------------------------------------------------------------------------------------
# the penalty objective (18) and its gradient
# ---------------------------------------------------------------------------------------
def _tiny_problem(lam: float, smooth_delta: float = 100.0):
    """Two tasks on 8x8, K = 2 meta-LDA phases, float64: the model, the cross-task val/train
    batches and a function evaluating L~ (and recording the branch / line-search counts)."""
    cfg = TrainConfig.from_dict(_meta({"tasks": [{"mask": "radial", "ratio": 0.3}, {"mask": "cartesian", "ratio": 0.5}],
                                        "val_per_task": 2, "lam0": lam, **TINY_DELTA},
                                       dtype="float64", epochs_first=3, first_phases=2, phases=2)
                                 | {"task": {"kind": "mri", "ratio": 0.3, "shape": [8, 8]},
                                    "data": {"train": 4, "val": 1}})
    data = task_data(cfg)
    torch.manual_seed(0)
    # delta = 100: every pre-activation lies on the quadratic piece of the smoothed ReLU (20);
    # phi'' jumps at +-delta (phi is only C^1), so P = 1/2 ||grad_theta L_tr||^2, which holds
    # phi'', jumps where a pre-activation crosses +-delta and has no derivative there
    # (theory/meta_learning.md); the finite differences need a point away from the kinks
    net = LDANet(2, 3, 2, "meta-lda", complex=True, alpha=0.05, tau=0.05, delta=smooth_delta).double()
    model = MetaModel(net, 2, 0.0)
    with torch.no_grad():
        model.omega.copy_(torch.tensor([0.3, -0.4], dtype=torch.float64))
    theta = list(net.parameters())

    def ltilde(records=None):
        cb = None if records is None else (lambda k, st, rec: records.append(
            (rec["branch"].clone(), rec["linesearch"].clone(), rec["eps"].clone())))
        lv = model.loss(data.val, data.val_ids, callback=cb)
        lt = model.loss(data.tr, data.tr_ids, callback=cb)
        return penalty_objective(lv, lt, theta, lam)

    return model, theta, data, ltilde


@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_penalty_gradient_equals_central_differences_of_18(lam):
    model, theta, _, ltilde = _tiny_problem(lam)
    total, pen = ltilde()
    assert (float(pen.detach()) > 0) == (lam > 0)
    params = theta + [model.omega]
    grads = torch.autograd.grad(total, params)
    gen = torch.Generator().manual_seed(1)
    h = 1e-5
    for which in ("theta", "omega"):
        sel = range(len(theta)) if which == "theta" else [len(theta)]
        v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) if i in sel else torch.zeros_like(p)
             for i, p in enumerate(params)]
        exact = sum(float((g * d).sum()) for g, d in zip(grads, v))
        vals, branches = [], []
        for sign in (1, -1):
            with torch.no_grad():
                for p, d in zip(params, v):
                    p.add_(sign * h * d)
            rec = []
            vals.append(float(ltilde(rec)[0].detach()))
            branches.append(rec)
            with torch.no_grad():
                for p, d in zip(params, v):
                    p.sub_(sign * h * d)
        # the same branch and line-search count for every sample and phase at theta +- h v,
        # and the same eps reductions (eps moves with the learned eps0 by O(h), a reduction by 0.9)
        for (b1, l1, e1), (b2, l2, e2) in zip(*branches):
            assert torch.equal(b1, b2) and torch.equal(l1, l2) and torch.allclose(e1, e2, rtol=1e-3)
        fd = (vals[0] - vals[1]) / (2 * h)
        assert abs(fd - exact) <= 1e-6 * max(1.0, abs(exact)), (which, fd, exact)


def test_penalty_gradient_is_grad_L_val_plus_lam_hessian_vector_product():
    """grad_theta L~ = grad_theta L_val + lam H L_tr g with g = grad_theta L_tr; H g against
    central differences of grad_theta L_tr along g (float64)."""
    lam = 0.7
    model, theta, data, ltilde = _tiny_problem(lam)
    total, _ = ltilde()
    g_total = torch.autograd.grad(total, theta)
    g_val = torch.autograd.grad(model.loss(data.val, data.val_ids), theta)
    g_tr = [t.detach() for t in torch.autograd.grad(model.loss(data.tr, data.tr_ids), theta)]
    h = 1e-6
    diffs = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(theta, g_tr):
                p.add_(sign * h * d)
        diffs.append(torch.autograd.grad(model.loss(data.tr, data.tr_ids), theta))
        with torch.no_grad():
            for p, d in zip(theta, g_tr):
                p.sub_(sign * h * d)
    hvp_fd = [(a - b) / (2 * h) for a, b in zip(*diffs)]
    scale = max(float(x.abs().max()) for x in hvp_fd)
    for gt, gv, hv in zip(g_total, g_val, hvp_fd):
        assert torch.allclose((gt - gv) / lam, hv, rtol=1e-5, atol=1e-6 * scale)


def test_omega_gradient_of_a_task_absent_from_the_batch_is_exactly_zero():
    model, theta, data, _ = _tiny_problem(0.7)
    keep_v, keep_t = data.val_ids == 0, data.tr_ids == 0
    lv = model.loss(data.val.select(torch.nonzero(keep_v)[:, 0]), data.val_ids[keep_v])
    lt = model.loss(data.tr.select(torch.nonzero(keep_t)[:, 0]), data.tr_ids[keep_t])
    total, _ = penalty_objective(lv, lt, theta, 0.7)
    (g,) = torch.autograd.grad(total, [model.omega])
    assert g[1].item() == 0.0
    assert g[0].item() != 0.0


def test_the_solver_receives_kappa_sigmoid_omega_of_each_samples_task(monkeypatch):
    model, _, data, _ = _tiny_problem(0.0)
    seen = []
    orig = Problem.__init__

    def spy(self, fidelity, features, weight):
        orig(self, fidelity, features, weight)
        seen.append(self.weight)

    monkeypatch.setattr(Problem, "__init__", spy)
    with torch.no_grad():
        batch = model.loss(data.val, data.val_ids)
    (w,) = seen
    assert torch.equal(w, torch.sigmoid(model.omega.detach())[data.val_ids])
    # per-sample semantics: each sample alone with the float kappa of its task gives the same loss
    alone = []
    for j in range(data.val.y.shape[0]):
        m = data.val.select(torch.tensor([j]))
        k = float(torch.sigmoid(model.omega.detach()[data.val_ids[j]]))
        x, _ = model.net.reconstruct(model.net.problem(m.fidelity(), k), m.x0)
        alone.append(0.5 * float(torch.view_as_real(x - m.truth).square().sum()))
    assert abs(float(batch) - sum(alone) / len(alone)) <= 1e-12 * max(1.0, float(batch))


# ---------------------------------------------------------------------------------------
# Algorithm 2's stopping rules
# ---------------------------------------------------------------------------------------
def test_the_papers_schedule_has_107_outer_iterations():
    sched = outer_schedule(1e-3, 0.95, 4.35e-6, 1e-5, 1.001)
    assert len(sched) == 107 == outer_iterations(MetaConfig())
    assert sched[0] == (1e-3, 1e-5)
    delta, lam = sched[-1]
    assert delta > 4.35e-6 >= 0.95 * delta
    assert lam == pytest.approx(1e-5 * 1.001 ** 106, rel=1e-12)


def _fake(norms):
    """grad_fn returning the squared theta-norms of ``norms`` in turn (omega norm 0)."""
    calls = iter(norms)

    def grad_fn():
        n = next(calls)
        return torch.tensor(1.0), torch.tensor(0.0), [torch.tensor([n ** 0.5])], []

    return grad_fn


def test_inner_loop_stops_at_the_first_test_at_or_below_delta():
    steps = []
    rec = inner_loop(_fake([5.0, 4.0, 3.0, 2.0, 1.0, 0.5]), steps.append, None, delta=2.0, theta_steps=2,
                     max_inner=100)
    # rounds: test 5 > 2 -> steps (with 5, 4), test 3 > 2 -> steps (3, 2), test 1 <= 2: stop
    assert [float(g[0]) ** 2 for g in steps] == pytest.approx([5.0, 4.0, 3.0, 2.0])
    assert (rec.rounds, rec.theta_steps, rec.omega_steps, rec.evaluations) == (2, 4, 0, 5)
    assert rec.converged and rec.first == pytest.approx((5.0, 0.0)) and rec.last == pytest.approx((1.0, 0.0))


def test_inner_loop_takes_no_step_when_the_first_test_passes_and_respects_the_cap():
    steps = []
    rec = inner_loop(_fake([0.1]), steps.append, None, delta=0.5, theta_steps=3, max_inner=4)
    assert (rec.rounds, len(steps), rec.evaluations, rec.converged) == (0, 0, 1, True)
    om = []
    rec = inner_loop(_fake([9.0] * 20), steps.append, om.append, delta=0.5, theta_steps=1, max_inner=3)
    # per round: a theta-step, an omega gradient + step, a test (none after the last round)
    assert (rec.rounds, rec.theta_steps, rec.omega_steps, rec.evaluations, rec.converged) == (3, 3, 3, 1 + 3 + 2, False)
    rec = inner_loop(_fake([float("nan")]), steps.append, None, delta=0.5, theta_steps=1, max_inner=3)
    assert not rec.finite and rec.rounds == 0


# ---------------------------------------------------------------------------------------
# the training run
# ---------------------------------------------------------------------------------------
def _states(path):
    from safetensors.torch import load_file

    return load_file(str(path / "state.safetensors"))


def test_conventional_training_is_the_one_task_lam_zero_case_bit_for_bit(tmp_path):
    a = train(TrainConfig.from_dict(STD), tmp_path / "a", quiet=True)
    meta = {"tasks": [{"mask": "radial", "ratio": 0.3}], "omega": "fixed", "lam0": 0.0, "val_per_task": 6,
            "max_inner": 1, **TINY_DELTA}
    b = train(TrainConfig.from_dict(_meta(meta)), tmp_path / "b", quiet=True)
    sa, sb = _states(tmp_path / "a"), _states(tmp_path / "b")
    assert len(sa) == len(sb) == 4 + 3 + 7 * 3
    for k, v in sa.items():
        assert torch.equal(v, sb["net.net." + k[4:] if k.startswith("net.") else k]), k
    assert [r["train_loss"] for r in a["epochs"]] == [r["train_loss"] for r in b["epochs"]]
    assert [r["val_psnr"] for r in a["epochs"]] == [r["val_psnr"] for r in b["epochs"]]
    assert b["budget"]["theta_steps"] == a["budget"]["steps"] == 6


def _multi():
    return _meta({"tasks": [{"mask": "radial", "ratio": 0.3}, {"mask": "cartesian", "ratio": 0.5}],
                  "val_per_task": 3, "lam0": 0.5, "nu_lam": 2.0, "delta0": 1e-30, "nu_delta": 0.5,
                  "delta_tol": 2e-31, "max_inner": 2, "omega_lr": 0.05}, batch_size=2)


def test_meta_run_learns_omega_saves_it_in_the_checkpoint_and_resumes_exactly(tmp_path):
    cfg = TrainConfig.from_dict(_multi())
    full = train(cfg, tmp_path / "full", quiet=True)
    train(cfg, tmp_path / "part", quiet=True, stop_after=1)
    resumed = train(cfg, tmp_path / "part", quiet=True, resume=True)
    sf, sr = _states(tmp_path / "full"), _states(tmp_path / "part")
    assert sf.keys() == sr.keys()
    assert all(torch.equal(sf[k], sr[k]) for k in sf)
    strip = lambda log: [{k: v for k, v in r.items() if k != "seconds"} for r in log["epochs"]]
    assert strip(resumed) == strip(full)
    ep = full["epochs"]
    assert [r["delta"] for r in ep] == [1e-30, 5e-31, 2.5e-31]
    assert [r["lam"] for r in ep] == [0.5, 1.0, 2.0]
    assert all(r["penalty"] > 0 and r["grad_theta_sq"] > 0 and r["grad_omega_sq"] > 0 for r in ep)
    # 2 batches per epoch, 2 rounds each (the cap): 1 theta- and 1 omega-step per round; per batch
    # the gradient evaluations are: the test, the omega-step's, the test, the omega-step's (none after)
    assert [(r["theta_steps"], r["omega_steps"], r["evaluations"]) for r in ep] == [(4, 4, 8)] * 3
    omega = sf["net.omega"]
    assert not torch.equal(omega, torch.zeros(2, dtype=omega.dtype))
    net, info = load_meta_net(tmp_path / "full" / "model.safetensors")
    assert net.algorithm == "meta-lda" and net.phases == 2
    assert info["omega"] == [float(v) for v in omega.to(torch.float64)]
    assert info["kappa"] == pytest.approx(torch.sigmoid(omega.double()).tolist(), rel=1e-6)
    assert [t["name"] for t in info["tasks"]] == ["radial_30", "cartesian_50"]
    assert [t["mask"] for t in info["tasks"]] == ["radial", "cartesian"]
    assert ep[-1]["kappa"] == info["kappa"]
    assert (tmp_path / "full" / "meta.png").stat().st_size > 1000


def test_plan_must_match_the_outer_iterations_and_sections_are_validated(tmp_path):
    d = _meta({"tasks": [{"mask": "radial", "ratio": 0.3}], "delta0": 1e-3, "nu_delta": 0.5, "delta_tol": 1e-4})
    with pytest.raises(ValueError, match="runs 4 outer iterations"):
        train(TrainConfig.from_dict(d), tmp_path, quiet=True)
    for bad, name in (({"nu_delta": 1.5}, "meta.nu_delta"), ({"lam0": -1.0}, "meta.lam0"),
                      ({"nu_lam": 0.5}, "meta.nu_lam"), ({"omega": "each"}, "meta.omega"),
                      ({"theta_steps": 0}, "meta.theta_steps"), ({"delta0": 1e-7}, "meta.delta0"),
                      ({"tasks": []}, "meta.tasks"), ({"tasks": [{"mask": "spiral", "ratio": 0.2}]}, "meta.tasks"),
                      ({"tasks": [{"mask": "radial", "ratio": 0.2, "seed": 1}]}, "meta.tasks"),
                      ({"tasks": [{"mask": "radial", "ratio": 0.2}] * 2}, "meta.tasks"),
                      ({"gamma": 1.0}, "'meta'")):
        with pytest.raises(ValueError, match=name):
            TrainConfig.from_dict(_meta(bad))
    with pytest.raises(ValueError, match="meta.lam0 > 0 needs training data"):
        task_data(TrainConfig.from_dict(_meta({"val_per_task": 6, "lam0": 1e-5})))
    cfg = TrainConfig.from_dict(_multi())
    assert TrainConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    assert cfg.meta.tasks[1] == MetaTask(mask="cartesian", ratio=0.5)


# ---------------------------------------------------------------------------------------
# unseen tasks (Sec. 5.4)
# ---------------------------------------------------------------------------------------
def test_initial_omega_interpolates_the_same_pattern_in_the_ratio():
    tasks = [MetaTask(mask="radial", ratio=r) for r in (0.1, 0.2, 0.3)] + [MetaTask(mask="cartesian", ratio=0.2)]
    om = [2.0, 1.0, -1.0, 5.0]
    assert initial_omega(tasks, om, MetaTask(mask="radial", ratio=0.25)) == pytest.approx(0.0)
    assert initial_omega(tasks, om, MetaTask(mask="radial", ratio=0.15)) == pytest.approx(1.5)
    assert initial_omega(tasks, om, MetaTask(mask="radial", ratio=0.4)) == -1.0
    assert initial_omega(tasks, om, MetaTask(mask="cartesian", ratio=0.1)) == 5.0
    assert initial_omega(tasks, om, MetaTask(mask="variable_density", ratio=0.2)) == pytest.approx(7.0 / 4)


def test_adaptation_fits_omega_only_and_leaves_theta_bit_identical():
    model, _, data, _ = _tiny_problem(0.0)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    m = data.val
    def loss_at(om):
        with torch.no_grad():
            x, _ = model.net(model.net.problem(m.fidelity(), float(torch.sigmoid(torch.tensor(om)))), m.x0)
        return 0.5 * float(torch.view_as_real(x - m.truth).square().flatten(1).sum(1).mean())
    omega, losses = adapt_omega(model.net, m, 3.0, epochs=6, batch_size=2, lr=0.3, seed=0)
    assert all(torch.equal(v, model.net.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.net.parameters())
    assert omega != 3.0 and len(losses) == 6
    assert loss_at(omega) < loss_at(3.0)
    with pytest.raises(ValueError, match="epochs"):
        adapt_omega(model.net, m, 0.0, epochs=0)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs").glob("meta_*.json")),
                         ids=lambda p: p.name)
def test_shipped_meta_configs_load_and_their_plan_fits_the_schedule(path):
    from lda_opt.learning import load_config

    cfg = load_config(path)
    assert cfg.train.mode == "meta" and cfg.net.algorithm == "meta-lda"
    assert sum(e for _, e in cfg.train.stages()) == outer_iterations(cfg.meta)
    n_val = cfg.meta.n_val(cfg.data.train)
    assert 0 < n_val < cfg.data.train


def test_lda_opt_solve_uses_the_kappa_of_the_named_task_and_refuses_an_untrained_one(tmp_path, capsys):
    from lda_opt.cli import main

    cfg = TrainConfig.from_dict(_multi())
    train(cfg, tmp_path / "run", quiet=True)
    path = tmp_path / "run" / "model.safetensors"
    _, info = load_meta_net(path)
    common = ["solve", "--quiet", "--problem", "mri", "--image", "shepp-logan", "--checkpoint", str(path),
              "--size", "12", "--max-iter", "3"]
    for i, (mask, ratio) in enumerate((("radial", "0.3"), ("cartesian", "0.5"))):
        out = tmp_path / f"solve_{mask}"
        assert main([*common, "--mask", mask, "--ratio", ratio, "--out", str(out)]) == 0
        result = json.loads((out / "result.json").read_text())
        assert result["problem"]["weight"] == info["kappa"][i]  # sigmoid(omega_i) of that task, eq. (12)
    assert main([*common, "--mask", "radial", "--ratio", "0.15", "--out", str(tmp_path / "unseen")]) == 2
    assert "names none of them" in capsys.readouterr().err
    assert not (tmp_path / "unseen").exists()
