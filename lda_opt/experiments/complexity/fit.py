"""The iteration-complexity experiment, stage 1-2: reading ``N(eps_tol)`` and the segment
lengths off a :class:`~lda_opt.trace.Trace`, and the least-squares fit of the exponent with its
pairs-bootstrap confidence interval.  Overview: :mod:`lda_opt.experiments.complexity`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validate import integer, real


# ---------------------------------------------------------------------------------------
# reading the trace
# ---------------------------------------------------------------------------------------
def _reduction_rows(trace, sample: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows (iteration indices) of sample ``sample`` that reduced eps, ``eps_next`` at
    those rows, and the number of iterations the sample ran."""
    d = trace.as_dict()
    act = d["active"][:, sample].numpy()
    eps = d["eps"][:, sample].numpy()[act]
    eps_next = d["eps_next"][:, sample].numpy()[act]
    rows = np.nonzero(eps_next < eps)[0]
    return rows, eps_next[rows], int(act.sum())


def segment_lengths(trace, sample: int = 0) -> tuple[list[int], int]:
    """Lengths ``t_{l+1} - t_l`` of the finished eps-segments (``t_0 = -1``; ``t_l`` is the
    iteration that performs the l-th reduction), and the number of iterations of the
    unfinished last segment (0 when the run ended with a reduction)."""
    rows, _, K = _reduction_rows(trace, sample)
    bounds_ = np.concatenate([[-1], rows])
    lengths = [int(v) for v in np.diff(bounds_)]
    tail = K - 1 - int(bounds_[-1])
    return lengths, tail


def iterations_at(trace, eps_tols, sigma: float, sample: int = 0) -> list[dict[str, Any]]:
    """``N(eps_tol)`` for every ``eps_tol``, read off one run (see the module docstring):
    the index plus one of the first iteration whose reduction gives ``sigma eps_{k+1} <
    eps_tol``, and the number of reductions up to it.  When no such iteration exists the
    point is censored: ``iterations`` is the run's length and ``converged`` is False."""
    rows, eps_next, K = _reduction_rows(trace, sample)
    out = []
    for tol in eps_tols:
        hit = np.nonzero(sigma * eps_next < tol)[0]
        if hit.size:
            j = int(hit[0])
            out.append(
                {
                    "eps_tol": float(tol),
                    "iterations": int(rows[j]) + 1,
                    "reductions": j + 1,
                    "converged": True,
                }
            )
        else:
            out.append(
                {
                    "eps_tol": float(tol),
                    "iterations": K,
                    "reductions": int(rows.size),
                    "converged": False,
                }
            )
    return out


# ---------------------------------------------------------------------------------------
# the fit
# ---------------------------------------------------------------------------------------
def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    b = float(np.sum((x - xm) * (y - ym)) / sxx)
    return b, float(ym - b * xm)


def fit_exponent(
    eps_tols, iterations, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    r"""Least-squares fit of ``log N = log c + b log(1/eps_tol)``, and a pairs-bootstrap CI.

    Returns ``{"exponent": b, "log_c": log c, "ci": [lo, hi], "r2", "n", "n_boot", "seed",
    "level", "degenerate_resamples"}``.  The bootstrap draws ``n`` points with replacement
    (``numpy.random.default_rng(seed)``) and refits; resamples whose ``eps_tol`` values are
    all equal have no slope and are redrawn (their number is reported).  ``ci`` holds the
    ``(1-level)/2`` and ``(1+level)/2`` percentiles of the refitted slopes.  Needs at least two
    distinct ``eps_tol`` values; ``N`` must be positive.
    """
    x = np.log(1.0 / np.asarray(eps_tols, dtype=np.float64))
    N = np.asarray(iterations, dtype=np.float64)
    if x.shape != N.shape or x.ndim != 1:
        raise ValueError(
            f"eps_tols and iterations must be 1-D of equal length; got {x.shape}, {N.shape}"
        )
    if not np.all(np.isfinite(x)) or np.unique(x).size < 2:
        raise ValueError("eps_tols must hold at least 2 distinct positive finite values")
    if not np.all(N > 0) or not np.all(np.isfinite(N)):
        raise ValueError(f"iterations must be positive and finite; got {N.tolist()}")
    integer("n_boot", n_boot, 1, kind_error=ValueError)
    real("level", level, 0.0, 1.0, kind_error=ValueError)
    y = np.log(N)
    b, a = _ols(x, y)
    resid = y - (a + b * x)
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / sst if sst > 0 else 1.0
    rng = np.random.default_rng(seed)
    n = x.size
    slopes = np.empty(n_boot)
    degenerate = 0
    i = 0
    while i < n_boot:
        idx = rng.integers(0, n, n)
        if np.ptp(x[idx]) == 0.0:
            degenerate += 1
            continue
        slopes[i] = _ols(x[idx], y[idx])[0]
        i += 1
    q = 100.0 * np.array([(1 - level) / 2, (1 + level) / 2])
    lo, hi = np.percentile(slopes, q)
    return {
        "exponent": b,
        "log_c": a,
        "ci": [float(lo), float(hi)],
        "r2": r2,
        "n": int(n),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "level": float(level),
        "degenerate_resamples": int(degenerate),
    }
