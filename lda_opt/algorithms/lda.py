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

The backtracking rule is :func:`backtracking_rule`, shared by the search and by
:meth:`LDABacktracking.theory` (what :mod:`lda_opt.checks` re-checks on a trace).  The theory
of LDA, GD and AGD's search is LDA's: with backtracking, meta-LDA's Lemma A3 with ``a = 1/c``
(:class:`~lda_opt.algorithms.meta_lda.LemmaA3`); with a fixed step, Lemma 3.3 and Thm 3.5
(27)-(29) when ``alpha L_eps < 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .. import bounds
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
from .candidates import CandidateRule, candidate_aux, candidate_update, propose
from .meta_lda import LemmaA3
from .theory import (
    BoundContext,
    BoundCurves,
    BoundGroup,
    ClosedBound,
    Inequality,
    Labels,
    ReferenceCurves,
    SegmentBound,
    Theory,
    TotalBound,
    holds,
    phi_eps_scale,
)

__all__ = [
    "LABELS",
    "LDA",
    "LDABacktracking",
    "backtracking_rule",
    "descent_lemma",
    "lda_v_search",
    "u_decrease",
    "warm_start_aux",
]

#: equations of the invariants every algorithm shares (lda_opt.checks)
LABELS = Labels(
    descent="LDA (21)",
    monotone="LDA (24), Lemma 3.4",
    reduction="LDA Alg. 1 line 7",
    sandwich="LDA (6)",
    termination="LDA Alg. 1 line 8",
    certificate="LDA Thm 3.6",
)
#: LDA Thm 3.5 reference curve: delta1 = delta2 = 2 minimizes delta1 delta2 / (delta2 - 1)
THM35_DELTA = 2.0


def backtracking_rule(phi_v, phi_x, d2, c):
    """Sec. 4.3.3: ``phi_eps(v) - phi_eps(x_k) <= -c ||v - x_k||^2`` (``d2 = ||v - x_k||^2``),
    as ``(lhs, rhs)``."""
    return phi_v - phi_x, -c * d2


def u_decrease(phi_u, phi_x, step, grad_norm_prev, c):
    """(15) with Sec. 4.3.3 on a u-row: ``phi_eps(u) <= phi_eps(v) <= phi_eps(x_k) - c
    (alpha_k ||grad phi_eps(x_k)||)^2``, because ``v = x_k - alpha_k grad phi_eps(x_k)`` (not
    recorded) passed the rule with the accepted ``alpha_k``; as ``(lhs, rhs)``."""
    dv = step * grad_norm_prev
    return phi_u - phi_x, -c * dv * dv


def descent_lemma(phi_new, phi_x, alpha, grad_norm_prev, L):
    """(15), (19)-(20) with the exact inner product, for a fixed step ``alpha``:
    ``phi_eps(x_{k+1}) - phi_eps(x_k) <= (-1/alpha + L_eps/2) (alpha ||grad phi_eps(x_k)||)^2``,
    as ``(lhs, rhs)``."""
    dv = alpha * grad_norm_prev
    return phi_new - phi_x, (-1.0 / alpha + L / 2) * dv * dv


def lda_v_search(solver, oracle: Oracle, state: State, cnt: Counter, overrides: dict | None):
    """The gradient candidate ``v = x - alpha grad phi_eps(x)`` with LDA's step rule
    (backtracking ``phi_eps(v) - phi_eps(x) <= -c ||v - x||^2``, or a fixed ``alpha``)."""
    x, eps = state.point, state.eps
    b = eps.shape[0]
    everyone = torch.ones(b, dtype=torch.bool, device=eps.device)
    alpha = solver.param("alpha", b, eps, overrides)
    if solver.linesearch:
        c = solver.param("c", b, eps, overrides)
        rule = lambda pv, px, d2, e, rows: holds(backtracking_rule(pv, px, d2, c[rows]))
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

    # -- theory (theory/lda.md) ------------------------------------------------------------
    def theory(self) -> Theory:
        """With backtracking: the rule on v-rows, (15) on u-rows, meta-LDA Lemma A3 with
        ``a = 1/c`` for the search and the segments.  With a fixed step: the descent lemma
        (when ``alpha L_eps < 2``), Lemma 3.3 per segment and Thm 3.5 (27)-(29).  The
        complexity curves are Lemma A3's, with Thm 3.5 as a reference, in either case."""
        a3 = self._lemma_a3()
        if not self.linesearch:
            alpha = float(self.alpha)
            return Theory(
                LABELS,
                decrease=(Inequality(
                    "phi_eps(x_{k+1}) - phi_eps(x_k) <= (-1/alpha + L_eps/2)(alpha ||grad phi_eps(x_k)||)^2",
                    "LDA (15), (19)-(20)", (0, 1),
                    lambda r: descent_lemma(r.phi_eps, r.phi_eps_prev, alpha, r.grad_norm_prev, r.L),
                    phi_eps_scale, uses_constants=True),),
                descent=lambda L: alpha * L < 2.0,
                descent_note="descent: a fixed LDA/GD step needs the constants (alpha L_eps < 2)",
                bounds=self._fixed_step_bounds,
                curves=self._curves,
            )
        return Theory(
            LABELS,
            decrease=(
                Inequality("phi_eps(v) - phi_eps(x_k) <= -c||v - x_k||^2", "LDA Sec. 4.3.3", (1,),
                           lambda r: backtracking_rule(r.phi_eps, r.phi_eps_prev, r.d2, self.c),
                           phi_eps_scale),
                Inequality(
                    "phi_eps(u) <= phi_eps(v) <= phi_eps(x_k) - c (alpha_k ||grad phi_eps(x_k)||)^2",
                    "LDA (15) + Sec. 4.3.3", (0,),
                    lambda r: u_decrease(r.phi_eps, r.phi_eps_prev, r.step, r.grad_norm_prev, self.c),
                    phi_eps_scale),
            ),
            # the accepted alpha_k is shared by u and v: its bound holds on both branches
            linesearch=a3.linesearch("LDA Sec. 4.3.3 via Lemma A3", (0, 1),
                                     warm=bool(getattr(self, "warm_start", False))),
            bounds=a3.bounds("LDA Sec. 4.3.3 via meta-LDA Lemma A3"),
            curves=self._curves,
        )

    def _lemma_a3(self) -> LemmaA3:
        """The backtracking rule is (A7) with ``a = 1/c``, ``rho = shrink`` (theory/lda.md)."""
        return LemmaA3(float(self.alpha), 1.0 / float(self.c), float(self.shrink))

    def _fixed_step_bounds(self, ctx: BoundContext) -> Iterator[BoundGroup]:
        """``1 +`` Lemma 3.3 per segment with ``delta1 = delta2 = 1/(alpha L_eps)``; then,
        when ``alpha L_eps < 1`` on every segment (Thm 3.5's range), (27)-(29) corrected with
        ``delta1 = 1/(alpha L_{eps_0})``, ``delta2 = 1/(alpha L_{eps_min})``."""
        alpha = float(self.alpha)

        def applies(seg) -> str | None:
            dl = 1.0 / (alpha * ctx.L(seg.eps))
            if dl > 1.0:
                return None
            return (f"segment-bound: alpha L_eps = {1 / dl:.3g} >= 1 at eps = {seg.eps:.3g}, "
                    "outside LDA Thm 3.5's step range")

        def lemma33(seg) -> float:
            dl = 1.0 / (alpha * ctx.L(seg.eps))
            eta = ctx.sigma * ctx.gamma * seg.eps
            return 1.0 + bounds.lda_fixed_eps_iterations(
                ctx.L(seg.eps), eta, max(seg.start, ctx.phi_star), ctx.phi_star, ctx.m, seg.eps,
                dl, dl, ctx.kappa)

        yield BoundGroup(SegmentBound("1 + Lemma 3.3 bound", "LDA Lemma 3.3 (+1)", lemma33, applies))
        eps0, eps_min = ctx.eps0, ctx.segments[-1].eps
        d1, d2 = 1.0 / (alpha * ctx.L(eps0)), 1.0 / (alpha * ctx.L(eps_min))
        c1, c2 = bounds.lda_segment_constants(
            d1, d2, ctx.L_f, ctx.L_g, ctx.M, ctx.m, ctx.phi_x0, ctx.phi_star, eps0, ctx.sigma,
            ctx.gamma, ctx.kappa)
        g = ctx.gamma
        yield BoundGroup(
            SegmentBound("1 + c1 gamma^(-2l) + c2 gamma^(-3l)", "LDA (27)-(28) corrected",
                         lambda seg: bounds.lda_segment_bound(seg.index, c1, c2, g)),
            TotalBound("iterations up to the last reduction <= sum of (27)", "LDA (29) corrected",
                       lambda done: bounds.lda_total_bound_sum(len(done), c1, c2, g)),
            ClosedBound("iterations <= closed form (29) in eps_tol", "LDA (29) corrected",
                        bounds.lda_total_bound(ctx.eps_tol, c1, c2, ctx.sigma, eps0, g)),
        )

    def _curves(self, ctx: BoundContext) -> BoundCurves:
        """``1 +`` Lemma A3 per segment, summed (valid for backtracking), with Thm 3.5
        (27)/(29) corrected at ``delta1 = delta2 = 2`` as a reference that assumes step sizes
        in ``[1/(delta1 L_eps), 1/(delta2 L_eps)]``."""
        curves = self._lemma_a3().curves(
            ctx,
            "1 + meta-LDA Lemma A3 per segment, a = 1/c (LDA Sec. 4.3.3 "
            "backtracking, theory/lda.md); summed over segments",
        )
        c1, c2 = bounds.lda_segment_constants(
            THM35_DELTA, THM35_DELTA, ctx.L_f, ctx.L_g, ctx.M, ctx.m, ctx.phi_x0, ctx.phi_star,
            ctx.eps0, ctx.sigma, ctx.gamma, ctx.kappa)
        eps0, sigma, g = ctx.eps0, ctx.sigma, ctx.gamma
        reference = ReferenceCurves(
            segment=lambda l: bounds.lda_segment_bound(l, c1, c2, g),
            total=lambda t: bounds.lda_total_bound(t, c1, c2, sigma, eps0, g),
            equation=(
                "LDA Thm 3.5 (27)-(29) corrected, delta1 = delta2 = 2: assumes alpha_k in "
                "[1/(delta1 L_eps), 1/(delta2 L_eps)], which backtracking does not enforce; "
                "reference only, not a bound for this run"
            ),
            constants={"c1": c1, "c2": c2, "delta1": THM35_DELTA, "delta2": THM35_DELTA},
        )
        return dataclasses.replace(curves, reference=reference)


@dataclass(kw_only=True)
class LDA(LDABacktracking, CandidateRule):
    """LDA Algorithm 1 with backtracking on ``alpha`` (``linesearch=True``) or a fixed
    ``alpha``.

    ``candidate`` (:class:`~lda_opt.algorithms.candidates.CandidateRule`) chooses ``u``:
    ``"paper"`` (14a), ``"lbfgs"`` or ``"nesterov"`` (computed after ``v`` and searched on
    (15) itself, ``phi_eps(u) <= phi_eps(v)``; only where ``v``'s search succeeded).
    Every rule keeps (15), ``x_{k+1} = u`` only if ``phi_eps(u) <= phi_eps(v)``, so Lemmas
    3.3-3.4 and Theorems 3.5-3.6 hold for each (``theory/candidates.md``); the trace's
    ``step`` is ``alpha_k`` of ``v`` on both branches, as for ``"paper"``."""

    tau: float | None = None
    warm_start: bool = True

    name = "lda"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tau is not None:
            real("tau", self.tau, 0)
        self._check_candidate()

    def init_aux(self, point) -> dict[str, torch.Tensor]:
        return {**initial_alpha_aux(self, point), **candidate_aux(self, point, self.alpha)}

    def step(self, oracle: Oracle, state: State, overrides: dict | None = None) -> StepOutput:
        x, eps = state.point, state.eps
        cnt = Counter(eps.shape[0], eps.device)
        ls = lda_v_search(self, oracle, state, cnt, overrides)
        alpha_k = ls.step
        prop = None
        if self.candidate == "paper":
            if self.tau is None and "tau" not in (overrides or {}):
                tau = alpha_k  # beta_k -> infinity in (13a)
            else:
                tau = self.param("tau", eps.shape[0], eps, overrides)
            pu = u_candidate(oracle, x, eps, alpha_k, tau, cnt)
            with torch.no_grad():
                take_u = ls.accepted & (pu.phi_eps <= ls.point.phi_eps)  # (15)
        else:
            phi_v = ls.point.phi_eps.detach()
            rule = lambda pv, px, d2, e, rows: pv <= phi_v[rows]  # (15), searched
            prop = propose(self, oracle, state, rule, cnt, self.param("alpha", eps.shape[0], eps, overrides),
                           need=ls.accepted)
            pu = prop.point
            with torch.no_grad():
                take_u = ls.accepted & prop.accepted & (pu.phi_eps <= ls.point.phi_eps)  # (15)
        new, moved = accept(oracle, x, eps, [(pu, take_u), (ls.point, ls.accepted)], cnt)
        branch = torch.where(take_u, 0, torch.where(ls.accepted, 1, -1))
        return StepOutput(new, branch, alpha_k.detach(), ls.evaluations, ls.capped, cnt,
                          {**warm_start_aux(self, state, ls), **candidate_update(self, state, new, moved, take_u, prop)})
