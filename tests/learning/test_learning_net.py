"""LDA-Net: parameter counts of the paper, gradients through the solver's own step, growth."""

from __future__ import annotations

import math

import pytest
import torch

import lda_opt as lo
from lda_opt.algorithms.base import Solver
from lda_opt.learning import LDANet
from lda_opt.nets import FeatureCNN


# LDA Table 1 (K=15) and Tables 4 / 5 (K=7): conv weights without bias + alpha_k, tau_k + eps0
@pytest.mark.parametrize(
    "width, depth, phases, expected",
    [
        (32, 4, 15, 27_967),  # Table 1
        (8, 4, 7, 1_815),  # Table 4, d = 8
        (16, 4, 7, 7_071),  # Table 4, d = 16
        (48, 4, 7, 62_655),  # Table 4, d = 48
        (32, 2, 7, 9_519),  # Table 5, 2 convolutions
        (32, 6, 7, 46_383),  # Table 5, 6 convolutions
    ],
)
def test_parameter_counts_match_the_paper(width, depth, phases, expected):
    net = LDANet(phases, width, depth)
    assert net.num_parameters() == expected
    # the composition: 9 (d + (l - 1) d^2) weights, 2K step sizes, eps0
    assert expected == 9 * (width + (depth - 1) * width**2) + 2 * phases + 1


def test_table4_d32_count_and_baseline_counts():
    # Table 4/5 print 27,951 for d = 32 at K = 7 (27,936 + 15)
    assert LDANet(7, 32, 4).num_parameters() == 27_951
    assert LDANet(7, 32, 4, "gd").num_parameters() == 27_936 + 7 + 1
    assert LDANet(7, 32, 4, "agd").num_parameters() == 27_936 + 2 * 7 + 1


def test_step_parameters_are_positive_and_theta_in_unit_interval():
    net = LDANet(3, 4, 2, "agd", alpha=0.7, theta=0.3, eps0=2e-3)
    with torch.no_grad():
        net.raw_alpha.fill_(-50.0)
        net.raw_theta.fill_(10.0)  # sigmoid(10) < 1 in float32
    p = net.phase_params()
    assert bool((p["alpha"] > 0).all())
    assert bool((p["theta"] < 1).all()) and bool((p["theta"] > 0).all())
    assert math.isclose(float(LDANet(2, 4, 2, eps0=2e-3).eps0.detach()), 2e-3, rel_tol=1e-6)


@pytest.mark.parametrize("kw, name", [({"phases": 0}, "phases"), ({"alpha": -1.0}, "alpha"),
                                      ({"tau": 0.0}, "tau"), ({"eps0": float("nan")}, "eps0"),
                                      ({"theta": 1.0}, "theta"), ({"gamma": 1.5}, "gamma"),
                                      ({"algorithm": "fista"}, "algorithm"), ({"weight": 0.0}, "weight")])
def test_bad_arguments_name_the_parameter(kw, name):
    args = {"phases": 2, "width": 4, "depth": 2} | kw
    with pytest.raises(ValueError, match=name):
        LDANet(**args)


def test_grow_warm_starts_new_phases_from_the_last_one():
    net = LDANet(3, 4, 2)
    with torch.no_grad():
        net.raw_alpha.copy_(torch.tensor([0.1, 0.2, 0.3]))
        net.raw_tau.copy_(torch.tensor([-0.1, -0.2, -0.3]))
    w = net.features.convs[0].weight.detach().clone()
    net.grow(5)
    assert net.phases == 5
    assert net.raw_alpha.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
    assert net.raw_tau.tolist() == pytest.approx([-0.1, -0.2, -0.3, -0.3, -0.3])
    assert torch.equal(net.features.convs[0].weight, w)
    assert net.num_parameters() == 9 * (4 + 16) + 2 * 5 + 1
    with pytest.raises(ValueError, match="phases"):
        net.grow(4)


# ---------------------------------------------------------------------------------------
# gradients: the phases are the solver's iterate with gradients enabled
# ---------------------------------------------------------------------------------------
def _tiny(algorithm, seed=0, **kw):
    torch.manual_seed(seed)
    dt = torch.float64
    net = LDANet(3, 3, 2, algorithm, **kw).to(dt)
    Phi = torch.linalg.qr(torch.randn(36, 12, dtype=dt))[0].T.contiguous()
    A = lo.operators.Matrix(Phi, (1, 6, 6))
    truth = torch.rand(2, 1, 6, 6, dtype=dt)
    problem = net.problem(lo.LeastSquares(A, A(truth)))
    return net, problem, truth


def _loss(net, problem, truth):
    x, _ = net(problem, torch.zeros_like(truth))
    return 0.5 * (x - truth).square().sum()


def _directional(net, problem, truth, param, direction, h=1e-6):
    """Central difference of the loss along ``direction`` (one pair of evaluations)."""
    with torch.no_grad():
        old = param.detach().clone()
        param.copy_(old + h * direction)
        up = _loss(net, problem, truth)
        param.copy_(old - h * direction)
        down = _loss(net, problem, truth)
        param.copy_(old)
    return float((up - down) / (2 * h))


def _branches(net, problem, truth):
    seen = []
    with torch.no_grad():
        net(problem, torch.zeros_like(truth), callback=lambda k, st, rec: seen.append(rec["branch"].tolist()))
    return seen


@pytest.mark.parametrize(
    "algorithm, kw, want_u",
    [("lda", {"alpha": 0.3, "tau": 0.05, "weight": 1.0}, True),  # u and v both taken
     ("lda", {"alpha": 0.1, "tau": 0.3, "weight": 1.0}, False),  # v only
     ("gd", {"alpha": 0.3, "weight": 1.0}, False),
     ("agd", {"alpha": 0.3, "theta": 0.4, "weight": 1.0}, False)],
)
def test_gradients_match_finite_differences(algorithm, kw, want_u):
    net, problem, truth = _tiny(algorithm, **kw)
    branches = _branches(net, problem, truth)
    took_u = any(b == 0 for row in branches for b in row)
    assert took_u == want_u
    if want_u:
        assert any(b == 1 for row in branches for b in row)
    params = [net.features.convs[0].weight, net.features.convs[1].weight, net.raw_eps0] + [
        getattr(net, f"raw_{n}") for n in ("alpha", "tau", "theta") if hasattr(net, f"raw_{n}")]
    grads = torch.autograd.grad(_loss(net, problem, truth), params, allow_unused=True)
    gen = torch.Generator().manual_seed(1)
    for p, g in zip(params, grads):
        g = torch.zeros_like(p) if g is None else g
        for _ in range(2):  # two random directions per parameter tensor
            v = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            fd = _directional(net, problem, truth, p, v)
            # float64 central difference, h = 1e-6: error O(h^2) + O(eps / h), about 1e-9
            assert math.isclose(float((g * v).sum()), fd, rel_tol=1e-5, abs_tol=1e-7), (p.shape, fd)
    # the branch actually taken decides which step size receives gradient
    if algorithm == "lda":
        g_tau = grads[-1]
        assert (g_tau is not None and bool(g_tau.abs().sum() > 0)) == want_u


def test_eps0_gradient_flows_when_some_group_is_in_the_quadratic_regime():
    net, problem, truth = _tiny("lda", alpha=0.3, tau=0.05, weight=1.0, eps0=5.0)
    (g,) = torch.autograd.grad(_loss(net, problem, truth), [net.raw_eps0])
    fd = _directional(net, problem, truth, net.raw_eps0, torch.ones_like(net.raw_eps0))
    assert abs(float(g)) > 1e-6
    assert math.isclose(float(g), float(fd), rel_tol=1e-5, abs_tol=1e-8)


def test_phases_run_the_solvers_iterate_once_each(monkeypatch):
    net, problem, truth = _tiny("lda", alpha=0.3, tau=0.05, weight=1.0)
    calls = []
    original = Solver.iterate

    def spy(self, *a, **k):
        calls.append(k.get("differentiable"))
        return original(self, *a, **k)

    monkeypatch.setattr(Solver, "iterate", spy)
    x, _ = net(problem, torch.zeros_like(truth))
    assert calls == [True, True, True]
    assert x.requires_grad
    calls.clear()
    x, _ = net.reconstruct(problem, torch.zeros_like(truth), phases=2)
    assert calls == [False, False]
    assert not x.requires_grad


def test_forward_equals_the_solver_run_with_the_same_fixed_steps():
    # one phase with alpha, tau fixed = one iteration of LDA(linesearch=False, alpha, tau)
    net, problem, truth = _tiny("lda", alpha=0.3, tau=0.05, weight=1.0, eps0=1e-2)
    x0 = torch.zeros_like(truth)
    with torch.no_grad():
        xk, st = net(problem, x0, phases=1)
    pp = net.phase_params()
    solver = lo.LDA(linesearch=False, alpha=float(pp["alpha"][0].detach()), tau=float(pp["tau"][0].detach()),
                    eps0=float(net.eps0.detach()), sigma=1e3, gamma=0.9, eps_tol=1e-30, max_iter=1)
    res = solver.run(problem, x0)
    assert torch.equal(xk, res.x)
    assert torch.equal(st.eps, res.eps)


def test_forward_rejects_foreign_feature_maps():
    net, problem, truth = _tiny("gd", alpha=0.3)
    other = lo.Problem(problem.fidelity, FeatureCNN(1, 3, 2).double(), weight=1.0)
    with pytest.raises(ValueError, match="features"):
        net(other, torch.zeros_like(truth))
    with pytest.raises(ValueError, match="phases"):
        net(problem, torch.zeros_like(truth), phases=4)


# -- the TV initialization (net.init = "tv") ------------------------------------------------
@pytest.mark.parametrize("is_complex", [False, True])
def test_tv_init_without_noise_is_isotropic_tv_where_differences_exceed_delta(is_complex):
    from lda_opt.learning.net import tv_init_

    delta = 0.01
    q = FeatureCNN(1, 8, 4, 3, is_complex, delta).double()
    tv_init_(q, noise=0.0)
    i = torch.arange(12, dtype=torch.float64)
    x = (0.1 * i[:, None] + 0.3 * i[None, :])[None, None]  # D_v x = 0.1, D_h x = 0.3 inside
    if is_complex:
        x = torch.complex(x, torch.zeros_like(x))
    with torch.no_grad():
        out = q(x)
    feats = out.real if is_complex else out
    inner = (slice(None), slice(0, 11), slice(0, 11))
    assert torch.allclose(feats[0, 0][inner[1:]], torch.full((11, 11), 0.3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(feats[0, 2][inner[1:]], torch.full((11, 11), 0.1, dtype=torch.float64), atol=1e-12)
    # the other channels stay in [0, delta] (a(0) = delta/4, a(h) < delta for h < delta)
    rest = feats[0, [1, 3, 4, 5, 6, 7]][:, :11, :11]
    assert float(rest.min()) >= 0.0 and float(rest.max()) <= delta
    if is_complex:
        assert float(out.imag.abs().max()) <= delta
    # so ||q_i|| is the TV group norm ||(D x)_i|| = sqrt(0.1^2 + 0.3^2) up to 8 delta
    tv = math.sqrt(0.1**2 + 0.3**2)
    norms = (out.abs().square() if is_complex else out.square()).sum(1).sqrt()[0, :11, :11]
    assert float((norms - tv).abs().max()) <= math.sqrt(6 + (8 if is_complex else 0)) * delta


def test_tv_init_noise_adds_a_scaled_xavier_draw_and_bad_input_raises():
    from lda_opt.learning.net import tv_init_

    a = tv_init_(FeatureCNN(1, 4, 2), noise=0.0)
    b = tv_init_(FeatureCNN(1, 4, 2), noise=0.1, generator=torch.Generator().manual_seed(3))
    c = tv_init_(FeatureCNN(1, 4, 2), noise=0.1, generator=torch.Generator().manual_seed(3))
    diff = (b.convs[0].weight - a.convs[0].weight).detach()
    assert 0 < float(diff.abs().max()) <= 0.1 * math.sqrt(6 / (9 * 1 + 9 * 4)) + 1e-7
    assert torch.equal(b.convs[1].weight, c.convs[1].weight)  # seeded
    with pytest.raises(ValueError, match="width >= 4"):
        tv_init_(FeatureCNN(1, 3, 2))
    with pytest.raises(ValueError, match="noise"):
        tv_init_(FeatureCNN(1, 4, 2), noise=-1.0)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(phases="x"), r"'phases': 'x' is not valid"),
    (lambda m: m.update(weight="a"), r"'weight': 'a' is not valid"),
    (lambda m: m.update(algorithm="adam"), r"'algorithm' must be one of"),
    (lambda m: m.pop("raw"), r"missing 'raw'"),
    (lambda m: m["raw"].update(alpha=[0.1]), r"raw\['alpha'\] must have 2 entries"),
    (lambda m: m["raw"].update(alpha=[float("nan"), 0.0]), r"'raw.alpha' contains NaN or Inf"),
    (lambda m: m["raw"].update(eps0=[1.0, 2.0]), r"'raw.eps0': \[1.0, 2.0\] is not valid"),
    (lambda m: m.update(solver={"gamma": "g"}), r"'solver.gamma': 'g' is not valid"),
])
def test_from_parts_names_the_bad_metadata_field(edit, message):
    """Checkpoint metadata is content: each malformed field is a ValueError naming it (issue 15)."""
    import copy

    net = LDANet(2, width=2, depth=1)
    meta = copy.deepcopy(net.metadata())
    edit(meta)
    with pytest.raises(ValueError, match=message):
        LDANet.from_parts(net.features, meta)
