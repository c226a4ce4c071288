"""Block compressed sensing (LDA Sec. 4.2.1): A, tiling, and the initializer Q."""

import pytest
import torch

from lda_opt.data import (
    BLOCK_N,
    CS_RATIOS,
    blocks_to_image,
    gaussian_sampling_matrix,
    image_to_blocks,
    initial_blocks,
    initializer_matrix,
    measure_blocks,
    measurement_count,
    random_blocks,
)


def test_measurement_counts_match_ista_net():
    assert BLOCK_N == 1089
    assert [measurement_count(r) for r in CS_RATIOS] == [109, 272, 545]


@pytest.mark.parametrize("ratio", CS_RATIOS)
def test_sampling_matrix_has_orthonormal_rows(ratio):
    A = gaussian_sampling_matrix(ratio, seed=0)
    m = measurement_count(ratio)
    assert A.shape == (m, 1089) and A.dtype == torch.float64
    torch.testing.assert_close(A @ A.T, torch.eye(m, dtype=torch.float64), rtol=0, atol=1e-12)


def test_sampling_matrix_is_seeded():
    A = gaussian_sampling_matrix(0.10, seed=0)
    assert torch.equal(A, gaussian_sampling_matrix(0.10, seed=0))
    assert not torch.equal(A, gaussian_sampling_matrix(0.10, seed=1))


@pytest.mark.parametrize("hw", [(33, 33), (100, 70), (64, 128), (1, 40)])
def test_tiling_round_trip_exact(hw):
    torch.manual_seed(0)
    x = torch.rand(3, 2, *hw, dtype=torch.float64)
    blocks = image_to_blocks(x)
    nh, nw = -(-hw[0] // 33), -(-hw[1] // 33)
    assert blocks.shape == (3 * nh * nw, 2, 33, 33)
    assert torch.equal(blocks_to_image(blocks, *hw), x)


def test_tiling_order_and_zero_padding():
    x = torch.arange(40 * 70, dtype=torch.float64).reshape(1, 1, 40, 70)
    blocks = image_to_blocks(x)  # 2 x 3 blocks
    assert blocks.shape == (6, 1, 33, 33)
    # block (i, j) at index i * nW + j holds x[33 i : 33 i + 33, 33 j : 33 j + 33]
    assert torch.equal(blocks[4, 0, :7, :33], x[0, 0, 33:40, 33:66])
    assert torch.equal(blocks[0, 0], x[0, 0, :33, :33])
    assert (blocks[5, 0, 7:, :] == 0).all() and (blocks[5, 0, :, 4:] == 0).all()


def test_initializer_is_least_squares_solution():
    """Q = X B^T (B B^T)^-1 satisfies the normal equations (Q B - X) B^T = 0, and no
    perturbation of Q lowers ||Q B - X||_F."""
    torch.manual_seed(0)
    images = torch.rand(4, 1, 80, 80, dtype=torch.float64)
    images = torch.nn.functional.avg_pool2d(images, 5, stride=1, padding=2)  # correlated
    X_blocks = random_blocks(images, 400, seed=0)
    A = gaussian_sampling_matrix(0.10, seed=0)
    Q = initializer_matrix(A, X_blocks)
    assert Q.shape == (1089, 109)
    X = X_blocks.reshape(400, -1).T
    B = A @ X
    R = Q @ B - X
    normal = R @ B.T
    assert normal.abs().max() <= 1e-9 * (X.abs().max() * B.abs().max() * 400)
    base = R.square().sum()
    for seed in range(3):
        E = torch.randn(Q.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        assert ((Q + 1e-3 * E) @ B - X).square().sum() > base
    # x0 = Q b for the training blocks is their least-squares reconstruction
    x0 = initial_blocks(measure_blocks(X_blocks, A), Q)
    torch.testing.assert_close(x0.reshape(400, -1).T, Q @ B)
    # and it is much better than the plain back-projection A^T b
    err_q = (x0 - X_blocks).square().sum()
    err_bp = ((measure_blocks(X_blocks, A) @ A).reshape_as(X_blocks) - X_blocks).square().sum()
    assert err_q < 0.5 * err_bp


def test_initializer_needs_enough_blocks():
    A = gaussian_sampling_matrix(0.10, seed=0)
    with pytest.raises(ValueError, match="at least M = 109"):
        initializer_matrix(A, torch.rand(50, 1, 33, 33, dtype=torch.float64))


def test_bad_inputs():
    with pytest.raises(ValueError, match="ratio"):
        gaussian_sampling_matrix(0.0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        image_to_blocks(torch.rand(33, 33))
    with pytest.raises(ValueError, match="multiple"):
        blocks_to_image(torch.rand(5, 1, 33, 33), 66, 66)
