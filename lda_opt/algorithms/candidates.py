r"""Candidate rules: the point ``u`` a solver proposes before its safeguard.

The convergence theory of the three papers asks nothing of *how* the candidate ``u`` is
made, only that an accepted ``u`` satisfies an inequality (``theory/candidates.md``):

* modified ELDA (U-LDA Alg. 1): an accepted ``u`` satisfies (4.9a)
  ``||grad phi_eps(x_t)|| <= ||u - x_t|| / eta1`` and (4.9b)
  ``phi_eps(u) - phi_eps(x_t) <= -(eta2/2) ||u - x_t||^2``; Lemma 4.5 ((4.15), (4.24)) and
  Theorem 4.6 use nothing else of ``u``; otherwise the safeguard ``v`` with (4.11) is taken;
* LDA (Alg. 1, (15)): ``x_{k+1} = u`` only if ``phi_eps(u) <= phi_eps(v)`` for the ``v`` that
  passed the backtracking rule; Lemmas 3.3-3.4 and Theorems 3.5-3.6 use nothing else of ``u``.

So the candidate is a *strategy of the step* (:meth:`~lda_opt.ELDA.step`,
:meth:`~lda_opt.LDA.step`), chosen by the solver field ``candidate``:

``"paper"`` (default)
    the residual step of the paper (:func:`~lda_opt.algorithms.oracle.u_candidate`); the
    iterates are bit-identical to those before candidate rules existed.

``"lbfgs"``
    a limited-memory BFGS step on ``phi_eps``,

    .. math:: u(t) = x_k - t\,H_k\nabla\phi_{\varepsilon_k}(x_k)

    (``t = 1`` first, later trials by safeguarded interpolation) with ``H_k`` the L-BFGS
    inverse-Hessian approximation of the last ``memory`` pairs
    ``s_i = x_{i+1} - x_i``, ``y_i = grad phi_eps(x_{i+1}) - grad phi_eps(x_i)`` (both gradients
    at the level of iteration ``i``), ``H_k^0 = h_k I`` with ``h_k = s^T y / y^T y`` of the newest
    pair (Nocedal & Wright, *Numerical Optimization*, eqs. (7.19)-(7.20); applied by the
    two-loop recursion, their Algorithm 7.4: :func:`lbfgs_direction`).  A pair is stored only
    if ``s^T y > sqrt(u) ||s|| ||y||`` (``u`` the unit roundoff of the dtype), so ``H_k`` is
    positive definite and ``u(t)`` a descent direction.  With ``reset_memory=True``
    (default) the pairs are dropped when ``eps`` is reduced (they describe another
    ``phi_eps``); ``h_k`` is kept (initially ``h0``: ``alpha_bar`` for ELDA, ``alpha`` for LDA).
    The candidate's own search tries ``t`` at most ``candidate_linesearch`` times, the next
    trial the minimizer of the quadratic through ``phi_eps(x_k)``, the slope
    ``-<grad phi_eps(x_k), H_k grad phi_eps(x_k)>`` and ``phi_eps(u(t))``, kept in
    ``[t/10, candidate_shrink t]`` (Nocedal & Wright Sec. 3.5; :class:`~lda_opt.algorithms.oracle.Backtracking`
    with ``interpolate=True``), and stops at the first ``t`` that passes the solver's acceptance
    test (ELDA: (4.9a) and (4.9b); LDA: (15), ``phi_eps(u) <= phi_eps(v)``, against the ``v``
    its step already found).

``"nesterov"``
    an accelerated (Nesterov / FISTA) gradient step,

    .. math:: y_k = x_k + \theta_k (x_k - x_{k-1}), \quad u = y_k - s\,\nabla\phi_{\varepsilon_k}(y_k),
        \quad \theta_k = (t_k - 1)/t_{k+1},\ t_{k+1} = (1 + \sqrt{1 + 4 t_k^2})/2,

    ``s`` by backtracking (start ``min(h0, s_prev / candidate_shrink)``, factor
    ``candidate_shrink``, at most ``candidate_linesearch`` trials) on the descent-lemma test
    at ``y``: ``phi_eps(u) <= phi_eps(y) - (s/2) ||grad phi_eps(y)||^2``; ``u`` is then accepted
    by the solver's test against ``x_k``.  The momentum restarts (``t = 1``, ``theta = 0``, so
    ``y = x_k`` and no pass is spent on ``y``) when the candidate was rejected or ``eps`` was
    reduced.

Cost (passes of ``q``): ``"lbfgs"`` one forward per trial of ``t``; ``"nesterov"`` one forward
and one backward at ``y`` (none after a restart) and one forward per trial of ``s``; the
accepted point's gradient is the step's one backward, as for every branch.  The memory is
per sample (``State.aux``), so a batch gives each sample's own iterates.  The candidate's
memory is not differentiated (the unrolled networks use ``"paper"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._validate import flag, integer, real
from .oracle import Backtracking, LineSearchInfo, Oracle
from .state import Counter, Point, State, per_sample, sq_norm

__all__ = [
    "CANDIDATES",
    "CandidateRule",
    "candidate_aux",
    "candidate_update",
    "lbfgs_direction",
    "propose",
]

#: the candidate rules of ELDA and LDA (``theory/candidates.md``)
CANDIDATES = ("paper", "lbfgs", "nesterov")

Test = Callable[..., torch.Tensor]


@dataclass(kw_only=True)
class CandidateRule:
    """The candidate-rule fields of a solver (mixed into :class:`~lda_opt.ELDA` and
    :class:`~lda_opt.LDA`; the module docstring gives the rules).

    Parameters
    ----------
    candidate: ``"paper"`` (the paper's residual step), ``"lbfgs"`` or ``"nesterov"``.
    memory: L-BFGS pairs kept per sample (``"lbfgs"``), ``>= 1``.
    reset_memory: drop the L-BFGS pairs when ``eps`` is reduced (``"lbfgs"``).
    candidate_shrink: factor of the candidate's own backtracking, in (0, 1).
    candidate_linesearch: trials of the candidate's own backtracking, ``>= 1``.
    """

    candidate: str = "paper"
    memory: int = 10
    reset_memory: bool = True
    candidate_shrink: float = 0.5
    candidate_linesearch: int = 10

    def _check_candidate(self) -> None:
        """Validate the fields: ValueError (a value out of range) or TypeError (the wrong
        kind), naming the field and its valid values."""
        if not isinstance(self.candidate, str):
            raise TypeError(f"candidate must be a str, one of {list(CANDIDATES)}; got {self.candidate!r}")
        if self.candidate not in CANDIDATES:
            raise ValueError(f"candidate must be one of {list(CANDIDATES)}; got {self.candidate!r}")
        integer("memory", self.memory, 1)
        flag("reset_memory", self.reset_memory)
        real("candidate_shrink", self.candidate_shrink, 0, 1)
        integer("candidate_linesearch", self.candidate_linesearch, 1)


# ---------------------------------------------------------------------------------------
# flat real views (a complex sample is a real vector of twice the length)
# ---------------------------------------------------------------------------------------
def _flat(t: torch.Tensor) -> torch.Tensor:
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.reshape(t.shape[0], -1)


def _unflat(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.is_complex():
        return torch.view_as_complex(v.reshape(*like.shape, 2).contiguous())
    return v.reshape(like.shape)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


# ---------------------------------------------------------------------------------------
# per-sample state
# ---------------------------------------------------------------------------------------
def candidate_aux(solver: CandidateRule, point: Point, h0: float) -> dict[str, torch.Tensor]:
    """The candidate rule's per-sample state at ``x_0`` (empty for ``"paper"``); ``h0``: the
    first scale (L-BFGS ``H^0 = h0 I`` before any pair; Nesterov's first trial step)."""
    if solver.candidate == "paper":
        return {}
    x = point.x.detach()
    B, n = x.shape[0], _flat(x).shape[1]
    opts = {"dtype": x.real.dtype, "device": x.device}
    if solver.candidate == "lbfgs":
        return {
            "lbfgs_s": torch.zeros(B, solver.memory, n, **opts),
            "lbfgs_y": torch.zeros(B, solver.memory, n, **opts),
            "lbfgs_n": torch.zeros(B, dtype=torch.long, device=x.device),
            "lbfgs_eps": torch.full((B,), math.nan, **opts),
            "lbfgs_h": torch.full((B,), float(h0), **opts),
        }
    return {
        "nesterov_prev": x.clone(),
        "nesterov_t": torch.ones(B, **opts),
        "nesterov_eps": torch.full((B,), math.nan, **opts),
        "nesterov_s": torch.full((B,), float(h0), **opts),
    }


def _pairs(solver: CandidateRule, state: State) -> torch.Tensor:
    """The number of valid L-BFGS pairs per sample at this iteration (0 after a reduction
    when ``reset_memory``)."""
    n = state.aux["lbfgs_n"]
    if solver.reset_memory:
        n = torch.where(state.aux["lbfgs_eps"] == state.eps, n, torch.zeros_like(n))
    return n


def lbfgs_direction(grad: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, n: torch.Tensor,
                    h: torch.Tensor) -> torch.Tensor:
    r"""``H grad`` by the L-BFGS two-loop recursion (Nocedal & Wright Alg. 7.4), per sample.

    ``S``, ``Y``: (B, m, N) pairs, oldest first; sample ``b`` uses its newest ``n[b]`` pairs
    (the last ``n[b]`` slots); ``H^0 = h[b] I``.  With ``n[b] = 0`` this is ``h[b] grad``.
    """
    q = _flat(grad).detach().clone()
    B, m, _ = S.shape
    first = m - int(n.max())  # slots before it are unused by every sample: skipped
    valid = torch.arange(m, device=S.device)[None, :] >= (m - n)[:, None]
    sy = _dot(S, Y)
    rho = torch.where(valid, 1.0 / torch.where(valid, sy, torch.ones_like(sy)), torch.zeros_like(sy))
    a = torch.zeros(B, m, dtype=q.dtype, device=q.device)
    for j in reversed(range(first, m)):
        a[:, j] = rho[:, j] * _dot(S[:, j], q)
        q = q - a[:, j, None] * Y[:, j]
    r = h[:, None] * q
    for j in range(first, m):
        beta = rho[:, j] * _dot(Y[:, j], r)
        r = r + S[:, j] * (a[:, j] - beta)[:, None]
    return _unflat(r, grad)


# ---------------------------------------------------------------------------------------
# the proposals
# ---------------------------------------------------------------------------------------
def propose(solver: CandidateRule, oracle: Oracle, state: State, test: Test, cnt: Counter,
            h0: torch.Tensor, need: torch.Tensor | None = None) -> LineSearchInfo:
    """The candidate of ``solver.candidate`` (``"lbfgs"`` or ``"nesterov"``) for the samples
    ``need`` (default all), searched until ``test(phi_eps(u), phi_eps(x_k), ||u - x_k||^2,
    eps, rows)`` holds (the solver's acceptance test; ``accepted`` says where it did).
    ``h0``: (B,) the largest first step of the Nesterov search."""
    if need is None:
        need = torch.ones(state.eps.shape[0], dtype=torch.bool, device=state.eps.device)
    if solver.candidate == "lbfgs":
        return _propose_lbfgs(solver, oracle, state, test, cnt, need)
    if solver.candidate == "nesterov":
        return _propose_nesterov(solver, oracle, state, test, cnt, h0, need)
    raise ValueError(f"internal error: candidate {solver.candidate!r} has no proposal")


def _propose_lbfgs(solver: CandidateRule, oracle: Oracle, state: State, test: Test,
                   cnt: Counter, need: torch.Tensor) -> LineSearchInfo:
    """``u(t) = x_k - t H_k grad phi_eps(x_k)``, ``t = 1, rho_c, ...`` until ``test`` holds."""
    x, eps = state.point, state.eps
    aux = state.aux
    with torch.no_grad():
        d = lbfgs_direction(x.grad, aux["lbfgs_s"], aux["lbfgs_y"], _pairs(solver, state), aux["lbfgs_h"])
    d = d.to(x.x.dtype)
    search = Backtracking(solver.candidate_shrink, solver.candidate_linesearch, interpolate=True)
    slope = _dot(_flat(x.grad.detach()), _flat(d.detach()))
    return search.search(oracle, x, eps, need, torch.ones_like(eps), test, cnt, direction=d, slope=slope)


def _momentum(state: State) -> torch.Tensor:
    """``theta_k = (t_k - 1)/t_{k+1}``, zero where the momentum restarts (``eps`` changed)."""
    t = torch.where(state.aux["nesterov_eps"] == state.eps, state.aux["nesterov_t"],
                    torch.ones_like(state.aux["nesterov_t"]))
    return (t - 1.0) / _next_t(t)


def _next_t(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))


def _propose_nesterov(solver: CandidateRule, oracle: Oracle, state: State, test: Test,
                      cnt: Counter, h0: torch.Tensor, need: torch.Tensor) -> LineSearchInfo:
    """``u = y - s grad phi_eps(y)``, ``y = x_k + theta_k (x_k - x_{k-1})``; ``s`` searched on
    the descent lemma at ``y``, then ``u`` tested against ``x_k``."""
    x, eps = state.point, state.eps
    b = eps.shape[0]
    theta = _momentum(state).detach()
    extra = (theta > 0) & need
    y = x
    if bool(extra.any()):
        rows = extra.nonzero().squeeze(1)
        with torch.no_grad():
            yx = x.x[rows] + per_sample(theta[rows], x.x[rows]) * (x.x[rows] - state.aux["nesterov_prev"][rows])
        py = oracle.evaluate(yx, eps[rows], cnt, rows)
        y = Point(x.x, x.g, x.f, x.grad_f, x.phi_eps, x.grad, []).put(rows, py)
        gy = oracle.gradient(y, eps, extra, cnt, retain=False)
        y.grad = torch.where(per_sample(extra, gy), gy, x.grad)
        y.graphs = []
    s0 = torch.minimum(h0, state.aux["nesterov_s"] / solver.candidate_shrink)
    gy2 = sq_norm(y.grad.detach())
    descent = lambda pv, py_, d2, e, rows: pv - py_ <= -0.5 * torch.sqrt(d2 * gy2[rows])
    search = Backtracking(solver.candidate_shrink, solver.candidate_linesearch)
    ls = search.search(oracle, y, eps, need, s0, descent, cnt)
    with torch.no_grad():
        d2 = sq_norm(ls.point.x - x.x)
        rows = torch.arange(b, device=eps.device)
        ok = ls.accepted & test(ls.point.phi_eps.detach(), x.phi_eps.detach(), d2, eps, rows)
    return LineSearchInfo(ls.point, ls.step, ls.evaluations, ok, ls.capped)


def candidate_update(solver: CandidateRule, state: State, new: Point, moved: torch.Tensor,
                     took_u: torch.Tensor, prop: LineSearchInfo | None) -> dict[str, torch.Tensor]:
    """The candidate rule's per-sample state after the step ``x_k -> x_{k+1} = new`` (``new.grad``
    at ``eps_k``): L-BFGS stores the pair ``(s, y)`` of every moved sample that passes the
    curvature test; Nesterov advances ``t`` where its candidate was taken and restarts
    elsewhere.  Empty for ``"paper"``."""
    if solver.candidate == "paper":
        return {}
    aux, eps, x = state.aux, state.eps, state.point
    with torch.no_grad():
        if solver.candidate == "lbfgs":
            return _store_pair(solver, state, new, moved)
        t = torch.where(aux["nesterov_eps"] == eps, aux["nesterov_t"], torch.ones_like(aux["nesterov_t"]))
        t = torch.where(took_u, _next_t(t), torch.ones_like(t))
        prev = torch.where(per_sample(moved, x.x), x.x.detach(), aux["nesterov_prev"])
        s = torch.where(took_u, prop.step.detach().to(t.dtype), aux["nesterov_s"])
        return {"nesterov_prev": prev, "nesterov_t": t, "nesterov_eps": eps.detach().clone(),
                "nesterov_s": s}


def _store_pair(solver: CandidateRule, state: State, new: Point, moved: torch.Tensor) -> dict[str, torch.Tensor]:
    """Append ``(s, y)`` to the memory of each moved sample whose pair has
    ``s^T y > sqrt(u) ||s|| ||y||`` (oldest pair dropped when full)."""
    aux, eps, x = state.aux, state.eps, state.point
    S, Y, h = aux["lbfgs_s"], aux["lbfgs_y"], aux["lbfgs_h"]
    n = _pairs(solver, state)
    s = _flat(new.x.detach() - x.x.detach()).to(S.dtype)
    y = _flat(new.grad.detach() - x.grad.detach()).to(S.dtype)
    sy, ss, yy = _dot(s, y), _dot(s, s), _dot(y, y)
    tol = math.sqrt(torch.finfo(S.dtype).eps)
    ok = moved & torch.isfinite(sy) & torch.isfinite(yy) & (sy > tol * torch.sqrt(ss * yy))
    keep = per_sample(ok, S)
    S = torch.where(keep, torch.cat([S[:, 1:], s[:, None]], dim=1), S)
    Y = torch.where(keep, torch.cat([Y[:, 1:], y[:, None]], dim=1), Y)
    n = torch.where(ok, torch.clamp(n + 1, max=solver.memory), n)
    h = torch.where(ok, sy / torch.where(ok, yy, torch.ones_like(yy)), h)
    return {"lbfgs_s": S, "lbfgs_y": Y, "lbfgs_n": n,
            "lbfgs_eps": torch.where(ok | (n == 0), eps.detach().to(S.dtype), aux["lbfgs_eps"]), "lbfgs_h": h}
