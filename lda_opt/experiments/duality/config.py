"""The duality experiment, its configuration (:class:`DualityConfig`) and the denoising
metrics.  Overview: :mod:`lda_opt.experiments.duality`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ...dual.dual import (
    TorchDualConfig,
)
from ...dual.primal import INITS, OPTIMIZERS, PrimalConfig

NOISE_LEVELS = (0.25, 0.5, 0.75)  # Table I


@dataclass(frozen=True, kw_only=True)
class DualityConfig:
    """Everything the experiment depends on (defaults: the non-quick run).

    ``n_train``/``n_test`` digits (8 x 8, so ``I = 64 n_train``); ``filter_size`` m;
    ``primal.n_filters`` K defaults to ``2 n_samples + 1``: (22) has at most ``2 P <=
    2 n_samples`` non-zero groups ``k*``, so Theorem 1's hypothesis ``K >= k* + 1`` holds
    (recorded as ``theorem1_hypothesis``);
    ``n_samples`` random ``u-bar`` for the patterns, ``u_scale`` their standard deviation;
    ``cvxpy_solver`` ``"CLARABEL"``, ``"SCS"`` or ``None`` (skip the exact solve);
    ``cvxpy_max_vars`` skips CVXPY above ``2 P m^2`` variables;
    ``u_scale_sweep`` are the multiples of ``u_scale`` at which (22) is re-solved (same
    draws, rescaled, torch solver) to show that its value depends on the magnitude of the
    sampled ``u-bar`` (empty: no sweep; the factor 1 is the main solve and always reported).
    """

    noise: float = 0.25
    n_train: int = 16
    n_test: int = 16
    filter_size: int = 3
    primal: PrimalConfig = field(
        default_factory=lambda: PrimalConfig(n_filters=129, epochs=2000)
    )
    seeds: tuple[int, ...] = (0, 1, 2)
    optimizers: tuple[str, ...] = OPTIMIZERS
    inits: tuple[str, ...] = INITS
    n_samples: int = 64
    u_scale: float = 1.0 / 3.0
    torch_dual: TorchDualConfig = field(default_factory=lambda: TorchDualConfig(iters=5000))
    cvxpy_solver: str | None = "CLARABEL"
    cvxpy_max_vars: int = 2400
    data_seed: int = 0
    pattern_seed: int = 0
    u_scale_sweep: tuple[float, ...] = (0.3, 3.0, 10.0)

    def __post_init__(self) -> None:
        if not (isinstance(self.noise, (int, float)) and math.isfinite(self.noise)
                and self.noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0; got {self.noise!r}")
        for name in ("n_train", "n_test", "n_samples", "cvxpy_max_vars"):
            val = getattr(self, name)
            if not (isinstance(val, int) and val >= 1):
                raise ValueError(f"{name} must be an integer >= 1; got {val!r}")
        if self.n_train + self.n_test > 1797:
            raise ValueError(
                f"n_train + n_test must be <= 1797 (digits available); got "
                f"{self.n_train + self.n_test}")
        if not (isinstance(self.filter_size, int) and self.filter_size >= 1
                and self.filter_size % 2 == 1):
            raise ValueError(
                f"filter_size must be a positive odd integer; got {self.filter_size!r}")
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty tuple of integers >= 0; got {self.seeds!r}")
        if not self.optimizers or any(o not in OPTIMIZERS for o in self.optimizers):
            raise ValueError(f"optimizers must be a non-empty subset of {OPTIMIZERS}; "
                             f"got {self.optimizers!r}")
        if not self.inits or any(i not in INITS for i in self.inits):
            raise ValueError(f"inits must be a non-empty subset of {INITS}; got {self.inits!r}")
        if not (math.isfinite(self.u_scale) and self.u_scale > 0):
            raise ValueError(f"u_scale must be a finite number > 0; got {self.u_scale!r}")
        if any(not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0)
               for f in self.u_scale_sweep):
            raise ValueError(f"u_scale_sweep must hold finite numbers > 0; "
                             f"got {self.u_scale_sweep!r}")
        if self.cvxpy_solver not in (None, "CLARABEL", "SCS"):
            raise ValueError(
                f"cvxpy_solver must be 'CLARABEL', 'SCS' or None; got {self.cvxpy_solver!r}")

    @classmethod
    def quick(cls, **overrides) -> DualityConfig:
        """Small instance for ``--quick`` (well under 2 minutes on a CPU)."""
        base = {
            "n_train": 4,
            "n_test": 4,
            "primal": PrimalConfig(n_filters=49, epochs=300),
            "seeds": (0, 1),
            "n_samples": 24,
            "torch_dual": TorchDualConfig(iters=1500),
            "u_scale_sweep": (0.3, 3.0),
        }
        base.update(overrides)
        return cls(**base)


def _psnr_rlne(est: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """Mean over images of PSNR (peak 1, images in [0, 1]) and RLNE = ||est-x|| / ||x||."""
    est = est.reshape(clean.shape)
    err = (est - clean).reshape(clean.shape[0], -1)
    ref = clean.reshape(clean.shape[0], -1)
    mse = np.mean(err * err, axis=1)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 1e-300))
    rlne = np.linalg.norm(err, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300)
    return float(psnr.mean()), float(rlne.mean())


def denoise_metrics(est: np.ndarray, clean: np.ndarray) -> dict:
    psnr, rlne = _psnr_rlne(est, clean)
    return {"psnr": psnr, "rlne": rlne}


def _config_dict(config: DualityConfig) -> dict:
    d = asdict(config)
    d["seeds"] = list(config.seeds)
    d["optimizers"] = list(config.optimizers)
    d["inits"] = list(config.inits)
    d["u_scale_sweep"] = list(config.u_scale_sweep)
    return d


