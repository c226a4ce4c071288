"""Adjoint identities <A x, y> = <x, A^H y> in float64, real and complex, and norm estimates."""

import pytest
import torch

import lda_opt as lo
from lda_opt.operators import MRI, Identity, Matrix, norm_estimate


def inner(a, b):
    """Real inner product Re sum conj(a) b (the one the solvers use on C^n = R^2n)."""
    return torch.sum(a.conj() * b).real if a.is_complex() or b.is_complex() else torch.sum(a * b)


def _rand(shape, complex_, gen):
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    if complex_:
        x = torch.complex(x, torch.randn(shape, generator=gen, dtype=torch.float64))
    return x


@pytest.mark.parametrize("complex_", [False, True])
def test_identity_adjoint(complex_):
    g = torch.Generator().manual_seed(0)
    x, y = _rand((2, 1, 5, 4), complex_, g), _rand((2, 1, 5, 4), complex_, g)
    A = Identity()
    assert torch.allclose(inner(A(x), y), inner(x, A.H(y)), rtol=1e-13, atol=0)


@pytest.mark.parametrize("complex_", [False, True])
def test_matrix_adjoint(complex_):
    g = torch.Generator().manual_seed(1)
    Phi = _rand((7, 2 * 3 * 4), complex_, g)
    A = Matrix(Phi, image_shape=(2, 3, 4))
    x, y = _rand((3, 2, 3, 4), complex_, g), _rand((3, 7), complex_, g)
    assert A(x).shape == (3, 7)
    lhs, rhs = inner(A(x), y), inner(x, A.H(y))
    assert abs(float(lhs - rhs)) <= 1e-12 * abs(float(lhs))


@pytest.mark.parametrize("mask_shape", [(6, 8), (1, 6, 8), (2, 1, 6, 8)])
def test_mri_adjoint_and_mask(mask_shape):
    g = torch.Generator().manual_seed(2)
    mask = (torch.rand(mask_shape, generator=g) < 0.4).double()
    mask.reshape(-1)[0] = 1.0
    A = MRI(mask)
    x, y = _rand((2, 1, 6, 8), True, g), _rand((2, 1, 6, 8), True, g)
    Ax = A(x)
    # zero off the mask, and <Ax, y> = <x, A^H y>
    off = (A.mask.expand_as(Ax) == 0)
    assert torch.all(Ax[off] == 0)
    lhs, rhs = inner(Ax, y), inner(x, A.H(y))
    assert abs(float(lhs - rhs)) <= 1e-12 * abs(float(lhs))
    # the FFT is orthonormal: a full mask preserves norms
    full = MRI(torch.ones(6, 8))
    assert torch.allclose(torch.linalg.vector_norm(full(x)), torch.linalg.vector_norm(x), rtol=1e-13)


def test_mri_rejects_real_input_and_bad_masks():
    A = MRI(torch.ones(4, 4))
    p = lo.Problem(lo.LeastSquares(A, torch.zeros(1, 1, 4, 4, dtype=torch.complex128)),
                   lo.features.Identity(), 0.1)
    with pytest.raises(TypeError, match="complex"):
        p.check_input(torch.zeros(1, 1, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="zeros and ones"):
        MRI(torch.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="no frequency"):
        MRI(torch.zeros(4, 4))


def test_norm_estimate_matches_svd():
    g = torch.Generator().manual_seed(3)
    Phi = torch.randn(5, 12, generator=g, dtype=torch.float64)
    A = Matrix(Phi, image_shape=(1, 3, 4))
    est = norm_estimate(A, (1, 1, 3, 4), iters=500, tol=1e-14)
    exact = float(torch.linalg.svdvals(Phi)[0])
    assert est <= exact * (1 + 1e-12)
    assert est == pytest.approx(exact, rel=1e-8)
    # MRI with a nonempty mask has norm exactly 1
    mask = torch.zeros(8, 8)
    mask[0, :] = 1
    assert norm_estimate(MRI(mask), (1, 1, 8, 8)) == pytest.approx(1.0, rel=1e-10)


def test_matrix_validation():
    with pytest.raises(ValueError, match="columns"):
        Matrix(torch.zeros(3, 5), image_shape=(1, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        Matrix(torch.full((3, 4), float("nan")), image_shape=(1, 2, 2))
