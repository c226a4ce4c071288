r"""Meta-LDA's convergent unrolling algorithm (meta-LDA paper, Algorithm 1; Sqrt smoothing).

With ``R_eps = kappa r_eps`` and ``phi_eps = f + R_eps`` (eq. 5), one iteration is

.. math::
    z = x_t - \alpha_t\nabla f(x_t), \quad u = z - \tau_t\nabla R_{\varepsilon_t}(z)
    \qquad \text{(6a), (8)}

``u`` is accepted (line 5) when ``||grad phi_eps(x_t)|| <= a ||u - x_t||`` and
``phi_eps(u) - phi_eps(x_t) <= -(1/a) ||u - x_t||^2`` (A6); otherwise
``v = x_t - alpha_t grad phi_eps(x_t)`` (line 8, eq. 10) with ``alpha_t <- rho alpha_t`` until
``phi_eps(v) - phi_eps(x_t) <= -(1/a) ||v - x_t||^2`` (line 9, A7).  Each iteration starts the
search from the configured ``alpha`` (the paper's per-phase ``alpha_t``).  The monotone
quantity across reductions is ``phi_eps + kappa m eps`` (Lemma A4 corrected, see
``theory/meta_lda.md``).  Defaults are the paper's (Sec. 4.1): ``a = 1e5``, ``sigma = 1e3``,
``rho = gamma = 0.9``, ``alpha_0 = tau_0 = 0.01``, ``eps_0 = 1e-3``, ``eps_tol = 1e-3``.

The tests (A6) and (A7) are :func:`grad_test_a6` and :func:`decrease_a6_a7`, shared by
:meth:`MetaLDA.step` and :meth:`MetaLDA.theory` (what :mod:`lda_opt.checks` re-checks on a
trace).  :class:`LemmaA3` is Lemma A3 (corrected) for any search on the rule
``dphi <= -(1/a) ||v - x||^2``: its line-search bound, its per-segment and summed iteration
bounds, and its complexity curves; LDA's backtracking (``a = 1/c``) uses it too
(``theory/lda.md``).  See ``theory/meta_lda.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from .. import bounds
from .._validate import real
from ..smoothing import Smoothing, Sqrt
from .base import (
    Backtracking,
    Counter,
    Oracle,
    Solver,
    State,
    StepOutput,
    accept,
    sq_norm,
    u_candidate,
)
from .theory import (
    BoundContext,
    BoundCurves,
    BoundGroup,
    Inequality,
    Labels,
    LineSearchBound,
    SegmentBound,
    Theory,
    TotalBound,
    holds,
    phi_eps_scale,
)

__all__ = ["LABELS", "LemmaA3", "MetaLDA", "decrease_a6_a7", "grad_test_a6"]

#: equations of the invariants every algorithm shares (lda_opt.checks)
LABELS = Labels(
    descent="meta-LDA (A11)",
    monotone="meta-LDA (A19), Lemma A4 corrected",
    reduction="meta-LDA Alg. 1 line 15",
    sandwich="meta-LDA (5) corrected",
    termination="meta-LDA Alg. 1 line 16",
    certificate="meta-LDA Thm A5",
)


def grad_test_a6(grad_norm, dist, a):
    """(A6), first test: ``||grad phi_eps(x_t)|| <= a ||u - x_t||``, as ``(lhs, rhs)``."""
    return grad_norm, a * dist


def decrease_a6_a7(phi_new, phi_x, d2, a):
    """(A6) second test and the line-search rule (A7):
    ``phi_eps(w) - phi_eps(x_t) <= -(1/a) ||w - x_t||^2`` (``d2 = ||w - x_t||^2``), as
    ``(lhs, rhs)``."""
    return phi_new - phi_x, -d2 / a


@dataclass(frozen=True)
class LemmaA3:
    r"""Meta-LDA Lemma A3 (corrected, ``theory/meta_lda.md``) for a backtracking search on
    ``phi_eps(v) - phi_eps(x) <= -(1/a) ||v - x||^2`` with first trial ``alpha0`` and factor
    ``rho``, with the sharp threshold ``T = 1/(1/a + L_eps/2)``
    (:func:`~lda_opt.bounds.metalda_step_threshold`).

    * the search needs ``<= metalda_max_backtracks + 1`` evaluations and accepts a step
      ``>= metalda_min_step`` (:meth:`linesearch`);
    * segment ``l`` at level ``eps`` has at most ``1 +``
      :func:`~lda_opt.bounds.metalda_fixed_eps_iterations` iterations with ``delta = L_eps *
      metalda_min_step``, from its start value (:meth:`segment_bound`); the total sums them
      with each start bounded a priori by the monotone quantity (:meth:`bounds`,
      :meth:`curves`).
    """

    alpha0: float
    a: float
    rho: float

    def limits(self, L: float, first_trial: float) -> tuple[float, int, float]:
        """``(T, l_max, min_step)`` of a search from ``first_trial``."""
        T = bounds.metalda_step_threshold(L, self.a, sharp=True)
        lmax = bounds.metalda_max_backtracks(first_trial, L, self.a, self.rho, sharp=True) + 1
        return T, lmax, bounds.metalda_min_step(first_trial, L, self.a, self.rho, sharp=True)

    def linesearch(self, equation: str, step_branches: tuple[int, ...],
                   warm: bool = False) -> LineSearchBound:
        """The line-search bound; ``warm``: the first trial is ``min(alpha0, s_prev/rho)``
        (``s_prev`` the last accepted step; LDA's warm start)."""

        def limits(eps: float, L: float, prev: float | None) -> tuple[float, int, float]:
            a0 = self.alpha0
            if warm and prev is not None:
                a0 = min(a0, prev / self.rho)
            return self.limits(L, a0)

        return LineSearchBound(equation, equation, step_branches, limits)

    def segment_bound(self, ctx: BoundContext, eps: float, start: float) -> float:
        """``1 +`` Lemma A3 statement 2 at level ``eps`` from ``phi_eps(x_start) = start``."""
        L = ctx.L(eps)
        delta = L * bounds.metalda_min_step(self.alpha0, L, self.a, self.rho, sharp=True)
        eta = ctx.sigma * ctx.gamma * eps
        return 1.0 + bounds.metalda_fixed_eps_iterations(
            L, self.a, delta, eta, start, ctx.phi_star, ctx.m, eps, ctx.kappa
        )

    def bounds(self, source: str) -> Callable[[BoundContext], Iterator[BoundGroup]]:
        """Each segment from its recorded start; the total up to the last reduction from the
        a-priori starts ``phi_{eps_l}(x_start) <= phi_{eps_0}(x_0) + gap(eps_0) - gap(eps_l)``
        (LDA (24), meta-LDA (A19))."""

        def groups(ctx: BoundContext) -> Iterator[BoundGroup]:
            gap0 = ctx.gap(ctx.eps0)

            def total(done) -> float:
                out = 0.0
                for seg in done:
                    start = ctx.phi_x0 + gap0 - ctx.gap(seg.eps)
                    out += self.segment_bound(ctx, seg.eps, max(start, ctx.phi_star))
                return out

            yield BoundGroup(
                SegmentBound(
                    "1 + C (phi_eps(x_start) - phi* + kappa m eps)/eta^2",
                    source + " (+1)",
                    lambda seg: self.segment_bound(ctx, seg.eps, max(seg.start, ctx.phi_star)),
                ),
                TotalBound(
                    "iterations up to the last reduction <= sum of a-priori segment bounds",
                    source + " summed, starts bounded by (A19)/(24)",
                    total,
                ),
            )

        return groups

    def curves(self, ctx: BoundContext, equation: str) -> BoundCurves:
        """Segment ``l`` at ``eps_l = eps0 gamma^l`` from the a-priori start
        ``phi(x0) + kappa m (eps0 - eps_l)``; the total is the sum over the
        ``num_reductions(eps_tol)`` segments."""
        Q = ctx.phi_x0 + ctx.kappa * ctx.m * ctx.eps0  # >= phi_{eps_l}(x_{t_l+1}) + kappa m eps_l

        def segment(l: int) -> float:
            eps = ctx.eps0 * ctx.gamma**l
            return self.segment_bound(ctx, eps, Q - ctx.kappa * ctx.m * eps)

        def total_sum(t: float) -> float:
            ell = bounds.num_reductions(ctx.eps0, t, ctx.sigma, ctx.gamma)
            return math.fsum(segment(l) for l in range(ell))

        return BoundCurves(
            segment=segment,
            total=total_sum,
            total_sum=total_sum,
            equation=equation,
            label="sum of 1 + Lemma A3",
            segment_label="1 + meta-LDA Lemma A3 (fixed-eps bound)",
            constants={"a": self.a, "rho": self.rho, "alpha0": self.alpha0,
                       "numerator": Q - ctx.phi_star},
        )


@dataclass(kw_only=True)
class MetaLDA(Solver):
    """Meta-LDA Algorithm 1."""

    eps0: float = 1e-3
    gamma: float = 0.9
    sigma: float = 1e3
    eps_tol: float = 1e-3
    smoothing: Smoothing = field(default_factory=Sqrt)
    max_linesearch: int = 200
    alpha: float = 0.01
    tau: float = 0.01
    a: float = 1e5
    rho: float = 0.9

    name = "meta-lda"

    def __post_init__(self) -> None:
        super().__post_init__()
        for n in ("alpha", "tau", "a"):
            real(n, getattr(self, n), 0)
        real("rho", self.rho, 0, 1)

    def step(self, oracle: Oracle, state: State, overrides: dict | None = None) -> StepOutput:
        x, eps = state.point, state.eps
        b = eps.shape[0]
        cnt = Counter(b, eps.device)
        P = lambda n: self.param(n, b, eps, overrides)
        alpha, a = P("alpha"), P("a")
        pu = u_candidate(oracle, x, eps, alpha, P("tau"), cnt)
        with torch.no_grad():
            du2 = sq_norm(pu.x - x.x)
            gx = sq_norm(x.grad).sqrt()
            take_u = holds(grad_test_a6(gx, du2.sqrt(), a)) \
                & holds(decrease_a6_a7(pu.phi_eps, x.phi_eps, du2, a)) & torch.isfinite(pu.phi_eps)
        ls = Backtracking(self.rho, self.max_linesearch).search(
            oracle, x, eps, ~take_u, alpha,
            lambda pv, px, d2, e, rows: holds(decrease_a6_a7(pv, px, d2, a[rows])),  # line 9 (A7)
            cnt,
        )
        new, _ = accept(oracle, x, eps, [(pu, take_u), (ls.point, ls.accepted)], cnt)
        branch = torch.where(take_u, 0, torch.where(ls.accepted, 1, -1))
        step = torch.where(take_u, alpha.detach(), ls.step.detach())
        return StepOutput(new, branch, step, ls.evaluations, ls.capped, cnt)

    def theory(self) -> Theory:
        """(A6) on u-rows, (A7) on v-rows, and Lemma A3 for the search, the segments and the
        complexity curves (``theory/meta_lda.md``)."""
        a = self.a
        dec = "phi_eps(x_{k+1}) - phi_eps(x_k) <= -(1/a)||x_{k+1} - x_k||^2"
        a3 = LemmaA3(float(self.alpha), float(self.a), float(self.rho))
        return Theory(
            LABELS,
            decrease=(
                Inequality("||grad phi_eps(x_k)|| <= a||u - x_k||", "meta-LDA (A6)", (0,),
                           lambda r: grad_test_a6(r.grad_norm_prev, r.dist, a)),
                Inequality(dec, "meta-LDA (A6)", (0,),
                           lambda r: decrease_a6_a7(r.phi_eps, r.phi_eps_prev, r.d2, a), phi_eps_scale),
                Inequality(dec, "meta-LDA (A7)", (1,),
                           lambda r: decrease_a6_a7(r.phi_eps, r.phi_eps_prev, r.d2, a), phi_eps_scale),
            ),
            linesearch=a3.linesearch("meta-LDA Lemma A3", (1,)),
            bounds=a3.bounds("meta-LDA Lemma A3"),
            curves=lambda ctx: a3.curves(
                ctx, "1 + meta-LDA Lemma A3 (corrected) per segment; summed over segments"),
        )
