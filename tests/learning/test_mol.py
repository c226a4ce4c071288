"""MOL (mol-deq-supplement): the resolvent, the implicit gradient against finite differences
and the unrolled chain, the contraction and robustness guarantees (float64, 8 x 8 MRI)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lda_opt import bounds
from lda_opt.learning.deq import DEQConfig
from lda_opt.learning.mol import MOLConfig, MOLNet, _barrier, check_contraction
from lda_opt.nets import MOLCNN, xavier_init_
from lda_opt.nets.mol import certified_lipschitz, lipschitz_estimate, spectral_project_
from lda_opt.operators import MRI, Identity, Matrix, conjugate_gradient
from lda_opt.problem import LeastSquares

N = 8
TIGHT = DEQConfig(kappa_fwd=1e-14, kappa_bwd=1e-28, max_fwd=1000, max_bwd=1000)


def _mask(seed: int = 0) -> torch.Tensor:
    m = (torch.rand(N, N, generator=torch.Generator().manual_seed(seed)) < 0.4).double()
    m[0, 0] = 1.0
    return m


def _cnn(seed: int, bound: float | None = 0.5, width: int = 4, depth: int = 3) -> MOLCNN:
    cnn = MOLCNN(1, width, depth, complex=True).double()
    xavier_init_(cnn, generator=torch.Generator().manual_seed(seed))
    if bound is not None:
        spectral_project_(cnn, bound, (N, N))
    return cnn


def _data(B: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.complex(torch.randn(B, 1, N, N, generator=g, dtype=torch.float64),
                      torch.randn(B, 1, N, N, generator=g, dtype=torch.float64))
    A = MRI(_mask())
    return A, A(x), x


def _net(cnn: MOLCNN, alpha: float = 1.0, lam: float = 2.0, deq: DEQConfig = TIGHT) -> MOLNet:
    return MOLNet(cnn, alpha=alpha, lam=lam, deq=deq).double()


# --------------------------------------------------------------------------------------
# the resolvent (I + c A^H A)^{-1}
# --------------------------------------------------------------------------------------
def _dense_check(A, v: torch.Tensor, c, u: torch.Tensor, atol: float) -> None:
    cc = torch.as_tensor(c, dtype=torch.float64).reshape(-1, *([1] * (v.dim() - 1)))
    assert torch.allclose(u + cc * A.adjoint(A(u)), v, rtol=0, atol=atol)


def test_mri_resolvent_is_exact_and_per_sample():
    A, _, x = _data(3)
    c = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    u = A.normal_resolvent(c, x)
    _dense_check(A, x, c, u, 1e-13)
    for b in range(3):
        assert torch.allclose(A.normal_resolvent(float(c[b]), x[b:b + 1]), u[b:b + 1], rtol=0, atol=1e-15)


def test_identity_and_cg_resolvents():
    v = torch.randn(2, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(Identity().normal_resolvent(3.0, v), v / 4, rtol=0, atol=0)
    Phi = torch.randn(10, 25, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    A = Matrix(Phi, (1, 5, 5))
    u = A.normal_resolvent(0.7, v)  # the base class: CG to CG_TOL
    dense = torch.linalg.solve(torch.eye(25, dtype=torch.float64) + 0.7 * Phi.T @ Phi, v.reshape(2, 25).T).T
    assert torch.allclose(u.reshape(2, 25), dense, rtol=0, atol=1e-9)
    _, iters, rel = conjugate_gradient(lambda w: w + 0.7 * A.adjoint(A(w)), v, tol=1e-10)
    assert (rel <= 1e-10).all() and (iters <= 25).all()


def test_resolvent_refuses_a_negative_c():
    with pytest.raises(ValueError, match="c must be real, finite and >= 0"):
        MRI(_mask()).normal_resolvent(-1.0, torch.zeros(1, 1, N, N, dtype=torch.complex128))


# --------------------------------------------------------------------------------------
# the implicit gradient (eqs. 4-5)
# --------------------------------------------------------------------------------------
def _loss(net: MOLNet, A, b, truth):
    x, _ = net(net.problem(LeastSquares(A, b)), A.adjoint(b))
    return (x - truth).abs().square().sum()


def test_implicit_gradient_equals_finite_differences():
    """In theta (every CNN weight direction at once), lambda and b: central differences of
    the converged x* (step 1e-6, float64) agree to rel. 1e-5 with Algorithm 2."""
    A, b, x = _data()
    truth = x.flip(-1)
    net = _net(_cnn(0))
    b = b.clone().requires_grad_(True)
    _loss(net, A, b, truth).backward()
    assert net.last_backward["converged"].all()
    g = torch.Generator().manual_seed(5)
    params = [p for p in net.parameters() if p.requires_grad]
    dirs = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    db = torch.complex(torch.randn(b.shape, generator=g, dtype=torch.float64),
                       torch.randn(b.shape, generator=g, dtype=torch.float64)) * A.mask
    analytic = sum(float((p.grad * d).sum()) for p, d in zip(params, dirs)) + float((b.grad.conj() * db).real.sum())
    h = 1e-6

    def shifted(s):
        with torch.no_grad():
            for p, d in zip(params, dirs):
                p.add_(s * h * d)
            val = float(_loss(net, A, b + s * h * db, truth))
            for p, d in zip(params, dirs):
                p.sub_(s * h * d)
        return val

    fd = (shifted(1) - shifted(-1)) / (2 * h)
    assert abs(analytic - fd) <= 1e-5 * abs(fd)


def test_implicit_gradient_equals_the_long_unrolled_chain():
    A, b, x = _data()
    grads = {}
    for mode, cfg in (("implicit", TIGHT), ("unrolled", DEQConfig(kappa_fwd=1e-14, max_fwd=1000,
                                                                  backward="unrolled"))):
        net = _net(_cnn(0), deq=cfg)
        _loss(net, A, b, x).backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in net.parameters() if p.requires_grad])
    err = float((grads["implicit"] - grads["unrolled"]).norm() / grads["unrolled"].norm())
    assert err <= 1e-10


def test_fixed_point_does_not_depend_on_alpha():
    A, b, _ = _data()
    cnn = _cnn(0)
    xs = []
    for a in (1.0, 0.6):
        net = _net(cnn, alpha=a)
        with torch.no_grad():
            m = net.problem(LeastSquares(A, b))
            x, _ = net(m, A.adjoint(b))
            assert float(m.residual(x).max()) <= 1e-10
        xs.append(x)
    assert torch.allclose(xs[0], xs[1], rtol=0, atol=1e-11)


def test_batch_equals_its_samples_alone():
    A, b, _ = _data(3)
    net = _net(_cnn(2), deq=DEQConfig())
    with torch.no_grad():
        xb, rb = net(net.problem(LeastSquares(A, b)), A.adjoint(b))
        for i in range(3):
            xi, ri = net(net.problem(LeastSquares(A, b[i:i + 1])), A.adjoint(b[i:i + 1]))
            assert int(ri.iterations) == int(rb.iterations[i])
            assert torch.allclose(xi, xb[i:i + 1], rtol=0, atol=1e-14)


# --------------------------------------------------------------------------------------
# contraction (Lemma 1) and robustness (Theorem 3) of theory/mol.md
# --------------------------------------------------------------------------------------
@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), bound=st.floats(0.05, 0.95), frac=st.floats(0.05, 0.95))
def test_constrained_random_cnns_give_a_contraction(seed, bound, frac):
    cnn = _cnn(seed, bound)
    L = certified_lipschitz(cnn, (N, N))
    assert L <= bound * (1 + 1e-9)
    lo, hi = bounds.mol_step_range(L)
    a = lo + frac * (hi - lo)
    A, b, x = _data(1, seed)
    rep = check_contraction(_net(cnn, alpha=a).problem(LeastSquares(A, b)), x, pairs=4, power_iters=20, seed=seed)
    assert rep.certified_factor < 1
    assert rep.ok, rep.violations
    assert rep.pair_ratio <= rep.certified_factor and rep.estimated_lipschitz <= rep.certified_factor * (1 + 1e-6)


def test_checker_reports_a_planted_violation():
    cnn = _cnn(0, bound=None)
    with torch.no_grad():
        for conv in cnn.convs:
            conv.real.weight.mul_(3.0)
            conv.imag.weight.mul_(3.0)
    A, b, x = _data(1)
    rep = check_contraction(_net(cnn).problem(LeastSquares(A, b)), x)
    assert not rep.ok
    assert rep.certified_factor > 1 and rep.estimated_lipschitz > 1
    assert any("not a contraction" in v for v in rep.violations)


def test_robustness_bound_holds_for_random_and_adversarial_perturbations():
    cnn = _cnn(3, 0.5)
    L = certified_lipschitz(cnn, (N, N))
    A, b, _ = _data(1)
    net = _net(cnn, lam=3.0)

    def solve(bb):
        with torch.no_grad():
            return net(net.problem(LeastSquares(A, bb)), A.adjoint(bb))[0]

    x0 = solve(b)
    g = torch.Generator().manual_seed(7)
    dirs = [torch.complex(torch.randn(b.shape, generator=g, dtype=torch.float64),
                          torch.randn(b.shape, generator=g, dtype=torch.float64)) * A.mask for _ in range(3)]
    # adversarial: the top singular vector of d x* / d b by power iteration (implicit VJPs)
    bb = b.clone().requires_grad_(True)
    est, v = lipschitz_estimate(lambda t: net(net.problem(LeastSquares(A, t)), A.adjoint(t))[0], bb, iters=10,
                                generator=g)
    dirs.append(A.mask * v)
    for d in dirs:
        db = 1e-2 * d / d.norm()
        dx = float((solve(b + db) - x0).norm())
        assert dx <= bounds.mol_robustness_bound(3.0, L, float(A.adjoint(db).norm())) * (1 + 1e-9)
    assert float(est.detach()) <= 3.0 / (1 - L)


def test_bound_functions():
    assert bounds.mol_contraction_factor(1.0, 0.3) == pytest.approx(0.3)
    assert bounds.mol_contraction_factor(0.5, 0.3) == pytest.approx(0.65)
    lo, hi = bounds.mol_step_range(0.5)
    assert (lo, hi) == (0.0, pytest.approx(4 / 3))
    assert bounds.mol_contraction_factor(hi * (1 - 1e-9), 0.5) < 1 < bounds.mol_contraction_factor(hi * 1.01, 0.5)
    assert bounds.mol_step_range(1.0) == (0.0, 0.0)
    assert bounds.mol_robustness_bound(2.0, 0.5, 1.0) == pytest.approx(4.0)
    assert bounds.mol_robustness_bound(2.0, 1.0, 1.0) == math.inf
    assert bounds.mol_iterations(0.5, 1e-3) == 10  # 0.5^10 < 1e-3 <= 0.5^9
    assert bounds.mol_fixed_point_error(0.5, 2.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="L_H"):
        bounds.mol_contraction_factor(1.0, -0.1)


def test_fixed_point_error_bound_holds_along_the_iterations():
    cnn = _cnn(4, 0.6)
    q = bounds.mol_contraction_factor(1.0, certified_lipschitz(cnn, (N, N)))
    A, b, _ = _data(1)
    net = _net(cnn)
    m = net.problem(LeastSquares(A, b))
    with torch.no_grad():
        x_star, _ = net(m, A.adjoint(b))
        x = A.adjoint(b)
        for _ in range(8):
            new = m.step(x)
            assert float((new - x_star).norm()) <= bounds.mol_fixed_point_error(q, float((new - x).norm())) + 1e-12
            x = new


# --------------------------------------------------------------------------------------
# the MOL-LR barrier and the config section
# --------------------------------------------------------------------------------------
def test_barrier_is_the_log_barrier_continued_by_its_tangent():
    mc = MOLConfig(mu=0.5, l_max=0.98, barrier_e=1e-3)
    knee = 0.98 - 1e-3
    for l in (0.0, 0.5, 0.9):
        assert float(_barrier(torch.tensor(l, dtype=torch.float64), mc)) == pytest.approx(-0.5 * math.log(0.98 - l))
    at = float(_barrier(torch.tensor(knee, dtype=torch.float64), mc))
    assert at == pytest.approx(-0.5 * math.log(1e-3))
    beyond = float(_barrier(torch.tensor(1.5, dtype=torch.float64), mc))
    assert beyond == pytest.approx(at + 0.5 / 1e-3 * (1.5 - knee))


@pytest.mark.parametrize("field,value", [("alpha", 2.0), ("lam", 0.0), ("constraint", "box"), ("l_max", 1.0),
                                         ("max_fwd", 0), ("learn_lam", 1), ("backward", "jvp")])
def test_config_section_is_validated(field, value):
    with pytest.raises(ValueError, match=f"mol.{field}"):
        MOLConfig(**{field: value})


def test_cnn_shape_and_parameter_count():
    cnn = MOLCNN(1, 6, 4, kernel_size=3, complex=True)
    assert cnn(torch.zeros(2, 1, 9, 9, dtype=torch.complex64)).shape == (2, 1, 9, 9)
    assert sum(p.numel() for p in cnn.parameters()) == 2 * 9 * (2 * 6 + 2 * 36)
    with pytest.raises(ValueError, match="depth"):
        MOLCNN(1, 4, 1)
