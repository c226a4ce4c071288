"""The iteration-complexity experiment, stage 0: its configuration (:class:`ComplexityConfig`,
the ``eps_tol`` grids, default weights) and the problem it builds (:func:`build_problem`).
Overview of the experiment: :mod:`lda_opt.experiments.complexity`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..._validate import flag, integer, real

#: algorithms with an iteration-complexity bound in :mod:`lda_opt.bounds`
ALGORITHMS = ("lda", "meta-lda", "elda")
#: problem families of the experiment
PROBLEMS = ("tv-mri", "cnn-mri")



def _geom(hi: float, lo: float, n: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.geomspace(hi, lo, n))


# eps_tol grids per scale: two decades below sigma * eps0.  "full" and "quick" run with
# EXERCISED (sigma * eps0 = 0.1, the top of their grid); "tiny" (the test suite) with the
# papers' eps0 and sigma (sigma * eps0 = 1, or 1.4 for LDA).  Chosen a priori for feasibility
# on a CPU (the runs with the smallest eps_tol stay within max_iter), not from the measured
# exponents.
_DEFAULT_GRIDS = {
    "full": _geom(0.1, 1e-3, 9),
    "quick": _geom(0.1, 1e-3, 7),
    "tiny": _geom(1.0, 1e-2, 6),
}
#: the continuation of the "full" and "quick" presets, for every algorithm: sigma = 1 and
#: eps0 = 0.1.  With the papers' sigma = 1e3 and eps0 ~ 1e-3 the reduction threshold
#: sigma gamma eps_k (0.9 at eps_0) is above ||grad phi_eps(x_0)|| (0.05 for tv-mri, 0.23 for
#: cnn-mri at 32 x 32): every iteration reduces eps, every segment has length 1, and the fitted
#: exponent counts reductions instead of testing the O(eps_tol^-3) regime of Thm 3.5 / Thm 4.6.
#: Here the certificate ||grad phi_eps|| < gamma eps has to be earned on every level.  ELDA
#: with the paper's candidate also takes EXERCISED_ELDA, eta1 = 0.5 and rho = 0.5 (Alg. 1
#: leaves eta1..3 and rho free): the fixed points of its u (4.8) solve
#: grad f(x) + beta grad r_eps(x - alpha grad f(x)) = 0, not grad phi_eps(x) = 0, and with
#: eta1 = 1e-5 test (4.9a) keeps accepting u while it crawls towards such a point (cnn-mri
#: 32 x 32: censored from eps_tol = 0.01 down, 5000 iterations of u); eta1 = 0.5 rejects u
#: once ||u - x_t|| < ||grad phi_eps(x_t)|| / 2 and the (4.11) step takes over; rho = 0.5
#: halves the (4.11) trials (l_max, Lemma 4.5).  The L-BFGS and Nesterov candidates have
#: stationary fixed points and keep the defaults.
EXERCISED = {"eps0": 0.1, "sigma": 1.0}
EXERCISED_ELDA = {"eta1": 0.5, "rho": 0.5}
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
        """``"full"`` (32 x 32, 9 grid values 0.1 ... 1e-3, ``max_iter = 5000``), ``"quick"``
        (16 x 16, 7 values 0.1 ... 1e-3, ``max_iter = 2000``), both with the continuation
        :data:`EXERCISED` (``sigma = 1``, ``eps0 = 0.1``; ELDA with the paper's candidate also
        :data:`EXERCISED_ELDA`, ``eta1 = rho = 0.5``), or
        ``"tiny"`` (8 x 8, 6 values 1 ... 1e-2, the papers' ``eps0`` and ``sigma`` with
        ``gamma = 0.5`` so that 2 decades take 7 reductions, ``max_iter = 60``; a few seconds,
        for the test suite).  ``changes`` override any field; a ``solver`` dict is merged
        into the preset's (``solver={"candidate": "lbfgs"}`` keeps ``eps0`` and ``sigma``)."""
        if scale not in _DEFAULT_GRIDS:
            raise ValueError(f"scale must be one of {sorted(_DEFAULT_GRIDS)}; got {scale!r}")
        base: dict[str, Any] = {"eps_tols": _DEFAULT_GRIDS[scale]}
        extra = changes.pop("solver", None)
        if extra is not None and not isinstance(extra, dict):
            raise TypeError(f"solver must be a dict of solver fields; got {type(extra).__name__}")
        if scale in ("full", "quick"):
            solver = dict(EXERCISED)
            paper_rule = (extra or {}).get("candidate", "paper") == "paper"
            if changes.get("algorithm", cls.algorithm) == "elda" and paper_rule:
                solver.update(EXERCISED_ELDA)
            base["solver"] = solver
        if scale == "quick":
            base.update(size=16, max_iter=2000, n_boot=1000)
        elif scale == "tiny":
            base.update(
                size=8, max_iter=60, n_boot=200, cnn_width=4, cnn_depth=1, solver={"gamma": 0.5}
            )
        if extra is not None:
            base["solver"] = {**base.get("solver", {}), **extra}
        base.update(changes)
        return cls(**base)

    def make_solver(self, eps_tol: float):
        """The solver with the papers' defaults, the ``solver`` overrides, ``eps_tol`` and
        ``max_iter`` (ValueError naming the parameter when invalid)."""
        from ...algorithms import ALGORITHMS as SOLVERS

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
    from ... import features
    from ...data import mri
    from ...tasks import MRITask

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
        from ...nets import FeatureCNN, count_parameters, xavier_init_

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
