"""The reconstruction tasks LDA-Net is trained on, and how their data are made.

* :class:`BlockCSTask` -- block compressed sensing (LDA Sec. 4.2.1): 33 x 33 blocks, a
  Gaussian sampling matrix ``A`` with orthonormal rows regenerated from ``matrix_seed``
  (:func:`lda_opt.data.gaussian_sampling_matrix`), the linear initializer
  ``x0 = Q b`` with ``Q = X B^T (B B^T)^{-1}`` fitted on ``init_blocks`` random training
  blocks (seeded, :func:`lda_opt.data.initializer_matrix`).  Every block is one sample.
* :class:`MRITask` -- ``A = P F`` with a seeded k-space mask (radial / Cartesian /
  variable density, :mod:`lda_opt.data.masks`), complex images, zero-filling start
  ``x0 = A^H y``.

:meth:`~BlockCSTask.measure` turns ground truths into a :class:`Measurement` (operator, data,
start, truth, and the map back to images).  :meth:`~BlockCSTask.metadata` is what a
checkpoint stores; :func:`task_from_metadata` rebuilds the task from it, so the sensing
matrix or mask of a checkpoint is always regenerated from its stored seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import operators
from ..data import block_cs as bcs
from ..data import masks as masks_mod
from ..problem import LeastSquares

__all__ = ["BlockCSTask", "MRITask", "Measurement", "normalize_problem_name", "task_from_metadata"]


def normalize_problem_name(name: str) -> str:
    """``"block_cs"`` / ``"Block-CS"`` -> ``"block-cs"``; ``"mri"`` stays."""
    if not isinstance(name, str):
        msg = f"problem must be a string such as 'block-cs' or 'mri'; got {name!r}"
        raise ValueError(msg)  # noqa: TRY004 - the CLI contract: bad input is a ValueError
    return name.strip().lower().replace("_", "-")


def _fraction(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1); got {value!r}") from None
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name} must be in (0, 1); got {value!r}")
    return v


def _seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return value


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

    def select(self, index: torch.Tensor) -> Measurement:
        """The samples ``index`` (no longer mappable to whole images)."""
        return Measurement(self.operator.select(index), self.y[index], self.x0[index], self.truth[index])

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstructions -> images (N, 1, H, W): reassembles the blocks of block
        CS; the identity for whole-image tasks."""
        if self.image_shape is None:
            return x
        return bcs.blocks_to_image(x, *self.image_shape)


@functools.lru_cache(maxsize=8)
def _block_matrices(ratio: float, matrix_seed: int, init_blocks: int, init_size: int, init_seed: int):
    A = bcs.gaussian_sampling_matrix(ratio, seed=matrix_seed, dtype=torch.float64)
    X = bcs.training_blocks(init_blocks, size=init_size, seed=init_seed, dtype=torch.float64)
    Q = bcs.initializer_matrix(A, X)
    return A, Q


@dataclass(frozen=True)
class BlockCSTask:
    """Block CS at ``ratio`` (LDA Sec. 4.2.1).

    ``matrix_seed`` fixes ``A``; ``init_blocks`` random 33 x 33 crops (seed ``init_seed``) of
    the training images resized to ``init_size`` fit the initializer ``Q``.
    """

    ratio: float
    matrix_seed: int = 0
    init_blocks: int = 4000
    init_size: int = 256
    init_seed: int = 0
    kind: str = field(default="block-cs", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", _fraction("ratio", self.ratio))
        _seed("matrix_seed", self.matrix_seed)
        _seed("init_seed", self.init_seed)
        m = bcs.measurement_count(self.ratio)
        if isinstance(self.init_blocks, bool) or not isinstance(self.init_blocks, int) or self.init_blocks < m:
            raise ValueError(f"init_blocks must be an integer >= M = {m} (rows of A); got {self.init_blocks!r}")
        if isinstance(self.init_size, bool) or not isinstance(self.init_size, int) or self.init_size < bcs.BLOCK_SIZE:
            raise ValueError(f"init_size must be an integer >= {bcs.BLOCK_SIZE}; got {self.init_size!r}")

    @property
    def mask(self) -> None:
        """Block CS has no k-space mask."""
        return None

    def matrices(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, Q)``: the sampling matrix (M, 1089) and the initializer (1089, M)."""
        A, Q = _block_matrices(self.ratio, self.matrix_seed, self.init_blocks, self.init_size, self.init_seed)
        return A.to(dtype), Q.to(dtype)

    def operator(self, dtype: torch.dtype = torch.float32) -> operators.Matrix:
        """``A`` acting on (B, 1, 33, 33) blocks."""
        return operators.Matrix(self.matrices(dtype)[0], (1, bcs.BLOCK_SIZE, bcs.BLOCK_SIZE))

    def measure_blocks(self, blocks: torch.Tensor) -> Measurement:
        """Blocks (N, 1, 33, 33) -> ``b = A x``, ``x0 = Q b``."""
        if not isinstance(blocks, torch.Tensor) or blocks.dim() != 4 or tuple(blocks.shape[1:]) != (1, 33, 33):
            raise ValueError(f"blocks must have shape (N, 1, 33, 33); got {getattr(blocks, 'shape', blocks)!r}")
        A, Q = self.matrices(blocks.dtype)
        y = bcs.measure_blocks(blocks, A)
        x0 = bcs.initial_blocks(y, Q)
        return Measurement(operators.Matrix(A, (1, 33, 33)), y, x0, blocks)

    def measure(self, images: torch.Tensor) -> Measurement:
        """Images (N, 1, H, W) -> the measurement of their blocks (zero-padded to multiples
        of 33); :meth:`Measurement.to_image` reassembles."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"images must have shape (N, 1, H, W); got {getattr(images, 'shape', images)!r}")
        if images.is_complex():
            raise ValueError("images must be real for block CS")
        m = self.measure_blocks(bcs.image_to_blocks(images))
        m.image_shape = (int(images.shape[2]), int(images.shape[3]))
        m.n_images = int(images.shape[0])
        return m

    def metadata(self) -> dict:
        """What a checkpoint stores to regenerate ``A`` and ``Q``."""
        return {"kind": self.kind, "ratio": self.ratio, "mask": None, "block": bcs.BLOCK_SIZE,
                "matrix_seed": self.matrix_seed,
                "initializer": {"n_blocks": self.init_blocks, "size": self.init_size, "seed": self.init_seed}}


@dataclass(frozen=True)
class MRITask:
    """Under-sampled MRI ``A = P F`` with a ``mask`` (``"radial"``, ``"cartesian"``,
    ``"variable_density"``) of sampling ``ratio`` on ``shape`` (H, W), seeded by
    ``mask_seed``; zero-filling start ``x0 = A^H y``; optional complex Gaussian noise of
    standard deviation ``noise`` per k-space sample (seeded by ``noise_seed``)."""

    ratio: float
    mask: str = "radial"
    mask_seed: int = 0
    shape: tuple[int, int] = (64, 64)
    noise: float = 0.0
    noise_seed: int = 0
    kind: str = field(default="mri", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", _fraction("ratio", self.ratio))
        if self.mask not in masks_mod.MASKS:
            raise ValueError(f"mask must be one of {sorted(masks_mod.MASKS)}; got {self.mask!r}")
        _seed("mask_seed", self.mask_seed)
        _seed("noise_seed", self.noise_seed)
        shp = tuple(self.shape) if isinstance(self.shape, (list, tuple)) else None
        if shp is None or len(shp) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 8 for s in shp):
            raise ValueError(f"shape must be (H, W) with integers >= 8; got {self.shape!r}")
        object.__setattr__(self, "shape", shp)
        if not (isinstance(self.noise, (int, float)) and math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0; got {self.noise!r}")

    def mask_tensor(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (H, W) 0/1 mask (unshifted FFT layout)."""
        return masks_mod.MASKS[self.mask](self.shape, self.ratio, self.mask_seed, dtype=dtype)

    def operator(self, dtype: torch.dtype = torch.float32) -> operators.MRI:
        """``A = P F``."""
        real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
        return operators.MRI(self.mask_tensor(real))

    def measure(self, images: torch.Tensor) -> Measurement:
        """Complex (or real, converted to complex) images (N, 1, H, W) -> ``y = A x (+ noise)``,
        ``x0 = A^H y``."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"images must have shape (N, 1, H, W); got {getattr(images, 'shape', images)!r}")
        if tuple(images.shape[2:]) != self.shape:
            raise ValueError(f"images must be {self.shape}; got {tuple(images.shape[2:])}")
        if not images.is_complex():
            images = images.to(torch.complex128 if images.dtype == torch.float64 else torch.complex64)
        A = self.operator(images.real.dtype)
        y = A(images)
        if self.noise > 0:
            gen = torch.Generator().manual_seed(self.noise_seed)
            n = torch.randn(y.shape, generator=gen, dtype=torch.complex128).to(y.dtype)
            y = y + A.mask.to(y.real.dtype) * self.noise * n
        return Measurement(A, y, A.adjoint(y), images)

    def metadata(self) -> dict:
        """What a checkpoint stores to regenerate the mask."""
        return {"kind": self.kind, "ratio": self.ratio, "mask": self.mask, "mask_seed": self.mask_seed,
                "shape": list(self.shape), "noise": self.noise, "noise_seed": self.noise_seed,
                "x0": "zero-filling"}


def task_from_metadata(meta: dict) -> BlockCSTask | MRITask:
    """Rebuild the task a checkpoint was trained on from ``metadata["problem"]`` (or from the
    problem dict itself)."""
    if not isinstance(meta, dict):
        msg = f"meta must be a dict; got {type(meta).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - checkpoint content, not an argument
    p = meta.get("problem", meta)
    try:
        kind = normalize_problem_name(p["kind"])
        if kind == "block-cs":
            init = p.get("initializer", {})
            return BlockCSTask(float(p["ratio"]), matrix_seed=int(p.get("matrix_seed", 0)),
                               init_blocks=int(init.get("n_blocks", 4000)), init_size=int(init.get("size", 256)),
                               init_seed=int(init.get("seed", 0)))
        if kind == "mri":
            return MRITask(float(p["ratio"]), mask=p.get("mask", "radial"), mask_seed=int(p.get("mask_seed", 0)),
                           shape=tuple(int(s) for s in p["shape"]), noise=float(p.get("noise", 0.0)),
                           noise_seed=int(p.get("noise_seed", 0)))
    except KeyError as exc:
        raise ValueError(f"problem metadata lacks {exc}") from exc
    raise ValueError(f"problem kind must be 'block-cs' or 'mri'; got {p.get('kind')!r}")
