"""Denoising: ``A = I``, ``y = x + noise``, start ``x0 = y``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import operators
from .._validate import integer, real
from .measurement import Measurement
from .noise import add_noise

__all__ = ["DenoiseTask"]


@dataclass(frozen=True)
class DenoiseTask:
    """Gaussian denoising: ``y = x + noise * n`` (the ``"gaussian"`` model of
    :mod:`lda_opt.tasks.noise`, seeded by ``noise_seed``), ``A = I``, ``x0 = y``."""

    noise: float = 0.0
    noise_seed: int = 0
    kind: str = field(default="denoise", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise", real("noise", self.noise, 0.0, lo_open=False, kind_error=ValueError))
        object.__setattr__(self, "noise_seed", integer("noise_seed", self.noise_seed, 0, kind_error=ValueError))

    def measure(self, images: torch.Tensor) -> Measurement:
        """Real images (N, C, H, W) -> ``y`` (a new tensor), ``x0 = y``."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W); got {getattr(images, 'shape', images)!r}")
        y = add_noise("gaussian", images, self.noise, self.noise_seed) if self.noise > 0 else images.clone()
        return Measurement(operators.Identity(), y, y.clone(), images)
