"""Property-based checks (hypothesis): mask ratios and block tiling for arbitrary shapes."""

from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lda_opt.data import blocks_to_image, image_to_blocks
from lda_opt.data.masks import cartesian, radial, variable_density

dims = st.integers(min_value=8, max_value=80)
ratios = st.floats(min_value=0.02, max_value=0.98, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(h=dims, w=dims, ratio=ratios, seed=st.integers(0, 2**31 - 1))
def test_pointwise_masks_hit_round_ratio_exactly(h, w, ratio, seed):
    k = int(ratio * h * w + 0.5)
    for fn in (radial, variable_density):
        m = fn((h, w), ratio, seed)
        assert int(m.sum()) == k
        # exact arithmetic: a tie (ratio * h * w = n + 1/2) meets the bound with equality
        assert abs(Fraction(k, h * w) - Fraction(ratio)) <= Fraction(1, 2 * h * w)
        assert m[0, 0] == 1  # DC is always sampled


@settings(max_examples=25, deadline=None)
@given(h=dims, w=dims, ratio=ratios, seed=st.integers(0, 2**31 - 1))
def test_cartesian_meets_ratio_or_refuses(h, w, ratio, seed):
    lines = max(1, int(ratio * h + 0.5))
    if abs(lines / h - ratio) > 0.01:
        with pytest.raises(ValueError, match="within 0.01"):
            cartesian((h, w), ratio, seed)
    else:
        m = cartesian((h, w), ratio, seed)
        assert int(m[:, 0].sum()) == lines and abs(float(m.mean()) - ratio) <= 0.01


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 2),
    h=st.integers(1, 100),
    w=st.integers(1, 100),
    block=st.integers(1, 40),
)
def test_tiling_round_trip_any_shape(b, c, h, w, block):
    x = torch.randn(b, c, h, w, dtype=torch.float64)
    blocks = image_to_blocks(x, block)
    assert blocks.shape[1:] == (c, block, block)
    assert blocks.shape[0] == b * (-(-h // block)) * (-(-w // block))
    assert torch.equal(blocks_to_image(blocks, h, w, block), x)
    # zero padding adds no energy: the blocks hold exactly the image's squared norm
    torch.testing.assert_close(blocks.square().sum(), x.square().sum(), rtol=1e-12, atol=0)
