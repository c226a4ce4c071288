"""Classical references for the LDA-Net experiments: zero-filling / the linear start, and TV
with its weight tuned over a grid.

TV is ``min_x 1/2 ||A x - y||^2 + kappa ||D x||_{2,1}`` (isotropic, forward differences,
Neumann boundary: :class:`lda_opt.features.FiniteDifference`).  Here: the LDA solve of it, its
settings, the weight grid and the image metrics; the exact
solver is in :mod:`lda_opt.algorithms.tv_exact`.

* :func:`tv_solve`: the library's own LDA Algorithm 1 with backtracking and
  eps-continuation until ``sigma eps_k < eps_tol`` (or ``max_iter``), from the task's start
  ``x0``;
* :func:`lda_opt.algorithms.tv_exact.tv_exact`: the exact (unsmoothed) convex minimizer by
  PDHG (Chambolle-Pock), a solver, beside the other algorithms.

:func:`lda_opt.experiments.learning.tune_tv` picks the best ``kappa`` of a grid by mean PSNR.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..algorithms import LDA
from ..features import FiniteDifference
from ..metrics import psnr, relative_error, ssim
from ..tasks import Measurement

__all__ = ["KAPPA_GRID", "TVSettings", "image_metrics", "tv_solve"]

#: the default grid of TV weights (log-spaced)
KAPPA_GRID = tuple(float(f"{v:.3g}") for v in torch.logspace(-4, -1, 13).tolist())


@dataclass(frozen=True)
class TVSettings:
    """Solver settings of the TV reference (LDA Algorithm 1, backtracking, Sec. 4.3.3
    constants ``c = 0.35``, ``shrink = 0.5``); ``eps0``, ``sigma``, ``gamma``, ``eps_tol``,
    ``max_iter`` as in :class:`lda_opt.LDA`."""

    eps0: float = 1e-2
    sigma: float = 10.0
    gamma: float = 0.9
    eps_tol: float = 1e-4
    max_iter: int = 3000
    alpha: float = 1.0

    def solver(self) -> LDA:
        return LDA(eps0=self.eps0, sigma=self.sigma, gamma=self.gamma, eps_tol=self.eps_tol,
                   max_iter=self.max_iter, alpha=self.alpha)


def tv_solve(m: Measurement, kappa: float, settings: TVSettings = TVSettings()):
    """Solve TV on every sample of ``m``; returns the :class:`~lda_opt.algorithms.Result`."""
    return settings.solver().run(m.problem(FiniteDifference(), float(kappa)), m.x0)


def image_metrics(x: torch.Tensor, truth: torch.Tensor) -> dict[str, list[float]]:
    """Per-image PSNR, SSIM and RelErr.  Real images in [0, 1]: data range 1.  Complex
    (MRI): PSNR and RelErr of the complex images with peak ``max|truth|``, SSIM on
    magnitudes (meta-LDA eqs. 21-22, LDA Table 3)."""
    dr = None if truth.is_complex() else 1.0
    return {"psnr": psnr(x, truth, dr).tolist(), "ssim": ssim(x, truth, dr).tolist(),
            "relerr": relative_error(x, truth).tolist()}
