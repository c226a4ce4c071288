"""The checker's report: :class:`Violation`, :class:`Report`, and :class:`Checker`, which
records every comparison ``lhs <= rhs`` with the rounding tolerance :data:`RTOL`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

__all__ = ["CHECKS", "RTOL", "Checker", "Report", "Violation"]

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
    :func:`lda_opt.checks.segments.linesearch_bounds`).  They are reported, but they are not
    evidence against the lemma (which assumes exact arithmetic), so they do not make ``ok``
    False.
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


class Checker:
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

