"""Metric reference values (meta-LDA eqs. 21-23) and agreement with scikit-image."""

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lda_opt.metrics import mse, nmse, psnr, relative_error, ssim


def _pair(seed=0, noise=0.1):
    img = skdata.camera()[::4, ::4].astype(np.float64) / 255.0
    rng = np.random.default_rng(seed)
    noisy = np.clip(img + noise * rng.standard_normal(img.shape), 0, 1)
    return noisy, img


def test_psnr_identical_is_inf_and_known_value():
    ref = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert torch.isinf(psnr(ref, ref)).all()
    # constant error 0.1 with data_range 1: MSE = 0.01 -> PSNR = 20 dB exactly
    val = psnr(ref + 0.1, ref, data_range=1.0)
    torch.testing.assert_close(val, torch.full((2,), 20.0, dtype=torch.float64))
    # default peak is max|ref| per sample (eq. 21)
    ref2 = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    ref2[0, 0, 0, 0] = -4.0  # max |ref| = 4
    out = psnr(ref2 + 0.5, ref2)
    assert out.item() == pytest.approx(20 * math.log10(4 / 0.5), abs=1e-12)


def test_psnr_matches_skimage():
    noisy, img = _pair()
    val = psnr(torch.tensor(noisy)[None, None], torch.tensor(img)[None, None], data_range=1.0)
    assert val.item() == pytest.approx(
        peak_signal_noise_ratio(img, noisy, data_range=1.0), abs=1e-10
    )


def test_complex_metrics_use_modulus_of_difference():
    ref = torch.ones(1, 1, 4, 4, dtype=torch.complex128)
    x = ref + 0.1j  # |x - ref| = 0.1 everywhere
    assert mse(x, ref).item() == pytest.approx(0.01, abs=1e-15)
    assert psnr(x, ref).item() == pytest.approx(20.0, abs=1e-12)
    assert nmse(x, ref).item() == pytest.approx(0.01, abs=1e-15)
    assert relative_error(x, ref).item() == pytest.approx(0.1, abs=1e-15)


def test_nmse_relative_error_per_sample():
    torch.manual_seed(0)
    ref = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    x = ref.clone()
    x[1] *= 1.5  # ||x - ref|| = 0.5 ||ref||
    out = relative_error(x, ref)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(nmse(x, ref), out**2)


@pytest.mark.parametrize("seed,noise", [(0, 0.05), (1, 0.1), (2, 0.3)])
def test_ssim_matches_skimage(seed, noise):
    """Agreement to 1e-10 in float64 (same Gaussian window and valid-region crop)."""
    noisy, img = _pair(seed, noise)
    ref = structural_similarity(
        noisy, img, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    val = ssim(torch.tensor(noisy)[None, None], torch.tensor(img)[None, None], data_range=1.0)
    assert val.item() == pytest.approx(ref, abs=1e-10)


def test_ssim_multichannel_and_float32():
    rng = np.random.default_rng(3)
    img = skdata.astronaut()[::8, ::8].astype(np.float64) / 255.0  # (64, 64, 3)
    noisy = np.clip(img + 0.1 * rng.standard_normal(img.shape), 0, 1)
    ref = structural_similarity(
        noisy,
        img,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=2,
    )
    x = torch.tensor(noisy).permute(2, 0, 1)[None]
    r = torch.tensor(img).permute(2, 0, 1)[None]
    assert ssim(x, r, data_range=1.0).item() == pytest.approx(ref, abs=1e-10)
    # float32: single-precision rounding of local variances, within 1e-4
    assert ssim(x.float(), r.float(), data_range=1.0).item() == pytest.approx(ref, abs=1e-4)


def test_ssim_identity_complex_and_batch():
    torch.manual_seed(1)
    ref = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(ssim(ref, ref), torch.ones(3, dtype=torch.float64))
    phase = torch.exp(1j * torch.rand(3, 1, 16, 16, dtype=torch.float64))
    # complex SSIM compares magnitudes, so a pure phase change leaves SSIM = 1
    torch.testing.assert_close(
        ssim(ref * phase, ref.to(torch.complex128)), torch.ones(3, dtype=torch.float64)
    )
    x = ref + 0.1 * torch.randn_like(ref)
    batch = ssim(x, ref)
    singles = torch.cat([ssim(x[i : i + 1], ref[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-14)


def test_ssim_is_differentiable():
    torch.manual_seed(2)
    ref = torch.rand(1, 1, 13, 13, dtype=torch.float64)
    x = (ref + 0.1 * torch.randn_like(ref)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ssim(t, ref, data_range=1.0), (x,), fast_mode=True)


def test_metric_input_errors():
    a = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, torch.rand(1, 1, 16, 15))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ssim(a[0], a[0])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, data_range=-1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, torch.zeros_like(a))


@pytest.mark.parametrize("dtype,tol", [(torch.complex128, 1e-10), (torch.complex64, 1e-3)])
def test_complex_ssim_is_skimage_on_magnitudes_with_default_range(dtype, tol):
    """The SSIM of the U-LDA loss (3.2a) on complex MR reconstructions: skimage's SSIM of the
    magnitudes with data_range = max|ref| (the default), to 1e-3 in single precision too."""
    noisy, img = _pair(4, 0.1)
    rng = np.random.default_rng(5)
    phase_x, phase_r = (np.exp(1j * rng.uniform(-1, 1, img.shape)) for _ in range(2))
    x = torch.tensor(noisy * phase_x).to(dtype)[None, None]
    r = torch.tensor(0.8 * img * phase_r).to(dtype)[None, None]
    ref = structural_similarity(np.abs(x[0, 0].numpy()).astype(np.float64), np.abs(r[0, 0].numpy()).astype(np.float64),
                                data_range=float(np.abs(r.numpy()).max()), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert ssim(x, r).item() == pytest.approx(ref, abs=tol)
    assert abs(ssim(x, r).item() - ssim(x, r, data_range=1.0).item()) > 1e-3  # the range matters
