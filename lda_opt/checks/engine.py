"""The engine: :func:`check` and :func:`check_trace` run, for each sample, the shared rows
(:mod:`lda_opt.checks.rows`) and the solver's declared inequalities and bounds
(:mod:`lda_opt.checks.segments`) over the trace.  What each algorithm guarantees comes from
its ``theory()`` (:class:`~lda_opt.algorithms.theory.Theory`); nothing here depends on which
algorithm it is."""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import bounds
from ..algorithms.theory import Row, Theory
from ..trace import Trace
from . import rows as shared
from .constants import estimate_constants, validate_constants
from .report import RTOL, Checker, Report
from .segments import check_bounds

__all__ = ["Sample", "check", "check_trace", "theory_of"]

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "complex128": torch.float64,
    "complex64": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def theory_of(solver) -> Theory:
    """The solver's declared :class:`~lda_opt.algorithms.theory.Theory` (``solver.theory()``)."""
    declare = getattr(solver, "theory", None)
    theory = declare() if callable(declare) else None
    if isinstance(theory, Theory):
        return theory
    raise ValueError(
        "solver must be an lda_opt solver that declares its theory (LDA, GD, AGD, MetaLDA, "
        f"ELDA, or a Solver subclass with a theory() method); got {type(solver).__name__}"
    )


def _kappas(kappa: Any, B: int) -> list[float]:
    if isinstance(kappa, torch.Tensor):
        kappa = kappa.detach().reshape(-1).tolist()
    if isinstance(kappa, (list, tuple)):
        if len(kappa) == 1:
            kappa = list(kappa) * B
        if len(kappa) != B:
            raise ValueError(f"kappa has {len(kappa)} entries for a batch of {B}")
        vals = [float(v) for v in kappa]
    else:
        try:
            vals = [float(kappa)] * B
        except (TypeError, ValueError):
            raise ValueError(
                f"kappa must be a number or one number per sample; got {kappa!r}"
            ) from None
    for v in vals:
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"kappa must be in (0, inf); got {v}")
    return vals


def _real_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}; got {dtype!r}")
        return _DTYPES[dtype]
    dtype = {torch.complex128: torch.float64, torch.complex64: torch.float32}.get(dtype, dtype)
    if dtype not in RTOL:
        raise ValueError(f"dtype must be a floating dtype in {list(RTOL)}; got {dtype}")
    return dtype



# ---------------------------------------------------------------------------------------
# the core
# ---------------------------------------------------------------------------------------
def check_trace(
    trace: Trace,
    solver,
    constants: dict | None,
    m: int,
    kappa: Any,
    *,
    reasons: list[str] | None = None,
    dtype: torch.dtype | str = torch.float64,
    final_phi_eps: list[float] | None = None,
) -> Report:
    """Check every invariant listed in :mod:`lda_opt.checks` on ``trace``.

    Parameters
    ----------
    trace: the run's :class:`~lda_opt.trace.Trace`.
    solver: the solver instance that produced it (its hyper-parameters are read).
    constants: ``{"L_f", "M", "L_g"}`` enable the line-search, segment and total bounds
        (skipped without them); optional ``"phi_x0"`` (a number or one per sample; default
        the trace's ``phi_{eps0}(x0)``), ``"phi_star"`` (a lower bound of ``min phi``;
        default 0, valid for least squares plus a norm) and ``"certified"``
        (``{name: bool}``; violations that use an uncertified constant are marked).
    m: the number of groups; kappa: the weight (a number or one per sample).
    reasons: per-sample stop reasons (enables the certificate and termination checks).
    dtype: the run's dtype (selects the tolerance :data:`RTOL`).
    final_phi_eps: per-sample ``phi_{eps_final}(x_final)`` (``Result.phi_eps``), which lets
        the last row's reduction be checked too.
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be an lda_opt.Trace; got {type(trace).__name__}")
    theory = theory_of(solver)
    rdtype = _real_dtype(dtype)
    if isinstance(m, bool) or not isinstance(m, (int, float)) or m != int(m) or int(m) < 1:
        raise ValueError(f"m must be an integer >= 1; got {m!r}")
    m = int(m)
    consts = validate_constants(constants)
    B = trace.batch_size
    kappas = _kappas(consts["kappa"] if consts.get("kappa") is not None else kappa, B)
    if reasons is not None:
        reasons = [reasons] if isinstance(reasons, str) else list(reasons)
        if len(reasons) != B:
            raise ValueError(f"reasons has {len(reasons)} entries for a batch of {B}")
    if final_phi_eps is not None:
        final_phi_eps = [
            float(v)
            for v in (
                final_phi_eps
                if isinstance(final_phi_eps, (list, tuple))
                else torch.as_tensor(final_phi_eps).reshape(-1).tolist()
            )
        ]
        if len(final_phi_eps) != B:
            raise ValueError(f"final_phi_eps has {len(final_phi_eps)} entries for a batch of {B}")
    report = Report(solver=str(getattr(solver, "name", type(solver).__name__)))
    ck = Checker(report, RTOL[rdtype])
    have_L = all(consts.get(k) is not None for k in ("L_f", "M", "L_g"))
    if not have_L:
        report.skip("linesearch-bound, segment-bound, total-bound: no constants L_f, M, L_g")
    if len(trace) == 0:
        return report
    d = trace.as_dict()
    act = d.pop("active")
    for b in range(B):
        rows = {k: v[act[:, b], b].tolist() for k, v in d.items()}
        if not rows["eps"]:
            continue
        Sample(
            ck,
            solver,
            theory,
            rows,
            b,
            m,
            kappas[b],
            consts if have_L else None,
            None if reasons is None else reasons[b],
            None if final_phi_eps is None else final_phi_eps[b],
        ).run()
    return report


class Sample:
    """The checks of one sample's rows ``r`` (field -> list of values) under ``theory``."""

    def __init__(
        self,
        ck: Checker,
        solver,
        theory: Theory,
        r: dict,
        b: int,
        m: int,
        kappa: float,
        consts: dict | None,
        reason: str | None,
        final_phi_eps: float | None,
    ) -> None:
        self.ck, self.solver, self.theory, self.r, self.b = ck, solver, theory, r, b
        self.labels = theory.labels
        self.m, self.kappa, self.c, self.reason, self.final = (
            m,
            kappa,
            consts,
            reason,
            final_phi_eps,
        )
        self.K = len(r["eps"])
        self.gamma, self.sigma = float(solver.gamma), float(solver.sigma)
        self.eps_tol = float(solver.eps_tol)
        self.cert = consts is None or all(
            (consts.get("certified") or {}).get(k, True) for k in ("L_f", "M", "L_g")
        )
        self._L: dict[float, float] = {}
        # rows carry L_eps only where a declared inequality or the descent rule needs it
        self._row_L = consts is not None and (
            callable(theory.descent) or any(i.uses_constants for i in theory.decrease)
        )

    # -- helpers ---------------------------------------------------------------------------
    def gap(self, eps: float) -> float:
        return bounds.smoothing_gap(self.solver.smoothing.name, self.m, eps, self.kappa)

    def L(self, eps: float) -> float:
        """``L_eps`` of the run's smoothing (:func:`~lda_opt.bounds.lipschitz_eps`)."""
        if eps not in self._L:
            c = self.c
            self._L[eps] = bounds.lipschitz_eps(
                self.solver.smoothing.name, c["L_f"], c["L_g"], c["M"], self.m, eps, self.kappa
            )
        return self._L[eps]

    def row(self, k: int) -> Row:
        r = self.r
        eps = r["eps"][k]
        return Row(
            k=k,
            eps=eps,
            eps_next=r["eps_next"][k],
            phi_eps=r["phi_eps"][k],
            phi_eps_prev=r["phi_eps_prev"][k],
            phi=r["phi"][k],
            grad_norm=r["grad_norm"][k],
            grad_norm_prev=r["grad_norm_prev"][k],
            dist=r["dist"][k],
            step=r["step"][k],
            branch=int(r["branch"][k]),
            linesearch=r["linesearch"][k],
            capped=r["capped"][k],
            L=self.L(eps) if self._row_L else None,
        )

    def descent_guaranteed(self, row: Row) -> bool:
        """Whether the rule implies ``phi_eps(x_{k+1}) <= phi_eps(x_k)`` at this row (False
        when that depends on the constants and there are none)."""
        d = self.theory.descent
        if callable(d):
            return self.c is not None and bool(d(row.L))
        return bool(d)

    # -- the checks ------------------------------------------------------------------------
    def run(self) -> None:
        th, report = self.theory, self.ck.report
        for note in th.notes:
            report.skip(note)
        if callable(th.descent) and self.c is None:
            report.skip(th.descent_note)
        monotone_all = True
        for k in range(self.K):
            row = self.row(k)
            desc = self.descent_guaranteed(row)
            monotone_all = monotone_all and desc
            shared.check_row(self, row, desc)
        shared.level_set(self, monotone_all)
        shared.termination(self)
        if self.c is not None:
            check_bounds(self)


def check(result, problem, solver, constants: dict | None = None) -> Report:
    """Check the theorem invariants of a run (the list is in :mod:`lda_opt.checks`).

    ``result``: the :class:`~lda_opt.algorithms.Result` of ``solver.run(problem, x0)``, or
    its :class:`~lda_opt.trace.Trace` (then the stop reasons are unknown and the certificate
    is not checked).  ``constants``: any of ``L_f, M, L_g, phi_x0, phi_star, m, kappa,
    certified``; the missing ``L_f, M, L_g, m`` come from :func:`estimate_constants`.
    Returns a :class:`Report` (``.ok``, ``.violations``).
    """
    from ..algorithms import Result
    from ..problem import Problem

    if isinstance(result, Result):
        trace, reasons, x, final = result.trace, list(result.reason), result.x, result.phi_eps
    elif isinstance(result, Trace):
        trace, reasons, x, final = result, None, None, None
    else:
        raise TypeError(f"result must be an lda_opt Result or Trace; got {type(result).__name__}")
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an lda_opt.Problem; got {type(problem).__name__}")
    theory_of(solver)
    consts = validate_constants(constants)
    need = {"L_f", "M", "L_g", "m"} - {k for k, v in consts.items() if v is not None}
    if need:
        est = estimate_constants(problem, x)
        cert = dict(est["certified"])
        for k in need:
            consts[k] = est[k]
        cert.update({k: True for k in ("L_f", "M", "L_g") if k not in need})
        cert.update(consts.get("certified") or {})
        consts["certified"] = cert
    m = consts.pop("m")
    kappa = consts.pop("kappa", None)
    if kappa is None:
        kappa = problem.weight
    dtype = x.dtype if x is not None else problem.fidelity.y.dtype
    return check_trace(
        trace,
        solver,
        consts,
        m,
        kappa,
        reasons=reasons,
        dtype=dtype,
        final_phi_eps=None if final is None else final.detach().reshape(-1).tolist(),
    )
