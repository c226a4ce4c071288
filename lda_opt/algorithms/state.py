r"""Typed records of the descent algorithms (split from :mod:`lda_opt.algorithms.base`).

The per-sample stop reasons, the batch of evaluated points (:class:`Point` with its kept
forward passes, :class:`Graph`), the pass :class:`Counter`, the per-phase overrides
(:class:`PhaseParams`), the solver :class:`State` between iterations, an algorithm step's
:class:`StepOutput` and a run's :class:`Result`, with their small tensor helpers
(:func:`sq_norm`, :func:`per_sample`).  :mod:`lda_opt.algorithms.base` re-exports every
name, so ``from lda_opt.algorithms.base import State`` keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields

import torch

from ..trace import Trace

__all__ = [
    "REASONS",
    "Counter",
    "Graph",
    "PhaseParams",
    "Point",
    "Result",
    "State",
    "StepOutput",
    "per_sample",
    "sq_norm",
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
# points and graphs
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
# state, step output and results
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
