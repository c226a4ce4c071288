"""Block compressed sensing data (LDA Sec. 4.2.1, following ISTA-Net).

An image is cut into 33 x 33 blocks (n = 1089); each block ``x`` (flattened row-major,
as ``lda_opt.operators.Matrix(A, (1, 33, 33))`` does) is measured as ``b = A x`` with a
Gaussian ``A`` (M x n) whose rows are orthonormal, ``M = round(ratio n)`` (half up:
109, 272, 545 for the ratios 0.10, 0.25, 0.50). The initial guess is the linear map
``x0 = Q b`` with ``Q = X B^T (B B^T)^{-1}``, X the training blocks as columns and
B = A X: Q is the least-squares solution of ``min_Q ||Q B - X||_F``.

Tiling: images (B, C, H, W) are zero-padded at the bottom/right to multiples of 33 and
split into blocks (B * nH * nW, C, 33, 33) in row-major block order, image after image;
:func:`blocks_to_image` is the exact inverse on the unpadded region.
"""

from __future__ import annotations

import torch

from lda_opt.data._common import check_fraction, check_seed, check_size, round_half_up

__all__ = [
    "BLOCK_N",
    "BLOCK_SIZE",
    "CS_RATIOS",
    "block_grid",
    "blocks_to_image",
    "gaussian_sampling_matrix",
    "image_to_blocks",
    "initial_blocks",
    "initializer_matrix",
    "measure_blocks",
    "measurement_count",
    "random_blocks",
    "training_blocks",
]

BLOCK_SIZE = 33
BLOCK_N = BLOCK_SIZE * BLOCK_SIZE  # 1089
CS_RATIOS = (0.10, 0.25, 0.50)


def measurement_count(ratio: float, n: int = BLOCK_N) -> int:
    """``M = round(ratio * n)`` rounded half up (109 / 272 / 545 for n = 1089)."""
    ratio = check_fraction(ratio, "ratio")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    return max(1, round_half_up(ratio * n))


def gaussian_sampling_matrix(
    ratio: float, n: int = BLOCK_N, seed: int = 0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Gaussian sampling matrix with orthonormal rows, shape (M, n), ``A A^T = I_M``.

    Draws an n x M standard Gaussian matrix G (``numpy.random.default_rng(seed)``) and
    returns ``A = Q^T`` from its reduced QR factorization ``G = Q R`` with the signs fixed
    by ``diag(R) > 0`` (so A is a deterministic function of the seed).
    """
    import numpy as np

    m = measurement_count(ratio, n)
    check_seed(seed)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    g = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, m)))
    # QR in torch: numpy's OpenBLAS oversubscribes threads once torch is loaded
    q, r = torch.linalg.qr(g, mode="reduced")
    q = q * torch.sign(torch.diagonal(r))[None, :]
    return q.T.contiguous().to(dtype)


def _check_images(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")


def _check_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be an int >= 1, got {block!r}")
    return block


def block_grid(height: int, width: int, block: int = BLOCK_SIZE) -> tuple[int, int]:
    """Number of blocks (nH, nW) = (ceil(H / block), ceil(W / block))."""
    _check_block(block)
    h, w = check_size((height, width), "(height, width)")
    return -(-h // block), -(-w // block)


def image_to_blocks(x: torch.Tensor, block: int = BLOCK_SIZE) -> torch.Tensor:
    """Split (B, C, H, W) into (B * nH * nW, C, block, block), zero-padding bottom/right.

    Block ``(i, j)`` of image ``b`` is at index ``(b * nH + i) * nW + j``.
    """
    _check_images(x)
    _check_block(block)
    b, c, h, w = x.shape
    nh, nw = block_grid(h, w, block)
    x = torch.nn.functional.pad(x, (0, nw * block - w, 0, nh * block - h))
    x = x.reshape(b, c, nh, block, nw, block).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * nh * nw, c, block, block)


def blocks_to_image(
    blocks: torch.Tensor, height: int, width: int, block: int = BLOCK_SIZE
) -> torch.Tensor:
    """Inverse of :func:`image_to_blocks`: reassemble and crop to (B, C, height, width)."""
    _check_images(blocks, "blocks")
    _check_block(block)
    nh, nw = block_grid(height, width, block)
    n, c, bh, bw = blocks.shape
    if (bh, bw) != (block, block):
        raise ValueError(f"blocks must be {block} x {block}, got {bh} x {bw}")
    if n % (nh * nw) != 0:
        raise ValueError(
            f"blocks has {n} blocks, not a multiple of nH * nW = {nh * nw} for a "
            f"{height} x {width} image"
        )
    b = n // (nh * nw)
    x = blocks.reshape(b, nh, nw, c, block, block).permute(0, 3, 1, 4, 2, 5)
    x = x.reshape(b, c, nh * block, nw * block)
    return x[:, :, :height, :width]


def random_blocks(
    images: torch.Tensor, n_blocks: int, seed: int = 0, block: int = BLOCK_SIZE
) -> torch.Tensor:
    """``n_blocks`` random block x block crops of ``images`` (N, C, H, W), seeded.

    Each crop picks an image uniformly, then a top-left corner uniformly.
    Returns (n_blocks, C, block, block).
    """
    import numpy as np

    _check_images(images, "images")
    _check_block(block)
    check_seed(seed)
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1:
        raise ValueError(f"n_blocks must be an int >= 1, got {n_blocks!r}")
    n, _, h, w = images.shape
    if h < block or w < block:
        raise ValueError(f"images must be at least {block} x {block}, got {h} x {w}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, n_blocks)
    top = rng.integers(0, h - block + 1, n_blocks)
    left = rng.integers(0, w - block + 1, n_blocks)
    return torch.stack(
        [images[i, :, t : t + block, s : s + block] for i, t, s in zip(idx, top, left)]
    )


def training_blocks(
    n_blocks: int = 10_000, size=256, seed: int = 0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Random 33 x 33 crops of the training images (``lda_opt.data.train_images()``),
    resized to ``size``, shape (n_blocks, 1, 33, 33). Stands in for the 91-image set."""
    from lda_opt.data.images import load_images

    return random_blocks(load_images("train", size=size, dtype=dtype), n_blocks, seed)


def _as_columns(blocks: torch.Tensor, n: int) -> torch.Tensor:
    if blocks.dim() == 2:
        if blocks.shape[0] != n:
            raise ValueError(
                f"X must have n = {n} rows (blocks as columns), got {tuple(blocks.shape)}"
            )
        return blocks
    _check_images(blocks, "blocks")
    flat = blocks.reshape(blocks.shape[0], -1)
    if flat.shape[1] != n:
        raise ValueError(f"blocks have {flat.shape[1]} pixels, A has n = {n} columns")
    return flat.T


def initializer_matrix(A: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """``Q = X B^T (B B^T)^{-1}`` with ``B = A X`` (LDA Sec. 4.2.1, ISTA-Net eq. 9).

    Args:
        A: (M, n) sampling matrix.
        blocks: training blocks, either (N, C, h, w) with C h w = n or X as (n, N).

    Returns:
        Q of shape (n, M) in A's dtype, computed in float64 by solving
        ``(B B^T) Q^T = B X^T`` (needs N >= M blocks with B B^T invertible).
    """
    if not isinstance(A, torch.Tensor) or A.dim() != 2:
        raise ValueError("A must be a 2-D tensor of shape (M, n)")
    m, n = A.shape
    X = _as_columns(blocks, n).to(torch.float64)
    if X.shape[1] < m:
        raise ValueError(f"need at least M = {m} training blocks, got {X.shape[1]}")
    Ad = A.to(torch.float64)
    B = Ad @ X
    gram = B @ B.T
    Qt = torch.linalg.solve(gram, B @ X.T)
    return Qt.T.contiguous().to(A.dtype)


def measure_blocks(blocks: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``b = A vec(x)`` for every block: (N, C, h, w) -> (N, M)."""
    _check_images(blocks, "blocks")
    return blocks.reshape(blocks.shape[0], -1) @ A.to(blocks.dtype).T


def initial_blocks(b: torch.Tensor, Q: torch.Tensor, block: int = BLOCK_SIZE) -> torch.Tensor:
    """``x0 = Q b`` for every measurement row: (N, M) -> (N, 1, block, block)."""
    if not isinstance(b, torch.Tensor) or b.dim() != 2:
        raise ValueError("b must be a 2-D tensor of shape (N, M)")
    if Q.shape[1] != b.shape[1]:
        raise ValueError(f"Q has {Q.shape[1]} columns but b has M = {b.shape[1]}")
    x = b @ Q.to(b.dtype).T
    return x.reshape(b.shape[0], 1, block, block)
