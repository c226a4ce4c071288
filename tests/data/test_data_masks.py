"""Sampling masks: exact ratios, unshifted FFT layout, seeding, structure."""

import pytest
import torch

from lda_opt.data.masks import MASKS, cartesian, radial, sampling_ratio, variable_density

SHAPES = [(256, 256), (128, 96), (64, 128), (100, 100)]
RATIOS = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.8]


@pytest.mark.parametrize("name", list(MASKS))
@pytest.mark.parametrize("shape", SHAPES)
def test_achieved_ratio_within_one_percent(name, shape):
    fn = MASKS[name]
    for ratio in RATIOS:
        m = fn(shape, ratio, 0)
        assert m.shape == shape
        assert set(torch.unique(m).tolist()) <= {0.0, 1.0}
        assert abs(sampling_ratio(m) - ratio) <= 0.01, (name, shape, ratio)
        if name != "cartesian":  # exactly round(ratio * H * W) samples
            assert int(m.sum()) == int(ratio * shape[0] * shape[1] + 0.5)


@pytest.mark.parametrize("name", list(MASKS))
def test_dc_at_origin_and_low_frequencies_favoured(name):
    """Unshifted layout: DC at [0, 0]; the centred (fftshifted) mask is denser near DC."""
    m = MASKS[name]((128, 128), 0.2, 3)
    assert m[0, 0] == 1
    c = torch.fft.fftshift(m)
    assert c[64, 64] == 1
    inner = c[48:80, 48:80].mean()  # central quarter-width square
    assert inner > 2 * m.mean()


@pytest.mark.parametrize("name", list(MASKS))
def test_seeded_and_dtypes(name):
    fn = MASKS[name]
    a, b, c = fn((64, 64), 0.3, 1), fn((64, 64), 0.3, 1), fn((64, 64), 0.3, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert fn((64, 64), 0.3, 1, dtype=torch.bool).dtype == torch.bool
    assert torch.equal(fn((64, 64), 0.3, 1, dtype=torch.float64).float(), a)


def test_cartesian_is_whole_rows_with_full_centre():
    m = cartesian((128, 64), 0.25, 0, center_fraction=0.05)
    rows = m[:, 0]
    assert torch.equal(m, rows[:, None].expand_as(m))  # each k_y line fully sampled or not
    assert int(rows.sum()) == 32
    c = torch.fft.fftshift(rows)
    assert c[64 - 3 : 64 + 3].all()  # round(0.05 * 128) = 6 central lines


def test_radial_lines_pass_through_dc():
    m = torch.fft.fftshift(radial((129, 129), 0.1, 0))
    # every sampled pixel lies on a line through the centre: the mask is (almost)
    # symmetric under the point reflection k -> -k about DC
    flipped = torch.flip(m, dims=(0, 1))
    assert (m * flipped).sum() / m.sum() > 0.9


def test_cartesian_refuses_unreachable_ratio():
    with pytest.raises(ValueError, match="within 0.01"):
        cartesian((33, 64), 0.2, 0)  # 6/33 = 0.18, 7/33 = 0.21


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_bad_ratio_rejected(bad):
    for fn in MASKS.values():
        with pytest.raises(ValueError, match="ratio"):
            fn((32, 32), bad, 0)


def test_bad_shape_and_seed_rejected():
    with pytest.raises(ValueError, match="shape"):
        radial((1, 32), 0.2, 0)
    with pytest.raises(ValueError, match="seed"):
        variable_density((32, 32), 0.2, -1)


def test_mask_fits_mri_operator_adjoint():
    """P F with an unshifted mask: <P F x, y> = <x, F^H P y> with norm='ortho'."""
    torch.manual_seed(0)
    m = variable_density((32, 32), 0.3, 0, dtype=torch.float64)
    x = torch.randn(32, 32, dtype=torch.complex128)
    y = torch.randn(32, 32, dtype=torch.complex128)
    lhs = torch.vdot((m * torch.fft.fft2(x, norm="ortho")).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), torch.fft.ifft2(m * y, norm="ortho").flatten())
    torch.testing.assert_close(lhs, rhs)
    # the sampled DC coefficient is the (scaled) image mean
    k = m * torch.fft.fft2(x, norm="ortho")
    torch.testing.assert_close(k[0, 0], x.sum() / 32)
