"""The generic DEQ layer (lda_opt.learning.deq): stop rule, per-sample freezing, implicit
backward against closed forms, memory independent of the iteration count (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from lda_opt.learning.deq import DEQConfig, equilibrium, fixed_point, relative_change


def _linear(n: int = 6, norm: float = 0.8, seed: int = 0):
    """``T(x) = x W^T + z`` on (B, n) with ``||W|| = norm`` exactly (a random orthogonal
    mix of singular values ``norm * s``, ``max s = 1``)."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    s = torch.linspace(0.2, 1.0, n, dtype=torch.float64) * norm
    return U @ torch.diag(s) @ V.T


def test_stop_rule_returns_the_first_n_below_kappa():
    # x_{n+1} = 0.5 x_n + z per sample, independent reference loop of eq. (3)
    z = torch.tensor([[1.0], [3.0], [-2.0]], dtype=torch.float64)
    x0 = torch.tensor([[10.0], [0.5], [1.0]], dtype=torch.float64)
    kappa = 1e-4
    res = fixed_point(lambda x: 0.5 * x + z, x0, kappa=kappa, max_iter=200)
    for b in range(3):
        x, n = float(x0[b]), 0
        while True:
            new = 0.5 * x + float(z[b])
            n += 1
            e = abs(new - x) / abs(x)
            x = new
            if e < kappa:
                break
        assert int(res.iterations[b]) == n
        assert float(res.x[b]) == x
        assert res.reason[b] == "converged"
        assert float(res.residual[b]) < kappa <= float(res.history[n - 2][b])


def test_batch_equals_samples_alone_and_frozen_samples_stay():
    rates = torch.tensor([[0.1], [0.9], [0.5]], dtype=torch.float64)
    x0 = torch.ones(3, 1, dtype=torch.float64)
    batch = fixed_point(lambda x: rates * x + 1.0, x0, kappa=1e-6, max_iter=500)
    for b in range(3):
        one = fixed_point(lambda x, r=rates[b:b + 1]: r * x + 1.0, x0[b:b + 1], kappa=1e-6, max_iter=500)
        assert torch.equal(one.x, batch.x[b:b + 1])
        assert int(one.iterations) == int(batch.iterations[b])
    assert len({int(i) for i in batch.iterations}) == 3  # different stopping times


def test_max_iter_and_non_finite_are_recorded():
    x0 = torch.tensor([[1.0], [1.0]], dtype=torch.float64)

    def step(x):
        out = x + 1.0
        out[1] = math.inf if float(x[1]) >= 3 else out[1]
        return out

    res = fixed_point(step, x0, kappa=1e-12, max_iter=5)
    assert res.reason == ["max_iter", "non-finite"]
    assert res.iterations.tolist() == [5, 2]
    assert torch.isfinite(res.x).all() and float(res.x[1]) == 3.0


def test_relative_change_edge_cases():
    z = torch.zeros(2, 3)
    one = torch.ones(2, 3)
    assert relative_change(z, z).tolist() == [0.0, 0.0]
    assert relative_change(one, z).tolist() == [math.inf, math.inf]
    assert relative_change(3 * one, one, power=2).tolist() == [4.0, 4.0]


@pytest.mark.parametrize("field,value", [("kappa_fwd", -1.0), ("max_fwd", 0), ("max_bwd", 1.5),
                                         ("backward", "phantom")])
def test_config_is_validated(field, value):
    with pytest.raises(ValueError, match=f"deq.{field}"):
        DEQConfig(**{field: value})


def test_implicit_gradient_of_a_linear_map_is_the_closed_form():
    """C = <c, x*>, x* = (I - W)^{-1} z: grad_z C = (I - W)^{-T} c and grad_W C = q x*^T with
    q = (I - W)^{-T} c, to 1e-10."""
    n = 6
    W = torch.nn.Parameter(_linear(n))
    z = torch.randn(2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    c = torch.randn(2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    cfg = DEQConfig(kappa_fwd=1e-15, kappa_bwd=1e-30, max_fwd=1000, max_bwd=1000)
    stats = {}
    x, _ = equilibrium(lambda x: x @ W.T + z, torch.zeros(2, n, dtype=torch.float64), cfg, stats)
    (c * x).sum().backward()
    inv = torch.linalg.inv(torch.eye(n, dtype=torch.float64) - W.detach())
    x_star = z.detach() @ inv.T
    q = c @ inv  # rows: (I - W)^{-T} c_b
    assert torch.allclose(x.detach(), x_star, rtol=0, atol=1e-12)
    assert torch.allclose(z.grad, q, rtol=0, atol=1e-10)
    assert torch.allclose(W.grad, q.T @ x_star, rtol=0, atol=1e-10)
    assert stats["converged"].all() and (stats["iterations"] > 10).all()


def test_unrolled_gradient_converges_geometrically_to_the_implicit_one():
    n = 6
    W = _linear(n, 0.8)
    z0 = torch.randn(1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    c = torch.randn(1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def grad(cfg):
        z = z0.clone().requires_grad_(True)
        x, _ = equilibrium(lambda x: x @ W.T + z, torch.zeros(1, n, dtype=torch.float64), cfg)
        (c * x).sum().backward()
        return z.grad

    exact = grad(DEQConfig(kappa_fwd=1e-15, kappa_bwd=1e-30, max_fwd=1000, max_bwd=1000))
    errs = [float((grad(DEQConfig(kappa_fwd=0.0, max_fwd=k, backward="unrolled")) - exact).norm())
            for k in (10, 20, 40)]
    # the error of K unrolled steps is ||sum_{j >= K} (W^T)^j c|| <= 0.8^K ||c|| / 0.2
    for k, e in zip((10, 20, 40), errs):
        assert e <= 0.8**k * float(c.norm()) / 0.2
    assert errs[0] > errs[1] > errs[2] > 0


def _saved_bytes(max_fwd: int, backward: str) -> int:
    n = 64
    W = torch.nn.Parameter(_linear(n, 0.5))
    z = torch.ones(2, n, dtype=torch.float64)
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x, _ = equilibrium(lambda x: torch.tanh(x @ W.T) + z, torch.zeros(2, n, dtype=torch.float64),
                           DEQConfig(kappa_fwd=0.0, max_fwd=max_fwd, backward=backward))
    x.sum().backward()
    return total


def test_saved_tensor_bytes_do_not_depend_on_the_forward_iterations():
    assert _saved_bytes(10, "implicit") == _saved_bytes(100, "implicit") > 0
    assert _saved_bytes(100, "unrolled") > 9 * _saved_bytes(10, "implicit")


def test_no_graph_survives_the_backward():
    W = torch.nn.Parameter(_linear(4, 0.5))
    x, _ = equilibrium(lambda x: x @ W.T + 1.0, torch.zeros(1, 4, dtype=torch.float64), DEQConfig())
    loss = x.sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    with torch.no_grad():
        y, _ = equilibrium(lambda x: x @ W.T + 1.0, torch.zeros(1, 4, dtype=torch.float64), DEQConfig())
    assert y.grad_fn is None
