"""Certified constants of convolutions and CNN feature maps (``M``, ``L_g``).

Catalogue: ``theory/README.md`` ("Constants").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._common import _CERT_INFLATE, _count, _nonneg


def _as_weight(name: str, w: Any) -> torch.Tensor:
    t = torch.as_tensor(w.detach() if isinstance(w, torch.Tensor) else w)
    if t.dim() != 4:
        raise ValueError(f"{name} must have shape (C_out, C_in, k1, k2) (got {tuple(t.shape)})")
    if t.is_complex():
        raise ValueError(f"{name} must be real (pass real and imaginary parts separately)")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


def _hw(image_hw: Any) -> tuple[int, int]:
    if isinstance(image_hw, (int, np.integer)):
        image_hw = (int(image_hw), int(image_hw))
    if len(image_hw) != 2:
        raise ValueError(f"image_hw must be (H, W) (got {image_hw!r})")
    return _count("image_hw[0]", image_hw[0], 1), _count("image_hw[1]", image_hw[1], 1)


def conv_operator_norm(weight: Any, image_hw: Any, *, padding_mode: str = "zeros") -> float:
    r"""Operator norm of a stride-1, dilation-1 2-D multi-channel convolution on ``H x W`` images.

    ``padding_mode="zeros"`` (any zero padding ``p``): the output is a window of the full
    linear convolution, which equals the circular convolution on the ``(H+k1-1) x (W+k2-1)``
    grid applied to the zero-extended input (no wrap-around).  Zero-extension and cropping have
    norm <= 1, and a circular multi-channel convolution is block-diagonalized by the DFT, so

    .. math:: \|W\| \le \max_{\omega}\ \|\hat W(\omega)\|_2, \qquad
              \hat W(\omega) \in \mathbb{C}^{C_{out}\times C_{in}}

    over the DFT frequencies of that grid: a **CERTIFIED upper bound** (inflated by a relative
    1e-10 for float64 rounding).  ``padding_mode="circular"`` (same-size circular padding,
    ``k <= H, W``): the same maximum over the ``H x W`` grid, which is **exact**.
    Cross-correlation vs convolution does not change the value.  Catalogue:
    ``theory/README.md`` ("Constants").
    """
    w = _as_weight("weight", weight)
    H, W = _hw(image_hw)
    k1, k2 = w.shape[-2:]
    if padding_mode == "zeros":
        N1, N2 = H + k1 - 1, W + k2 - 1
    elif padding_mode == "circular":
        if k1 > H or k2 > W:
            raise ValueError(f"circular padding needs kernel <= image (got {(k1, k2)} vs {(H, W)})")
        N1, N2 = H, W
    else:
        raise ValueError(f"padding_mode must be 'zeros' or 'circular' (got {padding_mode!r})")
    # real kernel: W(-w) = conj W(w), so the half spectrum in the last axis covers every
    # singular value.  W^(u, v) = sum_{a,b} w[:, :, a, b] exp(-2 pi i (u a / N1 + v b / N2)),
    # evaluated in chunks of rows u to bound memory (C_out C_in N1 N2 / 2 complex entries).
    cout, cin = w.shape[:2]
    a = torch.arange(k1, dtype=torch.float64)
    b = torch.arange(k2, dtype=torch.float64)
    v = torch.arange(N2 // 2 + 1, dtype=torch.float64)
    E2 = torch.exp(-2j * math.pi * torch.outer(v, b) / N2)  # (V, k2)
    wc = w.to(torch.complex128)
    tmp = torch.einsum("oiab,vb->voia", wc, E2)  # (V, C_out, C_in, k1)
    chunk = max(1, int(2**22 // max(1, E2.shape[0] * cout * cin)))
    best = 0.0
    for u0 in range(0, N1, chunk):
        u = torch.arange(u0, min(N1, u0 + chunk), dtype=torch.float64)
        E1 = torch.exp(-2j * math.pi * torch.outer(u, a) / N1)  # (U, k1)
        mats = torch.einsum("voia,ua->uvoi", tmp, E1)  # (U, V, C_out, C_in)
        best = max(best, float(torch.linalg.matrix_norm(mats, ord=2).max()))
    return best * (1.0 + _CERT_INFLATE)


def conv_operator_norm_complex(
    w_real: Any, w_imag: Any, image_hw: Any, *, padding_mode: str = "zeros"
) -> float:
    r"""Operator norm bound of a complex convolution with kernel ``Wr + i Wi``.

    As a real-linear map on the (Re, Im) channels it is the real convolution with block weight
    ``[[Wr, -Wi], [Wi, Wr]]`` (shape ``(2 C_out, 2 C_in, k1, k2)``), whose norm equals the norm
    of the complex map; evaluated with :func:`conv_operator_norm`.  **CERTIFIED upper bound**
    (``"zeros"``) / exact (``"circular"``).  Catalogue: ``theory/README.md`` ("Constants").
    """
    wr, wi = _as_weight("w_real", w_real), _as_weight("w_imag", w_imag)
    if wr.shape != wi.shape:
        raise ValueError(
            f"w_real and w_imag must have the same shape ({tuple(wr.shape)} vs {tuple(wi.shape)})"
        )
    block = torch.cat([torch.cat([wr, -wi], dim=1), torch.cat([wi, wr], dim=1)], dim=0)
    return conv_operator_norm(block, image_hw, padding_mode=padding_mode)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _conv_layer(conv: Any, hw: tuple[int, int], idx: int) -> tuple[float, tuple[int, int]]:
    """Certified norm of one conv layer and its output size (duck typing)."""
    if hasattr(conv, "real") and hasattr(conv, "imag") and hasattr(conv.real, "weight"):
        ref, weights = conv.real, (conv.real.weight, conv.imag.weight)
    elif hasattr(conv, "weight"):
        ref, weights = conv, (conv.weight,)
    else:
        raise ValueError(f"net.convs[{idx}] has neither .weight nor .real/.imag sub-convolutions")
    for attr, ok in (("stride", (1, 1)), ("dilation", (1, 1))):
        if _pair(getattr(ref, attr, 1)) != ok:
            raise ValueError(f"net.convs[{idx}].{attr} must be 1 (got {getattr(ref, attr)})")
    if int(getattr(ref, "groups", 1)) != 1:
        raise ValueError(f"net.convs[{idx}].groups must be 1 (got {ref.groups})")
    mode = getattr(ref, "padding_mode", "zeros")
    if mode not in ("zeros", "circular"):
        raise ValueError(
            f"net.convs[{idx}].padding_mode must be 'zeros' or 'circular' (got {mode!r})"
        )
    k1, k2 = weights[0].shape[-2:]
    pad = getattr(ref, "padding", (k1 // 2, k2 // 2))
    if pad == "same":
        out_hw = hw
    elif pad == "valid":
        out_hw = (hw[0] - k1 + 1, hw[1] - k2 + 1)
    else:
        p1, p2 = _pair(pad)
        if mode == "circular" and (2 * p1 != k1 - 1 or 2 * p2 != k2 - 1):
            raise ValueError(f"net.convs[{idx}]: circular padding must preserve the size")
        out_hw = (hw[0] + 2 * p1 - k1 + 1, hw[1] + 2 * p2 - k2 + 1)
    if out_hw[0] < 1 or out_hw[1] < 1:
        raise ValueError(f"net.convs[{idx}] output would be empty for input {hw}")
    if len(weights) == 2:
        nrm = conv_operator_norm_complex(weights[0], weights[1], hw, padding_mode=mode)
    else:
        nrm = conv_operator_norm(weights[0], hw, padding_mode=mode)
    return nrm, out_hw


def _layer_stack(
    convs: Any, act: Any, hw: tuple[int, int], activate_last: bool
) -> tuple[float, float, tuple[int, int]]:
    if (
        act is None
        or not hasattr(act, "derivative_bound")
        or not hasattr(act, "derivative_lipschitz")
    ):
        raise ValueError(
            "net.act must have attributes 'derivative_bound' and 'derivative_lipschitz'"
        )
    s = _nonneg("net.act.derivative_bound", act.derivative_bound)
    t = _nonneg("net.act.derivative_lipschitz", act.derivative_lipschitz)
    M, L = 1.0, 0.0
    n = len(convs)
    for idx, conv in enumerate(convs):
        w_norm, hw = _conv_layer(conv, hw, idx)
        sl, tl = (s, t) if (idx < n - 1 or activate_last) else (1.0, 0.0)
        M, L = sl * w_norm * M, tl * w_norm**2 * M**2 + sl * w_norm * L
    return M, L, hw


def _net_constants(
    net: Any, hw: tuple[int, int], activate_last: bool | None
) -> tuple[float, float, tuple[int, int]]:
    last = activate_last
    if last is None:
        last = bool(getattr(net, "activate_last", True))
    convs = getattr(net, "convs", None)
    if convs is not None:
        if len(convs) == 0:
            raise ValueError("net.convs must be non-empty")
        return _layer_stack(convs, getattr(net, "act", None), hw, last)
    if getattr(net, "conv", None) is not None:  # single layer a(W x), e.g. nets.Adapter
        return _layer_stack([net.conv], getattr(net, "act", None), hw, last)
    if getattr(net, "g", None) is not None and getattr(net, "h", None) is not None:
        # q = h o g (nets.Composed): Lip(grad(h o g)) <= L_h M_g^2 + M_h L_g
        Mg, Lg, hw = _net_constants(net.g, hw, None)
        Mh, Lh, hw = _net_constants(net.h, hw, None)
        return Mh * Mg, Lh * Mg * Mg + Mh * Lg, hw
    raise ValueError(
        "net must have 'convs' and 'act' (FeatureCNN), 'conv' and 'act' (Adapter), "
        "or 'g' and 'h' (Composed)"
    )


def cnn_constants(
    net: Any, image_hw: Any, *, activate_last: bool | None = None
) -> tuple[float, float]:
    r"""Certified ``(M, L_g)`` of a smoothed-activation CNN ``g = p_L o ... o p_1``,
    ``p_l(h) = a(W_l h)``, for LDA Lemma 3.2 / ELDA Lemma 4.4 / meta-LDA Lemma A2.

    Duck typing: ``net.convs`` (``nn.Conv2d`` with ``.weight``, or complex convolutions with
    sub-convolutions ``.real`` / ``.imag``; stride 1, dilation 1, groups 1, zero or size-
    preserving circular padding; biases are irrelevant) and ``net.act`` with
    ``.derivative_bound`` ``s >= sup|a'|`` and ``.derivative_lipschitz`` ``t >= Lip(a')``
    (SmoothReLU: 1 and ``1/(2 delta)``).  The activation follows every convolution (LDA eq. 33)
    unless ``activate_last`` (argument, else ``net.activate_last``, default True) is False.
    Complex activations must act on real and imaginary parts separately (as
    ``lda_opt.nets.SmoothReLU`` does).  A single layer with ``.conv`` and ``.act``
    (``nets.Adapter``) and a composition with ``.g`` and ``.h`` (``nets.Composed``,
    ``q = h o g``) are also accepted.

    With ``||W_l||`` from :func:`conv_operator_norm` on the layer's input size, and
    ``||diag(a'(u)) - diag(a'(v))|| <= t ||u - v||_inf <= t ||u - v||_2``:

    .. math:: \mathrm{Lip}(p_l) \le s\|W_l\|,\quad \mathrm{Lip}(\nabla p_l) \le t\|W_l\|^2,\quad
              \mathrm{Lip}(\nabla(p\circ q)) \le \mathrm{Lip}(\nabla p)\mathrm{Lip}(q)^2
              + \mathrm{Lip}(p)\mathrm{Lip}(\nabla q),

    so ``M_l = s ||W_l|| M_{l-1}``, ``L_l = t ||W_l||^2 M_{l-1}^2 + s ||W_l|| L_{l-1}``
    (``M_0 = 1``, ``L_0 = 0``) and ``(M, L_g) = (M_L, L_L)``.  **CERTIFIED upper bounds** of
    ``sup ||grad g||`` and of the Lipschitz constant of ``grad g`` (whole Jacobian, operator
    norm).  Catalogue: ``theory/README.md`` ("Constants"), ``theory/lda.md`` (Lemma 3.2).
    """
    M, L, _ = _net_constants(net, _hw(image_hw), activate_last)
    return M, L
