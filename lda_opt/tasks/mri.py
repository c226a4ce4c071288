"""Under-sampled MRI: ``A = P F`` with a seeded k-space mask, ``y = A x (+ noise)``,
zero-filling start ``x0 = A^H y``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import operators
from .._validate import MAX_SIZE, choice, integer, real
from ..data import masks as masks_mod
from .measurement import Measurement
from .noise import add_noise

__all__ = ["MRI_NOISE_MODELS", "MRITask"]

#: the noise models an MRI task can take (see :mod:`lda_opt.tasks.noise`); the first is the default
MRI_NOISE_MODELS = ("kspace", "kspace-pairs", "image")


@dataclass(frozen=True)
class MRITask:
    """Under-sampled MRI ``A = P F`` with a ``mask`` (``"radial"``, ``"cartesian"``,
    ``"variable_density"``) of sampling ``ratio`` in (0, 1] on ``shape`` (H, W), seeded by
    ``mask_seed``; zero-filling start ``x0 = A^H y``.  ``noise > 0`` adds complex Gaussian
    noise of level ``noise`` by ``noise_model`` (one of :data:`MRI_NOISE_MODELS`; default
    ``"kspace"``: standard deviation ``noise`` per sampled k-space entry), seeded by
    ``noise_seed``."""

    ratio: float
    mask: str = "radial"
    mask_seed: int = 0
    shape: tuple[int, int] = (64, 64)
    noise: float = 0.0
    noise_seed: int = 0
    noise_model: str = "kspace"
    kind: str = field(default="mri", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", real("ratio", self.ratio, 0.0, 1.0, hi_open=False, kind_error=ValueError))
        choice("mask", self.mask, tuple(masks_mod.MASKS))
        for name in ("mask_seed", "noise_seed"):
            object.__setattr__(self, name, integer(name, getattr(self, name), 0, kind_error=ValueError))
        if not isinstance(self.shape, (list, tuple)) or len(self.shape) != 2:
            raise ValueError(f"shape must be (H, W) with integers >= 8; got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(integer(f"shape[{i}]", s, 8, MAX_SIZE, kind_error=ValueError)
                                                for i, s in enumerate(self.shape)))
        object.__setattr__(self, "noise", real("noise", self.noise, 0.0, lo_open=False, kind_error=ValueError))
        choice("noise_model", self.noise_model, MRI_NOISE_MODELS)

    def mask_tensor(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (H, W) 0/1 mask (unshifted FFT layout)."""
        return masks_mod.MASKS[self.mask](self.shape, self.ratio, self.mask_seed, dtype=dtype)

    def operator(self, dtype: torch.dtype = torch.float32, device: str | torch.device | None = None) -> operators.MRI:
        """``A = P F`` (the mask in the real dtype matching ``dtype``, on ``device``)."""
        real_dtype = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
        return operators.MRI(self.mask_tensor(real_dtype).to(device))

    def measure(self, images: torch.Tensor) -> Measurement:
        """Complex (or real, converted to complex) images (N, 1, H, W) -> ``y = A x (+ noise)``,
        ``x0 = A^H y``."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"images must have shape (N, 1, H, W); got {getattr(images, 'shape', images)!r}")
        if tuple(images.shape[2:]) != self.shape:
            raise ValueError(f"images must be {self.shape}; got {tuple(images.shape[2:])}")
        if not images.is_complex():
            images = images.to(torch.complex128 if images.dtype == torch.float64 else torch.complex64)
        A = self.operator(images.real.dtype, images.device)
        y = A(images)
        if self.noise > 0:
            y = add_noise(self.noise_model, y, self.noise, self.noise_seed, operator=A, image=images)
        return Measurement(A, y, A.adjoint(y), images)

    def metadata(self) -> dict:
        """What a checkpoint stores to regenerate the mask (``noise_model`` only when it is
        not the default)."""
        meta = {"kind": self.kind, "ratio": self.ratio, "mask": self.mask, "mask_seed": self.mask_seed,
                "shape": list(self.shape), "noise": self.noise, "noise_seed": self.noise_seed,
                "x0": "zero-filling"}
        if self.noise_model != MRI_NOISE_MODELS[0]:
            meta["noise_model"] = self.noise_model
        return meta
