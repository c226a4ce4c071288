r"""Invariant checker: the convergence theorems, verified on a recorded run.

:func:`check` (exported as ``lda_opt.check``) takes a :class:`~lda_opt.algorithms.Result`
(or a :class:`~lda_opt.trace.Trace`), the :class:`~lda_opt.Problem` and the solver, and
returns a :class:`Report`.  :func:`check_trace` is the core: it needs only the trace, the
solver, a constants dict, the number of groups ``m`` and the weight ``kappa``, so
``lda-opt check DIR`` uses it without rebuilding the problem.  A violated inequality never
raises: each becomes a :class:`Violation` that names the inequality, its paper equation, the
iteration, the sample and the margin.  Bad arguments raise ``ValueError``.

Notation (fields of :mod:`lda_opt.trace`): trace row ``k`` of a sample is the iteration
``x_k -> x_{k+1}`` at level ``eps_k``; ``phi_eps = phi_{eps_k}(x_{k+1})``,
``phi_eps_prev = phi_{eps_k}(x_k)``, ``dist = ||x_{k+1} - x_k||``, ``grad_norm_prev =
||grad phi_{eps_k}(x_k)||``, ``grad_norm = ||grad phi_{eps_k}(x_{k+1})||``, ``step`` the
accepted step, ``linesearch`` the number of ``phi_eps(v)`` evaluations.  ``gap(eps)`` is the
smoothing gap (:func:`lda_opt.bounds.smoothing_gap`): ``kappa m eps/2`` (Huber) or
``kappa m eps`` (Sqrt; meta-LDA prints ``eps``, corrected in ``theory/meta_lda.md``).

What is verified, per sample (the name in brackets is :attr:`Violation.check`):

``[descent]``  ``phi_eps(x_{k+1}) <= phi_eps(x_k)``: LDA (21), ELDA (4.23), meta-LDA (A11),
  for every solver whose rule guarantees it (backtracking; a fixed LDA/GD step only when
  ``alpha L_eps < 2`` with the constants; never for AGD with ``linesearch=False``).

``[sufficient-decrease]``  the acceptance inequality of the branch taken.  ELDA u: (4.9a)
  ``grad_norm_prev <= dist/eta1`` and (4.9b) ``dphi <= -(eta2/2) dist^2``; ELDA v: (4.11)
  ``dphi <= -(eta3/eps) dist^2``.  meta-LDA u: (A6) ``grad_norm_prev <= a dist`` and
  ``dphi <= -dist^2/a``; v: (A7).  LDA/GD with backtracking (Sec. 4.3.3), v:
  ``dphi <= -c dist^2``; u: ``v`` is not stored, but ``||v - x_k|| = alpha_k ||grad
  phi_eps(x_k)||`` (``v = x_k - alpha_k grad phi_eps(x_k)`` with the accepted ``alpha_k``,
  which ``u`` also uses), so ``phi_eps(u) <= phi_eps(v) <= phi_eps(x_k) - c (step
  grad_norm_prev)^2`` (LDA (15)).  AGD: ``dphi <= -c dist^2``.  LDA/GD with a fixed step
  (needs constants): the descent lemma (LDA (19)-(20) with the exact inner product)
  ``dphi <= (-1/alpha + L_eps/2) (alpha grad_norm_prev)^2``, for either branch by (15).

``[smoothing-sandwich]``  ``phi_eps <= phi <= phi_eps + gap(eps_k)`` at ``x_{k+1}``: LDA (6),
  ELDA (4.5), meta-LDA (5) corrected.

``[reduction-rule]``  ``eps_{k+1} = gamma eps_k`` iff ``grad_norm < sigma gamma eps_k`` (LDA
  Alg. 1 line 7, ELDA and meta-LDA Alg. 1 line 15); ``eps`` of row ``k+1`` is ``eps_next``
  of row ``k``; without a reduction ``phi_eps_prev`` of row ``k+1`` is ``phi_eps`` of row
  ``k``; a sample that did not move keeps ``eps``.

``[monotone-quantity]``  across a reduction ``phi_{eps_{k+1}}(x_{k+1}) + gap(eps_{k+1}) <=
  phi_{eps_k}(x_{k+1}) + gap(eps_k)`` (the left side is the next row's ``phi_eps_prev``, or
  the result's final ``phi_eps`` after the last row): LDA (24) / Lemma 3.4, ELDA (4.30),
  meta-LDA (A19) / Lemma A4 corrected.  With descent, also ``phi(x_{k+1}) <= phi_{eps_0}(x_0)
  + gap(eps_0)`` (the level set of LDA Thm 3.6 / ELDA Thm 4.6 / meta-LDA (A23)).

``[termination]``  ``sigma eps_{k+1} >= eps_tol`` on every row but a converged sample's last
  (the algorithms stop at the first ``sigma eps < eps_tol``); at most ``max_iter`` rows;
  ``max_iter`` and ``linesearch_cap`` reasons agree with the trace.

``[certificate]``  reason ``converged``: the last row has ``grad_norm < sigma gamma eps``,
  ``eps_next = gamma eps`` and ``sigma eps_next < eps_tol`` (LDA Thm 3.6, ELDA (4.31),
  meta-LDA Thm A5), and the number of reductions is exactly
  :func:`~lda_opt.bounds.num_reductions`.

With constants ``L_f, M, L_g`` (supplied, or from :func:`estimate_constants`); ``L_eps`` is
:func:`~lda_opt.bounds.lipschitz_huber` or the sharp :func:`~lda_opt.bounds.lipschitz_sqrt`:

``[linesearch-bound]``  ``phi_eps(v)`` evaluations ``<= l_max`` and the accepted v-step
  ``>=`` its lower bound: ELDA (4.13)/(4.20) corrected (:func:`~lda_opt.bounds.elda_lmax`,
  :func:`~lda_opt.bounds.elda_min_step`); meta-LDA Lemma A3 and LDA/GD backtracking (the
  same argument with ``a = 1/c``, ``theory/lda.md``):
  :func:`~lda_opt.bounds.metalda_max_backtracks` ``+ 1``,
  :func:`~lda_opt.bounds.metalda_min_step` (sharp).  A search that hit its cap is a
  violation when ``max_linesearch >= l_max``.  Not for AGD (no bound) or a fixed step.  A
  warm-started LDA/GD search is bounded from its first trial ``min(alpha, alpha_{k-1}/shrink)``.
  Rows whose search cannot be resolved in floating point (the largest margin ``T g^2/4`` by
  which an acceptable step satisfies the rule is below the rounding of ``phi_eps``) are
  listed in :attr:`Report.rounding` instead (``theory/README.md``, "Floating point").

``[segment-bound]``  segment ``l`` (iterations ``k_l+1 .. k_{l+1}``, ``k_0 = -1``; an
  unfinished last segment counts its iterations so far, which the same bound limits):
  ELDA (4.27) with :func:`~lda_opt.bounds.elda_segment_constants`; meta-LDA and
  backtracking LDA/GD: ``1 +`` Lemma A3 (:func:`~lda_opt.bounds.metalda_fixed_eps_iterations`,
  ``delta = L_eps * metalda_min_step``) started at the segment's first ``phi_eps``; fixed-step
  LDA/GD: ``1 +`` Lemma 3.3 with ``delta1 = delta2 = 1/(alpha L_eps)`` and Thm 3.5 (27)-(28)
  corrected with ``delta1 = 1/(alpha L_{eps_0})``, ``delta2 = 1/(alpha L_{eps_min})``, when
  ``alpha L_eps < 1`` (Thm 3.5's range; otherwise noted in :attr:`Report.skipped`).

``[total-bound]``  iterations up to the last reduction ``<=`` the sum of the segment bounds:
  ELDA (4.28) (finite sum, and the closed form in ``eps_tol`` when converged); fixed-step
  LDA/GD (29) likewise; meta-LDA and backtracking LDA/GD: the sum of ``1 +`` Lemma A3 with
  each segment's start bounded a priori by the monotone quantity,
  ``phi_{eps_l}(x_{k_l+1}) <= phi_{eps_0}(x_0) + gap(eps_0) - gap(eps_l)``.

Tolerance.  ``lhs <= rhs`` passes when ``lhs - rhs <= rtol * scale`` with ``scale`` the
largest magnitude of the terms compared and ``rtol`` from :data:`RTOL` by the run's dtype:
256 machine epsilons, the rounding of sums of up to a few thousand group norms (pairwise
summation) and of the products in the thresholds.  It absorbs rounding only; no inequality
gets slack.  Counts and steps (``linesearch``, ``l_max``, segment lengths) are compared
exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import bounds
from .trace import Trace

__all__ = ["CHECKS", "RTOL", "Report", "Violation", "check", "check_trace", "estimate_constants"]

#: relative rounding tolerance per real dtype (256 machine epsilons)
RTOL = {
    torch.float64: 256 * torch.finfo(torch.float64).eps,
    torch.float32: 256 * torch.finfo(torch.float32).eps,
    torch.bfloat16: 256 * torch.finfo(torch.bfloat16).eps,
    torch.float16: 256 * torch.finfo(torch.float16).eps,
}
#: the names of the checks (:attr:`Violation.check`)
CHECKS = (
    "descent",
    "sufficient-decrease",
    "smoothing-sandwich",
    "reduction-rule",
    "monotone-quantity",
    "termination",
    "certificate",
    "constants",
    "linesearch-bound",
    "segment-bound",
    "total-bound",
)
_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "complex128": torch.float64,
    "complex64": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_CONSTANT_KEYS = {"L_f", "M", "L_g", "phi_x0", "phi_star", "m", "kappa", "certified"}
_FAMILIES = ("lda", "gd", "agd", "meta-lda", "elda")
#: relative inflation of a dense SVD norm so that it certifies ||A||^2 despite rounding
_SVD_INFLATE = 1e-10


@dataclass
class Violation:
    """One failed inequality ``lhs <= rhs``: ``margin = lhs - rhs > tol``.

    ``check`` is one of :data:`CHECKS`; ``inequality`` states it; ``equation`` is the paper
    equation; ``iteration`` is the trace row (``x_k -> x_{k+1}``); ``certified`` is False
    when the inequality used an estimated (not certified) constant.
    """

    check: str
    inequality: str
    equation: str
    iteration: int
    sample: int
    lhs: float
    rhs: float
    margin: float
    tol: float
    certified: bool = True

    def line(self) -> str:
        """A one-line human-readable description."""
        cert = "" if self.certified else " [uses an estimated constant]"
        return (
            f"sample {self.sample} iteration {self.iteration}: {self.check}: "
            f"{self.inequality} ({self.equation}) fails: {self.lhs:.10g} > {self.rhs:.10g} "
            f"(margin {self.margin:.3g}, tol {self.tol:.3g}){cert}"
        )


@dataclass
class Report:
    """The checker's result: ``ok`` iff there is no violation.

    ``counts``: inequalities checked per check name; ``skipped``: checks that could not be
    applied, with the reason; ``rounding``: failed line-search bounds at rows whose search
    cannot be resolved in floating point (``T g^2/4`` below the rounding of ``phi_eps``, see
    ``_Sample.linesearch_bounds``).  They are reported, but they are not evidence against the
    lemma (which assumes exact arithmetic), so they do not make ``ok`` False.
    """

    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    solver: str = ""
    rounding: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_check(self) -> dict[str, int]:
        """Number of violations per check name."""
        out: dict[str, int] = {}
        for v in self.violations:
            out[v.check] = out.get(v.check, 0) + 1
        return out

    def find(
        self, check: str, iteration: int | None = None, sample: int | None = None
    ) -> list[Violation]:
        """The violations of ``check`` (optionally at one iteration / sample)."""
        return [
            v
            for v in self.violations
            if v.check == check
            and (iteration is None or v.iteration == iteration)
            and (sample is None or v.sample == sample)
        ]

    def skip(self, reason: str) -> None:
        if reason not in self.skipped:
            self.skipped.append(reason)

    def summary(self) -> str:
        """Counts, skipped checks and one line per violation."""
        head = (
            f"{self.solver}: {'OK' if self.ok else 'FAILED'}: {len(self.violations)} "
            f"violation(s) in {sum(self.counts.values())} inequalities checked"
        )
        lines = [head]
        lines += [f"  {k}: {n} checked" for k, n in sorted(self.counts.items())]
        lines += [f"  skipped: {s}" for s in self.skipped]
        if self.rounding:
            lines.append(
                f"  rounding-limited (not violations): {len(self.rounding)} line-search bound(s) at "
                f"iterations {sorted({v.iteration for v in self.rounding})[:20]}"
            )
        lines += ["  " + v.line() for v in self.violations]
        return "\n".join(lines)

    def to_json(self, path: str | Path | None = None) -> dict:
        """A JSON-able dict (written to ``path`` when given)."""
        out = {
            "ok": self.ok,
            "solver": self.solver,
            "counts": dict(self.counts),
            "skipped": list(self.skipped),
            "violations": [asdict(v) for v in self.violations],
            "rounding": [asdict(v) for v in self.rounding],
        }
        if path is not None:
            Path(path).write_text(json.dumps(out, indent=2))
        return out


class _Checker:
    """Records every comparison ``lhs <= rhs`` (with rounding tolerance) in a report."""

    def __init__(self, report: Report, rtol: float) -> None:
        self.report = report
        self.rtol = rtol

    def leq(
        self,
        check: str,
        inequality: str,
        equation: str,
        k: int,
        b: int,
        lhs: float,
        rhs: float,
        scale: float | None = None,
        certified: bool = True,
        limited: bool = False,
    ) -> bool:
        """``lhs <= rhs`` up to ``rtol * scale`` (default scale: ``max(|lhs|, |rhs|)``;
        ``scale=0`` compares exactly).  NaN fails.  ``limited``: the inequality cannot be
        decided at this precision (a failure goes to ``Report.rounding``)."""
        self.report.counts[check] = self.report.counts.get(check, 0) + 1
        if scale is None:
            scale = max(abs(lhs), abs(rhs))
        tol = self.rtol * scale
        margin = lhs - rhs
        if not (margin <= tol):
            (self.report.rounding if limited else self.report.violations).append(
                Violation(
                    check,
                    inequality,
                    equation,
                    int(k),
                    int(b),
                    float(lhs),
                    float(rhs),
                    float(margin),
                    float(tol),
                    bool(certified),
                )
            )
            return False
        return True

    def eq(
        self,
        check: str,
        what: str,
        equation: str,
        k: int,
        b: int,
        value: float,
        expected: float,
        scale: float | None = None,
    ) -> bool:
        """``value == expected`` up to rounding (recorded as ``|value - expected| <= 0``)."""
        if scale is None:
            scale = max(abs(value), abs(expected))
        return self.leq(check, what, equation, k, b, abs(value - expected), 0.0, scale)


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------
def _family(solver) -> str:
    name = getattr(solver, "name", "")
    if name in _FAMILIES:
        return name
    raise ValueError(
        f"solver must be an LDA, GD, AGD, MetaLDA or ELDA instance; got {type(solver).__name__}"
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


def _validate_constants(constants: dict | None) -> dict:
    if constants is None:
        return {}
    if not isinstance(constants, dict):
        raise TypeError(f"constants must be a dict; got {type(constants).__name__}")
    unknown = set(constants) - _CONSTANT_KEYS
    if unknown:
        raise ValueError(
            f"constants has unknown keys {sorted(unknown)}; valid: {sorted(_CONSTANT_KEYS)}"
        )
    out = dict(constants)
    for key in ("L_f", "M", "L_g"):
        if out.get(key) is not None:
            try:
                v = float(out[key])
            except (TypeError, ValueError):
                raise ValueError(
                    f"constants[{key!r}] must be a number in [0, inf); got {out[key]!r}"
                ) from None
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"constants[{key!r}] must be in [0, inf); got {out[key]!r}")
            out[key] = v
    if out.get("phi_star") is not None:
        v = float(out["phi_star"])
        if not math.isfinite(v):
            raise ValueError(f"constants['phi_star'] must be finite; got {out['phi_star']!r}")
        out["phi_star"] = v
    cert = out.get("certified")
    if cert is not None and not isinstance(cert, dict):
        raise ValueError(f"constants['certified'] must be a dict {{name: bool}}; got {cert!r}")
    return out


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
    fam = _family(solver)
    rdtype = _real_dtype(dtype)
    if isinstance(m, bool) or not isinstance(m, (int, float)) or m != int(m) or int(m) < 1:
        raise ValueError(f"m must be an integer >= 1; got {m!r}")
    m = int(m)
    consts = _validate_constants(constants)
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
    report = Report(solver=fam)
    ck = _Checker(report, RTOL[rdtype])
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
        s = _Sample(
            ck,
            solver,
            fam,
            rows,
            b,
            m,
            kappas[b],
            consts if have_L else None,
            None if reasons is None else reasons[b],
            None if final_phi_eps is None else final_phi_eps[b],
        )
        s.run()
    return report


class _Sample:
    """The checks of one sample's rows."""

    def __init__(
        self,
        ck: _Checker,
        solver,
        fam: str,
        r: dict,
        b: int,
        m: int,
        kappa: float,
        consts: dict | None,
        reason: str | None,
        final_phi_eps: float | None,
    ) -> None:
        self.ck, self.solver, self.fam, self.r, self.b = ck, solver, fam, r, b
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
        self.linesearch = bool(getattr(solver, "linesearch", True))
        self.cert = consts is None or all(
            (consts.get("certified") or {}).get(k, True) for k in ("L_f", "M", "L_g")
        )
        self._L: dict[float, float] = {}
        self.eq_desc = {
            "lda": "LDA (21)",
            "gd": "LDA (21)",
            "agd": "AGD rule (LDA Sec. 4.3.3)",
            "elda": "ELDA (4.23)",
            "meta-lda": "meta-LDA (A11)",
        }[fam]
        self.eq_mono = {
            "lda": "LDA (24), Lemma 3.4",
            "gd": "LDA (24), Lemma 3.4",
            "agd": "LDA (24), Lemma 3.4",
            "elda": "ELDA (4.30)",
            "meta-lda": "meta-LDA (A19), Lemma A4 corrected",
        }[fam]
        self.eq_red = {"elda": "ELDA Alg. 1 line 15", "meta-lda": "meta-LDA Alg. 1 line 15"}.get(
            fam, "LDA Alg. 1 line 7"
        )
        self.eq_gap = {"elda": "ELDA (4.5)", "meta-lda": "meta-LDA (5) corrected"}.get(
            fam, "LDA (6)"
        )

    # -- helpers ---------------------------------------------------------------------------
    def gap(self, eps: float) -> float:
        return bounds.smoothing_gap(self.solver.smoothing.name, self.m, eps, self.kappa)

    def L(self, eps: float) -> float:
        """``L_eps`` (Huber: LDA Lemma 3.2; Sqrt: meta-LDA Lemma A2, sharp constant)."""
        if eps not in self._L:
            c = self.c
            if self.solver.smoothing.name == "sqrt":
                self._L[eps] = bounds.lipschitz_sqrt(
                    c["L_f"], c["L_g"], c["M"], self.m, eps, self.kappa, sharp=True
                )
            else:
                self._L[eps] = bounds.lipschitz_huber(
                    c["L_f"], c["L_g"], c["M"], self.m, eps, self.kappa
                )
        return self._L[eps]

    def fixed_step(self) -> bool:
        """LDA/GD with a fixed step (``linesearch=False``)."""
        return self.fam in ("lda", "gd") and not self.linesearch

    def descent_guaranteed(self, eps: float) -> bool | None:
        """Whether the algorithm's rule implies ``phi_eps(x_{k+1}) <= phi_eps(x_k)`` at level
        ``eps`` (None: unknown without constants)."""
        if self.fam == "agd" and not self.linesearch:
            return False
        if self.fixed_step():
            if self.c is None:
                return None
            return float(self.solver.alpha) * self.L(eps) < 2.0
        return True

    # -- the checks ------------------------------------------------------------------------
    def run(self) -> None:
        r, ck = self.r, self.ck
        K = self.K
        if self.fam == "agd" and not self.linesearch:
            ck.report.skip(
                "descent, sufficient-decrease, bounds: AGD with linesearch=False has no theory"
            )
        elif self.fixed_step() and self.c is None:
            ck.report.skip("descent: a fixed LDA/GD step needs the constants (alpha L_eps < 2)")
        monotone_all = True
        for k in range(K):
            desc = self.descent_guaranteed(r["eps"][k])
            monotone_all = monotone_all and bool(desc)
            self.row(k, bool(desc))
        self.level_set(monotone_all)
        self.termination()
        if self.c is not None:
            self.bounds()

    def row(self, k: int, desc: bool) -> None:
        r, ck, b, fam, solver = self.r, self.ck, self.b, self.fam, self.solver
        pe, pp, eps, en = r["phi_eps"][k], r["phi_eps_prev"][k], r["eps"][k], r["eps_next"][k]
        br, step, gn, gp, dist = (
            int(r["branch"][k]),
            r["step"][k],
            r["grad_norm"][k],
            r["grad_norm_prev"][k],
            r["dist"][k],
        )
        scale = max(abs(pe), abs(pp))
        d2 = dist * dist
        if desc:
            ck.leq("descent", "phi_eps(x_{k+1}) <= phi_eps(x_k)", self.eq_desc, k, b, pe, pp)
        # sufficient decrease of the branch taken
        sd = "sufficient-decrease"
        if br >= 0:
            if fam == "elda":
                if br == 0:
                    ck.leq(
                        sd,
                        "||grad phi_eps(x_k)|| <= ||u - x_k||/eta1",
                        "ELDA (4.9a)",
                        k,
                        b,
                        gp,
                        dist / solver.eta1,
                    )
                    ck.leq(
                        sd,
                        "phi_eps(u) - phi_eps(x_k) <= -(eta2/2)||u - x_k||^2",
                        "ELDA (4.9b)",
                        k,
                        b,
                        pe - pp,
                        -(solver.eta2 / 2) * d2,
                        scale,
                    )
                else:
                    ck.leq(
                        sd,
                        "phi_eps(v) - phi_eps(x_k) <= -(eta3/eps)||v - x_k||^2",
                        "ELDA (4.11)",
                        k,
                        b,
                        pe - pp,
                        -(solver.eta3 / eps) * d2,
                        scale,
                    )
            elif fam == "meta-lda":
                if br == 0:
                    ck.leq(
                        sd,
                        "||grad phi_eps(x_k)|| <= a||u - x_k||",
                        "meta-LDA (A6)",
                        k,
                        b,
                        gp,
                        solver.a * dist,
                    )
                ck.leq(
                    sd,
                    "phi_eps(x_{k+1}) - phi_eps(x_k) <= -(1/a)||x_{k+1} - x_k||^2",
                    "meta-LDA (A6)" if br == 0 else "meta-LDA (A7)",
                    k,
                    b,
                    pe - pp,
                    -d2 / solver.a,
                    scale,
                )
            elif fam == "agd":
                if self.linesearch:
                    ck.leq(
                        sd,
                        "phi_eps(x_{k+1}) - phi_eps(x_k) <= -c||x_{k+1} - x_k||^2",
                        "AGD rule (LDA Sec. 4.3.3)",
                        k,
                        b,
                        pe - pp,
                        -solver.c * d2,
                        scale,
                    )
            elif self.linesearch:
                if br == 1:
                    ck.leq(
                        sd,
                        "phi_eps(v) - phi_eps(x_k) <= -c||v - x_k||^2",
                        "LDA Sec. 4.3.3",
                        k,
                        b,
                        pe - pp,
                        -solver.c * d2,
                        scale,
                    )
                else:
                    dv = step * gp
                    ck.leq(
                        sd,
                        "phi_eps(u) <= phi_eps(v) <= phi_eps(x_k) - c (alpha_k ||grad phi_eps(x_k)||)^2",
                        "LDA (15) + Sec. 4.3.3",
                        k,
                        b,
                        pe - pp,
                        -solver.c * dv * dv,
                        scale,
                    )
            elif self.c is not None:  # fixed LDA/GD step: the descent lemma
                alpha = float(solver.alpha)
                dv = alpha * gp
                ck.leq(
                    sd,
                    "phi_eps(x_{k+1}) - phi_eps(x_k) <= (-1/alpha + L_eps/2)(alpha ||grad phi_eps(x_k)||)^2",
                    "LDA (15), (19)-(20)",
                    k,
                    b,
                    pe - pp,
                    (-1.0 / alpha + self.L(eps) / 2) * dv * dv,
                    scale,
                    self.cert,
                )
        # smoothing sandwich at x_{k+1}
        gap_k = self.gap(eps)
        phi = r["phi"][k]
        ck.leq("smoothing-sandwich", "phi_eps(x_{k+1}) <= phi(x_{k+1})", self.eq_gap, k, b, pe, phi)
        ck.leq(
            "smoothing-sandwich",
            "phi(x_{k+1}) <= phi_eps(x_{k+1}) + gap(eps_k)",
            self.eq_gap,
            k,
            b,
            phi,
            pe + gap_k,
            max(abs(phi), abs(pe) + gap_k),
        )
        # reduction rule
        rr = "reduction-rule"
        thr = self.sigma * self.gamma * eps
        reduced = en < eps
        if br >= 0 and math.isfinite(gn):
            if reduced:
                ck.leq(
                    rr,
                    "reduced only if ||grad phi_eps(x_{k+1})|| < sigma gamma eps_k",
                    self.eq_red,
                    k,
                    b,
                    gn,
                    thr,
                )
                ck.eq(rr, "eps_{k+1} = gamma eps_k", self.eq_red, k, b, en, self.gamma * eps, eps)
            else:
                ck.leq(
                    rr,
                    "not reduced only if ||grad phi_eps(x_{k+1})|| >= sigma gamma eps_k",
                    self.eq_red,
                    k,
                    b,
                    thr,
                    gn,
                )
                ck.eq(rr, "eps_{k+1} = eps_k", self.eq_red, k, b, en, eps, eps)
        else:
            ck.eq(
                rr,
                "no move (or non-finite step): eps_{k+1} = eps_k",
                self.eq_red,
                k,
                b,
                en,
                eps,
                eps,
            )
        # continuity to the next row, and the monotone quantity across a reduction
        if k + 1 < self.K:
            ck.eq(
                rr,
                "eps of row k+1 = eps_next of row k",
                "trace continuity",
                k,
                b,
                r["eps"][k + 1],
                en,
                eps,
            )
            nxt = r["phi_eps_prev"][k + 1]
        else:
            nxt = self.final
        if nxt is not None:
            if reduced:
                # the sandwich at the new level, and the monotone quantity across the reduction
                ck.leq(
                    "smoothing-sandwich",
                    "phi_{eps_{k+1}}(x_{k+1}) <= phi(x_{k+1})",
                    self.eq_gap,
                    k,
                    b,
                    nxt,
                    phi,
                )
                ck.leq(
                    "smoothing-sandwich",
                    "phi(x_{k+1}) <= phi_{eps_{k+1}}(x_{k+1}) + gap(eps_{k+1})",
                    self.eq_gap,
                    k,
                    b,
                    phi,
                    nxt + self.gap(en),
                    max(abs(phi), abs(nxt) + self.gap(en)),
                )
                ck.leq(
                    "monotone-quantity",
                    "phi_{eps_{k+1}}(x_{k+1}) + gap(eps_{k+1}) <= phi_{eps_k}(x_{k+1}) + gap(eps_k)",
                    self.eq_mono,
                    k,
                    b,
                    nxt + self.gap(en),
                    pe + gap_k,
                    max(abs(nxt), abs(pe)) + gap_k,
                )
            else:
                ck.eq(
                    "monotone-quantity",
                    "phi_eps(x_{k+1}) recorded twice (row k+1's phi_eps_prev) agrees",
                    "trace continuity",
                    k,
                    b,
                    nxt,
                    pe,
                )

    def level_set(self, monotone_all: bool) -> None:
        """``phi(x_{k+1}) <= phi_{eps0}(x0) + gap(eps0)`` (needs descent on every row)."""
        if not monotone_all:
            return
        r = self.r
        Q0 = r["phi_eps_prev"][0] + self.gap(r["eps"][0])
        for k in range(self.K):
            phi = r["phi"][k]
            self.ck.leq(
                "monotone-quantity",
                "phi(x_{k+1}) <= phi_eps0(x_0) + gap(eps_0)",
                "LDA Thm 3.6 / ELDA (4.30) / meta-LDA (A23)",
                k,
                self.b,
                phi,
                Q0,
                max(abs(phi), abs(Q0)),
            )

    def termination(self) -> None:
        r, ck, b, K = self.r, self.ck, self.b, self.K
        eq = {"elda": "ELDA Alg. 1 line 18", "meta-lda": "meta-LDA Alg. 1 line 16"}.get(
            self.fam, "LDA Alg. 1 line 8"
        )
        for k in range(K - 1 if self.reason in (None, "converged") else K):
            # sigma eps_{k+1} >= eps_tol: otherwise the sample must have stopped here
            ck.leq(
                "termination",
                "sigma eps_{k+1} >= eps_tol before the last iteration",
                eq,
                k,
                b,
                self.eps_tol,
                self.sigma * r["eps_next"][k],
            )
        ck.leq(
            "termination",
            "iterations <= max_iter",
            "Solver.max_iter",
            K - 1,
            b,
            float(K),
            float(self.solver.max_iter),
            0.0,
        )
        if self.reason == "max_iter":
            ck.eq(
                "termination",
                "reason max_iter: iterations = max_iter",
                "Solver.max_iter",
                K - 1,
                b,
                float(K),
                float(self.solver.max_iter),
                0.0,
            )
        elif self.reason == "linesearch_cap":
            ck.eq(
                "termination",
                "reason linesearch_cap: the last search hit its cap",
                "Solver.max_linesearch",
                K - 1,
                b,
                r["capped"][K - 1],
                1.0,
                0.0,
            )
        elif self.reason == "converged":
            k = K - 1
            eps, en, gn = r["eps"][k], r["eps_next"][k], r["grad_norm"][k]
            eqc = {"elda": "ELDA (4.31)", "meta-lda": "meta-LDA Thm A5"}.get(
                self.fam, "LDA Thm 3.6"
            )
            ck.leq(
                "certificate",
                "||grad phi_eps(x_K)|| < sigma gamma eps",
                eqc,
                k,
                b,
                gn,
                self.sigma * self.gamma * eps,
            )
            ck.eq(
                "certificate",
                "eps_next = gamma eps at the last iteration",
                eqc,
                k,
                b,
                en,
                self.gamma * eps,
                eps,
            )
            ck.leq(
                "certificate", "sigma eps_next < eps_tol", eqc, k, b, self.sigma * en, self.eps_tol
            )
            n_red = sum(1 for e, n in zip(r["eps"], r["eps_next"]) if n < e)
            ell = bounds.num_reductions(r["eps"][0], self.eps_tol, self.sigma, self.gamma)
            ck.eq(
                "certificate",
                "number of reductions = num_reductions(eps0, eps_tol, sigma, gamma)",
                "theory/README.md (counting)",
                k,
                b,
                float(n_red),
                float(ell),
                0.0,
            )

    # -- constant-based bounds -----------------------------------------------------------
    def segments(self) -> list[tuple[int, int, bool]]:
        """(first row, last row, finished) of each eps-segment."""
        r = self.r
        segs, start = [], 0
        for k, (e, en) in enumerate(zip(r["eps"], r["eps_next"])):
            if en < e:
                segs.append((start, k, True))
                start = k + 1
        if start < self.K:
            segs.append((start, self.K - 1, False))
        return segs

    def bounds(self) -> None:
        r, ck, b, c, fam = self.r, self.ck, self.b, self.c, self.fam
        if fam == "agd":
            ck.report.skip("linesearch-bound, segment-bound, total-bound: AGD has no bound")
            return
        phi_star = float(c.get("phi_star") if c.get("phi_star") is not None else 0.0)
        phi_x0_trace = r["phi_eps_prev"][0]
        phi_x0 = c.get("phi_x0")
        if isinstance(phi_x0, (list, tuple)):
            phi_x0 = phi_x0[b]
        if phi_x0 is None:
            phi_x0 = phi_x0_trace
        else:
            phi_x0 = float(phi_x0)
            ck.leq(
                "constants",
                "phi_eps0(x_0) <= phi_x0 (supplied)",
                "constants",
                0,
                b,
                phi_x0_trace,
                phi_x0,
            )
        eps0 = r["eps"][0]
        ck.leq(
            "constants",
            "phi_star <= phi_eps0(x_0) + gap(eps_0)",
            "(A3): phi* <= min phi",
            0,
            b,
            phi_star,
            phi_x0_trace + self.gap(eps0),
        )
        # phi_x0 below phi_star is possible (phi_eps <= phi); raising it only loosens the bounds
        phi_x0 = max(phi_x0, phi_star)
        if not self.fixed_step():
            self.linesearch_bounds()
        segs = self.segments()
        if fam == "elda":
            self.elda_bounds(segs, phi_x0, phi_star)
        elif self.fixed_step():
            self.fixed_step_bounds(segs, phi_x0, phi_star)
        else:
            self.a3_bounds(segs, phi_x0, phi_star)

    def _search(self) -> tuple[float, float, float]:
        """(initial step, a, shrink) of the search whose rule is ``dphi <= -(1/a) d^2``."""
        s = self.solver
        if self.fam == "meta-lda":
            return float(s.alpha), float(s.a), float(s.rho)
        return float(s.alpha), 1.0 / float(s.c), float(s.shrink)

    def linesearch_bounds(self) -> None:
        """Evaluations ``<= l_max``, the accepted step ``>=`` its lower bound, and no cap hit
        when ``max_linesearch >= l_max``.  A warm-started LDA/GD search (``warm_start``:
        first trial ``min(alpha, alpha_{k-1}/shrink)``) is bounded from that first trial.

        A row whose search cannot be resolved in floating point is *rounding-limited*: every
        acceptable trial ``s <= T`` (``T`` the threshold step of the rule) satisfies the rule
        with margin at most ``max_s s g^2 (1 - s/T) = T g^2/4`` (``g = ||grad phi_eps(x_k)||``);
        when that is below the rounding tolerance of ``phi_eps`` the computed test may fail
        at every such step (the search then ends where ``v == x_k`` in floating point).  Its
        failures go to :attr:`Report.rounding`, not to the violations."""
        r, ck, b, s, fam = self.r, self.ck, self.b, self.solver, self.fam
        eq = {"elda": "ELDA (4.13) corrected", "meta-lda": "meta-LDA Lemma A3"}.get(
            fam, "LDA Sec. 4.3.3 via Lemma A3"
        )
        eq_step = {"elda": "ELDA (4.20) corrected", "meta-lda": "meta-LDA Lemma A3"}.get(
            fam, "LDA Sec. 4.3.3 via Lemma A3"
        )
        warm = fam in ("lda", "gd") and bool(getattr(s, "warm_start", False))
        prev_step = None
        for k in range(self.K):
            eps = r["eps"][k]
            L = self.L(eps)
            if fam == "elda":
                T = 1.0 / (0.5 * L + s.eta3 / eps)
                lmax = bounds.elda_lmax(s.alpha_bar, L, s.eta3, eps, s.rho)
                min_step = bounds.elda_min_step(s.alpha_bar, L, s.eta3, eps, s.rho)
            else:
                a0, a, rho = self._search()
                if warm and prev_step is not None:
                    a0 = min(a0, prev_step / rho)
                T = bounds.metalda_step_threshold(L, a, sharp=True)
                lmax = bounds.metalda_max_backtracks(a0, L, a, rho, sharp=True) + 1
                min_step = bounds.metalda_min_step(a0, L, a, rho, sharp=True)
            br = int(r["branch"][k])
            prev_step = r["step"][k] if br >= 0 else prev_step
            gp = r["grad_norm_prev"][k]
            phi_scale = max(abs(r["phi_eps_prev"][k]), abs(r["phi_eps"][k]))
            limited = not (0.25 * T * gp * gp > ck.rtol * phi_scale)
            ck.leq(
                "linesearch-bound",
                "phi_eps(v) evaluations <= l_max",
                eq,
                k,
                b,
                r["linesearch"][k],
                float(lmax),
                0.0,
                self.cert,
                limited,
            )
            if r["capped"][k]:
                ck.leq(
                    "linesearch-bound",
                    "a search hits its cap only if max_linesearch < l_max",
                    eq,
                    k,
                    b,
                    float(s.max_linesearch),
                    float(lmax) - 1.0,
                    0.0,
                    self.cert,
                    limited,
                )
            # the accepted step of a v-branch (LDA/GD: of either branch, alpha_k is shared)
            if br == 1 or (fam in ("lda", "gd") and br == 0):
                ck.leq(
                    "linesearch-bound",
                    "accepted step >= its lower bound",
                    eq_step,
                    k,
                    b,
                    min_step,
                    r["step"][k],
                    None,
                    self.cert,
                    limited,
                )

    def elda_bounds(self, segs, phi_x0: float, phi_star: float) -> None:
        r, c, s = self.r, self.c, self.solver
        eps0 = r["eps"][0]
        C1, C2 = bounds.elda_segment_constants(
            c["L_f"],
            c["L_g"],
            c["M"],
            self.m,
            phi_x0,
            phi_star,
            eps0,
            self.sigma,
            s.eta1,
            s.eta2,
            s.eta3,
            s.rho,
            s.alpha_bar,
            self.kappa,
        )
        self._segment_and_total_bounds(
            segs,
            lambda l: bounds.elda_segment_bound(l, C1, C2, self.gamma),
            lambda n: bounds.elda_total_bound_sum(n, C1, C2, self.gamma),
            bounds.elda_total_bound(self.eps_tol, C1, C2, self.sigma, eps0, self.gamma),
            "1 + C1 gamma^(-3l-2) + C2 gamma^(-2l-2)",
            "(4.27)",
            "ELDA (4.27) corrected",
            "ELDA (4.28) corrected",
            "(4.28)",
        )

    def _segment_and_total_bounds(self, segs, seg_bound, total_sum, total_closed, seg_text,
                                  seg_eq, seg_src, total_src, total_eq) -> None:
        """Each segment's length, the iterations up to the last reduction (sum of the
        segment bounds) and, when converged, all iterations (closed form in eps_tol)."""
        ck, b = self.ck, self.b
        for l, (first, last, _done) in enumerate(segs):
            ck.leq("segment-bound", f"segment {l} length <= {seg_text}", seg_src, last, b,
                   float(last - first + 1), seg_bound(l), 0.0, self.cert)
        n_red = sum(1 for seg in segs if seg[2])
        if n_red:
            last = max(e for _s, e, done in segs if done)
            ck.leq("total-bound", f"iterations up to the last reduction <= sum of {seg_eq}",
                   total_src, last, b, float(last + 1), total_sum(n_red), 0.0, self.cert)
        if self.reason == "converged":
            ck.leq("total-bound", f"iterations <= closed form {total_eq} in eps_tol", total_src,
                   self.K - 1, b, float(self.K), total_closed, 0.0, self.cert)

    def a3_bounds(self, segs, phi_x0: float, phi_star: float) -> None:
        """meta-LDA and backtracking LDA/GD: Lemma A3 per segment and summed."""
        r, ck, b = self.r, self.ck, self.b
        a0, a, rho = self._search()
        src = (
            "meta-LDA Lemma A3"
            if self.fam == "meta-lda"
            else "LDA Sec. 4.3.3 via meta-LDA Lemma A3"
        )
        gap0 = self.gap(r["eps"][0])

        def seg_bound(eps: float, start: float) -> float:
            L = self.L(eps)
            delta = L * bounds.metalda_min_step(a0, L, a, rho, sharp=True)
            eta = self.sigma * self.gamma * eps
            return 1.0 + bounds.metalda_fixed_eps_iterations(
                L, a, delta, eta, max(start, phi_star), phi_star, self.m, eps, self.kappa
            )

        total, n_red = 0.0, 0
        for l, (first, last, done) in enumerate(segs):
            eps = r["eps"][first]
            ck.leq(
                "segment-bound",
                f"segment {l} length <= 1 + C (phi_eps(x_start) - phi* + kappa m eps)/eta^2",
                src + " (+1)",
                last,
                b,
                float(last - first + 1),
                seg_bound(eps, r["phi_eps_prev"][first]),
                0.0,
                self.cert,
            )
            if done:
                n_red += 1
                # a priori start: phi_{eps_l}(x_start) + gap(eps_l) <= phi_{eps_0}(x_0) + gap(eps_0)
                total += seg_bound(eps, phi_x0 + gap0 - self.gap(eps))
        if n_red:
            last = max(e for _s, e, done in segs if done)
            ck.leq(
                "total-bound",
                "iterations up to the last reduction <= sum of a-priori segment bounds",
                src + " summed, starts bounded by (A19)/(24)",
                last,
                b,
                float(last + 1),
                total,
                0.0,
                self.cert,
            )

    def fixed_step_bounds(self, segs, phi_x0: float, phi_star: float) -> None:
        """LDA/GD with a fixed step: Lemma 3.3 per segment, Thm 3.5 (27)-(29)."""
        r, ck, b, c = self.r, self.ck, self.b, self.c
        alpha = float(self.solver.alpha)
        ok_all = True
        for l, (first, last, _done) in enumerate(segs):
            eps = r["eps"][first]
            dl = 1.0 / (alpha * self.L(eps))
            if not dl > 1.0:
                ok_all = False
                ck.report.skip(
                    f"segment-bound: alpha L_eps = {1 / dl:.3g} >= 1 at eps = {eps:.3g}, outside "
                    "LDA Thm 3.5's step range"
                )
                continue
            eta = self.sigma * self.gamma * eps
            bound = 1.0 + bounds.lda_fixed_eps_iterations(
                self.L(eps),
                eta,
                max(r["phi_eps_prev"][first], phi_star),
                phi_star,
                self.m,
                eps,
                dl,
                dl,
                self.kappa,
            )
            ck.leq(
                "segment-bound",
                f"segment {l} length <= 1 + Lemma 3.3 bound",
                "LDA Lemma 3.3 (+1)",
                last,
                b,
                float(last - first + 1),
                bound,
                0.0,
                self.cert,
            )
        if not ok_all:
            return
        eps0, eps_min = r["eps"][0], r["eps"][segs[-1][0]]
        d1, d2 = 1.0 / (alpha * self.L(eps0)), 1.0 / (alpha * self.L(eps_min))
        c1, c2 = bounds.lda_segment_constants(
            d1,
            d2,
            c["L_f"],
            c["L_g"],
            c["M"],
            self.m,
            phi_x0,
            phi_star,
            eps0,
            self.sigma,
            self.gamma,
            self.kappa,
        )
        self._segment_and_total_bounds(
            segs,
            lambda l: bounds.lda_segment_bound(l, c1, c2, self.gamma),
            lambda n: bounds.lda_total_bound_sum(n, c1, c2, self.gamma),
            bounds.lda_total_bound(self.eps_tol, c1, c2, self.sigma, eps0, self.gamma),
            "1 + c1 gamma^(-2l) + c2 gamma^(-3l)",
            "(27)",
            "LDA (27)-(28) corrected",
            "LDA (29) corrected",
            "(29)",
        )


# ---------------------------------------------------------------------------------------
# constants from a Problem
# ---------------------------------------------------------------------------------------
def _image_like(problem) -> torch.Tensor:
    from .operators import MRI, Identity, Matrix

    A = problem.fidelity.A
    y = problem.fidelity.y
    if isinstance(A, Matrix):
        return torch.zeros((1, *A.input_shape), dtype=y.dtype, device=y.device)
    if isinstance(A, (MRI, Identity)):
        return torch.zeros((1, *y.shape[1:]), dtype=y.dtype, device=y.device)
    raise ValueError(
        "cannot infer the image shape of this problem's operator; pass x (an image) "
        "to estimate_constants"
    )


def estimate_constants(problem, x: torch.Tensor | None = None) -> dict:
    r"""``{"L_f", "M", "L_g", "m", "certified"}`` for a :class:`~lda_opt.Problem`.

    * ``L_f = ||A||^2``: 1 for ``Identity`` and ``MRI`` (``||P F|| = 1`` for a binary mask
      with a sampled frequency; certified); the dense spectral norm for ``Matrix``
      (SVD, inflated by a relative 1e-10 for rounding; certified); otherwise power
      iteration (:func:`~lda_opt.bounds.operator_norm_sq`; an estimate, a lower bound).
    * ``(M, L_g)``: ``(sqrt 8, 0)`` for ``FiniteDifference`` and ``(1, 0)`` for ``Identity``
      features (certified); :func:`~lda_opt.bounds.cnn_constants` for smoothed-activation
      CNNs (``FeatureCNN``, ``Adapter``, ``Composed``; certified); for any other module with
      ``linear = True``, :func:`~lda_opt.bounds.linear_feature_constants` (``M`` an estimate,
      ``L_g = 0``).  Anything else raises ``ValueError``: pass the constants to :func:`check`.
    * ``m``: the number of groups, ``H' W'`` of ``q(x)``.

    ``x``: an image of the problem's shape (needed only for operators other than the
    library's ``Identity``, ``Matrix`` and ``MRI``).  ``certified`` maps each of ``L_f, M,
    L_g`` to whether it is a certified upper bound.
    """
    from . import features as F
    from .operators import MRI, Identity, Matrix
    from .problem import Problem

    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an lda_opt.Problem; got {type(problem).__name__}")
    if x is None:
        x = _image_like(problem)
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError("x must be an image tensor of shape (B, C, H, W)")
    x1 = x[:1].detach()
    A = problem.fidelity.A
    certified: dict[str, bool] = {}
    if isinstance(A, (Identity, MRI)):
        L_f, certified["L_f"] = 1.0, True
    elif isinstance(A, Matrix):
        L_f, certified["L_f"] = bounds.operator_norm_sq(A.Phi) * (1.0 + _SVD_INFLATE), True
    else:
        L_f = bounds.operator_norm_sq(A, tuple(x1.shape), dtype=x1.dtype)
        certified["L_f"] = False
    q = problem.features
    with torch.no_grad():
        g = q(x1)
    m = math.prod(g.shape[2:]) if g.dim() > 2 else 1
    if isinstance(q, F.FiniteDifference):
        M, L_g = bounds.finite_difference_norm_bound(), 0.0
        certified.update(M=True, L_g=True)
    elif isinstance(q, F.Identity):
        M, L_g = 1.0, 0.0
        certified.update(M=True, L_g=True)
    elif any(getattr(q, name, None) is not None for name in ("convs", "conv", "g")):
        M, L_g = bounds.cnn_constants(q, tuple(x1.shape[-2:]))
        certified.update(M=True, L_g=True)
    elif getattr(q, "linear", False):
        M, L_g = bounds.linear_feature_constants(q, tuple(x1.shape), dtype=x1.dtype)
        certified.update(M=False, L_g=True)
    else:
        raise ValueError(
            f"cannot estimate M and L_g for the feature map {type(q).__name__}; "
            "pass constants={'L_f': ..., 'M': ..., 'L_g': ...}"
        )
    return {
        "L_f": float(L_f),
        "M": float(M),
        "L_g": float(L_g),
        "m": int(m),
        "certified": certified,
    }


def check(result, problem, solver, constants: dict | None = None) -> Report:
    """Check the theorem invariants of a run (the list is in :mod:`lda_opt.checks`).

    ``result``: the :class:`~lda_opt.algorithms.Result` of ``solver.run(problem, x0)``, or
    its :class:`~lda_opt.trace.Trace` (then the stop reasons are unknown and the certificate
    is not checked).  ``constants``: any of ``L_f, M, L_g, phi_x0, phi_star, m, kappa,
    certified``; the missing ``L_f, M, L_g, m`` come from :func:`estimate_constants`.
    Returns a :class:`Report` (``.ok``, ``.violations``).
    """
    from .algorithms import Result
    from .problem import Problem

    if isinstance(result, Result):
        trace, reasons, x, final = result.trace, list(result.reason), result.x, result.phi_eps
    elif isinstance(result, Trace):
        trace, reasons, x, final = result, None, None, None
    else:
        raise TypeError(f"result must be an lda_opt Result or Trace; got {type(result).__name__}")
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an lda_opt.Problem; got {type(problem).__name__}")
    _family(solver)
    consts = _validate_constants(constants)
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
