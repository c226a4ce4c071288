"""Primal weights from a dual solution (dual-st-cnn-2024, Theorem 6, eq. 47, sign-corrected).

For every pattern ``j`` with ``w'_j != 0`` one neuron

    u = w'_j / sqrt(||w'_j||),   v = +sqrt(||w'_j||)                         (47)

and for every ``w_j != 0`` one neuron

    u = w_j / sqrt(||w_j||),     v = -sqrt(||w_j||)

(eq. 47 prints ``v = +sqrt(||w_i||)`` for both; the dual output ``Q Y (w' - w)`` needs the
minus sign for ``w``).  Each neuron has ``||u||^2 + v^2 = 2 ||w||``, so the weight-decay term
of (21) at the reconstruction equals the ``2 beta sum ||w||`` term of (22) exactly.  The
data term does not carry over: the neuron's output is ``v tau(Y u)_lambda`` whereas the dual
network uses ``Q_j Y w``; they agree only if ``Q^S(u) = Q_j`` on the active rows, i.e.
``|y_i^T u| = |y_i^T u-bar_j|`` -- see :func:`neuron_mismatch` and ``theory/dual_st_cnn.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .primal import soft_threshold

__all__ = ["Reconstruction", "neuron_mismatch", "reconstruct_primal"]


@dataclass(frozen=True, kw_only=True)
class Reconstruction:
    """Reconstructed primal weights ``U (m^2, K)``, ``v (K,)``.

    ``pattern[k]`` is the pattern index ``j`` of neuron ``k`` and ``branch[k]`` is ``+1``
    for a ``w'_j`` neuron, ``-1`` for a ``w_j`` neuron.
    """

    U: np.ndarray
    v: np.ndarray
    pattern: np.ndarray
    branch: np.ndarray


def reconstruct_primal(W: np.ndarray, Wp: np.ndarray, *, rel_tol: float = 1e-6) -> Reconstruction:
    """Eq. (47): one neuron per group with ``||w|| > rel_tol * max_group_norm``."""
    if W.shape != Wp.shape or W.ndim != 2:
        raise ValueError(f"W and Wp must have the same shape (P, m^2); got {W.shape}, {Wp.shape}")
    if not (0 <= rel_tol < 1):
        raise ValueError(f"rel_tol must be in [0, 1); got {rel_tol}")
    norms = np.concatenate([np.linalg.norm(Wp, axis=1), np.linalg.norm(W, axis=1)])
    top = norms.max(initial=0.0)
    cols, vs, pats, brs = [], [], [], []
    for branch, V in ((1, Wp), (-1, W)):
        for j, w in enumerate(V):
            n = float(np.linalg.norm(w))
            if n > 0 and n > rel_tol * top:
                cols.append(w / np.sqrt(n))
                vs.append(branch * np.sqrt(n))
                pats.append(j)
                brs.append(branch)
    m2 = W.shape[1]
    U = np.stack(cols, axis=1) if cols else np.zeros((m2, 0))
    return Reconstruction(
        U=U,
        v=np.asarray(vs, dtype=np.float64),
        pattern=np.asarray(pats, dtype=np.int64),
        branch=np.asarray(brs, dtype=np.int64),
    )


def neuron_mismatch(
    Y: np.ndarray, q: np.ndarray, rec: Reconstruction, lam: float
) -> np.ndarray:
    """Per neuron ``|| v tau(Y u)_lambda - Q_j Y (v u) ||_2``.

    The second term is the neuron's contribution ``branch * Q_j Y w`` to the dual network
    output (22), since ``w = sqrt(||w||) u`` and ``v = branch * sqrt(||w||)`` give
    ``v u = branch * w``.  Zero for every
    neuron iff the reconstruction reproduces the dual network exactly.
    """
    out = np.empty(rec.v.shape[0])
    for k in range(rec.v.shape[0]):
        u, v, j = rec.U[:, k], rec.v[k], rec.pattern[k]
        primal = v * soft_threshold(Y @ u, lam)
        dual = q[j] * (Y @ (v * u))
        out[k] = np.linalg.norm(primal - dual)
    return out
