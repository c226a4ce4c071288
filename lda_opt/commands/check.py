"""``lda-opt check DIR``: verify the convergence-theorem invariants of a ``lda-opt solve`` run.

Reads ``DIR/result.json`` and ``DIR/trace.csv`` (as written by ``lda-opt solve --out DIR``),
rebuilds the solver from ``result.json["solver"]`` and runs :func:`lda_opt.checks.check_trace`
with the problem's ``m``, ``weight`` and ``dtype`` and the constants recorded under
``"constants"``.  Prints one line per violation and a summary; exits 0 when every
inequality holds and 1 otherwise.  With ``--out OUT`` it also writes ``OUT/check.json``
(the :class:`~lda_opt.checks.Report`) and ``OUT/check.png`` (the monotone quantity
``phi_{eps_k}(x_k) + gap(eps_k)`` per iteration, violations marked).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from .._validate import integer, real
from ..checks import Report, check_trace
from ..trace import Trace

__all__ = ["add_arguments", "load_run", "run"]

_REQUIRED = ("solver", "problem", "reason")
#: the dtypes a solve run records (``result.json["problem"]["dtype"]``)
_DTYPES = ("float32", "float64", "complex64", "complex128")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the arguments of ``lda-opt check``."""
    parser.add_argument("dir", type=Path, help="directory written by `lda-opt solve --out DIR`")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write check.json and check.png into this directory",
    )
    parser.add_argument(
        "--no-bounds",
        action="store_true",
        help="skip the line-search, segment and total bounds (they need L_f, M, L_g)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the violations (no summary)"
    )


def _need(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"{where} has no {key!r} entry")
    return d[key]


def load_run(directory: str | Path) -> dict:
    """Read ``result.json`` and ``trace.csv`` of ``directory``.

    Returns ``{"trace", "solver", "m", "kappa", "dtype", "reasons", "constants",
    "final_phi_eps"}``, the arguments of :func:`~lda_opt.checks.check_trace`.  Missing files
    raise ``FileNotFoundError``; missing or invalid entries raise ``ValueError``.
    """
    result, rpath, tpath = _read_result(Path(directory))
    solver, m, kappa, dtype = _solver_and_problem(result, rpath)
    per, reasons = _reasons(result, rpath)
    constants = _constants(result, rpath)
    _check_weights(kappa, len(reasons), rpath)
    final = _final_phi_eps(result, per, len(reasons), rpath)
    trace = _read_trace(tpath, len(reasons))
    _check_iterations(result, per, trace, rpath, tpath)
    return {
        "trace": trace,
        "solver": solver,
        "m": m,
        "kappa": kappa,
        "dtype": dtype,
        "reasons": reasons,
        "constants": constants,
        "final_phi_eps": final,
    }


def _read_result(directory: Path) -> tuple[dict, Path, Path]:
    """``result.json`` of ``directory`` as a dict holding the required keys, and the paths
    of ``result.json`` and ``trace.csv`` (both must exist)."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    rpath, tpath = directory / "result.json", directory / "trace.csv"
    for p in (rpath, tpath):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} does not exist (write it with `lda-opt solve --out {directory}`)"
            )
    try:
        result = json.loads(rpath.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{rpath} is not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{rpath} is not valid JSON: {exc}") from None
    if not isinstance(result, dict):
        raise TypeError(f"{rpath} must hold a JSON object")
    for key in _REQUIRED:
        _need(result, key, str(rpath))
    return result, rpath, tpath


def _solver_and_problem(result: dict, rpath: Path):
    """The solver rebuilt from ``result["solver"]`` and the problem's ``m``, weight and
    dtype (its smoothing, if recorded, must be the solver's)."""
    from ..algorithms import ALGORITHMS

    solver_d = result["solver"]
    name = _need(solver_d, "name", f"{rpath} 'solver'")
    if name not in ALGORITHMS:
        raise ValueError(f"{rpath}: solver name must be one of {sorted(ALGORITHMS)}; got {name!r}")
    params = _need(solver_d, "params", f"{rpath} 'solver'")
    if not isinstance(params, dict):
        raise TypeError(f"{rpath}: solver params must be a JSON object")
    solver = ALGORITHMS[name].from_config(params)
    prob = result["problem"]
    m = integer(f"{rpath}: problem 'm'", _need(prob, "m", f"{rpath} 'problem'"), 1, kind_error=ValueError)
    kappa = _need(prob, "weight", f"{rpath} 'problem'")
    dtype = prob.get("dtype", "float64") if isinstance(prob, dict) else "float64"
    if dtype not in _DTYPES:
        raise ValueError(f"{rpath}: problem 'dtype' must be one of {', '.join(_DTYPES)}; got {dtype!r}")
    smoothing = prob.get("smoothing")
    if smoothing is not None and smoothing != solver.smoothing.name:
        raise ValueError(
            f"{rpath}: problem smoothing {smoothing!r} differs from the solver's "
            f"{solver.smoothing.name!r}"
        )
    return solver, m, kappa, dtype


def _reasons(result: dict, rpath: Path) -> tuple[dict | None, list[str]]:
    """The ``per_sample`` object (or ``None``) and the per-sample stop reasons, one per
    sample of ``batch_size``."""
    # per-sample values: "per_sample" (Result.summary()) when present, else the top level
    per = result.get("per_sample")
    if per is not None and not isinstance(per, dict):
        raise TypeError(f"{rpath}: 'per_sample' must be a JSON object")
    reasons = (per or {}).get("reason", result["reason"])
    reasons = [reasons] if isinstance(reasons, str) else reasons
    if not isinstance(reasons, list) or not reasons or not all(isinstance(r, str) for r in reasons):
        raise ValueError(f"{rpath}: 'reason' must be a string or a non-empty list of strings")
    batch = result.get("batch_size", len(reasons))
    if batch != len(reasons):
        raise ValueError(f"{rpath}: batch_size {batch} but {len(reasons)} stop reasons")
    return per, reasons


def _constants(result: dict, rpath: Path) -> dict:
    """The recorded problem constants the checks use (``L_f``, ``M``, ``L_g`` non-negative)."""
    constants = result.get("constants") or {}
    if not isinstance(constants, dict):
        raise TypeError(f"{rpath}: 'constants' must be a JSON object")
    constants = {
        k: v for k, v in constants.items() if k in ("L_f", "M", "L_g", "phi_star", "certified")
    }
    for k in ("L_f", "M", "L_g"):
        if constants.get(k) is not None:
            real(f"{rpath}: constants {k!r}", constants[k], 0.0, lo_open=False, kind_error=ValueError)
    return constants


def _check_weights(kappa, batch: int, rpath: Path) -> None:
    """The problem weight: a positive number, or one per sample."""
    for w in kappa if isinstance(kappa, list) else [kappa]:
        real(f"{rpath}: problem 'weight'", w, 0.0, kind_error=ValueError)
    if isinstance(kappa, list) and len(kappa) != batch:
        raise ValueError(f"{rpath}: problem 'weight' has {len(kappa)} entries for {batch} sample(s)")


def _final_phi_eps(result: dict, per: dict | None, batch: int, rpath: Path) -> list | None:
    """The recorded final ``phi_eps`` per sample, or ``None`` when not recorded."""
    final = (per or {}).get(
        "phi_eps_final", result.get("phi_eps_final") if batch == 1 else None
    )
    if final is not None:
        final = final if isinstance(final, list) else [final]
        if len(final) != batch or not all(isinstance(v, (int, float)) for v in final):
            raise ValueError(f"{rpath}: 'phi_eps_final' must hold one number per sample")
    return final


def _read_trace(path: Path, batch: int) -> Trace:
    """:meth:`Trace.from_csv` of a file checked first row by row: the header, one value per
    column, integer ``iteration`` and ``sample`` with ``0 <= sample < batch``, and no
    (iteration, sample) pair twice.  Any defect (a truncated, garbled or edited file) is a
    ``ValueError`` naming the file and the line."""
    from ..trace import ALL_FIELDS

    header = ["iteration", "sample", *ALL_FIELDS]
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise ValueError(f"{path} is not a valid CSV file: {exc}") from None
    if not rows or rows[0] != header:
        raise ValueError(f"{path}: the header must be {','.join(header)}")
    seen = set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path} line {line}: {len(row)} values for {len(header)} columns "
                             "(a truncated or edited file)")
        try:
            key = (int(row[0]), int(row[1]))
        except ValueError:
            raise ValueError(f"{path} line {line}: iteration and sample must be integers; "
                             f"got {row[0]!r}, {row[1]!r}") from None
        if not 0 <= key[1] < batch:
            raise ValueError(f"{path} line {line}: sample {key[1]} outside [0, {batch}) "
                             f"(result.json has {batch} sample(s))")
        if key[0] < 0 or key in seen:
            raise ValueError(f"{path} line {line}: iteration {key[0]} of sample {key[1]} is "
                             "negative or repeated")
        seen.add(key)
    try:
        return Trace.from_csv(path, batch_size=batch)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"{path} is not a valid trace: {type(exc).__name__}: {exc}") from None


def _check_iterations(result: dict, per: dict | None, trace: Trace, rpath: Path, tpath: Path) -> None:
    """The trace holds every iteration ``result.json`` reports (a truncated trace.csv, or one
    of another run, is refused instead of being checked as if complete)."""
    its = (per or {}).get("iterations", result.get("iterations") if trace.batch_size == 1 else None)
    if its is None:
        return
    its = its if isinstance(its, list) else [its]
    if len(its) != trace.batch_size or not all(isinstance(n, int) and not isinstance(n, bool) for n in its):
        raise ValueError(f"{rpath}: 'iterations' must hold one integer per sample; got {its!r}")
    active = trace.as_dict()["active"]
    rows = [int(active[:, b].sum()) for b in range(trace.batch_size)]
    if rows != its:
        raise ValueError(f"{tpath} has {rows} iteration(s) per sample but {rpath} 'iterations' "
                         f"says {its} (a truncated trace, or the files of different runs)")


def _plot(report: Report, loaded: dict, path: Path) -> None:
    """``phi_{eps_k}(x_k) + gap(eps_k)`` per iteration and sample, violations marked."""
    from lda_opt._plotting import pyplot

    plt = pyplot()

    from .. import bounds

    trace, solver, m = loaded["trace"], loaded["solver"], int(loaded["m"])
    kappa = loaded["kappa"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for b in range(trace.batch_size):
        rec = trace.sample(b)
        kap = float(kappa[b] if isinstance(kappa, list) else kappa)
        q = [
            float(p) + bounds.smoothing_gap(solver.smoothing.name, m, float(e), kap)
            for p, e in zip(rec["phi_eps_prev"], rec["eps"])
        ]
        ax.plot(range(len(q)), q, label=f"sample {b}")
        bad = sorted({v.iteration for v in report.violations if v.sample == b})
        ax.plot(
            bad, [q[k] for k in bad if k < len(q)], "rx", label=None if not bad else "violation"
        )
    ax.set_xlabel("iteration k")
    ax.set_ylabel("phi_eps_k(x_k) + gap(eps_k)")
    if all(math.isfinite(v) and v > 0 for line in ax.get_lines() for v in line.get_ydata()):
        ax.set_yscale("log")
    ax.set_title(
        f"{report.solver}: {'OK' if report.ok else f'{len(report.violations)} violation(s)'}"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Check the run in ``args.dir``; 0 when clean, 1 after printing each violation."""
    if args.out is not None:
        from .._validate import out_dir

        out_dir("out", args.out)  # a directory, or creatable: checked before any work
    loaded = load_run(args.dir)
    report = check_trace(
        loaded["trace"],
        loaded["solver"],
        None if args.no_bounds else loaded["constants"],
        loaded["m"],
        loaded["kappa"],
        reasons=loaded["reasons"],
        dtype=loaded["dtype"],
        final_phi_eps=loaded["final_phi_eps"],
    )
    for v in report.violations:
        print(v.line())
    if not args.quiet:
        print(
            "\n".join(report.summary().splitlines()[: 1 + len(report.counts) + len(report.skipped)])
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        report.to_json(args.out / "check.json")
        _plot(report, loaded, args.out / "check.png")
    return 0 if report.ok else 1
