"""MRI ground truths: phantoms, smooth phase, natural images as MRI source domain."""

import math

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom

from lda_opt.data import natural_mri, random_ellipses, shepp_logan, smooth_random_phase


def test_shepp_logan_native_size_is_skimage():
    x = shepp_logan(400, dtype=torch.float64)
    assert torch.equal(x[0, 0], torch.from_numpy(np.clip(shepp_logan_phantom(), 0, 1)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
def test_shepp_logan_dtypes_and_range(dtype):
    x = shepp_logan(64, dtype=dtype)
    assert x.shape == (1, 1, 64, 64) and x.dtype == dtype
    assert x.abs().max() <= 1 and x.abs().max() > 0.9
    if x.is_complex():
        assert (x.imag == 0).all()


def test_smooth_phase_bounds_and_magnitude_preserved():
    phi = smooth_random_phase((64, 80), seed=3, max_phase=1.0)
    assert phi.shape == (64, 80)
    assert phi.abs().max().item() == pytest.approx(1.0, abs=1e-12)
    # smooth: neighbouring pixels differ by far less than the range
    assert (phi[1:] - phi[:-1]).abs().max() < 0.2 and (phi[:, 1:] - phi[:, :-1]).abs().max() < 0.2
    x = shepp_logan(64, dtype=torch.complex128, max_phase=1.0, seed=3)
    torch.testing.assert_close(x.abs(), shepp_logan(64, dtype=torch.float64))
    on = x.abs() > 0.05
    assert x.angle()[on].abs().max() <= 1.0 + 1e-12 and x.angle()[on].abs().max() > 0.3


def test_random_ellipses_seeded_range_and_distinct():
    a = random_ellipses(4, 48, seed=7)
    b = random_ellipses(4, 48, seed=7)
    c = random_ellipses(4, 48, seed=8)
    assert a.shape == (4, 1, 48, 48) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a[0], a[1])
    # background outside the head ellipse (radius <= 0.92) is zero: corners are empty
    assert (a[:, :, :3, :3] == 0).all()
    for img in a:
        assert len(torch.unique(img)) >= 3  # head plus inner structures


def test_random_ellipses_complex_phase():
    x = random_ellipses(2, 32, seed=0, dtype=torch.complex64, max_phase=math.pi / 2)
    assert x.dtype == torch.complex64
    torch.testing.assert_close(x.abs(), random_ellipses(2, 32, seed=0), atol=1e-6, rtol=1e-6)
    assert x.imag.abs().max() > 0


def test_natural_mri_cross_modality():
    x = natural_mri(["camera", "moon"], size=32)
    assert x.shape == (2, 1, 32, 32) and x.dtype == torch.complex64
    assert x.real.min() >= 0 and x.real.max() <= 1 and (x.imag == 0).all()
    y = natural_mri(["camera"], size=32, max_phase=1.0, dtype=torch.complex128, seed=1)
    torch.testing.assert_close(y.abs().float(), x[:1].real)


def test_bad_phase_inputs():
    with pytest.raises(ValueError, match="complex dtype"):
        shepp_logan(32, dtype=torch.float32, max_phase=0.5)
    with pytest.raises(ValueError, match="max_phase"):
        random_ellipses(1, 32, dtype=torch.complex64, max_phase=4.0)
    with pytest.raises(ValueError, match="dtype"):
        shepp_logan(32, dtype=torch.int64)
