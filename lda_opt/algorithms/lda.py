r"""LDA: the learnable descent algorithm (LDA paper, Algorithm 1; Huber smoothing).

One iteration at smoothing level ``eps_k`` (eqs. 12-15):

.. math::
    z = x_k - \alpha_k\nabla f(x_k), \quad u = z - \tau_k\nabla r_{\varepsilon_k}(z), \quad
    v = z - \alpha_k\nabla r_{\varepsilon_k}(x_k) = x_k - \alpha_k\nabla\phi_{\varepsilon_k}(x_k),

and ``x_{k+1} = u`` if ``phi_eps(u) <= phi_eps(v)``, else ``v`` (15).  The step ``alpha_k`` is
found by backtracking (Sec. 4.3.3: multiply by ``shrink = 0.5`` until
``phi_eps(v) - phi_eps(x_k) <= -c ||v - x_k||^2`` with ``c = 0.35``), which also fixes ``z`` and
``u``.  Sec. 4.3.3 does not fix the first trial step: with ``warm_start=True`` (default) it is
``min(alpha, alpha_{k-1} / shrink)`` (one growth step over the last accepted step, as in
Beck-Teboulle backtracking), with ``warm_start=False`` it is ``alpha`` every iteration.  Either
way the accepted step satisfies the same decrease rule and is ``>= shrink / (L_eps/2 + c)``, so
the bounds of ``theory/lda.md`` are unchanged; the warm start only saves trials
(``theory/lda.md``, "trial step"); with ``linesearch=False`` the fixed ``alpha`` must lie in Theorem 3.5's range
``[1/(delta1 L_eps), 1/(delta2 L_eps)]`` (``lda_opt.bounds``).  ``tau`` is arbitrary for the
theory (Sec. 3.2); the default ``tau=None`` takes ``tau_k = alpha_k`` (the limit
``beta_k -> infinity`` of ``tau_k = alpha_k beta_k / (alpha_k + beta_k)``), so that ``u`` uses
the step the line search certified for ``v``.  Defaults follow Sec. 4.3.3: ``eps0 = 1.4e-3``, ``sigma = 1e3``,
``gamma = 0.9``, ``eps_tol = 1.5e-5``.  See ``theory/lda.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import flag, real
from .base import (
    Backtracking,
    Counter,
    Oracle,
    Solver,
    State,
    StepOutput,
    accept,
    u_candidate,
)

__all__ = ["LDA", "LDABacktracking", "lda_v_search", "warm_start_aux"]


def lda_v_search(solver, oracle: Oracle, state: State, cnt: Counter, overrides: dict | None):
    """The gradient candidate ``v = x - alpha grad phi_eps(x)`` with LDA's step rule
    (backtracking ``phi_eps(v) - phi_eps(x) <= -c ||v - x||^2``, or a fixed ``alpha``)."""
    x, eps = state.point, state.eps
    b = eps.shape[0]
    everyone = torch.ones(b, dtype=torch.bool, device=eps.device)
    alpha = solver.param("alpha", b, eps, overrides)
    if solver.linesearch:
        c = solver.param("c", b, eps, overrides)
        rule = lambda pv, px, d2, e, rows: pv - px <= -c[rows] * d2
        if solver.warm_start and "alpha_prev" in state.aux:
            alpha = torch.minimum(alpha, state.aux["alpha_prev"] / solver.shrink)
        return Backtracking(solver.shrink, solver.max_linesearch).search(oracle, x, eps, everyone, alpha, rule, cnt)
    return Backtracking(solver.shrink, 1).search(
        oracle, x, eps, everyone, alpha, lambda pv, px, d2, e, rows: torch.ones_like(pv, dtype=torch.bool), cnt)


def warm_start_aux(solver, state: State, ls) -> dict[str, torch.Tensor]:
    """The last accepted step, for the next warm start.  It is kept where the search failed
    or where the accepted ``v`` equals ``x_k`` in floating point (a rounding-limited search
    whose tiny step says nothing about the curvature; ``theory/README.md``, "Floating point")."""
    if not (solver.linesearch and solver.warm_start):
        return {}
    with torch.no_grad():
        moved = (ls.point.x != state.point.x).flatten(1).any(1)
    keep = ls.accepted & moved
    return {"alpha_prev": torch.where(keep, ls.step.detach(), state.aux["alpha_prev"])}


def initial_alpha_aux(solver, point) -> dict[str, torch.Tensor]:
    """``alpha_prev = alpha`` per sample: the first search starts at ``alpha``."""
    if not (solver.linesearch and solver.warm_start):
        return {}
    x = point.x
    return {"alpha_prev": torch.full((x.shape[0],), float(solver.alpha), dtype=x.real.dtype, device=x.device)}


@dataclass(kw_only=True)
class LDABacktracking(Solver):
    """The parameters LDA, GD and AGD share: LDA's defaults (Sec. 4.3.3) and its backtracking
    ``phi_eps(v) - phi_eps(x_k) <= -c ||v - x_k||^2`` (first trial ``alpha``, factor
    ``shrink``, at most ``max_linesearch`` trials; ``linesearch=False`` takes ``alpha`` as is)."""

    eps0: float = 1.4e-3
    gamma: float = 0.9
    sigma: float = 1e3
    eps_tol: float = 1.5e-5
    max_linesearch: int = 60
    alpha: float = 1.0
    linesearch: bool = True
    c: float = 0.35
    shrink: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        for n in ("alpha", "c"):
            real(n, getattr(self, n), 0)
        real("shrink", self.shrink, 0, 1)
        for n in ("linesearch", "warm_start"):
            flag(n, getattr(self, n, False))


@dataclass(kw_only=True)
class LDA(LDABacktracking):
    """LDA Algorithm 1 with backtracking on ``alpha`` (``linesearch=True``) or a fixed
    ``alpha``."""

    tau: float | None = None
    warm_start: bool = True

    name = "lda"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tau is not None:
            real("tau", self.tau, 0)

    def init_aux(self, point) -> dict[str, torch.Tensor]:
        return initial_alpha_aux(self, point)

    def step(self, oracle: Oracle, state: State, overrides: dict | None = None) -> StepOutput:
        x, eps = state.point, state.eps
        cnt = Counter(eps.shape[0], eps.device)
        ls = lda_v_search(self, oracle, state, cnt, overrides)
        alpha_k = ls.step
        if self.tau is None and "tau" not in (overrides or {}):
            tau = alpha_k  # beta_k -> infinity in (13a)
        else:
            tau = self.param("tau", eps.shape[0], eps, overrides)
        pu = u_candidate(oracle, x, eps, alpha_k, tau, cnt)
        with torch.no_grad():
            take_u = ls.accepted & (pu.phi_eps <= ls.point.phi_eps)  # (15)
        new, _ = accept(oracle, x, eps, [(pu, take_u), (ls.point, ls.accepted)], cnt)
        branch = torch.where(take_u, 0, torch.where(ls.accepted, 1, -1))
        return StepOutput(new, branch, alpha_k.detach(), ls.evaluations, ls.capped, cnt,
                          warm_start_aux(self, state, ls))
