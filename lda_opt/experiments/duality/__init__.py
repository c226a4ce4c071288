"""The duality experiment of dual-st-cnn-2024 (Sec. IV-A), run end to end and reported honestly.

Steps: denoising data (:mod:`.data`); primal ST-CNN (21) trained with every optimizer x
initialisation x seed (:mod:`.primal`); arrangement patterns and ``Q^S`` (:mod:`.patterns`);
the convex program (22) solved exactly by CVXPY and by the torch hinge-penalty solver
(:mod:`.dual`); primal weights rebuilt by (47) (:mod:`.reconstruct`) and evaluated with the
real ST; a certified weak-duality lower bound (:mod:`.bound`); PSNR/RLNE of denoising.

Outputs (``out_dir``): ``duality.json``, ``duality.npz`` (every reported objective can be
recomputed from it, see :func:`recompute_from_npz`), and the PNGs ``objective_vs_epoch.png``
(Figs. 9/13), ``objective_by_init.png`` (Fig. 10), ``primal_vs_dual.png`` (Fig. 11),
``denoised.png`` (Fig. 12).
Modules, one stage each: :mod:`.config` (the configuration and metrics), :mod:`.run` (the
experiment), :mod:`.honesty` (the diagnostics of the gap), :mod:`.plot` (the figures),
:mod:`.npz` (recomputing from ``duality.npz``).
"""

from __future__ import annotations

from .config import NOISE_LEVELS, DualityConfig, denoise_metrics
from .npz import recompute_from_npz
from .run import run_duality

__all__ = ["NOISE_LEVELS", "DualityConfig", "denoise_metrics", "recompute_from_npz", "run_duality"]
