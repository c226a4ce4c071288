r"""The iteration-complexity experiment: measured ``N(eps_tol)`` against the theorems' bounds.

For one algorithm (LDA, MetaLDA or ELDA) and one problem (TV-MRI or a small smoothed-ReLU
CNN on MRI) the experiment

1. runs the solver down to the smallest ``eps_tol`` of a grid of at least 6 values spanning
   at least 2 decades, and reads off the number of iterations ``N(eps_tol)`` at every grid
   value and the segment lengths ``t_{l+1} - t_l`` from the :class:`~lda_opt.trace.Trace`
   (a reduction happens at the rows where ``eps_next < eps``);
2. fits ``b`` in ``N ~ eps_tol^-b`` by least squares in log-log,

   .. math:: \log N_i = \log c + b\,\log(1/\varepsilon_{tol,i}),

   with a seeded pairs-bootstrap 95% confidence interval;
3. evaluates the certified upper bounds of :mod:`lda_opt.bounds` on the same grid: ELDA
   Thm 4.6, eqs. (4.27)-(4.28); LDA with the backtracking of Sec. 4.3.3 and MetaLDA: one plus
   the fixed-eps bound of meta-LDA Lemma A3 per segment, summed over the segments (the argument
   ``theory/lda.md`` gives for the backtracking rule, because Thm 3.5 needs step sizes in
   ``[1/(delta1 L_eps), 1/(delta2 L_eps)]``, which backtracking does not enforce).  For LDA
   the printed Thm 3.5 curve (27)-(29) (corrected, ``delta1 = delta2 = 2``) is added as a
   *reference*, labelled as not applying to the backtracking run.

Reading ``N`` off one run.  The iterates do not depend on ``eps_tol``: a run with tolerance
``eps_tol'`` performs exactly the iterations of the run with the smallest tolerance until the
first iteration whose reduction gives ``sigma eps_{k+1} < eps_tol'`` (the stopping rule of
:meth:`~lda_opt.algorithms.Solver.iterate`), and stops there.  So ``N(eps_tol')`` is that
iteration's index plus one.  ``separate_runs=True`` runs the solver once per grid value
instead (the test suite checks that both give the same counts).

Constants (``L_f, M, L_g, m``) come from :func:`lda_opt.checks.estimate_constants`: ``L_f = 1``
for MRI (``||P F|| <= 1``), ``M = sqrt(8), L_g = 0`` for finite differences, and
:func:`lda_opt.bounds.cnn_constants` for the CNN; all certified.  ``phi* = 0`` (least squares
plus a norm is non-negative) and ``phi(x0)`` is evaluated exactly.

Entry point: :func:`run_complexity`; CLI ``lda-opt complexity``; side-by-side benchmark
``benchmarks/complexity.py``.  Catalogue: ``theory/lda.md``, ``theory/elda.md``,
``theory/meta_lda.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import bounds
from ._validate import flag, integer, real

__all__ = [
    "ALGORITHMS",
    "DEFAULT_WEIGHTS",
    "PROBLEMS",
    "ComplexityConfig",
    "bound_curves",
    "build_problem",
    "fit_exponent",
    "iterations_at",
    "plot_complexity",
    "run_complexity",
    "segment_lengths",
]

#: algorithms with an iteration-complexity bound in :mod:`lda_opt.bounds`
ALGORITHMS = ("lda", "meta-lda", "elda")
#: problem families of the experiment
PROBLEMS = ("tv-mri", "cnn-mri")



def _geom(hi: float, lo: float, n: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.geomspace(hi, lo, n))


# eps_tol grids per scale: the first two decades below sigma * eps0 (= 1 for MetaLDA and ELDA,
# 1.4 for LDA with the papers' eps0 and sigma).  Chosen a priori for feasibility on a CPU (the
# runs with the smallest eps_tol stay within max_iter), not from the measured exponents.
_DEFAULT_GRIDS = {
    "full": _geom(1.0, 1e-2, 9),
    "quick": _geom(1.0, 1e-2, 7),
    "tiny": _geom(1.0, 1e-2, 6),
}
#: default weight kappa per problem (TV: 1e-3; the smoothed-ReLU CNN: 1e-2)
DEFAULT_WEIGHTS = {"tv-mri": 1e-3, "cnn-mri": 1e-2}


@dataclass(kw_only=True, frozen=True)
class ComplexityConfig:
    """Every setting of the experiment (recorded in ``complexity.json``).

    Parameters
    ----------
    algorithm: one of :data:`ALGORITHMS`.
    problem: ``"tv-mri"`` (isotropic TV, :class:`~lda_opt.features.FiniteDifference`) or
        ``"cnn-mri"`` (a complex :class:`~lda_opt.nets.FeatureCNN` with Xavier weights from
        ``cnn_seed``, smoothed ReLU); both on ``A = P F`` (:class:`~lda_opt.operators.MRI`)
        with a radial mask and the Shepp-Logan phantom.
    eps_tols: the tolerance grid; at least 6 distinct positive values with
        ``max / min >= 100``.  Empty: the default grid of the problem.
    size: image side (H = W), >= 8.
    ratio: sampling ratio of the radial mask, in (0, 1].
    mask_seed: seed of the radial mask.
    noise: standard deviation of the complex Gaussian noise added to the sampled k-space
        (real and imaginary parts each ``noise / sqrt(2)``), >= 0.
    noise_seed: seed of that noise.
    weight: the regularization weight ``kappa > 0``; None: :data:`DEFAULT_WEIGHTS` of the
        problem.
    cnn_width, cnn_depth, cnn_delta, cnn_seed: the CNN (``cnn-mri`` only).
    max_iter: iteration cap of the solver (a grid value whose run hits it is censored and
        left out of the fit).
    solver: overrides of the solver's keyword fields (``eps0``, ``sigma``, ...); the
        papers' defaults otherwise.  ``eps_tol`` and ``max_iter`` are set by the experiment.
    n_boot: bootstrap resamples (>= 100).
    seed: bootstrap seed.
    separate_runs: run the solver once per grid value instead of reading every ``N`` off the
        run at the smallest ``eps_tol``.
    """

    algorithm: str = "elda"
    problem: str = "tv-mri"
    eps_tols: tuple[float, ...] = ()
    size: int = 32
    ratio: float = 0.3
    mask_seed: int = 0
    noise: float = 0.01
    noise_seed: int = 0
    weight: float | None = None
    cnn_width: int = 8
    cnn_depth: int = 2
    cnn_delta: float = 0.01
    cnn_seed: int = 0
    max_iter: int = 5000
    solver: dict[str, Any] = field(default_factory=dict)
    n_boot: int = 2000
    seed: int = 0
    separate_runs: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}; got {self.algorithm!r}")
        if self.problem not in PROBLEMS:
            raise ValueError(f"problem must be one of {list(PROBLEMS)}; got {self.problem!r}")
        if not self.eps_tols:
            object.__setattr__(self, "eps_tols", _DEFAULT_GRIDS["full"])
        if self.weight is None:
            object.__setattr__(self, "weight", DEFAULT_WEIGHTS[self.problem])
        object.__setattr__(self, "eps_tols", _check_grid(self.eps_tols))
        # bad settings are ValueErrors whatever their kind (the CLI contract)
        integer("size", self.size, 8, kind_error=ValueError)
        real("ratio", self.ratio, 0.0, 1.0, hi_open=False, kind_error=ValueError)
        integer("mask_seed", self.mask_seed, 0, kind_error=ValueError)
        real("noise", self.noise, 0.0, lo_open=False, kind_error=ValueError)
        integer("noise_seed", self.noise_seed, 0, kind_error=ValueError)
        real("weight", self.weight, 0.0, kind_error=ValueError)
        integer("cnn_width", self.cnn_width, 1, kind_error=ValueError)
        integer("cnn_depth", self.cnn_depth, 1, kind_error=ValueError)
        real("cnn_delta", self.cnn_delta, 0.0, kind_error=ValueError)
        integer("cnn_seed", self.cnn_seed, 0, kind_error=ValueError)
        integer("max_iter", self.max_iter, 1, kind_error=ValueError)
        integer("n_boot", self.n_boot, 100, kind_error=ValueError)
        integer("seed", self.seed, 0, kind_error=ValueError)
        flag("separate_runs", self.separate_runs)
        if not isinstance(self.solver, dict):
            raise TypeError(
                f"solver must be a dict of solver fields; got {type(self.solver).__name__}"
            )
        bad = {"eps_tol", "max_iter"} & set(self.solver)
        if bad:
            raise ValueError(f"solver must not set {sorted(bad)}: the experiment sets them")
        # construct the solver at both ends of the grid: unknown fields, invalid values and
        # grid values above sigma * eps0 (nothing to iterate) raise here
        self.make_solver(min(self.eps_tols))
        self.make_solver(max(self.eps_tols))

    @classmethod
    def preset(cls, scale: str, **changes: Any) -> ComplexityConfig:
        """``"full"`` (32 x 32, 9 grid values 1 ... 1e-2, ``max_iter = 5000``), ``"quick"``
        (16 x 16, 7 values, ``max_iter = 300``; under a minute on a CPU) or ``"tiny"`` (8 x 8, 6 values, ``gamma = 0.5`` so that 2 decades
        take 7 reductions, ``max_iter = 60``; a few seconds, for the test suite).  ``changes``
        override any field."""
        if scale not in _DEFAULT_GRIDS:
            raise ValueError(f"scale must be one of {sorted(_DEFAULT_GRIDS)}; got {scale!r}")
        base: dict[str, Any] = {"eps_tols": _DEFAULT_GRIDS[scale]}
        if scale == "quick":
            base.update(size=16, max_iter=300, n_boot=1000)
        elif scale == "tiny":
            base.update(
                size=8, max_iter=60, n_boot=200, cnn_width=4, cnn_depth=1, solver={"gamma": 0.5}
            )
        base.update(changes)
        return cls(**base)

    def make_solver(self, eps_tol: float):
        """The solver with the papers' defaults, the ``solver`` overrides, ``eps_tol`` and
        ``max_iter`` (ValueError naming the parameter when invalid)."""
        from .algorithms import ALGORITHMS as SOLVERS

        cls = SOLVERS[self.algorithm]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(self.solver) - names
        if unknown:
            raise ValueError(
                f"solver has unknown fields {sorted(unknown)} for {self.algorithm}; "
                f"valid: {sorted(names - {'eps_tol', 'max_iter'})}"
            )
        try:
            return cls(**{**self.solver, "eps_tol": float(eps_tol), "max_iter": int(self.max_iter)})
        except ValueError as exc:
            if "eps_tol" in str(exc) and "sigma * eps0" in str(exc):
                raise ValueError(f"eps_tols: every value must be <= sigma * eps0; {exc}") from None
            raise

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["eps_tols"] = list(self.eps_tols)
        return d


def _check_grid(eps_tols: Any) -> tuple[float, ...]:
    """At least 6 distinct finite positive values spanning at least 2 decades, sorted
    decreasing."""
    try:
        vals = [float(v) for v in eps_tols]
    except (TypeError, ValueError):
        raise ValueError(f"eps_tols must be a sequence of numbers; got {eps_tols!r}") from None
    if len(vals) < 6:
        raise ValueError(f"eps_tols needs at least 6 values; got {len(vals)}")
    if not all(math.isfinite(v) and v > 0 for v in vals):
        raise ValueError(f"eps_tols must be finite and > 0; got {vals}")
    if len(set(vals)) != len(vals):
        raise ValueError(f"eps_tols must be distinct; got {vals}")
    span = max(vals) / min(vals)
    if span < 100.0 * (1 - 1e-12):
        raise ValueError(
            f"eps_tols must span at least 2 decades (max/min >= 100); got max/min = {span:.4g}"
        )
    return tuple(sorted(vals, reverse=True))


# ---------------------------------------------------------------------------------------
# the problems
# ---------------------------------------------------------------------------------------
def build_problem(config: ComplexityConfig):
    """``(problem, x0, info)``: the MRI problem of ``config`` in complex128.

    ``x_true`` is the Shepp-Logan phantom (``lda_opt.data.mri.shepp_logan``), measured by the
    :class:`~lda_opt.tasks.MRITask` with a radial mask: ``A = P F``, ``y = A x_true + noise``
    (the ``"kspace-pairs"`` model of :mod:`lda_opt.tasks.noise`: on the mask only, real and
    imaginary parts each of standard deviation ``noise / sqrt(2)``, seeded by ``noise_seed``),
    and ``x0 = A^H y`` (the zero-filled reconstruction).
    """
    from . import features
    from .data import mri
    from .tasks import MRITask

    n = config.size
    task = MRITask(config.ratio, mask="radial", mask_seed=config.mask_seed, shape=(n, n), noise=config.noise,
                   noise_seed=config.noise_seed, noise_model="kspace-pairs")
    m = task.measure(mri.shepp_logan(n, dtype=torch.complex128))
    x_true, x0 = m.truth, m.x0
    info: dict[str, Any] = {
        "image": "shepp_logan",
        "shape": list(x_true.shape),
        "dtype": "complex128",
        "operator": "MRI (P F, orthonormal FFT)",
        "mask": "radial",
        "sampling_ratio": m.operator.sampling_ratio,
        "x0": "zero-filled A^H y",
    }
    if config.problem == "tv-mri":
        q = features.FiniteDifference()
        info["features"] = "FiniteDifference (isotropic TV, Neumann)"
    else:
        from .nets import FeatureCNN, count_parameters, xavier_init_

        q = FeatureCNN(
            in_channels=1,
            width=config.cnn_width,
            depth=config.cnn_depth,
            complex=True,
            delta=config.cnn_delta,
        )
        xavier_init_(q, generator=torch.Generator().manual_seed(config.cnn_seed))
        q = q.to(torch.float64)
        info["features"] = (
            f"FeatureCNN(complex, width={config.cnn_width}, depth={config.cnn_depth}, "
            f"delta={config.cnn_delta}, Xavier seed {config.cnn_seed})"
        )
        info["parameters"] = count_parameters(q)
    return m.problem(q, config.weight), x0, info


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


# ---------------------------------------------------------------------------------------
# the bounds
# ---------------------------------------------------------------------------------------
def bound_curves(
    solver, constants: dict[str, Any], phi_x0: float, phi_star: float, kappa: float
) -> dict[str, Callable]:
    """Certified bounds of ``solver`` from :mod:`lda_opt.bounds`, as functions, from the
    solver's declared curves (``solver.theory().curves``, a
    :class:`~lda_opt.algorithms.theory.BoundCurves`):

    * ``segment(l)``: bound on the length of segment ``l`` (``t_{l+1} - t_l``);
    * ``total(eps_tol)``: bound on ``N(eps_tol)``: ELDA's closed form (4.28); for LDA and
      MetaLDA the sum of ``segment(l)`` over ``l < num_reductions(eps_tol)``;
    * ``total_sum(eps_tol)``: the finite sum of ``segment(l)`` (all algorithms);
    * for LDA also ``reference_segment(l)`` / ``reference_total(eps_tol)``: Thm 3.5 (27) and
      (29) corrected, with ``delta1 = delta2 = 2`` -- valid only for step sizes in Thm 3.5's
      range, *not* for the backtracking run; shown for comparison.

    Also ``equation`` / ``reference_equation`` (strings) and ``constants`` (the bound's
    constants).  The LDA/MetaLDA segment bound is ``1 +``
    :func:`~lda_opt.bounds.metalda_fixed_eps_iterations` at ``eps_l = eps0 gamma^l``,
    ``eta_l = sigma gamma eps_l``, with ``delta = L_l *``
    :func:`~lda_opt.bounds.metalda_min_step` (sharp threshold; ``a = 1/c``, ``rho = shrink``
    for LDA) and the numerator ``phi(x0) + kappa m eps0 - phi*``, which bounds
    ``phi_{eps_l}(x_{t_l+1}) - phi* + kappa m eps_l`` by the monotone chain (LDA (24), meta-LDA
    Lemma A4 corrected) (:class:`~lda_opt.algorithms.meta_lda.LemmaA3`).  A solver that
    declares no curves raises ``ValueError``.
    """
    from .algorithms.theory import BoundContext
    from .checks.engine import theory_of

    curves = theory_of(solver).curves
    if curves is None:
        raise ValueError(
            f"solver {getattr(solver, 'name', type(solver).__name__)!r} declares no "
            "iteration-complexity bound"
        )
    L_f, M, L_g, m = (
        float(constants["L_f"]),
        float(constants["M"]),
        float(constants["L_g"]),
        int(constants["m"]),
    )
    kind = solver.smoothing.name
    ctx = BoundContext(
        L_f=L_f, M=M, L_g=L_g, m=m, kappa=kappa, phi_x0=phi_x0, phi_star=phi_star,
        eps0=float(solver.eps0), sigma=float(solver.sigma), gamma=float(solver.gamma),
        eps_tol=float(solver.eps_tol),
        L=lambda eps: bounds.lipschitz_eps(kind, L_f, L_g, M, m, eps, kappa),
        gap=lambda eps: bounds.smoothing_gap(kind, m, eps, kappa),
    )
    return curves(ctx).as_dict()


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
    """
    if not isinstance(config, ComplexityConfig):
        raise TypeError(f"config must be a ComplexityConfig; got {type(config).__name__}")
    from .checks import estimate_constants

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
        main = runs[-1]
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

    curves = bound_curves(solver, consts, phi_x0, phi_star, kappa)
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

    lengths, tail = segment_lengths(main.trace)
    seg = {
        "lengths": lengths,
        "unfinished_tail": tail,
        "bound": [curves["segment"](l) for l in range(max(len(lengths), 1))],
    }
    if "reference_segment" in curves:
        seg["reference"] = [curves["reference_segment"](l) for l in range(max(len(lengths), 1))]
    seg["violations"] = [l for l, n in enumerate(lengths) if n > seg["bound"][l]]

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

    dtype = str(x0.dtype).replace("torch.", "")
    result: dict[str, Any] = {
        "exponent": fit["exponent"],
        "ci": fit["ci"],
        "fit": fit,
        "points": points,
        "bound_points": bound_points,
        "segments": seg,
        "constants": {
            "L_f": consts["L_f"],
            "M": consts["M"],
            "L_g": consts["L_g"],
            "m": consts["m"],
            "kappa": kappa,
            "phi_x0": phi_x0,
            "phi_star": phi_star,
            "certified": consts["certified"],
        },
        "bound": {
            "equation": curves["equation"],
            "constants": curves["constants"],
            "reference_equation": curves.get("reference_equation"),
            "reference_constants": curves.get("reference_constants"),
            "label": curves["label"],
            "segment_label": curves["segment_label"],
        },
        "bound_curve": _bound_curve(curves, tols),
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
    result["check"] = _check_run(main, problem, solver, consts)
    result["run"]["seconds"] = time.perf_counter() - t0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot_complexity(result, out / "complexity.png")
        result["run"]["seconds"] = time.perf_counter() - t0
        (out / "complexity.json").write_text(json.dumps(result, indent=2))
    return result


def _check_run(res, problem, solver, consts: dict[str, Any]) -> dict[str, Any]:
    """:func:`lda_opt.check` on the run at the smallest ``eps_tol`` (the invariants of
    ``lda_opt.checks``: descent, sufficient decrease, sandwich, reduction rule, monotone
    quantity, line-search / segment / total bounds, certificate), summarized for the JSON.
    An exception of the checker is recorded (``error``), not hidden."""
    from .checks import check

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
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------------
# the figure
# ---------------------------------------------------------------------------------------
def plot_complexity(
    result: dict[str, Any],
    path: str | Path | None = None,
    *,
    axes=None,
    title: str | None = None,
):
    """Two panels drawn from a ``complexity.json`` dict alone.

    Left: log-log ``N`` against ``1/eps_tol`` -- measured points (open triangles: censored by
    ``max_iter``), the fitted line with its CI, the slope-3 reference through the point at the
    largest ``eps_tol``, the certified bound curve (``bound_curve``) and, for LDA, the Thm 3.5
    reference.  Right: segment lengths ``t_{l+1} - t_l`` against ``l`` (open marker: the
    unfinished last segment, a lower bound) with the segment bound.  ``axes``: two matplotlib
    axes to draw into (else a new figure, saved to ``path``).  Returns the axes.
    """
    import matplotlib

    if axes is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = None
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax, ax2 = axes
    pts = result["points"]
    inv = np.array([1.0 / p["eps_tol"] for p in pts])
    N = np.array([p["iterations"] for p in pts], dtype=float)
    conv = np.array([p["converged"] for p in pts])
    ax.loglog(inv[conv], N[conv], "o", color="C0", label="measured N")
    if (~conv).any():
        ax.loglog(
            inv[~conv],
            N[~conv],
            "v",
            color="C0",
            mfc="none",
            label="censored at max_iter (N > shown)",
        )
    grid = np.geomspace(inv.min(), inv.max(), 60)
    if result["exponent"] is not None:
        b, a = result["exponent"], result["fit"]["log_c"]
        lo, hi = result["ci"]
        ax.loglog(
            grid,
            np.exp(a) * grid**b,
            "-",
            color="C0",
            label=f"fit b = {b:.2f}, 95% CI [{lo:.2f}, {hi:.2f}]",
        )
    anchor = int(np.argmin(inv))
    ax.loglog(grid, N[anchor] * (grid / inv[anchor]) ** 3, ":", color="gray", label="slope 3")
    curve = result["bound_curve"]
    cinv = 1.0 / np.asarray(curve["eps_tol"])
    ax.loglog(
        cinv,
        curve["bound"],
        "-",
        color="C3",
        lw=1,
        label=f"certified bound ({result['bound']['label']})",
    )
    if curve.get("reference") is not None:
        ax.loglog(
            cinv,
            curve["reference"],
            "--",
            color="C1",
            lw=1,
            label="Thm 3.5 (29) reference (not a bound here)",
        )
    ax.set_xlabel("1 / eps_tol")
    ax.set_ylabel("iterations N")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    seg = result["segments"]
    L = np.arange(len(seg["lengths"]))
    if len(L):
        ax2.semilogy(L, seg["lengths"], "o-", ms=3, color="C0", label="t_{l+1} - t_l")
    if seg["unfinished_tail"]:
        ax2.semilogy(
            [len(L)],
            [seg["unfinished_tail"]],
            "o",
            mfc="none",
            color="C0",
            label="unfinished segment (so far)",
        )
    Lb = np.arange(len(seg["bound"]))
    ax2.semilogy(Lb, seg["bound"], "-", color="C3", label=result["bound"]["segment_label"])
    if "reference" in seg:
        ax2.semilogy(
            Lb,
            seg["reference"],
            "--",
            color="C1",
            label="1 + c1 g^-2l + c2 g^-3l (Thm 3.5 (27) ref.)",
        )
    ax2.set_xlabel("segment l")
    ax2.set_ylabel("segment length")
    ax2.grid(True, which="major", alpha=0.3)
    ax2.legend(fontsize=7)
    if title is None:
        c = result["config"]
        title = (
            f"{c['algorithm']} on {c['problem']} ({c['size']}x{c['size']}, kappa={c['weight']:g})"
        )
    ax.set_title(title, fontsize=9)
    ax2.set_title("segment lengths (run at the smallest eps_tol)", fontsize=9)
    if fig is not None:
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.22)
        if path is not None:
            fig.savefig(path, dpi=110)
        plt.close(fig)
    return axes


def _bound_curve(curves: dict[str, Any], tols: list[float], n: int = 80) -> dict[str, Any]:
    """The total bound (and reference) on ``n`` log-spaced ``eps_tol`` over the grid's range."""
    fine = [float(v) for v in np.geomspace(max(tols), min(tols), n)]
    out: dict[str, Any] = {"eps_tol": fine, "bound": [curves["total"](t) for t in fine]}
    out["reference"] = (
        [curves["reference_total"](t) for t in fine] if "reference_total" in curves else None
    )
    return out
