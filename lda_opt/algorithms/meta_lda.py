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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

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

__all__ = ["MetaLDA"]


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
            take_u = (gx <= a * du2.sqrt()) & (pu.phi_eps - x.phi_eps <= -du2 / a) \
                & torch.isfinite(pu.phi_eps)
        ls = Backtracking(self.rho, self.max_linesearch).search(
            oracle, x, eps, ~take_u, alpha,
            lambda pv, px, d2, e, rows: pv - px <= -d2 / a[rows],  # line 9 (A7)
            cnt,
        )
        new, _ = accept(oracle, x, eps, [(pu, take_u), (ls.point, ls.accepted)], cnt)
        branch = torch.where(take_u, 0, torch.where(ls.accepted, 1, -1))
        step = torch.where(take_u, alpha.detach(), ls.step.detach())
        return StepOutput(new, branch, step, ls.evaluations, ls.capped, cnt)
