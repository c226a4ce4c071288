r"""Shared machinery of the descent algorithms: evaluations, line search, continuation.

Every algorithm minimizes ``phi_eps = f + kappa r_eps`` for a decreasing sequence of
smoothing levels.  One iteration ``x_k -> x_{k+1}`` at level ``eps_k`` is the algorithm's
own :meth:`Solver.step` (in its own file); :meth:`Solver.iterate` then applies the common
smoothing update of all three papers (LDA Alg. 1 line 7, meta-LDA Alg. 1 line 15, ELDA
Alg. 1 line 15)

.. math::
    \varepsilon_{k+1} = \gamma\varepsilon_k \ \text{ if }\
    \|\nabla\phi_{\varepsilon_k}(x_{k+1})\| < \sigma\gamma\varepsilon_k, \quad
    \text{else } \varepsilon_{k+1} = \varepsilon_k,

and stops the sample once ``sigma * eps_{k+1} < eps_tol`` (the stationarity certificate
``||grad phi_{eps_k}(x_{k+1})|| < sigma gamma eps_k`` then holds at the returned point; see
``theory/README.md`` for why the test uses ``eps_{k+1}``).

Evaluation budget.  The iterate carries ``q(x_k)``, ``phi_eps(x_k)`` and
``grad phi_eps(x_k)`` from the previous iteration, every candidate's forward keeps its graph
so that its gradient costs one backward, and an ``eps`` reduction reuses the cached
``q(x_{k+1})`` (one extra backward, no forward).  :class:`Counter` records the passes per
sample; the counts go to the :class:`~lda_opt.trace.Trace`.  The per-iteration budget of
DESIGN.md covers the iterations only: evaluating ``x_0`` (:meth:`Solver.init_state`) costs one
forward and one backward more, in no iteration, so a run's total is the sum of the
per-iteration budgets plus 1 forward and 1 backward (on a warm start,
``run(..., state=s)``, plus the passes ``s`` records instead).  Every algorithm meets its per-iteration budget with equality in
the common case (LDA: 2 + evaluations forwards, 2 + reduction backwards; MetaLDA/ELDA with
u accepted: 2 and 2 + reduction), so a total compared with the summed per-iteration budget
alone is exactly that one start forward and backward over it.  The Trace records them as
``initial_forward`` / ``initial_backward``; ``Trace.totals() == (Result.forward,
Result.backward)``.

Typed hand-offs.  Per-phase values that take precedence over the solver's fields (the
learned step sizes of an unrolled network) are a :class:`PhaseParams` record, which rejects
unknown names and names the solver does not have; one iteration's trace record is a
:class:`~lda_opt.trace.IterationRecord`.

Warm start.  ``run(problem, x0, state=s)`` starts from a :class:`State` ``s`` at ``x0`` (e.g.
the state after an unrolled network's phases) instead of evaluating ``x0`` again: each
sample starts at its own ``s.eps``, with the ``q(x_0)``, ``phi_eps(x_0)`` and
``grad phi_eps(x_0)`` that ``s`` holds, no pass of ``q`` spent (the passes ``s`` records are
the Trace's initial passes).

Per-sample semantics.  Each sample has its own ``eps``, step sizes, branch, line search
and termination; finished samples are frozen (:meth:`Solver.run` only iterates the active
ones), so a batch gives the per-sample results of solving each sample alone.

The same :meth:`Solver.iterate` serves the unrolled networks (``differentiable=True``):
then every vector-Jacobian product is taken with ``create_graph=True`` and nothing is
detached, so gradients flow through the branch that was taken.

Layout.  The typed records (:class:`Point`, :class:`State`, :class:`PhaseParams`,
:class:`Result`, ...) live in :mod:`lda_opt.algorithms.state`, the evaluation oracle and the
line search in :mod:`lda_opt.algorithms.oracle`; this module keeps :class:`Solver` (the
continuation, termination and the run loop) and re-exports every name of both.
"""

from __future__ import annotations

import contextlib  # noqa: F401  (kept: a name of this module before the split)
import math
import time
from collections.abc import Callable, Iterator, Mapping  # noqa: F401
from dataclasses import dataclass, field, fields, replace

import torch

from .._validate import flag, integer, real
from ..problem import Problem
from ..smoothing import Huber, Smoothing
from ..trace import IterationRecord, Trace

# re-exported: the records and the oracle lived here before the split (issue 20)
from .oracle import Backtracking, LineSearchInfo, Oracle, accept, u_candidate
from .state import (  # noqa: F401
    _PHASE_NAMES,
    CONVERGED,
    LINESEARCH_CAP,
    MAX_ITER,
    NONFINITE,
    REASONS,
    RUNNING,
    Counter,
    Graph,
    PhaseParams,
    Point,
    Result,
    State,
    StepOutput,
    _drop_rows,
    _put,
    per_sample,
    sq_norm,
)

__all__ = [
    "REASONS",
    "Backtracking",
    "Counter",
    "LineSearchInfo",
    "Oracle",
    "PhaseParams",
    "Point",
    "Result",
    "Solver",
    "State",
    "StepOutput",
    "accept",
    "sq_norm",
    "u_candidate",
]


@dataclass(kw_only=True)
class Solver:
    """Common hyper-parameters and the loop.  Subclasses implement :meth:`step`.

    Parameters
    ----------
    eps0: initial smoothing level ``eps_0 > 0``.
    gamma: reduction factor ``0 < gamma < 1``.
    sigma: reduction-test scale ``sigma > 0``.
    eps_tol: tolerance; a sample stops once ``sigma eps_k < eps_tol``.
    max_iter: iteration cap per sample.
    smoothing: :class:`~lda_opt.smoothing.Huber` or :class:`~lda_opt.smoothing.Sqrt`.
    max_linesearch: cap on ``phi_eps(v)`` evaluations per iteration.
    """

    eps0: float = 1e-3
    gamma: float = 0.9
    sigma: float = 1e3
    eps_tol: float = 1e-3
    max_iter: int = 10_000
    smoothing: Smoothing = field(default_factory=Huber)
    max_linesearch: int = 100

    #: algorithm name used in reports
    name = "solver"
    #: whether the paper proves phi_eps(x_{k+1}) <= phi_eps(x_k) for every iteration
    monotone = True

    def __post_init__(self) -> None:
        real("eps0", self.eps0, 0)
        real("gamma", self.gamma, 0, 1)
        real("sigma", self.sigma, 0)
        real("eps_tol", self.eps_tol, 0)
        integer("max_iter", self.max_iter, 1)
        integer("max_linesearch", self.max_linesearch, 1)
        if not isinstance(self.smoothing, Smoothing) or type(self.smoothing).value is Smoothing.value:
            raise TypeError(f"smoothing must be an lda_opt.smoothing.Smoothing such as Huber() or Sqrt(); "
                            f"got {type(self.smoothing).__name__}")
        if self.sigma * self.eps0 < self.eps_tol:
            raise ValueError(
                f"sigma * eps0 = {self.sigma * self.eps0:g} is already below eps_tol = {self.eps_tol:g}: "
                "nothing to iterate (increase eps0 or sigma, or decrease eps_tol)"
            )

    # -- configuration ---------------------------------------------------------------------
    def config(self) -> dict:
        """The hyper-parameters as a JSON-able dict (``smoothing`` by name)."""
        out = {}
        for f_ in fields(self):
            v = getattr(self, f_.name)
            out[f_.name] = v.name if isinstance(v, Smoothing) else v
        return out

    @classmethod
    def from_config(cls, params: dict) -> Solver:
        """Rebuild a solver from :meth:`config` output (``smoothing`` given by name)."""
        from ..smoothing import SMOOTHINGS

        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of {cls.__name__} fields; got {type(params).__name__}")
        params = dict(params)
        if isinstance(params.get("smoothing"), str):
            name = params["smoothing"]
            if name not in SMOOTHINGS:
                raise ValueError(f"smoothing must be one of {sorted(SMOOTHINGS)}; got {name!r}")
            params["smoothing"] = SMOOTHINGS[name]()
        return cls(**params)

    def replace(self, **changes) -> Solver:
        return replace(self, **changes)

    def phase_params(self, overrides: PhaseParams | Mapping | None) -> PhaseParams:
        """``overrides`` as a :class:`PhaseParams` of this solver: ``ValueError`` naming a
        field this solver does not have (a misspelled key of a mapping is refused by
        :meth:`PhaseParams.of`)."""
        p = PhaseParams.of(overrides)
        mine = {f.name for f in fields(self)}
        foreign = [n for n in p if n not in mine]
        if foreign:
            raise ValueError(f"{type(self).__name__} has no hyper-parameter(s) {foreign} to override "
                             f"per phase; valid: {sorted(mine & _PHASE_NAMES)}")
        return p

    def param(self, name: str, b: int, like: torch.Tensor,
              overrides: PhaseParams | Mapping | None) -> torch.Tensor:
        """Hyper-parameter ``name`` as a (b,) tensor; a value set in ``overrides`` (a
        :class:`PhaseParams`: the unrolled networks' learned per-phase step sizes) takes
        precedence.  ``name`` must be a field of :class:`PhaseParams`."""
        if name not in _PHASE_NAMES:
            raise ValueError(f"internal error: {name!r} is not a PhaseParams field")
        if overrides is None:
            v = getattr(self, name)
        else:
            p = overrides if isinstance(overrides, PhaseParams) else self.phase_params(overrides)
            v = getattr(p, name)
            v = getattr(self, name) if v is None else v
        t = torch.as_tensor(v, dtype=like.real.dtype, device=like.device)
        return t.expand(b) if t.dim() == 0 else t

    # -- the iteration -------------------------------------------------------------------
    def init_state(self, problem: Problem, x0: torch.Tensor, differentiable: bool = False,
                   overrides: PhaseParams | Mapping | None = None) -> State:
        """Evaluate ``x0``: one forward and one backward pass of ``q`` (recorded in the
        state's ``forward`` / ``backward``, which :meth:`run` gives the Trace as its initial
        passes).

        ``overrides`` (a :class:`PhaseParams`) may set ``eps0`` (a scalar or (B,) tensor,
        e.g. the learned ``eps_0`` of an unrolled network, which then receives gradients)."""
        B = x0.shape[0]
        dev = x0.device
        overrides = None if overrides is None else self.phase_params(overrides)
        eps = self.param("eps0", B, x0, overrides).clone()
        oracle = Oracle(problem, self.smoothing, differentiable)
        counter = Counter(B, dev)
        p = oracle.evaluate(x0, eps, counter)
        need = torch.ones(B, dtype=torch.bool, device=dev)
        p.grad = oracle.gradient(p, eps, need, counter, retain=False)
        p.graphs = []
        zeros = torch.zeros(B, dtype=torch.long, device=dev)
        return State(p, eps, zeros.clone(), torch.zeros(B, dtype=torch.bool, device=dev),
                     zeros.clone(), counter.forward.clone(), counter.backward.clone(),
                     self.init_aux(p), self.smoothing.name)

    def init_aux(self, point: Point) -> dict[str, torch.Tensor]:
        """Algorithm-specific per-sample state (e.g. AGD's previous iterate)."""
        return {}

    def step(self, oracle: Oracle, state: State, overrides: PhaseParams | None = None) -> StepOutput:
        raise NotImplementedError  # pragma: no cover

    def iterate(self, problem: Problem, state: State, overrides: PhaseParams | Mapping | None = None,
                differentiable: bool = False) -> tuple[State, IterationRecord]:
        """One iteration for every sample of ``state``: the algorithm's step, then the
        common smoothing update and termination test.  Returns the new state and the
        :class:`~lda_opt.trace.IterationRecord` (``seconds`` zero: :meth:`run` times it).
        ``overrides``: a :class:`PhaseParams` (a mapping of its fields is converted; an
        unknown name is refused)."""
        overrides = None if overrides is None else self.phase_params(overrides)
        oracle = Oracle(problem, self.smoothing, differentiable)
        x = state.point
        eps = state.eps
        out = self.step(oracle, state, overrides)
        new, cnt = out.point, out.counter
        phi_eps_k = new.phi_eps  # phi_{eps_k}(x_{k+1}), before any reduction
        moved = out.branch >= 0
        gnorm = sq_norm(new.grad.detach()).sqrt()
        finite = torch.isfinite(new.phi_eps.detach()) & torch.isfinite(gnorm)
        gamma = self.param("gamma", len(eps), eps, overrides)
        sigma = self.param("sigma", len(eps), eps, overrides)
        reduce = moved & finite & (gnorm < sigma * gamma * eps)
        eps_next = torch.where(reduce, gamma * eps, eps)
        if bool(reduce.any()):
            # Reuse the cached q(x_{k+1}): recompute r at eps_{k+1}, one backward for y*.
            new.phi_eps = torch.where(reduce, new.f + oracle.reg_value(new.g, eps_next, new.f), new.phi_eps)
            g2 = oracle.gradient(new, eps_next, reduce, cnt, retain=False)
            new.grad = torch.where(per_sample(reduce, g2), g2, new.grad)
        new.graphs = []
        # A sample whose new point is not finite stops at x_k, with the reason recorded.
        if not bool(finite.all()):
            keep = ~finite
            rows = keep.nonzero().squeeze(1)
            new = Point(_put(new.x, rows, x.x[rows]), _put(new.g, rows, x.g[rows]),
                        _put(new.f, rows, x.f[rows]), _put(new.grad_f, rows, x.grad_f[rows]),
                        _put(new.phi_eps, rows, x.phi_eps[rows]), _put(new.grad, rows, x.grad[rows]))
            eps_next = torch.where(keep, eps, eps_next)
        converged = reduce & (sigma * eps_next < self.eps_tol)
        iteration = state.iteration + 1
        reason = torch.full_like(state.reason, RUNNING)
        reason = torch.where(converged, torch.full_like(reason, CONVERGED), reason)
        reason = torch.where(out.capped, torch.full_like(reason, LINESEARCH_CAP), reason)
        reason = torch.where(~finite, torch.full_like(reason, NONFINITE), reason)
        done = reason != RUNNING
        cap_iter = (iteration >= self.max_iter) & ~done
        reason = torch.where(cap_iter, torch.full_like(reason, MAX_ITER), reason)
        done = done | cap_iter
        with torch.no_grad():
            record = IterationRecord(
                phi_eps=torch.where(finite, phi_eps_k, new.phi_eps),
                phi=new.f + oracle.kappa(new.f) * Smoothing.exact(new.g.detach()),
                grad_norm=torch.where(finite, gnorm, torch.full_like(gnorm, math.nan)),
                eps=eps,
                branch=torch.where(finite, out.branch, torch.full_like(out.branch, -1)),
                step=out.step,
                linesearch=out.linesearch,
                forward=cnt.forward,
                backward=cnt.backward,
                seconds=torch.zeros_like(eps),
                eps_next=eps_next,
                phi_eps_prev=x.phi_eps,
                grad_norm_prev=sq_norm(x.grad.detach()).sqrt(),
                dist=sq_norm((new.x - x.x).detach()).sqrt(),
                capped=out.capped,
            )
        aux = {k: out.aux.get(k, v) for k, v in state.aux.items()}
        new_state = State(new, eps_next, iteration, done, reason, state.forward + cnt.forward,
                          state.backward + cnt.backward, aux, self.smoothing.name)
        return new_state, record

    # -- the loop ------------------------------------------------------------------------
    def run(self, problem: Problem, x0: torch.Tensor, callback: Callable | None = None,
            progress: bool = False, *, state: State | None = None) -> Result:
        """Iterate every sample of ``x0`` until its own termination (or ``max_iter``).

        ``callback(k, state, record)`` is called after each iteration (``record``: an
        :class:`~lda_opt.trace.IterationRecord`); its time is excluded from the recorded
        ``seconds``.  ``progress=True`` shows a tqdm bar (only when stderr is a terminal).

        ``state``: a warm start (jaxopt's ``init_params``, here with the evaluation): a
        :class:`State` at ``x0`` of this problem with this solver's smoothing, e.g. the one
        :meth:`~lda_opt.learning.LDANet.forward` returns after its phases.  The run then
        starts every sample at its own ``state.eps`` (not at ``eps0``) from the ``q(x_0)``,
        ``phi_eps(x_0)`` and ``grad phi_eps(x_0)`` the state holds, spending no pass of
        ``q`` on ``x_0``.  Iterations and stop reasons count this run only; the passes the
        state records (``state.forward`` / ``state.backward``: what it cost to reach it, e.g.
        ``init_state``'s 1 + 1 and the K phases) are the Trace's initial passes, so
        ``Result.forward`` / ``backward`` count every pass of ``q`` since ``state`` began.
        The algorithm's own per-sample state (:meth:`init_aux`) starts afresh at ``x_0``.
        ``state.smoothing`` must be this solver's; each ``sigma * state.eps`` must be
        ``>= eps_tol`` (a sample already below the tolerance has nothing to certify).
        Without ``state``, :meth:`init_state` evaluates ``x0`` at ``eps0`` (one forward and
        one backward, the Trace's initial passes).
        """
        _check_run_args(problem, x0, callback, progress)
        t_start = time.perf_counter()
        state = self.init_state(problem, x0) if state is None else self._warm_state(x0, state)
        _check_start(state.point)
        trace = Trace(x0.shape[0], initial_forward=state.forward, initial_backward=state.backward)
        state, cb_time = self._loop(problem, state, trace, callback, progress)
        return _result(problem, state, trace, t_start, cb_time)

    def _loop(self, problem: Problem, state: State, trace: Trace, callback: Callable | None,
              progress: bool) -> tuple[State, float]:
        """The iterations of :meth:`run`: :meth:`iterate` on the active samples until every
        sample is done or ``max_iter``, each record (timed) appended to ``trace``.  Returns
        the final state and the seconds spent in ``callback``."""
        B = state.done.shape[0]
        cb_time = 0.0
        bar = _progress(progress, self.max_iter, self.name)
        for k in range(self.max_iter):
            active = ~state.done
            if not bool(active.any()):
                break
            idx = active.nonzero().squeeze(1)
            full = idx.numel() == B
            t0 = time.perf_counter()
            if full:
                state, rec = self.iterate(problem, state)
            else:
                sub, rec = self.iterate(problem.select(idx), state.take(idx))
                state = state.put(idx, sub)
            rec = replace(rec, seconds=torch.full_like(rec.eps, time.perf_counter() - t0))
            trace.append(idx, rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(eps=f"{float(state.eps.max()):.2e}", active=int((~state.done).sum()))
            if callback is not None:
                t1 = time.perf_counter()
                callback(k, state, rec)
                cb_time += time.perf_counter() - t1
        if bar is not None:
            bar.close()
        return state, cb_time

    def _warm_state(self, x0: torch.Tensor, state: State) -> State:
        """The start of a warm-started run (see :meth:`run`): ``state``'s point, ``eps`` and
        pass counts, detached; iterations, stop reasons and :meth:`init_aux` afresh."""
        if not isinstance(state, State):
            raise TypeError(f"state must be an lda_opt.algorithms.State (e.g. from init_state or "
                            f"LDANet.forward) or None; got {type(state).__name__}")
        p = state.point
        B = x0.shape[0]
        if p.x.shape != x0.shape or p.x.dtype != x0.dtype or p.x.device != x0.device:
            raise ValueError(f"state: its point has shape {tuple(p.x.shape)}, {p.x.dtype} on {p.x.device}; "
                             f"x0 has {tuple(x0.shape)}, {x0.dtype} on {x0.device}")
        if state.smoothing is not None and state.smoothing != self.smoothing.name:
            raise ValueError(f"state: evaluated with {state.smoothing!r} smoothing; this solver uses "
                             f"{self.smoothing.name!r} (evaluate x0 with this solver's init_state)")
        if p.grad is None or p.graphs:
            raise ValueError("state: its point must be fully evaluated (gradient computed, no pending graphs), "
                             "as init_state and iterate leave it")
        if not torch.equal(p.x.detach(), x0.detach()):
            raise ValueError("state: its point is not x0 (pass x0 = state.point.x)")
        eps = state.eps.detach().clone()
        if eps.shape != (B,):
            raise ValueError(f"state: eps must have shape ({B},); got {tuple(eps.shape)}")
        low = ~(torch.isfinite(eps) & (eps > 0) & (self.sigma * eps >= self.eps_tol))
        if bool(low.any()):
            rows = low.nonzero().squeeze(1).tolist()
            raise ValueError(
                f"state: sigma * eps is below eps_tol = {self.eps_tol:g} (or eps is not a positive "
                f"number) for sample(s) {rows[:10]}: nothing to iterate (decrease eps_tol)")
        d = lambda t: t.detach()
        point = Point(d(p.x), d(p.g), d(p.f), d(p.grad_f), d(p.phi_eps), d(p.grad))
        zeros = torch.zeros(B, dtype=torch.long, device=x0.device)
        return State(point, eps, zeros.clone(), torch.zeros(B, dtype=torch.bool, device=x0.device),
                     zeros.clone(), state.forward.detach().clone(), state.backward.detach().clone(),
                     self.init_aux(point), self.smoothing.name)


def _check_run_args(problem: Problem, x0: torch.Tensor, callback: Callable | None,
                    progress: bool) -> None:
    """The argument checks of :meth:`Solver.run`, in its order."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an lda_opt.Problem; got {type(problem).__name__}")
    problem.check_input(x0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (k, state, record) or None; got {type(callback).__name__}")
    flag("progress", progress)


def _result(problem: Problem, state: State, trace: Trace, t_start: float, cb_time: float) -> Result:
    """The :class:`Result` of :meth:`Solver.run` from its final state and trace (``seconds``:
    since ``t_start``, less the ``cb_time`` spent in the callback)."""
    still = ~state.done
    reason = torch.where(still, torch.full_like(state.reason, MAX_ITER), state.reason)
    p = state.point
    with torch.no_grad():
        phi = p.f + problem.kappa(p.f) * Smoothing.exact(p.g)
    cert = trace.as_dict()
    # the stationarity quantity at the returned point: ||grad phi_{eps_k}(x_{k+1})||
    # (a sample stopped for a non-finite value returns x_k: its norm is the row's grad_norm_prev)
    # measured at eps_k, the last row's eps (unchanged for a non-finite stop)
    if len(trace):
        gn = _last_valid(cert["grad_norm"], cert["active"])
        gn = torch.where(torch.isnan(gn), _last_valid(cert["grad_norm_prev"], cert["active"]), gn)
        gn_eps = _last_valid(cert["eps"], cert["active"])
    else:
        gn = sq_norm(p.grad).sqrt()
        gn_eps = state.eps.detach().to("cpu", torch.float64)
    return Result(
        x=p.x.detach(), iterations=state.iteration.clone(), converged=reason == CONVERGED,
        eps=state.eps.clone(), grad_norm=gn.to(p.x.real.dtype), phi=phi.detach(),
        phi_eps=p.phi_eps.detach(), forward=state.forward.clone(), backward=state.backward.clone(),
        reason=[REASONS[int(r)] for r in reason], trace=trace,
        seconds=time.perf_counter() - t_start - cb_time,
        grad_norm_eps=gn_eps.to(p.x.real.dtype),
    )


def _check_start(p: Point) -> None:
    """Refuse a starting point whose ``phi_eps`` or gradient is not finite (an overflowing
    ``f(x0)`` or a feature map returning NaN/Inf at ``x0``): bad input, refused before any
    iteration, instead of a run that stops at once with a non-finite value."""
    bad = ~(torch.isfinite(p.phi_eps.detach()) & torch.isfinite(sq_norm(p.grad.detach())))
    if bool(bad.any()):
        rows = bad.nonzero().squeeze(1).tolist()
        raise ValueError(
            f"x0: phi_eps(x0) or its gradient is not finite for sample(s) {rows[:10]} "
            "(f(x0) overflows, or the feature map returns NaN/Inf at x0)")


def _last_valid(v: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    out = torch.full((v.shape[1],), math.nan, dtype=v.dtype)
    for b in range(v.shape[1]):
        rows = active[:, b].nonzero()
        if rows.numel():
            out[b] = v[rows[-1, 0], b]
    return out


def _progress(enabled: bool, total: int, name: str):
    import sys

    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, leave=False)
