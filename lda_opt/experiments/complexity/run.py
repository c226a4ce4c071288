"""The iteration-complexity experiment, the run: solve once (or once per grid value), read
``N(eps_tol)`` off the trace, evaluate the bounds, fit, check the run, assemble and write
``complexity.json`` / ``complexity.png``.  Overview: :mod:`lda_opt.experiments.complexity`."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import bounds
from .config import ComplexityConfig, build_problem
from .curves import _bound_curve, bound_curves
from .fit import _reduction_rows, fit_exponent, iterations_at, segment_lengths
from .plot import plot_complexity


# ---------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------
class _Bar:
    """A tqdm bar over eps-reductions (silent when disabled or stderr is not a terminal)."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="reduction", leave=False)

    def callback(self, k: int, state, record: dict) -> None:
        if self.bar is None:
            return
        n = int((record["eps_next"] < record["eps"]).sum())
        if n:
            self.bar.update(n)
        if k % 25 == 0:
            self.bar.set_postfix(iteration=k + 1, eps=f"{float(state.eps.max()):.2e}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_complexity(
    config: ComplexityConfig, out_dir: str | Path | None = None, *, progress: bool = False
) -> dict[str, Any]:
    """Run the experiment of ``config``; return the ``complexity.json`` dict and, with
    ``out_dir``, write ``complexity.json`` and ``complexity.png`` there.

    Keys: ``exponent``, ``ci`` (bootstrap 95%), ``fit`` (details), ``points`` (one per grid
    value: ``eps_tol``, ``iterations``, ``reductions``, ``reductions_theory``, ``converged``),
    ``bound_points`` (``eps_tol``, ``bound``, ``bound_sum``, ``ratio = iterations / bound``,
    ``certified``), ``segments`` (measured lengths and their bounds), ``constants``,
    ``bound`` (equations and constants), ``config``, ``solver``, ``problem``, ``run``
    (stop reason, seconds, passes) and ``environment``.

    Stages: build the problem, :func:`_measure` (the runs and ``N(eps_tol)``), the bounds
    (:func:`~.curves.bound_curves`, :func:`_bound_points`, :func:`_segments`), the fit
    (:func:`_fit`), :func:`_record` (the JSON dict), the check and the files.
    """
    if not isinstance(config, ComplexityConfig):
        raise TypeError(f"config must be a ComplexityConfig; got {type(config).__name__}")
    from ...checks import estimate_constants

    out = None if out_dir is None else Path(out_dir)
    if out is not None and out.exists() and not out.is_dir():
        raise ValueError(f"out must be a directory; {str(out)!r} is a file")
    t0 = time.perf_counter()
    problem, x0, pinfo = build_problem(config)
    tols = list(config.eps_tols)
    solver = config.make_solver(min(tols))
    consts = estimate_constants(problem, x0)
    kappa = float(problem.weight)
    phi_x0 = float(problem.phi(x0)[0])
    phi_star = 0.0
    ell_max = bounds.num_reductions(solver.eps0, min(tols), solver.sigma, solver.gamma)

    runs, points = _measure(config, problem, x0, solver, tols, ell_max, progress)
    main = runs[-1]
    curves = bound_curves(solver, consts, phi_x0, phi_star, kappa)
    result = _record(
        config,
        fit=_fit(config, points),
        points=points,
        bound_points=_bound_points(points, curves),
        segments=_segments(main.trace, curves),
        constants={**consts, "kappa": kappa, "phi_x0": phi_x0, "phi_star": phi_star},
        curves=curves,
        solver=solver,
        pinfo=pinfo,
        runs=runs,
        ell_max=ell_max,
        dtype=str(x0.dtype).replace("torch.", ""),
    )
    result["check"] = _check_run(main, problem, solver, consts)
    result["run"]["seconds"] = time.perf_counter() - t0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot_complexity(result, out / "complexity.png")
        result["run"]["seconds"] = time.perf_counter() - t0
        (out / "complexity.json").write_text(json.dumps(result, indent=2))
    return result


def _measure(config: ComplexityConfig, problem, x0, solver, tols: list[float], ell_max: int,
             progress: bool) -> tuple[list, list[dict[str, Any]]]:
    """The solver runs and the measured points: one run at the smallest ``eps_tol`` with
    ``N`` read off its trace (:func:`~.fit.iterations_at`), or with
    ``config.separate_runs`` one run per grid value.  Returns ``(runs, points)``; the run at
    the smallest ``eps_tol`` is ``runs[-1]``.  Each point carries ``reductions_theory``
    (:func:`lda_opt.bounds.num_reductions`)."""
    runs = []
    if config.separate_runs:
        bar = _Bar(
            progress,
            sum(bounds.num_reductions(solver.eps0, t, solver.sigma, solver.gamma) for t in tols),
            f"{config.algorithm} (separate runs)",
        )
        points = []
        try:
            for t in tols:
                res = config.make_solver(t).run(problem, x0, callback=bar.callback)
                runs.append(res)
                rows, _, _ = _reduction_rows(res.trace)
                points.append(
                    {
                        "eps_tol": float(t),
                        "iterations": int(res.iterations[0]),
                        "reductions": int(rows.size),
                        "converged": bool(res.converged[0]),
                    }
                )
        finally:
            bar.close()
    else:
        bar = _Bar(progress, ell_max, f"{config.algorithm} {config.problem}")
        try:
            main = solver.run(problem, x0, callback=bar.callback)
        finally:
            bar.close()
        runs.append(main)
        points = iterations_at(main.trace, tols, solver.sigma)
    for p in points:
        p["reductions_theory"] = bounds.num_reductions(
            solver.eps0, p["eps_tol"], solver.sigma, solver.gamma
        )
    return runs, points


def _bound_points(points: list[dict[str, Any]], curves: dict[str, Any]) -> list[dict[str, Any]]:
    """The certified total bound (and, where the curves have one, the reference) at each
    measured point, with ``ratio = iterations / bound``."""
    bound_points = []
    for p in points:
        bp = {
            "eps_tol": p["eps_tol"],
            "bound": curves["total"](p["eps_tol"]),
            "bound_sum": curves["total_sum"](p["eps_tol"]),
            "certified": True,
        }
        bp["ratio"] = p["iterations"] / bp["bound"]
        if "reference_total" in curves:
            bp["reference"] = curves["reference_total"](p["eps_tol"])
        bound_points.append(bp)
    return bound_points


def _segments(trace, curves: dict[str, Any]) -> dict[str, Any]:
    """The measured segment lengths of ``trace`` (:func:`~.fit.segment_lengths`), their bound
    per segment index (and reference), and the indices where a length exceeds its bound."""
    lengths, tail = segment_lengths(trace)
    seg = {
        "lengths": lengths,
        "unfinished_tail": tail,
        "bound": [curves["segment"](l) for l in range(max(len(lengths), 1))],
    }
    if "reference_segment" in curves:
        seg["reference"] = [curves["reference_segment"](l) for l in range(max(len(lengths), 1))]
    seg["violations"] = [l for l, n in enumerate(lengths) if n > seg["bound"][l]]
    return seg


def _fit(config: ComplexityConfig, points: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~.fit.fit_exponent` on the converged points (an empty fit with fewer than two
    distinct ``eps_tol``), with the method and the censored grid values recorded."""
    used = [p for p in points if p["converged"]]
    if len({p["eps_tol"] for p in used}) >= 2:
        fit = fit_exponent(
            [p["eps_tol"] for p in used],
            [p["iterations"] for p in used],
            n_boot=config.n_boot,
            seed=config.seed,
        )
    else:
        fit = {
            "exponent": None,
            "log_c": None,
            "ci": None,
            "r2": None,
            "n": len(used),
            "n_boot": config.n_boot,
            "seed": config.seed,
            "level": 0.95,
            "degenerate_resamples": 0,
        }
    fit["method"] = "least squares of log N on log(1/eps_tol); pairs bootstrap over grid points"
    fit["censored"] = [p["eps_tol"] for p in points if not p["converged"]]
    return fit


def _record(config: ComplexityConfig, *, fit, points, bound_points, segments, constants, curves,
            solver, pinfo, runs, ell_max, dtype) -> dict[str, Any]:
    """The ``complexity.json`` dict (without ``check`` and ``run.seconds``), keys in the
    order the file has always had."""
    return {
        "exponent": fit["exponent"],
        "ci": fit["ci"],
        "fit": fit,
        "points": points,
        "bound_points": bound_points,
        "segments": segments,
        "constants": {
            k: constants[k]
            for k in ("L_f", "M", "L_g", "m", "kappa", "phi_x0", "phi_star", "certified")
        },
        "bound": {
            "equation": curves["equation"],
            "constants": curves["constants"],
            "reference_equation": curves.get("reference_equation"),
            "reference_constants": curves.get("reference_constants"),
            "label": curves["label"],
            "segment_label": curves["segment_label"],
        },
        "bound_curve": _bound_curve(curves, list(config.eps_tols)),
        "config": config.to_dict(),
        "solver": solver.config(),
        "problem": pinfo,
        "run": {
            "mode": "separate runs" if config.separate_runs else "one run, N read off the trace",
            "iterations": [int(r.iterations[0]) for r in runs],
            "reason": [r.reason[0] for r in runs],
            "solver_seconds": [float(r.seconds) for r in runs],
            "forward": [int(r.forward[0]) for r in runs],
            "backward": [int(r.backward[0]) for r in runs],
            "grid_reductions_max": ell_max,
        },
        "environment": {
            "lda_opt": _version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "dtype": dtype,
        },
    }


def _check_run(res, problem, solver, consts: dict[str, Any]) -> dict[str, Any]:
    """:func:`lda_opt.check` on the run at the smallest ``eps_tol`` (the invariants of
    ``lda_opt.checks``: descent, sufficient decrease, sandwich, reduction rule, monotone
    quantity, line-search / segment / total bounds, certificate), summarized for the JSON.
    An exception of the checker is recorded (``error``), not hidden."""
    from ...checks import check

    want = ("L_f", "M", "L_g", "m", "certified")
    try:
        rep = check(res, problem, solver, constants={k: consts[k] for k in want})
    except Exception as exc:  # noqa: BLE001 - recorded in the JSON and reported by the CLI
        return {"ok": None, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": rep.ok,
        "checked": int(sum(rep.counts.values())),
        "counts": dict(rep.counts),
        "by_check": rep.by_check(),
        "violations": [v.line() for v in rep.violations[:50]],
        "skipped": list(rep.skipped),
    }


def _version() -> str:
    from ... import __version__

    return __version__
