"""Convex dual ST-CNN (dual-st-cnn-2024, Theorem 1, eq. 22 with constraints 24).

With ``P`` deduplicated arrangement patterns ``j`` (generators ``u-bar_j``, diagonals
``Q_j = Q^{S}(u-bar_j)``, patterns ``s_j``; :mod:`lda_opt.dual.patterns`) the program is

.. math::

    d = \\min_{w_j, w'_j \\in \\mathcal{P}_j}
        \\Big\\| \\sum_{j=1}^P Q_j Y (w'_j - w_j) - x \\Big\\|_2^2
        + 2\\beta \\sum_{j=1}^P \\big(\\|w_j\\|_2 + \\|w'_j\\|_2\\big)        (22)

    \\mathcal{P}_j = \\{ w : (Q_j Y w)_i \\le 0 \\ (i \\in S_1),\\
                           (Q_j Y w)_i = 0 \\ (i \\in S_2),\\
                           (Q_j Y w)_i \\ge 0 \\ (i \\in S_3) \\}            (24, corrected)

Corrections to the printed equations (reasons in ``theory/dual_st_cnn.md``): the sum in
(22) runs over patterns ``j`` (each with its own ``Q_j`` and its own pair of variables), not
over the ``I`` pixels with one ``Q^S``; and the inequality signs of (24) are those of the
generating filter (``Q_j Y u-bar_j = tau(Y u-bar_j)_lambda`` is <= 0 on S1 and >= 0 on S3),
so that ``u-bar_j`` itself is feasible -- with the printed signs (>= 0 on S1, <= 0 on S3) it
is not.  The S2 rows are ``0 = 0`` because ``Q_j`` vanishes there.  Since ``Q_ii > 0`` on
S1 and S3, the constraint set equals ``{w : s_ji (Y w)_i >= 0 for s_ji != 0}``, a polyhedral
cone; the CVXPY model uses this (identical, better scaled) form, the torch model the
Q-weighted hinge of the paper.

Two solvers: :func:`solve_dual_cvxpy` (exact conic solve, CLARABEL or SCS, small
instances) and :func:`solve_dual_torch` ((22) plus an exact l1 hinge penalty
``penalty * sum max(0, -s_ji (Y w_j)_i)`` on the constraints, as the paper trains its dual
network (rows not Q-weighted, see :class:`TorchDualConfig`), minimised by ADMM with a
cached Cholesky factor, or by Adam as in the paper; its cost grows linearly in ``I``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .patterns import ArrangementPatterns

__all__ = [
    "DualProblem",
    "DualSolution",
    "TorchDualConfig",
    "cone_violation",
    "dual_objective",
    "dual_output",
    "solve_dual_cvxpy",
    "solve_dual_torch",
]


@dataclass(frozen=True, kw_only=True)
class DualProblem:
    """Data of eq. (22): ``Y (I, m^2)``, ``x (I,)``, ``q (P, I)``, ``sign (P, I)``, ``beta``."""

    Y: np.ndarray
    x: np.ndarray
    q: np.ndarray
    sign: np.ndarray
    beta: float

    def __post_init__(self) -> None:
        if self.Y.ndim != 2:
            raise ValueError(f"Y must have shape (I, m^2); got {self.Y.shape}")
        I = self.Y.shape[0]
        if self.x.shape != (I,):
            raise ValueError(f"x must have shape (I,) = ({I},); got {self.x.shape}")
        if self.q.ndim != 2 or self.q.shape[1] != I or self.q.shape[0] < 1:
            raise ValueError(f"q must have shape (P, I) with P >= 1, I = {I}; got {self.q.shape}")
        if self.sign.shape != self.q.shape:
            raise ValueError(f"sign must have shape {self.q.shape}; got {self.sign.shape}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0; got {self.beta!r}")
        for name in ("Y", "x", "q"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} contains NaN or Inf")
        if not np.all(np.isin(self.sign, (-1, 0, 1))):
            raise ValueError("sign must have entries in {-1, 0, +1}")
        # eq. (9): Q_ii = 1 - lambda/|y_i^T u| in [0, 1] on S1 and S3, Q_ii = 0 on S2
        if np.any(self.q < 0) or np.any(self.q > 1) or np.any(self.q[self.sign == 0] != 0):
            raise ValueError("q must lie in [0, 1] and vanish where sign_ji = 0 (eq. 9)")

    @classmethod
    def from_patterns(
        cls, Y: np.ndarray, x: np.ndarray, patterns: ArrangementPatterns, beta: float
    ) -> DualProblem:
        return cls(
            Y=np.asarray(Y, dtype=np.float64),
            x=np.asarray(x, dtype=np.float64),
            q=patterns.q,
            sign=patterns.sign,
            beta=float(beta),
        )

    @property
    def n_patterns(self) -> int:
        return int(self.q.shape[0])


@dataclass(frozen=True, kw_only=True)
class DualSolution:
    """A solution of (22): ``W, Wp`` of shape ``(P, m^2)`` (``w_j``, ``w'_j``).

    ``objective`` is (22) evaluated in float64 at ``(W, Wp)``; ``violation`` the largest
    constraint violation ``max(0, -s_ji (Y w_j)_i)`` over both variables;
    ``history`` the penalised objective per iteration (empty for CVXPY).
    ``max_multiplier`` (CVXPY only) is the largest KKT multiplier of the cone constraints
    ``s_ji (Y w_j)_i >= 0``: the l1 hinge penalty of :func:`solve_dual_torch` has the same
    minimisers as (22)-(24) whenever ``penalty`` exceeds it (exact-penalty theorem).
    """

    W: np.ndarray
    Wp: np.ndarray
    objective: float
    violation: float
    solver: str
    status: str
    seconds: float
    history: np.ndarray
    max_multiplier: float | None = None


def dual_output(Y: np.ndarray, q: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Dual network output ``sum_j Q_j Y d_j`` with ``d_j = w'_j - w_j`` (rows of ``D``)."""
    return np.sum((np.asarray(Y) @ np.asarray(D).T) * np.asarray(q).T, axis=1)


def dual_objective(problem: DualProblem, W: np.ndarray, Wp: np.ndarray) -> float:
    """Objective of eq. (22) in float64 (no factor 1/2, weight ``2 beta`` on the norms)."""
    r = dual_output(problem.Y, problem.q, Wp - W) - problem.x
    norms = np.linalg.norm(W, axis=1).sum() + np.linalg.norm(Wp, axis=1).sum()
    return float(r @ r + 2.0 * problem.beta * norms)


def cone_violation(problem: DualProblem, W: np.ndarray, Wp: np.ndarray) -> float:
    """Largest violation ``max(0, -s_ji (Y w_j)_i)`` of the cone constraints (24, corrected)."""
    worst = 0.0
    for V in (W, Wp):
        g = -problem.sign * (V @ problem.Y.T)  # (P, I); feasible iff <= 0
        worst = max(worst, float(np.max(g, initial=0.0)))
    return worst


def _cone_matrix(Y: np.ndarray, S: np.ndarray):
    """Sparse block-diagonal ``G`` with ``G vec(W) = [s_j * (Y w_j)]`` on rows ``s_ji != 0``.

    ``vec`` is row-major, so block ``j`` acts on entries ``j*m2 : (j+1)*m2``.
    """
    import scipy.sparse as sp

    blocks = []
    for j in range(S.shape[0]):
        rows = S[j] != 0
        blocks.append(sp.csr_matrix(S[j, rows, None] * Y[rows]))
    return sp.block_diag(blocks, format="csr")


def solve_dual_cvxpy(problem: DualProblem, *, solver: str = "CLARABEL") -> DualSolution:
    """Exact solve of (22)-(24) with CVXPY (second-order cone program)."""
    import time

    import cvxpy as cp

    if solver not in ("CLARABEL", "SCS"):
        raise ValueError(f"solver must be 'CLARABEL' or 'SCS'; got {solver!r}")
    Y, x, q, S = problem.Y, problem.x, problem.q, problem.sign
    P, m2 = problem.n_patterns, Y.shape[1]
    W = cp.Variable((P, m2))
    Wp = cp.Variable((P, m2))
    out = cp.sum(cp.multiply(q.T, Y @ (Wp - W).T), axis=1)
    reg = cp.sum(cp.norm(W, 2, axis=1)) + cp.sum(cp.norm(Wp, 2, axis=1))
    G = _cone_matrix(Y, S)  # s_ji y_i^T on the active rows, block diagonal in j
    cons = [G @ cp.vec(W, order="C") >= 0, G @ cp.vec(Wp, order="C") >= 0]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(out - x) + 2.0 * problem.beta * reg), cons)
    t0 = time.perf_counter()
    prob.solve(solver=solver)
    seconds = time.perf_counter() - t0
    if W.value is None:
        raise RuntimeError(f"CVXPY/{solver} returned no solution (status {prob.status})")
    Wv, Wpv = np.asarray(W.value), np.asarray(Wp.value)
    mult = max(float(np.max(c.dual_value, initial=0.0)) for c in cons)
    return DualSolution(
        W=Wv,
        Wp=Wpv,
        objective=dual_objective(problem, Wv, Wpv),
        violation=cone_violation(problem, Wv, Wpv),
        solver=f"cvxpy-{solver}",
        status=str(prob.status),
        seconds=seconds,
        history=np.zeros(0),
        max_multiplier=mult,
    )


@dataclass(frozen=True, kw_only=True)
class TorchDualConfig:
    """Torch solver of (22) with the l1 hinge penalty ``penalty * sum max(0, -s_ji (Y w_j)_i)``.

    The hinge acts on ``s_ji (Y w_j)_i``, not on the Q-weighted ``s_ji Q_ji (Y w_j)_i`` of
    (24): both describe the same cone (``Q_ji > 0`` wherever ``s_ji != 0``), but the
    multipliers of the Q-weighted rows are those of the plain rows divided by ``Q_ji``, which
    can be arbitrarily small (``|y_i^T u-bar| -> lambda``), so no fixed penalty would be exact
    for the weighted form (measured: penalised minimum below the CVXPY optimum, constraints
    violated).

    ``method="adam"`` trains (22) + penalty with Adam and a cosine step decay from ``lr`` to
    ``lr_final``, as the paper trains its dual network (Remark after Thm. 1); on this
    non-smooth objective it hovers near the minimiser and keeps a small violation.

    ``method="admm"`` minimises the same penalised objective by ADMM on the splitting
    ``Z = V`` (group norms) and ``C = K V`` (hinge), ``K V = [s_j * (Y v_j)]``:

        V+ = (2 A^T A + rho I + rho K^T K)^{-1} (2 A^T x + rho (Z - U) + rho K^T (C - T))
        Z+ = group_shrink(V+ + U, 2 beta / rho)
        C+ = prox_{(penalty/rho) hinge}(K V+ + T)
        U+ = U + V+ - Z+,   T+ = T + K V+ - C+

    with ``A V = sum_j Q_j Y (w'_j - w_j)``; the ``n x n`` matrix (``n = 2 P m^2``) is
    factorised once (Cholesky).  The returned point is ``Z`` (exactly group-sparse).  The l1
    penalty is exact (same minimiser as (22)-(24)) once ``penalty`` exceeds every KKT
    multiplier of the constraints; ``rho`` is ``rho_scale`` times the mean
    diagonal of ``2 A^T A``.
    """

    method: str = "admm"
    iters: int = 2000
    lr: float = 0.01
    lr_final: float = 1e-5
    penalty: float = 10.0
    rho_scale: float = 0.01
    init_scale: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("adam", "admm"):
            raise ValueError(f"method must be 'adam' or 'admm'; got {self.method!r}")
        if not (isinstance(self.iters, int) and self.iters >= 1):
            raise ValueError(f"iters must be an integer >= 1; got {self.iters!r}")
        for name in ("lr", "lr_final", "penalty", "rho_scale", "init_scale"):
            val = getattr(self, name)
            if not (math.isfinite(val) and val > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {val!r}")
        if self.lr_final > self.lr:
            raise ValueError(f"lr_final must be <= lr = {self.lr}; got {self.lr_final}")


class _DualOps:
    """The tensors of a :class:`DualProblem` and the linear maps of :func:`solve_dual_torch`;
    ``V = [W; Wp]`` is (2, P, m2)."""

    def __init__(self, problem: DualProblem, penalty: float) -> None:
        self.Y = torch.as_tensor(problem.Y)
        self.x = torch.as_tensor(problem.x)
        self.q = torch.as_tensor(problem.q)
        self.sq = torch.as_tensor(problem.sign.astype(np.float64))  # s_ji (see TorchDualConfig)
        self.P, self.m2 = problem.n_patterns, self.Y.shape[1]
        self.beta, self.pen = problem.beta, penalty
        self.sgn = torch.tensor([-1.0, 1.0], dtype=torch.float64)[:, None, None]  # V = [W; Wp]

    def out(self, V):  # (2, P, m2) -> (I,):  sum_j Q_j Y (Wp_j - W_j)
        return ((V * self.sgn).sum(0) @ self.Y.T * self.q).sum(0)

    def Kop(self, V):  # (2, P, m2) -> (2, P, I)
        return self.sq * (V @ self.Y.T)

    def Kop_t(self, L):  # (2, P, I) -> (2, P, m2)
        return (self.sq * L) @ self.Y

    def penalised(self, V) -> float:
        r = self.out(V) - self.x
        return float(r @ r + 2 * self.beta * V.norm(dim=2).sum() + self.pen * torch.relu(-self.Kop(V)).sum())


def _dual_adam(ops: _DualOps, config: TorchDualConfig, bar, hist: np.ndarray) -> torch.Tensor:
    """The paper's dual training: Adam on the penalised objective with a cosine decay from
    ``lr`` to ``lr_final``; returns the iterate of the lowest value seen (``hist`` filled)."""
    g = torch.Generator().manual_seed(config.seed)
    V = config.init_scale * torch.randn(2, ops.P, ops.m2, generator=g, dtype=torch.float64)
    V.requires_grad_(True)
    opt = torch.optim.Adam([V], lr=config.lr)
    decay = config.lr_final / config.lr
    best = (math.inf, V.detach().clone())
    for k in bar:
        for group in opt.param_groups:  # cosine decay from lr to lr_final
            group["lr"] = config.lr * (
                decay + (1 - decay) * 0.5 * (1 + math.cos(math.pi * k / config.iters)))
        opt.zero_grad(set_to_none=True)
        r = ops.out(V) - ops.x
        loss = r @ r + 2 * ops.beta * V.norm(dim=2).sum() + ops.pen * torch.relu(-ops.Kop(V)).sum()
        hist[k] = float(loss.detach())
        if hist[k] < best[0]:
            best = (hist[k], V.detach().clone())
        loss.backward()
        opt.step()
    return best[1]


def _admm_system(ops: _DualOps, config: TorchDualConfig) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The ADMM V-step's system: the Cholesky factor of ``H + rho (K^T K + I)``, the constant
    right-hand side and ``rho``."""
    Y, P, m2 = ops.Y, ops.P, ops.m2
    # A = [-B, B] with B = [Q_1 Y, ..., Q_P Y] (I x P m2); K^T K block diagonal.
    B = (ops.q.T[:, :, None] * Y[:, None, :]).reshape(Y.shape[0], P * m2)
    M = B.T @ B
    n = 2 * P * m2
    H = torch.zeros(n, n, dtype=torch.float64)
    h = P * m2
    H[:h, :h], H[h:, h:], H[:h, h:], H[h:, :h] = 2 * M, 2 * M, -2 * M, -2 * M
    rho = config.rho_scale * float(torch.diagonal(H).mean())
    KtK = torch.einsum("pi,ia,ib->pab", ops.sq * ops.sq, Y, Y)  # (P, m2, m2), same for W and Wp
    for b in range(2):
        for j in range(P):
            o = b * h + j * m2
            H[o:o + m2, o:o + m2] += rho * KtK[j]
    H += rho * torch.eye(n, dtype=torch.float64)
    L = torch.linalg.cholesky(H)
    rhs0 = 2 * torch.cat([-(B.T @ ops.x), B.T @ ops.x])
    return L, rhs0, rho


def _dual_admm(ops: _DualOps, config: TorchDualConfig, bar, hist: np.ndarray) -> tuple[torch.Tensor, float]:
    """ADMM with splittings ``Z = V`` (group soft-threshold) and ``C = K V`` (hinge prox);
    one loop, kept whole so the iteration reads as the algorithm. Returns ``(Z, rho)``
    (``hist`` filled with the penalised value of each ``Z``)."""
    L, rhs0, rho = _admm_system(ops, config)
    Z = torch.zeros(2, ops.P, ops.m2, dtype=torch.float64)
    U = torch.zeros_like(Z)
    C = torch.zeros(2, ops.P, ops.Y.shape[0], dtype=torch.float64)
    T = torch.zeros_like(C)
    thr, tp = 2 * ops.beta / rho, ops.pen / rho
    for k in bar:
        rhs = rhs0 + rho * (Z - U + ops.Kop_t(C - T)).reshape(-1)
        V = torch.cholesky_solve(rhs[:, None], L)[:, 0].reshape(2, ops.P, ops.m2)
        A_ = V + U
        nz = A_.norm(dim=2, keepdim=True)
        Z = A_ * torch.clamp(1.0 - thr / torch.clamp(nz, min=1e-300), min=0.0)
        KV = ops.Kop(V)
        D = KV + T  # prox of tp * max(0, -c): shift up by tp below -tp, 0 on [-tp, 0]
        C = torch.where(D > 0, D, torch.where(D < -tp, D + tp, torch.zeros_like(D)))
        U = U + V - Z
        T = T + KV - C
        hist[k] = ops.penalised(Z)
    return Z, rho


def solve_dual_torch(
    problem: DualProblem, config: TorchDualConfig, *, progress: bool = False
) -> DualSolution:
    """Minimise (22) + ``penalty * sum_j,i max(0, -s_ji (Y w_j)_i)`` over ``w, w'``.

    Each method's iteration stays one function (:func:`_dual_adam`, :func:`_dual_admm`),
    so its loop reads as the algorithm; the operators and the ADMM system are set up apart.
    """
    import time

    from tqdm.auto import tqdm

    ops = _DualOps(problem, config.penalty)
    hist = np.empty(config.iters)
    bar = tqdm(range(config.iters), disable=not progress, desc=f"dual ({config.method})",
               leave=False)
    t0 = time.perf_counter()
    if config.method == "adam":
        V = _dual_adam(ops, config, bar, hist)
        status = "completed"
    else:
        V, rho = _dual_admm(ops, config, bar, hist)
        status = f"completed; rho = {rho:.4g}"
    seconds = time.perf_counter() - t0
    Wv, Wpv = V[0].numpy().copy(), V[1].numpy().copy()
    return DualSolution(
        W=Wv,
        Wp=Wpv,
        objective=dual_objective(problem, Wv, Wpv),
        violation=cone_violation(problem, Wv, Wpv),
        solver=f"torch-{config.method}-hinge",
        status=status,
        seconds=seconds,
        history=hist,
    )
