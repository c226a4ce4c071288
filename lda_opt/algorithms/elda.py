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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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

__all__ = ["ELDA"]


@dataclass(kw_only=True)
class ELDA(Solver):
    """Modified ELDA.  ``gamma_u`` is the paper's ``gamma_t`` (4.7b); ``gamma`` is the
    smoothing reduction factor.  ``max_linesearch`` caps the (4.11) search."""

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

    def step(self, oracle: Oracle, state: State, overrides: dict | None = None) -> StepOutput:
        x, eps = state.point, state.eps
        b = eps.shape[0]
        cnt = Counter(b, eps.device)
        P = lambda n: self.param(n, b, eps, overrides)
        alpha, gam = P("alpha"), P("gamma_u")
        pu = u_candidate(oracle, x, eps, alpha, alpha * gam / (alpha + gam), cnt)
        with torch.no_grad():
            du2 = sq_norm(pu.x - x.x)
            gx = sq_norm(x.grad).sqrt()
            take_u = (gx <= du2.sqrt() / P("eta1")) \
                & (pu.phi_eps - x.phi_eps <= -(P("eta2") / 2) * du2) \
                & torch.isfinite(pu.phi_eps)
        if not bool(take_u.any()):
            pu.graphs = []  # no row takes u: free the graph of q(u) before the (4.11) search
        eta3 = P("eta3")
        ls = Backtracking(self.rho, self.max_linesearch).search(
            oracle, x, eps, ~take_u, P("alpha_bar"),
            lambda pv, px, d2, e, rows: pv - px <= -(eta3[rows] / e) * d2,  # (4.11)
            cnt,
        )
        new, _moved = accept(oracle, x, eps, [(pu, take_u), (ls.point, ls.accepted)], cnt)
        branch = torch.where(take_u, 0, torch.where(ls.accepted, 1, -1))
        step = torch.where(take_u, alpha.detach(), ls.step.detach())
        return StepOutput(new, branch, step, ls.evaluations, ls.capped, cnt)
