"""A certified lower bound on the primal optimum (21), for every number of filters K.

Lagrangian weak duality for (21) (the derivation of dual-st-cnn-2024, eqs. 29-37, done
without the rescaling of Theorem 2, which ST does not allow): for any ``z in R^I``

    p*_K >= -1/4 ||z||^2 + z^T x                                             (*)

provided ``|z^T tau(Y u)_lambda| <= 2 beta ||u||_2`` for every ``u``.  (Minimising
``beta (||u||^2 + v^2) - v z^T tau(Y u)_lambda`` over ``v`` gives
``beta ||u||^2 - (z^T tau(Y u)_lambda)^2 / (4 beta)``, which is ``>= 0`` for all ``u`` exactly
under this condition; the ``r``-minimisation gives ``-||z||^2/4`` as in eq. 33.)

The condition is a non-convex semi-infinite constraint (the supremum over ``u`` is not
computable in general).  We certify it with a computable upper bound: since
``|tau(a)_lambda| <= |a|`` and by Cauchy-Schwarz with weights ``|z_i|``,

    |z^T tau(Y u)_lambda| <= sum_i |z_i| |y_i^T u|
                          <= sqrt(||z||_1 * lambda_max(Y^T diag(|z|) Y)) * ||u||  =: B(z) ||u||.

So ``alpha z`` is feasible for every ``0 <= alpha <= 2 beta / B(z)``, and the bound is the
maximum of the concave quadratic ``-alpha^2 ||z||^2 / 4 + alpha z^T x`` over that interval.
Any ``z`` may be used; residual-based choices ``z = 2 (x - network output)`` (eq. 33 gives
``r = -z/2`` at the optimum) are natural.  The bound is rigorous but can be loose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .primal import _check_beta, _check_data

__all__ = ["LowerBound", "certified_lower_bound"]


@dataclass(frozen=True, kw_only=True)
class LowerBound:
    """``value`` <= p*_K for every K.  ``B`` is the certified constant, ``alpha`` the scale,
    ``linear_norm = ||Y^T z||`` a lower estimate of sup_u |z^T tau(Y u)| / ||u|| (u -> inf)."""

    value: float
    alpha: float
    B: float
    linear_norm: float


def certified_lower_bound(
    Y: np.ndarray, x: np.ndarray, z: np.ndarray, beta: float
) -> LowerBound:
    """Weak-duality bound (*) at the largest certified-feasible multiple of ``z``."""
    _check_beta(beta)
    Y, x = _check_data(Y, x)
    z = np.asarray(z, dtype=np.float64)
    if z.shape != x.shape:
        raise ValueError(f"z must have the shape of x, {x.shape}; got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("z contains NaN or Inf")
    az = np.abs(z)
    M = Y.T @ (az[:, None] * Y)
    B = float(np.sqrt(az.sum() * max(np.linalg.eigvalsh(M)[-1], 0.0)))
    zz, zx = float(z @ z), float(z @ x)
    if zz == 0.0 or zx <= 0.0:
        return LowerBound(value=0.0, alpha=0.0, B=B, linear_norm=float(np.linalg.norm(Y.T @ z)))
    alpha_max = 2.0 * beta / B if B > 0 else np.inf
    alpha = min(2.0 * zx / zz, alpha_max)
    value = -0.25 * alpha * alpha * zz + alpha * zx
    return LowerBound(
        value=float(value), alpha=float(alpha), B=B, linear_norm=float(np.linalg.norm(Y.T @ z))
    )
