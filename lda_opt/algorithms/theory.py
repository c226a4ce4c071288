r"""The typed records in which each solver declares its theory.

A solver's :meth:`theory` (beside its ``step``, in its own file) returns a :class:`Theory`:
the equation labels of its shared invariants (:class:`Labels`), the per-iteration
inequalities its rule guarantees (:class:`Inequality`, evaluated on a trace :class:`Row`),
whether descent holds, its line-search bound (:class:`LineSearchBound`), the bounds on its
eps-segments and totals (:class:`BoundGroup`, from a :class:`BoundContext`) and its
iteration-complexity curves (:class:`BoundCurves`).  :mod:`lda_opt.checks` is a generic engine
over these records and :func:`lda_opt.experiments.complexity.bound_curves` evaluates the curves; neither
knows any algorithm by name.

An inequality that the step also tests (ELDA (4.9a/b), (4.11); meta-LDA (A6), (A7); LDA's
backtracking rule) is written once, as a function returning ``(lhs, rhs)`` that works on
tensors (the step: ``holds(...)``) and on floats (the checker: ``lhs <= rhs`` up to rounding).

Adding an algorithm: its file holds its state, its ``step`` and its ``theory()``; its
catalogue entry goes to ``theory/``.  Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BoundContext",
    "BoundCurves",
    "BoundGroup",
    "ClosedBound",
    "Inequality",
    "Labels",
    "LineSearchBound",
    "ReferenceCurves",
    "Row",
    "Segment",
    "SegmentBound",
    "Theory",
    "TotalBound",
    "holds",
    "phi_eps_scale",
]


def holds(sides):
    """``lhs <= rhs`` of an inequality's ``(lhs, rhs)`` (tensors or floats)."""
    lhs, rhs = sides
    return lhs <= rhs


@dataclass(frozen=True)
class Labels:
    """The paper equations of the invariants every algorithm shares (:mod:`lda_opt.checks`)."""

    descent: str  #: ``phi_eps(x_{k+1}) <= phi_eps(x_k)``
    monotone: str  #: the monotone quantity across a reduction
    reduction: str  #: the eps-reduction rule
    sandwich: str  #: ``phi_eps <= phi <= phi_eps + gap(eps)``
    termination: str  #: the stopping rule ``sigma eps < eps_tol``
    certificate: str  #: the stationarity certificate of a converged sample


@dataclass(frozen=True)
class Row:
    """Trace row ``k`` of one sample: the iteration ``x_k -> x_{k+1}`` at level ``eps``
    (fields of :mod:`lda_opt.trace`).  ``L`` is ``L_eps`` at ``eps`` (None without the
    constants)."""

    k: int
    eps: float
    eps_next: float
    phi_eps: float
    phi_eps_prev: float
    phi: float
    grad_norm: float
    grad_norm_prev: float
    dist: float
    step: float
    branch: int
    linesearch: float
    capped: float
    L: float | None = None

    @property
    def d2(self) -> float:
        """``||x_{k+1} - x_k||^2``."""
        return self.dist * self.dist


def phi_eps_scale(row: Row) -> float:
    """The rounding scale of a decrease ``phi_eps(x_{k+1}) - phi_eps(x_k)``."""
    return max(abs(row.phi_eps), abs(row.phi_eps_prev))


@dataclass(frozen=True)
class Inequality:
    """A per-iteration inequality ``lhs <= rhs`` of the branches ``branches`` (0: u, 1: v).

    ``sides(row)`` returns ``(lhs, rhs)``; ``scale(row)`` the magnitude of the compared terms
    (None: ``max(|lhs|, |rhs|)``).  ``uses_constants``: it needs ``row.L`` (checked only with
    constants, and marked uncertified when a constant is estimated)."""

    text: str
    equation: str
    branches: tuple[int, ...]
    sides: Callable[[Row], tuple[float, float]]
    scale: Callable[[Row], float] | None = None
    uses_constants: bool = False


@dataclass(frozen=True)
class LineSearchBound:
    """The bound of a backtracking search: ``limits(eps, L_eps, previous_step)`` returns
    ``(T, l_max, min_step)``: the threshold step below which every trial is accepted, the
    largest number of ``phi_eps(v)`` evaluations, and the lower bound of the accepted step
    (checked on the rows of ``step_branches``).  ``previous_step`` is the accepted step of
    the sample's last row that moved (None before), for warm-started searches."""

    equation: str
    step_equation: str
    step_branches: tuple[int, ...]
    limits: Callable[[float, float, float | None], tuple[float, int, float]]


@dataclass(frozen=True)
class Segment:
    """Eps-segment ``index`` of a sample: rows ``first .. last`` at level ``eps``, starting
    from ``start = phi_{eps}(x_{first})``; ``finished`` when it ends with a reduction."""

    index: int
    first: int
    last: int
    finished: bool
    eps: float
    start: float

    @property
    def length(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class BoundContext:
    """What a segment bound or a complexity curve may use: the constants, the start value
    ``phi_x0`` and lower bound ``phi_star``, the continuation parameters, ``L(eps)`` (the
    Lipschitz constant of ``grad phi_eps`` for the run's smoothing) and ``gap(eps)`` (its
    smoothing gap).  ``segments``: the checked run's segments (empty for curves)."""

    L_f: float
    M: float
    L_g: float
    m: int
    kappa: float
    phi_x0: float
    phi_star: float
    eps0: float
    sigma: float
    gamma: float
    eps_tol: float
    L: Callable[[float], float]
    gap: Callable[[float], float]
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class SegmentBound:
    """``segment l length <= text``: ``bound(segment)``.  ``applies(segment)`` returns None,
    or the reason (for :attr:`Report.skipped`) why the bound does not apply to it."""

    text: str
    equation: str
    bound: Callable[[Segment], float]
    applies: Callable[[Segment], str | None] | None = None


@dataclass(frozen=True)
class TotalBound:
    """Iterations up to the last reduction ``<= bound(finished segments)``."""

    text: str
    equation: str
    bound: Callable[[tuple[Segment, ...]], float]


@dataclass(frozen=True)
class ClosedBound:
    """All iterations of a converged run ``<= value`` (a closed form in ``eps_tol``)."""

    text: str
    equation: str
    value: float


@dataclass(frozen=True)
class BoundGroup:
    """One theorem's segment bound with its total and closed form.  A solver yields its
    groups in order; the checker stops after a group that did not apply to every segment."""

    segment: SegmentBound
    total: TotalBound | None = None
    closed: ClosedBound | None = None


@dataclass(frozen=True)
class ReferenceCurves:
    """A curve shown for comparison that is not a bound for the run (e.g. LDA Thm 3.5 for a
    backtracking run)."""

    segment: Callable[[int], float]
    total: Callable[[float], float]
    equation: str
    constants: dict[str, Any]


@dataclass(frozen=True)
class BoundCurves:
    """Iteration-complexity bounds as functions: ``segment(l)`` bounds segment ``l``'s
    length, ``total(eps_tol)`` and ``total_sum(eps_tol)`` bound ``N(eps_tol)`` (closed form;
    the finite sum of the segment bounds)."""

    segment: Callable[[int], float]
    total: Callable[[float], float]
    total_sum: Callable[[float], float]
    equation: str
    label: str
    segment_label: str
    constants: dict[str, Any]
    reference: ReferenceCurves | None = None

    def as_dict(self) -> dict[str, Any]:
        """The dict of :func:`lda_opt.experiments.complexity.bound_curves` (``reference_*`` keys only
        with a reference)."""
        out: dict[str, Any] = {
            "equation": self.equation,
            "label": self.label,
            "segment_label": self.segment_label,
            "segment": self.segment,
            "total": self.total,
            "total_sum": self.total_sum,
            "constants": self.constants,
        }
        if self.reference is not None:
            out["reference_segment"] = self.reference.segment
            out["reference_total"] = self.reference.total
            out["reference_equation"] = self.reference.equation
            out["reference_constants"] = self.reference.constants
        return out


@dataclass(frozen=True)
class Theory:
    """What a solver's rule guarantees, for its configuration.

    ``labels``: equations of the shared invariants.  ``decrease``: the sufficient-decrease
    inequalities of the branch taken.  ``descent``: whether ``phi_eps(x_{k+1}) <=
    phi_eps(x_k)`` holds (True/False, or a predicate of ``L_eps`` when it depends on the
    constants; ``descent_note`` is then recorded when none are given).  ``notes``: checks that
    do not apply, recorded in :attr:`Report.skipped` for every sample.  ``linesearch``: the
    line-search bound (None: no search, or no bound).  ``bounds(ctx)``: the segment and total
    bounds, as an iterable of :class:`BoundGroup` (None: no bound; ``no_bounds`` says so).
    ``curves(ctx)``: the iteration-complexity curves (None: no bound)."""

    labels: Labels
    decrease: tuple[Inequality, ...] = ()
    descent: bool | Callable[[float], bool] = True
    descent_note: str = ""
    notes: tuple[str, ...] = ()
    linesearch: LineSearchBound | None = None
    bounds: Callable[[BoundContext], Iterable[BoundGroup]] | None = None
    no_bounds: str = ""
    curves: Callable[[BoundContext], BoundCurves] | None = None
