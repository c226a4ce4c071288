r"""The evaluation oracle and the line search of the descent algorithms (split from
:mod:`lda_opt.algorithms.base`, which re-exports every name).

:class:`Oracle` evaluates ``phi_eps`` (one forward of ``q``, graph kept) and its gradient
(one backward over the kept graphs); :class:`Backtracking` is the shared backtracking
search; :func:`u_candidate` and :func:`accept` are the residual candidate and the
acceptance of the next iterate common to the three papers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..problem import Problem
from ..smoothing import Smoothing
from .state import Counter, Graph, Point, _put, per_sample, sq_norm

__all__ = ["Backtracking", "LineSearchInfo", "Oracle", "accept", "u_candidate"]


# ---------------------------------------------------------------------------------------
# the evaluation oracle
# ---------------------------------------------------------------------------------------
class Oracle:
    """Evaluations of ``phi_eps`` and its gradient on one (sub-)problem.

    ``evaluate`` is one forward pass of ``q`` (its graph is kept); ``vjp`` is one backward
    pass over the kept graphs of the rows that need it.
    """

    def __init__(self, problem: Problem, smoothing: Smoothing, differentiable: bool = False) -> None:
        self.problem = problem
        self.smoothing = smoothing
        self.differentiable = differentiable

    def _ctx(self):
        return contextlib.nullcontext() if self.differentiable else torch.no_grad()

    def kappa(self, like: torch.Tensor) -> torch.Tensor | float:
        return self.problem.kappa(like)

    def evaluate(self, x: torch.Tensor, eps: torch.Tensor, counter: Counter,
                 rows: torch.Tensor | None = None) -> Point:
        """``q(x)``, ``f(x)``, ``grad f(x)`` and ``phi_eps(x)``: one forward of ``q``."""
        if self.differentiable and x.requires_grad:
            leaf = x
        else:
            leaf = x.detach().requires_grad_(True)
        with torch.enable_grad():
            g = self.problem.features(leaf)
        if g.dim() < 2 or g.shape[0] != x.shape[0]:
            raise ValueError(
                f"the feature map must return (B, d, ...) features for a batch of {x.shape[0]}; "
                f"got shape {tuple(g.shape)}"
            )
        # the rows of a sub-batch are their own problems: their data y and weight kappa
        problem = self.problem if rows is None else self._rows_problem(rows)
        with self._ctx():
            xv = leaf if self.differentiable else x.detach()
            f, grad_f = problem.fidelity.value_and_grad(xv)
            gv = g if self.differentiable else g.detach()
            phi = f + problem.kappa(f) * self.smoothing.value(gv, eps)
        if rows is None:
            counter.forward += 1
        else:
            counter.forward[rows] += 1
        ar = torch.arange(x.shape[0], device=x.device)
        return Point(xv, gv, f, grad_f, phi, None, [Graph(leaf, g, ar, ar)])

    def _rows_problem(self, rows: torch.Tensor) -> Problem:
        """The sub-problem of the samples ``rows`` (the problem itself when ``rows`` is every
        sample in order)."""
        b = self.problem.fidelity.y.shape[0] if hasattr(self.problem.fidelity, "y") else None
        if b is not None and rows.numel() == b and bool((rows == torch.arange(b, device=rows.device)).all()):
            return self.problem
        return self.problem.select(rows)

    def vjp(self, point: Point, cotangent: torch.Tensor, need: torch.Tensor, counter: Counter,
            retain: bool) -> torch.Tensor:
        """``grad q(x)^T c`` for the rows ``need`` (zero elsewhere): one backward pass."""
        result = torch.zeros_like(point.x)
        outs, ins, gos, maps = [], [], [], []
        need_rows = need.nonzero().squeeze(1)
        for G in point.graphs:
            sel = torch.isin(G.dst, need_rows)
            if not sel.any():
                continue
            src, dst = G.src[sel], G.dst[sel]
            go = _put(torch.zeros_like(G.out), src, cotangent[dst])
            outs.append(G.out)
            ins.append(G.leaf)
            gos.append(go)
            maps.append((src, dst))
        covered = sum(int(d.numel()) for _, d in maps)
        if covered != int(need.sum()):
            raise RuntimeError("internal error: a row needing a gradient has no kept graph")
        if outs:
            grads = torch.autograd.grad(outs, ins, gos, retain_graph=retain or self.differentiable,
                                        create_graph=self.differentiable)
            for gr, (src, dst) in zip(grads, maps):
                result = _put(result, dst, gr[src])
        counter.backward[need] += 1
        return result

    def grad_reg(self, point: Point, eps: torch.Tensor, need: torch.Tensor, counter: Counter,
                 retain: bool) -> torch.Tensor:
        """``grad (kappa r_eps)(x) = kappa grad q(x)^T y*_eps(q(x))`` (LDA eq. 10)."""
        y = self.smoothing.dual(point.g, eps)
        v = self.vjp(point, y, need, counter, retain)
        k = self.kappa(point.f)
        return v * (per_sample(k, v) if isinstance(k, torch.Tensor) else k)

    def gradient(self, point: Point, eps: torch.Tensor, need: torch.Tensor, counter: Counter,
                 retain: bool) -> torch.Tensor:
        """``grad phi_eps(x) = grad f(x) + grad (kappa r_eps)(x)`` on the rows ``need``."""
        return point.grad_f + self.grad_reg(point, eps, need, counter, retain)

    def reg_value(self, g: torch.Tensor, eps: torch.Tensor, f_like: torch.Tensor) -> torch.Tensor:
        with self._ctx():
            return self.kappa(f_like) * self.smoothing.value(g, eps)


# ---------------------------------------------------------------------------------------
# line search
# ---------------------------------------------------------------------------------------
@dataclass
class LineSearchInfo:
    """What a backtracking search did, per sample: the accepted point (rows not accepted
    keep ``x``), the accepted (or last tried) step, the number of ``phi_eps(v)``
    evaluations, whether it was accepted, and whether it hit the cap."""

    point: Point
    step: torch.Tensor
    evaluations: torch.Tensor
    accepted: torch.Tensor
    capped: torch.Tensor


@dataclass(frozen=True)
class Backtracking:
    r"""Backtracking on ``v(s) = x - s d + shift`` (``d = grad phi_eps(x)`` unless a
    ``direction`` is given, e.g. a candidate rule's ``H grad phi_eps(x)``; ``shift`` optional).

    Tries ``s = s_0, rho s_0, rho^2 s_0, ...`` until ``decrease(phi_eps(v), phi_eps(x),
    ||v - x||^2, eps, rows)`` holds (``rows``: the sample indices of the trial), at most ``max_steps`` evaluations.  Hitting the cap is
    reported in :class:`LineSearchInfo` (``capped``); nothing is silently reset.

    ``interpolate=True`` (with ``slope = <grad phi_eps(x), d>`` per sample given to
    :meth:`search`) replaces the factor ``rho`` by the minimizer of the quadratic through
    ``phi_eps(x)``, the slope ``-slope`` and ``phi_eps(v(s))``, safeguarded to
    ``[s/10, rho s]`` (Nocedal & Wright Sec. 3.5); a curvature ``<= 0`` or a non-finite
    value falls back to ``rho s``.  (The papers' searches, (4.11) and LDA's, shrink by ``rho``.)
    """

    shrink: float
    max_steps: int
    interpolate: bool = False

    def search(
        self,
        oracle: Oracle,
        x: Point,
        eps: torch.Tensor,
        need: torch.Tensor,
        step0: torch.Tensor,
        decrease: Callable[..., torch.Tensor],
        counter: Counter,
        shift: torch.Tensor | None = None,
        direction: torch.Tensor | None = None,
        slope: torch.Tensor | None = None,
    ) -> LineSearchInfo:
        b = x.x.shape[0]
        acc = Point(x.x, x.g, x.f, x.grad_f, x.phi_eps, None, [])
        step = step0
        evals = torch.zeros(b, dtype=torch.long, device=x.x.device)
        accepted = torch.zeros(b, dtype=torch.bool, device=x.x.device)
        searching = need.clone()
        for trial in range(self.max_steps):
            rows = searching.nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            s = step[rows]
            d = x.grad[rows] if direction is None else direction[rows]
            v = x.x[rows] - per_sample(s, d) * d
            if shift is not None:
                v = v + shift[rows]
            pv = oracle.evaluate(v, eps[rows], counter, rows)
            evals[rows] += 1
            d2 = sq_norm((v - x.x[rows]).detach())
            ok = decrease(pv.phi_eps.detach(), x.phi_eps[rows].detach(), d2, eps[rows], rows)
            ok = ok & torch.isfinite(pv.phi_eps.detach())
            acc = acc.put(rows, pv, ok)
            accepted[rows[ok]] = True
            searching[rows[ok]] = False
            if trial + 1 < self.max_steps:
                shrink_rows = rows[~ok]
                nxt = step[shrink_rows] * self.shrink
                if self.interpolate:
                    nxt = _interpolated(nxt, s[~ok], pv.phi_eps.detach()[~ok], x.phi_eps[shrink_rows].detach(),
                                        slope[shrink_rows], self.shrink)
                step = _put(step, shrink_rows, nxt)
            del pv  # the accepted rows' graphs live on in acc; free the rest before the next trial
        capped = need & ~accepted
        return LineSearchInfo(acc, step, evals, accepted, capped)


def _interpolated(fallback: torch.Tensor, s: torch.Tensor, phi_s: torch.Tensor, phi_0: torch.Tensor,
                  slope: torch.Tensor, shrink: float) -> torch.Tensor:
    """The safeguarded quadratic-interpolation step of :class:`Backtracking` (``fallback``:
    ``shrink * s``, taken where the model has no positive curvature)."""
    curv = (phi_s - phi_0 + s * slope) / (s * s)
    t = slope / (2.0 * torch.where(curv > 0, curv, torch.ones_like(curv)))
    t = torch.minimum(torch.maximum(t, 0.1 * s), shrink * s)
    good = (curv > 0) & torch.isfinite(t) & (slope > 0)
    return torch.where(good, t.to(fallback.dtype), fallback)


def u_candidate(oracle: Oracle, x: Point, eps: torch.Tensor, alpha: torch.Tensor,
                tau: torch.Tensor, counter: Counter) -> Point:
    r"""The residual candidate shared by the three papers:

    .. math:: z = x - \alpha \nabla f(x), \qquad u = z - \tau \nabla(\kappa r_\varepsilon)(z)

    (LDA eqs. 12, 14a; meta-LDA eqs. 6a, 8; ELDA eq. 4.8 with ``tau = beta_t``).
    Costs two forward passes and one backward pass of ``q``; the graph of ``q(u)`` is kept.
    """
    z = x.x - per_sample(alpha, x.grad_f) * x.grad_f
    pz = oracle.evaluate(z, eps, counter)
    everyone = torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    gz = oracle.grad_reg(pz, eps, everyone, counter, retain=False)
    u = z - per_sample(tau, gz) * gz
    return oracle.evaluate(u, eps, counter)


def accept(oracle: Oracle, x: Point, eps: torch.Tensor,
           candidates: list[tuple[Point, torch.Tensor]], counter: Counter) -> tuple[Point, torch.Tensor]:
    """The next iterate: row ``i`` takes the first candidate whose mask holds at ``i``
    (or stays at ``x``); ``grad phi_eps`` of the moved rows costs one backward pass, and
    the graphs stay alive for a possible ``eps`` reduction.  Returns the point and the
    per-sample ``moved`` mask."""
    rows = torch.arange(x.x.shape[0], device=x.x.device)
    new = Point(x.x, x.g, x.f, x.grad_f, x.phi_eps, None, [])
    moved = torch.zeros_like(rows, dtype=torch.bool)
    for point, mask in candidates:
        take = mask & ~moved
        new = new.put(rows, point, take)
        moved = moved | take
    g = oracle.gradient(new, eps, moved, counter, retain=True)
    new.grad = torch.where(per_sample(moved, g), g, x.grad)
    return new, moved
