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
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace

import torch

from .._validate import flag, integer, real
from ..problem import Problem
from ..smoothing import Huber, Smoothing
from ..trace import IterationRecord, Trace

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

#: stop reasons, per sample
REASONS = ("running", "converged", "max_iter", "linesearch_cap", "nonfinite")
RUNNING, CONVERGED, MAX_ITER, LINESEARCH_CAP, NONFINITE = range(5)


def sq_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample squared Euclidean norm (real and imaginary parts), shape (B,)."""
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.reshape(t.shape[0], -1).square().sum(dim=1)


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a (B,) tensor to broadcast against ``like`` of shape (B, ...)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _put(base: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Out-of-place ``base[rows] = values`` (differentiable)."""
    return base.index_put((rows,), values.to(base.dtype))


# ---------------------------------------------------------------------------------------
# points, graphs and the evaluation oracle
# ---------------------------------------------------------------------------------------
@dataclass
class Graph:
    """A forward pass ``out = q(leaf)`` kept for a later vector-Jacobian product.

    Rows ``src`` of ``leaf``/``out`` hold the rows ``dst`` of the owning :class:`Point`.
    """

    leaf: torch.Tensor
    out: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor


@dataclass
class Point:
    """Everything known at a batch of points ``x``: ``q(x)``, ``f``, ``grad f``, ``phi_eps``
    (at the level it was evaluated), ``grad phi_eps`` (once computed) and the graphs."""

    x: torch.Tensor
    g: torch.Tensor
    f: torch.Tensor
    grad_f: torch.Tensor
    phi_eps: torch.Tensor
    grad: torch.Tensor | None = None
    graphs: list[Graph] = field(default_factory=list)

    def take(self, index: torch.Tensor) -> Point:
        if self.graphs:
            raise RuntimeError("cannot sub-select a point whose graphs are still pending")
        return Point(self.x[index], self.g[index], self.f[index], self.grad_f[index],
                     self.phi_eps[index], None if self.grad is None else self.grad[index])

    def put(self, rows: torch.Tensor, other: Point, mask: torch.Tensor | None = None) -> Point:
        """A copy with rows ``rows[mask]`` replaced by ``other[mask]`` (``other`` has one row
        per entry of ``rows``), graphs included."""
        src = torch.arange(rows.numel(), device=rows.device)
        if mask is not None:
            src, rows = src[mask], rows[mask]
        if rows.numel() == 0:
            return self
        graphs = [_drop_rows(G, rows) for G in self.graphs]
        for G in other.graphs:
            keep = torch.isin(G.dst, src)
            if keep.any():
                # map other's row numbering to ours
                pos = torch.searchsorted(src, G.dst[keep])
                graphs.append(Graph(G.leaf, G.out, G.src[keep], rows[pos]))
        # a point is either fully differentiated or not at all: mixing needs a recompute
        grad = None if self.grad is None or other.grad is None else _put(self.grad, rows, other.grad[src])
        return Point(
            x=_put(self.x, rows, other.x[src]),
            g=_put(self.g, rows, other.g[src]),
            f=_put(self.f, rows, other.f[src]),
            grad_f=_put(self.grad_f, rows, other.grad_f[src]),
            phi_eps=_put(self.phi_eps, rows, other.phi_eps[src]),
            grad=grad,
            graphs=[G for G in graphs if G.dst.numel() > 0],
        )


def _drop_rows(G: Graph, rows: torch.Tensor) -> Graph:
    keep = ~torch.isin(G.dst, rows)
    return Graph(G.leaf, G.out, G.src[keep], G.dst[keep])


class Counter:
    """Per-sample forward / backward passes of ``q`` during one iteration."""

    def __init__(self, b: int, device: torch.device | str = "cpu") -> None:
        self.forward = torch.zeros(b, dtype=torch.long, device=device)
        self.backward = torch.zeros(b, dtype=torch.long, device=device)


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
    r"""Backtracking on ``v(s) = x - s d`` (``d = grad phi_eps(x)`` plus an optional shift).

    Tries ``s = s_0, rho s_0, rho^2 s_0, ...`` until ``decrease(phi_eps(v), phi_eps(x),
    ||v - x||^2, eps, rows)`` holds (``rows``: the sample indices of the trial), at most ``max_steps`` evaluations.  Hitting the cap is
    reported in :class:`LineSearchInfo` (``capped``); nothing is silently reset.
    """

    shrink: float
    max_steps: int

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
            v = x.x[rows] - per_sample(s, x.grad[rows]) * x.grad[rows]
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
                step = _put(step, shrink_rows, step[shrink_rows] * self.shrink)
            del pv  # the accepted rows' graphs live on in acc; free the rest before the next trial
        capped = need & ~accepted
        return LineSearchInfo(acc, step, evals, accepted, capped)


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


# ---------------------------------------------------------------------------------------
# per-phase parameters
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PhaseParams(Mapping):
    """Values that take precedence over the solver's hyper-parameters of the same name in
    one phase (:meth:`Solver.iterate`; ``eps0`` in :meth:`Solver.init_state`): the learned
    per-phase ``alpha_k``, ``tau_k``, ``theta_k`` and ``eps_0`` of an unrolled network, or a
    per-sample start of a line search.  Each field is ``None`` (use the solver's value), a
    number, a 0-dim tensor or a (B,) tensor (it may carry gradients).

    The fields are the hyper-parameters the steps read through :meth:`Solver.param`; an
    unknown name is a ``TypeError`` here, and :meth:`Solver.phase_params` also refuses a name
    the solver does not have (``theta`` for LDA).  It reads as a mapping of the fields that
    are set (``"tau" in p``, ``p["alpha"]``, ``{**p}``).
    """

    eps0: float | torch.Tensor | None = None
    gamma: float | torch.Tensor | None = None
    sigma: float | torch.Tensor | None = None
    alpha: float | torch.Tensor | None = None
    tau: float | torch.Tensor | None = None
    theta: float | torch.Tensor | None = None
    c: float | torch.Tensor | None = None
    a: float | torch.Tensor | None = None
    gamma_u: float | torch.Tensor | None = None
    alpha_bar: float | torch.Tensor | None = None
    eta1: float | torch.Tensor | None = None
    eta2: float | torch.Tensor | None = None
    eta3: float | torch.Tensor | None = None

    def _set(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, name: str):
        v = getattr(self, name, None) if isinstance(name, str) and name in _PHASE_NAMES else None
        if v is None:
            raise KeyError(name)
        return v

    def __iter__(self) -> Iterator[str]:
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())

    @classmethod
    def of(cls, values: PhaseParams | Mapping | None) -> PhaseParams:
        """``values`` as a record: a :class:`PhaseParams` as it is, a mapping by its keys
        (``ValueError`` naming any unknown key and the valid ones), ``None`` as the empty one."""
        if values is None:
            return cls()
        if isinstance(values, cls):
            return values
        if not isinstance(values, Mapping):
            raise TypeError(f"overrides must be a PhaseParams or a mapping of its fields; got {type(values).__name__}")
        unknown = sorted(str(k) for k in values if k not in _PHASE_NAMES)
        if unknown:
            raise ValueError(f"unknown per-phase parameter(s) {unknown}; valid: {sorted(_PHASE_NAMES)}")
        return cls(**values)


_PHASE_NAMES = frozenset(f.name for f in fields(PhaseParams))


# ---------------------------------------------------------------------------------------
# state, results and the solver base class
# ---------------------------------------------------------------------------------------
@dataclass
class State:
    """The per-sample solver state between iterations: the point (evaluated at ``eps``
    with the smoothing named ``smoothing``), iteration counts, stop flags and reasons, the
    passes of ``q`` spent so far (``forward`` / ``backward``, the evaluation of ``x_0``
    included) and the algorithm's own ``aux``."""

    point: Point
    eps: torch.Tensor
    iteration: torch.Tensor
    done: torch.Tensor
    reason: torch.Tensor
    forward: torch.Tensor
    backward: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    smoothing: str | None = None

    def take(self, index: torch.Tensor) -> State:
        return State(self.point.take(index), self.eps[index], self.iteration[index],
                     self.done[index], self.reason[index], self.forward[index],
                     self.backward[index], {k: v[index] for k, v in self.aux.items()},
                     self.smoothing)

    def put(self, index: torch.Tensor, sub: State) -> State:
        p = self.point
        q = sub.point
        point = Point(_put(p.x, index, q.x), _put(p.g, index, q.g), _put(p.f, index, q.f),
                      _put(p.grad_f, index, q.grad_f), _put(p.phi_eps, index, q.phi_eps),
                      _put(p.grad, index, q.grad))
        return State(point, _put(self.eps, index, sub.eps),
                     _put(self.iteration, index, sub.iteration), _put(self.done, index, sub.done),
                     _put(self.reason, index, sub.reason), _put(self.forward, index, sub.forward),
                     _put(self.backward, index, sub.backward),
                     {k: _put(v, index, sub.aux[k]) for k, v in self.aux.items()}, self.smoothing)


@dataclass
class StepOutput:
    """What an algorithm's ``step`` returns: the new point (gradient at ``eps_k``
    computed, graphs kept for a possible reduction) and per-sample step information."""

    point: Point
    branch: torch.Tensor
    step: torch.Tensor
    linesearch: torch.Tensor
    capped: torch.Tensor
    counter: Counter
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Result:
    """The outcome of :meth:`Solver.run`; every field is per sample (shape (B,))."""

    x: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    eps: torch.Tensor
    grad_norm: torch.Tensor
    phi: torch.Tensor
    phi_eps: torch.Tensor
    forward: torch.Tensor
    backward: torch.Tensor
    reason: list[str]
    trace: Trace
    seconds: float
    #: the level ``eps_k`` at which ``grad_norm`` was measured (``eps`` is ``eps_{k+1}``,
    #: one reduction lower for a converged sample)
    grad_norm_eps: torch.Tensor | None = None

    def summary(self) -> dict:
        """A JSON-able summary (lists per sample).

        ``eps_final`` is ``eps_{k+1}``, the level after the last iteration (reduced once
        more when the sample converged); ``grad_norm_final`` is
        ``||grad phi_{eps_k}(x_{k+1})||``, measured at the level ``eps_of_grad_norm`` =
        ``eps_k`` of that iteration.  A converged sample has ``grad_norm_final <
        sigma * gamma * eps_of_grad_norm = sigma * eps_final < eps_tol``.  ``passes`` counts
        every pass of ``q``, ``passes_initial`` the ones before the first iteration (the
        evaluation of ``x_0``: 1 and 1; on a warm start, the passes its state records)."""
        gn_eps = self.eps if self.grad_norm_eps is None else self.grad_norm_eps
        return {
            "iterations": self.iterations.tolist(),
            "converged": self.converged.tolist(),
            "reason": list(self.reason),
            "eps_final": self.eps.tolist(),
            "grad_norm_final": self.grad_norm.tolist(),
            "eps_of_grad_norm": gn_eps.tolist(),
            "phi_final": self.phi.tolist(),
            "phi_eps_final": self.phi_eps.tolist(),
            "passes": {"forward": self.forward.tolist(), "backward": self.backward.tolist()},
            "passes_initial": {"forward": self.trace.initial_forward.tolist(),
                               "backward": self.trace.initial_backward.tolist()},
            "seconds": self.seconds,
        }


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
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be an lda_opt.Problem; got {type(problem).__name__}")
        problem.check_input(x0)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable (k, state, record) or None; got {type(callback).__name__}")
        flag("progress", progress)
        B = x0.shape[0]
        t_start = time.perf_counter()
        cb_time = 0.0
        state = self.init_state(problem, x0) if state is None else self._warm_state(x0, state)
        _check_start(state.point)
        trace = Trace(B, initial_forward=state.forward, initial_backward=state.backward)
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
