"""Mathematical checks of the learned feature maps (LDA eq. 33, Sec. 4.1; meta-LDA Sec. 5.2)."""

import pytest
import torch
from torch import nn

from lda_opt.nets import (
    Adapter,
    ComplexConv2d,
    Composed,
    FeatureCNN,
    SmoothReLU,
    count_parameters,
    xavier_init_,
)

DELTA = 0.01


def formula(x: torch.Tensor, d: float) -> torch.Tensor:
    """LDA eq. (33), written case by case."""
    out = torch.empty_like(x)
    for i, v in enumerate(x.tolist()):
        if v <= -d:
            out[i] = 0.0
        elif v >= d:
            out[i] = v
        else:
            out[i] = v * v / (4 * d) + v / 2 + d / 4
    return out


def test_smooth_relu_matches_eq33():
    a = SmoothReLU(DELTA)
    x = torch.linspace(-0.05, 0.05, 201, dtype=torch.float64)
    torch.testing.assert_close(a(x), formula(x, DELTA), rtol=0, atol=1e-15)


def test_smooth_relu_values_at_breakpoints():
    a = SmoothReLU(DELTA)
    x = torch.tensor([-DELTA, 0.0, DELTA], dtype=torch.float64)
    # a(-d) = 0 (both pieces), a(0) = d/4, a(d) = d (both pieces): continuity.
    torch.testing.assert_close(a(x), torch.tensor([0.0, DELTA / 4, DELTA], dtype=torch.float64))
    quad = lambda v: v * v / (4 * DELTA) + v / 2 + DELTA / 4
    assert quad(-DELTA) == pytest.approx(0.0, abs=1e-18)
    assert quad(DELTA) == pytest.approx(DELTA, abs=1e-18)


def test_smooth_relu_is_c1():
    """One-sided slopes agree at +-delta: a'(-d) = 0, a'(d) = 1; a' = clamp((x+d)/(2d),0,1)."""
    a = SmoothReLU(DELTA)
    x = torch.tensor([-DELTA, DELTA, -0.5 * DELTA, 0.0, 0.3, -0.3], dtype=torch.float64)
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(a(x).sum(), x)
    expected = torch.tensor([0.0, 1.0, 0.25, 0.5, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(g, expected, rtol=0, atol=1e-15)
    h = 1e-7
    for p, slope in ((-DELTA, 0.0), (DELTA, 1.0)):
        left = (
            a(torch.tensor(p, dtype=torch.float64)) - a(torch.tensor(p - h, dtype=torch.float64))
        ) / h
        right = (
            a(torch.tensor(p + h, dtype=torch.float64)) - a(torch.tensor(p, dtype=torch.float64))
        ) / h
        assert left.item() == pytest.approx(slope, abs=1e-5)
        assert right.item() == pytest.approx(slope, abs=1e-5)


def test_smooth_relu_constants_are_tight():
    a = SmoothReLU(DELTA)
    assert SmoothReLU.derivative_bound == 1.0
    assert a.derivative_lipschitz == pytest.approx(1 / (2 * DELTA))
    x = torch.linspace(-0.1, 0.1, 20001, dtype=torch.float64)
    d = a.derivative(x)
    assert d.min() == 0.0 and d.max() == 1.0
    slopes = (d[1:] - d[:-1]).abs() / (x[1:] - x[:-1])
    assert slopes.max().item() <= a.derivative_lipschitz * (1 + 1e-9)
    assert slopes.max().item() == pytest.approx(a.derivative_lipschitz, rel=1e-6)


def test_smooth_relu_complex_is_componentwise():
    a = SmoothReLU(DELTA)
    z = torch.randn(3, 5, dtype=torch.complex128) * 0.02
    out = a(z)
    assert out.dtype == torch.complex128
    torch.testing.assert_close(out.real, a(z.real), rtol=0, atol=0)
    torch.testing.assert_close(out.imag, a(z.imag), rtol=0, atol=0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_smooth_relu_rejects_bad_delta(bad):
    with pytest.raises(ValueError, match="delta"):
        SmoothReLU(bad)


def test_complex_conv_equals_real_block_form():
    """W x = (W_r x_r - W_i x_i) + i (W_i x_r + W_r x_i): the 2x2 real block operator."""
    torch.manual_seed(0)
    conv = ComplexConv2d(2, 3, 3).double()
    x = torch.randn(4, 2, 7, 9, dtype=torch.complex128)
    out = conv(x)
    block = nn.Conv2d(4, 6, 3, padding=1, bias=False).double()
    with torch.no_grad():
        wr, wi = conv.real.weight, conv.imag.weight
        top = torch.cat([wr, -wi], dim=1)
        bottom = torch.cat([wi, wr], dim=1)
        block.weight.copy_(torch.cat([top, bottom], dim=0))
    ref = block(torch.cat([x.real, x.imag], dim=1))
    torch.testing.assert_close(out.real, ref[:, :3], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.imag, ref[:, 3:], rtol=1e-12, atol=1e-12)
    assert out.shape == (4, 3, 7, 9)


def test_complex_conv_is_complex_linear():
    """Complex (not only real) linearity: conv(c x) = c conv(x) for complex c."""
    torch.manual_seed(1)
    conv = ComplexConv2d(1, 2, 3).double()
    x = torch.randn(2, 1, 6, 6, dtype=torch.complex128)
    c = torch.tensor(0.3 - 1.7j, dtype=torch.complex128)
    torch.testing.assert_close(conv(c * x), c * conv(x), rtol=1e-12, atol=1e-12)


def test_complex_conv_rejects_real_input_and_even_kernel():
    with pytest.raises(TypeError, match="complex"):
        ComplexConv2d(1, 1)(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match="kernel_size"):
        ComplexConv2d(1, 1, 4)
    with pytest.raises(TypeError, match="double"):
        ComplexConv2d(1, 1)(torch.randn(1, 1, 4, 4, dtype=torch.complex128))


def test_parameter_counts_exact():
    # LDA Sec. 4.1: W0 has 32 x 3 x 3 weights, W1..W3 have 32 x 32 x 3 x 3 each.
    assert 9 * (32 + 3 * 32 * 32) == 27_936
    assert count_parameters(FeatureCNN(width=32, depth=4)) == 27_936
    assert count_parameters(FeatureCNN(width=32, depth=4, complex=True)) == 2 * 27_936
    # U-LDA Sec. 5.1: g = 4 complex 3x3 layers of 16 channels, adapter = one 16->16 layer.
    assert count_parameters(FeatureCNN(width=16, complex=True)) == 2 * 9 * (16 + 3 * 256)
    assert count_parameters(Adapter(16, 16, complex=True)) == 2 * 9 * 256
    assert count_parameters(Adapter(16, 8)) == 9 * 16 * 8


def test_feature_cnn_structure_and_recursion():
    torch.manual_seed(2)
    g = FeatureCNN(in_channels=2, width=5, depth=3).double()
    assert len(g.convs) == 3 and all(isinstance(c, nn.Conv2d) for c in g.convs)
    assert all(c.bias is None and c.stride == (1, 1) and c.padding == (1, 1) for c in g.convs)
    x = torch.randn(2, 2, 9, 11, dtype=torch.float64)
    h = x
    for conv in g.convs:  # h_l = a(W_{l-1} h_{l-1}), activation after every layer
        h = SmoothReLU(0.01)(nn.functional.conv2d(h, conv.weight, padding=1))
    torch.testing.assert_close(g(x), h, rtol=0, atol=0)
    assert g(x).shape == (2, 5, 9, 11)
    gc = FeatureCNN(width=4, depth=2, complex=True)
    assert all(isinstance(c, ComplexConv2d) for c in gc.convs)


@pytest.mark.parametrize("is_complex", [False, True])
def test_feature_cnn_gradcheck_float64(is_complex):
    torch.manual_seed(3)
    g = FeatureCNN(width=3, depth=2, complex=is_complex, delta=0.5).double()
    dt = torch.complex128 if is_complex else torch.float64
    x = (0.5 * torch.randn(1, 1, 4, 4, dtype=dt)).requires_grad_(True)
    # complex: fast mode (random projections of the Wirtinger Jacobian) keeps CI fast
    assert torch.autograd.gradcheck(g, (x,), eps=1e-6, atol=1e-6, fast_mode=is_complex)
    if not is_complex:  # second derivatives exist as a' is Lipschitz; complex case is slow
        assert torch.autograd.gradgradcheck(g, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize(
    "is_complex,dtype",
    [
        (False, torch.float32),
        (False, torch.float64),
        (True, torch.complex64),
        (True, torch.complex128),
    ],
)
def test_dtypes(is_complex, dtype):
    g = FeatureCNN(width=4, depth=2, complex=is_complex)
    g = g.double() if dtype in (torch.float64, torch.complex128) else g
    q = Composed(g, Adapter(4, 2, complex=is_complex))
    q = q.double() if dtype in (torch.float64, torch.complex128) else q
    x = torch.randn(3, 1, 8, 6, dtype=dtype)
    out = q(x)
    assert out.dtype == dtype and out.shape == (3, 2, 8, 6)
    assert torch.isfinite(torch.view_as_real(out) if out.is_complex() else out).all()


def test_feature_cnn_input_type_errors():
    with pytest.raises(TypeError, match="complex=True"):
        FeatureCNN(complex=True)(torch.randn(1, 1, 4, 4))
    with pytest.raises(TypeError, match="complex=False"):
        FeatureCNN()(torch.randn(1, 1, 4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="in_channels"):
        FeatureCNN(in_channels=1)(torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        FeatureCNN()(torch.randn(1, 4, 4))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"kernel_size": 2}, "kernel_size"),
        ({"delta": -0.1}, "delta"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_feature_cnn_validates_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FeatureCNN(**kwargs)


def test_composed_is_h_of_g_and_checks_channels():
    torch.manual_seed(4)
    g, h = FeatureCNN(width=6, depth=2), Adapter(6, 3)
    q = Composed(g, h)
    x = torch.randn(2, 1, 7, 7)
    torch.testing.assert_close(q(x), h(g(x)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="in_channels"):
        Composed(g, Adapter(5, 3))
    with pytest.raises(ValueError, match="complex"):
        Composed(g, Adapter(6, 3, complex=True))


def test_adapter_is_one_conv_plus_activation():
    torch.manual_seed(5)
    h = Adapter(3, 2).double()
    z = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    ref = SmoothReLU(0.01)(nn.functional.conv2d(z, h.conv.weight, padding=1))
    torch.testing.assert_close(h(z), ref, rtol=0, atol=0)


def test_xavier_init_bounds_and_seed():
    g = FeatureCNN(width=8, depth=2)
    xavier_init_(g, generator=torch.Generator().manual_seed(0))
    w1 = [c.weight.clone() for c in g.convs]
    xavier_init_(g, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, c.weight) for a, c in zip(w1, g.convs))
    # layer 1: fan_in = 8*9, fan_out = 8*9 -> bound sqrt(6/144)
    assert g.convs[1].weight.abs().max().item() <= (6 / 144) ** 0.5
    gc = FeatureCNN(width=8, depth=2, complex=True)
    bound = (6 / 144) ** 0.5 / 2**0.5
    assert gc.convs[1].real.weight.abs().max().item() <= bound
    assert gc.convs[1].imag.weight.abs().max().item() <= bound
