"""Beyond the trained phases (LDA Sec. 4.3.3, Fig. 7): after phase ``K`` the learned
regularizer is minimized by Algorithm 1 itself -- backtracking on ``alpha_k``
(``phi_eps(v) - phi_eps(x) <= -c ||v - x||^2``, shrink 0.5), ``tau_k = alpha_k``,
eps-continuation -- until its termination rule ``sigma eps_k < eps_tol`` holds.

The run is a warm start (``Solver.run(problem, x_K, state=...)``, the same one ``lda-opt
solve --checkpoint`` uses): each sample continues from ``x_K`` at the smoothing level
``eps_K`` it reached, with the ``q(x_K)``, ``phi_{eps_K}(x_K)`` and ``grad phi_{eps_K}(x_K)``
of the last phase (no pass of ``q`` spent on ``x_K``).  Samples with different ``eps_K`` are
run as separate groups, each by a solver with ``eps0 = eps_K``, so that every
:class:`~lda_opt.algorithms.Result` and its recorded solver describe exactly Algorithm 1
started at ``x_K``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..algorithms.base import Result, State
from ..problem import Problem
from .net import LDANet

__all__ = ["Continuation", "continue_run"]


@dataclass
class Continuation:
    """The continued run: ``x`` (all samples), and per group of equal ``eps_K`` the sample
    indices, the solver and its :class:`~lda_opt.algorithms.Result`."""

    x: torch.Tensor
    groups: list[tuple[torch.Tensor, object, Result]]

    @property
    def iterations(self) -> torch.Tensor:
        """Iterations after phase ``K``, per sample."""
        out = torch.zeros(self.x.shape[0], dtype=torch.long)
        for idx, _, res in self.groups:
            out[idx] = res.iterations
        return out

    @property
    def converged(self) -> torch.Tensor:
        """Whether the termination rule held, per sample."""
        out = torch.zeros(self.x.shape[0], dtype=torch.bool)
        for idx, _, res in self.groups:
            out[idx] = res.converged
        return out

    def check(self, problem: Problem) -> list:
        """``lda_opt.check`` of every group: the invariant reports (one per group)."""
        from ..checks import check

        return [check(res, problem.select(idx), solver) for idx, solver, res in self.groups]


def _bind(callback, group: int):
    return lambda k, st, rec: callback(group, k, st, rec)


def continue_run(net: LDANet, problem: Problem, state: State, *, eps_tol: float = 1.5e-5,
                 max_iter: int = 100_000, callback=None, **solver_options) -> Continuation:
    """Run Algorithm 1 from the state after the trained phases (``net.reconstruct``), warm
    started from that ``state``, until ``sigma eps_k < eps_tol`` or ``max_iter`` iterations;
    ``solver_options`` go to :meth:`LDANet.continuation_solver` (``alpha``, ``c``,
    ``shrink``, ``max_linesearch``).  ``callback(group, k, state, record)`` sees every
    iteration."""
    x = state.point.x.detach()
    eps = state.eps.detach()
    groups = []
    for e in torch.unique(eps).tolist():
        idx = (eps == e).nonzero().squeeze(1)
        solver = net.continuation_solver(e, eps_tol=eps_tol, max_iter=max_iter, **solver_options)
        cb = None if callback is None else _bind(callback, len(groups))
        with torch.no_grad():
            res = solver.run(problem.select(idx), x[idx], callback=cb, state=state.take(idx))
        groups.append((idx, solver, res))
    out = x.clone()
    for idx, _, res in groups:
        out[idx] = res.x
    return Continuation(out, groups)
