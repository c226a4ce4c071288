"""Block compressed sensing (LDA Sec. 4.2.1): 33 x 33 blocks, ``b = A x (+ noise)``,
``x0 = Q b``."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from .. import operators
from .._validate import MAX_SIZE, integer, real
from ..data import block_cs as bcs
from .measurement import Measurement
from .noise import add_noise

__all__ = ["BlockCSTask"]


@functools.lru_cache(maxsize=8)
def _block_matrices(ratio: float, matrix_seed: int, init_blocks: int, init_size: int, init_seed: int):
    A = bcs.gaussian_sampling_matrix(ratio, seed=matrix_seed, dtype=torch.float64)
    X = bcs.training_blocks(init_blocks, size=init_size, seed=init_seed, dtype=torch.float64)
    Q = bcs.initializer_matrix(A, X)
    return A, Q


@dataclass(frozen=True)
class BlockCSTask:
    """Block CS at ``ratio`` (LDA Sec. 4.2.1).

    ``A`` is Gaussian with orthonormal rows, regenerated from ``matrix_seed``
    (:func:`lda_opt.data.gaussian_sampling_matrix`); the linear initializer
    ``x0 = Q b``, ``Q = X B^T (B B^T)^{-1}``, is fitted on ``init_blocks`` random 33 x 33
    crops (seed ``init_seed``) of the training images resized to ``init_size``
    (:func:`lda_opt.data.initializer_matrix`).  ``noise > 0`` adds the ``"gaussian"`` noise
    of :mod:`lda_opt.tasks.noise` (seed ``noise_seed``) to ``b`` before ``x0 = Q b``.
    Every block is one sample.
    """

    ratio: float
    matrix_seed: int = 0
    init_blocks: int = 4000
    init_size: int = 256
    init_seed: int = 0
    noise: float = 0.0
    noise_seed: int = 0
    kind: str = field(default="block-cs", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", real("ratio", self.ratio, 0.0, 1.0, kind_error=ValueError))
        m = bcs.measurement_count(self.ratio)
        # upper bounds: the initializer's blocks are allocated at once (100,000 float64 blocks
        # of 33 x 33 are 870 MB), and an image side above MAX_SIZE does not fit in memory; a
        # checkpoint's metadata that declares more is refused before any allocation
        for name, lo, hi in (("matrix_seed", 0, None), ("init_seed", 0, None), ("init_blocks", m, 100_000),
                             ("init_size", bcs.BLOCK_SIZE, MAX_SIZE), ("noise_seed", 0, None)):
            object.__setattr__(self, name, integer(name, getattr(self, name), lo, hi, kind_error=ValueError))
        object.__setattr__(self, "noise", real("noise", self.noise, 0.0, lo_open=False, kind_error=ValueError))

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
        """Blocks (N, 1, 33, 33) -> ``b = A x (+ noise)``, ``x0 = Q b``."""
        if not isinstance(blocks, torch.Tensor) or blocks.dim() != 4 or tuple(blocks.shape[1:]) != (1, 33, 33):
            raise ValueError(f"blocks must have shape (N, 1, 33, 33); got {getattr(blocks, 'shape', blocks)!r}")
        A, Q = self.matrices(blocks.dtype)
        y = bcs.measure_blocks(blocks, A)
        if self.noise > 0:
            y = add_noise("gaussian", y, self.noise, self.noise_seed)
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
        """What a checkpoint stores to regenerate ``A`` and ``Q`` (and, for a noisy task,
        the noise level and seed)."""
        meta = {"kind": self.kind, "ratio": self.ratio, "mask": None, "block": bcs.BLOCK_SIZE,
                "matrix_seed": self.matrix_seed,
                "initializer": {"n_blocks": self.init_blocks, "size": self.init_size, "seed": self.init_seed}}
        if self.noise > 0:
            meta.update(noise=self.noise, noise_seed=self.noise_seed)
        return meta
