r"""Modified ELDA (U-LDA paper, Algorithm 1; Huber smoothing).

One iteration at smoothing level ``eps_t``:

.. math::
    z = x_t - \alpha_t\nabla f(x_t), \quad
    u = z - \beta_t\nabla r_{\varepsilon_t}(z), \quad
    \beta_t = \frac{\alpha_t\gamma_t}{\alpha_t+\gamma_t} \qquad \text{(4.8)}

``u`` is accepted when (4.9a) ``||grad phi_eps(x_t)|| <= ||u - x_t|| / eta1`` and (4.9b)
``phi_eps(u) - phi_eps(x_t) <= -(eta2/2) ||u - x_t||^2``.  Otherwise
``v = x_t - abar grad phi_eps(x_t)`` (4.10) with ``abar`` reset to ``alpha_bar`` in every
iteration (Alg. 1 line 7) and shrunk by ``rho`` until (4.11)
``phi_eps(v) - phi_eps(x_t) <= -(eta3/eps_t) ||v - x_t||^2``.  Lemma 4.5 bounds the number of
shrinks by ``l_max`` (4.13, ``lda_opt.bounds.elda_lmax``); Theorem 4.6 gives the
``O(eps_tol^-3)`` iteration complexity (``lda_opt.bounds.elda_total_bound``).  See
``theory/elda.md``.

The paper gives no numerical defaults for ``eta1..3``, ``alpha_bar``, ``alpha`` or
``gamma_t``; ours mirror meta-LDA's ``a = 1e5`` (``eta1 = 1/a``, ``eta2 = 2/a``) and use
unit steps, which equal ``1/L_f`` for the normalized operators of this library.

The tests (4.9a), (4.9b) and (4.11) are :func:`eq_4_9a`, :func:`eq_4_9b` and :func:`eq_4_11`,
shared by :meth:`ELDA.step` and :meth:`ELDA.theory`, which also declares the line-search
bound (4.13)/(4.20), the segment and total bounds (4.27)-(4.28) and the complexity curves
that :mod:`lda_opt.checks` and :func:`lda_opt.experiments.complexity.bound_curves` evaluate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .. import bounds
from .._validate import real
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
from .candidates import CandidateRule, candidate_aux, candidate_update, propose
from .theory import (
    BoundContext,
    BoundCurves,
    BoundGroup,
    ClosedBound,
    Inequality,
    Labels,
    LineSearchBound,
    SegmentBound,
    Theory,
    TotalBound,
    holds,
    phi_eps_scale,
)

__all__ = ["ELDA", "LABELS", "eq_4_9a", "eq_4_9b", "eq_4_11"]

#: equations of the invariants every algorithm shares (lda_opt.checks)
LABELS = Labels(
    descent="ELDA (4.23)",
    monotone="ELDA (4.30)",
    reduction="ELDA Alg. 1 line 15",
    sandwich="ELDA (4.5)",
    termination="ELDA Alg. 1 line 18",
    certificate="ELDA (4.31)",
)


def eq_4_9a(grad_norm, dist, eta1):
    """(4.9a): ``||grad phi_eps(x_t)|| <= ||u - x_t|| / eta1``, as ``(lhs, rhs)``."""
    return grad_norm, dist / eta1


def eq_4_9b(phi_u, phi_x, d2, eta2):
    """(4.9b): ``phi_eps(u) - phi_eps(x_t) <= -(eta2/2) ||u - x_t||^2``, as ``(lhs, rhs)``."""
    return phi_u - phi_x, -(eta2 / 2) * d2


def eq_4_11(phi_v, phi_x, d2, eps, eta3):
    """(4.11): ``phi_eps(v) - phi_eps(x_t) <= -(eta3/eps) ||v - x_t||^2``, as ``(lhs, rhs)``."""
    return phi_v - phi_x, -(eta3 / eps) * d2


@dataclass(kw_only=True)
class ELDA(Solver, CandidateRule):
    """Modified ELDA.  ``gamma_u`` is the paper's ``gamma_t`` (4.7b); ``gamma`` is the
    smoothing reduction factor.  ``max_linesearch`` caps the (4.11) search.

    ``candidate`` (with ``memory``, ``reset_memory``, ``candidate_shrink``,
    ``candidate_linesearch``; :class:`~lda_opt.algorithms.candidates.CandidateRule`) chooses
    the ``u`` tested by (4.9a)-(4.9b): ``"paper"`` (4.8), ``"lbfgs"`` or ``"nesterov"``
    (searched on (4.9a)-(4.9b) themselves; ``theory/candidates.md``).  Every accepted ``u``
    satisfies (4.9a)-(4.9b) and every ``v`` (4.11), so Lemma 4.5 and Theorem 4.6 hold for
    each rule.  The trace's ``linesearch`` counts the (4.11) evaluations; its ``step`` is the
    accepted ``t`` (L-BFGS), ``s`` (Nesterov) or ``alpha`` (paper) on u-rows."""

    eps0: float = 1e-3
    gamma: float = 0.9
    sigma: float = 1e3
    eps_tol: float = 1e-3
    max_linesearch: int = 200
    alpha: float = 1.0
    gamma_u: float = 1.0
    alpha_bar: float = 1.0
    eta1: float = 1e-5
    eta2: float = 2e-5
    eta3: float = 1e-5
    rho: float = 0.9

    name = "elda"

    def __post_init__(self) -> None:
        super().__post_init__()
        for n in ("alpha", "gamma_u", "alpha_bar", "eta1", "eta2", "eta3"):
            real(n, getattr(self, n), 0)
        real("rho", self.rho, 0, 1)
        self._check_candidate()

    def init_aux(self, point) -> dict[str, torch.Tensor]:
        """The candidate rule's per-sample state (none for ``"paper"``)."""
        return candidate_aux(self, point, self.alpha_bar)

    def step(self, oracle: Oracle, state: State, overrides: dict | None = None) -> StepOutput:
        x, eps = state.point, state.eps
        b = eps.shape[0]
        cnt = Counter(b, eps.device)
        P = lambda n: self.param(n, b, eps, overrides)
        prop = None
        if self.candidate == "paper":
            alpha, gam = P("alpha"), P("gamma_u")
            pu = u_candidate(oracle, x, eps, alpha, alpha * gam / (alpha + gam), cnt)
            with torch.no_grad():
                du2 = sq_norm(pu.x - x.x)
                gx = sq_norm(x.grad).sqrt()
                take_u = holds(eq_4_9a(gx, du2.sqrt(), P("eta1"))) \
                    & holds(eq_4_9b(pu.phi_eps, x.phi_eps, du2, P("eta2"))) \
                    & torch.isfinite(pu.phi_eps)
            u_step = alpha.detach()
        else:
            with torch.no_grad():
                gx = sq_norm(x.grad).sqrt()
            eta1, eta2 = P("eta1"), P("eta2")
            test = lambda pv, px, d2, e, rows: holds(eq_4_9a(gx[rows], d2.sqrt(), eta1[rows])) \
                & holds(eq_4_9b(pv, px, d2, eta2[rows]))
            prop = propose(self, oracle, state, test, cnt, P("alpha_bar"))
            pu, take_u, u_step = prop.point, prop.accepted, prop.step.detach()
        if not bool(take_u.any()):
            pu.graphs = []  # no row takes u: free the graph of q(u) before the (4.11) search
        eta3 = P("eta3")
        ls = Backtracking(self.rho, self.max_linesearch).search(
            oracle, x, eps, ~take_u, P("alpha_bar"),
            lambda pv, px, d2, e, rows: holds(eq_4_11(pv, px, d2, e, eta3[rows])),
            cnt,
        )
        new, moved = accept(oracle, x, eps, [(pu, take_u), (ls.point, ls.accepted)], cnt)
        branch = torch.where(take_u, 0, torch.where(ls.accepted, 1, -1))
        step = torch.where(take_u, u_step, ls.step.detach())
        return StepOutput(new, branch, step, ls.evaluations, ls.capped, cnt,
                          candidate_update(self, state, new, moved, take_u, prop))

    # -- theory (theory/elda.md) -----------------------------------------------------------
    def theory(self) -> Theory:
        """(4.9a)-(4.9b) on u-rows, (4.11) on v-rows; Lemma 4.5 for the search; Thm 4.6
        for the segments, the totals and the complexity curves."""
        return Theory(
            LABELS,
            decrease=(
                Inequality("||grad phi_eps(x_k)|| <= ||u - x_k||/eta1", "ELDA (4.9a)", (0,),
                           lambda r: eq_4_9a(r.grad_norm_prev, r.dist, self.eta1)),
                Inequality("phi_eps(u) - phi_eps(x_k) <= -(eta2/2)||u - x_k||^2", "ELDA (4.9b)", (0,),
                           lambda r: eq_4_9b(r.phi_eps, r.phi_eps_prev, r.d2, self.eta2), phi_eps_scale),
                Inequality("phi_eps(v) - phi_eps(x_k) <= -(eta3/eps)||v - x_k||^2", "ELDA (4.11)", (1,),
                           lambda r: eq_4_11(r.phi_eps, r.phi_eps_prev, r.d2, r.eps, self.eta3),
                           phi_eps_scale),
            ),
            linesearch=LineSearchBound("ELDA (4.13) corrected", "ELDA (4.20) corrected", (1,),
                                       self._linesearch_limits),
            bounds=self._bounds,
            curves=self._curves,
        )

    def _linesearch_limits(self, eps: float, L: float, prev: float | None) -> tuple[float, int, float]:
        """(4.13)/(4.20) corrected: the threshold ``T = 1/(L_eps/2 + eta3/eps)``, ``l_max``
        (:func:`~lda_opt.bounds.elda_lmax`) and the step bound
        (:func:`~lda_opt.bounds.elda_min_step`); the search restarts at ``alpha_bar``."""
        T = 1.0 / (0.5 * L + self.eta3 / eps)
        return (T, bounds.elda_lmax(self.alpha_bar, L, self.eta3, eps, self.rho),
                bounds.elda_min_step(self.alpha_bar, L, self.eta3, eps, self.rho))

    def _constants(self, ctx: BoundContext) -> tuple[float, float]:
        """``(C1, C2)`` of (4.27) (:func:`~lda_opt.bounds.elda_segment_constants`)."""
        return bounds.elda_segment_constants(
            ctx.L_f, ctx.L_g, ctx.M, ctx.m, ctx.phi_x0, ctx.phi_star, ctx.eps0, ctx.sigma,
            self.eta1, self.eta2, self.eta3, self.rho, self.alpha_bar, ctx.kappa,
        )

    def _bounds(self, ctx: BoundContext) -> Iterator[BoundGroup]:
        """(4.27) per segment, (4.28) as the finite sum and, converged, in ``eps_tol``."""
        C1, C2 = self._constants(ctx)
        g = ctx.gamma
        yield BoundGroup(
            SegmentBound("1 + C1 gamma^(-3l-2) + C2 gamma^(-2l-2)", "ELDA (4.27) corrected",
                         lambda seg: bounds.elda_segment_bound(seg.index, C1, C2, g)),
            TotalBound("iterations up to the last reduction <= sum of (4.27)", "ELDA (4.28) corrected",
                       lambda done: bounds.elda_total_bound_sum(len(done), C1, C2, g)),
            ClosedBound("iterations <= closed form (4.28) in eps_tol", "ELDA (4.28) corrected",
                        bounds.elda_total_bound(ctx.eps_tol, C1, C2, ctx.sigma, ctx.eps0, g)),
        )

    def _curves(self, ctx: BoundContext) -> BoundCurves:
        """Thm 4.6: (4.27) per segment, (4.28) in closed form and as the finite sum."""
        C1, C2 = self._constants(ctx)
        eps0, sigma, g = ctx.eps0, ctx.sigma, ctx.gamma
        return BoundCurves(
            segment=lambda l: bounds.elda_segment_bound(l, C1, C2, g),
            total=lambda t: bounds.elda_total_bound(t, C1, C2, sigma, eps0, g),
            total_sum=lambda t: bounds.elda_total_bound_sum(
                bounds.num_reductions(eps0, t, sigma, g), C1, C2, g),
            equation="ELDA Thm 4.6 (4.27)-(4.28), explicit C1, C2 (theory/elda.md)",
            label="ELDA (4.28)",
            segment_label="1 + C1 g^(-3l-2) + C2 g^(-2l-2), ELDA (4.27)",
            constants={"C1": C1, "C2": C2},
        )
