"""A batch of measured problems: operator, data, start and ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import operators
from ..data import block_cs as bcs
from ..problem import LeastSquares, Problem

__all__ = ["Measurement"]


@dataclass
class Measurement:
    """A batch of problems: ``operator``, data ``y``, start ``x0`` and ground truth ``truth``
    (all per sample), plus ``image_shape`` (H, W) and ``n_images`` when the samples are the
    blocks of whole images (block CS), for :meth:`to_image`."""

    operator: operators.LinearOperator
    y: torch.Tensor
    x0: torch.Tensor
    truth: torch.Tensor
    image_shape: tuple[int, int] | None = None
    n_images: int | None = None

    def fidelity(self) -> LeastSquares:
        """``f(x) = 1/2 ||A x - y||^2`` per sample."""
        return LeastSquares(self.operator, self.y)

    def problem(self, features: nn.Module, weight: float) -> Problem:
        """``min_x 1/2 ||A x - y||^2 + weight ||features(x)||_{2,1}`` on every sample."""
        return Problem(self.fidelity(), features, weight=weight)

    def select(self, index: torch.Tensor) -> Measurement:
        """The samples ``index`` (no longer mappable to whole images)."""
        return Measurement(self.operator.select(index), self.y[index], self.x0[index], self.truth[index])

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstructions -> images (N, 1, H, W): reassembles the blocks of block
        CS; the identity for whole-image tasks."""
        if self.image_shape is None:
            return x
        return bcs.blocks_to_image(x, *self.image_shape)
