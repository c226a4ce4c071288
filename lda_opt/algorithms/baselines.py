r"""Baselines of LDA Sec. 4.3.1: GD (the v-step only) and AGD (inertial).

* :class:`GD` -- ``x_{k+1} = x_k - alpha_k grad phi_eps(x_k)`` with LDA's step rule
  (backtracking ``phi_eps(v) - phi_eps(x_k) <= -c ||v - x_k||^2``, warm-started as in
  :class:`~lda_opt.LDA`), i.e. LDA with its u-step turned off; all of LDA's theory applies.
* :class:`AGD` -- the inertial step ``x_{k+1} = x_k - alpha_k grad phi_eps(x_k) +
  theta (x_k - x_{k-1})``.  The paper writes ``grad f`` in this formula, which would drop the
  regularizer; we use ``grad phi_eps`` (``theory/lda.md``).  The paper's AGD-Net learns
  ``alpha_k, theta_k``; as a solver we backtrack ``alpha_k`` on the same decrease rule and,
  when no step passes within the cap, restart without momentum for that iteration (a
  documented safeguard; without it a fixed step diverges once ``alpha > 2/L_eps``).
  With ``linesearch=False`` the inertial step is taken with the given ``alpha`` and ``theta``
  (AGD-Net: learned per phase through ``overrides``; no safeguard, no theory).

GD's theory is LDA's (:meth:`~lda_opt.algorithms.lda.LDABacktracking.theory`).  AGD's
:meth:`AGD.theory` declares only its decrease rule (with ``linesearch=True``): the inertial
step has no line-search, segment or complexity bound.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .._validate import real
from .base import (
    Backtracking,
    Counter,
    Oracle,
    Point,
    State,
    StepOutput,
    accept,
    per_sample,
)
from .lda import (
    LABELS,
    LDABacktracking,
    backtracking_rule,
    initial_alpha_aux,
    lda_v_search,
    warm_start_aux,
)
from .theory import Inequality, Theory, holds, phi_eps_scale

__all__ = ["AGD", "GD"]


@dataclass(kw_only=True)
class GD(LDABacktracking):
    """Gradient descent on ``phi_eps`` with LDA's backtracking and eps-continuation."""

    warm_start: bool = True

    name = "gd"

    def init_aux(self, point: Point) -> dict[str, torch.Tensor]:
        return initial_alpha_aux(self, point)

    def step(self, oracle: Oracle, state: State, overrides: dict | None = None) -> StepOutput:
        cnt = Counter(state.eps.shape[0], state.eps.device)
        ls = lda_v_search(self, oracle, state, cnt, overrides)
        new, _ = accept(oracle, state.point, state.eps, [(ls.point, ls.accepted)], cnt)
        branch = torch.where(ls.accepted, 1, -1)
        return StepOutput(new, branch, ls.step.detach(), ls.evaluations, ls.capped, cnt,
                          warm_start_aux(self, state, ls))


@dataclass(kw_only=True)
class AGD(LDABacktracking):
    """Inertial (heavy-ball) gradient descent with momentum ``theta``."""

    theta: float = 0.5

    name = "agd"

    def __post_init__(self) -> None:
        super().__post_init__()
        real("theta", self.theta, 0, 1, lo_open=False)

    def init_aux(self, point: Point) -> dict[str, torch.Tensor]:
        return {"x_prev": point.x.detach().clone()}

    def theory(self) -> Theory:
        """With ``linesearch=True`` every move satisfies LDA's rule ``dphi <= -c ||x_{k+1} -
        x_k||^2`` (so descent); with ``linesearch=False`` nothing is guaranteed.  No bounds."""
        rule = "AGD rule (LDA Sec. 4.3.3)"
        labels = dataclasses.replace(LABELS, descent=rule)
        no_bounds = "linesearch-bound, segment-bound, total-bound: AGD has no bound"
        if not self.linesearch:
            return Theory(labels, descent=False, no_bounds=no_bounds, notes=(
                "descent, sufficient-decrease, bounds: AGD with linesearch=False has no theory",))
        return Theory(labels, no_bounds=no_bounds, decrease=(Inequality(
            "phi_eps(x_{k+1}) - phi_eps(x_k) <= -c||x_{k+1} - x_k||^2", rule, (0, 1),
            lambda r: backtracking_rule(r.phi_eps, r.phi_eps_prev, r.d2, self.c), phi_eps_scale),))

    def step(self, oracle: Oracle, state: State, overrides: dict | None = None) -> StepOutput:
        x, eps = state.point, state.eps
        b = eps.shape[0]
        cnt = Counter(b, eps.device)
        P = lambda n: self.param(n, b, eps, overrides)
        alpha, c = P("alpha"), P("c")
        rule = lambda pv, px, d2, e, rows: holds(backtracking_rule(pv, px, d2, c[rows]))
        if not self.linesearch:  # AGD-Net: the fixed (learned) step, always taken
            rule = lambda pv, px, d2, e, rows: torch.ones_like(pv, dtype=torch.bool)
        search = Backtracking(self.shrink, self.max_linesearch if self.linesearch else 1)
        everyone = torch.ones(b, dtype=torch.bool, device=eps.device)
        shift = per_sample(P("theta"), x.x) * (x.x - state.aux["x_prev"])
        ls = search.search(oracle, x, eps, everyone, alpha, rule, cnt, shift=shift)
        restart = search.search(oracle, x, eps, ls.capped, alpha, rule, cnt)
        new, moved = accept(oracle, x, eps, [(ls.point, ls.accepted), (restart.point, restart.accepted)], cnt)
        branch = torch.where(moved, 1, -1)
        step = torch.where(ls.accepted, ls.step, restart.step).detach()
        x_prev = torch.where(per_sample(moved, x.x), x.x, state.aux["x_prev"])
        if not oracle.differentiable:  # unrolled AGD-Net: gradients also flow through x_{k-1}
            x_prev = x_prev.detach()
        return StepOutput(new, branch, step, ls.evaluations + restart.evaluations,
                          restart.capped, cnt, {"x_prev": x_prev})
