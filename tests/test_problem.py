"""LeastSquares, Problem and the linear feature maps."""

import pytest
import torch

import lda_opt as lo
from lda_opt.operators import MRI, Identity, Matrix


def test_least_squares_value_and_gradient_complex():
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(6, 6, generator=gen) < 0.5).double()
    mask[0, 0] = 1
    A = MRI(mask)
    x = torch.complex(torch.randn(2, 1, 6, 6, generator=gen, dtype=torch.float64),
                      torch.randn(2, 1, 6, 6, generator=gen, dtype=torch.float64))
    y = A(torch.randn(2, 1, 6, 6, generator=gen, dtype=torch.float64).to(torch.complex128))
    f = lo.LeastSquares(A, y)
    val, grad = f.value_and_grad(x)
    xr = x.clone().requires_grad_(True)
    (0.5 * (A(xr) - y).abs().square().flatten(1).sum(1)).sum().backward()
    assert torch.allclose(val, 0.5 * (A(x) - y).abs().square().flatten(1).sum(1), rtol=1e-14)
    assert torch.allclose(grad, xr.grad, rtol=1e-12, atol=1e-14)


def test_finite_difference_neumann_and_tv():
    x = torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 5.0, 5.0]]]], dtype=torch.float64)
    g = lo.features.FiniteDifference()(x)
    dv = torch.tensor([[-1.0, 3.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    dh = torch.tensor([[1.0, 2.0, 0.0], [5.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(g[0, 0], dv) and torch.equal(g[0, 1], dh)
    p = lo.Problem(lo.LeastSquares(Identity(), x), lo.features.FiniteDifference(), weight=2.0)
    tv = (dv**2 + dh**2).sqrt().sum()
    assert float(p.phi(x)) == pytest.approx(2.0 * float(tv), rel=1e-15)


def test_identity_features_is_l1_with_complex_modulus():
    x = torch.tensor([[[[3 + 4j, -1j], [0j, 2 + 0j]]]], dtype=torch.complex128)
    p = lo.Problem(lo.LeastSquares(MRI(torch.ones(2, 2)), torch.zeros_like(x)), lo.features.Identity(), 0.5)
    # f(x) = 1/2 ||F x||^2 = 1/2 ||x||^2 (F orthonormal)
    expected = 0.5 * (25 + 1 + 0 + 4) + 0.5 * (5 + 1 + 0 + 2)
    assert float(p.phi(x)) == pytest.approx(expected, rel=1e-14)


def test_per_sample_weight_and_select():
    y = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    w = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    p = lo.Problem(lo.LeastSquares(Identity(), y), lo.features.FiniteDifference(), weight=w)
    full = p.phi(y)
    sub = p.select(torch.tensor([2, 0]))
    assert torch.allclose(sub.phi(y[[2, 0]]), full[[2, 0]], rtol=1e-15)


@pytest.mark.parametrize("bad,err,match", [
    (lambda y: y.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan"), dtype=torch.float64)), ValueError, "NaN"),
    (lambda y: torch.zeros(1, 1, 5, 4, dtype=torch.float64), ValueError, "shape"),
    (lambda y: y.float(), TypeError, "dtype"),
    (lambda y: y.numpy(), TypeError, "torch.Tensor"),
])
def test_bad_x0_is_refused(bad, err, match):
    y = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    p = lo.Problem(lo.LeastSquares(Matrix(torch.eye(16, dtype=torch.float64), (1, 4, 4)), y.reshape(1, 16)),
                   lo.features.FiniteDifference(), weight=0.1)
    with pytest.raises(err, match=match):
        p.check_input(bad(y))


def test_bad_problem_arguments():
    y = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN"):
        lo.LeastSquares(Identity(), y * float("inf"))
    with pytest.raises(ValueError, match="weight"):
        lo.Problem(lo.LeastSquares(Identity(), y), lo.features.Identity(), weight=0.0)
    with pytest.raises(TypeError, match="nn.Module"):
        lo.Problem(lo.LeastSquares(Identity(), y), lambda x: x, weight=0.1)
    with pytest.raises(TypeError, match="LinearOperator"):
        lo.LeastSquares(torch.eye(3), y)
