"""Operator-norm estimators for linear features: power iteration, finite differences.

Catalogue: ``theory/README.md`` ("Constants").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..operators import power_iteration
from ._common import _count


def _adjoint_of(A: Callable[[torch.Tensor], torch.Tensor]):
    """``A.H`` if present, else the vector-Jacobian product of the (linear) callable."""
    H = getattr(A, "H", None)
    if H is not None:
        return H

    def vjp(y: torch.Tensor, x_like: torch.Tensor) -> torch.Tensor:
        x = x_like.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = A(x)
            (g,) = torch.autograd.grad(out, x, grad_outputs=y)
        return g

    return vjp


def operator_norm_sq(
    A: Any,
    shape: Sequence[int] | None = None,
    iters: int = 100,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> float:
    r"""``||A||^2`` (e.g. ``L_f`` of ``f = 1/2 ||A x - y||^2``) by power iteration on ``A^H A``.

    ``A`` is a callable ``x -> A(x)`` with adjoint ``A.H(y)`` (the library's operators); without
    ``.H`` the adjoint is the vector-Jacobian product of ``A`` (``A`` must be linear).  ``shape``
    is the input shape, ``dtype`` the input dtype (real or complex); for a real input and a
    complex-valued ``A`` the real part of ``A.H(y)`` is used (the adjoint of the R-linear map).
    A 2-D numpy array / torch tensor is treated as a dense matrix and its exact squared
    spectral norm is returned (then ``shape`` is ignored).

    Returns the Rayleigh quotient ``||A x||^2 / ||x||^2`` of the final iterate: an
    **ESTIMATE that is a lower bound** of ``||A||^2`` (it increases to ``||A||^2`` with ``iters``;
    multiply by a safety factor for use as ``L_f`` in a certified bound, or use a known bound
    such as ``||P F|| <= 1`` for MRI).  Catalogue: ``theory/README.md`` ("Constants").
    """
    if isinstance(A, np.ndarray) or (isinstance(A, torch.Tensor) and A.dim() == 2):
        mat = torch.as_tensor(A)
        mat = mat.to(torch.complex128 if mat.is_complex() else torch.float64)
        if mat.dim() != 2:
            raise ValueError(f"A must be a 2-D matrix or a callable (got shape {tuple(mat.shape)})")
        return float(torch.linalg.matrix_norm(mat, ord=2)) ** 2
    if not callable(A):
        raise ValueError("A must be a callable operator with .H or a 2-D matrix")  # noqa: TRY004
    if shape is None:
        raise ValueError("shape must be given for a callable operator")
    iters = _count("iters", iters, 1)
    adj = _adjoint_of(A)
    uses_vjp = getattr(A, "H", None) is None
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x = torch.randn(tuple(shape), generator=gen, dtype=dtype).to(device)

    def apply_AHA(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = A(v)
        z = (adj(y, v) if uses_vjp else adj(y)).detach()
        if not v.is_complex() and z.is_complex():
            z = z.real
        return z

    _, x = power_iteration(apply_AHA, x, iters)
    with torch.no_grad():  # the Rayleigh quotient ||A x||^2 at the final unit vector
        return float(torch.linalg.vector_norm(A(x))) ** 2


def linear_feature_constants(
    D: Any,
    shape: Sequence[int] | None = None,
    iters: int = 100,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float64,
) -> tuple[float, float]:
    r"""``(M, L_g)`` for a linear feature map ``q(x) = D x``: ``M = ||D||``, ``L_g = 0``.

    ``D`` as in :func:`operator_norm_sq` (a callable -- e.g. an ``nn.Module`` such as
    ``lda_opt.features.FiniteDifference``, whose adjoint is taken by autograd -- or a dense
    matrix).  For a callable, ``M`` is a power-iteration **ESTIMATE (lower bound)**; use a
    certified bound where one exists (:func:`finite_difference_norm_bound`, ``1`` for the
    identity).  ``L_g = 0`` is exact (the Jacobian is constant).
    Catalogue: ``theory/README.md`` ("Constants").
    """
    return math.sqrt(operator_norm_sq(D, shape, iters=iters, seed=seed, dtype=dtype)), 0.0


def finite_difference_norm_bound() -> float:
    r"""Certified ``||D|| <= sqrt(8)`` for forward differences with Neumann boundary (TV).

    Per channel, ``||D_h x||^2 = sum (x_{i,j+1} - x_{i,j})^2 <= 2 sum (x_{i,j+1}^2 + x_{i,j}^2)
    <= 4 ||x||^2`` (each pixel enters at most two differences), the same for ``D_v``, and
    ``||D x||^2 = ||D_v x||^2 + ||D_h x||^2 <= 8 ||x||^2``; channels are decoupled, so the
    bound holds for any ``C`` (and complex images).  The exact value on an ``H x W`` grid is
    :func:`finite_difference_norm` ``-> sqrt(8)`` as ``H, W -> inf``.  **Certified upper
    bound**; ``L_g = 0``.  Catalogue: ``theory/README.md`` ("Constants").
    """
    return math.sqrt(8.0)


def finite_difference_norm(H: int, W: int) -> float:
    r"""Exact ``||D||`` of Neumann forward differences on an ``H x W`` grid:

    .. math:: \|D\|^2 = \lambda_{\max}(L_H \oplus L_W) = 4 + 2\cos(\pi/H) + 2\cos(\pi/W),

    since ``D_1^T D_1`` (1-D, last difference 0) is the Neumann path Laplacian with eigenvalues
    ``2 - 2 cos(pi k / n)``, ``k = 0..n-1``.  **Exact** (up to rounding).
    Catalogue: ``theory/README.md`` ("Constants").
    """
    H, W = _count("H", H, 1), _count("W", W, 1)
    return math.sqrt(max(0.0, 4.0 + 2.0 * math.cos(math.pi / H) + 2.0 * math.cos(math.pi / W)))
